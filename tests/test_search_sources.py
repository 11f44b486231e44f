"""A site's search API as a source (issue 17).

Real crawls (`cyz.crawl.crawl`, SQLite index) of a loopback TRS-style search API
(`POST /irs/front/search`, JSON in, `data.middle.list[]` out) that answers 403 unless
the session cookie set by the search page comes with the request, beside a plain list
source on another host that must never see that cookie. What the site server saw is
what was asked.
"""

from __future__ import annotations

import json
import secrets
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sites import FAST  # tests/ is on sys.path

from cyz.config import ConfigError, Source, load_sources
from cyz.crawl import crawl
from cyz.index import open_engine
from cyz.index.base import Filters, SearchRequest
from cyz.index.query import parse

HTML = {"Content-Type": "text/html; charset=utf-8"}
JSON = {"Content-Type": "application/json;charset=UTF-8"}
T0 = datetime.now(UTC).replace(microsecond=0)


def _article(n: int, words: str) -> bytes:
    return (f"<html><head><meta charset='utf-8'><title>{words}{n}</title></head>"
            f"<body><h1>{words}{n}</h1><div class='TRS_Editor'><p>遵义市与重庆市签署合作"
            f"协议，推动成渝地区双城经济圈建设，{words}，第{n}篇。</p></div></body></html>"
            ).encode()


class SearchSite:
    """A TRS search API on a host of its own: two pages of results per keyword, then
    an empty page; results on page 2 include an off-site URL and a non-article URL."""

    def __init__(self, server, *, cookie: bool = True) -> None:
        self.server = server
        self.host = f"s{secrets.token_hex(4)}.searchtest.gov.cn"
        self.other = f"o{secrets.token_hex(4)}.listtest.gov.cn"
        self.session = secrets.token_hex(8)
        self.cookie = cookie
        self.bodies: list[dict] = []  # JSON bodies the API received
        self.broken = False  # answer garbage instead of JSON
        self.paths = [f"/xwdt/202411/t202411{10 + i:02d}_{700 + i}.html" for i in range(4)]
        server.add_route(self.host, "/robots.txt", (200, {"Content-Type": "text/plain"}, b""))
        server.add_route(self.host, "/irs/search.html", self._search_page)
        server.add_route(self.host, "/irs/front/search", self._api)
        server.add_route(self.host, "/zwgk/index.html", (200, HTML, b"<html>list</html>"))
        for n, path in enumerate(self.paths):
            server.add_route(self.host, path, (200, HTML, _article(n, "川黔协作搜索")))
        # The other source: a plain list site.
        self.other_article = "/xw/202411/t20241120_900.html"
        server.add_route(self.other, "/robots.txt", (200, {"Content-Type": "text/plain"}, b""))
        server.add_route(self.other, "/xw/", (200, {**HTML, "Set-Cookie": "OTHER=1; Path=/"},
                                              f"<a href='{self.other_article}'>x</a>".encode()))
        server.add_route(self.other, self.other_article, (200, HTML, _article(9, "列表来源")))

    def _search_page(self, req):
        headers = {**HTML, "Set-Cookie": f"SESSION={self.session}; Path=/; HttpOnly"}
        return 200, headers, b"<html><body>search</body></html>"

    def _api(self, req):
        if req.method != "POST":
            return 405, JSON, b"{}"
        if self.cookie and f"SESSION={self.session}" not in (req.header("cookie") or ""):
            return 403, JSON, b'{"code": 403}'
        if self.broken:
            return 200, JSON, b"<html>WAF says no</html>"
        body = json.loads(req.body)
        self.bodies.append(body)
        page = body["pageNo"]
        base = f"http://{self.host}"
        if page == 1:
            rows = [{"title": "<em>成渝</em>一", "time": "2024-11-10 09:00:00",
                     "url": base + self.paths[0]},
                    {"title": "二", "time": "2024-11-11", "url": base + self.paths[1]}]
        elif page == 2:
            rows = [{"title": "三", "time": "2024-11-12", "url": base + self.paths[2]},
                    {"title": "外站", "url": "http://www.elsewhere.gov.cn/a/202411/t20241112_1.html"},
                    {"title": "栏目", "url": base + "/zwgk/index.html"},
                    {"title": "无链接"}]
        else:
            rows = []
        answer = {"data": {"middle": {"list": rows}, "pager": {"pageNo": page}}}
        return 200, JSON, json.dumps(answer, ensure_ascii=False).encode()

    def source(self, **search_changes) -> Source:
        search = {
            "url": f"http://{self.host}/irs/front/search", "method": "POST",
            "json": {"tenantId": "21", "dataTypeId": "48", "searchWord": "{keyword}",
                     "pageNo": "{page}", "pageSize": 20, "orderBy": "time"},
            "keywords": ["成渝"], "pages": 5, "items": "data.middle.list",
            "url_field": "url", "title_field": "title", "date_field": "time",
            "session_url": f"http://{self.host}/irs/search.html",
        } | search_changes
        return Source.model_validate({
            "id": "search-test", "name": "搜索测试", "kind": "government", "region": "遵义",
            "article_patterns": [r"/\d{6}/t\d{8}_\d+\.html$"], "search": search})

    def other_source(self) -> Source:
        return Source.model_validate({
            "id": "list-test", "name": "列表测试", "kind": "government", "region": "重庆",
            "start_urls": [f"http://{self.other}/xw/"],
            "article_patterns": [r"/\d{6}/t\d{8}_\d+\.html$"]})

    def crawl(self, data_dir: Path, sources: list[Source], **kwargs):
        hosts = [self.host, self.other, "www.elsewhere.gov.cn"]
        return crawl(sources, data_dir=data_dir, engine="sqlite",
                     host_map=self.server.host_map(hosts), settings_overrides=FAST,
                     now=kwargs.pop("now", T0), **kwargs)


