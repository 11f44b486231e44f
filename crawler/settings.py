"""Every Scrapy setting cyz uses, in one place.

Politeness first: robots.txt is obeyed, AutoThrottle adapts the pace to each site's
latency, at most two requests per host at a time, and retries back off exponentially.
Limits keep one bad page from hurting the run: 20 s timeout, 10 MB per page, five
redirects, 200 list pages per source. Hostile sites are kept in bounds: requests stay on
the source's domains (redirects included) and off private addresses.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from scrapy.settings import BaseSettings, Settings

USER_AGENT = "cyz/0.1 (+research monitoring)"

BASE_SETTINGS: dict[str, Any] = {
    "BOT_NAME": "cyz",
    "USER_AGENT": USER_AGENT,
    "ROBOTSTXT_OBEY": True,
    "ROBOTSTXT_USER_AGENT": "cyz",
    # Politeness: per-host concurrency and AutoThrottle's latency-driven delay.
    "CONCURRENT_REQUESTS": 16,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 2,
    # An article response yields one item; Scrapy starts CONCURRENT_ITEMS tasks per
    # response, so the default 100 only costs reactor time.
    "CONCURRENT_ITEMS": 8,
    "DOWNLOAD_DELAY": 1.0,
    "DOWNLOAD_DELAY_JITTER": 0.5,  # ±50 %
    "AUTOTHROTTLE_ENABLED": True,
    "AUTOTHROTTLE_START_DELAY": 1.0,
    "AUTOTHROTTLE_MAX_DELAY": 30.0,
    "AUTOTHROTTLE_TARGET_CONCURRENCY": 1.5,
    # Failures: two retries on 5xx/timeouts, with exponential backoff (our middleware).
    "RETRY_ENABLED": True,
    "RETRY_TIMES": 2,
    "RETRY_HTTP_CODES": [500, 502, 503, 504, 522, 524, 408, 429],
    "RETRY_GIVE_UP_LOG_LEVEL": "INFO",
    "CYZ_RETRY_BACKOFF_BASE": 2.0,
    "CYZ_RETRY_BACKOFF_MAX": 60.0,
    # Limits.
    "DOWNLOAD_TIMEOUT": 20,
    "DNS_TIMEOUT": 10,
    "DOWNLOAD_MAXSIZE": 10 * 1024 * 1024,
    "DOWNLOAD_WARNSIZE": 4 * 1024 * 1024,
    "REDIRECT_MAX_TIMES": 5,
    # PrivateAddressMiddleware checks the address a name resolves to; the DNS cache then
    # gives the connection that same address (no second lookup a site could answer
    # differently).
    "DNSCACHE_ENABLED": True,
    # The spider de-duplicates by canonical URL; Scrapy's depth tracking is not ours
    # (per-source max_depth lives in the spider).
    "DEPTH_LIMIT": 0,
    "DEPTH_STATS_VERBOSE": False,
    # No cookies, except a search source's own jar (SourceCookiesMiddleware, below).
    "COOKIES_ENABLED": False,
    "HTTPCACHE_ENABLED": False,
    "TELNETCONSOLE_ENABLED": False,
    "LOG_LEVEL": "WARNING",
    "LOG_ENABLED": True,
    "STATS_DUMP": False,
    "TWISTED_REACTOR": "twisted.internet.asyncioreactor.AsyncioSelectorReactor",
    "DOWNLOADER_MIDDLEWARES": {
        # Scrapy's offsite filter skips dont_filter requests (all of ours): replaced.
        "scrapy.downloadermiddlewares.offsite.OffsiteMiddleware": None,
        "cyz.crawler.middlewares.OnSiteMiddleware": 50,
        "scrapy.downloadermiddlewares.retry.RetryMiddleware": None,
        "cyz.crawler.middlewares.BackoffRetryMiddleware": 550,
        "cyz.crawler.middlewares.ConditionalRequestMiddleware": 560,
        "cyz.crawler.middlewares.SourceCookiesMiddleware": 700,
        "cyz.crawler.middlewares.LoopbackHostsMiddleware": 740,
        "cyz.crawler.middlewares.PrivateAddressMiddleware": 760,
        "cyz.crawler.middlewares.BrowserResponseMiddleware": 960,
    },
    "EXTENSIONS": {
        "scrapy.extensions.telnet.TelnetConsole": None,
        "scrapy.extensions.throttle.AutoThrottle": None,
        "cyz.crawler.middlewares.SourceAwareAutoThrottle": 0,
        "cyz.crawler.run.ProgressExtension": 500,
    },
    "CYZ_MAX_PAGES": 0,  # article pages per run; 0 = no cap
    # Records are written every 200 and at least this often, so a killed crawl loses at
    # most these seconds of work (and what was being extracted).
    "CYZ_FLUSH_SECONDS": 5.0,
    # List/follow/pager pages per source per run (a source's `max_list_pages` overrides;
    # 0 = no cap): max_depth alone does not bound a site whose list pages fan out into
    # ever-new URLs (a calendar linking every next day).
    "CYZ_MAX_LIST_PAGES": 200,
    "CYZ_WORKERS": 0,  # extraction worker processes; 0 = one per core, 1 = in-process
    # JS-pager pages generated per list (newest first). max_depth cannot bound them (they
    # are all one hop from the list), and a nightly run needs only the recent pages.
    "CYZ_PAGER_LIMIT": 20,
    "CYZ_HOST_MAP": {},
    # Revisit policy (see crawler/state.py): known articles are asked again when due by
    # their source's `revisit`; True asks for every one (`cyz crawl --full`; never the
    # scheduler).
    "CYZ_REVISIT_FULL": False,
    # The crawl's clock starts here (ISO 8601; "" = the real time): tests and benchmarks
    # simulate days passing with it (`CYZ_NOW` in the environment of `cyz crawl`).
    "CYZ_NOW": "",
    "CYZ_PROGRESS_EVERY": 25,
    # The Chromium that `render: browser` sources drive (found and checked by the main
    # process before the crawl: crawler/browser.py require_chromium).
    "CYZ_CHROMIUM": "",
    # Seconds a browser page answering a challenge status (412, 521, ...) gets for its
    # script to set the cookie and reload; still challenged then: failed as `challenge`.
    "CYZ_CHALLENGE_WAIT": 10.0,
}


def build_settings(
    data_dir: Path,
    *,
    host_map: dict[str, str] | None = None,
    max_pages: int | None = None,
    item_pipelines: dict[str, int] | None = None,
    overrides: dict[str, Any] | None = None,
) -> Settings:
    """Scrapy settings for one cyz crawl writing its state under `data_dir`."""
    settings = Settings()
    settings.setdict(BASE_SETTINGS, priority="project")
    settings.set("CYZ_DATA_DIR", str(data_dir), priority="project")
    if host_map:
        settings.set("CYZ_HOST_MAP", dict(host_map), priority="project")
    if max_pages:
        settings.set("CYZ_MAX_PAGES", int(max_pages), priority="project")
    if item_pipelines:
        settings.set("ITEM_PIPELINES", dict(item_pipelines), priority="project")
    for key, value in (overrides or {}).items():
        current = settings.get(key)
        if isinstance(value, dict) and isinstance(current, dict | BaseSettings):
            # Component maps (middlewares, extensions) merge, so a test can add one.
            merged = dict(settings.getdict(key))
            merged.update(value)
            value = merged
        settings.set(key, value, priority="cmdline")
    return settings
