"""What the crawler remembers between runs about each article URL.

One SQLite file, `<data_dir>/crawl_state.sqlite3`, keyed by canonical URL: the
validators the site gave (ETag, Last-Modified) for conditional re-fetches, the hash of
the body and the pipeline version that processed it (so an unchanged page is not
extracted again unless the pipeline improved), and when the page went away.

`record_fetch` is called by the store pipeline only after the record is safely in the
index, so a crash or an engine outage between fetch and store means the page is
fetched and extracted again next time rather than lost.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
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
    gone_at          TEXT
);
CREATE INDEX IF NOT EXISTS pages_source ON pages(source_id);
"""


def body_hash(body: bytes) -> str:
    return hashlib.sha1(body).hexdigest()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


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
        row = self.db.execute(
            "SELECT canonical_url, url, source_id, etag, last_modified, content_hash,"
            " pipeline_version, last_status, first_seen, last_fetched, gone_at"
            " FROM pages WHERE canonical_url = ?",
            (canonical_url,),
        ).fetchone()
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
        new ones are given; any successful fetch clears `gone_at` (the page is back)."""
        when = fetched_at or _now()
        self.db.execute(
            """
            INSERT INTO pages (canonical_url, url, source_id, etag, last_modified,
                               content_hash, pipeline_version, last_status, first_seen,
                               last_fetched, gone_at)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL)
            ON CONFLICT(canonical_url) DO UPDATE SET
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
             pipeline_version, status, when, when),
        )

    def mark_gone(self, canonical_url: str, when: str | None = None, *,
                  status: int = 404) -> bool:
        """Mark a known page gone (first time only: `gone_at` keeps the first date).
        Returns False when the URL was never seen."""
        cur = self.db.execute(
            "UPDATE pages SET gone_at = COALESCE(gone_at, ?), last_status = ?,"
            " last_fetched = ? WHERE canonical_url = ?",
            (when or _now(), status, when or _now(), canonical_url),
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
