"""The raw HTML archive: every version of every fetched article page, compressed.

It lets `cyz reextract` bring old records up to a better pipeline without fetching
again (from each article's newest version), and `cyz history` show what an edited page
changed. One SQLite file (zlib-compressed blobs) rather than a file per page: atomic
writes, and no hundred-thousand-file directories under the data dir.

A version is a change in what the article says, not in its bytes: a page whose body is
byte-identical to the newest version never adds one, and neither does a body whose
extracted title and text are unchanged (TRS pages rewrite their 上一篇/下一篇 links
when the next article appears, news pages their "latest" boxes). Such a fetch leaves
the version with the bytes it was first seen with, so `fetched_at` of a version is when
that content first appeared and the bodies kept are the ones that differ in content.
"""

from __future__ import annotations

import hashlib
import sqlite3
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

ARCHIVE_FILE = "raw_pages.sqlite3"


@dataclass
class RawPage:
    id: str
    url: str
    source_id: str
    http_charset: str | None
    fetched_at: str  # when `body` was fetched: for a stored version, when its content appeared
    body: bytes
    # Of the title and text extracted from `body` (`text_hash`); decides whether a
    # changed body is a new version. None for pages archived before versions existed.
    text_hash: str | None = None
    version: int = 0  # set by the archive
    body_hash: str = ""  # of `body`, computed once: the archive compares it per page
    # `body` already compressed (`compress_body`) by whoever made the page; the crawl
    # then passes b"" as `body` with `body_hash` and this, and holds no raw body.
    compressed: bytes | None = None

    def __post_init__(self) -> None:
        if not self.body_hash:
            self.body_hash = _body_hash(self.body)


def text_hash(record: dict) -> str:
    """What decides whether an article changed: its extracted title and text."""
    return hashlib.sha1(f"{record['title']}\n{record['text']}".encode()).hexdigest()


def _body_hash(body: bytes) -> str:
    return hashlib.sha1(body).hexdigest()


# Level 1: half the CPU of the default for ~13% more bytes; this runs once per fetched page.
COMPRESSION_LEVEL = 1


