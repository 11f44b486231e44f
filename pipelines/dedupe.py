"""Reprint detection: the same story on different sites shares one `cluster_id`.

Each article's simplified text becomes a MinHash signature (datasketch). Signatures are
banded (locality-sensitive hashing) and the bands kept in SQLite under the data dir, so
a new article finds its likely reprints with a few indexed look-ups, across runs, with
no index held in memory. Candidates are confirmed by the signatures' Jaccard estimate.
Within a cluster the earliest published copy is `is_first_in_cluster`.

A placement is *pending* until the record it belongs to is stored: the store confirms
the placements of each batch it writes (`confirm`), and the next run drops the pending
ones left by a crash (`recover`). Otherwise a crawl killed between placing and storing
would leave members whose records never reached the index, and later reprints would
join clusters named after records that do not exist.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import numpy as np

NUM_PERM = 120
BANDS, ROWS = 20, 6  # LSH threshold ≈ (1/20) ** (1/6) ≈ 0.61
SIMILARITY = 0.6  # Jaccard of 4-character shingles above which two texts are one story
SHINGLE = 4
MIN_CHARS = 80  # shorter bodies (captions, stubs) are never clustered

_NOISE = re.compile(r"[\s\W_]+", re.UNICODE)


def signature(text: str) -> np.ndarray | None:
    chars = _NOISE.sub("", text)
    if len(chars) < MIN_CHARS:
        return None
    # datasketch's package import brings scipy (≈ 50 MB): made here, in the crawl process,
    # rather than in every extraction worker.
    from datasketch import MinHash

    mh = MinHash(num_perm=NUM_PERM, seed=7)
    mh.update_batch({chars[i : i + SHINGLE].encode("utf-8") for i in range(len(chars) - SHINGLE + 1)})
    return mh.hashvalues.astype(np.uint64)


def _bands(sig: np.ndarray) -> list[int]:
    # Band keys: a stable 63-bit hash of each band's rows, tagged with the band number.
    keys = []
    for b in range(BANDS):
        digest = hashlib.blake2b(sig[b * ROWS : (b + 1) * ROWS].tobytes(), digest_size=8,
                                 person=b.to_bytes(2, "big")).digest()
        keys.append(int.from_bytes(digest, "big") >> 1)
    return keys


@dataclass
class Placement:
    cluster_id: str
    is_first: bool
    is_reprint: bool  # joined a cluster that other articles already form
    changed: dict[str, bool]  # other members whose is_first_in_cluster flips


class ReprintIndex:
    """Persistent LSH over article signatures: `place()` assigns a record to its cluster."""

    def __init__(self, path: Path):
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA journal_mode=WAL")
        # Losing the last placements in a power cut only re-clusters those pages next run.
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(
            """
            CREATE TABLE IF NOT EXISTS members (
                id TEXT PRIMARY KEY, cluster_id TEXT NOT NULL, published_at TEXT,
                is_first INTEGER NOT NULL, sig BLOB NOT NULL);
            CREATE INDEX IF NOT EXISTS members_cluster ON members(cluster_id);
            CREATE TABLE IF NOT EXISTS bands (key INTEGER NOT NULL, id TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS bands_key ON bands(key);
            CREATE INDEX IF NOT EXISTS bands_id ON bands(id);
            """
        )
        columns = {row[1] for row in self.db.execute("PRAGMA table_info(members)")}
        if "pending" not in columns:  # an index from before pending placements: all stored
            with self.db:
                self.db.execute("ALTER TABLE members ADD COLUMN pending INTEGER NOT NULL DEFAULT 0")

    def close(self) -> None:
        self.db.close()

    def place(self, record_id: str, text_zh: str, published_at: str | None) -> Placement:
        """Assign `record_id` to a cluster (its own when it has no reprint) and persist it."""
        sig = signature(text_zh)
        with self.db:
            changed = self._forget(record_id)
            if sig is None:
                return Placement(record_id, True, False, changed)
            keys = _bands(sig)
            marks = ",".join("?" * len(keys))
            candidates = self.db.execute(
                f"SELECT DISTINCT m.id, m.cluster_id, m.sig FROM bands b JOIN members m ON m.id = b.id "
                f"WHERE b.key IN ({marks})", keys).fetchall()
            best, best_sim = None, SIMILARITY
            for _other_id, cluster_id, blob in candidates:
                sim = float(np.mean(np.frombuffer(blob, dtype=np.uint64) == sig))
                if sim >= best_sim:
                    best, best_sim = cluster_id, sim
            cluster_id = best or record_id
            self.db.execute(
                "INSERT INTO members (id, cluster_id, published_at, is_first, sig, pending) "
                "VALUES (?, ?, ?, 0, ?, 1)", (record_id, cluster_id, published_at, sig.tobytes()))
            self.db.executemany("INSERT INTO bands VALUES (?, ?)", [(k, record_id) for k in keys])
            changed.update(self._elect_first(cluster_id))
        is_first = changed.pop(record_id, None)
        if is_first is None:
            is_first = bool(self.db.execute(
                "SELECT is_first FROM members WHERE id = ?", (record_id,)).fetchone()[0])
        return Placement(cluster_id, is_first, best is not None, changed)

    def confirm(self, ids: list[str]) -> None:
        """The records `ids` are stored: their placements are final."""
        with self.db:
            self.db.executemany("UPDATE members SET pending = 0 WHERE id = ? AND pending = 1",
                                [(i,) for i in ids])

    def recover(self) -> int:
        """Drop the placements a crashed run made for records it never stored, and
        re-elect the first copy of their clusters. Call at the start of a run, under the
        data dir lock. Returns how many were dropped."""
        with self.db:
            rows = self.db.execute("SELECT id, cluster_id FROM members WHERE pending = 1").fetchall()
            for record_id, _ in rows:
                self.db.execute("DELETE FROM bands WHERE id = ?", (record_id,))
                self.db.execute("DELETE FROM members WHERE id = ?", (record_id,))
            for cluster_id in {cluster for _, cluster in rows}:
                self._elect_first(cluster_id)
        return len(rows)

    def delete(self, ids: list[str]) -> dict[str, bool]:
        """Forget records deleted from the index (`cyz demo --clean`, `cyz reextract`);
        returns the other members whose `is_first_in_cluster` flips."""
        changed: dict[str, bool] = {}
        with self.db:
            for record_id in ids:
                changed.update(self._forget(record_id))
        return {k: v for k, v in changed.items() if k not in ids}

    def _forget(self, record_id: str) -> dict[str, bool]:
        """Drop an earlier placement of `record_id` (its text may have changed)."""
        row = self.db.execute("SELECT cluster_id FROM members WHERE id = ?", (record_id,)).fetchone()
        self.db.execute("DELETE FROM bands WHERE id = ?", (record_id,))
        self.db.execute("DELETE FROM members WHERE id = ?", (record_id,))
        return self._elect_first(row[0]) if row else {}

    def _elect_first(self, cluster_id: str) -> dict[str, bool]:
        """Mark the earliest published member first; return members whose flag changed."""
        rows = self.db.execute(
            "SELECT id, is_first FROM members WHERE cluster_id = ? "
            "ORDER BY published_at IS NULL, published_at, id", (cluster_id,)).fetchall()
        changed = {}
        for position, (member_id, was_first) in enumerate(rows):
            now_first = position == 0
            if bool(was_first) != now_first:
                changed[member_id] = now_first
                self.db.execute("UPDATE members SET is_first = ? WHERE id = ?",
                                (int(now_first), member_id))
        return changed
