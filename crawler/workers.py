"""A pool of worker processes for the per-page pipeline.

Extraction is CPU work (lxml, trafilatura, OpenCC, langdetect); run on the Twisted
reactor it would stall downloads and use one core. The crawl hands pages to this pool
and awaits the records, so every core extracts while the reactor keeps fetching.
Scrapy's own limits give back-pressure: it stops downloading while the pages being
processed exceed its scraper budget (SCRAPER_SLOT_MAX_ACTIVE_SIZE), so memory stays flat.

The pool is pebble's `ProcessPool`, not the standard library's, for one thing the latter
cannot do: stop one task. A page whose extraction runs past `timeout` seconds (a
pathological page sending lxml or a regex into a near-endless loop) fails with
`TimeoutError`; pebble kills its worker and starts a fresh one, and the other pages go on.
A worker that dies on a page (a crash in a C extension) fails that page with pebble's
`ProcessExpired` and is replaced the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any

from pebble import ProcessPool

log = logging.getLogger(__name__)

_WARM_PAGE = ("<html><head><title>预热</title></head><body><div class='article'><p>"
              + "遵义与重庆签署合作协议，推动成渝地区双城经济圈建设。" * 8 + "</p></div></body></html>").encode()


_WARM_SHORT_PAGE = ("<html><head><title>预热</title></head><body><h1>预热</h1><div><p>"
                    "遵义与重庆签署合作协议。</p></div></body></html>").encode()


def _warm_up() -> None:
    # Import and load everything once per worker (trafilatura, OpenCC tables, the
    # gazetteer, jieba's dictionary for event parties) so the first real pages are not
    # slow; langdetect's profiles (60 MB) load on the first text that is not mostly Han.
    # Pebble starts the clock of a page's time limit only when a warmed worker takes it,
    # so this never counts against a page.
    from cyz.pipelines.events import extractor_for
    from cyz.pipelines.tag import default_tagger

    process_page(_WARM_PAGE, "https://www.warm-up.gov.cn/t20240101_1.html")
    # What loads on first use, a third of a second together, so that it does not count
    # against the first real page's time limit: the stop lists of trafilatura's justext
    # fallback (taken for short pages) and the public-suffix list (some page URLs).
    process_page(_WARM_SHORT_PAGE, "https://www.warm-up.gov.cn/t20240101_2.html")
    with contextlib.suppress(ImportError):  # trafilatura's own dependency
        from courlan.urlutils import get_tldinfo

        get_tldinfo("https://www.warm-up.gov.cn/")
    extractor_for(default_tagger().topic).warm()  # the page loads it too; this says so


@dataclass
class PageWork:
    """What a worker computes besides the record, so the crawl process does not: the
    SHA-1 of the body (crawl state and raw archive) and the body zlib-compressed for the
    raw archive. With these the crawl process can drop the page body as soon as the page
    is extracted. (The text's MinHash signature is made in the crawl process: datasketch
    brings scipy, ≈ 50 MB, into whichever process imports it.)"""

    body_hash: str
    compressed: bytes


def process_page(body: bytes, url: str, **kwargs) -> tuple[dict, PageWork]:
    """The CPU part of one page, done in a worker: its record and its `PageWork`."""
    # Imported here, not at the top: the crawl process itself never needs the extractor.
    from cyz.pipelines.archive import compress_body
    from cyz.pipelines.page import build_record

    record = build_record(body, url, **kwargs)
    return record, PageWork(hashlib.sha1(body).hexdigest(), compress_body(body))


def default_workers() -> int:
    return max(1, os.cpu_count() or 1)


class ExtractionPool:
    """`await pool.process_page(...)` runs `process_page` in a worker process, stopped
    after `timeout` seconds (None: no limit) with `TimeoutError`.

    With `workers <= 1` it runs in-process (small runs, debugging) and `timeout` does not
    apply: nothing can stop a function running in the crawl process itself.

    `fn` replaces `process_page` (a module-level function, picklable); tests only."""

    def __init__(self, workers: int | None = None, timeout: float | None = None,
                 fn: Callable[..., Any] = process_page):
        self.workers = default_workers() if workers is None else workers
        self.timeout = timeout or None
        self.fn = fn
        self._pool: ProcessPool | None = None

    def _get_pool(self) -> ProcessPool:
        if self._pool is None:
            # spawn: the crawl process runs threads (Twisted, sqlite); forking it is unsafe.
            self._pool = ProcessPool(max_workers=self.workers, initializer=_warm_up,
                                     context=multiprocessing.get_context("spawn"))
        return self._pool

    def _schedule(self, body: bytes, url: str, kwargs: dict):
        return self._get_pool().schedule(self.fn, args=(body, url), kwargs=kwargs,
                                         timeout=self.timeout)

    async def process_page(self, body: bytes, url: str, **kwargs):
        if self.workers <= 1:
            return self.fn(body, url, **kwargs)
        try:
            future = self._schedule(body, url, kwargs)
        except RuntimeError:  # pebble: the pool broke on an earlier page
            self._restart()
            future = self._schedule(body, url, kwargs)
        try:
            return await asyncio.wrap_future(future)
        except BrokenProcessPool:
            # The pool itself failed (not one worker: pebble replaces those): start a
            # fresh one for the pages after this; this page is reported as failed.
            self._restart()
            raise

    def _restart(self) -> None:
        log.error("the extraction pool broke; starting a new one")
        if self._pool is not None:
            self._pool.stop()
            self._pool.join()
        self._pool = None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool.join()
            self._pool = None
