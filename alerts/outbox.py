"""The alerts outbox: `alerts.sqlite3` in the data dir. What makes mails exactly-once.

- `hits`: one row per (rule, article) ever matched — the primary key is the promise
  that an article reaches a rule's recipients once. A hit is `pending` until a mail
  takes it (`mailed`), or `folded` when a reprint of a story already mailed.
- `mails`: every mail, rendered in full, recorded (`queued`) in the same transaction
  that marks its hits, before any attempt to send it; `sent` once the server took it.
- `rules`: per rule, up to which `indexed_at` it has seen the index, and its last digest.

The one window left: the mail server accepted a mail and the process died before
`mark_sent` committed (a few milliseconds); the next run sends that mail again. Its
`Message-ID` is the same both times, so mail clients show it once.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

OUTBOX_FILE = "alerts.sqlite3"
HEALTH_RULE = "_health"  # the crawl-health mails' pseudo rule

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rules (
    rule_id        TEXT PRIMARY KEY,
    seen_until     TEXT,   -- the rule has seen every article indexed before this instant
    last_digest_at TEXT    -- when its last digest was composed (digest rules)
);
CREATE TABLE IF NOT EXISTS hits (
    rule_id    TEXT NOT NULL,
    article_id TEXT NOT NULL,
    story      TEXT NOT NULL,   -- the reprint cluster (else the article itself)
    state      TEXT NOT NULL,   -- pending | mailed | folded
    mail_id    INTEGER,
    found_at   TEXT NOT NULL,
    hit        TEXT NOT NULL,   -- JSON: what the mail shows of the article
    PRIMARY KEY (rule_id, article_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS hits_story ON hits (rule_id, story);
CREATE INDEX IF NOT EXISTS hits_state ON hits (rule_id, state);
CREATE TABLE IF NOT EXISTS mails (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    rule_id     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    recipients  TEXT NOT NULL,  -- JSON list
    subject     TEXT NOT NULL,
    message     BLOB NOT NULL,  -- the whole RFC 5322 message, as it will be sent
    status      TEXT NOT NULL,  -- queued | sent
    attempts    INTEGER NOT NULL DEFAULT 0,
    last_error  TEXT,
    sent_at     TEXT
);
CREATE INDEX IF NOT EXISTS mails_status ON mails (status);
"""


@dataclass
class RuleState:
    seen_until: str | None = None
    last_digest_at: str | None = None


@dataclass
class Mail:
    id: int
    rule_id: str
    recipients: list[str]
    subject: str
    message: bytes
    attempts: int
    created_at: str


