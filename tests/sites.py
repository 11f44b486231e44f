"""Fault sites for the crawler tests, served by SiteServer dynamic routes.

Two real-looking hosts:

- `www.cyztest.gov.cn`, a TRS-style government site: a list page with a JavaScript
  pager, articles (one of them reachable under a tracking-parameter copy), a page
  behind robots.txt, a slow page, a failing page, a redirect loop, a 20 MB page, a
  page in GBK that claims UTF-8, malformed HTML and a page that later disappears.
- `news.cyztest.com.cn`, a news site known only by its RSS and Atom feeds and a
  sitemap index (one child sitemap gzipped), reached over https.

Also `RecordingPipeline`, an item pipeline that writes each item to a JSONL file
and updates CrawlState the way the store pipeline does, so re-crawls are conditional.
"""

from __future__ import annotations

import gzip
import json
import os
import threading
import time
from dataclasses import asdict
from pathlib import Path

from cyz.config import Source
from cyz.crawler.state import CrawlState, body_hash
from cyz.demo.server import RouteRequest, SiteServer, conditional_response
from cyz.record import PIPELINE_VERSION

GOV = "www.cyztest.gov.cn"
NEWS = "news.cyztest.com.cn"

HTML = {"Content-Type": "text/html; charset=utf-8"}

# Crawl settings for tests: fast and deterministic (no politeness delays, one retry,
# short timeout).
FAST = {
    "DOWNLOAD_DELAY": 0,
    "AUTOTHROTTLE_ENABLED": False,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 8,
    "RETRY_TIMES": 1,
    "CYZ_RETRY_BACKOFF_BASE": 0.05,
    "DOWNLOAD_TIMEOUT": 2,
    "LOG_LEVEL": "ERROR",
}
XML = {"Content-Type": "application/xml"}


def art(n: int, day: int = 5) -> str:
    """Path of government article number n."""
    return f"/xwdt/202401/t202401{day:02d}_{1000 + n}.html"


# Articles that answer 200 on the first crawl.
GOOD = [art(1, 5), art(2, 6), art(4, 8), art(5, 9), art(6, 10), art(7, 11), art(12, 16)]
SLOW, FAILING, LOOP, HUGE = art(8, 12), art(9, 13), art(10, 14), art(11, 15)
PRIVATE = "/private/202401/t20240107_1003.html"
DUP_COPY = art(1, 5) + "?from=timeline"
GONE_LATER = art(12, 16)
MALFORMED, WRONG_CHARSET = art(6, 10), art(7, 11)
TRACKED = "/2024/01/05/a1.html?utm_source=rss&spm=1.2#comments"  # news article 1, tracked


def _article_html(n: int, title: str) -> bytes:
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
        f"<body><h1>{title}</h1><div class='TRS_Editor'><p>遵义与重庆签署合作协议，第{n}篇。</p>"
        "</div></body></html>"
    ).encode()


def gov_source(**changes: object) -> Source:
    data = {
        "id": "test-gov",
        "name": "测试市人民政府",
        "kind": "government",
        "region": "遵义",
        "start_urls": [f"http://{GOV}/xwdt/"],
        "article_patterns": [r"/\d{6}/t\d{8}_\d+\.html$"],
        "follow_patterns": [r"/xwdt/index(_\d+)?\.html$"],
        "max_depth": 2,
    }
    data.update(changes)
    return Source.model_validate(data)


def news_source(**changes: object) -> Source:
    data = {
        "id": "test-news",
        "name": "测试新闻网",
        "kind": "news",
        "region": "重庆",
        "feeds": [f"https://{NEWS}/rss.xml", f"https://{NEWS}/atom.xml"],
        "sitemaps": [f"https://{NEWS}/sitemap_index.xml"],
        "article_patterns": [r"/\d{4}/\d{2}/\d{2}/a\d+\.html$"],
    }
    data.update(changes)
    return Source.model_validate(data)


