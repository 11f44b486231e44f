"""The end of the path: reprint clusters, then the index.

`DedupePipeline` places each new or changed record in its story cluster.
`StorePipeline` hands records to a `RecordWriter`, which writes them to the engine in
batches together with their raw pages, and only then records the fetches in the crawl
state — so a page whose record never reached the index is extracted again next run.
`cyz reextract` uses the same `RecordWriter`.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from cyz.crawler.items import PageItem
from cyz.crawler.state import CrawlState, body_hash
from cyz.index import open_engine
from cyz.index.base import Engine
from cyz.pipelines.archive import RawArchive, RawPage, text_hash
from cyz.pipelines.dedupe import Placement, ReprintIndex
from cyz.pipelines.process import ArticleItem
from cyz.record import PIPELINE_VERSION, article_id

log = logging.getLogger(__name__)

BATCH = 200


def apply_placement(record: dict, placement: Placement) -> None:
    record["cluster_id"] = placement.cluster_id
    record["is_first_in_cluster"] = placement.is_first


class RecordWriter:
    """Batches records (and cluster-flag changes of their siblings) into the engine."""

    def __init__(self, engine: Engine, archive: RawArchive | None = None,
                 on_flush=None, batch: int = BATCH):
        self.engine = engine
        self.archive = archive
        self.on_flush = on_flush  # called after each successful write
        self.batch = batch
        self.pending: dict[str, dict] = {}
        self.raw: list[RawPage] = []

    def add(self, record: dict, cluster_changes: dict[str, bool] | None = None,
            raw: RawPage | None = None) -> None:
        self.pending[record["id"]] = record
        for other_id, is_first in (cluster_changes or {}).items():
            other = self.pending.get(other_id) or self.engine.get(other_id)
            if other is not None and other.get("is_first_in_cluster") != is_first:
                other["is_first_in_cluster"] = is_first
                self.pending[other_id] = other
        if raw is not None:
            self.raw.append(raw)
        if len(self.pending) >= self.batch:
            self.flush()

    def get(self, record_id: str) -> dict | None:
        return self.pending.get(record_id) or self.engine.get(record_id)

    def flush(self) -> None:
        if self.raw and self.archive is not None:
            self.archive.put_many(self.raw)
        self.raw.clear()
        if self.pending:
            self.engine.write(list(self.pending.values()))
            self.pending.clear()
        if self.on_flush:
            self.on_flush()


def _data_dir(settings) -> Path:
    return Path(settings.get("CYZ_DATA_DIR"))


class DedupePipeline:
    def __init__(self, crawler):
        self.stats = crawler.stats
        self.index = ReprintIndex(_data_dir(crawler.settings) / "reprints.sqlite3")

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def close_spider(self) -> None:
        self.index.close()

    def process_item(self, item: ArticleItem) -> ArticleItem:
        record = item.record
        if record is None:
            return item
        placement = self.index.place(record["id"], record["text_zh"], record["published_at"],
                                     item.signature)
        apply_placement(record, placement)
        item.cluster_changes = placement.changed
        if placement.is_reprint:
            self.stats.inc_value("cyz/reprints")
        return item


class StorePipeline:
    def __init__(self, crawler):
        self.stats = crawler.stats
        settings = crawler.settings
        data_dir = _data_dir(settings)
        engine = open_engine(settings.get("CYZ_ENGINE"), data_dir)
        engine.init()
        self.state = CrawlState(data_dir)
        self.fetches: list[PageItem] = []  # recorded in the crawl state once their batch is stored
        self.writer = RecordWriter(engine, RawArchive(data_dir), on_flush=self._record_fetches)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def process_item(self, item: ArticleItem) -> dict:
        page, record, outcome = item.page, item.record, item.outcome
        if outcome in ("new", "updated"):
            self.stats.inc_value(f"cyz/{outcome}")
            raw = RawPage(record["id"], page.url, page.source_id, page.http_charset,
                          page.fetched_at or record["crawled_at"], page.body, text_hash(record))
            record["version"], record["updated_at"] = self.writer.archive.version_of(raw)
            self.fetches.append(page)
            self.writer.add(record, item.cluster_changes, raw)
        elif outcome == "unchanged":
            self.fetches.append(page)
        elif outcome == "gone":
            self._mark_gone(page)
        # What Scrapy logs and counts: small, never the page body.
        return {"id": record["id"] if record else None, "url": page.url, "outcome": outcome}

    def _mark_gone(self, page: PageItem) -> None:
        when = datetime.now(UTC).isoformat(timespec="seconds")
        self.state.mark_gone(page.canonical_url, when, status=page.status)
        record = self.writer.get(article_id(page.canonical_url))
        if record is not None and not record.get("gone_at"):
            record["gone_at"] = when
            self.writer.add(record)

    def _record_fetches(self) -> None:
        with self.state.transaction():
            self._record_each_fetch()
        self.fetches.clear()

    def _record_each_fetch(self) -> None:
        for page in self.fetches:
            if page.status == 304:
                self.state.record_fetch(page.canonical_url, url=page.url, source_id=page.source_id,
                                        status=304, fetched_at=page.fetched_at)
            else:
                self.state.record_fetch(
                    page.canonical_url, url=page.url, source_id=page.source_id, status=page.status,
                    etag=page.etag, last_modified=page.last_modified,
                    content_hash=body_hash(page.body), pipeline_version=PIPELINE_VERSION,
                    fetched_at=page.fetched_at)

    def close_spider(self) -> None:
        try:
            self.writer.flush()
            self.writer.engine.refresh()
        finally:
            self.writer.engine.close()
            self.writer.archive.close()
            self.state.close()
