"""One generic spider for every configured source.

Each source enters by its start URLs (list pages), feeds (RSS/Atom) and sitemaps
(urlset or sitemap index, gzip or not). List pages give article links
(`article_patterns`), more list pages (`follow_patterns`) and, on TRS-built sites, a
pager written in JavaScript (`createPageHTML(total, current, "index", "html")`) whose
pages appear nowhere in the HTML, so the spider generates them.

Requests stay on the source's domains (links here; redirects and robots.txt in
`OnSiteMiddleware`), within `max_depth` link hops of an entry URL (pagination counts;
feed and sitemap entries are listings and are not hops), under the run's article cap
`CYZ_MAX_PAGES` and the per-source list page cap (`max_list_pages`, default
`CYZ_MAX_LIST_PAGES`: a calendar of ever-new list URLs must end). Source patterns are RE2
(linear time). Every URL is de-duplicated by its canonical form before it is
requested; an article reached under a second spelling (`?from=timeline`, `#comments`,
`_wap.html`) counts as a URL duplicate. A URL is requested, and a record keeps it,
without tracking parameters or fragment, so the stored URL does not depend on which
spelling arrived first.

A source with `search:` also enters by a site search API (issue 17): its session page
first when it has one (the cookies it sets go into a jar of that source only, sent with
its search requests and no other request), then one request per keyword and page, the
next page only after a page that had items. The result URLs become article requests
exactly like a feed's links. An answer that is not JSON, or lacks the `items` path, is
a failure (`bad_search_json`, `search_items_missing`) logged with its URL.

A source with `render: browser` has all its requests fetched by Chromium, in a browser
context of its own (crawler/browser.py); the spider reads the rendered HTML as it
reads any page.

List pages, feeds, sitemaps and searches are fetched every run; an article the crawl state knows
is asked again only when its source's revisit policy says it is due (`RevisitPolicy` in
crawler/state.py: after as long as it has stayed unchanged, within the source's
`revisit` bounds): the others are counted as `not_due` and not requested at all, which
is what makes a re-crawl of an unchanged site cheap (a 304 costs Scrapy what a fetch
costs). `CYZ_REVISIT_FULL` (`cyz crawl --full`) asks for every article; `CYZ_NOW` sets
the crawl's clock (tests and benchmarks simulate the days passing).
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import Any
from urllib.parse import quote as percent_encode
from urllib.parse import urldefrag, urlencode, urlsplit

import scrapy
from lxml import etree
from scrapy.http import Response, TextResponse
from scrapy.utils.gz import gunzip
from scrapy.utils.sitemap import Sitemap

from cyz.config import Source
from cyz.crawler.browser import browser_meta
from cyz.crawler.items import PageItem, source_stat
from cyz.crawler.middlewares import failure_reason
from cyz.crawler.state import CrawlState, RevisitPolicy, clock, iso
from cyz.urls import canonical_url, clean_url, host_allowed, url_pattern

# createPageHTML(12, 0, "index", "html") and createPage(12, 0, "index", "shtml"):
# total pages, current page (0-based), file stem, extension.
_PAGER = re.compile(
    r"""createPage(?:HTML)?\s*\(\s*(\d+)\s*,\s*(\d+)\s*(?:,\s*["']([\w-]+)["']\s*,\s*["']([\w]+)["'])?"""
)
_CHARSET = re.compile(r"charset\s*=\s*[\"']?([\w.:-]+)", re.IGNORECASE)
_SKIP_HREF = ("javascript:", "mailto:", "tel:", "data:", "#")

PRIORITY_ARTICLE = 10
PRIORITY_LIST = 0
MAX_FAILURE_SAMPLES = 50


def header_charset(content_type: str | None) -> str | None:
    """The charset parameter of a Content-Type header, lower-cased, or None."""
    if not content_type:
        return None
    match = _CHARSET.search(content_type)
    return match.group(1).lower() if match else None


def pager_urls(page_url: str, html: str, limit: int = 0) -> list[str]:
    """The pages a TRS JavaScript pager on `page_url` stands for (excluding none:
    `index.html`, `index_1.html` … `index_{total-1}.html` in the page's directory)."""
    match = _PAGER.search(html)
    if not match:
        return []
    total = int(match.group(1))
    stem, ext = match.group(3) or "index", match.group(4) or "html"
    if limit:
        total = min(total, limit)
    base = page_url.split("?", 1)[0].split("#", 1)[0]
    directory = base[: base.rfind("/") + 1]
    return [directory + (f"{stem}.{ext}" if i == 0 else f"{stem}_{i}.{ext}")
            for i in range(total)]


class _Compiled:
    """A source with its regexes compiled once (RE2, never Python's `re`: a pattern
    written by the operator meets URLs written by the site) and its per-run counters."""

    def __init__(self, source: Source, max_list_pages: int) -> None:
        self.source = source
        self.articles = [url_pattern(p) for p in source.article_patterns]
        self.follows = [url_pattern(p) for p in source.follow_patterns]
        self.domains = source.domains
        self.tracking = frozenset(p.lower() for p in source.tracking_params)
        self.max_list_pages = (source.max_list_pages if source.max_list_pages is not None
                               else max_list_pages)
        self.revisit = RevisitPolicy(source.revisit.mode, source.revisit.first_days,
                                     source.revisit.max_days)
        self.browser = source.render == "browser"
        self.list_pages = 0  # list requests made this run, entry URLs included
        self.list_capped: set[str] = set()  # canonical list URLs cut by the cap

    def is_article(self, url: str) -> bool:
        return any(p.search(url) for p in self.articles)

    def is_article_link(self, url: str) -> bool:
        """An article by the patterns under the link's own spelling or its canonical one
        (patterns are written for clean URLs; `?from=timeline` copies are duplicates)."""
        return self.is_article(url) or self.is_article(canonical_url(url, self.tracking))

    def is_list(self, url: str) -> bool:
        return any(p.search(url) for p in self.follows)


class SourceSpider(scrapy.Spider):
    """Crawl the given sources (spider kwarg `sources` or setting `CYZ_SOURCES`:
    `Source` objects or their dicts)."""

    name = "cyz"

    def __init__(self, sources: list[Source | dict] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sources_arg = sources

    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> SourceSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        spider._configure(crawler.settings)
        return spider

    def _configure(self, settings: Any) -> None:
        raw = self._sources_arg if self._sources_arg is not None else settings.getlist("CYZ_SOURCES")
        sources = [s if isinstance(s, Source) else Source.model_validate(s) for s in raw]
        max_list_pages = settings.getint("CYZ_MAX_LIST_PAGES")
        self.sources = {s.id: _Compiled(s, max_list_pages) for s in sources if s.enabled}
        self.max_pages = settings.getint("CYZ_MAX_PAGES")
        self.pager_limit = settings.getint("CYZ_PAGER_LIMIT")
        self.challenge_wait = settings.getfloat("CYZ_CHALLENGE_WAIT")
        self._seen: dict[str, str] = {}  # canonical URL → first spelling requested
        self.now = clock(settings.get("CYZ_NOW") or None)
        self.full = settings.getbool("CYZ_REVISIT_FULL")
        data_dir = settings.get("CYZ_DATA_DIR")
        self.state = CrawlState(data_dir) if data_dir else None
        self._articles = 0
        self._failure_samples: list[str] = []

    def closed(self, reason: str) -> None:
        if self.state is not None:
            self.state.close()

    def configured_sources(self) -> list[Source]:
        """The enabled sources of this run (for the middlewares that police requests)."""
        return [c.source for c in self.sources.values()]

    # -- stats -------------------------------------------------------------------
    def _inc(self, key: str, n: int = 1, source_id: str | None = None) -> None:
        """Count `key` for the run and, when the source is known, for the source too."""
        self.crawler.stats.inc_value(key, n)
        if source_id is not None:
            self.crawler.stats.inc_value(source_stat(source_id, key), n)

    # -- request building --------------------------------------------------------
    def _request(self, comp: _Compiled, url: str, *, kind: str, depth: int,
                 via: str, referer: str | None = None) -> scrapy.Request | None:
        url = urldefrag(url.strip())[0]
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        if not host_allowed(parts.hostname, comp.domains):
            self._inc("cyz/offsite_links", source_id=comp.source.id)
            return None
        canon = canonical_url(url, comp.tracking)
        first = self._seen.get(canon)
        if first is not None:
            # Same canonical page under another spelling: a URL duplicate, not a re-fetch.
            if kind == "article" and first != url:
                self._inc("cyz/url_duplicates", source_id=comp.source.id)
            return None
        known = None
        if kind == "article" and self.state is not None:
            page = self.state.get(canon)
            known = page is not None
            if known and not self.full and not comp.revisit.due(page, self.now()):
                # Asked recently enough for how long it has stayed unchanged: not asked.
                self._seen[canon] = url
                self._inc("cyz/not_due", source_id=comp.source.id)
                return None
        if self.max_pages and self._articles >= self.max_pages:
            self._inc("cyz/capped", source_id=comp.source.id)
            return None
        if kind == "list":
            if via != "start" and comp.max_list_pages \
                    and comp.list_pages >= comp.max_list_pages:
                if canon not in comp.list_capped:  # each URL cut is counted once
                    comp.list_capped.add(canon)
                    self._inc("cyz/list_pages_capped", source_id=comp.source.id)
                return None
            comp.list_pages += 1
        self._seen[canon] = url
        if kind == "article":
            self._articles += 1
        callback, priority = {
            "article": (self.parse_article, PRIORITY_ARTICLE),
            "list": (self.parse_list, PRIORITY_LIST),
            "feed": (self.parse_feed, PRIORITY_LIST),
            "sitemap": (self.parse_sitemap, PRIORITY_LIST),
        }[kind]
        src = comp.source
        headers = {"User-Agent": src.user_agent} if src.user_agent else {}
        if referer:
            headers["Referer"] = referer
        meta = {
            "cyz_source": src.id,
            "cyz_kind": kind,
            "cyz_depth": depth,
            "cyz_via": via,
            "cyz_canonical": canon,
            "download_slot": parts.hostname.lower(),
        }
        if kind == "article":
            meta["cyz_article"] = True
            meta["cyz_referer"] = referer
            if known is not None:
                meta["cyz_known"] = known  # ConditionalRequestMiddleware need not look again
        if comp.browser:
            meta.update(browser_meta(src, challenge_wait=self.challenge_wait))
        # dont_filter: de-duplication happened above, by canonical URL; Scrapy's own
        # filter would also swallow the second leg of a redirect loop without a trace.
        # (Scrapy's offsite filter skips such requests too: OnSiteMiddleware does not.)
        return scrapy.Request(clean_url(url, comp.tracking), callback=callback,
                              errback=self.on_error, meta=meta, headers=headers,
                              priority=priority, dont_filter=True)

    def _links(self, comp: _Compiled, response: TextResponse) -> Iterator[scrapy.Request]:
        depth = response.meta.get("cyz_depth", 0) + 1
        if depth > comp.source.max_depth:
            return
        for href in response.css("a::attr(href), area::attr(href)").getall():
            href = href.strip()
            if not href or href.lower().startswith(_SKIP_HREF):
                continue
            try:
                url = response.urljoin(href)
            except ValueError:
                continue
            if comp.is_article_link(url):
                kind = "article"
            elif comp.is_list(url):
                kind = "list"
            else:
                continue
            req = self._request(comp, url, kind=kind, depth=depth, via="list",
                                referer=response.url)
            if req is not None:
                yield req
        for url in pager_urls(response.url, response.text, self.pager_limit):
            req = self._request(comp, url, kind="list", depth=depth, via="pager",
                                referer=response.url)
            if req is not None:
                yield req

    # -- entry -------------------------------------------------------------------
    async def start(self) -> AsyncIterator[scrapy.Request]:
        for comp in self.sources.values():
            src = comp.source
            for kind, urls in (("list", src.start_urls), ("feed", src.feeds),
                               ("sitemap", src.sitemaps)):
                for url in urls:
                    req = self._request(comp, url, kind=kind, depth=0, via="start")
                    if req is not None:
                        yield req
            if src.search is not None:
                if src.search.session_url:
                    yield self._session_request(comp)
                else:
                    for req in self._first_search_pages(comp):
                        yield req

    # -- search sources ------------------------------------------------------------
    def _search_meta(self, comp: _Compiled, url: str) -> dict[str, Any]:
        meta: dict[str, Any] = {
            "cyz_source": comp.source.id,
            "download_slot": (urlsplit(url).hostname or "").lower(),
        }
        if comp.browser:
            # The browser context keeps the cookies.
            meta.update(browser_meta(comp.source, challenge_wait=self.challenge_wait))
        elif comp.source.search is not None and comp.source.search.session_url:
            meta["cookiejar"] = f"search:{comp.source.id}"  # this source's jar only
        return meta

    def _session_request(self, comp: _Compiled) -> scrapy.Request:
        search = comp.source.search
        headers = {"User-Agent": comp.source.user_agent} if comp.source.user_agent else {}
        meta = self._search_meta(comp, search.session_url) | {"cyz_kind": "session"}
        return scrapy.Request(search.session_url, callback=self.parse_session,
                              errback=self.on_error, meta=meta, headers=headers,
                              priority=PRIORITY_LIST, dont_filter=True)

    def _first_search_pages(self, comp: _Compiled) -> Iterator[scrapy.Request]:
        search = comp.source.search
        for keyword in search.keywords:
            yield self._search_request(comp, keyword, search.first_page)

    def _search_request(self, comp: _Compiled, keyword: str, page: int) -> scrapy.Request:
        """One search request: POSTs share a URL, so these are not de-duplicated by URL."""
        search = comp.source.search
        url = fill(search.url, keyword, page, quote=True)
        if search.params:
            query = urlencode({k: _text(fill(v, keyword, page)) for k, v in search.params.items()})
            url += ("&" if urlsplit(url).query else "?") + query
        headers = {"Accept": "application/json, text/javascript, */*; q=0.01"}
        if comp.source.user_agent:
            headers["User-Agent"] = comp.source.user_agent
        if search.session_url:
            headers["Referer"] = search.session_url
        body = None
        if search.json_body is not None:
            body = json.dumps(fill(search.json_body, keyword, page, numbers=True),
                              ensure_ascii=False).encode()
            headers["Content-Type"] = "application/json;charset=UTF-8"
        elif search.form is not None:
            body = urlencode({k: _text(fill(v, keyword, page))
                              for k, v in search.form.items()}).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded; charset=UTF-8"
        headers.update(search.headers)
        meta = self._search_meta(comp, url) | {
            "cyz_kind": "search", "cyz_keyword": keyword, "cyz_page": page}
        return scrapy.Request(url, method=search.method, body=body, headers=headers,
                              callback=self.parse_search, errback=self.on_error, meta=meta,
                              priority=PRIORITY_LIST, dont_filter=True)

    def parse_session(self, response: Response) -> Iterator[scrapy.Request]:
        """The search page was loaded (its cookies are in the source's jar): search."""
        yield from self._first_search_pages(self._source(response))

    def parse_search(self, response: Response) -> Iterator[scrapy.Request]:
        comp = self._source(response)
        search = comp.source.search
        source_id = comp.source.id
        keyword, page = response.meta["cyz_keyword"], response.meta["cyz_page"]
        where = f"{response.url} (keyword {keyword!r}, page {page})"
        self._inc("cyz/search_pages", source_id=source_id)
        # A search answer is a listing: counted with the list pages too, so a run whose
        # results were all known (none due) still received pages.
        self._inc("cyz/list_pages", source_id=source_id)
        try:
            data = json.loads(response.body.decode(
                getattr(response, "encoding", None) or "utf-8", errors="replace"))
        except ValueError:
            self._record_failure("bad_search_json", where, source_id)
            self.logger.warning("search answer is not JSON: %s", where)
            return
        found, items = dig(data, search.items)
        if not found or not (items is None or isinstance(items, list)):
            self._record_failure("search_items_missing", where, source_id)
            self.logger.warning("search answer has no list at %r: %s", search.items, where)
            return
        items = items or []
        for item in items:
            ok, url = dig(item, search.url_field)
            if not ok or not isinstance(url, str) or not url.strip():
                self._inc("cyz/search_items_without_url", source_id=source_id)
                continue
            url = response.urljoin(url.strip())
            if comp.articles and not comp.is_article_link(url):
                self._inc("cyz/search_not_articles", source_id=source_id)
                continue
            req = self._request(comp, url, kind="article", depth=1, via="search",
                                referer=search.session_url or response.url)
            if req is not None:
                yield req
        if items and page < search.first_page + search.pages - 1:
            yield self._search_request(comp, keyword, page + 1)

    # -- callbacks ---------------------------------------------------------------
    def _source(self, response: Response) -> _Compiled:
        return self.sources[response.meta["cyz_source"]]

    def parse_list(self, response: Response) -> Iterator[scrapy.Request]:
        source_id = response.meta.get("cyz_source")
        self._inc("cyz/list_pages", source_id=source_id)
        if not isinstance(response, TextResponse):
            self._record_failure("not_html", response.url, source_id, sample=False)
            return
        yield from self._links(self._source(response), response)

    def parse_feed(self, response: Response) -> Iterator[scrapy.Request]:
        comp = self._source(response)
        self._inc("cyz/feeds", source_id=comp.source.id)
        links = feed_links(response.body)
        if links is None:
            self._record_failure("bad_feed", response.url, comp.source.id, sample=False)
            return
        depth = response.meta.get("cyz_depth", 0) + 1
        for link in links:
            url = response.urljoin(link)
            if comp.articles and not comp.is_article_link(url):
                # Patterns, when the source has any, hold for feed items too (a bridge's
                # own pages, a feed linking its site's columns).
                self._inc("cyz/feed_not_articles", source_id=comp.source.id)
                continue
            req = self._request(comp, url, kind="article", depth=depth,
                                via="feed", referer=response.url)
            if req is not None:
                yield req

    def parse_sitemap(self, response: Response) -> Iterator[scrapy.Request]:
        comp = self._source(response)
        self._inc("cyz/sitemaps", source_id=comp.source.id)
        body = response.body
        if body[:2] == b"\x1f\x8b":
            try:
                body = gunzip(body, max_size=self.crawler.settings.getint("DOWNLOAD_MAXSIZE"))
            except Exception:  # noqa: BLE001 - a broken archive is a bad sitemap, counted
                self._record_failure("bad_sitemap", response.url, comp.source.id,
                                     sample=False)
                return
        try:
            sitemap = Sitemap(body)
        except Exception:  # noqa: BLE001 - lxml raises several types on garbage
            self._record_failure("bad_sitemap", response.url, comp.source.id, sample=False)
            return
        depth = response.meta.get("cyz_depth", 0) + 1
        nested = sitemap.type == "sitemapindex"
        for entry in sitemap:
            loc = entry.get("loc")
            if not loc:
                continue
            url = response.urljoin(loc)
            if nested:
                req = self._request(comp, url, kind="sitemap", depth=depth, via="sitemap")
            elif not comp.articles or comp.is_article(url):
                # Sitemaps list every page of a site; keep the articles.
                req = self._request(comp, url, kind="article", depth=depth, via="sitemap",
                                    referer=response.url)
            else:
                continue
            if req is not None:
                yield req

    def parse_article(self, response: Response) -> Iterator[PageItem]:
        meta = response.meta
        status = response.status
        known = bool(meta.get("cyz_known"))
        source_id = meta.get("cyz_source")
        if status == 200:
            self._inc("cyz/fetched", source_id=source_id)
        elif status == 304:
            self._inc("cyz/not_modified", source_id=source_id)
        elif status in (404, 410):
            if not known:
                # Never stored: a broken link, not a page that went away.
                self._record_failure("http_4xx", response.url, source_id)
                return
            self._inc("cyz/gone", source_id=source_id)
        else:
            self._record_failure(f"http_{status // 100}xx", response.url, source_id)
            return
        ctype = response.headers.get("Content-Type")
        ctype_s = ctype.decode("latin-1") if ctype else None
        comp = self._source(response)

        def header(name: str) -> str | None:
            value = response.headers.get(name)
            return value.decode("latin-1") if value else None

        yield PageItem(
            source_id=comp.source.id,
            # Clean: the record's URL must not depend on which spelling came first.
            url=clean_url(response.url, comp.tracking),
            canonical_url=meta.get("cyz_canonical") or canonical_url(response.url, comp.tracking),
            status=status,
            body=response.body if status == 200 else b"",
            http_charset=header_charset(ctype_s),
            content_type=ctype_s,
            etag=header("ETag"),
            last_modified=header("Last-Modified"),
            fetched_at=iso(self.now()),
            depth=meta.get("cyz_depth", 0),
            encoding_override=comp.source.encoding,
            known_before=known,
            discovered_via=meta.get("cyz_via", ""),
            referer=meta.get("cyz_referer"),
        )

    # -- failures ----------------------------------------------------------------
    def _record_failure(self, reason: str, url: str, source_id: str | None = None, *,
                        sample: bool = True) -> None:
        self._inc(f"cyz/failed/{reason}", source_id=source_id)
        if sample and len(self._failure_samples) < MAX_FAILURE_SAMPLES:
            self._failure_samples.append(f"{reason} {url}")
            self.crawler.stats.set_value("cyz/failure_samples", list(self._failure_samples))

    def on_error(self, failure: Any) -> None:
        request = getattr(failure, "request", None)
        url = request.url if request is not None else "?"
        source_id = request.meta.get("cyz_source") if request is not None else None
        reason = failure_reason(failure)
        if reason == "robots_forbidden":
            self._inc("cyz/robots_forbidden", source_id=source_id)
        self._record_failure(reason, url, source_id)
        self.logger.info("failed (%s): %s", reason, url)


def fill(value: Any, keyword: str, page: int, *, numbers: bool = False,
         quote: bool = False) -> Any:
    """`value` (a string or JSON-like structure) with `{keyword}` and `{page}` replaced;
    with `numbers`, a string that is exactly "{page}" becomes the page number itself;
    with `quote`, the keyword is percent-encoded (for a URL)."""
    if isinstance(value, str):
        if numbers and value == "{page}":
            return page
        word = percent_encode(keyword, safe="") if quote else keyword
        return value.replace("{keyword}", word).replace("{page}", str(page))
    if isinstance(value, dict):
        return {fill(k, keyword, page): fill(v, keyword, page, numbers=numbers)
                for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, keyword, page, numbers=numbers) for v in value]
    return value


def _text(value: Any) -> str:
    """A form or query value as sent (YAML's true/false/None as a search form writes them)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def dig(data: Any, path: str) -> tuple[bool, Any]:
    """(found, value) at a dotted path of a JSON value (a number indexes a list)."""
    for part in path.split("."):
        if isinstance(data, dict) and part in data:
            data = data[part]
        elif isinstance(data, list) and part.isdigit() and int(part) < len(data):
            data = data[int(part)]
        else:
            return False, None
    return True, data


def feed_links(body: bytes) -> list[str] | None:
    """Item links of an RSS 2.0 / RSS 1.0 / Atom feed, in order; None if not a feed."""
    parser = etree.XMLParser(recover=True, resolve_entities=False, no_network=True,
                             huge_tree=False)
    try:
        root = etree.fromstring(body.lstrip(), parser=parser)
    except (etree.XMLSyntaxError, ValueError):
        return None
    if root is None:
        return None

    def local(el: Any) -> str:
        tag = el.tag
        return etree.QName(tag).localname.lower() if isinstance(tag, str) else ""

    if local(root) not in ("rss", "feed", "rdf"):
        return None
    links: list[str] = []
    for el in root.iter():
        name = local(el)
        if name == "item":
            link = next((c for c in el if local(c) == "link"), None)
            if link is not None and (link.text or "").strip():
                links.append(link.text.strip())
            else:
                guid = next((c for c in el if local(c) == "guid"), None)
                if guid is not None and guid.get("isPermaLink", "true") != "false" \
                        and (guid.text or "").startswith("http"):
                    links.append(guid.text.strip())
        elif name == "entry":
            best = None
            for c in el:
                if local(c) == "link" and c.get("href"):
                    if c.get("rel", "alternate") == "alternate":
                        best = c.get("href")
                        break
                    best = best or c.get("href")
            if best:
                links.append(best.strip())
    return links


def source_slots(sources: Iterable[Source]) -> dict[str, dict[str, float]]:
    """`DOWNLOAD_SLOTS` for sources with their own `download_delay` (slot = host)."""
    slots: dict[str, dict[str, float]] = {}
    for src in sources:
        if src.enabled and src.download_delay is not None:
            entry_hosts = {urlsplit(u).hostname or "" for u in src.entry_urls}
            for host in (entry_hosts | set(src.domains)) - {""}:
                slots[host.lower()] = {"delay": float(src.download_delay)}
    return slots
