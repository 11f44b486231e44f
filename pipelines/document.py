"""The page as a tree: parsing (with repairs for what breaks libxml2), the head's meta
tags and script variables, dropping invisible and non-text elements, and the page's
text as lines (one per block element).

Pure functions over one page; the body, title and byline modules read the tree these
build.
"""

from __future__ import annotations

import json
import re

import lxml.html
from lxml import etree

from cyz.pipelines import rules
from cyz.pipelines.lines import Line
from cyz.text import HAN, nospace, squash

DROP_TAGS = ("script", "style", "noscript", "template", "iframe", "svg", "select", "button",
              "input", "textarea", "object", "embed", "canvas", "audio", "video", "map")
BLOCK_TAGS = {
    "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol", "dl", "dd", "dt", "tr",
    "td", "th", "table", "tbody", "thead", "blockquote", "section", "article", "figure",
    "figcaption", "pre", "center", "header", "footer", "main", "aside", "nav", "form",
    "fieldset", "address", "caption", "hr", "br",
}
HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
_HIDDEN = re.compile(r"display\s*:\s*none", re.IGNORECASE)


# Characters libxml2 keeps in text nodes but lxml refuses to move around ("All strings
# must be XML compatible"): one stray \x0b in a page would end its extraction.
_NOT_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def parse_document(html: str) -> tuple[lxml.html.HtmlElement | None, str]:
    """The parsed page and the repaired markup it came from (trafilatura reads the same)."""
    if not html or not html.strip():
        return None, html
    # lxml refuses str input with an XML encoding declaration.
    html = re.sub(r"^\s*<\?xml[^>]*\?>", "", html)
    # Included template fragments leave stray </html>/</body> mid-page, after which
    # libxml2 ignores the rest; the parser closes the document itself.
    html = re.sub(r"</(?:html|body)\s*>", "", html, flags=re.IGNORECASE)
    html = _NOT_XML.sub("", html)
    doc = _parse(html)
    if doc is _TOO_DEEP:
        html = flatten_nesting(html)
        doc = _parse(html)
    return (None if doc is _TOO_DEEP else doc), html


_TOO_DEEP = object()


def _parse(html: str):
    # Past 256 open elements (2048 with huge_tree) libxml2 stops building the tree and
    # silently drops the rest of the page, article included; it says so only in the
    # parser's error log.
    parser = lxml.html.HTMLParser()
    try:
        doc = lxml.html.document_fromstring(html, parser=parser)
    except (etree.ParserError, ValueError):
        return None
    if any(e.type_name == "ERR_RESOURCE_LIMIT" and "depth" in e.message for e in parser.error_log):
        return _TOO_DEEP
    return doc


_MAX_NESTING = 100  # well under libxml2's 256, as our count and libxml2's can differ
_TAG = re.compile(r"<!--.*?-->|<(/?)([a-zA-Z][a-zA-Z0-9:-]*)(?:\s[^>]*)?(/?)>", re.DOTALL)
_VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "meta",
         "param", "source", "track", "wbr"}
_RAW_TEXT = {"script", "style", "textarea", "title", "xmp", "plaintext"}
# An open tag that closes an open sibling of these names first (<p>…<p>…).
_IMPLIED_CLOSE = {"p": {"p"}, "li": {"li"}, "dt": {"dt", "dd"}, "dd": {"dt", "dd"},
                  "tr": {"tr", "td", "th"}, "td": {"td", "th"}, "th": {"td", "th"},
                  "option": {"option"}}
# How far down the open elements a closing tag looks for its match; beyond it the
# closing tag is left as is (stray), which costs structure, never text.
_CLOSE_SEARCH = 64


def flatten_nesting(html: str, limit: int = _MAX_NESTING) -> str:
    """`html` without the tags that open deeper than `limit` (and their closing tags);
    a dropped block becomes a <br>, so paragraphs stay apart.

    Runaway nesting (20,000 <div>s around the article, or hundreds of unclosed <font>s
    on an old CMS page) would make libxml2 drop the article; the text is all kept.
    """
    out: list[str] = []
    stack: list[tuple[str, bool]] = []  # open elements: (name, kept)
    kept = 0
    copied = 0  # html[:copied] is in `out`
    pos = 0
    broke = False  # `out` ends with a <br> standing for dropped blocks
    while (m := _TAG.search(html, pos)) is not None:
        pos = m.end()
        name = (m.group(2) or "").lower()
        if not name or m.group(3) or name in _VOID:
            continue  # comments and empty elements take no depth
        if not m.group(1):
            if name in _RAW_TEXT:  # its content is not markup: skip to its end
                end = re.compile(rf"</{name}\s*>", re.IGNORECASE).search(html, pos)
                pos = end.end() if end else len(html)
                continue
            while stack and stack[-1][0] in _IMPLIED_CLOSE.get(name, ()):
                kept -= stack.pop()[1]
            keep = kept < limit
            stack.append((name, keep))
            kept += keep
        else:
            match = next((i for i in range(len(stack) - 1, max(-1, len(stack) - 1 - _CLOSE_SEARCH), -1)
                          if stack[i][0] == name), None)
            if match is None:
                continue
            keep = stack[match][1]
            kept -= sum(k for _, k in stack[match:])
            del stack[match:]
        if not keep:
            between = html[copied:m.start()]
            out.append(between)
            copied = m.end()
            if name in BLOCK_TAGS and not (broke and not between.strip()):
                out.append("<br>")  # a dropped paragraph still ends a line
                broke = True
            elif between.strip():
                broke = False
    out.append(html[copied:])
    return "".join(out)


