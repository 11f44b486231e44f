"""The engine interface every index backend implements (sqlite, elasticsearch, opensearch).

Records are plain dicts with the keys of `cyz.record.Article`. Engines own storage and
search; query *syntax* is parsed once in `cyz.index.query` and handed to them as a tree.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from cyz.index.query import Query


@dataclass
class Filters:
    """Filters shared by search, count, iteration and export."""

    regions: list[str] = field(default_factory=list)  # any of these in record["regions"][].name
    regions_all: bool = False  # True: every one of `regions`, not any (cooperation *between*)
    topics: list[str] = field(default_factory=list)  # any of these topic ids
    cluster_ids: list[str] = field(default_factory=list)  # any of these reprint clusters
    sources: list[str] = field(default_factory=list)  # any of these source ids
    source_prefix: str | None = None  # e.g. "demo-" for `cyz demo --clean`
    since: date | None = None  # published_at on or after (Asia/Shanghai calendar day)
    until: date | None = None  # published_at on or before
    # records an older pipeline made: pipeline_version < N (a record without one counts as 0)
    pipeline_below: int | None = None
    # written by an engine at or after this instant (`indexed_at`, ISO 8601 UTC): what
    # alert rules have not seen yet
    indexed_since: str | None = None


def indexed_now() -> str:
    """The `indexed_at` stamp an engine gives the records it writes now."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def stale_filter(source_ids: list[str] | None = None) -> Filters:
    """The records an older pipeline produced (of `source_ids`): `cyz index status`
    counts them, the crawl and `cyz reextract --stale` bring them up to date."""
    from cyz.record import PIPELINE_VERSION

    return Filters(sources=list(source_ids or []), pipeline_below=PIPELINE_VERSION)


@dataclass
class EventFilters:
    """Filters of `cyz events` (and of alert rules on events), the same on every engine."""

    since: date | None = None  # the event's date range reaches this day or later
    until: date | None = None  # the event's date range starts on or before this day
    types: list[str] = field(default_factory=list)  # any of these event types
    regions: list[str] = field(default_factory=list)  # any of these in regions[].name
    party: str | None = None  # a substring of one of the parties (simplified, any case)
    planned: bool | None = None  # True: only planned; False: only done; None: both
    source_prefix: str | None = None  # only happenings reported by these sources


@dataclass
class EventResult:
    total: int
    events: list[dict]  # `cyz.record.Happening` dicts, newest event date first


SORTS = ("best", "relevance", "date")


@dataclass
class SearchRequest:
    query: Query
    filters: Filters = field(default_factory=Filters)
    limit: int = 20
    offset: int = 0
    # best: text score blended with the article's `relevance` and recency (the default);
    # relevance: the article's `relevance` first; date: newest first
    sort: str = "best"


@dataclass
class Hit:
    record: dict
    score: float
    snippet: str  # in the page's own script; matches wrapped in SNIPPET_MARK


@dataclass
class SearchResult:
    total: int
    hits: list[Hit]


# Matches in snippets are marked the same way by every engine.
SNIPPET_MARK = ("【", "】")


class Engine(ABC):
    """An index of article records."""

    name: str = "?"

    @abstractmethod
    def init(self) -> None:
        """Create tables/indices if missing (idempotent)."""

    def ensure_ready(self) -> None:
        """`init`, failing when the index cannot be used now (`cyz index init`); engines
        that spool while unreachable override it."""
        self.init()

    def admin_init(self) -> None:
        """`cyz index init`: create or update what the index needs, failing when it
        cannot be used now. The search engines do it with the admin credentials
        (docs/roles.md); elsewhere it is `ensure_ready`."""
        self.ensure_ready()

    def check_writable(self) -> None:
        """The start-up check of `cyz schedule` (and of `cyz crawl` on a search engine):
        raise, with one line naming what to fix, unless the index can be reached and
        written with the configured credentials now. Writes no record."""
        self.ensure_ready()

    @abstractmethod
    def write(self, records: Iterable[dict]) -> int:
        """Insert or replace records by `id` (each validated against `cyz.record.Article`:
        an invalid one is a ValueError and nothing is written); returns how many were
        written. The happenings (`cyz.index.events`) follow: the records' old reports
        leave them, their events join or start happenings."""

    @abstractmethod
    def get(self, record_id: str) -> dict | None: ...

    @abstractmethod
    def search(self, request: SearchRequest) -> SearchResult: ...

    @abstractmethod
    def count(self, filters: Filters | None = None) -> int: ...

    @abstractmethod
    def delete(self, ids: Iterable[str]) -> int:
        """Delete articles by id; their reports leave their happenings, and a happening
        left with no report is deleted. Returns how many articles were deleted."""

    @abstractmethod
    def iter_records(self, filters: Filters | None = None) -> Iterator[dict]:
        """Every matching record, in no particular order (export, reextract, --clean)."""

    # -- happenings (cyz.record.Happening dicts; see cyz.index.events) ---------------

    @abstractmethod
    def search_events(self, filters: EventFilters | None = None, limit: int = 50,
                      offset: int = 0) -> EventResult:
        """Happenings matching `filters`, newest first: by `date_from` descending (an
        undated one by the Asia/Shanghai day of its `first_reported_at`), then `event_id`.

        `since`/`until` keep happenings whose [date_from, date_to] (undated: that day)
        reaches the window; `regions` any of `regions[].name` (traditional accepted);
        `party` a case-insensitive substring of one of the (simplified) parties;
        `source_prefix` any report's `source_id`."""

    @abstractmethod
    def count_events(self, filters: EventFilters | None = None) -> int: ...

    @abstractmethod
    def iter_events(self, filters: EventFilters | None = None) -> Iterator[dict]:
        """Every matching happening, newest first (`cyz export --events`)."""

    def status(self) -> dict:
        """What `cyz index status` shows."""
        return {"engine": self.name, "articles": self.count(), "events": self.count_events()}

    def migrate(self, drop_old: bool = False, progress=None) -> dict:
        """Bring the index to the current mapping; engines without versions do it in init()."""
        self.init()
        return {}

    def refresh(self) -> None:
        """Make writes visible to search (end of a run); a no-op where writes are immediate."""

    def close(self) -> None:
        """Release connections."""

    def newest_by_source(self) -> dict[str, dict]:
        """{source_id: {"articles": n, "newest_published_at": ISO or None}} over every
        stored article (`cyz index status`). This reads every record; engines override
        it with one aggregate query."""
        out: dict[str, dict] = {}
        for record in self.iter_records():
            entry = out.setdefault(record["source_id"],
                                   {"articles": 0, "newest_published_at": None, "_ts": None})
            entry["articles"] += 1
            stamp = _instant(record.get("published_at"))
            if stamp is not None and (entry["_ts"] is None or stamp > entry["_ts"]):
                entry["_ts"], entry["newest_published_at"] = stamp, record["published_at"]
        for entry in out.values():
            del entry["_ts"]
        return out


def _instant(published: str | None) -> datetime | None:
    """`published_at` as an instant (naive: Beijing time, by the record contract)."""
    if not published:
        return None
    try:
        moment = datetime.fromisoformat(published)
    except ValueError:
        return None
    return moment if moment.tzinfo else datetime.fromisoformat(published + "+08:00")
