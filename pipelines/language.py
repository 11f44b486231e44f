"""Language identification: langdetect, reconciled with the Han script for Chinese."""

from __future__ import annotations

import re
import threading

from langdetect import DetectorFactory, LangDetectException, detect_langs

from cyz.pipelines.script import detect_script
from cyz.text import HAN as _HAN
from cyz.text import HANGUL_CHARS

# langdetect is randomised unless seeded; a fixed seed makes records reproducible.
DetectorFactory.seed = 0

SAMPLE_CHARS = 2000
_KANA = re.compile(r"[\u3040-\u30ff]")
_HANGUL = re.compile(f"[{HANGUL_CHARS}]")
_LETTER = re.compile(r"\w")
_lock = threading.Lock()


def _sample(text: str) -> str:
    text = text.strip()
    if len(text) <= SAMPLE_CHARS:
        return text
    # Take the middle of long texts: beginnings carry more datelines and bylines.
    start = (len(text) - SAMPLE_CHARS) // 3
    return text[start:start + SAMPLE_CHARS]


def detect_language(text: str | None) -> str | None:
    """A langdetect code ('zh-cn', 'zh-tw', 'en', ...) or None for empty text."""
    if not text or not text.strip():
        return None
    sample = _sample(text)
    letters = len(_LETTER.findall(sample))
    han = len(_HAN.findall(sample))
    if not letters:
        return None
    kana = len(_KANA.findall(sample))
    hangul = len(_HANGUL.findall(sample))
    # Mostly Han with no kana/hangul is Chinese whatever langdetect guesses on short
    # text; the script decides between zh-cn and zh-tw.
    if han and han >= 0.3 * letters and kana < 0.05 * han and hangul < 0.05 * han:
        return "zh-tw" if detect_script(sample) == "hant" else "zh-cn"
    try:
        with _lock:  # DetectorFactory is shared state
            langs = detect_langs(sample)
    except LangDetectException:
        return None
    if not langs:
        return None
    code = langs[0].lang
    if code.startswith("zh"):
        return "zh-tw" if detect_script(sample) == "hant" else "zh-cn"
    return code
