"""Chinese line rules: what a line of page text is (byline, credit, date, share bar,
related-links tail, navigation, list spam) and the metadata it names.

Pure functions over strings; the extractor feeds them the lines of the chosen body
block in reading order (`apply_line_rules`), and single info-bar lines
(`metadata_from_line`, `is_meta_line`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from cyz.pipelines import rules
from cyz.text import HAN, HAN_UNIFIED_CHARS, nospace, squash

PUNCT = re.compile(r"[，。；！？、：,;“”]")
SENTENCE_END = re.compile(r"[。！？!?；…”」』）)]$")


_META_LABELS = {
    "origin": r"来源|來源|稿源|信息来源|信息來源|文章来源|文章來源|出处|出處|转自|轉自|转载自|轉載自",
    "editor": r"责任编辑|責任編輯|责编|責編|编辑|編輯|审发|審發|审核|審核|审校|審校|校对|校對|"
              r"终审|終審|初审|初審|复审|複審|监制|監製|主编|主編|值班编辑|值班編輯|美编|美編|"
              r"编审|編審|签发|簽發|核稿",
    "author": r"文/图|文／图|图/文|图／文|作者|记者|記者|通讯员|通訊員|撰稿|撰文|文字|文图|文圖|图文|圖文|"
              r"实习生|實習生|特约记者|特約記者|本报记者|本報記者|口述|整理|翻译|翻譯|文|图|圖",
    # A photographer is the author only when nobody else is named (`photo_as_author`).
    "photo": r"摄影师|攝影師|摄影|攝影",
}
_ALL_LABELS = "|".join(_META_LABELS.values())


# A label followed by these is part of a noun, not a credit: 摄影队, 记者站, 作者群, 编辑部.
_NOUN_SUFFIX = r"队|隊|站|部|组|組|群|团|團|协会|協會|家协会|師|师|节|節|展|大赛|大賽|作品|证|證"


def _label_pattern(labels: str) -> re.Pattern:
    # Single-character labels (文, 图) need a boundary before them; longer ones are
    # distinctive enough to be found glued to a date ("14:07来源：...").
    longs = "|".join(x for x in labels.split("|") if len(x) > 1)
    shorts = "|".join(x for x in labels.split("|") if len(x) == 1)
    # A short label also needs a separator after it: "文/张三", "图 李四", never "文化".
    alternatives = f"(?:(?:{longs})(?!{_NOUN_SUFFIX})\\s*(?:[:：丨|/]\\s*|\\s+|(?=[^\\s:：]))"
    if shorts:
        alternatives += f"|(?:(?<=^)|(?<=[\\s【\\[（(|｜丨]))(?:{shorts})\\s*(?:[:：丨|/]\\s*|\\s+))"
    else:
        alternatives += ")"
    return re.compile(
        alternatives + r"(?P<value>[^\s:：|｜丨]{1,30}(?:\s[^\s:：|｜丨]{1,10}){0,3})"
    )


_LABEL_RE = {key: _label_pattern(labels) for key, labels in _META_LABELS.items()}
_TRAILING_LABEL = re.compile(r"(?:" + "|".join(
    x for x in _ALL_LABELS.split("|") if len(x) > 1) + r")$")
# Values that name no outlet.
NO_ORIGIN = re.compile(r"^(?:本站|本网|本網|本站原创|本站原創|原创|原創|网络|網絡|互联网|互聯網|未知|佚名|"
                        r"综合|綜合|网友投稿|admin|管理员)$", re.IGNORECASE)
# A whole line that is only a byline/credit: "(责编：秦洁、张祎)", "[責任編輯:劉昌餘 黃勇 ]".
_META_LINE = re.compile(
    r"^[【\[（(]?\s*(?:" + "|".join(_META_LABELS.values()) + r")\s*[:：丨|/]"
)
# A credit in brackets: a line of its own, "（编辑 尹世杰）", or closing a paragraph,
# "…九起。（责任编辑：尹世杰）".
_CREDIT = r"[（(【\[]\s*(?:" + _ALL_LABELS + r")\s*[:：\s]\s*[^（）()【】\[\]]{1,30}[）)】\]]"
_BRACKETED_CREDIT = re.compile(r"^" + _CREDIT + r"$")
_CLOSING_CREDIT = re.compile(r"(?<=[。！？!?”」』])\s*" + _CREDIT + r"\s*$")
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
NAV_LINE = re.compile(
    r"^(?:首页|首頁|当前位置|當前位置|您的位置|你的位置|您现在的位置|现在位置)\s*[:：>＞]|"
    r"(?:>>|＞＞|»)\s*正文$|^正文$|^返回(?:\S{0,8}(?:首页|首頁|列表|顶部|頂部))?\s*(?:>>|＞＞|»)?$|"
    r"^[\w\s]{0,12}(?:>|＞|»)"
    r"[\w\s]{0,12}(?:>|＞|»)"
)
_DATE_ONLY = re.compile(
    r"^[\s\[【（(]*(?:发布时间|發布時間|发布日期|时间|時間|日期)?[:：\s]*"
    r"(?:(?:19|20)\d{2}[-/.年]\d{1,2}[-/.月]\d{1,2}日?|\d{1,2}[-/]\d{1,2})"
    r"(?:\s*\d{1,2}[:：]\d{2}(?:[:：]\d{2})?)?(?:\s*星期.)?[\s\]】）)]*$"
)
# Like buttons and counters left at the end of a body: "赞+1", "+1", "86人点赞".
WIDGET_LINE = re.compile(r"^(?:(?:点赞|點讚|赞|讚|顶|頂|踩|喜欢|喜歡|在看|收藏)\s*)?[+＋]\s*\d{1,3}$|"
                         r"^\d[\d,.万萬]*\s*(?:人|次)?\s*(?:点赞|點讚|赞过|讚過|喜欢|喜歡|在看|已赞|阅读|閱讀)$|"
                         r"^(?:点赞|點讚|赞|讚|分享|收藏|在看)(?:\s*\d[\d,.万萬]*)?$")
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


# The value ends where the next label starts: "证券时报网作者：李在山", "唐霁 通讯员 李明".
_NEXT_LABEL = re.compile(r"\s{2,}|(?:" + _ALL_LABELS + r")\s*[:：]|\s+(?:"
                         + "|".join(x for x in _ALL_LABELS.split("|") if len(x) > 1) + ")")
# Other fields of an info bar: a value ends where one of them starts ("作者：蒲茜 点击：").
_BAR_FIELD = re.compile(r"\s*(?:点击|點擊|浏览|瀏覽|阅读|閱讀|字号|字號|字体|字體|评论|評論|分享|打印|收藏|"
                        r"人气|人氣|次数|次數|热度|熱度)(?:\s|[:：(（]|$)")
# "本报记者蒲茜" under 作者: the role is not part of the name.
_ROLE_PREFIX = re.compile(r"^(?:本报|本報|本台|本刊|本网|本網|本站)?(?:特约|特約|实习|實習|首席)?"
                          r"(?:记者|記者|通讯员|通訊員)\s*")


# "唐霁 报道", "周斌 摄": what the person did, not their name.
_ROLE_SUFFIX = re.compile(r"\s*(?:报道|報道|摄影|攝影|摄|攝|采写|採寫|整理|编译|編譯|发自\S*|發自\S*)$")


def clean_value(value: str, first_token: bool = False) -> str | None:
    value = value.strip(" \t:：,，;；。.、|｜丨/()（）[]【】<>《》\"'")
    # The value ends where the next label starts ("证券时报网作者：李在山").
    value = _NEXT_LABEL.split(value)[0]
    value = _BAR_FIELD.split(value)[0]
    value = _ROLE_PREFIX.sub("", value)
    value = _ROLE_SUFFIX.sub("", value)
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
            value = clean_value(match.group("value"), first_token=key == "origin")
            if value and not (key == "origin" and NO_ORIGIN.match(value)):
                found[key] = value
                break
    return found


def photo_as_author(fields: dict[str, str]) -> dict[str, str]:
    """`fields` without the photo credit, which names the author only when no line or
    tag named one (a photo story): "摄影：产品经理" under a picture is not the writer."""
    photo = fields.pop("photo", None)
    if photo and "author" not in fields:
        fields["author"] = photo
    return fields


def is_meta_line(line: str) -> bool:
    """A byline/credit/date line that belongs to the record, not the body."""
    if len(line) > 80 or "。" in line[:-1]:
        return False
    if _META_LINE.match(line) or _OTHER_META_LINE.match(line) or _BRACKETED_CREDIT.match(line):
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
        closing = _CLOSING_CREDIT.search(text) if rules.on("lines.closing_credit") else None
        if closing:
            for name, value in metadata_from_line(closing.group().strip()).items():
                fields.setdefault(name, value)
            text = text[:closing.start()].rstrip()
        if is_meta_line(text):
            found = metadata_from_line(text)
            for name, value in found.items():
                fields.setdefault(name, value)
            # The editor credit closes an article; what follows is the site's.
            if "editor" in found and out and seen_chars > 0.5 * total and rules.on("lines.editor_ends") \
                    and not _story_follows(lines, index):
                break
            continue
        # Short markers ("举报", "往期") end the article only as lines of their own; a
        # longer line must open with an unambiguous phrase ("相关阅读：…", "版权声明…").
        if rules.on("lines.tail") and _TAIL_START.match(text) and (len(key) <= 12 or (len(key) <= 60 and _TAIL_PHRASE.match(text))
                                        or _TAIL_ANY_LENGTH.match(text)):
            # An early share bar or toolbar is dropped; past the lead it ends the article.
            if out and seen_chars > 0.3 * total or sum(len(o) for o in out) > 200:
                break
            continue
        if NAV_LINE.search(text) and len(key) < 60:
            continue
        if _MORE_LINK.search(text):
            continue
        if WIDGET_LINE.match(key) and rules.on("lines.widgets"):
            continue
        if _IMAGE_NAME.match(text) or is_mojibake(text) or is_list_spam(text) or is_place_list(text):
            continue
        if title_key and (key == title_key or (len(key) >= 6 and key in title_key and not out)):
            continue
        if ln.link_chars and ln.link_chars >= 0.6 * len(key) and len(key) < 120 and rules.on("lines.link_lines"):
            continue  # link lines: related headlines, tags, navigation
        out.append(text)
    return out, fields
