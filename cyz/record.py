"""The article record: what every pipeline stage fills in and every engine stores.

Records travel as plain dicts (JSON keys as DESIGN.md lists them) so that they pass
between processes and into engines without conversion; `Article` documents and
validates the shape where a boundary needs it.
"""

from __future__ import annotations

import hashlib
import re
from datetime import date, timedelta, timezone
from functools import lru_cache
from typing import Literal

from pydantic import BaseModel, Field, ValidationError

# The office's time: Asia/Shanghai, a fixed +08:00 since 1991 (no tz database needed).
SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")

# Bump when the per-page pipeline changes what it produces; `cyz reextract` and the
# incremental crawl use it to decide which stored records are stale.
PIPELINE_VERSION = 4  # 2: cooperation events; 3: extraction on unseen pages (dates, titles,
# credits); 4: a credit label inside a noun (摄影队, 记者站) names no author, a photo
# credit is the author only when nobody else is named

# The stored body text stops here (a 9 MB page once made a 3.2 M-character record);
# `text_truncated` says so on the record.
TEXT_LIMIT = 200_000


class RegionCount(BaseModel):
    name: str
    count: int


EventType = Literal["agreement", "visit", "project", "conference", "policy", "transport", "other"]
EVENT_TYPES: tuple[str, ...] = EventType.__args__
DatePrecision = Literal["day", "month", "year"]


class Event(BaseModel):
    """One cooperation event as one article tells it (a *mention*; `cyz events` shows
    happenings, which merge the mentions of every report of the same event)."""

    type: EventType
    # ISO day, month or year ("2024-12-04", "2024-07", "2024"), as precise as the text;
    # a range (4月20日至22日, 上旬) also has `date_end`, in the same precision.
    date: str | None = None
    date_end: str | None = None
    date_precision: DatePrecision | None = None
    parties: list[str] = Field(default_factory=list)  # who signed, visited, invested
    places: list[str] = Field(default_factory=list)  # gazetteer places the event names
    regions: list[str] = Field(default_factory=list)  # those places and the cities above them
    amount_yuan: float | None = None  # 136.8亿元 → 13680000000.0
    amount_approx: bool = False  # 近/超/余/约: the number is a bound or a round figure
    count: int | None = None  # 23个项目: how many projects/agreements, not money
    sentence: str = ""  # the evidence, as the (simplified) text has it
    planned: bool = False  # 计划/拟/将…: announced or intended, not yet done
    key: str = ""  # the key phrase (e.g. 全面深化合作框架协议): what merging compares
    rule: str = ""  # the event rule of topic.yaml that fired, and its trigger word
    trigger: str = ""



class RegionName(BaseModel):
    name: str


class Report(BaseModel):
    """One article that told a happening."""

    article_id: str
    url: str
    source_id: str
    source_name: str = ""
    origin: str | None = None  # the outlet named by 来源, when the page names one
    title: str = ""
    published_at: str | None = None
    cluster_id: str | None = None  # reprints of one story share it
    event_index: int = 0  # which of the article's `events` told it


class Happening(BaseModel):
    """One cooperation event with every report of it: a document of `cyz-events`, a row
    of the SQLite engine's events table, an entry of `cyz events --json`.

    Its event fields are those of its best-described mention; its article fields
    (`article_id` … `published_at`) are the first report's, so Kibana's panels on
    events share field names with the articles' (`regions.name`, `event_types`,
    `source_id`, `published_at`) and one filter works on both.
    """

    event_id: str  # stable: derived from the first mention that created it
    type: EventType
    event_types: list[EventType]  # [type]
    date: str | None = None
    date_end: str | None = None
    date_precision: DatePrecision | None = None
    date_from: str | None = None  # first and last calendar day the date can mean
    date_to: str | None = None  # (2024-07 → 2024-07-01 … 2024-07-31): filters and order
    parties: list[str] = Field(default_factory=list)
    places: list[str] = Field(default_factory=list)
    regions: list[RegionName] = Field(default_factory=list)
    amount_yuan: float | None = None
    amount_approx: bool = False
    count: int | None = None
    sentence: str = ""
    planned: bool = False
    key: str = ""
    reports: list[Report] = Field(default_factory=list)
    report_count: int = 0
    outlets: list[str] = Field(default_factory=list)  # distinct origin (else source name)
    first_reported_at: str | None = None
    article_id: str = ""
    url: str = ""
    title: str = ""
    source_id: str = ""
    source_name: str = ""
    published_at: str | None = None

