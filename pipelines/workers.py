"""A pool of worker processes for the per-page pipeline.

Extraction is CPU work (lxml, trafilatura, OpenCC, langdetect); run on the Twisted
reactor it would stall downloads and use one core. The crawl hands pages to this pool
and awaits the records, so every core extracts while the reactor keeps fetching.
Scrapy's own limits give back-pressure: it stops downloading while the pages being
processed exceed its scraper budget (SCRAPER_SLOT_MAX_ACTIVE_SIZE), so memory stays flat.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

log = logging.getLogger(__name__)

_WARM_PAGE = ("<html><head><title>预热</title></head><body><div class='article'><p>"
              + "遵义与重庆签署合作协议，推动成渝地区双城经济圈建设。" * 8 + "</p></div></body></html>").encode()


def _warm_up() -> None:
    # Import and load everything once per worker (trafilatura, OpenCC tables, langdetect
    # profiles, the gazetteer, jieba's dictionary for event parties, datasketch) so the
    # first real pages are not slow.
    from cyz.pipelines.events import extractor_for
    from cyz.pipelines.tag import default_tagger

    process_page(_WARM_PAGE, "https://warm.up/t20240101_1.html")
    extractor_for(default_tagger().topic).warm()  # the page loads it too; this says so


def process_page(body: bytes, url: str, **kwargs):
    """The CPU part of one page, done in a worker: its record and its MinHash signature."""
    # Imported here, not at the top: the crawl process itself never needs the extractor.
    from cyz.pipelines.dedupe import signature
    from cyz.pipelines.page import build_record

    record = build_record(body, url, **kwargs)
    return record, signature(record["text_zh"])


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


class ExtractionPool:
    """`await pool.process_page(...)` runs `process_page` in a worker process; with
    `workers <= 1` it runs in-process (small runs, debugging)."""

    def __init__(self, workers: int | None = None):
        self.workers = default_workers() if workers is None else workers
        self._executor: ProcessPoolExecutor | None = None

    def _pool(self) -> ProcessPoolExecutor:
        if self._executor is None:
            # spawn: the crawl process runs threads (Twisted, sqlite); forking it is unsafe.
            self._executor = ProcessPoolExecutor(
                max_workers=self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=_warm_up)
        return self._executor

    async def process_page(self, body: bytes, url: str, **kwargs):
        if self.workers <= 1:
            return process_page(body, url, **kwargs)
        try:
            future = self._pool().submit(process_page, body, url, **kwargs)
        except BrokenProcessPool:
            self._restart()
            future = self._pool().submit(process_page, body, url, **kwargs)
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            # A worker died (a crash in a C extension on some page): start a fresh pool
            # for the pages after it; this page is reported as failed by the caller.
            self._restart()
            raise

    def _restart(self) -> None:
        log.error("an extraction worker died; restarting the pool")
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._executor = None

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None
