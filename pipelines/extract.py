"""Article extraction for Chinese news and government pages.

Two candidates for the body: a text-density scorer of our own (paragraph scores by
Chinese text length and punctuation, propagated to ancestors, discounted by link
density, helped by generic CMS container names) and trafilatura; they are compared
by character-bigram agreement. The chosen text then goes through Chinese line rules:
byline/来源/编辑 lines become metadata, share/related/copyright tails are cut,
link lists and county-name spam are dropped.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass
from datetime import datetime

import lxml.html
from lxml import etree

from cyz.pipelines.dates import find_published, parse_date
from cyz.text import HAN, HAN_UNIFIED_CHARS

# ---------------------------------------------------------------- text helpers

PUNCT = re.compile(r"[，。；！？、：,;“”]")
SENTENCE_END = re.compile(r"[。！？!?；…”」』）)]$")
WS = re.compile(r"[\s\u3000\xa0\u200b\ufeff]+")


@dataclass
class Extracted:
    title: str
    text: str                 # clean body, one paragraph per line, original script
    published_at: str | None  # ISO 8601 with offset
    origin: str | None        # outlet named by 来源, or the self-media account
    author: str | None        # 作者/记者
    editor: str | None        # 责任编辑/编辑/审发 (first named)


def squash(text: str | None) -> str:
    """Collapse whitespace runs to one space and strip."""
    return WS.sub(" ", text or "").strip()


def nospace(text: str | None) -> str:
    return WS.sub("", text or "")


# ---------------------------------------------------------------- line rules

_META_LABELS = {
    "origin": r"来源|來源|稿源|信息来源|信息來源|文章来源|文章來源|出处|出處|转自|轉自|转载自|轉載自",
    "editor": r"责任编辑|責任編輯|责编|責編|编辑|編輯|审发|審發|审核|審核|审校|審校|校对|校對|"
              r"终审|終審|初审|初審|复审|複審|监制|監製|主编|主編|值班编辑|值班編輯|美编|美編|"
              r"编审|編審|签发|簽發|核稿",
    "author": r"作者|记者|記者|通讯员|通訊員|撰稿|撰文|文字|文图|文圖|图文|圖文|摄影|攝影|"
              r"实习生|實習生|特约记者|特約記者|本报记者|本報記者|口述|整理|翻译|翻譯|文|图|圖",
}
_ALL_LABELS = "|".join(_META_LABELS.values())


def _label_pattern(labels: str) -> re.Pattern:
    # Single-character labels (文, 图) need a boundary before them; longer ones are
    # distinctive enough to be found glued to a date ("14:07来源：...").
    longs = "|".join(x for x in labels.split("|") if len(x) > 1)
    shorts = "|".join(x for x in labels.split("|") if len(x) == 1)
    alternatives = f"(?:{longs})"
    if shorts:
        alternatives = f"(?:{longs}|(?:(?<=^)|(?<=[\\s【\\[（(|｜丨]))(?:{shorts}))"
    return re.compile(
        alternatives + r"\s*(?:[:：丨|/]\s*|\s+|(?=[^\s:：]))"
        r"(?P<value>[^\s:：|｜丨]{1,30}(?:\s[^\s:：|｜丨]{1,10}){0,3})"
    )


_LABEL_RE = {key: _label_pattern(labels) for key, labels in _META_LABELS.items()}
_TRAILING_LABEL = re.compile(r"(?:" + "|".join(
    x for x in _ALL_LABELS.split("|") if len(x) > 1) + r")$")
# Values that name no outlet.
_NO_ORIGIN = re.compile(r"^(?:本站|本网|本網|本站原创|本站原創|原创|原創|网络|網絡|互联网|互聯網|未知|佚名|"
                        r"综合|綜合|网友投稿|admin|管理员)$", re.IGNORECASE)
# A whole line that is only a byline/credit: "(责编：秦洁、张祎)", "[責任編輯:劉昌餘 黃勇 ]".
_META_LINE = re.compile(
    r"^[【\[（(]?\s*(?:" + "|".join(_META_LABELS.values()) + r")\s*[:：丨|/]"
)
_OTHER_META_LINE = re.compile(
    r"^[【\[（(]?\s*(?:原标题|原標題|原文标题|原文链接|原文鏈接|本文来源|本文來源|本文作者|"
    r"本文转载自|本文轉載自|点击量|點擊量|浏览次数|瀏覽次數|阅读量|閱讀量|字号|字號|"
    r"发布时间|發布時間|发布日期|發佈日期|发表时间|更新时间|时间|時間|日期|索引号|索引號|"
    r"信息分类|主题分类|发文机关|成文日期|发布机构|文号|文號|标签|標籤|关键词|關鍵詞|"
    r"分享|打印|关闭|關閉|收藏|字体|字體|阅读|閱讀|评论|評論)\s*[:：]"
)
# Lines from where the rest of the page is not the article.
_TAIL_START = re.compile(
    r"^[\s【\[（(<>·•▼▲►■□◆◇●○★☆-]*(?:往期推荐|往期回顾|往期回顧|往期精选|往期精彩|往期|推荐阅读|推薦閱讀|"
    r"相关阅读|相關閱讀|相关新闻|相關新聞|相关文章|相關文章|相关链接|相關鏈接|相关推荐|相關推薦|延伸阅读|"
    r"延伸閱讀|热门推荐|熱門推薦|精彩推荐|精彩推薦|猜你喜欢|猜你喜歡|为你推荐|為你推薦|更多精彩|"
    r"扫一扫|掃一掃|扫描二维码|掃描二維碼|长按识别|長按識別|长按二维码|分享到|分享至|纠错|糾錯|我要纠错|"
    r"举报|舉報|验证码|驗證碼|本周热榜|热榜|熱榜|热门文章|熱門文章|上一篇|下一篇|上一条|下一条|"
    r"版权声明|版權聲明|免责声明|免責聲明|版权所有|版權所有|copyright|©|\(c\)|"
    r"打印本页|打印本頁|关闭窗口|關閉窗口|【打印】|【关闭】|点击进入|點擊進入|返回顶部|返回頂部|"
    r"网友评论|網友評論|发表评论|發表評論|我来说两句|热点推荐|今日推荐|阅读原文|閱讀原文|"
    r"特别声明|特別聲明|声明：|聲明：|end$|—\s*end\s*—|-\s*end\s*-)",
    re.IGNORECASE,
)
_TAIL_ANY_LENGTH = re.compile(r"^[\s【\[（(]*(?:免责声明|免責聲明|版权声明|版權聲明|特别声明|特別聲明|copyright|©)",
                              re.IGNORECASE)
_TAIL_PHRASE = re.compile(
    r"^[\s【\[（(<>·•▼▲►■□◆◇●○★☆-]*(?:往期推荐|往期回顾|往期回顧|推荐阅读|推薦閱讀|相关阅读|相關閱讀|"
    r"相关新闻|相關新聞|相关文章|相關文章|相关链接|相關鏈接|延伸阅读|延伸閱讀|扫一扫|掃一掃|扫描二维码|"
    r"掃描二維碼|长按识别|長按識別|分享到|分享至|上一篇|下一篇|版权所有|版權所有|打印本页|关闭窗口)"
)
_MORE_LINK = re.compile(r"(?:【详细】|【詳細】|\[详细\]|\[詳細\]|更多\s*>>|详细>>|>>更多)$")
_NAV_LINE = re.compile(
    r"^(?:首页|首頁|当前位置|當前位置|您的位置|你的位置|您现在的位置|现在位置)\s*[:：>＞]|"
    r"(?:>>|＞＞|»)\s*正文$|^正文$|^(?:返回首页|返回首頁|返回列表|返回)$|^[\w\s]{0,12}(?:>|＞|»)"
    r"[\w\s]{0,12}(?:>|＞|»)"
)
_DATE_ONLY = re.compile(
    r"^[\s\[【（(]*(?:发布时间|發布時間|发布日期|时间|時間|日期)?[:：\s]*"
    r"(?:(?:19|20)\d{2}[-/.年]\d{1,2}[-/.月]\d{1,2}日?|\d{1,2}[-/]\d{1,2})"
    r"(?:\s*\d{1,2}[:：]\d{2}(?:[:：]\d{2})?)?(?:\s*星期.)?[\s\]】）)]*$"
)
_IMAGE_NAME = re.compile(r"^\S+\.(?:jpe?g|png|gif|webp|bmp)$", re.IGNORECASE)
_PINYIN = re.compile(
    rf"(?<=[{HAN_UNIFIED_CHARS}])\((?=[a-zü]*[āáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜ])[a-zāáǎàēéěèīíǐìōóǒòūúǔùǖǘǚǜü]{{1,7}}\)"
)
_MOJIBAKE_Q = re.compile(r"(?<=[^\x00-\x7f])[?\ufffd]|[?\ufffd](?=[^\x00-\x7f])")
_LIST_SPLIT = re.compile(r"\s*[|｜丨]\s*")
_PLACE_SUFFIX = re.compile(r"(?:省|市|县|縣|区|區|旗|州|盟|镇|鎮|乡|鄉)$")


def strip_pinyin(line: str) -> str:
    """進(jìn) -> 進: pronunciation residue left by annotated pages."""
    return _PINYIN.sub("", line)


def is_mojibake(line: str) -> bool:
    """Lines garbled by a wrong decode: question marks/replacement characters among Han."""
    bad = len(_MOJIBAKE_Q.findall(line)) + line.count("\ufffd")
    if bad == 0:
        return False
    han = len(HAN.findall(line)) or 1
    # One stray "?" is a typo or a half-width question mark; several among Han
    # characters are the trace of a wrong decode.
    return bad >= 4 or (bad >= 3 and bad / han > 0.02)


def is_list_spam(line: str) -> bool:
    """'阿城市| 航空| 永登县| ...': separator-joined lists of short names."""
    items = [i for i in _LIST_SPLIT.split(line.strip(" |｜丨")) if i]
    if len(items) < 4:
        return False
    short = [i for i in items if len(i) <= 8 and not PUNCT.search(i)]
    return len(short) >= 0.8 * len(items)


def is_place_list(line: str) -> bool:
    items = [i for i in re.split(r"[\s、,，|｜丨]+", line) if i]
    if len(items) < 5:
        return False
    places = [i for i in items if len(i) <= 6 and _PLACE_SUFFIX.search(i)]
    return len(places) >= 0.7 * len(items)


def _clean_value(value: str, first_token: bool = False) -> str | None:
    value = value.strip(" \t:：,，;；。.、|｜丨/()（）[]【】<>《》\"'")
    # The value ends where the next label starts ("证券时报网作者：李在山").
    value = re.split(r"\s{2,}|(?:" + _ALL_LABELS + r")\s*[:：]", value)[0]
    value = _TRAILING_LABEL.sub("", value)
    value = re.sub(r"[\[【（(][^\]】）)]*[\]】）)]?$", "", value).strip()
    if first_token:
        value = value.split(" ")[0]
    value = re.sub(r"(?:19|20)\d{2}[-/.年].*$", "", value).strip(" :：,，")
    if not value or len(value) > 30 or re.search(r"[，。；！？：,;]", value):
        return None
    return value


def metadata_from_line(line: str) -> dict[str, str]:
    """Fields named on a short byline/credit line."""
    found: dict[str, str] = {}
    if len(line) > 120:
        return found
    for key, pattern in _LABEL_RE.items():
        for match in pattern.finditer(line):
            if key == "origin" and re.search(r"(?:图片|圖片|图|圖|照片|视频|視頻)\s*$", line[:match.start()]):
                continue  # a picture credit, not the article's outlet
            value = _clean_value(match.group("value"), first_token=key == "origin")
            if value and not (key == "origin" and _NO_ORIGIN.match(value)):
                found[key] = value
                break
    return found


def is_meta_line(line: str) -> bool:
    """A byline/credit/date line that belongs to the record, not the body."""
    if len(line) > 80 or "。" in line[:-1]:
        return False
    if _META_LINE.match(line) or _OTHER_META_LINE.match(line):
        return True
    if _DATE_ONLY.match(line):
        return True
    # "2024-05-18 09:18:17  来源:贵州日报", "发布时间：… 来源：… 作者：…"
    labelled = sum(1 for p in _LABEL_RE.values() if p.search(line))
    has_date = bool(re.search(r"(?:19|20)\d{2}[-/.年]\d{1,2}|\d{1,2}-\d{1,2}\s+\d{1,2}:\d{2}", line))
    return labelled >= 2 or (labelled and has_date) or (labelled and len(line) <= 30
                                                         and not SENTENCE_END.search(line))


@dataclass
class Line:
    text: str
    link_chars: int = 0
    heading: bool = False


def _is_story_line(ln: Line) -> bool:
    key = nospace(ln.text)
    return (len(key) >= 40 and bool(re.search(r"[。！？]", key)) and ln.link_chars < 0.3 * len(key)
            and not _TAIL_START.match(key) and not _MORE_LINK.search(key))


def _story_follows(lines: list[Line], index: int) -> bool:
    """Two story paragraphs right after a credit line: the credit sits mid-article."""
    following = [ln for ln in lines[index + 1:index + 6] if nospace(ln.text)][:2]
    return len(following) == 2 and all(_is_story_line(ln) for ln in following)


def apply_line_rules(lines: list[Line], title: str = "") -> tuple[list[str], dict[str, str]]:
    """Body lines and metadata fields from raw lines in reading order."""
    fields: dict[str, str] = {}
    title_key = nospace(title)
    total = sum(len(nospace(ln.text)) for ln in lines) or 1
    seen_chars = 0
    out: list[str] = []
    for index, ln in enumerate(lines):
        text = strip_pinyin(squash(ln.text))
        key = nospace(text)
        seen_chars += len(key)
        if not key:
            continue
        if is_meta_line(text):
            found = metadata_from_line(text)
            for name, value in found.items():
                fields.setdefault(name, value)
            # The editor credit closes an article; what follows is the site's.
            if "editor" in found and out and seen_chars > 0.5 * total and not _story_follows(lines, index):
                break
            continue
        # Short markers ("举报", "往期") end the article only as lines of their own; a
        # longer line must open with an unambiguous phrase ("相关阅读：…", "版权声明…").
        if _TAIL_START.match(text) and (len(key) <= 12 or (len(key) <= 60 and _TAIL_PHRASE.match(text))
                                        or _TAIL_ANY_LENGTH.match(text)):
            # An early share bar or toolbar is dropped; past the lead it ends the article.
            if out and seen_chars > 0.3 * total or sum(len(o) for o in out) > 200:
                break
            continue
        if _NAV_LINE.search(text) and len(key) < 60:
            continue
        if _MORE_LINK.search(text):
            continue
        if _IMAGE_NAME.match(text) or is_mojibake(text) or is_list_spam(text) or is_place_list(text):
            continue
        if title_key and (key == title_key or (len(key) >= 6 and key in title_key and not out)):
            continue
        if ln.link_chars and ln.link_chars >= 0.6 * len(key) and len(key) < 120:
            continue  # link lines: related headlines, tags, navigation
        out.append(text)
    return out, fields


# ---------------------------------------------------------------- HTML parsing

_DROP_TAGS = ("script", "style", "noscript", "template", "iframe", "svg", "select", "button",
              "input", "textarea", "object", "embed", "canvas", "audio", "video", "map")
_BLOCK_TAGS = {
    "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "li", "ul", "ol", "dl", "dd", "dt", "tr",
    "td", "th", "table", "tbody", "thead", "blockquote", "section", "article", "figure",
    "figcaption", "pre", "center", "header", "footer", "main", "aside", "nav", "form",
    "fieldset", "address", "caption", "hr", "br",
}
_HEADINGS = {"h1", "h2", "h3", "h4", "h5", "h6"}
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
_HIDDEN = re.compile(r"display\s*:\s*none", re.IGNORECASE)


def _attrs(el) -> str:
    return f"{el.get('class', '')} {el.get('id', '')}"


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
            if name in _BLOCK_TAGS and not (broke and not between.strip()):
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
            for item in data if isinstance(data, list) else [data]:
                if isinstance(item, dict) and item.get("datePublished"):
                    found.setdefault("datepublished", str(item["datePublished"]))
    return found


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
    for el in list(doc.iter(*_DROP_TAGS)):
        el.drop_tree()
    for el in list(doc.iter()):
        if not isinstance(el.tag, str) or el.getparent() is None:
            continue
        if _HIDDEN.search(el.get("style", "")) and len(HAN.findall(el.text_content())) < 2000:
            el.drop_tree()


def _own_text(el) -> tuple[str, int]:
    """Inline text of `el` (not inside nested blocks) and how much of it is in links."""
    parts = [el.text or ""]
    link = 0
    for child in el:
        if not isinstance(child.tag, str):
            parts.append(child.tail or "")
            continue
        if child.tag in _BLOCK_TAGS:
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
        if not isinstance(el.tag, str) or el.tag in _DROP_TAGS:
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
        block = tag in _BLOCK_TAGS
        if block:
            flush()
        if tag in _HEADINGS:
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


def _prune_boilerplate(node) -> None:
    """Drop share bars, related lists and the like nested inside the body container."""
    for el in list(node.iter()):
        if el is node or not isinstance(el.tag, str) or el.getparent() is None:
            continue
        attrs = _attrs(el)
        if _BOILER_ATTR.search(attrs) and not _CONTENT_ATTR.search(attrs):
            el.drop_tree()


# ---------------------------------------------------------------- title

_TITLE_SEP = re.compile(r"\s*(?:_{1,2}|\|{1,2}|｜|--|—{1,2}|–|\s-\s|-(?=[^-]*$)|::)\s*")
_SITE_WORDS = re.compile(
    r"网|網|新闻|新聞|政府|频道|頻道|日报|日報|晚报|晨报|报社|門戶|门户|中心|官网|官方|首页|首頁|"
    r"在线|在線|客户端|平台|电视台|電視台|广播|传媒|傳媒|时报|時報|周刊|资讯|資訊|财经|財經|科技|"
    r"\.com|\.cn|\.net|The Paper|^[A-Za-z .]+$"
)


def strip_site_suffix(title: str, site_name: str | None = None) -> str:
    title = squash(title)
    parts = _TITLE_SEP.split(title)
    while len(parts) > 1:
        last = parts[-1].strip()
        if (site_name and last and last in site_name) or (len(last) <= 20 and _SITE_WORDS.search(last)) \
                or len(last) <= 4:
            parts.pop()
            continue
        break
    # Leading site names ("明日股市预测--标题") are handled by the on-page headline match.
    cleaned = title[: title.find(parts[-1]) + len(parts[-1])] if parts else title
    return cleaned.strip() or title


def pick_title(doc, meta: dict[str, str], script_vars: dict[str, str]) -> str:
    head_title = squash(doc.findtext(".//title") or "")
    head_key = nospace(head_title)
    explicit = [meta.get("articletitle"), script_vars.get("msg_title")]
    for value in explicit:
        if value and len(nospace(value)) >= 4:
            return squash(value)
    # An on-page headline that the <title> contains (h1 first, then title-ish blocks).
    best = ""
    if head_key:
        candidates = list(doc.iter("h1", "h2", "h3"))
        candidates += doc.xpath(
            "//*[contains(translate(@class,'TITLE','title'),'title') or "
            "contains(translate(@id,'TITLE','title'),'title')]"
        )
        candidates_text = [squash(el.text_content()) for el in candidates]
        for value in (meta.get("og:title"), meta.get("twitter:title")):
            if value:
                candidates_text.append(squash(value))
        for text in candidates_text:
            key = nospace(text)
            if len(key) < 4 or len(key) > 200:
                continue
            if key in head_key and len(key) >= 0.4 * len(head_key) and len(key) > len(nospace(best)):
                best = text
    if best:
        return best
    for value in (meta.get("og:title"), meta.get("twitter:title")):
        if value and len(nospace(value)) >= 4:
            return strip_site_suffix(value, meta.get("og:site_name"))
    if head_title:
        return strip_site_suffix(head_title, meta.get("og:site_name"))
    h1 = next((squash(h.text_content()) for h in doc.iter("h1") if squash(h.text_content())), "")
    return h1


# ---------------------------------------------------------------- origin

_SELF_MEDIA_KEYS = ("nickname", "user_name")
_ORIGIN_META = ("source", "og:source", "article:source", "contentsource", "mediaid", "media",
                "copyright_source")


def page_lines(doc) -> list[str]:
    """All text lines of the page, inline elements spaced (info bars)."""
    root = doc.find("body") if doc.find("body") is not None else doc
    return [t for t in (squash(ln.text) for ln in node_lines(root, spaced=True)) if t]


def _header_lines(doc, body, title: str, text_lines: list[str] | None = None) -> list[str]:
    """Page lines from the headline up to the start of the body (date/来源 lines live there)."""
    if text_lines is None:
        text_lines = page_lines(doc)
    body_lines = [nospace(ln.text) for ln in node_lines(body)]
    body_first = next((t for t in body_lines if len(t) >= 20), None)
    title_key = nospace(title)
    start = 0
    if title_key:
        for i, t in enumerate(text_lines):
            key = nospace(t)
            if key == title_key or (len(key) >= 6 and key in title_key) or (
                    key.endswith(title_key) and len(key) <= len(title_key) + 6):
                start = i
                break
    end = len(text_lines)
    if body_first:
        for i in range(start, len(text_lines)):
            if nospace(text_lines[i]) == body_first:
                end = i
                break
    return text_lines[start:end][:40]


def _footer_lines(doc, body, limit: int = 8) -> list[str]:
    """The first short page lines after the body: CMS templates print 来源/责任编辑 there."""
    root = doc.find("body") if doc.find("body") is not None else doc
    text_lines = [t for t in (squash(ln.text) for ln in node_lines(root, spaced=True)) if t]
    body_keys = [nospace(ln.text) for ln in node_lines(body)]
    body_last = next((t for t in reversed(body_keys) if len(t) >= 10), None)
    if not body_last:
        return []
    for i in range(len(text_lines) - 1, -1, -1):
        if nospace(text_lines[i]) == body_last:
            return [t for t in text_lines[i + 1 : i + 1 + limit] if len(t) <= 60]
    return []


_ANY_DATE = re.compile(
    r"(?:19|20)\d{2}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}\s*日?(?:\s*\d{1,2}[:：]\d{2}(?:[:：]\d{2})?)?"
    r"|(?<!\d)\d{1,2}[-/月]\d{1,2}日?\s*\d{1,2}[:：]\d{2}(?:[:：]\d{2})?"
    # Relative labels stand where the date would on feeds and self-media pages.
    r"|刚刚|剛剛|(?<!\d)\d{1,3}\s*(?:秒|分钟|分鐘|小时|小時|个小时|個小時|天)前"
    r"|(?:今天|昨天|前天)(?:\s*\d{1,2}[:：]\d{2})?"
)
_FOLLOW = re.compile(r"[+＋]?\s*(?:关注|關注|订阅|訂閱)")
_NOT_OUTLET = re.compile(r"阅读|閱讀|评论|評論|分享|收藏|字号|字號|举报|舉報|关注|關注|浏览|瀏覽|点击|點擊|"
                         r"次|发布|發布|发表|發表|时间|時間|日期|星期|打印|纠错|[\d:：]{3,}")


def _plausible_outlet(token: str) -> bool:
    token = token.strip()
    return (2 <= len(token) <= 20 and not _NOT_OUTLET.search(token)
            and not re.search(r"[，。；！？,;!?]", token) and not token.isdigit()
            and bool(re.search(f"[{HAN_UNIFIED_CHARS}A-Za-z]", token)))


def origin_near_date(header: list[str]) -> str | None:
    """An unlabelled outlet or account next to the date line under the headline.

    Info bars often read "2019-09-26 10:56 证券时报网" or put the account name on its
    own line between the headline and the date.
    """
    for i, line in enumerate(header[:12]):
        if not _ANY_DATE.search(line):
            continue
        before = i - 1
        if before >= 2 and _FOLLOW.fullmatch(header[before].strip()):
            before -= 1  # "account / 关注 / date"
        if before >= 1:  # header[0] is the headline itself
            previous = header[before].strip()
            if _plausible_outlet(previous) and len(previous) <= 15 and not _ANY_DATE.search(previous):
                return previous
        rest = _ANY_DATE.sub(" ", line)
        rest = re.sub(r"[\[【（(][^\]】）)]*[\]】）)]", " ", rest)
        for token in re.split(r"[\s|｜丨/]+", rest):
            if _plausible_outlet(token) and not _NO_ORIGIN.match(token):
                return token
        return None
    # Self-media pages: the account name sits on its own line before a follow button.
    for i, line in enumerate(header[1:12], start=1):
        if _FOLLOW.fullmatch(line) and i >= 2:
            previous = header[i - 1].strip()
            if _plausible_outlet(previous) and len(previous) <= 15:
                return previous
    return None


# ---------------------------------------------------------------- trafilatura candidate

def trafilatura_lines(html: str, url: str | None) -> tuple[list[str], dict]:
    try:
        import trafilatura
        doc = trafilatura.bare_extraction(
            html, url=url, with_metadata=True, include_comments=False, include_tables=True,
            favor_precision=True,
        )
    except Exception:  # a broken page must not break extraction
        return [], {}
    if doc is None:
        return [], {}
    data = doc.as_dict() if hasattr(doc, "as_dict") else dict(doc)
    text = data.get("text") or ""
    return [ln for ln in text.splitlines() if ln.strip()], data


def bigrams(text: str) -> Counter:
    key = nospace(text)
    return Counter(key[i:i + 2] for i in range(len(key) - 1))


def overlap(a: Counter, b: Counter) -> float:
    """Share of `a`'s bigrams also in `b`."""
    total = sum(a.values())
    if not total:
        return 0.0
    return sum((a & b).values()) / total


