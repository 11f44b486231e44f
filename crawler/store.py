"""The end of the path: reprint clusters, then the index.

`DedupePipeline` places each new or changed record in its story cluster.
`StorePipeline` hands records to a `RecordWriter`, which writes them to the engine in
batches together with their raw pages, and only then records the fetches in the crawl
state — so a page whose record never reached the index is extracted again next run.
`cyz reextract` uses the same `RecordWriter`.

Batches are written every `BATCH` records and every `CYZ_FLUSH_SECONDS`, so a killed
crawl loses seconds of work, not hundreds of pages. Reprint placements are confirmed
with the batch that stores their records (see `dedupe.py`).

A storage failure (a full disk, an unwritable data dir) is caught here, never left to
Scrapy, whose error log would print the item with its page body: the first one is
recorded in the stats (`cyz/storage_error`, one line for the run's report), every
record not stored is counted (`cyz/not_stored`), nothing more is written and the crawl
stops. `new` and `updated` count records once they are stored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from pathlib import Path

from cyz.crawler.items import PageItem, source_stat
from cyz.crawler.process import ArticleItem
from cyz.crawler.state import CrawlState, body_hash
from cyz.index import open_engine
from cyz.index.base import Engine
from cyz.pipelines.archive import RawArchive, RawPage, text_hash
from cyz.pipelines.dedupe import Placement, ReprintIndex
from cyz.record import PIPELINE_VERSION, article_id
from cyz.storage import is_storage_error, reason_of, storing

log = logging.getLogger(__name__)

BATCH = 200
REPRINTS_FILE = "reprints.sqlite3"

# Scrapy signal, sent by a stage that could not write under the data dir (kwarg `error`):
# the dedupe and store stages stop writing, the store reports it and stops the crawl.
storage_failed = object()


def apply_placement(record: dict, placement: Placement) -> None:
    record["cluster_id"] = placement.cluster_id
    record["is_first_in_cluster"] = placement.is_first


class RecordWriter:
    """Batches records (and cluster-flag changes of their siblings) into the engine:
    every `batch` records and, with `max_age`, once the oldest waiting record is that
    many seconds old (`cyz reextract`; the crawl flushes on a timer instead)."""

    def __init__(self, engine: Engine, archive: RawArchive | None = None,
                 on_flush: Callable[[list[dict]], None] | None = None, batch: int = BATCH,
                 max_age: float | None = None, data_dir: Path | None = None):
        self.engine = engine
        self.archive = archive
        self.on_flush = on_flush  # called with the records after each successful write
        self.batch = batch
        self.max_age = max_age
        self.where = data_dir or "the data dir"  # named by a StorageError
        self.pending: dict[str, dict] = {}
        self.removed: set[str] = set()  # ids to delete from the engine
        self.raw: list[RawPage] = []
        self.since: float | None = None  # when the oldest waiting record came

    def add(self, record: dict, cluster_changes: dict[str, bool] | None = None,
            raw: RawPage | None = None) -> None:
        self._waiting()
        self.pending[record["id"]] = record
        self._flip(cluster_changes)
        if raw is not None:
            self.raw.append(raw)
        self._flush_when_due()

    def remove(self, record_id: str, cluster_changes: dict[str, bool] | None = None) -> None:
        """Delete a stored record with the next batch (re-extraction found the page is
        no article); `cluster_changes` are its reprint siblings' new first flags."""
        self._waiting()
        self.pending.pop(record_id, None)
        self.removed.add(record_id)
        self._flip(cluster_changes)
        self._flush_when_due()

    def _waiting(self) -> None:
        if self.since is None:
            self.since = time.monotonic()

    def _flip(self, cluster_changes: dict[str, bool] | None) -> None:
        for other_id, is_first in (cluster_changes or {}).items():
            other = self.pending.get(other_id) or self.engine.get(other_id)
            if other is not None and other.get("is_first_in_cluster") != is_first:
                other["is_first_in_cluster"] = is_first
                self.pending[other_id] = other

    def _flush_when_due(self) -> None:
        if len(self.pending) + len(self.removed) >= self.batch or self.due():
            self.flush()

    def due(self) -> bool:
        return (self.max_age is not None and self.since is not None
                and time.monotonic() - self.since >= self.max_age)

    def get(self, record_id: str) -> dict | None:
        return self.pending.get(record_id) or self.engine.get(record_id)

    def discard(self) -> int:
        """Drop what waits (after a storage failure); returns how many records."""
        dropped = len(self.pending)
        self.pending, self.removed, self.raw, self.since = {}, set(), [], None
        return dropped

    def flush(self) -> list[dict]:
        """Write the raw pages, then the records, delete the removed ones, then call
        `on_flush(records)`. Raises `StorageError` when the data dir cannot take them;
        the batch is dropped then (a full disk would only fail again, page by page)."""
        records, raws, removed = list(self.pending.values()), self.raw, sorted(self.removed)
        self.discard()
        with storing(self.where):
            if raws and self.archive is not None:
                self.archive.put_many(raws)
            if records:
                self.engine.write(records)
            if removed:
                self.engine.delete(removed)
        if self.on_flush:
            self.on_flush(records)
        return records