def collect_meta(doc) -> dict[str, str]:
    meta: dict[str, str] = {}
    for el in doc.iter("meta"):
        key = el.get("name") or el.get("property") or el.get("itemprop") or el.get("http-equiv")
        content = el.get("content")
        if key and content is not None:
            meta.setdefault(squash(key).lower(), squash(content))
    for el in doc.iter("time"):
        if el.get("datetime") and el.get("pubdate") is not None:
            meta.setdefault("pubdate", el.get("datetime"))
    return meta


_JS_VAR = re.compile(r"""var\s+(nickname|ct|msg_title|publish_time|user_name)\s*=\s*(?:htmlDecode\()?\s*["']([^"']*)["']""")


def collect_script_vars(doc) -> dict[str, str]:
    """WeChat-style `var nickname = "..."`, `var ct = "1581418020"`, and JSON-LD dates."""
    found: dict[str, str] = {}
    for el in doc.iter("script"):
        code = el.text or ""
        if not code:
            continue
        for name, value in _JS_VAR.findall(code):
            if value.strip():
                found.setdefault(name, value.strip())
        if el.get("type") == "application/ld+json":
            try:
                data = json.loads(code)
            except ValueError:
                continue
            published = _jsonld_published(data) if rules.on("document.jsonld") else None
            if published:
                found.setdefault("datepublished", published)
    return found


def _jsonld_published(data: object, depth: int = 0) -> str | None:
    """The first `datePublished` in JSON-LD, nested in `@graph`s and lists included."""
    if depth > 6:
        return None
    if isinstance(data, dict):
        if data.get("datePublished"):
            return str(data["datePublished"])
        children = list(data.values())
    elif isinstance(data, list):
        children = data
    else:
        return None
    for child in children:
        if isinstance(child, (dict, list)):
            found = _jsonld_published(child, depth + 1)
            if found:
                return found
    return None


_STATE_LIMIT = 2_000_000


def script_state(doc) -> str:
    """Inline script text (embedded JSON/JS state), where single-page apps keep the item."""
    parts: list[str] = []
    size = 0
    for el in doc.iter("script"):
        code = el.text or ""
        if code and not el.get("src"):
            parts.append(code)
            size += len(code)
            if size > _STATE_LIMIT:
                break
    return "\n".join(parts)


def clean_tree(doc) -> None:
    for bad in doc.xpath("//comment() | //processing-instruction()"):
        parent = bad.getparent()
        if parent is not None:
            bad.drop_tree() if hasattr(bad, "drop_tree") else parent.remove(bad)
    for el in list(doc.iter(*DROP_TAGS)):
        el.drop_tree()
    for el in list(doc.iter()):
        if not isinstance(el.tag, str) or el.getparent() is None:
            continue
        if _HIDDEN.search(el.get("style", "")) and len(HAN.findall(el.text_content())) < 2000 \
                and rules.on("document.drop_hidden"):
            el.drop_tree()


def node_lines(node, spaced: bool = False) -> list[Line]:
    """Lines of a subtree: one per block element, inline text joined.

    `spaced` puts a space between inline elements, for info bars where spans hold
    date, time and source side by side ("发布时间：09-30<span>22:46</span>").
    """
    lines: list[Line] = []
    buf: list[str] = []
    link = [0]
    heading = [False]

    def flush():
        text = "".join(buf)
        if text.strip():
            lines.append(Line(text, link[0], heading[0]))
        buf.clear()
        link[0] = 0
        heading[0] = False

    def walk(el, in_link: bool):
        if not isinstance(el.tag, str):
            if el.tail:
                add(el.tail, in_link)
            return
        tag = el.tag
        block = tag in BLOCK_TAGS
        if block:
            flush()
        if tag in HEADINGS:
            heading[0] = True
        is_link = in_link or tag == "a"
        if spaced:
            buf.append(" ")
        if el.text:
            add(el.text, is_link)
        for child in el:
            walk(child, is_link)
            if child.tail:
                add(child.tail, in_link or (tag == "a"))
        if spaced:
            buf.append(" ")
        if block:
            flush()

    def add(text: str, in_link: bool):
        buf.append(text)
        if in_link:
            link[0] += len(nospace(text))

    # Children's tails are handled by the parent loop above; walk from the root.
    walk_root = node
    if walk_root.text:
        add(walk_root.text, walk_root.tag == "a")
    for child in walk_root:
        walk(child, False)
        if child.tail:
            add(child.tail, False)
    flush()
    return lines


def page_lines(doc) -> list[str]:
    """All text lines of the page, inline elements spaced (info bars)."""
    root = doc.find("body") if doc.find("body") is not None else doc
    return [t for t in (squash(ln.text) for ln in node_lines(root, spaced=True)) if t]
