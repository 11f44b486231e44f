"""Scrapy item pipelines for the end of the path: reprint clusters, then the index.

`DedupePipeline` places each new or changed record in its story cluster. `StorePipeline`
writes records to the engine in batches and only then records the fetch in the crawl
state, so a page whose record never reached the index is extracted again next run.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from cyz.crawler.state import CrawlState
from cyz.index import open_engine
from cyz.pipelines.dedupe import ReprintIndex

log = logging.getLogger(__name__)

BATCH = 200


def _data_dir(settings):
    from pathlib import Path

    return Path(settings.get("CYZ_DATA_DIR"))


class DedupePipeline:
    def __init__(self, crawler):
        self.stats = crawler.stats
        self.index = ReprintIndex(_data_dir(crawler.settings) / "reprints.sqlite3")

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def close_spider(self, spider=None):
        self.index.close()

    def process_item(self, item, spider=None):
        record = item["record"]
        if record is None:
            return item
        placement = self.index.place(record["id"], record["text_zh"], record["published_at"])
        record["cluster_id"] = placement.cluster_id
        record["is_first_in_cluster"] = placement.is_first
        item["cluster_changes"] = placement.changed
        if placement.is_reprint:
            self.stats.inc_value("cyz/reprints")
        return item


class StorePipeline:
    def __init__(self, crawler):
        self.stats = crawler.stats
        settings = crawler.settings
        self.engine = open_engine(settings.get("CYZ_ENGINE"), _data_dir(settings))
        self.engine.init()
        self.state = CrawlState.for_settings(settings)
        self.pending: dict[str, dict] = {}  # id -> record waiting for the next batch write
        self.fetches: list[dict] = []  # pages to record in the state once their batch is stored

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def process_item(self, item, spider=None):
        page, record, outcome = item["page"], item["record"], item["outcome"]
        if outcome in ("new", "updated"):
            self.stats.inc_value(f"cyz/{outcome}")
            self.pending[record["id"]] = record
            for other_id, is_first in item.get("cluster_changes", {}).items():
                self._set_first(other_id, is_first)
            self.fetches.append(page)
        elif outcome == "unchanged":
            self.fetches.append(page)
        elif outcome == "gone":
            self._mark_gone(page)
        if len(self.pending) >= BATCH:
            self.flush()
        return {"id": record["id"] if record else None, "url": page["url"], "outcome": outcome}

    def _set_first(self, record_id: str, is_first: bool) -> None:
        record = self.pending.get(record_id) or self.engine.get(record_id)
        if record is not None and record.get("is_first_in_cluster") != is_first:
            record["is_first_in_cluster"] = is_first
            self.pending[record_id] = record

    def _mark_gone(self, page: dict) -> None:
        when = datetime.now(UTC).isoformat(timespec="seconds")
        self.state.mark_gone(page["canonical_url"], when)
        from cyz.record import article_id

        record = self.engine.get(article_id(page["canonical_url"]))
        if record is not None and not record.get("gone_at"):
            record["gone_at"] = when
            self.pending[record["id"]] = record
            self.stats.inc_value("cyz/gone")

    def flush(self) -> None:
        if self.pending:
            self.engine.write(list(self.pending.values()))
            self.pending.clear()
        for page in self.fetches:
            self.state.record_fetch(page)
        self.fetches.clear()

    def close_spider(self, spider=None):
        try:
            self.flush()
            self.engine.refresh()
        finally:
            self.engine.close()
            self.state.close()
