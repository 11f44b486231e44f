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

import fcntl
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
    hit        TEXT NOT NULL,   -- JSON: what a mail shows of the article (pending hits)
    PRIMARY KEY (rule_id, article_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS hits_story ON hits (rule_id, story);
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
        # WAL's NORMAL: a power cut may lose the last commit (a mail then goes twice),
        # never corrupts; an fsync per commit would cost more than the matching.
        self._db.execute("PRAGMA synchronous = NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        self._db.close()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        """One alerts run at a time per data dir (the scheduler's and a manual one): two
        would both find a queued mail and send it twice. The second waits; runs are short.
        An `fcntl` lock, released by the kernel however its holder ends."""
        with open(self.path.with_suffix(".lock"), "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

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
        return self._among(rule_id, "article_id", article_ids)

    def _among(self, rule_id: str, column: str, values: list[str], state: str | None = None
               ) -> set[str]:
        """Those of `values` found in the rule's hits' `column` (in `state`, if given),
        asked 500 at a time (SQLite's limit on bound parameters)."""
        where = "" if state is None else f" AND state = '{state}'"
        found: set[str] = set()
        for start in range(0, len(values), 500):
            chunk = values[start:start + 500]
            rows = self._db.execute(
                f"SELECT DISTINCT {column} FROM hits WHERE rule_id = ?{where} AND {column} IN "
                f"({', '.join('?' * len(chunk))})", [rule_id, *chunk])
            found.update(r[0] for r in rows)
        return found

    def pending(self, rule_id: str) -> list[dict]:
        """The rule's hits no mail has taken yet (a digest's, or an interrupted run's)."""
        rows = self._db.execute("SELECT hit FROM hits WHERE rule_id = ? AND state = 'pending'"
                                " ORDER BY found_at, article_id", (rule_id,))
        return [json.loads(r[0]) for r in rows]

    def mailed_stories(self, rule_id: str, stories: list[str]) -> set[str]:
        """Those of `stories` a mail of this rule has already told."""
        return self._among(rule_id, "story", stories, "mailed")

    def settle(self, rule_id: str, *, found_at: str, new_hits: list[dict] = (),
               mailed: list[str] = (), folded: list[str] = (), mail: dict | None = None,
               seen_until: str | None = None, digest_at: str | None = None) -> int:
        """One transaction for what a rule's run decided: its new hits (those in `mailed`
        or `folded` taken at once, the rest `pending`), earlier pending hits taken,
        the mail that takes them queued (`mail`: recipients, subject, message,
        created_at), and the rule's `seen_until` / last digest moved. A hit already
        known is left alone. Returns how many hits were new."""
        state = dict.fromkeys(folded, "folded") | dict.fromkeys(mailed, "mailed")
        with self._transaction() as db:
            mail_id = None
            if mail is not None:
                mail_id = db.execute(
                    "INSERT INTO mails (rule_id, created_at, recipients, subject, message, status)"
                    " VALUES (?, ?, ?, ?, ?, 'queued')",
                    (rule_id, mail["created_at"], json.dumps(mail["recipients"]), mail["subject"],
                     mail["message"])).lastrowid
            before = db.total_changes
            # Only a pending hit needs its article kept: a later mail is written from it.
            db.executemany(
                "INSERT OR IGNORE INTO hits (rule_id, article_id, story, state, mail_id, found_at, hit)"
                " VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(rule_id, h["id"], h["story"], state.get(h["id"], "pending"),
                  mail_id if h["id"] in state else None, found_at,
                  "" if h["id"] in state else json.dumps(h, ensure_ascii=False))
                 for h in new_hits])
            added = db.total_changes - before
            fresh = {h["id"] for h in new_hits}
            db.executemany(
                "UPDATE hits SET state = ?, mail_id = ?, hit = '' WHERE rule_id = ? AND article_id = ?",
                [(s, mail_id, rule_id, a) for a, s in state.items() if a not in fresh])
            if seen_until is not None:
                db.execute("INSERT INTO rules (rule_id, seen_until) VALUES (?, ?) ON CONFLICT"
                           " (rule_id) DO UPDATE SET seen_until = excluded.seen_until",
                           (rule_id, seen_until))
            if digest_at is not None:
                db.execute("INSERT INTO rules (rule_id, last_digest_at) VALUES (?, ?) ON CONFLICT"
                           " (rule_id) DO UPDATE SET last_digest_at = excluded.last_digest_at",
                           (rule_id, digest_at))
        return added

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
