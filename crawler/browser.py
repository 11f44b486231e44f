"""Browser-rendered sources (`render: browser`, issue 17).

Some sites answer a plain HTTP client with a JavaScript challenge (瑞数 answers 412 and
a script that sets a cookie and reloads) or build their lists in JavaScript. A source
with `render: browser` has every request fetched by Chromium through scrapy-playwright:

- the system's Chromium (Debian's `chromium`, or `CYZ_CHROMIUM`); cyz never downloads a
  browser. `require_chromium` finds it before the crawl starts, in the main process, and
  a missing one is one line naming the source and the install command;
- one browser context per source, so the cookies a challenge sets last the run and no
  other source sees them; at most two pages at a time (`PAGES_PER_SOURCE`);
- images, fonts and media are never loaded, nor anything off the source's domains;
- `PageVisit` follows the page through a challenge: while the main frame answers a
  challenge status it waits (up to `CHALLENGE_WAIT` seconds) for the page's own script
  to navigate again, then for the network to go quiet, so lists built by scripts are in
  the HTML the spider reads. `BrowserResponseMiddleware` then gives the spider the final
  status, and the raw body of a JSON or XML answer (a search API, a feed) instead of the
  HTML view Chromium would make of it;
- a crash or a hang fails that page (navigation timeout = DOWNLOAD_TIMEOUT), not the run;
  scrapy-playwright starts a new browser for the next page.

Sources without `render: browser` never start a browser: the download handler is
installed only when an enabled source asks for one (`browser_settings`).
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from cyz.config import ConfigError
from cyz.urls import host_allowed

if TYPE_CHECKING:
    from cyz.config import Source

HANDLER = "cyz.crawler.browser_handler.BrowserDownloadHandler"
BLOCKED_RESOURCES = frozenset({"image", "font", "media"})
# What a challenge page answers before its script sets a cookie and reloads: 412 (瑞数),
# 521 (加速乐), 403 and 503 (Cloudflare-style interstitials).
CHALLENGE_STATUSES = frozenset({403, 412, 503, 521})
CHALLENGE_WAIT = 10.0  # seconds a challenge page gets to navigate by itself (default)
IDLE_WAIT = 3.0  # seconds at most for the network to go quiet after a page loads
PAGES_PER_SOURCE = 2
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = ("install it (Debian/Ubuntu: apt-get install chromium) or set CYZ_CHROMIUM "
                "to a Chromium or Chrome executable")
# Scrapy's headers that a browser page must not send: the browser's own cookies,
# encodings and language stand, and a rendered page is never asked conditionally (a 304
# would leave the browser nothing to render).
_BROWSER_OWNS = frozenset({"user-agent", "cookie", "accept-encoding", "accept-language",
                           "if-none-match", "if-modified-since"})


class BrowserMissing(ConfigError):
    """A source needs a browser that is not there; the message names the source and the fix."""


def browser_sources(sources: Iterable[Source]) -> list[str]:
    """Ids of the enabled sources rendered in a browser."""
    return [s.id for s in sources if s.enabled and s.render == "browser"]


def find_chromium(configured: Path | str | None = None) -> str | None:
    """The Chromium to drive: `configured` (CYZ_CHROMIUM), else the first on PATH."""
    if configured:
        return str(configured)
    for name in CHROMIUM_NAMES:
        path = shutil.which(name)
        if path:
            return path
    return None


def require_chromium(sources: Iterable[Source], configured: Path | str | None = None
                     ) -> str | None:
    """The Chromium executable the enabled browser sources need, or None when no source
    needs one. Raises BrowserMissing naming the sources when it (or scrapy-playwright)
    is not installed."""
    needing = browser_sources(sources)
    if not needing:
        return None
    which = f"source{'s' if len(needing) > 1 else ''} {', '.join(needing)} " \
            f"{'have' if len(needing) > 1 else 'has'} render: browser"
    try:
        import scrapy_playwright  # noqa: F401
    except ImportError:
        raise BrowserMissing(f"{which}, but scrapy-playwright is not installed: "
                             "pip install scrapy-playwright") from None
    path = find_chromium(configured)
    if path is None:
        raise BrowserMissing(f"{which}, but no Chromium was found (CYZ_CHROMIUM is not set "
                             f"and none of {', '.join(CHROMIUM_NAMES)} is on PATH): "
                             f"{INSTALL_HINT}")
    return path


def _pac(host_map: dict[str, str]) -> str:
    """A proxy auto-config sending exactly the mapped hosts to their loopback server (the
    browser's counterpart of LoopbackHostsMiddleware; demo and tests only)."""
    table = json.dumps({h.lower(): a for h, a in host_map.items()})
    script = (f"function FindProxyForURL(url, host) {{ var m = {table}; "
              "var a = m[host.toLowerCase()]; return a ? 'PROXY ' + a : 'DIRECT'; }")
    return "data:application/x-ns-proxy-autoconfig;base64," + \
        base64.b64encode(script.encode()).decode()


def browser_settings(executable: str, *, timeout: float,
                     host_map: dict[str, str] | None = None) -> dict[str, Any]:
    """The Scrapy settings that route `playwright` requests through Chromium."""
    args = ["--disable-dev-shm-usage", "--no-first-run", "--no-default-browser-check",
            "--disable-gpu", "--mute-audio"]
    if host_map:
        args.append(f"--proxy-pac-url={_pac(host_map)}")
    return {
        "DOWNLOAD_HANDLERS": {"http": HANDLER, "https": HANDLER},
        "PLAYWRIGHT_BROWSER_TYPE": "chromium",
        "PLAYWRIGHT_LAUNCH_OPTIONS": {"executable_path": executable, "headless": True,
                                      "args": args},
        "PLAYWRIGHT_MAX_PAGES_PER_CONTEXT": PAGES_PER_SOURCE,
        "PLAYWRIGHT_DEFAULT_NAVIGATION_TIMEOUT": int(timeout * 1000),
        # A navigation Chromium aborts is waited on as a possible file download.
        "PLAYWRIGHT_DOWNLOAD_TIMEOUT": max(1, int(timeout)),
        "PLAYWRIGHT_PROCESS_REQUEST_HEADERS": "cyz.crawler.browser.request_headers",
    }


async def request_headers(*, browser_type_name: str, playwright_request: Any,
                          scrapy_request_data: dict) -> dict[str, str]:
    """Headers of a browser request: the browser's own, and for a page navigation also
    what the spider set (Referer, a search's Content-Type and extra headers), never
    Scrapy's cookies, encodings or conditional headers."""
    headers = await playwright_request.all_headers()
    if playwright_request.is_navigation_request():
        for name, value in scrapy_request_data["headers"].to_unicode_dict().items():
            if name.lower() not in _BROWSER_OWNS:
                headers[name.lower()] = value
    return headers


class PageVisit:
    """One request's page in the browser: keeps it on the source's domains without
    images, fonts or media, records the main frame's navigations, and settles the page
    (`settle`) before its HTML is read. Its outcome (`status`, `raw`, `unsolved`) is for
    BrowserResponseMiddleware."""

    def __init__(self, domains: list[str], *, challenge_wait: float = CHALLENGE_WAIT,
                 idle_wait: float = IDLE_WAIT) -> None:
        self.domains = domains
        self.challenge_wait = challenge_wait
        self.idle_wait = idle_wait
        self._reset()

    def _reset(self) -> None:
        self.navigations: list[Any] = []  # main-frame responses, in order
        self.status: int | None = None
        self.content_type: str | None = None
        self.raw: bytes | None = None
        self.unsolved = False
        self._moved = asyncio.Event()
        self._page: Any = None

    async def attach(self, page: Any, request: Any) -> None:
        """scrapy-playwright's page init callback: runs before the page is navigated."""
        self._reset()
        self._page = page
        page.on("response", self._on_response)
        # Routes registered last are asked first: ours decides, then scrapy-playwright's.
        await page.route("**", self._route)

    def _on_response(self, response: Any) -> None:
        request = response.request
        if request.is_navigation_request() and request.frame == self._page.main_frame:
            self.navigations.append(response)
            self._moved.set()

    async def _route(self, route: Any, request: Any) -> None:
        host = urlsplit(request.url).hostname or ""
        if request.resource_type in BLOCKED_RESOURCES or (
                request.url.startswith(("http:", "https:"))
                and not host_allowed(host, self.domains)):
            await route.abort()
            return
        await route.fallback()

    async def settle(self, page: Any) -> None:
        """Wait out a challenge and the page's own scripts; then note the final answer.
        Called by scrapy-playwright as a page method, after the first load."""
        from playwright.async_api import Error as PlaywrightError

        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.challenge_wait
        while True:
            seen = len(self.navigations)
            last = self.navigations[-1] if self.navigations else None
            if last is not None and last.status in CHALLENGE_STATUSES:
                self._moved.clear()
                if len(self.navigations) == seen:  # the script has not moved on yet
                    try:
                        await asyncio.wait_for(self._moved.wait(),
                                               max(0.0, deadline - loop.time()))
                    except TimeoutError:
                        self.unsolved = True
                        break
                try:
                    await page.wait_for_load_state("load")
                except PlaywrightError:
                    pass  # navigated again meanwhile: the loop looks once more
                continue
            try:
                await page.wait_for_load_state("networkidle", timeout=self.idle_wait * 1000)
            except PlaywrightError:
                pass  # a page that keeps polling is read as it stands
            if len(self.navigations) == seen or loop.time() > deadline:
                break  # no navigation while the scripts ran: settled
        final = self.navigations[-1] if self.navigations else None
        if final is None:
            return
        self.status = final.status
        self.content_type = final.headers.get("content-type")
        if not _is_html(self.content_type):
            try:
                self.raw = await final.body()
            except PlaywrightError:
                self.raw = None


def _is_html(content_type: str | None) -> bool:
    ctype = (content_type or "text/html").split(";", 1)[0].strip().lower()
    return ctype in ("text/html", "application/xhtml+xml", "")


def browser_meta(source: Source, *, challenge_wait: float = CHALLENGE_WAIT) -> dict[str, Any]:
    """Request meta sending a request of `source` through its browser context."""
    from scrapy_playwright.page import PageMethod

    visit = PageVisit(source.domains, challenge_wait=challenge_wait)
    meta: dict[str, Any] = {
        "playwright": True,
        "playwright_context": f"source:{source.id}",
        "playwright_page_init_callback": visit.attach,
        "playwright_page_methods": [PageMethod(visit.settle)],
        "cyz_browser": visit,
    }
    if source.user_agent:
        # The context's user agent: the header and what scripts read agree.
        meta["playwright_context_kwargs"] = {"user_agent": source.user_agent}
    return meta
