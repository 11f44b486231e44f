"""Downloader middlewares and the failure classification the run summary reports.

- `OnSiteMiddleware` keeps every request (redirects and robots.txt included) on its
  source's domains: the spider's requests carry `dont_filter`, which Scrapy's offsite
  filter lets through and RedirectMiddleware copies to the redirected request.
- `PrivateAddressMiddleware` refuses hosts that resolve to private, loopback or
  link-local addresses, unless the source opts in (`allow_private_addresses`).
- `LoopbackHostsMiddleware` sends requests for mapped host names to the loopback site
  server as an HTTP proxy (demo and tests; never set in production).
- `ConditionalRequestMiddleware` turns a re-crawl of a stored article into a
  conditional request and lets 304/404/410 through to the spider.
- `SourceCookiesMiddleware` keeps cookies for the requests that carry a cookie jar
  (meta `cookiejar`: a search source with a `session_url`) and for no other request:
  cookies are off for the rest of the crawl (COOKIES_ENABLED stays False).
- `BrowserResponseMiddleware` gives the spider what a browser page finally answered
  (`render: browser`, crawler/browser.py): the status after a JavaScript challenge and
  the raw body of a JSON or XML answer.
- `BackoffRetryMiddleware` is Scrapy's retry with an exponential pause before each
  retry, so a struggling site is not hammered.
- `failure_reason` names why a request failed, for the `cyz/failed/<reason>` stats.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from scrapy import signals
from scrapy.downloadermiddlewares.cookies import CookiesMiddleware
from scrapy.downloadermiddlewares.retry import RetryMiddleware
from scrapy.exceptions import (
    CannotResolveHostError,
    DownloadCancelledError,
    DownloadConnectionRefusedError,
    DownloadFailedError,
    DownloadTimeoutError,
    IgnoreRequest,
    NotConfigured,
    ResponseDataLossError,
)
from scrapy.extensions.throttle import AutoThrottle
from scrapy.spidermiddlewares.httperror import HttpError
from scrapy.utils.defer import maybe_deferred_to_future
from scrapy.utils.httpobj import urlparse_cached
from twisted.internet import error as txerror

from cyz.crawler.state import CrawlState
from cyz.urls import canonical_url, host_allowed, ip_literal, is_private_address, is_private_host

if TYPE_CHECKING:
    from scrapy import Request
    from scrapy.crawler import Crawler
    from twisted.python.failure import Failure

    from cyz.config import Source

ARTICLE_STATUSES = [304, 404, 410]


class RefusedRequest(IgnoreRequest):
    """A request cyz will not make; `reason` is its `cyz/failed/<reason>` name."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def _spider_sources(crawler: Crawler) -> list[Source]:
    sources = getattr(crawler.spider, "configured_sources", None)
    if sources is None:
        raise NotConfigured("not a cyz spider")
    return sources()


class _SourceDomains:
    """The domains each source may visit; a request without a source (robots.txt and
    its redirects) may visit those of any source."""

    def __init__(self, sources: list[Source]) -> None:
        self.by_source = {s.id: s.domains for s in sources}
        self.any_source = sorted({d for ds in self.by_source.values() for d in ds})

    def of(self, source_id: str | None) -> list[str]:
        return self.by_source.get(source_id, self.any_source)


class OnSiteMiddleware:
    """Every request stays on the domains of its source (meta `cyz_source`); a request
    without one (robots.txt, its redirects) on the domains of some source. Anything
    else — in practice a redirect off the site — is refused as `offsite_redirect`.

    Replaces Scrapy's OffsiteMiddleware at 50, before RobotsTxtMiddleware (100), so an
    off-site host does not even get its robots.txt fetched. Redirected requests come
    back through the scheduler and so through here."""

    def __init__(self, sources: list[Source]) -> None:
        self.domains = _SourceDomains(sources)

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> OnSiteMiddleware:
        return cls(_spider_sources(crawler))

    def process_request(self, request: Request) -> None:
        host = urlparse_cached(request).hostname or ""
        source_id = request.meta.get("cyz_source")
        if not host_allowed(host, self.domains.of(source_id)):
            raise RefusedRequest("offsite_redirect",
                                 f"{request.url} is off the domains of {source_id or 'every source'}")