class Outbox:
    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / OUTBOX_FILE
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        self._db.execute("PRAGMA journal_mode = WAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    # -- rules ----------------------------------------------------------------------

    def rule_state(self, rule_id: str) -> RuleState:
        row = self._db.execute("SELECT seen_until, last_digest_at FROM rules WHERE rule_id = ?",
                               (rule_id,)).fetchone()
        return RuleState(*row) if row else RuleState()

    def known(self, rule_id: str, article_ids: list[str]) -> set[str]:
        """Those of `article_ids` the rule has matched before (in any state)."""
        found: set[str] = set()
        for start in range(0, len(article_ids), 500):
            chunk = article_ids[start:start + 500]
            rows = self._db.execute(
                f"SELECT article_id FROM hits WHERE rule_id = ? AND article_id IN "
                f"({', '.join('?' * len(chunk))})", [rule_id, *chunk])
            found.update(r[0] for r in rows)
        return found

    def record_hits(self, rule_id: str, hits: list[dict], seen_until: str, found_at: str) -> int:
        """Add the rule's new hits (`pending`; one already known is left alone) and move
        its `seen_until`, in one transaction. Returns how many hits were new."""
        with self._transaction() as db:
            before = db.total_changes
            db.executemany(
                "INSERT OR IGNORE INTO hits (rule_id, article_id, story, state, found_at, hit)"
                " VALUES (?, ?, ?, 'pending', ?, ?)",
                [(rule_id, h["id"], h["story"], found_at, json.dumps(h, ensure_ascii=False))
                 for h in hits])
            added = db.total_changes - before
            db.execute("INSERT INTO rules (rule_id, seen_until) VALUES (?, ?) ON CONFLICT (rule_id)"
                       " DO UPDATE SET seen_until = excluded.seen_until", (rule_id, seen_until))
        return added

    def pending(self, rule_id: str) -> list[dict]:
        rows = self._db.execute("SELECT hit FROM hits WHERE rule_id = ? AND state = 'pending'"
                                " ORDER BY found_at, article_id", (rule_id,))
        return [json.loads(r[0]) for r in rows]

    def mailed_stories(self, rule_id: str, stories: list[str]) -> set[str]:
        """Those of `stories` a mail of this rule has already told."""
        found: set[str] = set()
        for start in range(0, len(stories), 500):
            chunk = stories[start:start + 500]
            rows = self._db.execute(
                f"SELECT DISTINCT story FROM hits WHERE rule_id = ? AND state = 'mailed' AND story IN "
                f"({', '.join('?' * len(chunk))})", [rule_id, *chunk])
            found.update(r[0] for r in rows)
        return found

    def queue(self, rule_id: str, *, recipients: list[str], subject: str, message: bytes,
              created_at: str, mailed: list[str], folded: list[str] = (),
              digest: bool = False) -> int:
        """Record a mail as queued and its hits as taken, in one transaction."""
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO mails (rule_id, created_at, recipients, subject, message, status)"
                " VALUES (?, ?, ?, ?, ?, 'queued')",
                (rule_id, created_at, json.dumps(recipients), subject, message))
            mail_id = cursor.lastrowid
            self._take(db, rule_id, mailed, "mailed", mail_id)
            self._take(db, rule_id, folded, "folded", mail_id)
            if digest:
                self._digested(db, rule_id, created_at)
        return mail_id

    def fold(self, rule_id: str, article_ids: list[str]) -> None:
        """Reprints of stories already mailed: taken, told by no new mail."""
        with self._transaction() as db:
            self._take(db, rule_id, article_ids, "folded", None)

    def digested(self, rule_id: str, at: str) -> None:
        """A digest time passed (with or without a mail)."""
        with self._transaction() as db:
            self._digested(db, rule_id, at)

    @staticmethod
    def _digested(db: sqlite3.Connection, rule_id: str, at: str) -> None:
        db.execute("INSERT INTO rules (rule_id, last_digest_at) VALUES (?, ?) ON CONFLICT (rule_id)"
                   " DO UPDATE SET last_digest_at = excluded.last_digest_at", (rule_id, at))

    @staticmethod
    def _take(db: sqlite3.Connection, rule_id: str, article_ids, state: str,
              mail_id: int | None) -> None:
        db.executemany("UPDATE hits SET state = ?, mail_id = ? WHERE rule_id = ? AND article_id = ?",
                       [(state, mail_id, rule_id, a) for a in article_ids])

    # -- mails ----------------------------------------------------------------------

    def queued(self) -> list[Mail]:
        rows = self._db.execute(
            "SELECT id, rule_id, recipients, subject, message, attempts, created_at FROM mails"
            " WHERE status = 'queued' ORDER BY id")
        return [Mail(i, r, json.loads(to), s, bytes(m), a, c) for i, r, to, s, m, a, c in rows]

    def mark_sent(self, mail_id: int, at: str) -> None:
        self._db.execute("UPDATE mails SET status = 'sent', sent_at = ?, attempts = attempts + 1,"
                         " last_error = NULL WHERE id = ?", (at, mail_id))

    def mark_failed(self, mail_id: int, error: str) -> None:
        self._db.execute("UPDATE mails SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                         (error[:500], mail_id))

    def counts(self) -> dict[str, int]:
        rows = self._db.execute("SELECT status, count(*) FROM mails GROUP BY status")
        return {"queued": 0, "sent": 0} | dict(rows.fetchall())

    def forget_rules(self, prefix: str) -> None:
        """Everything of the rules whose id starts with `prefix` (`cyz demo --clean`)."""
        with self._transaction() as db:
            for table in ("hits", "mails", "rules"):
                db.execute(f"DELETE FROM {table} WHERE substr(rule_id, 1, ?) = ?",
                           (len(prefix), prefix))