# ---------------------------------------------------------------- entry points

_BODY_BYLINE = re.compile(r"[（(](?:本报)?(?:记者|記者|作者|文)\s*[:：]?\s*([^（）()]{2,20})[）)]")


def _byline_in_body(body: list[str], fields: dict[str, str]) -> None:
    """A closing "（记者 夏元）" names the author although it stays in the paragraph."""
    if "author" in fields:
        return
    for line in body[:2] + body[-3:]:
        match = _BODY_BYLINE.search(line)
        if match:
            value = _clean_value(match.group(1))
            if value:
                fields["author"] = value
                return

_DATE_LABEL = re.compile(r"^[\[【（(]?\s*(?:发布日期|發布日期|發佈日期|发布时间|發布時間|發佈時間|发表时间|發表時間|"
                         r"发文日期|時間|时间|日期)\s*[:：]?\s*$")


def labelled_dates(lines: list[str]) -> list[str]:
    """"发布日期：" in one cell and the date in the next (disclosure tables), joined."""
    found = []
    for label, value in zip(lines, lines[1:], strict=False):
        if _DATE_LABEL.match(label) and _ANY_DATE.match(value) and len(value) <= 30:
            found.append(f"{label}{value}")
    return found[:3]


def _finish(title: str, body: list[str], fields: dict[str, str], published: str | None) -> Extracted:
    return Extracted(
        title=title,
        text="\n".join(body),
        published_at=published,
        origin=fields.get("origin"),
        author=fields.get("author"),
        editor=fields.get("editor"),
    )


