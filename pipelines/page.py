"""The per-page pipeline: raw page → article record (extract, normalize, language, tags,
events).

`cyz extract`, the crawl and `cyz reextract` all go through `build_record`, so a page
gives the same record however it arrives. It is a plain function over bytes so that the
crawl can later run it in worker processes.
"""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

from cyz.config import Source
from cyz.pipelines.decode import decode_html
from cyz.pipelines.events import extractor_for
from cyz.pipelines.extract import Extracted, extract_html, extract_text
from cyz.pipelines.language import detect_language
from cyz.pipelines.script import detect_script, to_simplified
from cyz.pipelines.sniff import sniff_page
from cyz.pipelines.tag import Tagger, default_tagger
from cyz.record import PIPELINE_VERSION, TEXT_LIMIT, article_id
from cyz.urls import canonical_url


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def build_record(
    body: bytes,
    url: str,
    *,
    source: Source | None = None,
    http_charset: str | None = None,
    fetched_at: str | None = None,
    tagger: Tagger | None = None,
) -> dict:
    """Run the whole per-page pipeline on one fetched HTML page."""
    html, _encoding = decode_html(body, http_charset, source.encoding if source else None)
    extracted = extract_html(html, url, body_selector=source.body_selector if source else None,
                             fetched=_parse_iso(fetched_at))
    return _assemble(extracted, url, source, fetched_at, tagger)


def record_from_text(text: str, url: str, *, source: Source | None = None,
                     tagger: Tagger | None = None) -> dict:
    """The same pipeline for text that was already extracted (a saved `.txt` page)."""
    return _assemble(extract_text(text, url), url, source, None, tagger)


def record_from_file(body: bytes, url: str, name: str = "", *, source: Source | None = None,
                     tagger: Tagger | None = None) -> dict:
    """A saved file, by what it holds: an HTML page, or plain text taken as already
    extracted (a `.txt` file always is). Raises NotAPage for binary data or Markdown."""
    if sniff_page(body, name) == "html":
        return build_record(body, url, source=source, tagger=tagger)
    text, _encoding = decode_html(body)  # the same charset detection as pages
    return record_from_text(text, url, source=source, tagger=tagger)


def _assemble(ex: Extracted, url: str, source: Source | None, fetched_at: str | None,
              tagger: Tagger | None) -> dict:
    canonical = canonical_url(url) if "://" in url else url
    text, truncated = cap_text(ex.text)
    sample = f"{ex.title}\n{text}"
    record = {
        "id": article_id(canonical),
        "url": url,
        "source_id": source.id if source else "",
        "source_name": source.name if source else "",
        "source_kind": source.kind if source else "",
        "source_region": source.region if source else "",
        "title": ex.title,
        "text": text,
        "text_truncated": truncated,
        "title_zh": to_simplified(ex.title),
        "text_zh": to_simplified(text)[:TEXT_LIMIT],
        "published_at": ex.published_at,
        "published_from": ex.published_from,
        # A list or section index reached as an article: the crawl counts it and does not
        # index it; `cyz extract --json` shows why.
        "is_article": ex.not_article is None,
        "not_article_reason": ex.not_article,
        "crawled_at": fetched_at or now_iso(),
        "gone_at": None,
        "language": detect_language(sample),
        "script": detect_script(sample),
        "origin": ex.origin,
        "author": ex.author,
        "editor": ex.editor,
        "cluster_id": None,
        "is_first_in_cluster": True,
        "organizations": [],
        "events": [],
        "event_types": [],
        "pipeline_version": PIPELINE_VERSION,
        # Of the clean text, so a page whose chrome changed keeps its hash.
        "content_hash": hashlib.sha1(text.encode("utf-8")).hexdigest(),
    }
    return tag_record(record, tagger)


def tag_record(record: dict, tagger: Tagger | None = None) -> dict:
    """Fill a record's `regions`, `topics`, `events`, `event_types` and `relevance` from its
    simplified title and text (and `published_at`, which dates the events)."""
    tagger = tagger or default_tagger()
    events = extractor_for(tagger.topic).extract(
        record.get("title_zh", ""), record.get("text_zh", ""), record.get("published_at"))
    record["events"] = events
    record["event_types"] = sorted({event["type"] for event in events})
    return tagger.tag(record)  # relevance counts the events


# How far back from the limit a paragraph or sentence end is looked for.
_CUT_WINDOW = 2_000
_SENTENCE_END = re.compile(r"[。！？!?…；;.](?:[”’」』）)\]])*")


def cap_text(text: str, limit: int = TEXT_LIMIT) -> tuple[str, bool]:
    """`text` cut to at most `limit` characters, and whether it was cut.

    The cut falls at the last paragraph end, else sentence end, within the last
    `_CUT_WINDOW` characters before the limit, so the stored text does not stop
    mid-sentence; failing both, at the limit.
    """
    if len(text) <= limit:
        return text, False
    head = text[:limit]
    floor = limit - _CUT_WINDOW
    newline = head.rfind("\n", floor)
    if newline > 0:
        return head[:newline].rstrip(), True
    ends = [m.end() for m in _SENTENCE_END.finditer(head, floor)]
    return head[:ends[-1]] if ends else head, True


def _parse_iso(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None