def _found(data_dir: Path, words: str) -> list[str]:
    engine = open_engine("sqlite", data_dir)
    try:
        result = engine.search(SearchRequest(parse(words), Filters(), limit=50))
        return sorted(h.record["url"] for h in result.hits)
    finally:
        engine.close()


def test_search_pages_session_cookie_and_revisit(site_server, data_dir):
    site = SearchSite(site_server)
    site_server.reset_counts()
    first = site.crawl(data_dir, [site.source(), site.other_source()])

    # Page 1 and 2 had items, page 3 was empty: no page 4 or 5.
    assert [b["pageNo"] for b in site.bodies] == [1, 2, 3]
    assert all(b["searchWord"] == "成渝" and b["pageSize"] == 20 for b in site.bodies)
    assert site_server.count(site.host, "/irs/front/search", 403) == 0
    # The three result articles indexed, under the search source; nothing off-site, no
    # list page taken for an article (article_patterns), the item without a URL skipped.
    base = f"http://{site.host}"
    assert _found(data_dir, "川黔协作搜索") == sorted(base + p for p in site.paths[:3])
    assert site_server.count(site.host, "/zwgk/index.html") == 0
    assert site_server.count("www.elsewhere.gov.cn") == 0
    assert first.sources["search-test"]["new"] == 3
    assert first.sources["list-test"]["new"] == 1
    assert not first.failed, first.failed
    stats = first.stats
    assert stats["cyz/source/search-test/search_pages"] == 3
    assert stats["cyz/source/search-test/search_not_articles"] == 1
    assert stats["cyz/source/search-test/search_items_without_url"] == 1

    # The session cookie went with the search requests only: not to the articles, not to
    # the other source's host (which set a cookie of its own, never sent back either).
    api = [s for s in site_server.requests_for(site.host) if s.path == "/irs/front/search"]
    assert len(api) == 3 and all(f"SESSION={site.session}" in s.headers["cookie"] for s in api)
    for served in site_server.requests_for(site.host):
        if served.path != "/irs/front/search":
            assert "cookie" not in served.headers, served
    other = site_server.requests_for(site.other)
    assert len(other) >= 2
    assert all("cookie" not in s.headers for s in other), other

    # The same day again: the search is asked again, no article is (revisit policy).
    site.bodies.clear()
    site_server.reset_counts()
    second = site.crawl(data_dir, [site.source()])
    assert [b["pageNo"] for b in site.bodies] == [1, 2, 3]
    for path in site.paths:
        assert site_server.count(site.host, path) == 0, path
    assert (second.new, second.fetched, second.not_due) == (0, 0, 3)
    assert not second.nothing_fetched and second.exit_code == 0  # the searches answered


def test_without_the_session_page_the_api_refuses_and_it_is_counted(site_server, data_dir):
    site = SearchSite(site_server)
    site_server.reset_counts()
    summary = site.crawl(data_dir, [site.source(session_url=None)])
    assert site_server.count(site.host, "/irs/front/search", 403) == 1
    assert summary.failed == {"http_4xx": 1}
    assert summary.new == 0


def test_a_search_answer_that_is_not_json_is_a_failure_not_a_crash(site_server, data_dir):
    site = SearchSite(site_server)
    site.broken = True
    summary = site.crawl(data_dir, [site.source(keywords=["成渝", "遵义"]), site.other_source()])
    assert summary.failed == {"bad_search_json": 2}
    assert summary.sources["search-test"]["failed"] == {"bad_search_json": 2}
    samples = summary.stats["cyz/failure_samples"]
    assert any(s.startswith("bad_search_json http://" + site.host) and "'遵义'" in s
               for s in samples), samples
    assert summary.sources["list-test"]["new"] == 1  # the other source is unharmed


