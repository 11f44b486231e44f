"""What a saved file holds: an HTML page, plain text, or nothing cyz should read.

`cyz extract FILE` decides by content, not by name: a page saved without a suffix is
still HTML, and a PNG named `page.html` is still an image. Markdown is refused rather
than read as an article: its headings, links and code would come back as a title,
dates and an origin that no page ever had.
"""

from __future__ import annotations

import re
from typing import Literal

from cyz.pipelines.decode import decode_html

PageKind = Literal["html", "text"]


class NotAPage(ValueError):
    """Bytes that are neither an HTML page nor plain text; the message says what they are."""


_SAMPLE = 65_536
_MAGIC = (
    (b"\x89PNG", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"), (b"GIF8", "a GIF image"),
    (b"RIFF", "a RIFF file (WebP, WAV, AVI)"), (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive or Office document"), (b"\x1f\x8b", "gzip data"),
    (b"\x7fELF", "an executable"), (b"BZh", "bzip2 data"), (b"\xfd7zXZ", "xz data"),
    (b"SQLite format 3\x00", "an SQLite database"),
)
_TEXT_BOMS = (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff")
# Control characters no text file holds (tab, newlines and form feed are fine).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f\ufffd]")
_HTML_DOCUMENT = re.compile(r"<!doctype\s+html|<(?:html|head|body|title|meta)[\s>/]", re.IGNORECASE)
_HTML_TAG = re.compile(r"</?(?:p|div|br|span|table|tr|td|ul|ol|li|a|h[1-6]|article|section|img|"
                       r"strong|b|font|center|em|i)[\s>/]", re.IGNORECASE)
_MARKDOWN_SUFFIXES = {".md", ".markdown", ".mdown", ".mkd", ".rst"}
_MD_HEADING = re.compile(r"^#{1,6}\s+\S", re.MULTILINE)
_MD_FENCE = re.compile(r"^\s*(?:```|~~~)", re.MULTILINE)
_MD_LINK = re.compile(r"!?\[[^\]\n]+\]\([^)\s]+\)")
_MD_TABLE_RULE = re.compile(r"^\|?\s*:?-{3,}:?\s*\|", re.MULTILINE)


def sniff_page(body: bytes, name: str = "") -> PageKind:
    """"html" or "text" for what `body` holds; raises NotAPage for anything else.

    `name` (the file name) only matters for `.txt`, which is text by contract, and for
    Markdown suffixes; the content decides the rest.
    """
    if not body.strip():
        raise NotAPage("the file is empty")
    head = body[:_SAMPLE]
    for magic, kind in _MAGIC:
        if head.startswith(magic):
            raise NotAPage(f"binary data ({kind}), not a saved page")
    sample, _ = decode_html(head)
    # A page that opens as HTML is one, even when a broken transfer left bytes after it.
    if sample.lstrip("\ufeff \t\r\n").startswith("<") and _HTML_DOCUMENT.search(sample):
        return "html"
    if b"\x00" in head and not head.startswith(_TEXT_BOMS):
        raise NotAPage("binary data, not a saved page")
    if len(_CONTROL.findall(sample)) > 0.01 * len(sample):
        raise NotAPage("binary data (or text in an unknown encoding), not a saved page")
    suffix = "." + name.rsplit(".", 1)[-1].lower() if "." in name else ""
    if suffix == ".txt":
        return "text"
    markdown = NotAPage("Markdown, not a saved page: save the page as .html, or its text as .txt")
    if suffix in _MARKDOWN_SUFFIXES:
        raise markdown
    if _HTML_DOCUMENT.search(sample):
        return "html"
    # After the HTML check: page scripts are full of `a[i](b)` and "```".
    if _looks_like_markdown(sample):
        raise markdown
    if sample.lstrip().startswith("<") and len(_HTML_TAG.findall(sample)) >= 3:
        return "html"  # a body fragment, as some scrapers save pages
    return "text"


def _looks_like_markdown(sample: str) -> bool:
    headings = len(_MD_HEADING.findall(sample))
    fences = len(_MD_FENCE.findall(sample))
    others = len(_MD_LINK.findall(sample)) + len(_MD_TABLE_RULE.findall(sample))
    return (headings >= 1 or fences >= 2) and headings + fences + others >= 3
