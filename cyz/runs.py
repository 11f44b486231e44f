"""Run history: every run of every job, one row each, in `runs.sqlite3` in the data dir.

A run has a kind (`crawl`, ...), its start and end (UTC, ISO 8601), a status (`ok`,
`partial`, `failed`, `skipped`), per-source counts `{source_id: {fetched, new, updated,
unchanged, failed: {reason: n}}}`, the alerts it sent and its errors (one line each).
`cyz runs` lists them; `cyz index status` shows the last one.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

RUNS_FILE = "runs.sqlite3"
STATUSES = ("ok", "partial", "failed", "skipped")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    kind        TEXT NOT NULL,
    started_at  TEXT NOT NULL,
    ended_at    TEXT NOT NULL,
    status      TEXT NOT NULL,
    sources     TEXT NOT NULL,   -- JSON: {source_id: {fetched, new, updated, unchanged, failed}}
    alerts_sent INTEGER NOT NULL DEFAULT 0,
    errors      TEXT NOT NULL    -- JSON: list of one-line errors
);
CREATE INDEX IF NOT EXISTS runs_started ON runs(started_at);
"""


def now() -> str:
    """The current time as the history writes it."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def _connect(data_dir: Path, *, create: bool) -> sqlite3.Connection | None:
    path = Path(data_dir) / RUNS_FILE
    if not create and not path.exists():
        return None
    if create:
        path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=30)
    if create:
        db.executescript(_SCHEMA)
    return db


def record_run(data_dir: Path, kind: str, started_at: str, ended_at: str, status: str,
               sources: dict[str, dict] | None, alerts_sent: int = 0,
               errors: list[str] | tuple[str, ...] = ()) -> None:
    """Append one run to the history (raises OSError/sqlite3.Error if it cannot)."""
    if status not in STATUSES:
        raise ValueError(f"unknown run status {status!r}")
    db = _connect(data_dir, create=True)
    with closing(db), db:
        db.execute(
            "INSERT INTO runs (kind, started_at, ended_at, status, sources, alerts_sent, errors)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (kind, started_at, ended_at, status,
             json.dumps(sources or {}, ensure_ascii=False), int(alerts_sent),
             json.dumps(list(errors), ensure_ascii=False)))


def record_quietly(data_dir: Path, kind: str, started_at: str, status: str,
                   sources: dict[str, dict] | None = None, alerts_sent: int = 0,
                   errors: list[str] | tuple[str, ...] = ()) -> None:
    """`record_run` of a run ending now, for the jobs themselves: a history that cannot
    be written is a warning in the log, never the job's failure."""
    try:
        record_run(data_dir, kind, started_at, now(), status, sources, alerts_sent, errors)
    except Exception as exc:  # noqa: BLE001 - the history must never fail a job
        logging.getLogger(__name__).warning("cannot record the run in the run history of %s "
                                            "(a %s run): %s: %s", data_dir, kind,
                                            type(exc).__name__, exc)


def _row(row: tuple) -> dict:
    kind, started_at, ended_at, status, sources, alerts_sent, errors = row
    return {"kind": kind, "started_at": started_at, "ended_at": ended_at, "status": status,
            "sources": json.loads(sources), "alerts_sent": alerts_sent,
            "errors": json.loads(errors)}


_COLUMNS = "kind, started_at, ended_at, status, sources, alerts_sent, errors"


def list_runs(data_dir: Path, limit: int | None = 20) -> list[dict]:
    """The recorded runs, newest first (at most `limit`; None: all)."""
    db = _connect(data_dir, create=False)
    if db is None:
        return []
    with closing(db):
        try:
            rows = db.execute(f"SELECT {_COLUMNS} FROM runs ORDER BY started_at DESC, id DESC"
                              " LIMIT ?", (-1 if limit is None else int(limit),)).fetchall()
        except sqlite3.OperationalError:  # an empty file: no table yet
            return []
    return [_row(r) for r in rows]


def last_run(data_dir: Path, kind: str | None = None) -> dict | None:
    """The newest run (of `kind`, when given), or None."""
    db = _connect(data_dir, create=False)
    if db is None:
        return None
    with closing(db):
        where, args = ("WHERE kind = ?", (kind,)) if kind else ("", ())
        try:
            row = db.execute(f"SELECT {_COLUMNS} FROM runs {where}"
                             " ORDER BY started_at DESC, id DESC LIMIT 1", args).fetchone()
        except sqlite3.OperationalError:
            return None
    return _row(row) if row else None


def totals(run: dict) -> dict[str, int]:
    """A run's counts summed over its sources: fetched, new, updated, unchanged, failed."""
    out = {"fetched": 0, "new": 0, "updated": 0, "unchanged": 0, "failed": 0}
    for counts in run.get("sources", {}).values():
        for key in ("fetched", "new", "updated", "unchanged"):
            out[key] += int(counts.get(key, 0))
        out["failed"] += sum(int(n) for n in counts.get("failed", {}).values())
    return out


def prune_runs(data_dir: Path, older_than_days: int) -> int:
    """Delete the runs that started more than `older_than_days` days ago; returns how
    many (the scheduler's maintenance keeps a year, so the file stays small)."""
    from datetime import timedelta

    db = _connect(data_dir, create=False)
    if db is None:
        return 0
    cutoff = (datetime.now(UTC) - timedelta(days=older_than_days)).isoformat(timespec="seconds")
    with closing(db), db:
        try:
            return db.execute("DELETE FROM runs WHERE started_at < ?", (cutoff,)).rowcount
        except sqlite3.OperationalError:  # an empty file: no table yet
            return 0