class PrivateAddressMiddleware:
    """Refuses a request whose host is, or resolves to, a private, loopback, link-local
    or reserved address (`private_address`): a public site must not steer the crawl at
    the office's own network or a cloud metadata service.

    Allowed: an IP literal or `localhost` that the source names itself (it passed
    OnSiteMiddleware, which admits an address only by exact match), every host of a
    source with `allow_private_addresses`, and requests through a proxy (`CYZ_HOST_MAP`,
    `http_proxy`: the operator chose it, and the proxy resolves the name).

    Runs at 760, after the proxy is chosen (LoopbackHosts 740, HttpProxy 750). The name
    is resolved through the reactor's resolver, whose cache (DNSCACHE_ENABLED) then
    serves the connection the same answer, so the address checked is the one used."""

    def __init__(self, sources: list[Source]) -> None:
        self.domains = _SourceDomains(sources)
        self.opted_in = {s.id for s in sources if s.allow_private_addresses}
        self.opted_in_domains = sorted({d for s in sources if s.allow_private_addresses
                                        for d in s.domains})

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> PrivateAddressMiddleware:
        return cls(_spider_sources(crawler))

    async def process_request(self, request: Request) -> None:
        if request.meta.get("proxy"):
            return
        name = urlparse_cached(request).hostname or ""  # as the connection will resolve it
        host = name.lower().rstrip(".")
        source_id = request.meta.get("cyz_source")
        if source_id in self.opted_in or (
                source_id is None and host_allowed(host, self.opted_in_domains)):
            return
        if is_private_host(host):  # written as a private address: the source must name it
            if not host_allowed(host, self.domains.of(source_id)):
                raise RefusedRequest("private_address", f"{request.url}: a private address")
            return
        if ip_literal(host) is not None:  # a public address: nothing to resolve
            return
        from twisted.internet import reactor

        address = await maybe_deferred_to_future(reactor.resolve(name))
        if is_private_address(address):
            raise RefusedRequest("private_address",
                                 f"{request.url}: {host} resolves to private address {address}")


class LoopbackHostsMiddleware:
    """`CYZ_HOST_MAP = {host: "127.0.0.1:PORT"}`: reach those hosts through that proxy.

    Runs before HttpProxyMiddleware (750), which does the proxying; robots.txt requests
    pass through here too, so the robots of a mapped host come from the same server."""

    def __init__(self, host_map: dict[str, str]) -> None:
        self.proxies = {h.lower(): f"http://{addr}" for h, addr in host_map.items()}
        self.proxy_urls = set(self.proxies.values())

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> LoopbackHostsMiddleware:
        host_map = crawler.settings.getdict("CYZ_HOST_MAP")
        if not host_map:
            raise NotConfigured
        return cls(host_map)

    def process_request(self, request: Request) -> None:
        host = (urlparse_cached(request).hostname or "").lower()
        proxy = self.proxies.get(host)
        if proxy:
            request.meta["proxy"] = proxy
        elif request.meta.get("proxy") in self.proxy_urls:
            # A redirect from a mapped host to another copies the meta: the loopback
            # proxy is for mapped hosts only.
            del request.meta["proxy"]


class ConditionalRequestMiddleware:
    """Adds If-None-Match / If-Modified-Since from CrawlState to article requests
    (meta `cyz_article`), marks whether the URL was known (`cyz_known`), and lets
    304, 404 and 410 reach the spider: they mean *unchanged* and *gone*."""

    def __init__(self, state: CrawlState) -> None:
        self.state = state

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ConditionalRequestMiddleware:
        data_dir = crawler.settings.get("CYZ_DATA_DIR")
        if not data_dir:
            raise NotConfigured("CYZ_DATA_DIR is not set")
        mw = cls(CrawlState(data_dir))
        crawler.signals.connect(mw.spider_closed, signal=signals.spider_closed)
        return mw

    def spider_closed(self) -> None:
        self.state.close()

    def process_request(self, request: Request) -> None:
        if not request.meta.get("cyz_article"):
            return
        statuses = request.meta.setdefault("handle_httpstatus_list", [])
        statuses.extend(s for s in ARTICLE_STATUSES if s not in statuses)
        canon = request.meta.get("cyz_canonical") or canonical_url(request.url)
        if "cyz_known" not in request.meta:
            request.meta["cyz_known"] = self.state.known(canon)
        if request.meta.get("cyz_unconditional") or request.meta.get("redirect_times"):
            return  # a redirect target is another URL: the stored validators are not its
        for name, value in self.state.conditional_headers(canon).items():
            request.headers.setdefault(name, value)


class SourceCookiesMiddleware(CookiesMiddleware):
    """Scrapy's cookie handling, only for requests whose meta has a `cookiejar` (the
    spider gives one to a search source's session page and search requests, one jar per
    source). Every other request neither sends a cookie nor stores one, as with
    COOKIES_ENABLED off, which it stays (so Scrapy's own CookiesMiddleware is not
    configured). A redirect keeps its request's meta, so the jar follows it (within the
    source's domains: OnSiteMiddleware). Runs at 700, where Scrapy's would."""

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SourceCookiesMiddleware:
        mw = cls(crawler.settings.getbool("COOKIES_DEBUG"))
        mw.crawler = crawler
        return mw

    def process_request(self, request: Request) -> None:
        if "cookiejar" not in request.meta:
            request.headers.pop("Cookie", None)
            return None
        return super().process_request(request)

    def process_response(self, request: Request, response: Any) -> Any:
        if "cookiejar" not in request.meta:
            return response
        return super().process_response(request, response)