def compress_body(body: bytes) -> bytes:
    """A body as the archive stores it (the crawl's extraction workers do this, so the
    crawl process only writes the bytes: `RawPage.compressed`)."""
    return zlib.compress(body, COMPRESSION_LEVEL)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    id           TEXT NOT NULL,
    version      INTEGER NOT NULL,
    url          TEXT NOT NULL,
    source_id    TEXT NOT NULL,
    http_charset TEXT,
    fetched_at   TEXT,
    body_hash    TEXT NOT NULL,
    text_hash    TEXT,
    body         BLOB NOT NULL,
    PRIMARY KEY (id, version)
);
CREATE INDEX IF NOT EXISTS versions_source ON versions(source_id);
"""
_COLUMNS = "id, version, url, source_id, http_charset, fetched_at, text_hash, body_hash, body"


class RawArchive:
    def __init__(self, data_dir: Path):
        self.db = sqlite3.connect(Path(data_dir) / ARCHIVE_FILE)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA busy_timeout=30000")  # a crawl may be writing
        self._migrate()

    def _migrate(self) -> None:
        """Create the versions table; an archive from before versions (`pages`, one row
        per article) becomes version 1 of each article, in place and in one transaction."""
        tables = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if "versions" in tables and "pages" not in tables:
            return  # current: no write lock needed just to open (`cyz history` reads only)
        self.db.create_function("cyz_body_hash", 1, lambda blob: _body_hash(zlib.decompress(blob)),
                                deterministic=True)
        self.db.execute("BEGIN IMMEDIATE")  # two processes opening an old archive: one migrates
        try:
            for statement in _SCHEMA.split(";"):
                if statement.strip():
                    self.db.execute(statement)
            if self.db.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'pages'"
                               ).fetchone():
                self.db.execute(
                    "INSERT INTO versions (id, version, url, source_id, http_charset, fetched_at, "
                    "body_hash, text_hash, body) SELECT id, 1, url, source_id, http_charset, "
                    "fetched_at, cyz_body_hash(body), NULL, body FROM pages")
                self.db.execute("DROP TABLE pages")
            self.db.execute("COMMIT")
        except BaseException:
            self.db.execute("ROLLBACK")
            raise

    def _newest(self, record_id: str) -> tuple[int, str, str, str | None] | None:
        """(version, fetched_at, body_hash, text_hash) of the newest version."""
        return self.db.execute(
            "SELECT version, fetched_at, body_hash, text_hash FROM versions WHERE id = ? "
            "ORDER BY version DESC LIMIT 1", (record_id,)).fetchone()

    def _place(self, page: RawPage) -> tuple[str, int, str]:
        """(what to do, the version `page` is, when that version was first fetched)."""
        newest = self._newest(page.id)
        if newest is None:
            return "add", 1, page.fetched_at
        version, fetched_at, body_hash, old_text_hash = newest
        if body_hash == page.body_hash:
            # The same bytes again (a pipeline upgrade re-extracted them): refresh the
            # text hash, so later comparisons use what the current pipeline extracts.
            return "same body", version, fetched_at
        if page.text_hash is not None and page.text_hash == old_text_hash:
            return "same text", version, fetched_at
        # A version archived before text hashes existed cannot be compared: a changed
        # body counts as a change (at most once per article).
        return "add", version + 1, page.fetched_at

    def version_of(self, page: RawPage) -> tuple[int, str]:
        """The version `page` is (or becomes once put) and when that version was first
        fetched: the record's `version` and `updated_at`."""
        _, version, since = self._place(page)
        return version, since

    def put_many(self, pages: list[RawPage]) -> None:
        with self.db:
            for page in pages:
                action, version, _ = self._place(page)
                if action == "add":
                    self.db.execute(
                        "INSERT INTO versions (id, version, url, source_id, http_charset, "
                        "fetched_at, body_hash, text_hash, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (page.id, version, page.url, page.source_id, page.http_charset,
                         page.fetched_at, page.body_hash, page.text_hash,
                         page.compressed if page.compressed is not None
                         else compress_body(page.body)))
                elif action == "same body" and page.text_hash is not None:
                    self.db.execute("UPDATE versions SET text_hash = ? WHERE id = ? AND version = ?",
                                    (page.text_hash, page.id, version))

    def get(self, record_id: str) -> RawPage | None:
        """The newest version of an article."""
        row = self.db.execute(f"SELECT {_COLUMNS} FROM versions WHERE id = ? "
                              "ORDER BY version DESC LIMIT 1", (record_id,)).fetchone()
        return self._page(row) if row else None

    def versions(self, record_id: str) -> list[RawPage]:
        """Every version of an article, oldest first."""
        rows = self.db.execute(f"SELECT {_COLUMNS} FROM versions WHERE id = ? ORDER BY version",
                               (record_id,))
        return [self._page(row) for row in rows]

    def iter_pages(self, source_ids: list[str] | None = None, *, chunk: int = 100) -> Iterator[RawPage]:
        """The newest version of every article (of `source_ids`), by id. Read in chunks,
        so the caller may write to the archive while iterating."""
        where, args = "", []
        if source_ids:
            where = f" AND source_id IN ({','.join('?' * len(source_ids))})"
            args = list(source_ids)
        after = ""
        while True:
            rows = self.db.execute(
                f"SELECT {_COLUMNS} FROM versions v WHERE id > ?{where} AND version = "
                "(SELECT MAX(version) FROM versions WHERE id = v.id) ORDER BY id LIMIT ?",
                [after, *args, chunk]).fetchall()
            for row in rows:
                yield self._page(row)
            if len(rows) < chunk:
                return
            after = rows[-1][0]

    def count(self, source_ids: list[str] | None = None) -> int:
        """How many articles (not versions) `iter_pages` would give."""
        where, args = "", []
        if source_ids:
            where = f" WHERE source_id IN ({','.join('?' * len(source_ids))})"
            args = list(source_ids)
        return self.db.execute(f"SELECT count(DISTINCT id) FROM versions{where}", args).fetchone()[0]

    def delete(self, ids: list[str]) -> None:
        """Remove every version of these articles."""
        with self.db:
            self.db.executemany("DELETE FROM versions WHERE id = ?", [(i,) for i in ids])

    @staticmethod
    def _page(row) -> RawPage:
        rid, version, url, source_id, charset, fetched_at, thash, bhash, body = row
        return RawPage(rid, url, source_id, charset, fetched_at, zlib.decompress(body),
                       text_hash=thash, version=version, body_hash=bhash)

    def close(self) -> None:
        self.db.close()