def test_a_missing_items_path_is_a_failure(site_server, data_dir):
    site = SearchSite(site_server)
    summary = site.crawl(data_dir, [site.source(items="data.result.docs")])
    assert summary.failed == {"search_items_missing": 1}
    assert summary.new == 0


def test_get_search_with_params(site_server, data_dir):
    host = f"g{secrets.token_hex(4)}.searchtest.gov.cn"
    seen: list[str] = []
    path = "/xw/202411/t20241115_801.html"

    def api(req):
        seen.append(req.query)
        rows = [{"doc": {"link": path}}] if "page=0" in req.query else []
        return 200, JSON, json.dumps({"resultDocs": rows}).encode()

    site_server.add_route(host, "/robots.txt", (200, {"Content-Type": "text/plain"}, b""))
    site_server.add_route(host, "/query/s", api)
    site_server.add_route(host, path, (200, HTML, _article(1, "黔渝合作检索")))
    source = Source.model_validate({
        "id": "get-test", "name": "GET", "kind": "news", "region": "重庆",
        "search": {"url": f"http://{host}/query/s", "params": {"qt": "{keyword}",
                   "page": "{page}", "siteCode": 5100000062}, "keywords": ["川渝 合作"],
                   "pages": 3, "first_page": 0, "items": "resultDocs",
                   "url_field": "doc.link"}})
    summary = crawl([source], data_dir=data_dir, engine="sqlite",
                    host_map=site_server.host_map([host]), settings_overrides=FAST)
    assert seen == ["qt=%E5%B7%9D%E6%B8%9D+%E5%90%88%E4%BD%9C&page=0&siteCode=5100000062",
                    "qt=%E5%B7%9D%E6%B8%9D+%E5%90%88%E4%BD%9C&page=1&siteCode=5100000062"]
    assert summary.new == 1
    assert _found(data_dir, "黔渝合作检索") == [f"http://{host}{path}"]


# -- configuration ------------------------------------------------------------------

def _write(tmp_path: Path, search: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(textwrap.dedent("""\
        sources:
          - id: zunyi-search
            name: 遵义搜索
            kind: government
            region: 遵义
            search:
        """) + textwrap.indent(textwrap.dedent(search), " " * 6), encoding="utf-8")
    return path


GOOD = """\
url: https://www.zunyi.gov.cn/irs/front/search
method: post
json: {tenantId: "21", searchWord: "{keyword}", pageNo: "{page}"}
keywords: [成渝]
items: data.middle.list
"""


def test_a_search_source_loads(tmp_path):
    [src] = load_sources(_write(tmp_path, GOOD))
    assert src.search.method == "POST" and src.search.json_body["tenantId"] == "21"
    assert src.domains == ["www.zunyi.gov.cn"]
    assert src.enabled  # no start_urls, no article_patterns needed


@pytest.mark.parametrize(("search", "field", "words"), [
    (GOOD.replace('searchWord: "{keyword}", ', ""), "search", "{keyword} must appear"),
    (GOOD.replace('pageNo: "{page}"', "pageNo: 1"), "search", "{page} must appear"),
    (GOOD.replace("items: data.middle.list", "items: ''"), "search.items", "dotted path"),
    (GOOD.replace("items: data.middle.list", "items: data..list"), "search.items", "dotted path"),
    (GOOD.replace("keywords: [成渝]", "keywords: []"), "search.keywords", "at least 1"),
    (GOOD.replace("method: post", "method: GET"), "search.method", "needs method: POST"),
    (GOOD.replace("method: post", "method: PUT"), "search.method", "'GET' or 'POST'"),
    (GOOD + "form: {q: x}\n", "search.json", "either json or form"),
    (GOOD + "pages: 0\n", "search.pages", "greater than or equal to 1"),
    (GOOD + "sesion_url: https://www.zunyi.gov.cn/\n", "search.sesion_url",
     "did you mean 'session_url'"),
    (GOOD.replace("https://www", "ftp://www"), "search.url", "not an http(s) URL"),
])
def test_a_bad_search_names_file_source_and_field(tmp_path, search, field, words):
    path = _write(tmp_path, search)
    with pytest.raises(ConfigError) as info:
        load_sources(path)
    message = str(info.value)
    assert str(path) in message and "'zunyi-search'" in message, message
    assert f"field {field!r}" in message and words in message, message


def test_allowed_domains_must_admit_the_search_host(tmp_path):
    path = _write(tmp_path, GOOD)
    path.write_text(path.read_text(encoding="utf-8").replace(
        "    search:", "    allowed_domains: [www.sc.gov.cn]\n    search:"), encoding="utf-8")
    with pytest.raises(ConfigError, match="allowed_domains.*www.zunyi.gov.cn"):
        load_sources(path)
