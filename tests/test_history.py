"""Changed articles keep their history: every version of the raw page, `version` and
`updated_at` on the record, and `cyz history`.

A loopback government site whose article is edited between the first and second crawl
(one sentence changed, one added) and whose page chrome alone changes before the third
(the 下一篇 link): the real `cyz crawl` runs three times, then `cyz history`,
`cyz reextract` and `cyz demo --clean` are checked. The source id starts with `demo-`
so that `cyz demo --clean` treats it as a demo source.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_cli import cyz  # tests/ is on sys.path

from cyz.demo.server import RouteRequest, conditional_response
from cyz.pipelines.archive import RawArchive
from cyz.record import article_id
from cyz.urls import canonical_url

REPO = Path(__file__).resolve().parents[1]
HOST = "www.cyzhist.gov.cn"
ARTICLE = f"http://{HOST}/xwdt/202403/t20240301_2.html"
HTML = {"Content-Type": "text/html; charset=utf-8"}

V1 = ("<p>3月1日，遵义市与重庆市在重庆签署战略合作协议。双方将在产业协作、交通互联等领域深化合作。</p>"
      "<p>根据协议，两地将共建产业园区，首期投资50亿元。协议有效期五年。</p>")
V2 = V1.replace("首期投资50亿元。", "首期投资80亿元。").replace(
    "协议有效期五年。", "协议有效期五年。两地每年召开一次联席会议。")


def article_page(body: str, next_title: str) -> bytes:
    """A TRS-style article page; the 上一篇/下一篇 links are chrome, not the article."""
    return (
        "<!DOCTYPE html><html><head><meta charset='utf-8'>"
        "<title>遵义与重庆签署合作协议_测试市人民政府</title>"
        "<meta name='PubDate' content='2024-03-01 09:00'></head><body>"
        "<div class='nav'><a href='/'>首页</a> &gt; <a href='/xwdt/'>新闻动态</a></div>"
        f"<h1>遵义与重庆签署合作协议</h1><div class='TRS_Editor'>{body}</div>"
        "<div class='pager'><p>上一篇：<a href='/xwdt/202402/t20240229_1.html'>遵义召开工作会议</a></p>"
        f"<p>下一篇：<a href='/xwdt/202403/t20240302_3.html'>{next_title}</a></p></div>"
        "<p>来源：遵义日报</p><p>责任编辑：张三</p></body></html>"
    ).encode()


SOURCES = f"""\
sources:
  - id: demo-hist
    name: 测试市人民政府
    kind: government
    region: 遵义
    start_urls: ['http://{HOST}/xwdt/']
    article_patterns: ['/\\d{{6}}/t\\d{{8}}_\\d+\\.html$']
    max_depth: 1
    download_delay: 0
