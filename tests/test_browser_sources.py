"""Sources rendered in a browser (`render: browser`, issue 17).

Real crawls (`cyz.crawl.crawl`) driving the system Chromium through scrapy-playwright
against loopback sites of our own:

- a list page whose links a script writes (the HTML holds none);
- a site behind a JavaScript challenge in the manner of 瑞数: without its cookie every
  page answers 412 with a script that sets the cookie and reloads; its robots.txt is
  plain;
- a search API on the challenge site, reached only with the cookie (JSON through the
  browser);
- a page that never answers (a hang fails that page, not the run), and an image the
  browser must not load;
- beside them a plain source, which must not start a browser or see the cookie.

What the site server saw is what was asked.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
from pathlib import Path

import pytest
from sites import FAST, cli_env  # tests/ is on sys.path

from cyz.config import Source
from cyz.crawl import crawl
from cyz.crawler.browser import BrowserMissing, find_chromium, require_chromium
from cyz.index import open_engine

# CI installs Debian's chromium and sets CYZ_REQUIRE_CHROMIUM: there a missing browser fails.
pytestmark = pytest.mark.skipif(find_chromium() is None and not os.environ.get("CYZ_REQUIRE_CHROMIUM"),
                                reason="no Chromium (apt-get install chromium)")

HTML = {"Content-Type": "text/html; charset=utf-8"}
JSON = {"Content-Type": "application/json;charset=UTF-8"}
TEXT = {"Content-Type": "text/plain"}
NOW = "2026-11-26T02:00:00+08:00"
REPO = Path(__file__).resolve().parents[1]
# The browser waits longer than a plain fetch would.
BROWSER_FAST = {**FAST, "DOWNLOAD_TIMEOUT": 8, "CYZ_CHALLENGE_WAIT": 3}


def _article(n: int, words: str) -> bytes:
    return (f"<html><head><meta charset='utf-8'><title>{words}第{n}篇</title></head><body>"
            f"<h1>{words}第{n}篇</h1><div class='info'>发布时间：2026-11-2{n} 来源：测试</div>"
            f"<div class='TRS_Editor'><p>成都市与遵义市签署文旅合作协议，{words}，"
            "双方将共建川黔红色旅游线路，推动成渝地区双城经济圈与黔北协同发展。</p>"
            "<p><img src='/img/photo.jpg'></p></div></body></html>").encode()


class BrowserSites:
    """The loopback sites; each test gets fresh host names."""

    def __init__(self, server) -> None:
        self.server = server
        tag = secrets.token_hex(4)
        self.js_host = f"js{tag}.rendertest.gov.cn"
        self.wall_host = f"wall{tag}.rendertest.gov.cn"
        self.plain_host = f"plain{tag}.rendertest.gov.cn"
        self.token = secrets.token_hex(8)
        self.cookie = f"rs_ck={self.token}"
        self.search_bodies: list[dict] = []
        self.release = threading.Event()  # lets the hanging page go at the end
        robots = (200, TEXT, b"User-agent: *\nAllow: /\n")
        for host in (self.js_host, self.wall_host, self.plain_host):
            server.add_route(host, "/robots.txt", robots)
        # 1. A list that scripts write.
        self.js_articles = [f"/xw/202611/t2026112{n}_{500 + n}.html" for n in range(1, 4)]
        links = json.dumps(self.js_articles)
        server.add_route(self.js_host, "/xw/index.html", (200, HTML, (
            "<html><head><meta charset='utf-8'><title>要闻</title></head><body>"
            "<ul id='list'></ul><script>var links = " + links + ";"
            "var ul = document.getElementById('list');"
            "links.forEach(function (href, i) { var li = document.createElement('li');"
            "var a = document.createElement('a'); a.href = href; a.textContent = '要闻' + i;"
            "li.appendChild(a); ul.appendChild(li); });</script></body></html>").encode()))
        for n, path in enumerate(self.js_articles, 1):
            server.add_route(self.js_host, path, (200, HTML, _article(n, "脚本列表")))
        server.add_route(self.js_host, "/img/photo.jpg", (200, {"Content-Type": "image/jpeg"},
                                                           b"\xff\xd8\xff"))
        # 2. The challenge site: list, two articles, a hanging page, a search API.
        self.wall_articles = [f"/zw/202611/t2026112{n}_{600 + n}.html" for n in range(1, 3)]
        self.hang = "/zw/202611/t20261129_699.html"
        # A page whose challenge no script ever passes (its cookie is another one).
        self.stuck = "/zw/202611/t20261128_698.html"
        self.search_results = [f"/zw/202611/t2026112{n}_{700 + n}.html" for n in range(5, 7)]
        listing = "".join(f"<li><a href='{p}'>政务{i}</a></li>"
                          for i, p in enumerate([*self.wall_articles, self.hang, self.stuck]))
        self.wall_pages = {
            "/zw/index.html": f"<html><body><ul>{listing}</ul></body></html>".encode(),
            **{p: _article(n, "挑战页面") for n, p in enumerate(self.wall_articles, 1)},
            **{p: _article(n, "站内搜索") for n, p in enumerate(self.search_results, 5)},
            "/search.html": b"<html><body>search</body></html>",
        }
        for path in self.wall_pages:
            server.add_route(self.wall_host, path, self._walled)
        server.add_route(self.wall_host, self.hang, self._hanging)
        server.add_route(self.wall_host, self.stuck, (412, HTML, b"<html><body></body></html>"))
        server.add_route(self.wall_host, "/api/search", self._search)
        # 3. A plain list site (no browser).
        self.plain_article = "/pl/202611/t20261126_800.html"
        server.add_route(self.plain_host, "/pl/index.html", (
            200, HTML, f"<a href='{self.plain_article}'>普通</a>".encode()))
        server.add_route(self.plain_host, self.plain_article,
                         (200, HTML, _article(6, "普通来源")))

    def _passed(self, req) -> bool:
        return self.cookie in (req.header("cookie") or "")

    def _challenge(self) -> tuple[int, dict, bytes]:
        # The script stands in for the obfuscated challenge: it computes nothing, but it
        # is JavaScript that must run before the cookie exists.
        script = (f"<script>document.cookie = '{self.cookie}; path=/';"
                  "setTimeout(function () { location.reload(); }, 50);</script>")
        return 412, HTML, f"<html><head>{script}</head><body></body></html>".encode()

    def _walled(self, req):
        if not self._passed(req):
            return self._challenge()
        return 200, HTML, self.wall_pages[req.path]

    def _hanging(self, req):
        if not self._passed(req):
            return self._challenge()
        self.release.wait(30)
        return 200, HTML, _article(9, "迟迟不来")

    def _search(self, req):
        if not self._passed(req):
            return self._challenge()
        if req.method != "POST":
            return 405, JSON, b"{}"
        body = json.loads(req.body)
        self.search_bodies.append(body)
        rows = ([{"url": f"http://{self.wall_host}{p}"} for p in self.search_results]
                if body["page"] == 1 else [])
        return 200, JSON, json.dumps({"data": {"list": rows}}).encode()

    def sources(self) -> list[Source]:
        return [
            Source.model_validate({
                "id": "js-list", "name": "脚本列表", "kind": "government", "region": "成都",
                "render": "browser", "start_urls": [f"http://{self.js_host}/xw/index.html"],
                "article_patterns": [r"/\d{6}/t\d{8}_\d+\.html$"]}),
            Source.model_validate({
                "id": "walled", "name": "挑战站点", "kind": "government", "region": "成都",
                "render": "browser", "start_urls": [f"http://{self.wall_host}/zw/index.html"],
                "article_patterns": [r"/\d{6}/t\d{8}_\d+\.html$"],
                "search": {"url": f"http://{self.wall_host}/api/search", "method": "POST",
                           "json": {"q": "{keyword}", "page": "{page}"},
                           "keywords": ["成渝"], "pages": 3, "items": "data.list",
                           "url_field": "url",
                           "session_url": f"http://{self.wall_host}/search.html"}}),
            Source.model_validate({
                "id": "plain", "name": "普通来源", "kind": "government", "region": "重庆",
                "start_urls": [f"http://{self.plain_host}/pl/index.html"],
                "article_patterns": [r"/\d{6}/t\d{8}_\d+\.html$"]}),
        ]

    def crawl(self, data_dir: Path, sources: list[Source], **kwargs):
        hosts = [self.js_host, self.wall_host, self.plain_host]
        return crawl(sources, data_dir=data_dir, engine=kwargs.pop("engine", "sqlite"),
                     host_map=self.server.host_map(hosts), settings_overrides=BROWSER_FAST,
                     now=kwargs.pop("now", NOW), **kwargs)


def _indexed(data_dir: Path, engine: str = "sqlite") -> dict[str, dict]:
    index = open_engine(engine, data_dir)
    try:
        return {r["url"]: r for r in index.iter_records()}
    finally:
        index.close()


@pytest.fixture(params=["sqlite", "opensearch"])
def engine_name(request, monkeypatch):
    if request.param == "sqlite":
        yield "sqlite"
        return
    url = request.getfixturevalue("opensearch_url")
    prefix = f"cyzbrowser{secrets.token_hex(3)}"
    # The crawl runs in a child process: it reads the engine settings from the environment.
    monkeypatch.setenv("CYZ_OPENSEARCH_URL", url)
    monkeypatch.setenv("CYZ_INDEX_PREFIX", prefix)
    yield "opensearch"
    from test_engines import drop_prefix

    drop_prefix(url, prefix)


@pytest.fixture
def browser_sites(site_server):
    sites = BrowserSites(site_server)
    yield sites
    sites.release.set()


def test_browser_sources_render_lists_pass_challenges_and_search(browser_sites, data_dir,
                                                                 engine_name):
    site, server = browser_sites, browser_sites.server
    server.reset_counts()
    summary = site.crawl(data_dir, site.sources(), engine=engine_name)

    records = _indexed(data_dir, engine_name)
    js = {f"http://{site.js_host}{p}" for p in site.js_articles}
    wall = {f"http://{site.wall_host}{p}" for p in site.wall_articles + site.search_results}
    plain = {f"http://{site.plain_host}{site.plain_article}"}
    # The scripted list's links, the challenged pages, the search results and the
    # plain source's article: all indexed, each under its source.
    assert set(records) == js | wall | plain
    assert {records[u]["source_id"] for u in js} == {"js-list"}
    assert {records[u]["source_id"] for u in wall} == {"walled"}
    assert all("签署文旅合作协议" in records[u]["text"] for u in records)
    assert records[f"http://{site.wall_host}{site.wall_articles[0]}"]["title"] == "挑战页面第1篇"

    # The challenge was met once: the first page of the run answered 412, then the
    # browser's context kept the cookie, so no other page was challenged.
    wall_log = [r for r in server.requests_for(site.wall_host)
                if r.path not in ("/robots.txt", site.stuck)]
    # Challenged: the first pages only, at most the two a context loads at a time
    # (each waits for its reload, which carries the cookie, before the next starts).
    assert 1 <= sum(r.status == 412 for r in wall_log) <= 2
    assert {r.path for r in wall_log if r.status == 200} >= {
        "/zw/index.html", "/api/search", *site.wall_articles, *site.search_results}
    # The search went through the browser with the spider's JSON body.
    assert site.search_bodies[0] == {"q": "成渝", "page": 1}
    assert [b["page"] for b in site.search_bodies] == [1, 2]
    # The hanging page failed alone (the navigation timed out); the run went on.
    # The page that stayed challenged failed as such.
    assert summary.sources["walled"]["failed"] == {"browser_timeout": 1, "challenge": 1}
    # No image was fetched; the plain source never carried the challenge cookie.
    assert server.count(site.js_host, "/img/photo.jpg") == 0
    plain_log = server.requests_for(site.plain_host)
    assert plain_log and all("rs_ck" not in (r.headers.get("cookie") or "") for r in plain_log)
    assert all("HeadlessChrome" not in (r.headers.get("user-agent") or "") for r in plain_log)

    # Twelve hours on: no known article is due again, the lists are read again.
    server.reset_counts()
    site.release.set()
    again = site.crawl(data_dir, site.sources(), engine=engine_name,
                       now="2026-11-26T14:00:00+08:00")
    assert again.new == 1  # the page that hung the night before (the stuck one still fails)
    assert server.count(site.js_host, site.js_articles[0]) == 0
    assert server.count(site.js_host, "/xw/index.html") == 1


def test_plain_crawl_starts_no_browser(site_server, data_dir, monkeypatch):
    """A crawl without a browser source needs no Chromium at all."""
    site = BrowserSites(site_server)
    monkeypatch.setenv("CYZ_CHROMIUM", "")
    monkeypatch.setenv("PATH", "/nonexistent")  # no chromium to find, none needed
    summary = site.crawl(data_dir, [site.sources()[2]])
    assert summary.new == 1
    assert set(_indexed(data_dir)) == {f"http://{site.plain_host}{site.plain_article}"}


def test_missing_chromium_names_the_source_and_the_fix(site_server, data_dir, tmp_path,
                                                       monkeypatch):
    site = BrowserSites(site_server)
    monkeypatch.delenv("CYZ_CHROMIUM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no chromium on PATH
    with pytest.raises(BrowserMissing) as caught:
        site.crawl(data_dir, site.sources())
    message = str(caught.value)
    assert "js-list, walled" in message and "apt-get install chromium" in message
    assert "CYZ_CHROMIUM" in message
    assert site_server.requests_for(site.js_host) == []  # nothing was asked
    # Disabled browser sources need nothing.
    off = [s.model_copy(update={"enabled": False}) for s in site.sources()[:2]]
    assert require_chromium(off) is None


def test_cli_missing_chromium_is_one_line(tmp_path, data_dir):
    """`cyz crawl` with a browser source and no Chromium: one line, exit 2."""
    import subprocess
    import sys

    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "sources:\n"
        "  - id: cd-gov\n    name: 成都\n    kind: government\n    region: 成都\n"
        "    render: browser\n    start_urls: [http://www.example.gov.cn/xw/]\n"
        "    article_patterns: ['/t\\d+_\\d+\\.html$']\n", encoding="utf-8")
    env = cli_env(data_dir, "", PATH=str(Path(sys.executable).parent))
    env.pop("CYZ_CHROMIUM", None)
    if shutil.which("chromium", path=env["PATH"]):
        pytest.skip("chromium sits beside python")
    done = subprocess.run([sys.executable, "-m", "cyz.cli", "crawl", "--sources", str(sources)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "cd-gov has render: browser" in lines[0]
    assert "Traceback" not in done.stderr



def _chromium_pids(marker: str) -> list[int]:
    """Main Chromium processes whose command line carries `marker` (renderers and other
    helpers have a --type= and die with their browser)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            args = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(marker.encode() in a for a in args) and not any(
                a.startswith(b"--type=") for a in args):
            pids.append(int(proc.name))
    return pids


