"""A durable on-disk spool: records an engine could not take wait here for the next run.

JSON lines under `<data_dir>/spool/<engine>.jsonl`, appended and fsync'ed before the
crawl state records the page as stored, so an engine outage or a rejected bulk item
delays a record and never drops it. A record that keeps being rejected (a mapping
error, not an outage) moves to `<engine>.rejected.jsonl` after `MAX_ATTEMPTS` replays
for the operator to look at, so it cannot block the spool forever.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

MAX_ATTEMPTS = 5


class Spool:
    def __init__(self, data_dir: Path, engine: str):
        self.dir = Path(data_dir) / "spool"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / f"{engine}.jsonl"
        self.rejected = self.dir / f"{engine}.rejected.jsonl"
        self.replaying = self.dir / f"{engine}.replaying.jsonl"
        self.state_path = self.dir / f"{engine}.state.json"

    def _append(self, path: Path, entries: list[dict]) -> None:
        if not entries:
            return
        with open(path, "a", encoding="utf-8") as fh:
            for entry in entries:
                fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def park(self, records: list[dict], reason: str, attempts: int = 0) -> None:
        """Keep `records` for a later replay."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        self._append(self.path, [{"record": r, "reason": reason, "attempts": attempts,
                                  "parked_at": now} for r in records])

    def __len__(self) -> int:
        total = 0
        for path in (self.path, self.replaying):
            if path.exists():
                with open(path, "rb") as fh:
                    total += sum(1 for _ in fh)
        return total

    def rejected_count(self) -> int:
        if not self.rejected.exists():
            return 0
        with open(self.rejected, "rb") as fh:
            return sum(1 for _ in fh)

    def take(self) -> Iterator[dict]:
        """Every parked entry, oldest first. The spool is moved aside first, so entries
        parked meanwhile are kept; call `done()` once the taken entries are handled
        (re-park what still failed before that)."""
        if not self.replaying.exists():
            if not self.path.exists():
                return
            os.replace(self.path, self.replaying)
        with open(self.replaying, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if line:
                    yield json.loads(line)

    def done(self) -> None:
        self.replaying.unlink(missing_ok=True)

    def reject(self, entries: list[dict]) -> None:
        self._append(self.rejected, entries)

    # -- bookkeeping for `cyz index status` ---------------------------------------
    def note_flush(self) -> None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        self.state_path.write_text(json.dumps({"last_flush": now}), encoding="utf-8")

    def last_flush(self) -> str | None:
        try:
            return json.loads(self.state_path.read_text(encoding="utf-8")).get("last_flush")
        except (OSError, ValueError):
            return None

    def oldest_parked_at(self) -> str | None:
        """When the oldest waiting entry was parked (ISO 8601 UTC), or None: read-only,
        for `cyz health`. Entries are appended in time order, and those taken by a
        replay still running (`replaying`) are older than any parked meanwhile."""
        for path in (self.replaying, self.path):
            try:
                with open(path, encoding="utf-8") as fh:
                    for line in fh:
                        if line.strip():
                            return json.loads(line).get("parked_at")
            except FileNotFoundError:
                continue
            except (OSError, ValueError):  # a torn last write is the replay's business
                return None
        return None
