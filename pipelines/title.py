"""The headline: explicit title fields, the on-page heading the <title> contains, and
site-name suffixes cut from <title> and og:title.
"""

from __future__ import annotations

import re

from cyz.text import nospace, squash

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