"""


class EditedSite:
    """The article answers with whatever `page` holds now (with ETag/Last-Modified)."""

    def __init__(self, server) -> None:
        self.page = article_page(V1, "暂无")
        listing = f"<html><body><ul><li><a href='{ARTICLE}'>签约</a></li></ul></body></html>"
        server.add_route(HOST, "/xwdt/", (200, HTML, listing.encode()))
        server.add_route(HOST, "/xwdt/202403/t20240301_2.html", self._article)

    def _article(self, req: RouteRequest):
        return conditional_response(req, self.page, HTML)


@pytest.fixture(scope="module")
def env(tmp_path_factory, site_server) -> dict[str, str]:
    config = tmp_path_factory.mktemp("hist-config")
    (config / "sources.yaml").write_text(SOURCES, encoding="utf-8")
    shutil.copy(REPO / "config" / "topic.yaml", config / "topic.yaml")
    proxy = f"http://127.0.0.1:{site_server.port}"
    return {"CYZ_CONFIG_DIR": str(config), "http_proxy": proxy, "HTTP_PROXY": proxy,
            "no_proxy": "", "NO_PROXY": ""}


def record_of(data_dir: Path, env: dict[str, str]) -> dict:
    found = json.loads(cyz("search", "--source", "demo-hist", "--json", data_dir=data_dir,
                           **env).stdout)
    assert found["total"] == 1, found
    return found["results"][0]


@pytest.fixture(scope="module")
def crawled(tmp_path_factory, site_server, env):
    """Three crawls: new, edited, chrome-only change; the record after each."""
    site = EditedSite(site_server)
    data_dir = tmp_path_factory.mktemp("hist-data")
    summaries, records = [], []
    start = datetime.now(UTC)
    for n, page in enumerate((article_page(V1, "暂无"), article_page(V2, "暂无"),
                              article_page(V2, "遵义举行项目签约仪式"))):
        site.page = page
        # Forty days apart, by the crawl's clock: the article is due again each time (the
        # revisit policy asks a known article only when due; this site's Last-Modified
        # dates are old, so its interval is the 30-day cap).
        when = (start + timedelta(days=40 * n)).isoformat(timespec="seconds")
        summaries.append(json.loads(cyz("crawl", "--json", data_dir=data_dir, **env,
                                        CYZ_NOW=when).stdout))
        records.append(record_of(data_dir, env))
    return data_dir, summaries, records


def history(data_dir: Path, env: dict[str, str], target: str) -> dict:
    return json.loads(cyz("history", target, "--json", data_dir=data_dir, **env).stdout)


def test_an_edit_is_a_new_version_and_page_chrome_is_not(crawled):
    _, summaries, (first, second, third) = crawled
    assert [s["new"] for s in summaries] == [1, 0, 0]
    assert [s["updated"] for s in summaries] == [0, 1, 1]  # the third body differs too
    assert first["version"] == 1 and first["updated_at"] == first["crawled_at"]
    assert second["version"] == 2 and "80亿元" in second["text"]
    assert second["updated_at"] == second["crawled_at"]  # this crawl's fetch
    # Only the 下一篇 link changed: same article text, so no new version.
    assert third["version"] == 2 and third["updated_at"] == second["updated_at"]


def test_every_version_of_the_raw_page_is_kept(crawled):
    data_dir, _, (_, second, _) = crawled
    archive = RawArchive(data_dir)
    try:
        versions = archive.versions(article_id(canonical_url(ARTICLE)))
        newest = archive.get(article_id(canonical_url(ARTICLE)))
    finally:
        archive.close()
    assert [v.version for v in versions] == [1, 2]
    assert "50亿元".encode() in versions[0].body and "80亿元".encode() in versions[1].body
    assert versions[1].fetched_at == second["updated_at"]
    assert newest is not None and newest.version == 2 and newest.body == versions[1].body


def test_history_lists_versions_with_a_sentence_diff(crawled, env):
    data_dir, _, (first, second, _) = crawled
    report = history(data_dir, env, article_id(canonical_url(ARTICLE)))
    assert report["id"] == article_id(canonical_url(ARTICLE)) and report["url"] == ARTICLE
    v1, v2 = report["versions"]
    assert (v1["version"], v2["version"]) == (1, 2)
    assert v1["fetched_at"] == first["crawled_at"] and v2["fetched_at"] == second["updated_at"]
    assert v1["title"] == v2["title"] == "遵义与重庆签署合作协议"
    assert v2["chars"] == len(second["text"]) > v1["chars"]
    assert v1["diff"] is None
    lines = v2["diff"].splitlines()
    assert "-根据协议，两地将共建产业园区，首期投资50亿元。" in lines
    assert "+根据协议，两地将共建产业园区，首期投资80亿元。" in lines
    assert "+两地每年召开一次联席会议。" in lines
    assert not any("3月1日" in line for line in lines)  # far from the edit: not shown

    # The URL works as well as the id (any non-canonical spelling of it too).
    assert history(data_dir, env, ARTICLE + "?utm_source=x") == report
    shown = cyz("history", ARTICLE, data_dir=data_dir, **env).stdout
    assert "v2" in shown and "+两地每年召开一次联席会议。" in shown


def test_history_of_an_unknown_article_exits_2(crawled, env):
    data_dir, _, _ = crawled
    for target in ("0123456789abcdef0123", f"http://{HOST}/nothing.html"):
        proc = cyz("history", target, data_dir=data_dir, check=False, **env)
        assert proc.returncode == 2 and "no archived article" in proc.stderr
        assert "Traceback" not in proc.stderr


def test_reextract_is_not_a_new_version(crawled, env):
    data_dir, _, (_, second, _) = crawled
    proc = cyz("reextract", "--source", "demo-hist", data_dir=data_dir, **env)
    assert "re-extracted 1 page(s), 0 failed" in proc.stdout
    record = record_of(data_dir, env)
    assert record["version"] == 2 and record["updated_at"] == second["updated_at"]
    assert "80亿元" in record["text"]
    assert [v["version"] for v in history(data_dir, env, ARTICLE)["versions"]] == [1, 2]


def test_demo_clean_removes_every_version(crawled, env):
    data_dir, _, _ = crawled
    cyz("demo", "--clean", data_dir=data_dir, **env)
    proc = cyz("history", ARTICLE, data_dir=data_dir, check=False, **env)
    assert proc.returncode == 2
    archive = RawArchive(data_dir)
    try:
        assert archive.versions(article_id(canonical_url(ARTICLE))) == []
    finally:
        archive.close()


# The archive as cyz wrote it before versions existed: one row per article.
OLD_LAYOUT = ("CREATE TABLE pages (id TEXT PRIMARY KEY, url TEXT NOT NULL, source_id TEXT NOT NULL, "
              "http_charset TEXT, fetched_at TEXT, body BLOB NOT NULL)")


def test_an_old_archive_is_migrated_in_place(tmp_path, env):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    rid = article_id(canonical_url(ARTICLE))
    db = sqlite3.connect(data_dir / "raw_pages.sqlite3")
    with db:
        db.execute(OLD_LAYOUT)
        db.execute("INSERT INTO pages VALUES (?, ?, ?, ?, ?, ?)",
                   (rid, ARTICLE, "demo-hist", "utf-8", "2024-03-01T02:00:00+00:00",
                    zlib.compress(article_page(V1, "暂无"))))
    db.close()

    report = history(data_dir, env, rid)  # opening the archive migrates it
    assert [(v["version"], v["fetched_at"], v["title"]) for v in report["versions"]] == [
        (1, "2024-03-01T02:00:00+00:00", "遵义与重庆签署合作协议")]
    archive = RawArchive(data_dir)  # a second open finds it migrated
    try:
        (v1,) = archive.versions(rid)
        assert v1.body == article_page(V1, "暂无") and v1.url == ARTICLE and v1.http_charset == "utf-8"
    finally:
        archive.close()
    tables = {row[0] for row in sqlite3.connect(data_dir / "raw_pages.sqlite3").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "pages" not in tables