def _data_dir(settings) -> Path:
    return Path(settings.get("CYZ_DATA_DIR"))


class DedupePipeline:
    def __init__(self, crawler):
        self.stats = crawler.stats
        data_dir = _data_dir(crawler.settings)
        with storing(data_dir):
            self.index = ReprintIndex(data_dir / REPRINTS_FILE)
            # Placements a killed run made for records it never stored.
            dropped = self.index.recover()
        if dropped:
            log.info("dropped %d reprint placement(s) of records never stored", dropped)
        self.stopped = False
        self.signals = crawler.signals
        crawler.signals.connect(self._storage_failed, signal=storage_failed)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def close_spider(self) -> None:
        with suppress(Exception):
            self.index.close()

    def _storage_failed(self, error: BaseException) -> None:
        self.stopped = True

    def process_item(self, item: ArticleItem) -> ArticleItem:
        record = item.record
        if record is None:
            return item
        if self.stopped:
            item.outcome = "not_stored"
            return item
        try:
            placement = self.index.place(record["id"], record["text_zh"], record["published_at"])
        except Exception as exc:  # never left to Scrapy: its log would print the page body
            item.outcome = "not_stored"
            if is_storage_error(exc):
                self.signals.send_catch_log(signal=storage_failed, error=exc)
            else:
                log.error("cannot place %s in its reprint cluster: %s: %s", item.page.url,
                          type(exc).__name__, exc)
            return item
        apply_placement(record, placement)
        item.cluster_changes = placement.changed
        if placement.is_reprint:
            self.stats.inc_value("cyz/reprints")
            self.stats.inc_value(source_stat(item.page.source_id, "reprints"))
        return item


