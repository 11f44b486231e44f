"""The embedded engine: one SQLite file with an FTS5 index over CJK bigram tokens.

`articles` keeps the columns filters and ranking need (narrow rows: a search reads them
for every match); `records` keeps each record as zlib-compressed JSON under the same
`doc` (read for the page of hits only; `decode_record`). `articles_fts` (rowid =
`articles.doc`) is a *contentless* FTS5 index of the token strings of `cyz.index.cjk` for
title and body: only the index is stored, never a second copy of the text.

Schema v5 made it so (v4 stored the token strings and the JSON text beside the index:
~36 KB an article). A contentless table forgets what it indexed, so replacing or deleting
a row first deletes the old tokens, re-derived from the stored record; that holds only
while the tokenizer is the one that indexed them, so `meta.fts_tokens` names it
(`TOKENS_VERSION`, the OpenCC and Unicode versions) and the index is rebuilt from the
records when it changes (on open, like a migration). Snippets are cut in Python from
the stored text of the page of hits (`_MatchFinder`), never by FTS5.

Schema v4 adds the columns search filters and ranks on (`relevance`, `topics`,
`cluster_id`); the order of results is `cyz.index.ranking`'s.

Schema v2 adds the happenings (`cyz.index.events`): `events` keeps each as JSON plus
its filter columns, `event_reports` says which articles (and reprint clusters) report
which happening; both are written in the same transaction as the articles.
"""

from __future__ import annotations

import importlib.metadata
import json
import math
import re
import sqlite3
import threading
import time
import unicodedata
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

from cyz.index import cjk, ranking
from cyz.index.base import (
    SNIPPET_MARK,
    Engine,
    EventFilters,
    EventResult,
    Filters,
    Hit,
    SearchRequest,
    SearchResult,
    indexed_now,
)
from cyz.index.events import (
    ARTICLE_FIELDS,
    CandidateLookup,
    Plan,
    candidate_lookup,
    plan,
    reported_articles,
    shanghai_day,
    touchable,
)
from cyz.index.query import Query, Term
from cyz.record import validate_article
from cyz.storage import storing

# Bump with a migration step in `_migrate` whenever the tables change.
SCHEMA_VERSION = 5

# Bump whenever `cyz.index.cjk` would tokenize a stored text differently: the FTS index is
# then rebuilt on open (its deletes need the tokens it indexed; see the module docstring).
TOKENS_VERSION = 1

# bm25 column weights: a match in the title counts five times one in the body.
TITLE_WEIGHT = ranking.TITLE_BOOST
TEXT_WEIGHT = 1.0

