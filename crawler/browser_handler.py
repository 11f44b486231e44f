"""The download handler of crawls with a browser source: scrapy-playwright's, shared by
http and https.

Scrapy builds one handler per URL scheme, and each scrapy-playwright handler starts its
own Playwright driver (a node process, ≈ 135 MB) although one browser serves both; this
one is built once per crawl and closed once. Installed by `browser_settings`
(crawler/browser.py), only when an enabled source has `render: browser`.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakKeyDictionary

from scrapy_playwright.handler import ScrapyPlaywrightDownloadHandler

_BY_CRAWLER: WeakKeyDictionary[Any, BrowserDownloadHandler] = WeakKeyDictionary()


class BrowserDownloadHandler(ScrapyPlaywrightDownloadHandler):
    @classmethod
    def from_crawler(cls, crawler: Any) -> BrowserDownloadHandler:
        handler = _BY_CRAWLER.get(crawler)
        if handler is None:
            handler = _BY_CRAWLER[crawler] = cls(crawler)
            handler._cyz_closed = False
        return handler

    async def _close(self) -> None:
        if self._cyz_closed:  # closed for the other scheme already
            return
        self._cyz_closed = True
        await super()._close()