class StorePipeline:
    def __init__(self, crawler):
        self.crawler = crawler
        self.stats = crawler.stats
        settings = crawler.settings
        self.data_dir = data_dir = _data_dir(settings)
        self.flush_seconds = settings.getfloat("CYZ_FLUSH_SECONDS", 5.0)
        with storing(data_dir):
            engine = open_engine(settings.get("CYZ_ENGINE"), data_dir)
            if hasattr(engine, "quiet_unreachable"):
                engine.quiet_unreachable = True  # the crawl's own check said it already
            engine.init()
            self.state = CrawlState(data_dir)
            self.reprints = ReprintIndex(data_dir / REPRINTS_FILE)
            archive = RawArchive(data_dir)
        # (page, outcome, body hash) of fetches whose batch is not stored yet; recorded in the crawl
        # state, and counted as new/updated, once it is.
        self.fetches: list[tuple[PageItem, str, str]] = []
        self.writer = RecordWriter(engine, archive, on_flush=self._flushed, data_dir=data_dir)
        self.error: str | None = None  # the first storage failure: nothing is written after it
        self.closing = False
        self._timer = None
        crawler.signals.connect(self._storage_failed, signal=storage_failed)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def open_spider(self) -> None:
        from twisted.internet import task

        # Flush on time too: a kill then loses at most CYZ_FLUSH_SECONDS of work.
        self._timer = task.LoopingCall(self._flush_on_time)
        self._timer.start(self.flush_seconds, now=False)

    def process_item(self, item: ArticleItem) -> dict:
        page, record, outcome = item.page, item.record, item.outcome
        # What Scrapy logs and counts: small, never the page body.
        summary = {"id": record["id"] if record else None, "url": page.url, "outcome": outcome}
        if outcome == "not_stored" or (self.error is not None and outcome in ("new", "updated")):
            self.stats.inc_value("cyz/not_stored")
            self.stats.inc_value(source_stat(page.source_id, "not_stored"))
            return summary
        if self.error is not None:
            return summary
        try:
            self._store(item)
        except Exception as exc:  # never left to Scrapy: its log would print the page body
            self._failed(exc)
        return summary

    def _store(self, item: ArticleItem) -> None:
        page, record, outcome = item.page, item.record, item.outcome
        if outcome in ("new", "updated"):
            self.fetches.append((page, outcome, item.body_hash))
            # The worker hashed and compressed the body (`ArticleItem.compressed`); a
            # caller handing the body itself (tests, other pipelines) still works.
            raw = RawPage(record["id"], page.url, page.source_id, page.http_charset,
                          page.fetched_at or record["crawled_at"], page.body, text_hash(record),
                          body_hash=item.body_hash, compressed=item.compressed)
            record["version"], record["updated_at"] = self.writer.archive.version_of(raw)
            self.writer.add(record, item.cluster_changes, raw)
        elif outcome == "not_article" and (
                indexed := self.writer.get(article_id(page.canonical_url))) is not None:
            # An indexed article's URL now serves a list or section index: taken down (a
            # CMS sends a deleted article's URL to its column). Gone, as after a 404; the
            # record keeps its text.
            if not indexed.get("gone_at"):
                log.info("an indexed article's URL now serves a list page (taken down?): %s",
                         page.url)
                self.stats.inc_value("cyz/gone")
                self.stats.inc_value(source_stat(page.source_id, "gone"))
            self._mark_gone(page, indexed)
        elif outcome in ("unchanged", "not_article"):
            # Remembered as fetched: the same body is not extracted again next run.
            self.fetches.append((page, outcome, item.body_hash))
        elif outcome == "gone":
            self._mark_gone(page)

    def _mark_gone(self, page: PageItem, record: dict | None = None) -> None:
        # When the 404/410 was seen (the crawl's clock: the revisit schedule counts from it).
        when = page.fetched_at or datetime.now(UTC).isoformat(timespec="seconds")
        with storing(self.data_dir):
            self.state.mark_gone(page.canonical_url, when, status=page.status)
        record = record or self.writer.get(article_id(page.canonical_url))
        if record is not None and not record.get("gone_at"):
            record["gone_at"] = when
            self.writer.add(record)

    def _flush_on_time(self) -> None:
        if self.error is None and (self.writer.pending or self.fetches):
            try:
                self.writer.flush()
            except Exception as exc:  # a LoopingCall that raises stops, with a traceback
                self._failed(exc)

    def _flushed(self, records: list[dict]) -> None:
        """A batch is in the engine: count it, confirm its reprint placements, then
        record its fetches (a crash before that re-fetches the pages, never loses them)."""
        for page, outcome, _digest in self.fetches:
            if outcome in ("new", "updated"):
                self.stats.inc_value(f"cyz/{outcome}")
                self.stats.inc_value(source_stat(page.source_id, outcome))
        fetches = self.fetches
        self.fetches = []
        with storing(self.data_dir):
            self.reprints.confirm([r["id"] for r in records])
            with self.state.transaction():
                for page, _outcome, digest in fetches:
                    self._record_fetch(page, digest)

    def _record_fetch(self, page: PageItem, digest: str = "") -> None:
        if page.status == 304:
            self.state.record_fetch(page.canonical_url, url=page.url, source_id=page.source_id,
                                    status=304, fetched_at=page.fetched_at)
        else:
            self.state.record_fetch(
                page.canonical_url, url=page.url, source_id=page.source_id, status=page.status,
                etag=page.etag, last_modified=page.last_modified,
                content_hash=digest or body_hash(page.body), pipeline_version=PIPELINE_VERSION,
                fetched_at=page.fetched_at)

    def _storage_failed(self, error: BaseException) -> None:
        self._failed(error)

    def _failed(self, exc: BaseException) -> None:
        """Count what is lost, remember the first failure, stop writing and crawling."""
        lost = [page for page, outcome, _digest in self.fetches if outcome in ("new", "updated")]
        self.fetches = []
        self.writer.discard()
        if lost:
            self.stats.inc_value("cyz/not_stored", len(lost))
            for page in lost:
                self.stats.inc_value(source_stat(page.source_id, "not_stored"))
        if self.error is not None:
            return
        if is_storage_error(exc):
            self.error = f"cannot store records in {self.data_dir}: {reason_of(exc)}"
        else:
            self.error = (f"cannot store records in the {self.writer.engine.name} index: "
                          f"{type(exc).__name__}: {exc}")
        # One line for the whole run, printed by whoever started it (cyz crawl, the
        # scheduler's log): not one per page.
        self.stats.set_value("cyz/storage_error", self.error)
        log.info("%s; stopping the crawl", self.error)
        # The dedupe stage stops placing too (its handler; ours returns: error is set).
        self.crawler.signals.send_catch_log(signal=storage_failed, error=exc)
        self._stop_crawl()

    def _stop_crawl(self) -> None:
        engine = self.crawler.engine
        if self.closing or engine is None or engine.spider is None:
            return
        from scrapy.utils.defer import deferred_from_coro

        deferred_from_coro(engine.close_spider_async(reason="storage_error")).addErrback(
            lambda failure: None)  # the crawl is closing anyway

    def close_spider(self) -> None:
        self.closing = True
        if self._timer is not None and self._timer.running:
            self._timer.stop()
        try:
            if self.error is None:
                try:
                    self.writer.flush()
                except Exception as exc:
                    self._failed(exc)
            try:
                self.writer.engine.refresh()
            except Exception as exc:  # the records are stored or spooled; refresh is a courtesy
                log.warning("%s: cannot refresh the index: %s", self.writer.engine.name, exc)
        finally:
            for closable in (self.writer.engine, self.writer.archive, self.state, self.reprints):
                with suppress(Exception):
                    closable.close()
