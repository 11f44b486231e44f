"""Scrapy item pipeline: a fetched page becomes an article record (or is skipped as unchanged).

The spider yields one `PageItem` per article-page outcome. This stage decides what the
outcome means for the index and runs the per-page pipeline only when the page changed:
    200, body or pipeline changed   → record built       (new / updated)
    200, same body, same pipeline   → skipped             (unchanged)
    304 Not Modified                → skipped             (unchanged)
    404 / 410 of a page we indexed  → record marked gone  (gone)
"""

from __future__ import annotations

import hashlib
import logging

from cyz.crawler.state import CrawlState
from cyz.pipelines.page import build_record
from cyz.record import PIPELINE_VERSION

log = logging.getLogger(__name__)


class ProcessPipeline:
    def __init__(self, crawler, state: CrawlState):
        self.crawler = crawler
        self.stats = crawler.stats
        self.state = state

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler, CrawlState.for_settings(crawler.settings))

    def close_spider(self, spider=None):
        self.state.close()

    def process_item(self, item, spider=None):
        page = dict(item)
        status = page["status"]
        known = self.state.get(page["canonical_url"])
        if status == 304:
            self.stats.inc_value("cyz/unchanged")
            return {"page": page, "record": None, "outcome": "unchanged"}
        if status in (404, 410):
            outcome = "gone" if known else "missing"
            return {"page": page, "record": None, "outcome": outcome}
        body_hash = hashlib.sha1(page["body"]).hexdigest()
        if self.state.is_unchanged(page["canonical_url"], body_hash, PIPELINE_VERSION):
            self.stats.inc_value("cyz/unchanged")
            return {"page": page, "record": None, "outcome": "unchanged"}
        source = spider.sources[page["source_id"]]
        try:
            record = build_record(page["body"], page["url"], source=source,
                                  http_charset=page.get("http_charset"),
                                  fetched_at=page.get("fetched_at"))
        except Exception as exc:  # a page the pipeline cannot handle must not stop the crawl
            log.error("extraction failed for %s: %s: %s", page["url"], type(exc).__name__, exc)
            self.stats.inc_value("cyz/failed/extraction_error")
            return {"page": page, "record": None, "outcome": "failed"}
        if not record["text"].strip():
            log.warning("no article text found in %s", page["url"])
            self.stats.inc_value("cyz/empty_text")
        self.stats.inc_value("cyz/extracted")
        return {"page": page, "record": record, "outcome": "updated" if known else "new"}
