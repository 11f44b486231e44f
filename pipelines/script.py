"""Chinese script handling: simplified/traditional detection and conversion (OpenCC)."""

from __future__ import annotations

import re
from functools import cache

import opencc

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

# Below this many Han characters a text says too little about its script.
MIN_HAN = 2


@cache
def _converter(config: str) -> opencc.OpenCC:
    # Building a converter loads dictionaries; one per config per process is enough.
    return opencc.OpenCC(config)


def to_simplified(text: str) -> str:
    """Convert traditional characters to simplified; simplified text passes unchanged."""
    if not text:
        return text
    return _converter("t2s").convert(text)


def to_traditional(text: str) -> str:
    if not text:
        return text
    return _converter("s2t").convert(text)


def _changed(original: str, converted: str) -> int:
    """Count Han characters that a conversion replaced."""
    if len(original) == len(converted):
        return sum(1 for a, b in zip(original, converted, strict=True) if a != b and _HAN.match(a))
    # Phrase rules that change length are rare; fall back to multiset difference.
    return max(0, len(set(original) - set(converted)))


def script_counts(text: str) -> tuple[int, int, int]:
    """(han, traditional-only, simplified-only) character counts of `text`."""
    han = len(_HAN.findall(text))
    if not han:
        return 0, 0, 0
    # Characters that t2s changes exist only in traditional writing; characters that
    # s2t changes exist only in simplified writing. Characters shared by both scripts
    # (most of them) change under neither conversion and say nothing.
    trad = _changed(text, to_simplified(text))
    simp = _changed(text, to_traditional(text))
    return han, trad, simp


def detect_script(text: str | None) -> str | None:
    """'hans', 'hant', or None when the text holds (almost) no Han characters."""
    if not text:
        return None
    han, trad, simp = script_counts(text[:20000])
    if han < MIN_HAN and not (trad or simp):
        return None
    if trad > simp:
        return "hant"
    if simp > trad:
        return "hans"
    # Nothing distinctive (e.g. "中国人"): such text reads the same in both scripts;
    # simplified is by far the common case on the mainland sites cyz follows.
    return "hans"
