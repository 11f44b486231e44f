"""Which block of the page is the article: readability-style block scores (Chinese text
length and punctuation, propagated to ancestors, discounted by link density and by
boilerplate class names), generic CMS containers that agree with the scorer, and the
pruning of share bars and related lists nested inside the chosen block.
"""

from __future__ import annotations

import re

from lxml import etree

from cyz.pipelines import rules
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
# The hints by what they name, best first: one pass over the tree finds them all.
_HINT_RANK = {hint: rank for rank, hint in enumerate(CMS_HINTS)}
_HINT_XPATH = etree.XPath("//*[@id or @class] | //article")


def _cms_containers(doc) -> list:
    """Elements a CMS hint names, in the hints' order of preference."""
    found = []
    for el in _HINT_XPATH(doc):
        ranks = [_HINT_RANK.get(f"#{el.get('id')}"), _HINT_RANK.get(el.tag)]
        ranks += [_HINT_RANK.get(f".{name}") for name in (el.get("class") or "").split()]
        ranks = [r for r in ranks if r is not None]
        if ranks:
            found.append((min(ranks), el))
    found.sort(key=lambda pair: pair[0])  # stable: document order within one hint
    return [el for _, el in found]


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


def _wraps_one(node) -> bool:
    """`node` holds one element and no text of its own."""
    return len(node) == 1 and not (node.text or "").strip() and not (node[0].tail or "").strip()


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
            # Wrappers around one child (<section><section><p>…) are one level, not three:
            # they share the vote undiminished, so the article's container is not
            # out-voted by a single text-bearing block elsewhere.
            while node is not None and node.tag not in ("html", "body") and _wraps_one(node) \
                    and rules.on("body.wrappers"):
                scores[node] = scores.get(node, 0.0) + value * weight
                node = node.getparent()
    for node in list(scores):
        attrs = _attrs(node)
        factor = 1.0 - _link_density(node)
        if _BOILER_ATTR.search(attrs) and not _CONTENT_ATTR.search(attrs):
            factor *= 0.3
        scores[node] *= factor
    return scores


def _title_share(title_grams: set[str], text: str) -> float:
    if not title_grams:
        return 0.0
    key = nospace(text)
    return sum(1 for g in title_grams if g in key) / len(title_grams)


def _bigrams(text: str) -> set[str]:
    key = "".join(HAN.findall(text))
    return {key[i:i + 2] for i in range(len(key) - 1)}


def _guard_short_block(top, scores: dict, title: str):
    """A short prose block with no link (a market blurb, a notice in the sidebar) does not
    beat the article: when the top block is one short paragraph and another well-scored
    block is longer and tells the headline's words, that block wins."""
    text = top.text_content()
    han = len(HAN.findall(text))
    if han >= 400 or any(True for _ in top.iter("a")):
        return top
    grams = _bigrams(title)
    top_share = _title_share(grams, text)
    top_score = scores[top]
    related = set(top.iterancestors()) | set(top.iterdescendants())
    best, best_share = top, top_share + 0.2
    for node, score in sorted(scores.items(), key=lambda item: -item[1])[:12]:
        if node is top or node in related or score < 0.4 * top_score:
            continue
        node_text = node.text_content()
        if len(HAN.findall(node_text)) < 1.5 * han or _link_density(node) > 0.35:
            continue
        share = _title_share(grams, node_text)
        if share >= best_share:
            best, best_share = node, share
    return best


def choose_body(doc, body_selector: str | None = None, title: str = ""):
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
    if rules.on("body.short_block_guard"):
        top = _guard_short_block(top, scores, title)
    top_score = scores[top]
    # A generic CMS container that agrees with the scorer gives a cleaner boundary.
    if rules.on("body.cms_hints"):
        for el in _cms_containers(doc):
            han = len(HAN.findall(el.text_content()))
            if han < 50 or _link_density(el) > 0.35:
                continue
            inside = el is top or top in set(el.iterancestors()) or el in set(top.iterancestors())
            if inside:
                return el
    # A container that holds the article split over sibling blocks.
    parent = top.getparent()
    if parent is not None and parent in scores and parent.tag not in ("body", "html") \
            and rules.on("body.sibling_container"):
        siblings = [s for s in parent if s in scores and s is not top and scores[s] >= 0.3 * top_score]
        if siblings and scores[parent] >= 0.9 * top_score:
            return parent
    return top


def prune_boilerplate(node) -> None:
    """Drop share bars, related lists and the like nested inside the body container."""
    if not rules.on("body.prune"):
        return
    for el in list(node.iter()):
        if el is node or not isinstance(el.tag, str) or el.getparent() is None:
            continue
        attrs = _attrs(el)
        if _BOILER_ATTR.search(attrs) and not _CONTENT_ATTR.search(attrs):
            el.drop_tree()


# A date in a list item: "2024-11-05", "2024年11月5日", "11-05", "11月5日".
_ITEM_DATE = re.compile(r"(?:19|20)\d{2}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}|(?<!\d)\d{1,2}[-/月]\d{1,2}日?(?!\d)")


def dated_items(doc) -> int:
    """The longest run of list items (children of one element) that each hold one
    headline link (8–60 characters) and a date, in at most 100 characters."""
    best = 0
    for box in doc.iter("ul", "ol", "div", "table", "tbody", "dl", "section"):
        count = 0
        for item in box:
            if not isinstance(item.tag, str):
                continue
            text = item.text_content()
            if len(nospace(text)) > 100 or not _ITEM_DATE.search(text):
                continue
            links = [a for a in item.iter("a") if 8 <= len(nospace(a.text_content())) <= 60]
            count += len(links) == 1
        best = max(best, count)
    return best


def not_article_reason(doc, body_text: str) -> str | None:
    """Why the page is a list or section index rather than an article, or None.

    A list page's prose is at most a teaser (under 300 Han characters), and at least
    five dated headline items fill it. Short articles keep their place: a related-news
    box under a real article rarely reaches five dated items (three at most on the real
    and demo pages we test), and a long article is never judged by its lists.
    """
    prose = len(HAN.findall(body_text))
    if prose >= 300:
        return None
    items = dated_items(doc)
    if items >= 5:
        return f"a list page: {items} dated headline items beside {prose} characters of text"
    return None
