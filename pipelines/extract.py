"""Article extraction for Chinese news and government pages: the orchestration.

One page goes through these steps, each in a module of its own:

- `document`: parse the page (repairing what breaks libxml2), read its meta tags and
  script variables, drop invisible and non-text elements;
- `title`: the headline;
- `body`: the block holding the article (text-density scores + generic CMS containers);
  `fallback` (trafilatura) when that block is thin;
- `lines`: Chinese line rules over the block: byline/来源/编辑 lines become metadata,
  share/related/copyright tails are cut, link lists and county-name spam are dropped;
- `byline`: the info bar under the headline and the credits after the body;
- `dates`: the publication time from all of the above.

Everything here is a pure function of one page: it runs in the crawl's worker processes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from cyz.pipelines import rules
from cyz.pipelines.body import choose_body, not_article_reason, prune_boilerplate
from cyz.pipelines.byline import byline_in_body, header_lines, labelled_dates, page_credits
from cyz.pipelines.dates import Published, decide_published, parse_date
from cyz.pipelines.document import (
    clean_tree,
    collect_meta,
    collect_script_vars,
    node_lines,
    page_lines,
    parse_document,
    script_state,
)
from cyz.pipelines.fallback import trafilatura_lines
from cyz.pipelines.lines import (
    NAV_LINE,
    PUNCT,
    Line,
    apply_line_rules,
    is_meta_line,
    metadata_from_line,
    photo_as_author,
    strip_pinyin,
)
from cyz.pipelines.title import headline_texts, pick_title, strip_site_suffix
from cyz.text import nospace, squash


@dataclass
class Extracted:
    title: str
    text: str                 # clean body, one paragraph per line, original script
    published_at: str | None  # ISO 8601 with offset
    origin: str | None        # outlet named by 来源, or the self-media account
    author: str | None        # 作者/记者
    editor: str | None        # 责任编辑/编辑/审发 (first named)
    published_from: str | None = None  # the evidence that won (see dates.Published)
    not_article: str | None = None  # why the page is a list or index, not an article


def _finish(title: str, body: list[str], fields: dict[str, str], published: Published) -> Extracted:
    return Extracted(
        title=title,
        text="\n".join(body),
        published_at=published.iso,
        published_from=published.evidence,
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
    state = script_state(doc)
    headlines = headline_texts(doc)
    clean_tree(doc)
    all_lines = page_lines(doc)
    title = pick_title(doc, meta, script_vars, headlines, all_lines)

    body = choose_body(doc, body_selector, title)
    header = header_lines(doc, body, title, all_lines)
    # Time/date elements anywhere (some templates put the date under the article).
    dated = [squash(el.text_content()) for el in doc.xpath(
        "//*[re:test(concat(@class,' ',@id),'time|date|pub','i')]",
        namespaces={"re": "http://exslt.org/regular-expressions"})]
    dated = [t for t in dated if 6 <= len(t) <= 60] + labelled_dates(all_lines)
    prune_boilerplate(body)
    lines = node_lines(body)
    ours, fields = apply_line_rules(lines, title)

    # Agreement with trafilatura: when our candidate is thin or disagrees badly, the
    # other one may have found the article.
    ours_text = "\n".join(ours)
    if len(nospace(ours_text)) < 200 and not body_selector and rules.on("extract.fallback"):
        traf, _ = trafilatura_lines(html, url)
        traf_body, traf_fields = apply_line_rules([Line(t) for t in traf], title)
        if len(nospace("".join(traf_body))) > 2 * len(nospace(ours_text)):
            ours, fields = traf_body, {**traf_fields, **fields}

    fields = page_credits(doc, body, header, ours, fields, meta, script_vars)
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
    published = decide_published(
        date_meta, "\n".join(ours[:3] + dated[:10]), url, reference, context=html,
        byline="\n".join(header), state=state, title=title, fetched=fetched, html=html)
    done = _finish(title, ours, fields, published)
    done.not_article = not_article_reason(doc, done.text)
    return done


def extract_text(text: str, url: str | None = None, fetched: datetime | None = None) -> Extracted:
    text = strip_pinyin(text or "")
    raw = [squash(t) for t in text.splitlines()]
    raw = [t for t in raw if t]
    if not raw:
        return Extracted("", "", None, None, None, None)
    title = ""
    # The title is the first line that is neither navigation nor a sentence.
    for i, first in enumerate(raw[:5]):
        if NAV_LINE.search(first) or is_meta_line(first):
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
    byline_in_body(body, fields)
    photo_as_author(fields)
    published = decide_published({}, "\n".join(body[:3]) + "\n" + text, url, fetched,
                                 byline="\n".join(header), fetched=fetched)
    return _finish(title, body, fields, published)
