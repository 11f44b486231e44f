"""What the crawler remembers between runs about each article URL.

One SQLite file, `<data_dir>/crawl_state.sqlite3`, keyed by canonical URL: the
validators the site gave (ETag, Last-Modified) for conditional re-fetches, the hash of
the body and the pipeline version that processed it (so an unchanged page is not
extracted again unless the pipeline improved), when the page went away, and since when
its content is known not to have changed (`unchanged_since`), from which the revisit
policy (`RevisitPolicy.due`) decides whether the page is asked again this run.

The revisit schedule is adaptive, after StormCrawler's AdaptiveScheduler and the HTTP
heuristic of RFC 9111 §4.2.2: a page that has stayed unchanged for N days is asked again
after N days (at least `first_days`, at most `max_days`), so a page kept unchanged is asked
after 1, 1, 2, 4, 8 … days, and one that changes is asked again after `first_days`.
"Unchanged since" starts at the page's Last-Modified date when the site gives one (an
article first seen a year after it was published is not asked again tomorrow), else at
the first fetch; it moves to the fetch time whenever the body changes, the page goes
away or comes back.

`record_fetch` is called by the store pipeline only after the record is safely in the
index, so a crash or an engine outage between fetch and store means the page is
fetched and extracted again next time rather than lost.
"""

from __future__ import annotations

import email.utils
import hashlib
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