def extract_html(
    html: str,
    url: str | None = None,
    body_selector: str | None = None,
    fetched: datetime | None = None,
) -> Extracted:
    doc, html = parse_document(html)
    if doc is None:
        return Extracted("", "", None, None, None, None)
    meta = collect_meta(doc)
    script_vars = collect_script_vars(doc)
    title = pick_title(doc, meta, script_vars)
    state = script_state(doc)
    clean_tree(doc)

    body = choose_body(doc, body_selector)
    all_lines = page_lines(doc)
    header_lines = _header_lines(doc, body, title, all_lines)
    header = "\n".join(header_lines)
    # Time/date elements anywhere (some templates put the date under the article).
    dated = [squash(el.text_content()) for el in doc.xpath(
        "//*[re:test(concat(@class,' ',@id),'time|date|pub','i')]",
        namespaces={"re": "http://exslt.org/regular-expressions"})]
    dated = [t for t in dated if 6 <= len(t) <= 60] + labelled_dates(all_lines)
    _prune_boilerplate(body)
    lines = node_lines(body)
    ours, fields = apply_line_rules(lines, title)

    # Agreement with trafilatura: when our candidate is thin or disagrees badly, the
    # other one may have found the article.
    ours_text = "\n".join(ours)
    if len(nospace(ours_text)) < 200 and not body_selector:
        traf, _ = trafilatura_lines(html, url)
        traf_body, traf_fields = apply_line_rules([Line(t) for t in traf], title)
        if len(nospace("".join(traf_body))) > 2 * len(nospace(ours_text)):
            ours, fields = traf_body, {**traf_fields, **fields}

    # The info bar under the headline speaks for the page; body credits come second.
    header_fields: dict[str, str] = {}
    for line in header_lines:
        if len(line) <= 80:
            for name, value in metadata_from_line(line).items():
                header_fields.setdefault(name, value)
    fields = {**fields, **header_fields}
    for line in _footer_lines(doc, body):
        for name, value in metadata_from_line(line).items():
            fields.setdefault(name, value)
    if "origin" not in fields:
        for key in _ORIGIN_META:
            if meta.get(key) and len(meta[key]) <= 30:
                fields["origin"] = meta[key]
                break
    if "origin" not in fields:
        for key in _SELF_MEDIA_KEYS:
            if script_vars.get(key):
                fields["origin"] = script_vars[key]
                break
    if "origin" not in fields:
        near = origin_near_date(header_lines)
        if near:
            fields["origin"] = near
    if "author" not in fields:
        for key in ("article:author", "og:article:author", "author"):
            value = meta.get(key)
            if value and len(value) <= 20 and "@" not in value:
                fields["author"] = value
                break

    _byline_in_body(ours, fields)
    date_meta = dict(meta)
    if script_vars.get("ct"):
        date_meta["unix:ct"] = script_vars["ct"]
    if script_vars.get("datepublished"):
        date_meta.setdefault("datepublished", script_vars["datepublished"])
    for key in ("og:time", "og:time "):
        if key in meta:
            date_meta.setdefault("pubdate", meta[key])
    reference = fetched
    for key in ("article:modified_time", "og:updated_time", "dateupdate", "datemodified",
                "lastmodifiedtime", "weibo: article:update_at"):
        parsed = parse_date(meta.get(key, ""))
        if parsed:
            reference = parsed[0]  # published no later than modified
            break
    published = find_published(
        date_meta, header + "\n" + "\n".join(ours[:3]) + "\n" + "\n".join(dated[:10]), url,
        reference, context=html, state=state, title=title, fetched=fetched)
    return _finish(title, ours, fields, published)


