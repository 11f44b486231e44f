"""Chinese script handling: simplified/traditional detection (conversion: `cyz.text`, re-exported here)."""

from __future__ import annotations

from cyz.text import HAN as _HAN
from cyz.text import to_simplified, to_traditional

# Below this many Han characters a text says too little about its script.
MIN_HAN = 2


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
