"""Text helpers shared by the pipelines and the engines: OpenCC conversion and Han/CJK ranges.

A bottom layer, like `cyz.record`: it imports nothing from cyz, so `cyz.pipelines`,
`cyz.index` and `cyz.alerts` can all use it without importing one another.

- `converter(config)` is the one OpenCC converter per config ("t2s", "s2t") per process;
  building one loads its dictionaries. `to_simplified` and `to_traditional` use it.
- The character ranges are strings for use inside a regex class (`rf"[{HAN_CHARS}]"`);
  `code_ranges` turns such a string into code-point ranges for loops over a table.
"""

from __future__ import annotations

import re
from functools import cache

import opencc

# Han ideographs of the Basic Multilingual Plane: extension A, the unified ideographs and
# the compatibility ideographs. What "a Chinese character" means for script and language
# detection and for the engines' traditional → simplified table.
HAN_UNIFIED_CHARS = "\u4e00-\u9fff"  # the unified ideographs alone (the common characters)
HAN_CHARS = (
    "\u3400-\u4dbf"  # extension A
    + HAN_UNIFIED_CHARS
    + "\uf900-\ufaff"  # compatibility ideographs
)
# Han outside the BMP: extensions B–G.
HAN_SUPPLEMENT_CHARS = "\U00020000-\U0003134f"

HANGUL_CHARS = "\uac00-\ud7af"  # Hangul syllables

# Characters bigrammed like the `cjk_bigram` filter of Elasticsearch/OpenSearch does: Han
# (with 〇 and 々), kana and Hangul. Only letter categories, so that SQLite's unicode61
# tokenizer keeps them.
CJK_CHARS = (
    "\u3005\u3007"
    "\u3041-\u309f"  # hiragana
    "\u30a1-\u30fa\u30fc-\u30ff"  # katakana (without the ・ punctuation)
    + HAN_CHARS
    + HANGUL_CHARS
    + HAN_SUPPLEMENT_CHARS
)

HAN = re.compile(f"[{HAN_CHARS}]")
"""One BMP Han character (`HAN.findall(text)` counts them)."""


def code_ranges(chars: str) -> tuple[range, ...]:
    """The code points of a regex-class string such as `HAN_CHARS`, as `range`s."""
    return tuple(
        range(ord(first), ord(last or first) + 1)
        for first, last in re.findall(r"(.)(?:-(.))?", chars, re.DOTALL)
    )


@cache
def converter(config: str) -> opencc.OpenCC:
    """The process's OpenCC converter for `config` ("t2s", "s2t", ...), built once."""
    return opencc.OpenCC(config)


def to_simplified(text: str) -> str:
    """OpenCC traditional → simplified (phrase-aware, mostly one character for one);
    simplified text passes unchanged."""
    return converter("t2s").convert(text) if text else text


def to_traditional(text: str) -> str:
    """OpenCC simplified → traditional."""
    return converter("s2t").convert(text) if text else text


# Whitespace as pages use it: full-width and no-break spaces, zero-width spaces, BOMs.
WS = re.compile(r"[\s\u3000\xa0\u200b\ufeff]+")


def squash(text: str | None) -> str:
    """Collapse whitespace runs to one space and strip."""
    return WS.sub(" ", text or "").strip()


def nospace(text: str | None) -> str:
    """`text` without any whitespace (how Chinese lines are compared)."""
    return WS.sub("", text or "")
