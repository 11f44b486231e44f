"""Backups of the embedded default: `cyz backup DIR`, `cyz restore DIR`, `cyz prune`.

A data dir (`CYZ_DATA_DIR`) holds SQLite files and a few plain files:

    index.sqlite3        the embedded search index (articles, events)      index/sqlite.py
    crawl_state.sqlite3  per-URL validators and hashes for re-crawls       crawler/state.py
    reprints.sqlite3     the reprint (dedupe) index                        pipelines/dedupe.py
    raw_pages.sqlite3    every version of every article page, compressed   pipelines/archive.py
    runs.sqlite3         the run history                                   cyz/runs.py
    alerts.sqlite3       the alerts outbox (hits, mails, rule state)       alerts/outbox.py
    spool/               records waiting for Elasticsearch/OpenSearch      index/spool.py
    anything else        e.g. `cyz demo`'s Maildir: copied as files

and lock files (`cyz.lock`, `alerts.lock`) and SQLite's `-wal`/`-shm` companions,
which are never copied.

**Consistent while a crawl runs.** Each database is copied with SQLite's online
backup API in one step: one read transaction, so the copy is that database at one
instant, and a crawl writing meanwhile (WAL) is neither blocked nor seen half-way.
Across files the order does the rest. A crawl writes each batch in the order raw
pages → index (or spool) → reprint confirmations → crawl state (crawler/store.py),
so the backup copies in the reverse order — run history, alerts outbox, crawl state,
reprints, spool, index, raw pages — and each file copied holds no more than the files
copied after it need: every fetch the crawl state remembers is in the index, every
confirmed reprint placement names an indexed record, every record has its raw page,
every alert hit names an indexed article. What was written between two copies is at
worst fetched again by the next crawl (the crawl state does not know it yet), never
a record the restored crawl state believes stored but the index lacks.

**Incremental raw archive.** The raw archive grows with every crawl and its rows
never change once written (except a text hash refreshed by re-extraction), so a
backup into a DIR that holds a previous one copies only the versions it lacks, in
one transaction over a snapshot of the archive, removes the ones pruned since, and
refreshes changed text hashes. Other plain files are copied only when their size and
modification time (or else their content hash) differ from the copy in DIR.

**Manifest.** `DIR/manifest.json` says what the backup holds: cyz and schema
versions, when and from where it was taken, and per file its size, SHA-256 and row
counts. It is written last (`"complete": true`); `cyz restore` checks it, each
file's hash and each database's `PRAGMA integrity_check` before copying anything.

**Pruning.** `cyz prune --older-than DAYS` deletes raw page versions fetched more
than DAYS ago (with `--keep-latest`, only superseded ones); the records stay in the
index. `cyz reextract` skips records whose raw page is gone (counted), `cyz history`
shows the versions left.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cyz import __version__
from cyz.alerts.outbox import OUTBOX_FILE
from cyz.crawler.state import STATE_FILE, parse_time
from cyz.lock import LOCK_FILE, data_dir_lock
from cyz.pipelines.archive import ARCHIVE_FILE
from cyz.runs import RUNS_FILE

MANIFEST = "manifest.json"
FORMAT = 1
INDEX_FILE = "index.sqlite3"  # index/__init__.py
REPRINTS_FILE = "reprints.sqlite3"  # crawler/store.py (not imported: it pulls in Scrapy)
SPOOL_DIR = "spool"  # index/spool.py
BACKUP_LOCK = ".cyz-backup.lock"

# (file, what it is), in backup order: see the module docstring before changing it.
DATABASES: tuple[tuple[str, str], ...] = (
    (RUNS_FILE, "run history"),
    (OUTBOX_FILE, "alerts outbox"),
    (STATE_FILE, "crawl state"),
    (REPRINTS_FILE, "reprint index"),
    (INDEX_FILE, "search index"),
)
# Never copied: locks, SQLite's companions, our own temporary files.
_SKIP_NAMES = {LOCK_FILE, "alerts.lock", BACKUP_LOCK, MANIFEST}
_SKIP_SUFFIXES = ("-wal", "-shm", "-journal", ".partial")

Progress = Callable[[str], None]


class BackupError(RuntimeError):
    """A backup, restore or prune that cannot be done, in one line; `code` is its exit code."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


