"""Which block of the page is the article: readability-style block scores (Chinese text
length and punctuation, propagated to ancestors, discounted by link density and by
boilerplate class names), generic CMS containers that agree with the scorer, and the
pruning of share bars and related lists nested inside the chosen block.
"""

from __future__ import annotations

import re

from cyz.pipelines.document import BLOCK_TAGS, DROP_TAGS
from cyz.pipelines.lines import PUNCT
from cyz.text import HAN, nospace

_BOILER_ATTR = re.compile(
    r"(?:^|[-_\s])(share|sharing|comment|comments|reply|related|relate|recommend|recommends|"
    r"hot|hotnews|footer|foot|copyright|qrcode|qr|ewm|erweima|advert|advertise|ad|ads|adv|"
    r"banner|breadcrumb|crumb|crumbs|nav|navbar|menu|sidebar|side|aside|toolbar|tools|tool|"
    r"jiathis|bdshare|social|print|pager|pagination|login|search|sns|weixin|wechat-qr|"
    r"rank|ranking|tags|keywords|statement|disclaimer|report|feedback|popup|modal)(?:[-_\s]|$)",
    re.IGNORECASE,
)
_CONTENT_ATTR = re.compile(
    r"article|content|text|body|main|detail|zoom|editor|post|entry|story|news_txt|txt|con",
    re.IGNORECASE,
)
# Generic CMS body containers (TRS, UCAP, WeChat, common templates) - not tied to a host.
CMS_HINTS = (
    "#js_content", ".rich_media_content", ".trs_paper_default", ".TRS_Editor", ".TRS_UEDITOR",
    "#UCAP-CONTENT", "#Zoom", "#zoom", ".rm_txt_con", "#detailContent", ".detail-content",
    ".article-content", ".article_content", "#article_content", ".articleContent",
    "#articleContent", ".article-body", ".article_body", ".post-content", ".entry-content",
    "#content_text", ".content_text", "article",
)


def _attrs(el) -> str:
    return f"{el.get('class', '')} {el.get('id', '')}"


def _own_text(el) -> tuple[str, int]:
    """Inline text of `el` (not inside nested blocks) and how much of it is in links."""
    parts = [el.text or ""]
    link = 0
    for child in el:
        if not isinstance(child.tag, str):
            parts.append(child.tail or "")
            continue
        if child.tag in BLOCK_TAGS:
            parts.append(child.tail or "")
            continue
        inner = child.text_content()
        if child.tag == "a" or child.iterancestors("a"):
            link += len(nospace(inner))
        else:
            link += sum(len(nospace(a.text_content())) for a in child.iter("a"))
        parts.append(inner)
        parts.append(child.tail or "")
    return "".join(parts), link


def _link_density(el) -> float:
    total = len(nospace(el.text_content())) or 1
    link = sum(len(nospace(a.text_content())) for a in el.iter("a"))
    return min(1.0, link / total)


def score_blocks(doc) -> dict:
    """Readability-style scores: paragraphs vote for their parent and grandparents."""
    scores: dict = {}
    for el in doc.iter():
        if not isinstance(el.tag, str) or el.tag in DROP_TAGS:
            continue
        text, link = _own_text(el)
        key = nospace(text)
        if len(key) < 8:
            continue
        if link > 0.5 * len(key):
            continue
        han = len(HAN.findall(key))
        punct = len(PUNCT.findall(key))
        if han < 4 and punct == 0:
            continue
        value = 1 + punct + min(han / 30, 6)
        # A paragraph votes for the block holding it; a text-bearing div for itself.
        node = el if el.tag not in ("p", "span", "font", "strong", "b") else el.getparent()
        for weight in (1.0, 0.5, 0.25):
            if node is None or node.tag in ("html", "body"):
                break
            scores[node] = scores.get(node, 0.0) + value * weight
            node = node.getparent()
    for node in list(scores):
        attrs = _attrs(node)
        factor = 1.0 - _link_density(node)
        if _BOILER_ATTR.search(attrs) and not _CONTENT_ATTR.search(attrs):
            factor *= 0.3
        scores[node] *= factor
    return scores


def choose_body(doc, body_selector: str | None = None):
    if body_selector:
        try:
            found = doc.cssselect(body_selector)
        except Exception:  # bad operator selector: fall back to scoring
            found = []
        if found:
            return found[0]
    scores = score_blocks(doc)
    if not scores:
        return doc.find("body") if doc.find("body") is not None else doc
    top = max(scores, key=scores.get)
    top_score = scores[top]
    # A generic CMS container that agrees with the scorer gives a cleaner boundary.
    for selector in CMS_HINTS:
        try:
            found = doc.cssselect(selector)
        except Exception:
            continue
        for el in found:
            han = len(HAN.findall(el.text_content()))
            if han < 50 or _link_density(el) > 0.35:
                continue
            inside = el is top or top in set(el.iterancestors()) or el in set(top.iterancestors())
            if inside:
                return el
    # A container that holds the article split over sibling blocks.
    parent = top.getparent()
    if parent is not None and parent in scores and parent.tag not in ("body", "html"):
        siblings = [s for s in parent if s in scores and s is not top and scores[s] >= 0.3 * top_score]
        if siblings and scores[parent] >= 0.9 * top_score:
            return parent
    return top


def prune_boilerplate(node) -> None:
    """Drop share bars, related lists and the like nested inside the body container."""
    for el in list(node.iter()):
        if el is node or not isinstance(el.tag, str) or el.getparent() is None:
            continue
        attrs = _attrs(el)
        if _BOILER_ATTR.search(attrs) and not _CONTENT_ATTR.search(attrs):
            el.drop_tree()
