"""Scrapy item pipeline: a fetched page becomes an article record (or is skipped as unchanged).

The spider yields one `PageItem` per article-page outcome. This stage decides what the
outcome means for the index and runs the per-page pipeline only when the page changed:
    200, body or pipeline changed   → record built       (new / updated)
    200, same body, same pipeline   → skipped             (unchanged)
    304 Not Modified                → skipped             (unchanged)
    200, a list page, not an article → counted             (not_article)
    404 / 410 of a page we indexed  → record marked gone  (gone)
    200 without text where an indexed article stood → marked gone, text kept (gone)
Items leave as `ArticleItem`s for the dedupe and store stages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from cyz.crawler.items import PageItem, source_stat
from cyz.crawler.state import CrawlState, body_hash
from cyz.crawler.workers import ExtractionPool
from cyz.record import PIPELINE_VERSION, article_id

log = logging.getLogger(__name__)


@dataclass
class ArticleItem:
    page: PageItem
    outcome: str  # new | updated | unchanged | not_article | gone | failed
    record: dict | None = None
    cluster_changes: dict[str, bool] = field(default_factory=dict)
    # SHA-1 of the page body (crawl state, raw archive); "" for a 304 or a 404/410.
    body_hash: str = ""
    # The body zlib-compressed for the raw archive, by the worker (new and updated only).
    compressed: bytes | None = None


class ProcessPipeline:
    def __init__(self, crawler):
        self.crawler = crawler
        self.stats = crawler.stats
        self.state = CrawlState(Path(crawler.settings["CYZ_DATA_DIR"]))
        workers = crawler.settings.getint("CYZ_WORKERS")  # 0: one per core
        # CYZ_PAGE_TIMEOUT: seconds one page's extraction may take (0 or unset: no limit;
        # not enforced with one worker, which extracts in the crawl process itself).
        self.page_timeout = crawler.settings.getfloat("CYZ_PAGE_TIMEOUT", 0.0) or None
        self.pool = ExtractionPool(workers or None, timeout=self.page_timeout)

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler)

    def close_spider(self) -> None:
        self.pool.close()
        self.state.close()

    def _inc(self, key: str, page: PageItem) -> None:
        self.stats.inc_value(key)
        self.stats.inc_value(source_stat(page.source_id, key))

    async def process_item(self, page: PageItem) -> ArticleItem:
        if page.status == 304:
            self._inc("cyz/unchanged", page)
            return ArticleItem(page, "unchanged")
        if page.status in (404, 410):
            return ArticleItem(page, "gone")
        known = self.state.get(page.canonical_url)
        # One look-up decides both "unchanged" and "new or updated". A page never seen
        # has its body hashed by the worker instead.
        digest = body_hash(page.body) if known is not None else ""
        if known is not None and known.is_unchanged(digest, PIPELINE_VERSION):
            self._inc("cyz/unchanged", page)
            return self._done(ArticleItem(page, "unchanged", body_hash=digest))
        source = self.crawler.spider.sources[page.source_id].source
        try:
            record, work = await self.pool.process_page(page.body, page.url, source=source,
                                                         http_charset=page.http_charset,
                                                         fetched_at=page.fetched_at)
        except TimeoutError:
            # Pebble has killed the worker and started another one: the run goes on.
            log.error("extraction stopped after %s s (CYZ_PAGE_TIMEOUT) for %s",
                      self.page_timeout, page.url)
            self._inc("cyz/failed/extraction_timeout", page)
            return ArticleItem(page, "failed")
        except Exception as exc:  # one page the pipeline cannot handle must not stop the crawl
            log.error("extraction failed for %s: %s: %s", page.url, type(exc).__name__, exc)
            self._inc("cyz/failed/extraction_error", page)
            return ArticleItem(page, "failed")
        # The id follows the URL the crawl asked for, so a redirect never forks a record.
        record["id"] = article_id(page.canonical_url)
        if record.get("is_article") is False:
            # A list or section index where an article was expected: counted, not indexed.
            log.info("not an article (%s): %s", record.get("not_article_reason"), page.url)
            self._inc("cyz/not_article", page)
            return self._done(ArticleItem(page, "not_article", body_hash=work.body_hash))
        if not record["text"].strip():
            if known is not None and known.content_hash:
                # An indexed article now answers a page without text (WeChat's "该内容已被
                # 发布者删除", a CMS's "信息已删除"): taken down. The record keeps its text
                # and is marked gone, as after a 404.
                log.info("no article text any more (taken down?): %s", page.url)
                self._inc("cyz/gone", page)
                return self._done(ArticleItem(page, "gone", body_hash=work.body_hash))
            log.warning("no article text found in %s", page.url)
            self._inc("cyz/empty_text", page)
        return self._done(ArticleItem(page, "updated" if known and known.content_hash else "new",
                                      record, body_hash=work.body_hash,
                                      compressed=work.compressed))

    @staticmethod
    def _done(item: ArticleItem) -> ArticleItem:
        """The body is hashed (and, for a record, compressed): no later stage reads it,
        so it is let go now rather than held until its batch is stored."""
        item.page.body = b""
        return item