class FaultSites:
    """Installs the routes; `gone` makes GONE_LATER answer 404 from then on."""

    def __init__(self, server: SiteServer) -> None:
        self.server = server
        self.gone = threading.Event()
        self._huge = b"<html><body>" + b"x" * (20 * 1024 * 1024) + b"</body></html>"

    def install(self) -> FaultSites:
        add = self.server.add_route
        add(GOV, "/robots.txt", (200, {"Content-Type": "text/plain"},
                                 b"User-agent: *\nDisallow: /private/\n"))
        add(GOV, "/xwdt/", self._list(0))
        add(GOV, "/xwdt/index.html", self._list(0))
        add(GOV, "/xwdt/index_1.html", self._list(1))
        add(GOV, "/xwdt/index_2.html", self._list(2))
        for path in GOOD:
            if path not in (MALFORMED, WRONG_CHARSET, GONE_LATER):
                n = int(path.rsplit("_", 1)[1][:4]) - 1000
                add(GOV, path, self._static(_article_html(n, f"文章{n}")))
        add(GOV, MALFORMED, self._static(
            b"<html><head><title>\xe7\xa0\xb4</title><body><div><p>unclosed <b>bold"
            b"<table><tr><td>cell</div></span>\x00\xff trailing"))
        add(GOV, WRONG_CHARSET, lambda req: conditional_response(
            req, _article_html(7, "字符集").decode().replace("utf-8", "gbk").encode("gbk"),
            HTML))  # says UTF-8 in the header, is GBK
        add(GOV, GONE_LATER, self._gone_later)
        add(GOV, PRIVATE, self._static(_article_html(3, "内部")))
        add(GOV, SLOW, self._slow)
        add(GOV, FAILING, (500, HTML, b"<html>server error</html>"))
        add(GOV, LOOP, self._loop)
        add(GOV, HUGE, (200, HTML, self._huge))

        add(NEWS, "/rss.xml", self._static(_rss(), {"Content-Type": "application/rss+xml"}))
        add(NEWS, "/atom.xml", self._static(_atom(), {"Content-Type": "application/atom+xml"}))
        add(NEWS, "/sitemap_index.xml", self._static(_sitemap_index(), XML))
        add(NEWS, "/sitemap-1.xml.gz", self._static(
            gzip.compress(_urlset(["/2024/01/08/a4.html", "/about.html"])),
            {"Content-Type": "application/x-gzip"}))
        add(NEWS, "/sitemap-2.xml", self._static(_urlset(["/2024/01/09/a5.html"]), XML))
        # A feed that links one article only under a tracking spelling.
        add(NEWS, "/tracked.xml", self._static(_tracked_rss(), {"Content-Type": "application/rss+xml"}))
        for i in range(1, 6):
            path = f"/2024/01/{4 + i:02d}/a{i}.html"
            add(NEWS, path, self._static(_article_html(i, f"新闻{i}")))
        return self

    # -- route factories -----------------------------------------------------------
    @staticmethod
    def _static(body: bytes, headers: dict[str, str] | None = None):
        return lambda req: conditional_response(req, body, headers or HTML)

    @staticmethod
    def _list(page: int):
        links = {
            0: [art(1, 5), art(2, 6), DUP_COPY, art(1, 5) + "#comments", PRIVATE,
                MALFORMED, WRONG_CHARSET, GONE_LATER, SLOW, FAILING, LOOP, HUGE,
                "http://www.elsewhere.example.com/202401/t20240101_1.html",
                "javascript:void(0)", "mailto:office@example.org"],
            1: [art(4, 8)],
            2: [art(5, 9), art(2, 6)],
        }[page]
        anchors = "".join(f"<li><a href='{u}'>{u}</a></li>" for u in links)
        script = f'<script>createPageHTML(3, {page}, "index", "html");</script>'
        body = f"<html><body><ul>{anchors}</ul>{script}</body></html>".encode()
        return lambda req: (200, HTML, body)

    def _gone_later(self, req: RouteRequest):
        if self.gone.is_set():
            return 404, HTML, b"<html>404</html>"
        return conditional_response(req, _article_html(12, "将删除"), HTML)

    @staticmethod
    def _slow(req: RouteRequest):
        time.sleep(5)  # past the tests' 2 s DOWNLOAD_TIMEOUT
        return 200, HTML, _article_html(8, "慢")

    @staticmethod
    def _loop(req: RouteRequest):
        target = LOOP if req.query else LOOP + "?again=1"
        return 302, {"Location": f"http://{GOV}{target}"}, b""


def _rss() -> bytes:
    items = "".join(
        f"<item><title>新闻{i}</title><link>https://{NEWS}/2024/01/{4 + i:02d}/a{i}.html</link>"
        "</item>" for i in (1, 2))
    return (f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel>"
            f"<title>测试</title>{items}</channel></rss>").encode()