class Article(BaseModel):
    id: str
    url: str
    source_id: str
    source_name: str = ""
    source_kind: str = ""
    source_region: str = ""
    title: str = ""
    text: str = ""
    text_truncated: bool = False  # `text` (and `text_zh`) stop at TEXT_LIMIT characters
    title_zh: str = ""
    text_zh: str = ""
    published_at: str | None = None
    # Which evidence gave `published_at` (meta:<name>, byline, text, url, state, htmldate,
    # relative): when a date looks wrong, this says where to look on the page.
    published_from: str | None = None
    crawled_at: str | None = None
    # When the record last changed: its title or text (the first crawl's `crawled_at`
    # until they do), or what a newer pipeline derives from the page (`cyz reextract`);
    # `version` counts the page's contents: 1 for a new article, +1 per edit.
    updated_at: str | None = None
    version: int = 1
    # When an engine last wrote the record (UTC; set by the engine, never by the crawl):
    # alert rules see what was indexed since their last run, spooled records included.
    indexed_at: str | None = None
    gone_at: str | None = None
    language: str | None = None
    script: str | None = None
    origin: str | None = None
    author: str | None = None
    editor: str | None = None
    cluster_id: str | None = None
    is_first_in_cluster: bool = True
    regions: list[RegionCount] = Field(default_factory=list)
    organizations: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)
    relevance: float = 0.0
    events: list[Event] = Field(default_factory=list)
    event_types: list[str] = Field(default_factory=list)
    pipeline_version: int = PIPELINE_VERSION
    content_hash: str | None = None


_ISO_DAY = re.compile(r"(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?")


@lru_cache(maxsize=8192)  # the same few dates recur across an article and a batch
def _span(text: str | None) -> tuple[date, date] | None:
    """The first and last day an ISO day, month or year can mean."""
    match = _ISO_DAY.match(text or "")
    if not match:
        return None
    year, month, day = (int(g) if g else None for g in match.groups())
    try:
        if month is None:
            return date(year, 1, 1), date(year, 12, 31)
        if day is None:
            first = date(year, month, 1)
            following = date(year + month // 12, month % 12 + 1, 1)
            return first, following - timedelta(days=1)
        return date(year, month, day), date(year, month, day)
    except ValueError:  # 2024-13, 2024-02-30: no date rather than a wrong one
        return None


def date_range(value: str | None, end: str | None = None) -> tuple[date, date] | None:
    """The first and last day an event's `date` (and its `date_end`) can mean: 2024-07 →
    07-01…07-31; 2024 → the whole year; 2024-04-20 to 2024-04-22 → those three days."""
    first = _span(value)
    if first is None:
        return None
    last = _span(end)
    return first[0], last[1] if last and last[1] >= first[0] else first[1]


def article_id(canonical_url: str) -> str:
    """Stable id of an article: a hash of its canonical URL."""
    return hashlib.sha1(canonical_url.encode("utf-8")).hexdigest()[:20]


def validate_article(record: dict) -> dict:
    """The record as the `Article` contract has it (defaults filled in, unknown keys
    dropped), checked where records enter an engine. An invalid record is a ValueError
    naming the record and the fields at fault."""
    try:
        return Article.model_validate(record).model_dump()
    except ValidationError as exc:
        rid = record.get("id") if isinstance(record, dict) else None
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'record'}: {error['msg']}"
            for error in exc.errors()[:5]
        )
        more = f" (and {exc.error_count() - 5} more)" if exc.error_count() > 5 else ""
        raise ValueError(f"invalid article record {rid!r}: {problems}{more}") from None