# -- helpers -------------------------------------------------------------------------

def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _skipped(path: Path) -> bool:
    return path.name in _SKIP_NAMES or path.name.endswith(_SKIP_SUFFIXES)


def _sqlite_names() -> set[str]:
    return {name for name, _ in DATABASES} | {ARCHIVE_FILE}


def _plain_files(data_dir: Path) -> Iterator[Path]:
    """The files of the data dir that are not one of its databases (relative paths)."""
    databases = _sqlite_names()
    for root, dirs, files in os.walk(data_dir):
        dirs.sort()
        for name in sorted(files):
            path = Path(root, name)
            rel = path.relative_to(data_dir)
            if len(rel.parts) == 1 and (name in databases or name.startswith(
                    tuple(f"{db}-" for db in databases))):
                continue
            if _skipped(path) or not path.is_file() or path.is_symlink():
                continue
            yield rel


def table_counts(db: sqlite3.Connection) -> dict[str, int]:
    """Rows per table, of the tables that hold data (not FTS5's shadow tables)."""
    rows = db.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table' "
                      "AND name NOT LIKE 'sqlite_%' ORDER BY name").fetchall()
    virtual = [name for name, sql in rows if (sql or "").upper().startswith("CREATE VIRTUAL")]
    counts = {}
    for name, _ in rows:
        if name in virtual or any(name.startswith(f"{v}_") for v in virtual):
            continue
        counts[name] = db.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]
    return counts


def _open_readonly(path: Path) -> sqlite3.Connection:
    """A backup's file, opened without writing to it or next to it."""
    return sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True)


def _db_facts(db: sqlite3.Connection) -> dict:
    facts: dict = {"tables": table_counts(db),
                   "user_version": db.execute("PRAGMA user_version").fetchone()[0]}
    return facts