SNIPPET_CHARS = 120
SNIPPET_LEAD = 30  # characters shown before the first match

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS articles (
        doc          INTEGER PRIMARY KEY,
        id           TEXT NOT NULL UNIQUE,
        source_id    TEXT NOT NULL,
        published_at TEXT,
        pub_date     TEXT,     -- date part of published_at (the page's own calendar day)
        pub_ts       REAL,     -- published_at as epoch seconds, for newest-first order
        regions      TEXT NOT NULL DEFAULT '[]',  -- JSON list of region names
        record       TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS articles_source ON articles (source_id)",
    "CREATE INDEX IF NOT EXISTS articles_date ON articles (pub_date)",
    "CREATE INDEX IF NOT EXISTS articles_ts ON articles (pub_ts)",
    # The token strings come tokenized, folded and lowercased from cyz.index.cjk; the
    # `ascii` tokenizer only splits them on spaces (non-ASCII bytes are token characters),
    # so FTS sees exactly our tokens, at half the cost of unicode61 re-classifying them.
    "CREATE VIRTUAL TABLE IF NOT EXISTS articles_fts USING fts5 (title, text, tokenize = 'ascii')",
)

# v2: the happenings, and the pipeline version as a column (stale records are counted).
_SCHEMA_V2 = (
    "ALTER TABLE articles ADD COLUMN pipeline_version INTEGER",
    "UPDATE articles SET pipeline_version = "
    "coalesce(json_extract(record, '$.pipeline_version'), 0)",
    "CREATE INDEX IF NOT EXISTS articles_pipeline ON articles (pipeline_version)",
    """CREATE TABLE IF NOT EXISTS events (
        event_id   TEXT PRIMARY KEY,
        type       TEXT NOT NULL,
        planned    INTEGER NOT NULL,
        date_from  TEXT,     -- the event date's first and last day (ISO), NULL if undated
        date_to    TEXT,
        first_day  TEXT,     -- Asia/Shanghai day of first_reported_at
        day_from   TEXT,     -- date_from, else first_day: the order and the since/until
        day_to     TEXT,     -- date_to, else first_day       filters of undated events
        regions    TEXT NOT NULL DEFAULT '[]',  -- JSON list of regions[].name
        parties    TEXT NOT NULL DEFAULT '',    -- simplified, lower-case, one per line
        doc        TEXT NOT NULL                -- the Happening as JSON
    )""",
    "CREATE INDEX IF NOT EXISTS events_dates ON events (type, date_from, date_to)",
    "CREATE INDEX IF NOT EXISTS events_first ON events (type, first_day)",
    "CREATE INDEX IF NOT EXISTS events_order ON events (day_from DESC, event_id)",
    """CREATE TABLE IF NOT EXISTS event_reports (
        event_id   TEXT NOT NULL,
        article_id TEXT NOT NULL,
        cluster_id TEXT,
        source_id  TEXT NOT NULL,
        PRIMARY KEY (event_id, article_id)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS event_reports_article ON event_reports (article_id)",
    "CREATE INDEX IF NOT EXISTS event_reports_cluster ON event_reports (cluster_id)",
)

# v3: when each record was last written, for the alert rules (`Filters.indexed_since`);
# the records already stored count as written when they last changed.
_SCHEMA_V3 = (
    "ALTER TABLE articles ADD COLUMN indexed_at TEXT",
    "UPDATE articles SET indexed_at = coalesce(json_extract(record, '$.updated_at'), "
    "json_extract(record, '$.crawled_at'))",
    "CREATE INDEX IF NOT EXISTS articles_indexed ON articles (indexed_at)",
)

# v4: what search filters and ranks on besides the text (`Filters.topics`,
# `Filters.cluster_ids`, `SearchRequest.sort`), filled from the stored records.
_SCHEMA_V4 = (
    "ALTER TABLE articles ADD COLUMN relevance REAL NOT NULL DEFAULT 0",
    "ALTER TABLE articles ADD COLUMN topics TEXT NOT NULL DEFAULT '[]'",  # JSON list of ids
    "ALTER TABLE articles ADD COLUMN cluster_id TEXT",
    "UPDATE articles SET relevance = coalesce(json_extract(record, '$.relevance'), 0), "
    "topics = coalesce(json_extract(record, '$.topics'), '[]'), "
    "cluster_id = json_extract(record, '$.cluster_id')",
    "CREATE INDEX IF NOT EXISTS articles_cluster ON articles (cluster_id)",
)

_FTS = ("CREATE VIRTUAL TABLE articles_fts USING fts5 "
        "(title, text, content = '', tokenize = 'ascii')")

# v5: the records compressed in their own table, the filter columns alone in `articles`,
# and a contentless FTS index (filled by `_rebuild_fts` from the records).
_SCHEMA_V5 = (
    "CREATE TABLE IF NOT EXISTS records (doc INTEGER PRIMARY KEY, body BLOB NOT NULL)",
    "INSERT OR REPLACE INTO records (doc, body) SELECT doc, cyz_pack(record) FROM articles",
    "ALTER TABLE articles DROP COLUMN record",
    "DROP TABLE IF EXISTS articles_fts",
    _FTS,
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)

_UPSERT = """
INSERT INTO articles (id, source_id, published_at, pub_date, pub_ts, regions, pipeline_version,
                      indexed_at, relevance, topics, cluster_id)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    source_id = excluded.source_id, published_at = excluded.published_at,
    pub_date = excluded.pub_date, pub_ts = excluded.pub_ts, regions = excluded.regions,
    pipeline_version = excluded.pipeline_version, indexed_at = excluded.indexed_at,
    relevance = excluded.relevance, topics = excluded.topics, cluster_id = excluded.cluster_id
RETURNING doc
"""
_UPSERT_RECORD = "INSERT OR REPLACE INTO records (doc, body) VALUES (?, ?)"
_INSERT_FTS = "INSERT INTO articles_fts (rowid, title, text) VALUES (?, ?, ?)"
# A contentless table deletes a row by being told the tokens it indexed for it.
_DELETE_FTS = "INSERT INTO articles_fts (articles_fts, rowid, title, text) VALUES ('delete', ?, ?, ?)"

_UPSERT_EVENT = """
INSERT OR REPLACE INTO events
    (event_id, type, planned, date_from, date_to, first_day, day_from, day_to, regions, parties, doc)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
"""

_ITER_BATCH = 500


class SchemaError(RuntimeError):
    """The index file was written by a newer cyz (or is not ours)."""


class SqliteEngine(Engine):
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._db: sqlite3.Connection | None = None
        # Scrapy pipelines may hand work to threads; one connection, one user at a time.
        self._lock = threading.RLock()

    # -- connection and schema ------------------------------------------------------

    @contextmanager
    def _using(self, action: str = "store records in") -> Iterator[sqlite3.Connection]:
        """The connection, under the engine's lock; a full disk or an unusable file in
        the block becomes one `StorageError` naming the index."""
        with self._lock, storing(self.path, action):
            yield self._conn()

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            # A full disk or an unusable data dir shows up here first: one clear error.
            with storing(self.path, "open the index"):
                self.path.parent.mkdir(parents=True, exist_ok=True)
                db = sqlite3.connect(
                    self.path, isolation_level=None, check_same_thread=False, timeout=30.0
                )
                try:
                    db.execute("PRAGMA busy_timeout = 30000")
                    # WAL: readers (a `cyz search` while the crawl writes) never wait for a writer.
                    db.execute("PRAGMA journal_mode = WAL")
                    db.execute("PRAGMA synchronous = NORMAL")
                    _ensure_pow(db)
                    db.create_function("cyz_pack", 1, _pack_json, deterministic=True)
                    self._ensure_schema(db)
                except BaseException:
                    db.close()
                    raise
            self._db = db
        return self._db

    def _ensure_schema(self, db: sqlite3.Connection) -> None:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION and _stamp(db) == tokens_stamp():
            return
        if version > SCHEMA_VERSION:
            raise SchemaError(
                f"{self.path} has index schema version {version}; this cyz knows "
                f"{SCHEMA_VERSION} — upgrade cyz"
            )
        db.execute("BEGIN IMMEDIATE")
        try:
            # Re-read under the write lock: another process may have just created it.
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version < SCHEMA_VERSION:
                self._migrate(db, version)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            if _stamp(db) != tokens_stamp():
                # New tokenizer (or a v4 file): index the stored records afresh.
                _rebuild_fts(db)
            db.execute("COMMIT")
        except BaseException:
            _rollback(db)
            raise

    def _migrate(self, db: sqlite3.Connection, version: int) -> None:
        # One statement at a time: executescript() would commit our transaction.
        if version == 0:
            for statement in _SCHEMA:
                db.execute(statement)
        for step, statements in ((2, _SCHEMA_V2), (3, _SCHEMA_V3), (4, _SCHEMA_V4), (5, _SCHEMA_V5)):
            if version < step:
                for statement in statements:
                    db.execute(statement)
        if version < 5:
            _rebuild_fts(db)
        if version < 2:
            # Happenings are derived data: a v1 index gets them from its stored articles.
            self._rebuild_events(db)

    def _rebuild_events(self, db: sqlite3.Connection) -> None:
        db.execute("DELETE FROM events")
        db.execute("DELETE FROM event_reports")
        records = []
        for (body,) in db.execute("SELECT body FROM records"):
            record = decode_record(body)
            if record.get("events"):
                records.append(_article_fields(record))
        _apply(db, plan(records))

    @property
    def schema_version(self) -> int:
        with self._lock:
            return self._conn().execute("PRAGMA user_version").fetchone()[0]

    def init(self) -> None:
        with self._lock:
            self._conn()

    def check_writable(self) -> None:
        """The index file opens and takes a write (rolled back): a read-only file or
        data dir, or a full disk, is a StorageError naming the file now."""
        with self._using("write to the index"):
            db = self._conn()
            db.execute("BEGIN IMMEDIATE")
            try:
                version = db.execute("PRAGMA user_version").fetchone()[0]
                db.execute(f"PRAGMA user_version = {int(version)}")
            finally:
                _rollback(db)

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # -- writing --------------------------------------------------------------------

    def write(self, records: Iterable[dict]) -> int:
        # One row per id, the last of the batch winning (as writing them in turn would).
        batch: dict[str, tuple[dict, tuple, bytes]] = {}
        written = 0
        stamp = indexed_now()
        for record in records:
            record = validate_article({**record, "indexed_at": stamp})
            row = _row_for(record)
            batch.pop(record["id"], None)
            batch[record["id"]] = (record, row, _pack(record))
            written += 1
        if not batch:
            return 0
        with self._using() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                old = _stored_by_id(db, list(batch))
                deletes, inserts, bodies = [], [], []
                for record_id, (record, row, body) in batch.items():
                    doc = db.execute(_UPSERT, row).fetchone()[0]
                    bodies.append((doc, body))
                    new_text = _indexed_text(record)
                    before = old.get(record_id)
                    if before is not None:
                        old_text = _indexed_text(before[1])
                        if old_text == new_text:
                            continue  # same tokens: the FTS row stands
                        deletes.append((before[0], *map(cjk.index_terms, old_text)))
                    inserts.append((doc, *map(cjk.index_terms, new_text)))
                db.executemany(_DELETE_FTS, deletes)
                db.executemany(_UPSERT_RECORD, bodies)
                db.executemany(_INSERT_FTS, inserts)
                self._update_events(db, [r for r, _, _ in batch.values()])
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise
        return written

    def _update_events(self, db: sqlite3.Connection, records: list[dict],
                       removed: list[str] = ()) -> None:
        """Re-plan the happenings the batch touches (inside the write's transaction)."""
        lookup = candidate_lookup(records, removed)
        candidates = touchable(records, _candidates(db, lookup), removed)
        exclude = {r["id"] for r in records} | set(removed)
        reported = _articles_by_id(db, reported_articles(candidates, exclude))
        _apply(db, plan(records, candidates, reported, removed))

    def delete(self, ids: Iterable[str]) -> int:
        params = [(i,) for i in dict.fromkeys(ids)]
        if not params:
            return 0
        with self._using() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                old = _stored_by_id(db, [p[0] for p in params])
                db.executemany(_DELETE_FTS, [
                    (doc, *map(cjk.index_terms, _indexed_text(record)))
                    for doc, record in old.values()])
                db.executemany("DELETE FROM records WHERE doc = ?",
                               [(doc,) for doc, _ in old.values()])
                before = db.total_changes
                db.executemany("DELETE FROM articles WHERE id = ?", params)
                deleted = db.total_changes - before
                self._update_events(db, [], [p[0] for p in params])
                db.execute("COMMIT")
            except BaseException:
                _rollback(db)
                raise
        return deleted

    # -- reading --------------------------------------------------------------------

    def get(self, record_id: str) -> dict | None:
        with self._using("read the index") as db:
            row = db.execute("SELECT r.body FROM articles a JOIN records r ON r.doc = a.doc "
                             "WHERE a.id = ?", (record_id,)).fetchone()
        return decode_record(row[0]) if row else None

    def count(self, filters: Filters | None = None) -> int:
        where, params = _filter_sql(filters or Filters())
        with self._using("read the index") as db:
            return db.execute(f"SELECT count(*) FROM articles a WHERE {where}",
                              params).fetchone()[0]

    def iter_records(self, filters: Filters | None = None) -> Iterator[dict]:
        # Keyset batches rather than one long cursor: callers (reextract, --clean) write
        # and delete while they iterate, and no read transaction stays open meanwhile.
        where, params = _filter_sql(filters or Filters())
        last = -1
        while True:
            with self._using("read the index") as db:
                rows = (
                    db.execute(
                        "SELECT a.doc, r.body FROM articles a JOIN records r ON r.doc = a.doc "
                        f"WHERE a.doc > ? AND {where} ORDER BY a.doc LIMIT {_ITER_BATCH}",
                        [last, *params],
                    )
                    .fetchall()
                )
            for _, body in rows:
                yield decode_record(body)
            if len(rows) < _ITER_BATCH:
                return
            last = rows[-1][0]

    def search(self, request: SearchRequest) -> SearchResult:
        limit, offset = max(0, int(request.limit)), max(0, int(request.offset))
        if request.query.has_words and fts_expression(request.query) is None:
            return SearchResult(total=0, hits=[])  # a Query built by hand, of `*` and such
        base, params = _search_sql(request.query, request.filters)
        score, order = _ranking_sql(request.query, request.sort)
        # bm25() is the costly part of a search: where the order does not need it (by
        # date), it is computed for the page alone.
        later = request.query.has_words and request.sort == "date"
        with self._using("read the index") as db:
            total = db.execute(f"SELECT count(*) {base}", params).fetchone()[0]
            # The page's docs first, then their records: sorting every match with its
            # whole record would read each one.
            page = db.execute(
                f"SELECT a.doc, {'0.0' if later else score} AS score {base} "
                f"ORDER BY {order} LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
            if later and page:
                scores = dict(db.execute(
                    f"SELECT rowid, {score} FROM articles_fts WHERE articles_fts MATCH ? "
                    "AND rowid IN (SELECT value FROM json_each(?))",
                    [params[0], json.dumps([doc for doc, _ in page])]).fetchall())
                page = [(doc, scores.get(doc, 0.0)) for doc, _ in page]
            records = dict(db.execute(
                "SELECT doc, body FROM records WHERE doc IN (SELECT value FROM json_each(?))",
                [json.dumps([doc for doc, _ in page])],
            ).fetchall())
        finder = _MatchFinder(request.query)
        hits = []
        for doc, value in page:
            record = decode_record(records[doc])
            hits.append(Hit(record=record, score=float(value), snippet=finder.snippet(record)))
        return SearchResult(total=total, hits=hits)

    def newest_by_source(self) -> dict[str, dict]:
        """{source_id: {"articles": n, "newest_published_at": ISO or None}}, in one
        GROUP BY (SQLite gives the bare `published_at` of the row holding max(pub_ts))."""
        with self._using("read the index") as db:
            rows = db.execute(
                "SELECT source_id, count(*), published_at, max(pub_ts) FROM articles "
                "GROUP BY source_id ORDER BY source_id").fetchall()
        return {source_id: {"articles": n, "newest_published_at": published if ts is not None
                            else None}
                for source_id, n, published, ts in rows}


    # -- happenings -----------------------------------------------------------------

    def search_events(self, filters: EventFilters | None = None, limit: int = 50,
                      offset: int = 0) -> EventResult:
        where, params = _event_filter_sql(filters or EventFilters())
        limit, offset = max(0, int(limit)), max(0, int(offset))
        with self._using("read the index") as db:
            total = db.execute(f"SELECT count(*) FROM events e WHERE {where}", params).fetchone()[0]
            rows = db.execute(
                f"SELECT doc FROM events e WHERE {where} {_EVENT_ORDER} LIMIT ? OFFSET ?",
                [*params, limit, offset],
            ).fetchall()
        return EventResult(total=total, events=[json.loads(doc) for (doc,) in rows])

    def count_events(self, filters: EventFilters | None = None) -> int:
        where, params = _event_filter_sql(filters or EventFilters())
        with self._using("read the index") as db:
            return db.execute(f"SELECT count(*) FROM events e WHERE {where}", params).fetchone()[0]

    def iter_events(self, filters: EventFilters | None = None) -> Iterator[dict]:
        # The ids in order first (small), then the documents in batches: no read
        # transaction stays open while the caller works.
        where, params = _event_filter_sql(filters or EventFilters())
        with self._using("read the index") as db:
            ids = [i for (i,) in db.execute(
                f"SELECT event_id FROM events e WHERE {where} {_EVENT_ORDER}", params)]
        for start in range(0, len(ids), _ITER_BATCH):
            chunk = ids[start:start + _ITER_BATCH]
            with self._using("read the index") as db:
                docs = dict(db.execute(
                    "SELECT event_id, doc FROM events WHERE event_id IN "
                    "(SELECT value FROM json_each(?))", [json.dumps(chunk)]).fetchall())
            yield from (json.loads(docs[i]) for i in chunk if i in docs)


# -- happenings ↔ rows ------------------------------------------------------------------

_EVENT_ORDER = "ORDER BY e.day_from DESC, e.event_id"


def _article_fields(record: dict) -> dict:
    """An article's `ARTICLE_FIELDS` (what a plan reads of the articles a happening reports)."""
    fields = {name: record.get(name) for name in ARTICLE_FIELDS}
    fields["events"] = fields["events"] or []
    return fields


def _articles_by_id(db: sqlite3.Connection, ids: list[str]) -> dict[str, dict]:
    return {record_id: _article_fields(record)
            for record_id, (_, record) in _stored_by_id(db, ids).items()}


def _stored_by_id(db: sqlite3.Connection, ids: list[str]) -> dict[str, tuple[int, dict]]:
    """{id: (doc, record)} of the stored records among `ids`."""
    if not ids:
        return {}
    rows = db.execute(
        "SELECT a.id, a.doc, r.body FROM articles a JOIN records r ON r.doc = a.doc "
        "WHERE a.id IN (SELECT value FROM json_each(?))", [json.dumps(ids)])
    return {record_id: (doc, decode_record(body)) for record_id, doc, body in rows}


def _candidates(db: sqlite3.Connection, lookup: CandidateLookup) -> list[dict]:
    """The stored happenings `lookup` names (the same set every engine finds)."""
    if lookup.is_empty:
        return []
    clauses, params = [], []
    for w in lookup.dated:
        clauses.append("(e.type = ? AND e.date_from <= ? AND e.date_to >= ?)")
        params += [w.type, w.end.isoformat(), w.start.isoformat()]
    for w in lookup.reported:
        clauses.append("(e.type = ? AND e.first_day BETWEEN ? AND ?)")
        params += [w.type, w.start.isoformat(), w.end.isoformat()]
    for w in lookup.reported_undated:
        clauses.append("(e.type = ? AND e.first_day BETWEEN ? AND ? AND e.date_from IS NULL)")
        params += [w.type, w.start.isoformat(), w.end.isoformat()]
    for column, values in (("article_id", lookup.article_ids), ("cluster_id", lookup.cluster_ids)):
        if values:
            clauses.append(f"e.event_id IN (SELECT event_id FROM event_reports WHERE {column} "
                           "IN (SELECT value FROM json_each(?)))")
            params.append(json.dumps(values))
    rows = db.execute(f"SELECT doc FROM events e WHERE {' OR '.join(clauses)}", params)
    return [json.loads(doc) for (doc,) in rows]


def _apply(db: sqlite3.Connection, changes: Plan) -> None:
    gone = [(i,) for i in changes.deleted] + [(d["event_id"],) for d in changes.upserts]
    db.executemany("DELETE FROM event_reports WHERE event_id = ?", gone)
    db.executemany("DELETE FROM events WHERE event_id = ?", [(i,) for i in changes.deleted])
    db.executemany(_UPSERT_EVENT, [_event_row(d) for d in changes.upserts])
    db.executemany(
        "INSERT OR REPLACE INTO event_reports (event_id, article_id, cluster_id, source_id) "
        "VALUES (?, ?, ?, ?)",
        [(d["event_id"], r["article_id"], r.get("cluster_id"), r.get("source_id") or "")
         for d in changes.upserts for r in d["reports"]],
    )


def _event_row(doc: dict) -> tuple:
    first = shanghai_day(doc.get("first_reported_at"))
    first_day = first.isoformat() if first else None
    return (
        doc["event_id"], doc["type"], int(bool(doc.get("planned"))),
        doc.get("date_from"), doc.get("date_to"), first_day,
        doc.get("date_from") or first_day, doc.get("date_to") or first_day,
        json.dumps([r["name"] for r in doc.get("regions") or []], ensure_ascii=False),
        "\n".join(_party_text(p) for p in doc.get("parties") or []),
        json.dumps(doc, ensure_ascii=False),
    )


def _party_text(text: str) -> str:
    """Parties as the party filter compares them: simplified, lower-case."""
    return cjk.to_simplified(text).lower()


def _event_filter_sql(filters: EventFilters) -> tuple[str, list]:
    where = ["1"]
    params: list = []
    if filters.since:
        where.append("e.day_to >= ?")
        params.append(filters.since.isoformat())
    if filters.until:
        where.append("e.day_from <= ?")
        params.append(filters.until.isoformat())
    if filters.types:
        where.append(f"e.type IN ({', '.join('?' * len(filters.types))})")
        params += list(filters.types)
    if filters.regions:
        names = list(dict.fromkeys(n for r in filters.regions for n in (r, cjk.to_simplified(r))))
        where.append("EXISTS (SELECT 1 FROM json_each(e.regions) WHERE json_each.value IN "
                     f"({', '.join('?' * len(names))}))")
        params += names
    if filters.party:
        where.append("instr(e.parties, ?) > 0")
        params.append(_party_text(filters.party.strip()))
    if filters.planned is not None:
        where.append("e.planned = ?")
        params.append(int(filters.planned))
    if filters.source_prefix:
        where.append("EXISTS (SELECT 1 FROM event_reports r WHERE r.event_id = e.event_id "
                     "AND substr(r.source_id, 1, ?) = ?)")
        params += [len(filters.source_prefix), filters.source_prefix]
    return " AND ".join(where), params


# -- records → rows ---------------------------------------------------------------------


def _rollback(db: sqlite3.Connection) -> None:
    # SQLite has already rolled back on some errors (a full disk): a second ROLLBACK
    # would raise and hide the real error.
    if db.in_transaction:
        db.execute("ROLLBACK")


# -- the stored form of a record, and what FTS indexes of it ----------------------------


def _pack(record: dict) -> bytes:
    return zlib.compress(json.dumps(record, ensure_ascii=False, default=str).encode(), 6)


def _pack_json(text: str | bytes) -> bytes:
    """`cyz_pack()` of the v5 migration: a v4 row's JSON text, compressed."""
    return zlib.compress(text.encode() if isinstance(text, str) else text, 6)


def decode_record(body: bytes | str) -> dict:
    """A stored record (`records.body`: zlib-compressed UTF-8 JSON) as a dict."""
    if isinstance(body, str):
        return json.loads(body)
    return json.loads(zlib.decompress(body))


def read_records(path: Path) -> Iterator[dict]:
    """Every record of an index file, opened read-only (no migration, nothing created):
    for tools and tests that read the file itself rather than through an engine. Reads
    v5 files (`records`) and older ones (`articles.record`, JSON text) alike."""
    db = sqlite3.connect(f"{Path(path).resolve().as_uri()}?mode=ro", uri=True)
    try:
        tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
        sql = ("SELECT body FROM records ORDER BY doc" if "records" in tables
               else "SELECT record FROM articles ORDER BY doc")
        for (body,) in db.execute(sql):
            yield decode_record(body)
    finally:
        db.close()


def _indexed_text(record: dict) -> tuple[str, str]:
    """(title, body) as FTS indexes them: the simplified copies when the record has them."""
    return (record.get("title_zh") or record.get("title") or "",
            record.get("text_zh") or record.get("text") or "")


def tokens_stamp() -> str:
    """What the FTS tokens depend on besides the stored records."""
    try:
        opencc = importlib.metadata.version("opencc")
    except importlib.metadata.PackageNotFoundError:
        opencc = "?"
    return f"{TOKENS_VERSION} opencc {opencc} unicode {unicodedata.unidata_version}"


def _stamp(db: sqlite3.Connection) -> str | None:
    try:
        row = db.execute("SELECT value FROM meta WHERE key = 'fts_tokens'").fetchone()
    except sqlite3.OperationalError:  # no meta table: an older schema
        return None
    return row[0] if row else None


def _rebuild_fts(db: sqlite3.Connection) -> None:
    """Index every stored record afresh (inside the caller's transaction), and stamp it."""
    db.execute("INSERT INTO articles_fts (articles_fts) VALUES ('delete-all')")
    last = -1
    while True:
        rows = db.execute("SELECT doc, body FROM records WHERE doc > ? ORDER BY doc LIMIT ?",
                          (last, _ITER_BATCH)).fetchall()
        db.executemany(_INSERT_FTS, [
            (doc, *map(cjk.index_terms, _indexed_text(decode_record(body))))
            for doc, body in rows])
        if len(rows) < _ITER_BATCH:
            break
        last = rows[-1][0]
    db.execute("INSERT OR REPLACE INTO meta (key, value) VALUES ('fts_tokens', ?)",
               (tokens_stamp(),))


def _row_for(record: dict) -> tuple:
    record_id = record.get("id")
    source_id = record.get("source_id")
    if not record_id or not source_id:
        raise ValueError(f"record without id/source_id: {str(record)[:200]}")
    published = record.get("published_at") or None
    pub_date, pub_ts = _date_parts(published)
    regions = [r["name"] if isinstance(r, dict) else str(r) for r in record.get("regions") or []]
    return (
        record_id,
        source_id,
        published,
        pub_date,
        pub_ts,
        json.dumps(regions, ensure_ascii=False),
        record.get("pipeline_version") or 0,
        record.get("indexed_at"),
        float(record.get("relevance") or 0.0),
        json.dumps(list(record.get("topics") or []), ensure_ascii=False),
        record.get("cluster_id"),
    )


def _date_parts(published: str | None) -> tuple[str | None, float | None]:
    if not published:
        return None, None
    # The calendar day is the page's own (records carry +08:00), so cut it from the string.
    pub_date = published[:10] if re.match(r"\d{4}-\d{2}-\d{2}", published) else None
    try:
        moment = datetime.fromisoformat(published)
    except ValueError:
        return pub_date, None
    if moment.tzinfo is None:  # naive times are Beijing time by the record contract
        moment = datetime.fromisoformat(published + "+08:00")
    return pub_date, moment.timestamp()


# -- query → SQL ------------------------------------------------------------------------


def _quote(token: str) -> str:
    return '"' + token.replace('"', '""') + '"'


def term_expression(term: Term) -> str | None:
    """One term (word or phrase) as an FTS5 phrase; None if it holds nothing searchable."""
    tokens = cjk.query_terms(term.text)
    if not tokens:
        return None
    phrase = _quote(" ".join(tokens))
    return phrase + " *" if cjk.last_is_prefix(tokens) else phrase


def _alternatives(terms: list[Term]) -> str | None:
    """An OR of the terms' phrases (each once); None when none is searchable."""
    phrases = list(dict.fromkeys(e for t in terms if (e := term_expression(t))))
    return "(" + " OR ".join(phrases) + ")" if phrases else None


def fts_expression(query: Query) -> str | None:
    """The MATCH expression for an AND of OR-groups, NOT any exclusion. Every token is
    quoted, so no user input can reach FTS5's own syntax. Terms without searchable
    characters are dropped; None when no term must occur (FTS5 cannot match a bare NOT:
    a query of exclusions only is `exclusion_expression` in a NOT IN)."""
    groups = [e for group in query.clauses if (e := _alternatives(group))]
    if not groups:
        return None
    positive = " AND ".join(groups)
    excluded = exclusion_expression(query)
    # NOT binds tighter than AND in FTS5: the positive part goes in parentheses.
    return f"({positive}) NOT {excluded}" if excluded else positive


def exclusion_expression(query: Query) -> str | None:
    """The MATCH expression of the articles a query excludes (any of its exclusions)."""
    return _alternatives(query.exclude)


def _search_sql(query: Query, filters: Filters) -> tuple[str, list]:
    """`FROM … WHERE …` of the articles `query` and `filters` find, and its parameters;
    the FTS table is joined when some term must occur (its bm25 is the text score)."""
    where, params = _filter_sql(filters)
    if query.has_words:
        match = fts_expression(query)
        # CROSS JOIN keeps the FTS scan outside: with `a` outside (by a source's index,
        # say), SQLite would run the whole MATCH again for every article.
        return ("FROM articles_fts CROSS JOIN articles a ON a.doc = articles_fts.rowid "
                f"WHERE articles_fts MATCH ? AND {where}", [match, *params])
    excluded = exclusion_expression(query)
    if excluded is None:
        return f"FROM articles a WHERE {where}", params
    return (f"FROM articles a WHERE {where} AND a.doc NOT IN "
            "(SELECT rowid FROM articles_fts WHERE articles_fts MATCH ?)", [*params, excluded])


_NEWEST = "a.pub_ts DESC, a.id"  # NULLs sort last in DESC: undated articles at the end


def _ranking_sql(query: Query, sort: str) -> tuple[str, str]:
    """(score expression, ORDER BY) for `sort`, as `cyz.index.ranking` defines them."""
    if not query.has_words:
        score = "0.0"
        text = None
    else:
        # bm25() is negative, better matches more so.
        score = text = f"(-bm25(articles_fts, {TITLE_WEIGHT}, {TEXT_WEIGHT}))"
    # The ORDER BY names the `score` column rather than repeating its expression, so
    # that bm25() runs once a match.
    if sort == "date":
        return score, _NEWEST
    if sort == "relevance":
        return score, f"a.relevance DESC, {'score DESC, ' if text else ''}{_NEWEST}"
    if text is None:  # best, nothing to score: the newest first
        return score, _NEWEST
    return _best_sql(text), f"score DESC, {_NEWEST}"


def _best_sql(text: str) -> str:
    origin = ranking.today_start(time.time())
    half_life = ranking.RECENCY_HALF_LIFE * ranking.DAY_SECONDS
    recency = f"coalesce(pow(0.5, abs({origin!r} - a.pub_ts) / {half_life!r}), 0.0)"
    # w·t/(t + h) written as w − w·h/(t + h): the same saturation of the text score, with
    # bm25() (`text`) once in it.
    weight, half = ranking.TEXT_WEIGHT, ranking.TEXT_HALF
    return (f"({weight!r} - {weight * half!r} / ({text} + {half!r}) "
            f"+ {ranking.RELEVANCE_WEIGHT!r} * a.relevance + {ranking.RECENCY_WEIGHT!r} * {recency})")


def _ensure_pow(db: sqlite3.Connection) -> None:
    """`pow()` for the recency of `best`: built in when SQLite has its math functions
    (3.35+, compiled in), else Python's."""
    try:
        db.execute("SELECT pow(0.5, 1.0)")
    except sqlite3.OperationalError:
        db.create_function("pow", 2, math.pow, deterministic=True)


def _any_of(column: str, values: list[str]) -> tuple[str, list]:
    """A JSON-list column holds one of `values`."""
    return (f"EXISTS (SELECT 1 FROM json_each({column}) WHERE json_each.value IN "
            f"({', '.join('?' * len(values))}))", list(values))


def _region_names(region: str) -> list[str]:
    """A region as typed and simplified (records name regions in simplified script)."""
    return list(dict.fromkeys((region, cjk.to_simplified(region))))


def _region_sql(filters: Filters) -> list[tuple[str, list]]:
    if filters.regions_all:
        return [_any_of("a.regions", _region_names(r)) for r in filters.regions]
    names = list(dict.fromkeys(n for r in filters.regions for n in _region_names(r)))
    return [_any_of("a.regions", names)]


def _filter_sql(filters: Filters) -> tuple[str, list]:
    where = ["1"]
    params: list = []
    conditions = _region_sql(filters) if filters.regions else []
    if filters.topics:
        conditions.append(_any_of("a.topics", filters.topics))
    if filters.cluster_ids:
        conditions.append(("a.cluster_id IN (SELECT value FROM json_each(?))",
                           [json.dumps(list(filters.cluster_ids))]))
    for sql, values in conditions:
        where.append(sql)
        params += values
    if filters.sources:
        where.append(f"a.source_id IN ({', '.join('?' * len(filters.sources))})")
        params += list(filters.sources)
    if filters.source_prefix:
        where.append("substr(a.source_id, 1, ?) = ?")
        params += [len(filters.source_prefix), filters.source_prefix]
    if filters.since:
        where.append("a.pub_date >= ?")
        params.append(filters.since.isoformat())
    if filters.until:
        where.append("a.pub_date <= ?")
        params.append(filters.until.isoformat())
    if filters.indexed_since:
        where.append("a.indexed_at >= ?")
        params.append(filters.indexed_since)
    if filters.pipeline_below is not None:
        where.append("coalesce(a.pipeline_version, 0) < ?")
        params.append(int(filters.pipeline_below))
    return " AND ".join(where), params


# -- snippets ---------------------------------------------------------------------------


class _MatchFinder:
    """Finds a query's terms in a record's original text and cuts a marked window.

    Matching runs on the simplified, folded copy; the offsets are cut from the original,
    so the snippet keeps the page's own script.
    """

    def __init__(self, query: Query) -> None:
        patterns = [p for t in query.terms() if (p := cjk.term_pattern(t.text))]
        # Longer alternatives first, so a phrase wins over a word it starts with.
        patterns.sort(key=len, reverse=True)
        self._regex = re.compile("|".join(patterns)) if patterns else None

    def _spans(self, original: str, simplified: str) -> list[tuple[int, int]]:
        if self._regex is None or not original:
            return []
        haystack = _aligned_simplified(original, simplified)
        return [m.span() for m in self._regex.finditer(haystack) if m.end() > m.start()]

    def snippet(self, record: dict) -> str:
        text = record.get("text") or ""
        spans = self._spans(text, record.get("text_zh") or "")
        if spans:
            first = spans[0][0]
            start = max(0, min(first - SNIPPET_LEAD, len(text) - SNIPPET_CHARS))
            end = min(len(text), start + SNIPPET_CHARS)
            return _mark(text, spans, start, end)
        title = record.get("title") or ""
        spans = self._spans(title, record.get("title_zh") or "")
        if spans:
            return _mark(title, spans, 0, len(title))
        if text:
            return _mark(text, [], 0, min(len(text), SNIPPET_CHARS))
        return _squash(title)


def _aligned_simplified(original: str, simplified: str) -> str:
    """A simplified, folded string with the same length as `original` (offsets line up)."""
    if len(simplified) != len(original):
        # The record's copy does not line up (or is missing): convert here, and if even
        # that changes the length (a rare phrase mapping), search the original itself.
        simplified = cjk.to_simplified(original)
        if len(simplified) != len(original):
            simplified = original
    return cjk.fold_aligned(simplified)


def _mark(text: str, spans: list[tuple[int, int]], start: int, end: int) -> str:
    left, right = SNIPPET_MARK
    pieces = ["…"] if start > 0 else []
    pos = start
    for s, e in spans:
        s, e = max(s, start), min(e, end)
        if s >= e or s < pos:
            continue
        pieces += [_squash(text[pos:s]), left, _squash(text[s:e]), right]
        pos = e
    pieces.append(_squash(text[pos:end]))
    if end < len(text):
        pieces.append("…")
    return "".join(pieces).strip()


def _squash(text: str) -> str:
    # Line breaks and runs of blanks read badly in a one-line snippet.
    return re.sub(r"\s+", " ", text)
