"""Storage failures of the data dir, as one error with a one-line message.

A full disk, a read-only or missing data dir, a corrupt SQLite file: SQLite and the OS
raise them under many types, deep inside whichever store hit them first. `storing()`
turns them into a `StorageError` naming the path and the reason, so callers report it
in one line and stop trying (a full disk fails every later write too), and never dump
what they were writing into a log.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class StorageError(RuntimeError):
    """Something under the data dir could not be written or read."""

    def __init__(self, path: Path | str, reason: str, action: str = "store records in"):
        self.path, self.reason, self.action = Path(path), reason, action
        super().__init__(f"cannot {action} {path}: {reason}")


def is_storage_error(exc: BaseException) -> bool:
    """Errors of the disk or the file, not of our code: OS errors, and SQLite's
    operational errors (full, read-only, I/O, cannot open) and corrupt files. Constraint
    and programming errors are bugs and stay what they are."""
    if isinstance(exc, StorageError | OSError | sqlite3.OperationalError):
        return True
    return type(exc) is sqlite3.DatabaseError


def reason_of(exc: BaseException) -> str:
    if isinstance(exc, StorageError):
        return exc.reason
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__


@contextmanager
def storing(path: Path | str, action: str = "store records in") -> Iterator[None]:
    """Run a block that writes (or reads) under `path`; a storage failure in it
    becomes a `StorageError` for `path`."""
    try:
        yield
    except StorageError:
        raise
    except Exception as exc:
        if not is_storage_error(exc):
            raise
        raise StorageError(path, reason_of(exc), action) from exc