def _tracked_rss() -> bytes:
    return (f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>测试</title>"
            f"<item><title>新闻1</title><link>https://{NEWS}{TRACKED.replace('&', '&amp;')}</link></item>"
            "</channel></rss>").encode()


def _atom() -> bytes:
    return (f"<?xml version='1.0' encoding='utf-8'?><feed xmlns='http://www.w3.org/2005/Atom'>"
            f"<title>测试</title><entry><title>新闻3</title>"
            f"<link rel='alternate' href='https://{NEWS}/2024/01/07/a3.html'/></entry>"
            f"<entry><title>新闻1 again</title>"
            f"<link href='https://{NEWS}/2024/01/05/a1.html?utm_source=atom'/></entry>"
            "</feed>").encode()


def _sitemap_index() -> bytes:
    maps = "".join(f"<sitemap><loc>https://{NEWS}{p}</loc></sitemap>"
                   for p in ("/sitemap-1.xml.gz", "/sitemap-2.xml"))
    return ("<?xml version='1.0' encoding='utf-8'?><sitemapindex "
            f"xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>{maps}</sitemapindex>").encode()


def _urlset(paths: list[str]) -> bytes:
    urls = "".join(f"<url><loc>https://{NEWS}{p}</loc></url>" for p in paths)
    return ("<?xml version='1.0' encoding='utf-8'?><urlset "
            f"xmlns='http://www.sitemaps.org/schemas/sitemap/0.9'>{urls}</urlset>").encode()


class RecordingPipeline:
    """Writes items to `CYZ_TEST_ITEMS_PATH` (JSONL) and, like the store pipeline,
    records fetched pages in CrawlState after "storing" them."""

    def __init__(self, items_path: str, data_dir: str) -> None:
        self.items_path = items_path
        self.state = CrawlState(Path(data_dir))

    @classmethod
    def from_crawler(cls, crawler):
        return cls(crawler.settings["CYZ_TEST_ITEMS_PATH"], crawler.settings["CYZ_DATA_DIR"])

    def close_spider(self) -> None:
        self.state.close()

    def process_item(self, item):
        row = asdict(item)
        row["body"] = item.body.decode("latin-1")
        with open(self.items_path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        if item.status == 200:
            self.state.record_fetch(
                item.canonical_url, url=item.url, source_id=item.source_id, status=200,
                etag=item.etag, last_modified=item.last_modified,
                content_hash=body_hash(item.body), pipeline_version=PIPELINE_VERSION,
                fetched_at=item.fetched_at)
        elif item.status == 304:
            self.state.record_fetch(item.canonical_url, url=item.url,
                                    source_id=item.source_id, status=304,
                                    fetched_at=item.fetched_at)
        elif item.status in (404, 410):
            self.state.mark_gone(item.canonical_url, item.fetched_at, status=item.status)
        return item


# The dotted path under which the crawl child can import the pipeline: whatever name
# pytest imported this module as (`sites` or `tests.sites`).
RECORDING_PIPELINE = f"{__name__}.RecordingPipeline"


def read_items(path: Path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n") if line]


def write_list_source(path: Path, source_id: str, name: str, host: str) -> Path:
    """A sources file with one source: `http://HOST/list/` linking articles `/a/N.html`
    (the loopback sites of the run-integrity and backup tests)."""
    path.write_text(
        "sources:\n"
        f"  - id: {source_id}\n"
        f"    name: {name}\n"
        "    kind: government\n"
        "    region: 遵义\n"
        f"    start_urls: [http://{host}/list/]\n"
        "    article_patterns: ['/a/\\d+\\.html$']\n"
        "    max_depth: 1\n"
        "    download_delay: 0\n", encoding="utf-8")
    return path


def cli_env(data_dir: Path, proxy: str, **extra: str) -> dict[str, str]:
    """The environment of a `cyz` child in the subprocess tests: this one without engine
    or proxy settings, the data dir, and the site server as the HTTP proxy."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CYZ_ENGINE", "CYZ_INDEX", "CYZ_OPENSEARCH"))
           and k.lower() not in ("http_proxy", "https_proxy", "no_proxy", "all_proxy")}
    env.update({"CYZ_DATA_DIR": str(data_dir), "COLUMNS": "200", "http_proxy": proxy,
                "https_proxy": proxy, "no_proxy": "", "PYTHONUNBUFFERED": "1"})
    env.update(extra)
    return env