class BrowserResponseMiddleware:
    """The outcome of a browser page (meta `cyz_browser`, a PageVisit) in its response:
    the final main-frame status (scrapy-playwright reports the first, which for a
    challenge page is 412), the raw body and Content-Type of a JSON or XML answer (not
    Chromium's HTML view of it), and a challenge the page never got past refused as
    `challenge`. Runs at 960, the first to see a response."""

    def process_response(self, request: Request, response: Any) -> Any:
        visit = request.meta.get("cyz_browser")
        if visit is None or "playwright" not in response.flags:
            return response
        if visit.unsolved:
            raise RefusedRequest(
                "challenge", f"{request.url} still answered {visit.status or response.status} "
                f"after {visit.challenge_wait:g} s in the browser (a challenge not passed)")
        changes: dict[str, Any] = {}
        if visit.status is not None and visit.status != response.status:
            changes["status"] = visit.status
        if visit.raw is not None:
            changes["body"] = visit.raw
            headers = response.headers.copy()
            headers["Content-Type"] = visit.content_type or "application/octet-stream"
            changes["headers"] = headers
        return response.replace(**changes) if changes else response


class BackoffRetryMiddleware(RetryMiddleware):
    """Scrapy's RetryMiddleware, waiting `CYZ_RETRY_BACKOFF_BASE * 2**(n-1)` seconds
    (capped by `CYZ_RETRY_BACKOFF_MAX`) before retry n. Replaces the built-in at 550."""

    def __init__(self, settings: Any) -> None:
        super().__init__(settings)
        self.backoff_base = settings.getfloat("CYZ_RETRY_BACKOFF_BASE", 2.0)
        self.backoff_max = settings.getfloat("CYZ_RETRY_BACKOFF_MAX", 60.0)

    def _retry(self, request: Request, reason: Any) -> Request | None:
        retry = super()._retry(request, reason)
        if retry is not None and self.backoff_base > 0:
            n = retry.meta.get("retry_times", 1)
            retry.meta["cyz_retry_delay"] = min(self.backoff_max,
                                                self.backoff_base * 2 ** (n - 1))
        return retry

    async def process_request(self, request: Request) -> None:
        delay = request.meta.pop("cyz_retry_delay", None)
        if delay:
            from twisted.internet import reactor
            from twisted.internet.task import deferLater

            await maybe_deferred_to_future(deferLater(reactor, delay, lambda: None))


class SourceAwareAutoThrottle(AutoThrottle):
    """AutoThrottle that leaves alone the hosts whose source sets `download_delay`
    (their `DOWNLOAD_SLOTS` entries): the operator's delay is the rule there, where
    AutoThrottle would raise it to at least DOWNLOAD_DELAY after the first response."""

    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        self.fixed_slots = set(crawler.settings.getdict("DOWNLOAD_SLOTS"))

    def _response_downloaded(self, response: Any, request: Request, spider: Any) -> None:
        if request.meta.get("download_slot") in self.fixed_slots:
            return
        super()._response_downloaded(response, request, spider)


def failure_reason(failure: Failure) -> str:
    """A short, stable name for why a request failed (the `cyz/failed/<reason>` key)."""
    exc = failure.value
    if isinstance(exc, HttpError):
        status = exc.response.status
        return "http_5xx" if status >= 500 else f"http_{status // 100}xx"
    if isinstance(exc, RefusedRequest):
        return exc.reason
    if isinstance(exc, IgnoreRequest):
        msg = str(exc)
        if "robots.txt" in msg:
            return "robots_forbidden"
        if "redirections" in msg:
            return "redirect_loop"
        if "offsite" in msg:
            return "offsite_redirect"
        if "max size" in msg or "larger than" in msg:
            return "too_large"
        return "ignored"
    if isinstance(exc, DownloadTimeoutError | txerror.TimeoutError):
        return "timeout"
    if isinstance(exc, CannotResolveHostError | txerror.DNSLookupError):
        return "dns"
    if isinstance(exc, DownloadConnectionRefusedError | txerror.ConnectionRefusedError):
        return "connection_refused"
    if isinstance(exc, DownloadCancelledError):
        # Scrapy cancels a download that exceeds DOWNLOAD_MAXSIZE.
        return "too_large" if "max size" in str(exc) or not str(exc) else "cancelled"
    if isinstance(exc, ResponseDataLossError):
        return "data_loss"
    if isinstance(exc, DownloadFailedError | txerror.ConnectError | txerror.ConnectionLost
                  | txerror.ConnectionDone):
        return "connection"
    if exc.__class__.__name__ == "TunnelError":
        return "connection"
    if type(exc).__module__.startswith("playwright"):
        # A page that never loaded (timeout) or a browser that crashed or closed under it.
        return "browser_timeout" if type(exc).__name__ == "TimeoutError" else "browser"
    return "other"
