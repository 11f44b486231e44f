"""Tokens for full-text search of Chinese (and mixed) text in an engine without a CJK analyzer.

SQLite's `unicode61` tokenizer takes a whole run of Chinese characters as one token, and
`trigram` cannot match two-character words, so we hand FTS5 a pre-tokenized string of
space-separated tokens:

- text is normalized first: NFKC (full-width → half-width), OpenCC t2s (traditional →
  simplified, so 遵義 and 遵义 meet), lowercase;
- a run of CJK characters becomes its overlapping bigrams followed by the run's last
  character on its own (成渝合作 → 成渝 渝合 合作 作). The trailing unigram makes every
  character the *first* character of some token, so a one-character query can be answered
  with a prefix match (`"作"*`) wherever the character stands; a one-character run is just
  that unigram;
- a run of other letters/digits becomes one lowercased word, diacritics folded.

A query term is tokenized the same way (`query_terms`), except that its final CJK run drops
its trailing unigram: in the document that run may continue (遵义 must match inside 遵义市,
whose tokens are 遵义 义市 市). The term's tokens, as one FTS phrase, then match exactly the
places where the term's text occurs, runs of punctuation and spaces aside.
"""

from __future__ import annotations

import operator
import re
import unicodedata
from functools import lru_cache

from cyz.text import CJK_CHARS, to_simplified

_RUN_TEXT = re.compile(rf"[{CJK_CHARS}]+|[^\W_{CJK_CHARS}]+")
_IS_CJK = re.compile(rf"[{CJK_CHARS}]")


@lru_cache(maxsize=1)
def _width_fold() -> re.Pattern[str]:
    """Characters whose NFKC form holds a letter or digit (Ａ１, ｶ, ①, ⼀, compatibility
    ideographs). Running NFKC over whole texts costs ten times the rest of tokenizing,
    since Chinese text is full of full-width punctuation; only these characters change
    the tokens, so only these are normalized."""
    wordish = re.compile(r"[^\W_]")
    codes = []
    for low, high in (
        (0x80, 0xD800),
        (0xE000, 0x10000),
        (0x1D400, 0x1D800),
        (0x1F100, 0x1F200),
        (0x2F800, 0x2FA20),
    ):
        for code in range(low, high):
            ch = chr(code)
            folded = unicodedata.normalize("NFKC", ch)
            if folded != ch and wordish.search(folded):
                codes.append(code)
    ranges: list[list[int]] = []
    for code in codes:
        # Outside the BMP the regex engine tests ranges one by one, so merge them
        # coarsely there (normalizing a neighbour that needs nothing is harmless).
        gap = 1 if code < 0x10000 else 0x400
        if ranges and code - ranges[-1][1] <= gap:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    body = "".join(
        re.escape(chr(a)) if a == b else f"{re.escape(chr(a))}-{re.escape(chr(b))}"
        for a, b in ranges
    )
    return re.compile(f"[{body}]+")


def _nfkc(match: re.Match[str]) -> str:
    return unicodedata.normalize("NFKC", match.group())


def normalize(text: str) -> str:
    """The form both documents and queries are tokenized from: NFKC (where it matters for
    tokens), OpenCC t2s, lowercase."""
    if not text:
        return ""
    return to_simplified(_width_fold().sub(_nfkc, text)).lower()


def _runs(normalized: str) -> list[tuple[str, bool]]:
    """Token-character runs of `normalized`, each flagged True when it is a CJK run."""
    is_cjk = _IS_CJK.match
    return [(run, bool(is_cjk(run))) for run in _RUN_TEXT.findall(normalized)]


def _word(run: str) -> str:
    # Fold diacritics (café → cafe) as FTS5's unicode61 tokenizer would; rare in our texts,
    # so only non-ASCII words pay for it.
    if run.isascii():
        return run
    stripped = "".join(
        c for c in unicodedata.normalize("NFKD", run) if not unicodedata.combining(c)
    )
    return unicodedata.normalize("NFC", stripped)


def index_terms(text: str) -> str:
    """The space-separated token string FTS indexes for `text`."""
    out: list[str] = []
    extend, append, add = out.extend, out.append, operator.add
    is_cjk = _IS_CJK.match
    # The hot loop of indexing: findall and local names keep it at ~0.2 µs per character.
    for run in _RUN_TEXT.findall(normalize(text)):
        if is_cjk(run):
            extend(map(add, run, run[1:]))
            append(run[-1])
        else:
            append(_word(run))
    return " ".join(out)


def query_terms(term: str) -> list[str]:
    """The tokens a query term (a word or a phrase) must match as one contiguous phrase.

    When the last token is a single CJK character (see `last_is_prefix`), it must be
    matched as a prefix: in the index that character starts a bigram or stands alone.
    """
    runs = _runs(normalize(term))
    out: list[str] = []
    for i, (run, cjk) in enumerate(runs):
        if not cjk:
            out.append(_word(run))
            continue
        out.extend(map(operator.add, run, run[1:]))
        if len(run) == 1 or i < len(runs) - 1:
            out.append(run[-1])
    return out


def last_is_prefix(tokens: list[str]) -> bool:
    """True when `query_terms` ended on a lone CJK character (match it as a prefix)."""
    return bool(tokens) and len(tokens[-1]) == 1 and bool(_IS_CJK.match(tokens[-1]))


def term_pattern(term: str) -> str | None:
    """A regex finding `term` in normalized text (for snippets); None if it has no tokens.

    Runs are joined the way FTS sees them: two CJK runs or two words need a separator
    between them, a CJK run and a word may touch (5G网络). Words match whole words only.
    """
    runs = _runs(normalize(term))
    if not runs:
        return None
    parts: list[str] = []
    if not runs[0][1]:
        parts.append(rf"(?<![^\W_{CJK_CHARS}])")
    for i, (run, cjk) in enumerate(runs):
        if i:
            parts.append(r"[\W_]+" if cjk == runs[i - 1][1] else r"[\W_]*")
        parts.append(re.escape(run))
    if not runs[-1][1]:
        parts.append(rf"(?![^\W_{CJK_CHARS}])")
    return "".join(parts)


class _FoldTable(dict):
    """`str.translate` table folding one character to one character, filled on demand."""

    def __missing__(self, code: int) -> int:
        folded = unicodedata.normalize("NFKC", chr(code)).lower()
        self[code] = ord(folded) if len(folded) == 1 else code
        return self[code]


_FOLD = _FoldTable()


def width_folded(text: str) -> bool:
    """Whether `text` holds characters NFKC turns into letters or digits (Ａ, ①, ...)."""
    return _width_fold().search(text) is not None


def fold_aligned(text: str) -> str:
    """Width- and case-fold `text` one character at a time, keeping its length.

    Snippets locate matches in the folded string and cut the same offsets from the
    original, so no character may expand (ﬁ → fi) or vanish.
    """
    return text.translate(_FOLD)