STATE_FILE = "crawl_state.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pages (
    canonical_url    TEXT PRIMARY KEY,
    url              TEXT NOT NULL,
    source_id        TEXT NOT NULL,
    etag             TEXT,
    last_modified    TEXT,
    content_hash     TEXT,
    pipeline_version INTEGER,
    last_status      INTEGER,
    first_seen       TEXT NOT NULL,
    last_fetched     TEXT,
    gone_at          TEXT,
    unchanged_since  TEXT
);
CREATE INDEX IF NOT EXISTS pages_source ON pages(source_id);
"""
_COLUMNS = ("canonical_url, url, source_id, etag, last_modified, content_hash,"
            " pipeline_version, last_status, first_seen, last_fetched, gone_at,"
            " unchanged_since")

# A page is due a little before its interval has passed: a nightly run must find
# yesterday's pages due even when it reaches them earlier in the night than the last run
# did. A quarter of the interval, at most 12 hours.
DUE_SLACK_SHARE = 0.25
DUE_SLACK_MAX = timedelta(hours=12)
# Intervals are shortened by up to this share, by a fixed hash of the URL, so an archive
# first crawled in one night is not asked again all in one night.
SPREAD = 0.2


def body_hash(body: bytes) -> str:
    return hashlib.sha1(body).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def iso(when: datetime) -> str:
    return when.astimezone(UTC).isoformat(timespec="seconds")


def parse_time(value: str | None) -> datetime | None:
    """An ISO 8601 time as stored here (naive means UTC), or None."""
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def http_date(value: str | None) -> datetime | None:
    """A Last-Modified header value as an aware datetime, or None when absent or garbled."""
    if not value:
        return None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _unchanged_since(fetched_at: str, last_modified: str | None) -> str:
    """Since when a page first fetched at `fetched_at` is known unchanged: its
    Last-Modified date when the site gives a plausible one (not after the fetch), else the
    fetch itself."""
    fetched = parse_time(fetched_at)
    modified = http_date(last_modified)
    if fetched is None or modified is None or modified > fetched:
        return fetched_at
    return iso(modified)


def clock(now: str | datetime | None = None) -> Callable[[], datetime]:
    """The crawl's clock: the real time, or one that starts at `now` (tests and benchmarks
    simulate days passing with `CYZ_NOW`) and runs at the real pace from there."""
    if now is None or now == "":
        return lambda: datetime.now(UTC)
    start = now if isinstance(now, datetime) else parse_time(now)
    if start is None:
        raise ValueError(f"not an ISO 8601 date-time: {now!r}")
    start = start if start.tzinfo else start.replace(tzinfo=UTC)
    offset = start - datetime.now(UTC)
    return lambda: datetime.now(UTC) + offset


def _spread(canonical_url: str) -> float:
    """A fixed number in [0, 1) for a URL."""
    return int(hashlib.sha1(canonical_url.encode("utf-8")).hexdigest()[:8], 16) / 2**32


@dataclass(frozen=True)
class RevisitPolicy:
    """When a known article is asked again. `mode` adaptive: after as long as it has
    stayed unchanged, within [`first_days`, `max_days`]; always: every run; never: only
    by `cyz crawl --full`. (The config's `revisit` key validates into `cyz.config.Revisit`,
    which the spider turns into one of these.)"""

    mode: str = "adaptive"
    first_days: float = 1.0
    max_days: float = 30.0

    def interval(self, page: PageState) -> timedelta:
        """How long after its last fetch the page is asked again (adaptive mode)."""
        last = parse_time(page.last_fetched)
        since = parse_time(page.unchanged_since) or last
        stable = (last - since) if last and since and last > since else timedelta(0)
        days = min(self.max_days, max(self.first_days, stable / timedelta(days=1)))
        days = max(self.first_days, days * (1 - SPREAD * _spread(page.canonical_url)))
        return timedelta(days=days)

    def next_due(self, page: PageState) -> datetime | None:
        """When the page is due (None: now, whatever the time). A page never stored
        (no body hash) or never fetched is always due."""
        if self.mode == "always" or page.content_hash is None:
            return None
        last = parse_time(page.last_fetched)
        if last is None:
            return None
        if self.mode == "never":
            return datetime.max.replace(tzinfo=UTC)
        interval = self.interval(page)
        return last + interval - min(DUE_SLACK_MAX, interval * DUE_SLACK_SHARE)

    def due(self, page: PageState, now: datetime) -> bool:
        when = self.next_due(page)
        return when is None or now >= when


@dataclass(frozen=True)
class PageState:
    canonical_url: str
    url: str
    source_id: str
    etag: str | None
    last_modified: str | None
    content_hash: str | None
    pipeline_version: int | None
    last_status: int | None
    first_seen: str
    last_fetched: str | None
    gone_at: str | None
    unchanged_since: str | None = None

    def is_unchanged(self, content_hash: str, pipeline_version: int) -> bool:
        """True when this exact body was already processed by this pipeline version."""
        return (self.gone_at is None and self.content_hash == content_hash
                and self.pipeline_version is not None
                and self.pipeline_version >= pipeline_version)


class CrawlState:
    """Per-URL crawl memory in `<data_dir>/crawl_state.sqlite3` (WAL, one connection)."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / STATE_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db: sqlite3.Connection | None = None
        self.open()

    def open(self) -> None:
        if self._db is not None:
            return
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=NORMAL")
        db.executescript(_SCHEMA)
        _migrate(db)
        self._db = db

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def __enter__(self) -> CrawlState:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("CrawlState is closed")
        return self._db

    def get(self, canonical_url: str) -> PageState | None:
        row = self.db.execute(f"SELECT {_COLUMNS} FROM pages WHERE canonical_url = ?",
                              (canonical_url,)).fetchone()
        return PageState(*row) if row else None

    def conditional_headers(self, canonical_url: str) -> dict[str, str]:
        """If-None-Match / If-Modified-Since for a page fetched and stored before.

        A page that went away, or whose last fetch was not stored, gets none: it must
        come back in full."""
        page = self.get(canonical_url)
        if page is None or page.gone_at or page.content_hash is None:
            return {}
        headers = {}
        if page.etag:
            headers["If-None-Match"] = page.etag
        if page.last_modified:
            headers["If-Modified-Since"] = page.last_modified
        return headers

    def is_unchanged(self, canonical_url: str, content_hash: str, pipeline_version: int) -> bool:
        """True when this exact body was already processed by this pipeline version."""
        page = self.get(canonical_url)
        return page is not None and page.is_unchanged(content_hash, pipeline_version)

    def record_fetch(
        self,
        canonical_url: str,
        *,
        url: str,
        source_id: str,
        status: int = 200,
        etag: str | None = None,
        last_modified: str | None = None,
        content_hash: str | None = None,
        pipeline_version: int | None = None,
        fetched_at: str | None = None,
    ) -> None:
        """Remember a stored fetch. A 304 keeps the previous hash and validators unless
        new ones are given; any successful fetch clears `gone_at` (the page is back).

        `unchanged_since` (the revisit schedule): a new page's Last-Modified date, or the
        fetch time; kept while the body stays the same (a 304, or the same hash); the
        fetch time when the body changed or the page was gone."""
        when = fetched_at or _now()
        self.db.execute(
            """
            INSERT INTO pages (canonical_url, url, source_id, etag, last_modified,
                               content_hash, pipeline_version, last_status, first_seen,
                               last_fetched, gone_at, unchanged_since)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)
            ON CONFLICT(canonical_url) DO UPDATE SET
                unchanged_since = CASE
                    WHEN pages.gone_at IS NOT NULL
                      OR (excluded.content_hash IS NOT NULL
                          AND excluded.content_hash IS NOT pages.content_hash)
                    THEN excluded.last_fetched
                    ELSE COALESCE(pages.unchanged_since, excluded.unchanged_since) END,
                url = excluded.url,
                source_id = excluded.source_id,
                etag = COALESCE(excluded.etag, pages.etag),
                last_modified = COALESCE(excluded.last_modified, pages.last_modified),
                content_hash = COALESCE(excluded.content_hash, pages.content_hash),
                pipeline_version = COALESCE(excluded.pipeline_version, pages.pipeline_version),
                last_status = excluded.last_status,
                last_fetched = excluded.last_fetched,
                gone_at = NULL
            """,
            (canonical_url, url, source_id, etag, last_modified, content_hash,
             pipeline_version, status, when, when, _unchanged_since(when, last_modified)),
        )

    def mark_gone(self, canonical_url: str, when: str | None = None, *,
                  status: int = 404) -> bool:
        """Mark a known page gone (first time only: `gone_at` keeps the first date).
        Going away is a change for the revisit schedule; staying away is not.
        Returns False when the URL was never seen."""
        when = when or _now()
        cur = self.db.execute(
            "UPDATE pages SET unchanged_since = CASE WHEN gone_at IS NULL THEN ?"
            " ELSE COALESCE(unchanged_since, ?) END,"
            " gone_at = COALESCE(gone_at, ?), last_status = ?,"
            " last_fetched = ? WHERE canonical_url = ?",
            (when, when, when, status, when, canonical_url),
        )
        return cur.rowcount > 0

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Many writes, one commit (the store records a whole batch of fetches at once)."""
        self.db.execute("BEGIN")
        try:
            yield
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    def forget_sources(self, prefix: str) -> int:
        """Drop the memory of every page of sources whose id starts with `prefix`."""
        cur = self.db.execute("DELETE FROM pages WHERE substr(source_id, 1, ?) = ?",
                              (len(prefix), prefix))
        return cur.rowcount

    def known(self, canonical_url: str) -> bool:
        return self.get(canonical_url) is not None

    def count(self, source_id: str | None = None) -> int:
        if source_id is None:
            return self.db.execute("SELECT COUNT(*) FROM pages").fetchone()[0]
        return self.db.execute(
            "SELECT COUNT(*) FROM pages WHERE source_id = ?", (source_id,)).fetchone()[0]


def _migrate(db: sqlite3.Connection) -> None:
    """Bring a state file of an older cyz up to this schema, in place: `unchanged_since`
    (issue 15) is added and filled from what each row knows (its Last-Modified date, else
    its last fetch), so the first run after the upgrade already follows the schedule."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(pages)")}
    if "unchanged_since" in columns:
        return
    try:
        db.execute("ALTER TABLE pages ADD COLUMN unchanged_since TEXT")
    except sqlite3.OperationalError as exc:  # another connection migrated it meanwhile
        if "duplicate column" not in str(exc):
            raise
        return
    rows = db.execute("SELECT canonical_url, COALESCE(last_fetched, first_seen), last_modified"
                      " FROM pages WHERE unchanged_since IS NULL").fetchall()
    db.execute("BEGIN")
    try:
        db.executemany("UPDATE pages SET unchanged_since = ? WHERE canonical_url = ?",
                       [(_unchanged_since(fetched, modified), url)
                        for url, fetched, modified in rows])
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