def test_browser_crash_fails_the_page_not_the_run(site_server, data_dir):
    """The browser is killed while it loads an article: the run goes on, a new browser
    takes the remaining pages."""
    import signal

    from cyz.crawler.browser import _pac

    site = BrowserSites(site_server)
    hosts = [site.js_host, site.wall_host, site.plain_host]
    marker = _pac(site_server.host_map(hosts))
    crash_path = site.js_articles[0]
    killed: list[int] = []

    def crash(req):
        if not killed:
            killed.extend(_chromium_pids(marker))
            for pid in killed:
                os.kill(pid, signal.SIGKILL)
        return 200, HTML, _article(1, "脚本列表")

    site_server.add_route(site.js_host, crash_path, crash)
    summary = site.crawl(data_dir, site.sources()[:1])
    assert killed, "no browser process was found to kill"
    records = _indexed(data_dir)
    others = {f"http://{site.js_host}{p}" for p in site.js_articles[1:]}
    assert others <= set(records)  # the pages after the crash, in a new browser
    crashed = f"http://{site.js_host}{crash_path}"
    # The page being loaded either failed as a browser failure or was retried.
    assert crashed in records or summary.sources["js-list"]["failed"].get("browser") == 1
    assert summary.status == "ok"


def test_schedule_refuses_to_start_without_chromium(tmp_path, data_dir):
    """`cyz schedule` checks the browser at start-up, not at 02:00: one line, exit 2."""
    import subprocess
    import sys

    config = tmp_path / "config"
    config.mkdir()
    for name in ("topic.yaml", "alerts.yaml"):
        shutil.copy(REPO / "config" / name, config / name)
    (config / "sources.yaml").write_text(
        "sources:\n"
        "  - id: cd-gov\n    name: 成都\n    kind: government\n    region: 成都\n"
        "    render: browser\n    start_urls: [http://www.example.gov.cn/xw/]\n"
        "    article_patterns: ['/t\\d+_\\d+\\.html$']\n", encoding="utf-8")
    env = cli_env(data_dir, "", PATH=str(Path(sys.executable).parent),
                  CYZ_CONFIG_DIR=str(config))
    env.pop("CYZ_CHROMIUM", None)
    if shutil.which("chromium", path=env["PATH"]):
        pytest.skip("chromium sits beside python")
    done = subprocess.run([sys.executable, "-m", "cyz.cli", "schedule"], capture_output=True,
                          text=True, env=env, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "cd-gov has render: browser" in done.stderr and "Traceback" not in done.stderr
