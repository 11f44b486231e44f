"""The search syntax shared by every engine (`cyz search`, the demo, the bench).

- words are ANDed: `遵义 合作` finds articles with both;
- `"..."` is a phrase (a contiguous string; spaces inside are normalized);
- `OR` (any case: `or`, `Or`) between two terms makes them alternatives:
  `遵义 签约 OR 协议` means 遵义 AND (签约 OR 协议);
- `-word`, `-"phrase"`, `NOT word`, `NOT "phrase"` (NOT in any case) exclude: no
  article holding one of them is found;
- a query of exclusions only (`-重庆`) means every article (within the filters)
  without them, as if it started with the empty query;
- the empty query means every article (browse).

A Chinese word is matched as a contiguous string (it is indexed as bigrams), so a word
and a one-word phrase behave the same for CJK text. Terms without a searchable
character (`*`, `:`) are dropped. A query that can mean nothing (only `"`, only `OR` or
`NOT`, an empty phrase, nothing searchable left) or longer than `MAX_QUERY_CHARS` is a
`QueryError`, with a one-line message for the user.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from cyz.index.cjk import query_terms

# Snippets compile one pattern from every term: a 10 KB query took 12.8 s there.
MAX_QUERY_CHARS = 256


class QueryError(ValueError):
    """A query that can mean nothing, or one too long to run (one-line message)."""


@dataclass(frozen=True)
class Term:
    text: str
    phrase: bool = False


@dataclass
class Query:
    # AND of OR-groups: [[a], [b, c]] means a AND (b OR c).
    clauses: list[list[Term]] = field(default_factory=list)
    # None of these may occur (a word or a phrase each).
    exclude: list[Term] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        """Nothing asked for and nothing excluded: every article."""
        return not self.clauses and not self.exclude

    @property
    def has_words(self) -> bool:
        """Whether some term must occur (there is a text score to rank by)."""
        return bool(self.clauses)

    def terms(self) -> list[Term]:
        """The terms that must (or may) occur: what snippets mark. Exclusions are not
        among them."""
        return [t for group in self.clauses for t in group]


# A token: an optional `-` then a phrase (a quote left open closes at the end), or a word.
_TOKEN = re.compile(r'(-?)"([^"]*)"?|(\S+)')


def parse(text: str | None) -> Query:
    """Parse what the user typed; QueryError when it can mean nothing or is too long."""
    text = text or ""
    if len(text) > MAX_QUERY_CHARS:
        raise QueryError(f"the query has {len(text)} characters; at most {MAX_QUERY_CHARS} "
                         "are allowed")
    if not text.strip():
        return Query()
    query = Query()
    join_next = negate_next = after_exclusion = False
    for match in _TOKEN.finditer(text):
        minus, phrase, word = match.group(1), match.group(2), match.group(3)
        keyword = (word or "").upper()
        if keyword in ("OR", "NOT"):
            if negate_next:
                raise QueryError(f"NOT must be followed by a word or a phrase, not {word}")
            if keyword == "OR":
                if after_exclusion:
                    raise QueryError(_OR_EXCLUSION)
                join_next = bool(query.clauses)  # a leading OR joins nothing: ignored
            else:
                negate_next = True
            continue
        if word and word.startswith("-") and len(word) > 1:
            minus, word = "-", word[1:]  # -word
        term = _term(phrase, word)
        negated = negate_next or bool(minus)
        if negated and join_next:
            raise QueryError(_OR_EXCLUSION)
        if term is not None:
            _add(query, term, negated, join_next)
        join_next = negate_next = False
        after_exclusion = negated
    if negate_next:
        raise QueryError("NOT must be followed by a word or a phrase")
    if query.is_empty:
        raise QueryError(f"nothing to search for in {text.strip()!r}: give a word or a "
                         'phrase ("...")')
    return query


_OR_EXCLUSION = ("OR joins words or phrases; an exclusion (-word, NOT word) cannot be "
                 "an alternative")


def _term(phrase: str | None, word: str | None) -> Term | None:
    """The term a token stands for; None when it holds nothing searchable (dropped)."""
    if phrase is not None:
        value = " ".join(phrase.split())
        if not value:
            raise QueryError('an empty phrase ("") searches for nothing')
        term = Term(value, phrase=True)
    else:
        term = Term(word)
    # A lone `-` or `*` holds nothing to look for.
    return term if query_terms(term.text) else None


def _add(query: Query, term: Term, negated: bool, join: bool) -> None:
    if negated:
        if term not in query.exclude:
            query.exclude.append(term)
    elif join:
        if term not in query.clauses[-1]:
            query.clauses[-1].append(term)
    else:
        query.clauses.append([term])
