"""The info bar around the article: the header lines between headline and body, the
footer lines after it, and what they name (an unlabelled outlet beside the date, a
closing "（记者 …）" byline, a "发布日期" label with its date in the next cell).
"""

from __future__ import annotations

import re

from cyz.pipelines import rules
from cyz.pipelines.document import node_lines, page_lines
from cyz.pipelines.lines import NO_ORIGIN, clean_value, metadata_from_line, photo_as_author
from cyz.text import HAN_UNIFIED_CHARS, nospace, squash

SELF_MEDIA_KEYS = ("nickname", "user_name")
ORIGIN_META = ("source", "og:source", "article:source", "contentsource", "mediaid", "media",
                "copyright_source")


def header_lines(doc, body, title: str, text_lines: list[str] | None = None) -> list[str]:
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


def footer_lines(doc, body, limit: int = 8) -> list[str]:
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


ANY_DATE = re.compile(
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
        if not ANY_DATE.search(line):
            continue
        before = i - 1
        if before >= 2 and _FOLLOW.fullmatch(header[before].strip()):
            before -= 1  # "account / 关注 / date"
        if before >= 1:  # header[0] is the headline itself
            previous = header[before].strip()
            if _plausible_outlet(previous) and len(previous) <= 15 and not ANY_DATE.search(previous):
                return previous
        rest = ANY_DATE.sub(" ", line)
        rest = re.sub(r"[\[【（(][^\]】）)]*[\]】）)]", " ", rest)
        for token in re.split(r"[\s|｜丨/]+", rest):
            if _plausible_outlet(token) and not NO_ORIGIN.match(token):
                return token
        return None
    # Self-media pages: the account name sits on its own line before a follow button.
    for i, line in enumerate(header[1:12], start=1):
        if _FOLLOW.fullmatch(line) and i >= 2:
            previous = header[i - 1].strip()
            if _plausible_outlet(previous) and len(previous) <= 15:
                return previous
    return None


_BODY_BYLINE = re.compile(r"[（(](?:本报|本報)?(?:记者|記者|作者|文)\s*[:：]?\s*([^（）()]{2,20})[）)]")


def byline_in_body(body: list[str], fields: dict[str, str]) -> None:
    """An opening "本报讯（记者 夏元）" names the author although it stays in the paragraph."""
    if "author" in fields:
        return
    for line in body[:2] + body[-3:]:
        match = _BODY_BYLINE.search(line)
        if match:
            value = clean_value(match.group(1))
            if value:
                fields["author"] = value
                return


# Elements that hold the outlet by their name: class/id source, src, from, laiyuan, ly.
_SOURCE_ATTR = re.compile(r"(?:^|[\s_-])(?:source|src|from|laiyuan|ly|copyfrom|origin)(?:$|[\s_-])",
                          re.IGNORECASE)


def source_element(doc, header: list[str]) -> str | None:
    """The outlet an info-bar element names by its class ("<span class="a_source">棱镜"),
    when that element's text is in the header lines. A channel link beside the date
    ("金融市场") is not one."""
    header_text = nospace(" ".join(header[1:]))
    for el in doc.iter("span", "em", "i", "a", "div", "p", "font", "strong", "b"):
        if not _SOURCE_ATTR.search(f"{el.get('class', '')} {el.get('id', '')}"):
            continue
        text = squash(el.text_content())
        if not text or len(text) > 40 or nospace(text) not in header_text:
            continue
        labelled = metadata_from_line(text).get("origin")
        value = labelled or text
        if _plausible_outlet(value) and not NO_ORIGIN.match(value):
            return value
    return None


def page_credits(doc, body, header: list[str], body_lines: list[str], body_fields: dict[str, str],
                 meta: dict[str, str], script_vars: dict[str, str]) -> dict[str, str]:
    """origin, author and editor of the page, by order of trust.

    Labelled lines of the info bar under the headline first, then the body's own
    credits, then the lines after the body; for the outlet then meta tags, the
    self-media account, an info-bar element named for it, a plausible name beside the
    date; for the author then an opening "（记者 …）", then a meta tag. An author that
    only repeats the outlet is no author.
    """
    header_fields: dict[str, str] = {}
    for line in header:
        if len(line) <= 80:
            for name, value in metadata_from_line(line).items():
                header_fields.setdefault(name, value)
    fields = {**body_fields, **header_fields}
    for line in footer_lines(doc, body) if rules.on("byline.footer") else ():
        for name, value in metadata_from_line(line).items():
            fields.setdefault(name, value)
    if "origin" not in fields:
        for key in ORIGIN_META:
            if meta.get(key) and len(meta[key]) <= 30:
                fields["origin"] = meta[key]
                break
    if "origin" not in fields:
        for key in SELF_MEDIA_KEYS:
            if script_vars.get(key):
                fields["origin"] = script_vars[key]
                break
    if "origin" not in fields:
        found = (source_element(doc, header) if rules.on("byline.source_element") else None) or (
            origin_near_date(header) if rules.on("byline.near_date") else None)
        if found:
            fields["origin"] = found
    if fields.get("author") and fields["author"] == fields.get("origin"):
        del fields["author"]
    byline_in_body(body_lines, fields)
    if "author" not in fields:
        for key in ("article:author", "og:article:author", "author"):
            value = meta.get(key)
            if value and len(value) <= 20 and "@" not in value and value != fields.get("origin"):
                fields["author"] = value
                break
    return photo_as_author(fields)

_DATE_LABEL = re.compile(r"^[\[【（(]?\s*(?:发布日期|發布日期|發佈日期|发布时间|發布時間|發佈時間|发表时间|發表時間|"
                         r"发文日期|時間|时间|日期)\s*[:：]?\s*$")


def labelled_dates(lines: list[str]) -> list[str]:
    """"发布日期：" in one cell and the date in the next (disclosure tables), joined."""
    found = []
    for label, value in zip(lines, lines[1:], strict=False):
        if _DATE_LABEL.match(label) and ANY_DATE.match(value) and len(value) <= 30:
            found.append(f"{label}{value}")
    return found[:3]
