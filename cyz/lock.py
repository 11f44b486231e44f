"""One writer per data dir: crawls, re-extraction, migrations and pruning take
`<data_dir>/cyz.lock` first.

Two crawls of one data dir would fetch everything twice and write two summaries that
disagree; a re-extraction or a migration beside a crawl would race it for the same
records. The lock is an `fcntl.flock` on the file, so the kernel releases it when its
holder dies, however it dies: a stale lock cannot outlive a crash. The file names the
holder (pid, command, start time) for the message a second command prints.

The crawl passes the locked descriptor to its child process, which holds it too: the
lock stays taken while any of them runs, so a crawl child orphaned by a killed parent
cannot overlap the next run.

    with data_dir_lock(data_dir, "prune"):
        ...
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from cyz.storage import StorageError, reason_of

LOCK_FILE = "cyz.lock"


def command_line() -> str:
    """This process's command line as the operator typed it (`cyz crawl --source x`)."""
    argv = list(sys.argv) or ["?"]
    prog = Path(argv[0]).name
    if prog in ("cli.py", "__main__.py", "-m", "-c"):
        prog = "cyz"
    return " ".join([prog, *argv[1:]])


class DataDirLocked(RuntimeError):
    """Another crawl, re-extraction, migration or prune holds the data dir."""

    def __init__(self, data_dir: Path, holder: dict | None):
        self.data_dir, self.holder = data_dir, holder or {}
        super().__init__(f"{data_dir} is in use by {describe(self.holder)}; "
                         "try again when it has finished, or pass --wait")


def describe(holder: dict) -> str:
    """`cyz crawl` (pid 123, crawl process 124, since 2024-12-05T02:00:00+00:00)."""
    if not holder:
        return "another cyz process (its pid is not recorded yet)"
    parts = [f"pid {holder.get('pid', '?')}"]
    if holder.get("crawl_pid"):
        parts.append(f"crawl process {holder['crawl_pid']}")
    if holder.get("started_at"):
        parts.append(f"since {holder['started_at']}")
    kind = holder.get("kind", "")
    command = holder.get("command", "")
    return f"{kind} `{command}` ({', '.join(parts)})".strip()


def read_holder(data_dir: Path) -> dict:
    try:
        text = (Path(data_dir) / LOCK_FILE).read_text(encoding="utf-8")
        holder = json.loads(text) if text.strip() else {}
    except (OSError, ValueError):
        return {}
    return holder if isinstance(holder, dict) else {}


class DataDirLock:
    """An exclusive lock on a data dir for one kind of work (crawl, reextract, migrate,
    prune). `acquire()` raises `DataDirLocked` when it is taken, or waits for it."""

    def __init__(self, data_dir: Path, kind: str, command: str | None = None):
        self.data_dir = Path(data_dir)
        self.path = self.data_dir / LOCK_FILE
        self.kind = kind
        self.command = command or command_line()
        self.fd: int | None = None
        self.holder: dict = {}

    def acquire(self, *, wait: bool = False,
                on_wait: Callable[[dict], None] | None = None) -> DataDirLock:
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StorageError(self.data_dir, reason_of(exc), "use the data dir") from None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = read_holder(self.data_dir)
                if not wait:
                    raise DataDirLocked(self.data_dir, holder) from None
                if on_wait is not None:
                    on_wait(holder)
                fcntl.flock(fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self.note(pid=os.getpid(), kind=self.kind, command=self.command,
                  started_at=datetime.now(UTC).isoformat(timespec="seconds"), replace=True)
        return self

    def note(self, *, replace: bool = False, **fields: object) -> None:
        """Record facts about the holder (e.g. the crawl child's pid) in the lock file."""
        if self.fd is None:
            return
        self.holder = dict(fields) if replace else {**self.holder, **fields}
        data = json.dumps(self.holder, ensure_ascii=False).encode("utf-8")
        try:
            os.ftruncate(self.fd, 0)
            os.pwrite(self.fd, data, 0)
        except OSError:
            pass  # a full disk: the lock holds all the same, only unlabelled

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd = self.fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> DataDirLock:
        if self.fd is None:
            self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextmanager
def data_dir_lock(data_dir: Path, kind: str, *, wait: bool = False,
                  on_wait: Callable[[dict], None] | None = None,
                  command: str | None = None) -> Iterator[DataDirLock]:
    """Hold the data dir's lock for the block (see the module docstring)."""
    lock = DataDirLock(data_dir, kind, command).acquire(wait=wait, on_wait=on_wait)
    try:
        yield lock
    finally:
        lock.release()


def print_waiting(holder: dict) -> None:
    """The default `on_wait`: one line on stderr, so a waiting command is not a mystery."""
    print(f"waiting for {describe(holder)} to finish …", file=sys.stderr, flush=True)