@contextlib.contextmanager
def _dir_lock(backup_dir: Path) -> Iterator[None]:
    """One backup into a DIR at a time."""
    fd = os.open(backup_dir / BACKUP_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise BackupError(f"another backup into {backup_dir} is running", 5) from None
        yield
    finally:
        os.close(fd)


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(data, fh, ensure_ascii=False, indent=2)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def read_manifest(backup_dir: Path) -> dict | None:
    try:
        data = json.loads((backup_dir / MANIFEST).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise BackupError(f"{backup_dir / MANIFEST}: unreadable manifest: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        raise BackupError(f"{backup_dir / MANIFEST}: not a cyz backup manifest")
    return data


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"


def _inside(path: Path, other: Path) -> bool:
    return path == other or other in path.parents


# -- backup ---------------------------------------------------------------------------

def _copy_database(src_path: Path, dest_path: Path) -> dict:
    """One database at one instant (the online backup API, in one step), into a plain
    rollback-journal file in DIR (no -wal beside it), replacing the previous copy."""
    tmp = dest_path.with_name(dest_path.name + ".partial")
    tmp.unlink(missing_ok=True)
    src = sqlite3.connect(src_path, timeout=30)
    try:
        dst = sqlite3.connect(tmp)
        try:
            src.backup(dst)  # pages=-1: one read transaction, a consistent copy
            dst.execute("PRAGMA journal_mode=DELETE")  # the copy carries the WAL flag
            facts = _db_facts(dst)
        finally:
            dst.close()
    finally:
        src.close()
    os.replace(tmp, dest_path)
    return facts


def _sync_archive(src_path: Path, dest_path: Path) -> dict:
    """The raw archive, incrementally: versions the copy lacks are added, versions gone
    from the archive (pruned) removed, refreshed text hashes updated, all from one
    snapshot of the archive in one transaction. The first backup copies it whole."""
    if not dest_path.exists():
        facts = _copy_database(src_path, dest_path)
        rows = facts["tables"].get("versions", 0)
        db = _open_readonly(dest_path)
        try:
            facts["bytes_added"] = _body_bytes(db, "main")
        finally:
            db.close()
        return {**facts, "added": rows, "removed": 0, "updated": 0, "kept": 0}
    dst = sqlite3.connect(dest_path, isolation_level=None, timeout=30)
    try:
        dst.execute("PRAGMA journal_mode=DELETE")
        dst.execute("ATTACH DATABASE ? AS src", (str(src_path),))
        has_versions = dst.execute(
            "SELECT 1 FROM src.sqlite_master WHERE type = 'table' AND name = 'versions'").fetchone()
        mine = dst.execute(
            "SELECT 1 FROM main.sqlite_master WHERE type = 'table' AND name = 'versions'").fetchone()
        if not (has_versions and mine):
            dst.close()
            dest_path.unlink()
            return _sync_archive(src_path, dest_path)  # an old layout: copy it whole
        # Deferred: the first read of `src` takes its snapshot and no lock a crawl would
        # wait for (IMMEDIATE would take a write lock on every attached database).
        dst.execute("BEGIN")
        try:
            same = ("SELECT 1 FROM {other}.versions o WHERE o.id = {this}.id "
                    "AND o.version = {this}.version")
            removed = dst.execute(
                "DELETE FROM main.versions WHERE NOT EXISTS ("
                + same.format(other="src", this="main.versions")
                + " AND o.body_hash = main.versions.body_hash)").rowcount
            new = ("FROM src.versions s WHERE NOT EXISTS ("
                   + same.format(other="main", this="s") + ")")
            bytes_added = dst.execute(f"SELECT coalesce(sum(length(s.body)), 0) {new}").fetchone()[0]
            added = dst.execute(
                "INSERT INTO main.versions (id, version, url, source_id, http_charset, fetched_at, "
                "body_hash, text_hash, body) SELECT s.id, s.version, s.url, s.source_id, "
                f"s.http_charset, s.fetched_at, s.body_hash, s.text_hash, s.body {new}").rowcount
            updated = dst.execute(
                "UPDATE main.versions SET text_hash = (SELECT s.text_hash FROM src.versions s "
                "WHERE s.id = main.versions.id AND s.version = main.versions.version) "
                "WHERE text_hash IS NOT (SELECT s.text_hash FROM src.versions s "
                "WHERE s.id = main.versions.id AND s.version = main.versions.version)").rowcount
            dst.execute("COMMIT")
        except BaseException:
            dst.execute("ROLLBACK")
            raise
        dst.execute("DETACH DATABASE src")
        facts = _db_facts(dst)
    finally:
        dst.close()
    total = facts["tables"].get("versions", 0)
    return {**facts, "added": added, "removed": removed, "updated": updated,
            "kept": total - added, "bytes_added": bytes_added}


def _body_bytes(db: sqlite3.Connection, schema: str) -> int:
    return db.execute(f"SELECT coalesce(sum(length(body)), 0) FROM {schema}.versions").fetchone()[0]


def _archive_articles(path: Path) -> int:
    db = _open_readonly(path)
    try:
        return db.execute("SELECT count(DISTINCT id) FROM versions").fetchone()[0]
    except sqlite3.OperationalError:
        return 0
    finally:
        db.close()


def _copy_spool_file(src: Path, dest: Path) -> None:
    """A spool file as of now, without a torn last line (the crawl may be appending)."""
    tmp = dest.with_name(dest.name + ".partial")
    with open(src, "rb") as fh:
        data = fh.read()
    if src.suffix == ".jsonl" and data and not data.endswith(b"\n"):
        data = data[: data.rfind(b"\n") + 1]
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    st = src.stat()
    os.utime(tmp, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(tmp, dest)


def _copy_plain(src: Path, dest: Path, previous: dict | None) -> tuple[bool, str]:
    """Copy `src` to `dest` unless the copy there is the same (size and mtime, else
    content hash). Returns (copied, sha256 of the copy)."""
    st = src.stat()
    if dest.exists() and not dest.is_symlink():
        dst = dest.stat()
        if dst.st_size == st.st_size:
            if dst.st_mtime_ns == st.st_mtime_ns and previous and previous.get("sha256") \
                    and previous.get("bytes") == st.st_size:
                return False, previous["sha256"]
            digest = _sha256(src)
            if digest == _sha256(dest):
                os.utime(dest, ns=(st.st_atime_ns, st.st_mtime_ns))
                return False, digest
    dest.parent.mkdir(parents=True, exist_ok=True)
    if src.parent.name == SPOOL_DIR:
        _copy_spool_file(src, dest)
    else:
        tmp = dest.with_name(dest.name + ".partial")
        shutil.copy2(src, tmp)
        os.replace(tmp, dest)
    return True, _sha256(dest)


@dataclass
class BackupResult:
    manifest: dict
    copied: list[str] = field(default_factory=list)


def check_backup_target(data_dir: Path, backup_dir: Path) -> None:
    """Usage errors, before anything is written: DIR inside the data dir (or the data
    dir itself), or a non-empty DIR that is not a cyz backup."""
    data_dir, backup_dir = data_dir.resolve(), backup_dir.resolve()
    if _inside(backup_dir, data_dir):
        raise BackupError(f"{backup_dir} is inside the data dir {data_dir}: "
                          "back up to a directory outside it", 2)
    if _inside(data_dir, backup_dir):
        raise BackupError(f"{backup_dir} contains the data dir {data_dir}: "
                          "back up to a directory outside it", 2)
    if backup_dir.is_dir() and not (backup_dir / MANIFEST).exists():
        others = [p.name for p in backup_dir.iterdir() if p.name != BACKUP_LOCK]
        if others:
            raise BackupError(f"{backup_dir} is not empty and holds no cyz backup ({MANIFEST}): "
                              "give a new or empty directory, or one a backup was written to", 2)


def backup(data_dir: Path, backup_dir: Path, *, engine: str = "sqlite",
           progress: Progress | None = None) -> BackupResult:
    """Copy the data dir's state into `backup_dir` (see the module docstring). Raises
    `BackupError` for usage errors, `OSError`/`sqlite3.Error` when writing fails."""
    say = progress or (lambda line: None)
    data_dir, backup_dir = Path(data_dir).resolve(), Path(backup_dir).resolve()
    check_backup_target(data_dir, backup_dir)
    present = [name for name, _ in DATABASES if (data_dir / name).is_file()]
    if not present and not (data_dir / ARCHIVE_FILE).is_file():
        raise BackupError(f"nothing to back up: {data_dir} holds no cyz data "
                          "(set CYZ_DATA_DIR to the data dir in use)")
    backup_dir.mkdir(parents=True, exist_ok=True)
    with _dir_lock(backup_dir):
        previous = read_manifest(backup_dir) or {"files": {}}
        started = _now()
        manifest: dict = {
            "format": FORMAT, "complete": False, "cyz_version": __version__,
            "created_at": started, "finished_at": None, "source_data_dir": str(data_dir),
            "engine": engine, "schema_versions": {}, "files": {},
        }
        _write_json(backup_dir / MANIFEST, {**previous, "complete": False})
        files: dict[str, dict] = manifest["files"]
        result = BackupResult(manifest)

        def database(name: str, what: str) -> None:
            src = data_dir / name
            if not src.is_file():
                (backup_dir / name).unlink(missing_ok=True)
                return
            say(f"{name}: copying the {what} …")
            facts = _copy_database(src, backup_dir / name)
            size = (backup_dir / name).stat().st_size
            files[name] = {"kind": "sqlite", "what": what, "bytes": size,
                           "sha256": _sha256(backup_dir / name), **facts}
            result.copied.append(name)
            say(f"{name}: {_rows_line(facts['tables'])}, {human_bytes(size)}")

        for name, what in DATABASES[:4]:  # runs, alerts, crawl state, reprints
            database(name, what)
        plain = list(_plain_files(data_dir))
        spool = [rel for rel in plain if rel.parts[0] == SPOOL_DIR]
        others = [rel for rel in plain if rel.parts[0] != SPOOL_DIR]
        for rel in spool:  # after the crawl state, before the index
            _file(data_dir, backup_dir, rel, previous, files, result, "spool", say)
        database(*DATABASES[4])  # the index
        src = data_dir / ARCHIVE_FILE
        if src.is_file():
            say(f"{ARCHIVE_FILE}: adding new raw page versions …")
            facts = _sync_archive(src, backup_dir / ARCHIVE_FILE)
            path = backup_dir / ARCHIVE_FILE
            files[ARCHIVE_FILE] = {"kind": "sqlite", "what": "raw page archive",
                                   "bytes": path.stat().st_size, "sha256": _sha256(path),
                                   "articles": _archive_articles(path), **facts}
            result.copied.append(ARCHIVE_FILE)
            say(f"{ARCHIVE_FILE}: {facts['added']} version(s) added "
                f"({human_bytes(facts['bytes_added'])} compressed), {facts['kept']} already "
                f"in the backup, {facts['removed']} pruned since")
        else:
            (backup_dir / ARCHIVE_FILE).unlink(missing_ok=True)
        for rel in others:
            _file(data_dir, backup_dir, rel, previous, files, result, "file", say)
        # Files of the previous backup that are gone from the data dir go from DIR too.
        for rel in previous.get("files", {}):
            if rel not in files and rel not in _sqlite_names():
                target = backup_dir / rel
                if _inside(target.resolve(), backup_dir) and target.is_file():
                    target.unlink()
        if INDEX_FILE in files:
            manifest["schema_versions"]["index"] = files[INDEX_FILE]["user_version"]
        from cyz.record import PIPELINE_VERSION

        manifest["schema_versions"]["pipeline"] = PIPELINE_VERSION
        for name, facts in files.items():
            if facts["kind"] == "sqlite":
                manifest["schema_versions"][name] = facts["user_version"]
        manifest["totals"] = {
            "files": len(files), "bytes": sum(f["bytes"] for f in files.values()),
            "articles": files.get(INDEX_FILE, {}).get("tables", {}).get("articles"),
            "raw_versions": files.get(ARCHIVE_FILE, {}).get("tables", {}).get("versions"),
        }
        manifest["finished_at"] = _now()
        manifest["complete"] = True
        _write_json(backup_dir / MANIFEST, manifest)
    return result


def _file(data_dir: Path, backup_dir: Path, rel: Path, previous: dict, files: dict,
          result: BackupResult, kind: str, say: Progress) -> None:
    key = rel.as_posix()
    try:
        copied, digest = _copy_plain(data_dir / rel, backup_dir / rel, previous["files"].get(key))
    except FileNotFoundError:
        return  # gone meanwhile (a spool replayed, a mail moved)
    entry = {"kind": kind, "bytes": (backup_dir / rel).stat().st_size, "sha256": digest,
             "copied": copied}
    if kind == "spool" and rel.suffix == ".jsonl":
        with open(backup_dir / rel, "rb") as fh:
            entry["lines"] = sum(1 for _ in fh)
    files[key] = entry
    if copied:
        result.copied.append(key)
        if kind == "spool":
            say(f"{key}: {entry.get('lines', 0)} waiting record(s)")


def _rows_line(tables: dict[str, int]) -> str:
    return ", ".join(f"{n} {name}" for name, n in tables.items()) or "empty"


# -- verify and restore ---------------------------------------------------------------

def verify(backup_dir: Path, progress: Progress | None = None) -> dict:
    """The manifest of a complete, intact backup: every file present with its size and
    SHA-256, every database passing `PRAGMA integrity_check` with the row counts the
    manifest says. Raises `BackupError` naming the first problem."""
    say = progress or (lambda line: None)
    backup_dir = Path(backup_dir)
    if not backup_dir.is_dir():
        raise BackupError(f"no backup at {backup_dir}: not a directory", 2)
    manifest = read_manifest(backup_dir)
    if manifest is None:
        raise BackupError(f"no backup at {backup_dir}: {MANIFEST} is missing", 2)
    if manifest.get("format") != FORMAT:
        raise BackupError(f"{backup_dir}: backup format {manifest.get('format')!r}; this cyz "
                          f"reads format {FORMAT}")
    if not manifest.get("complete"):
        raise BackupError(f"{backup_dir}: the backup is incomplete (it was interrupted or "
                          "failed): take a new one")
    for rel, facts in manifest["files"].items():
        path = backup_dir / rel
        if not _inside(path.resolve(), backup_dir.resolve()):
            raise BackupError(f"{backup_dir}: the manifest names a file outside it: {rel}")
        if not path.is_file():
            raise BackupError(f"{backup_dir}: {rel} is missing")
        if path.stat().st_size != facts.get("bytes") or _sha256(path) != facts.get("sha256"):
            raise BackupError(f"{backup_dir}: {rel} does not match the manifest (size or "
                              "SHA-256): the backup is damaged")
        if facts.get("kind") != "sqlite":
            continue
        db = _open_readonly(path)
        try:
            problems = [row[0] for row in db.execute("PRAGMA integrity_check")]
            counts = table_counts(db) if problems == ["ok"] else {}
        except sqlite3.DatabaseError as exc:
            problems = [str(exc)]
        finally:
            db.close()
        if problems != ["ok"]:
            raise BackupError(f"{backup_dir}: {rel} fails the integrity check: {problems[0]}")
        if counts != facts.get("tables"):
            raise BackupError(f"{backup_dir}: {rel} holds other row counts than the manifest says")
        say(f"{rel}: integrity ok, {_rows_line(counts)}")
    return manifest


def _state_entries(data_dir: Path) -> list[str]:
    """What makes a data dir non-empty (lock files do not)."""
    if not data_dir.is_dir():
        return []
    return sorted(p.name for p in data_dir.iterdir() if p.name not in (LOCK_FILE, "alerts.lock"))


def restore(backup_dir: Path, data_dir: Path, *, force: bool = False,
            progress: Progress | None = None) -> dict:
    """Bring `data_dir` back from the backup in `backup_dir`; returns its manifest.

    Holds the data dir's lock meanwhile (raises `DataDirLocked` while a crawl,
    re-extraction, migration or prune runs). Refuses a non-empty data dir unless
    `force`; verifies the backup (`verify`) before copying anything. With `force` the
    data dir's databases, spool and the files the backup has are replaced; other
    files are left where they are."""
    say = progress or (lambda line: None)
    backup_dir, data_dir = Path(backup_dir).resolve(), Path(data_dir).resolve()
    if _inside(backup_dir, data_dir) or _inside(data_dir, backup_dir):
        raise BackupError(f"the backup {backup_dir} and the data dir {data_dir} overlap", 2)
    with data_dir_lock(data_dir, "restore"):
        existing = _state_entries(data_dir)
        if existing and not force:
            shown = ", ".join(existing[:5]) + (" …" if len(existing) > 5 else "")
            raise BackupError(f"{data_dir} is not empty ({shown}): restore into an empty data "
                              "dir, or pass --force to replace its contents", 2)
        manifest = verify(backup_dir, say)
        if force:
            for name in _sqlite_names():
                for suffix in ("", "-wal", "-shm", "-journal"):
                    (data_dir / f"{name}{suffix}").unlink(missing_ok=True)
            shutil.rmtree(data_dir / SPOOL_DIR, ignore_errors=True)
        for rel, facts in manifest["files"].items():
            src, dest = backup_dir / rel, data_dir / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(dest.name + ".partial")
            shutil.copy2(src, tmp)
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
            for suffix in ("-wal", "-shm", "-journal"):  # never a stale WAL over a new file
                dest.with_name(dest.name + suffix).unlink(missing_ok=True)
            os.replace(tmp, dest)
            say(f"{rel}: restored ({human_bytes(facts['bytes'])})")
    return manifest


# -- prune ----------------------------------------------------------------------------

def prune(data_dir: Path, older_than_days: int, *, dry_run: bool = False,
          keep_latest: bool = False, now: datetime | None = None, wait: bool = False,
          on_wait: Callable[[dict], None] | None = None, sample: int = 20) -> dict:
    """Delete the raw page versions fetched more than `older_than_days` days ago
    (`keep_latest`: never an article's newest version). Records in the index stay.
    A real run holds the data dir's lock (`DataDirLocked` while a crawl runs) and
    compacts the archive afterwards; a dry run changes nothing.

    Returns `{dry_run, cutoff, versions, articles, bytes, raw_gone, by_source:
    {SOURCE: {versions, articles, bytes}}, sample: [{id, url, version, fetched_at}],
    file_bytes_before, file_bytes_after}`; `articles` counts the articles touched,
    `raw_gone` those left with no raw page at all."""
    data_dir = Path(data_dir)
    cutoff = (now or datetime.now(UTC)) - timedelta(days=older_than_days)
    path = data_dir / ARCHIVE_FILE
    report: dict = {"dry_run": dry_run, "cutoff": cutoff.isoformat(timespec="seconds"),
                    "keep_latest": keep_latest, "versions": 0, "articles": 0, "bytes": 0,
                    "raw_gone": 0, "by_source": {}, "sample": [],
                    "file_bytes_before": path.stat().st_size if path.exists() else 0}
    report["file_bytes_after"] = report["file_bytes_before"]
    if not path.exists():
        return report
    lock = contextlib.nullcontext() if dry_run else data_dir_lock(
        data_dir, "prune", wait=wait, on_wait=on_wait)
    with lock:
        db = sqlite3.connect(path, timeout=30, isolation_level=None)
        try:
            db.execute("PRAGMA busy_timeout=30000")
            rows = db.execute(
                "SELECT v.id, v.version, v.url, v.source_id, v.fetched_at, length(v.body), "
                "v.version = (SELECT max(version) FROM versions w WHERE w.id = v.id), "
                "(SELECT count(*) FROM versions w WHERE w.id = v.id) "
                "FROM versions v ORDER BY v.source_id, v.id, v.version").fetchall()
            doomed: list[tuple[str, int]] = []
            per_article: dict[str, int] = {}
            totals: dict[str, int] = {}
            for rid, version, url, source_id, fetched_at, size, newest, count in rows:
                when = parse_time(fetched_at)
                if when is None or when >= cutoff or (keep_latest and newest):
                    continue
                doomed.append((rid, version))
                totals[rid] = count
                per_article[rid] = per_article.get(rid, 0) + 1
                src = report["by_source"].setdefault(source_id,
                                                     {"versions": 0, "articles": 0, "bytes": 0})
                src["versions"] += 1
                src["bytes"] += size or 0
                if per_article[rid] == 1:
                    src["articles"] += 1
                report["bytes"] += size or 0
                if len(report["sample"]) < sample:
                    report["sample"].append({"id": rid, "url": url, "version": version,
                                             "fetched_at": fetched_at})
            report["versions"] = len(doomed)
            report["articles"] = len(per_article)
            report["raw_gone"] = sum(1 for rid, n in per_article.items() if n == totals[rid])
            if dry_run or not doomed:
                return report
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany("DELETE FROM versions WHERE id = ? AND version = ?", doomed)
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("VACUUM")  # give the disk back
            db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            db.close()
        report["file_bytes_after"] = path.stat().st_size
    return report
