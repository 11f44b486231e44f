"""The headline: explicit title fields, the on-page heading the <title> contains, and
site-name suffixes cut from <title> and og:title.
"""

from __future__ import annotations

import re

from lxml import etree

from cyz.pipelines import rules
from cyz.text import nospace, squash

# Separators between a headline and the site's name. A bare hyphen between two ASCII
# letters or digits is part of a name ("TF-E2", "COVID-19"), not a separator.
_TITLE_SEP = re.compile(
    r"\s*(?:_{1,2}|\|{1,2}|｜|--|—{1,2}|–|\s-\s|(?<![A-Za-z0-9])-(?=[^-]*$)|-(?=[^-]*$)(?![A-Za-z0-9])|::)\s*"
)
_SITE_WORDS = re.compile(
    r"网|網|新闻|新聞|政府|频道|頻道|日报|日報|晚报|晨报|报社|門戶|门户|中心|官网|官方|首页|首頁|"
    r"在线|在線|客户端|平台|电视台|電視台|广播|传媒|傳媒|时报|時報|周刊|资讯|資訊|财经|財經|科技|"
    r"\.com|\.cn|\.net|The Paper|^[A-Za-z .]+$"
)
# Names of offices and sites: a <title> that is only such a name does not name the article.
_ORG_NAME = re.compile(r"(?:局|委|办|辦|厅|廳|部|院|政府|网|網|站|中心|门户|門戶|报|報|台|社|协会|協會|集团|集團)$")
# Elements that hold a headline by their name: h1–h3 and class/id words title, tit, bt
# (matched by libxml2 in one pass over the tree).
_HEADLINE_XPATH = etree.XPath(
    "//h1 | //h2 | //h3 | //body//*[not(self::h1 or self::h2 or self::h3) and re:test("
    "concat(' ', @class, ' ', @id, ' '), '[ _-]([a-z]*title|tit|bt|biaoti|headline|heading)[ _-]', 'i')]",
    namespaces={"re": "http://exslt.org/regular-expressions"})
_DATE_LINE = re.compile(r"(?:19|20)\d{2}\s*[-/.年]\s*\d{1,2}\s*[-/.月]\s*\d{1,2}|\d{1,2}-\d{1,2}\s+\d{1,2}:\d{2}")


def strip_site_suffix(title: str, site_name: str | None = None) -> str:
    """`title` without the site's name after it."""
    title = squash(title)
    site = squash(site_name)
    if site and title != site and title.endswith(site) and rules.on("title.site_name"):
        # The site's own name, with the separator before it, whatever that separator is.
        rest = title[: -len(site)].rstrip()
        stripped = re.sub(r"(?:_{1,2}|\|{1,2}|｜|-{1,2}|—{1,2}|–|::)$", "", rest).rstrip()
        if stripped != rest and len(nospace(stripped)) >= 4:
            return stripped
    parts = _TITLE_SEP.split(title)
    while len(parts) > 1:
        last = parts[-1].strip()
        if (site and last and last in site) or (len(last) <= 20 and _SITE_WORDS.search(last)) \
                or len(last) <= 4:
            parts.pop()
            continue
        break
    # Leading site names ("明日股市预测--标题") are handled by the on-page headline match.
    cleaned = title[: title.find(parts[-1]) + len(parts[-1])] if parts else title
    return cleaned.strip() or title


def _looks_like_a_name(title: str, site_name: str | None) -> bool:
    """A <title> that names the site or office rather than the article."""
    key = nospace(title)
    if not key:
        return True
    if site_name and key == nospace(site_name):
        return True
    return len(key) <= 16 and not _TITLE_SEP.search(title) and bool(
        _ORG_NAME.search(key) or _SITE_WORDS.search(key))


def headline_texts(doc) -> list[str]:
    """Texts of the elements that hold a headline by their name: h1–h3 and class/id
    words title, tit, bt. Read before hidden elements are dropped (some templates hide
    the full headline and show a shortened one)."""
    found = _HEADLINE_XPATH(doc)
    return [text for text in (squash(el.text_content()) for el in found) if text]


def line_above_date(lines: list[str]) -> str | None:
    """The line right above the first short date line: where pages print the headline."""
    for i, line in enumerate(lines[1:], start=1):
        if len(line) <= 80 and _DATE_LINE.search(line):
            above = lines[i - 1]
            key = nospace(above)
            if 6 <= len(key) <= 80 and not _DATE_LINE.search(above) and not re.search(r"[。：:]$", key):
                return above
            return None
    return None


def pick_title(doc, meta: dict[str, str], script_vars: dict[str, str],
               headlines: list[str], lines: list[str]) -> str:
    """The headline as the page shows it.

    Candidates: explicit title fields, the <title>, og:title, headline elements (h1–h3,
    class/id title/tit/bt: `headlines`) and the line above the date line (`lines`: the
    page's text lines). An on-page candidate the <title> contains wins (the <title> adds
    the site's name); a <title> that is only a site or office name gives way to a
    headline element above the date line (a section heading in the <h1> does not).
    """
    head_title = squash(doc.findtext(".//title") or "")
    head_key = nospace(head_title)
    site_name = meta.get("og:site_name") or meta.get("application-name")
    explicit = [meta.get("articletitle"), script_vars.get("msg_title")]
    for value in explicit:
        if value and len(nospace(value)) >= 4:
            return squash(value)
    candidates = list(headlines)
    for value in (meta.get("og:title"), meta.get("twitter:title")):
        if value:
            candidates.append(squash(value))
    above = line_above_date(lines)
    if above:
        candidates.append(above)
    # An on-page headline that the <title> contains.
    best = ""
    if head_key and rules.on("title.headline_in_title"):
        for text in candidates:
            key = nospace(text)
            if len(key) < 4 or len(key) > 200:
                continue
            if key in head_key and len(key) >= 0.4 * len(head_key) and len(key) > len(nospace(best)):
                best = text
    if best:
        return best
    is_headline = above and nospace(above) in {nospace(text) for text in headlines}
    if is_headline and rules.on("title.above_date") and _looks_like_a_name(head_title, site_name):
        return above
    for value in (meta.get("og:title"), meta.get("twitter:title")):
        if value and len(nospace(value)) >= 4:
            return strip_site_suffix(value, site_name)
    if head_title:
        return strip_site_suffix(head_title, site_name)
    return headlines[0] if headlines else ""
