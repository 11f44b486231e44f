"""Turn fetched bytes into text: operator override, BOM, declared charset, detection.

Chinese sites often lie about their charset: templates that still say gb2312 while
the CMS writes UTF-8 are common, so a declaration is trusted only when the bytes
agree with it.
"""

from __future__ import annotations

import codecs
import re

from charset_normalizer import from_bytes

# Legacy Chinese charsets are decoded with their supersets: pages labelled gb2312
# routinely contain GBK/GB18030 characters (names, rare place characters).
_SUPERSETS = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "euc-cn": "gb18030",
    "hz-gb-2312": "gb18030",
    "big5": "cp950",
    "big5-hkscs": "big5hkscs",
    "x-x-big5": "cp950",
    "iso-8859-1": "cp1252",  # what browsers do with latin-1 labels
    "iso8859-1": "cp1252",
    "latin1": "cp1252",
    "ascii": "cp1252",
    "us-ascii": "cp1252",
    "utf8": "utf-8",
}

_BOMS = (
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)

_META_CHARSET = re.compile(
    rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.IGNORECASE
)
_HEAD_BYTES = 16384
_DETECT_CANDIDATES = ["utf_8", "gb18030", "big5"]


def normalize_charset(name: str | None) -> str | None:
    """A Python codec name for a declared charset, or None if unknown."""
    if not name:
        return None
    name = name.strip().strip("\"'").lower()
    name = _SUPERSETS.get(name, name)
    try:
        codecs.lookup(name)
    except LookupError:
        return None
    return _SUPERSETS.get(codecs.lookup(name).name, codecs.lookup(name).name)


def meta_charset(body: bytes) -> str | None:
    """The charset named by the first <meta> charset declaration in the head."""
    match = _META_CHARSET.search(body[:_HEAD_BYTES])
    return match.group(1).decode("ascii", "ignore") if match else None


_ASCII = bytes(range(0x80))


def _utf8_errors(body: bytes) -> tuple[int, int]:
    """(undecodable bytes, non-ASCII bytes) when reading `body` as UTF-8."""
    non_ascii = len(body) - len(body.translate(None, _ASCII))
    errors = 0
    pos = 0
    while True:
        try:
            body[pos:].decode("utf-8")
            return errors, non_ascii
        except UnicodeDecodeError as exc:
            errors += 1
            pos += exc.end
            if errors > 50:
                return errors, non_ascii


def _looks_utf8(body: bytes) -> bool:
    """True when non-ASCII bytes are (nearly) all well-formed UTF-8.

    Text in GBK or Big5 practically never forms valid UTF-8 sequences, so valid UTF-8
    beats any legacy declaration; a few stray bad bytes (a truncated page, one
    copy-pasted character) are tolerated.
    """
    errors, non_ascii = _utf8_errors(body)
    if non_ascii == 0:
        return False
    return errors == 0 or (non_ascii >= 200 and errors * 1000 <= non_ascii)


def _decodes_cleanly(body: bytes, encoding: str) -> bool:
    try:
        body.decode(encoding)
        return True
    except (UnicodeDecodeError, LookupError):
        return False


def decode_html(
    body: bytes, http_charset: str | None = None, override: str | None = None
) -> tuple[str, str]:
    """Return (text, encoding_used); never raises."""
    if not body:
        return "", normalize_charset(override) or "utf-8"
    # 1. The operator knows best (source.encoding for a site that lies consistently).
    forced = normalize_charset(override)
    if forced:
        return body.decode(forced, errors="replace"), forced
    # 2. A byte-order mark is unambiguous.
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return body.decode(encoding, errors="replace"), encoding
    utf8 = _looks_utf8(body)
    # 3. Declarations, HTTP first, then <meta>, when the bytes agree with them.
    for declared in (http_charset, meta_charset(body)):
        encoding = normalize_charset(declared)
        if not encoding:
            continue
        if encoding == "utf-8":
            if utf8 or _decodes_cleanly(body, "utf-8"):
                return body.decode("utf-8", errors="replace"), "utf-8"
            continue
        if utf8:
            # Declared legacy charset but UTF-8 bytes: the template lies.
            return body.decode("utf-8", errors="replace"), "utf-8"
        if _decodes_cleanly(body, encoding):
            return body.decode(encoding), encoding
    if utf8:
        return body.decode("utf-8", errors="replace"), "utf-8"
    # 4. Detection among the charsets Chinese sites actually use.
    try:
        best = from_bytes(body, cp_isolation=_DETECT_CANDIDATES).best()
    except Exception:  # detection is best effort; never fail a page on it
        best = None
    if best is not None and best.encoding:
        encoding = normalize_charset(best.encoding) or "utf-8"
        return body.decode(encoding, errors="replace"), encoding
    for encoding in ("gb18030", "cp950"):
        if _decodes_cleanly(body, encoding):
            return body.decode(encoding), encoding
    return body.decode("utf-8", errors="replace"), "utf-8"