def extract_text(text: str, url: str | None = None, fetched: datetime | None = None) -> Extracted:
    text = strip_pinyin(text or "")
    raw = [squash(t) for t in text.splitlines()]
    raw = [t for t in raw if t]
    if not raw:
        return Extracted("", "", None, None, None, None)
    title = ""
    # The title is the first line that is neither navigation nor a sentence.
    for i, first in enumerate(raw[:5]):
        if _NAV_LINE.search(first) or is_meta_line(first):
            continue
        if len(first) <= 100 and not re.search(r"[。，,；;：:]$", first):
            title = strip_site_suffix(first)
            raw = raw[:i] + raw[i + 1:]
        break
    # Header: lines before the first real paragraph carry the date line, 来源 and nav.
    # A salutation ("各县、…人民政府，市直有关单位：") or any sentence also opens the body.
    start = next((i for i, t in enumerate(raw) if (len(t) >= 40 and PUNCT.search(t)) or (
        len(t) >= 10 and re.search(r"[，。；！？]", t) and not is_meta_line(t))), 0)
    header = raw[:start]
    fields: dict[str, str] = {}
    for line in header:
        for name, value in metadata_from_line(line).items():
            fields.setdefault(name, value)
    body, body_fields = apply_line_rules([Line(t) for t in raw[start:]], title)
    for name, value in body_fields.items():
        fields.setdefault(name, value)
    _byline_in_body(body, fields)
    published = find_published({}, "\n".join(header + body[:3]) + "\n" + text, url, fetched,
                               fetched=fetched)
    return _finish(title, body, fields, published)
