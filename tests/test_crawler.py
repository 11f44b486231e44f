"""The crawler against loopback fault sites: what it fetches, what it never requests,
how it counts failures, and that a re-crawl of unchanged pages costs only 304s."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sites import (
    DUP_COPY,
    FAILING,
    FAST,
    GONE_LATER,
    GOOD,
    GOV,
    MALFORMED,
    NEWS,
    PRIVATE,
    RECORDING_PIPELINE,
    TRACKED,
    WRONG_CHARSET,
    art,
    gov_source,
    news_source,
    read_items,
)

from cyz.crawler.run import CrawlError, run_crawl
from cyz.crawler.spider import feed_links, header_charset, pager_urls
from cyz.crawler.state import CrawlState, body_hash
from cyz.demo.server import SiteServer
from cyz.urls import canonical_url


def crawl(server: SiteServer, data_dir: Path, sources, **kwargs):
    items_path = data_dir / "items.jsonl"
    items_path.unlink(missing_ok=True)
    overrides = {**FAST, "CYZ_TEST_ITEMS_PATH": str(items_path),
                 **kwargs.pop("overrides", {})}
    stats = run_crawl(sources, data_dir=data_dir, item_pipelines={RECORDING_PIPELINE: 100},
                      host_map=server.host_map([GOV, NEWS]), settings_overrides=overrides,
                      **kwargs)
    return stats, read_items(items_path)


def days_later(days: float) -> str:
    """A `CYZ_NOW` that many days from now (the crawl's clock; no sleeping)."""
    return (datetime.now(UTC) + timedelta(days=days)).isoformat(timespec="seconds")


def gov_url(path: str) -> str:
    return f"http://{GOV}{path}"


def test_gov_site_crawl_then_conditional_recrawl(site_server, fault_sites, data_dir) -> None:
    site_server.reset_counts()
    stats, items = crawl(site_server, data_dir, [gov_source()])

    by_url = {i["url"]: i for i in items}
    assert set(by_url) == {gov_url(p) for p in GOOD}
    assert all(i["status"] == 200 and i["source_id"] == "test-gov" for i in items)
    assert stats["cyz/fetched"] == len(GOOD)
    assert stats["cyz/list_pages"] == 3  # /xwdt/ plus the two JS-pager pages
    assert by_url[gov_url(art(4, 8))]["depth"] == 2  # found on index_1.html

    # Every fault is counted under its reason, once per URL.
    for reason in ("timeout", "http_5xx", "redirect_loop", "too_large", "robots_forbidden"):
        assert stats[f"cyz/failed/{reason}"] == 1, reason
    assert stats["cyz/robots_forbidden"] == 1
    assert site_server.count(host=GOV, path=FAILING, status=500) == 2  # one retry

    # Never requested: the robots-disallowed page, the tracking-parameter copy, offsite.
    assert site_server.count(host=GOV, path=PRIVATE) == 0
    assert site_server.count(host=GOV, path=DUP_COPY) == 0
    assert stats["cyz/url_duplicates"] == 1
    assert site_server.count(host="www.elsewhere.example.com") == 0
    for path in GOOD:
        assert site_server.count(host=GOV, path=path) == 1, path

    # Bad pages still arrive, with what the pipeline needs to cope.
    wrong = by_url[gov_url(WRONG_CHARSET)]
    assert wrong["http_charset"] == "utf-8"
    assert "字符集" in wrong["body"].encode("latin-1").decode("gbk")
    assert by_url[gov_url(MALFORMED)]["body"].startswith("<html>")
    assert all(i["etag"] and i["last_modified"] for i in items)

    # The same day: no known article is asked again (the revisit policy, issue 15).
    site_server.reset_counts()
    stats_same_day, _ = crawl(site_server, data_dir, [gov_source()])
    assert stats_same_day["cyz/not_due"] == len(GOOD)
    for path in GOOD:
        assert site_server.count(host=GOV, path=path) == 0, path

    # A month later every article is due: unchanged pages answer 304, the removed page
    # 404. (Before issue 15 this was simply the second crawl.)
    site_server.reset_counts()
    fault_sites.gone.set()
    try:
        stats2, items2 = crawl(site_server, data_dir, [gov_source()],
                               overrides={"CYZ_NOW": days_later(31)})
    finally:
        fault_sites.gone.clear()
    unchanged = [p for p in GOOD if p != GONE_LATER]
    assert stats2["cyz/not_modified"] == len(unchanged)
    assert stats2.get("cyz/fetched", 0) == 0
    assert stats2["cyz/gone"] == 1
    assert site_server.count(host=GOV, status=304) == len(unchanged)
    sent = [s for s in site_server.requests_for(GOV) if s.path == art(1, 5)]
    assert sent and "if-none-match" in sent[0].headers
    statuses = {i["url"]: i["status"] for i in items2}
    assert statuses[gov_url(GONE_LATER)] == 404
    assert {u for u, s in statuses.items() if s == 304} == {gov_url(p) for p in unchanged}
    assert all(i["known_before"] for i in items2)
    with CrawlState(data_dir) as state:
        assert state.get(canonical_url(gov_url(GONE_LATER))).gone_at is not None
        assert state.get(canonical_url(gov_url(art(1, 5)))).gone_at is None


def test_feeds_and_sitemaps_over_https(site_server, fault_sites, data_dir) -> None:
    site_server.reset_counts()
    snapshots: list[dict] = []
    stats, items = crawl(site_server, data_dir, [news_source()], progress=snapshots.append)
    urls = sorted(i["url"] for i in items)
    assert urls == [f"https://{NEWS}/2024/01/{4 + n:02d}/a{n}.html" for n in range(1, 6)]
    assert stats["cyz/feeds"] == 2
    assert stats["cyz/sitemaps"] == 3  # the index, a gzipped and a plain child
    assert stats["cyz/url_duplicates"] == 1  # a1 again in Atom, with utm_source
    assert site_server.count(host=NEWS, path="/about.html") == 0  # not an article URL
    assert {i["discovered_via"] for i in items} == {"feed", "sitemap"}
    assert snapshots and snapshots[-1]["done"] and snapshots[-1]["fetched"] == 5


def test_a_record_url_is_the_clean_spelling_whatever_arrives_first(
        site_server, fault_sites, data_dir) -> None:
    """The stored URL must not depend on which spelling of an article the crawl met first:
    a page known only by a tracking spelling is fetched and stored under its clean URL."""
    site_server.reset_counts()
    stats, items = crawl(site_server, data_dir,
                         [news_source(feeds=[f"https://{NEWS}/tracked.xml"], sitemaps=[])])
    assert [i["url"] for i in items] == [f"https://{NEWS}/2024/01/05/a1.html"]
    assert site_server.count(host=NEWS, path="/2024/01/05/a1.html") == 1
    assert site_server.count(host=NEWS, path=TRACKED.split("#")[0]) == 0
    assert stats.get("cyz/url_duplicates", 0) == 0


def test_depth_limit_and_page_cap(site_server, fault_sites, data_dir) -> None:
    # max_depth 1: the pager pages are fetched (one hop) but not their articles (two).
    stats, items = crawl(site_server, data_dir,
                         [gov_source(max_depth=1, article_patterns=[r"/t2024010[5-9]_"])])
    urls = {i["url"] for i in items}
    assert stats["cyz/list_pages"] == 3
    assert gov_url(art(1, 5)) in urls and gov_url(art(2, 6)) in urls
    assert gov_url(art(4, 8)) not in urls and gov_url(art(5, 9)) not in urls

    # A cap of 2 article pages: exactly two article URLs are ever requested.
    site_server.reset_counts()
    stats, items = crawl(site_server, data_dir / "capped", [gov_source()], max_pages=2)
    assert len(items) == 2
    assert stats["cyz/capped"] > 0
    article_paths = {s.path for s in site_server.requests_for(GOV)
                     if s.path.startswith(("/xwdt/2024", "/private/"))}
    assert article_paths == {art(1, 5), art(2, 6)}


def test_a_broken_pipeline_raises_crawl_error(site_server, fault_sites, data_dir) -> None:
    with pytest.raises(CrawlError, match="no_such_module"):
        run_crawl([news_source()], data_dir=data_dir,
                  item_pipelines={"no_such_module.Pipeline": 100},
                  host_map=site_server.host_map([NEWS]), settings_overrides=FAST)


def test_pager_urls() -> None:
    html = '<script>createPageHTML(4, 0, "index", "shtml");</script>'
    assert pager_urls("https://a.gov.cn/xw/", html) == [
        "https://a.gov.cn/xw/index.shtml", "https://a.gov.cn/xw/index_1.shtml",
        "https://a.gov.cn/xw/index_2.shtml", "https://a.gov.cn/xw/index_3.shtml"]
    assert pager_urls("https://a.gov.cn/xw/index_2.html?x=1",
                      "createPage(3, 2, 'index', 'html')")[-1] == "https://a.gov.cn/xw/index_2.html"
    assert pager_urls("https://a.gov.cn/xw/", "createPageHTML(9,0)", limit=2) == [
        "https://a.gov.cn/xw/index.html", "https://a.gov.cn/xw/index_1.html"]
    assert pager_urls("https://a.gov.cn/xw/", "<p>no pager</p>") == []


def test_feed_links_and_charset_header() -> None:
    rss = b"<?xml version='1.0'?><rss><channel><item><link> http://x.cn/1 </link></item>" \
          b"<item><guid>http://x.cn/2</guid></item></channel></rss>"
    atom = b"<feed xmlns='http://www.w3.org/2005/Atom'><entry><link rel='self' href='s'/>" \
           b"<link rel='alternate' href='http://x.cn/3'/></entry></feed>"
    assert feed_links(rss) == ["http://x.cn/1", "http://x.cn/2"]
    assert feed_links(atom) == ["http://x.cn/3"]
    assert feed_links(b"<html><body>not a feed</body></html>") is None
    assert feed_links(b"\x00\xff garbage") is None
    assert header_charset("text/html; charset=GBK") == "gbk"
    assert header_charset('text/html; charset="utf-8"') == "utf-8"
    assert header_charset("text/html") is None


def test_crawl_state_round_trip(tmp_path: Path) -> None:
    url = "https://www.zunyi.gov.cn/xw/202401/t20240105_1.html"
    state = CrawlState(tmp_path)
    assert state.conditional_headers(url) == {}
    assert not state.mark_gone(url)  # unknown URLs are not invented
    h = body_hash(b"<html>v1</html>")
    state.record_fetch(url, url=url, source_id="s", etag='"e1"',
                       last_modified="Mon, 01 Jan 2024 00:00:00 GMT", content_hash=h,
                       pipeline_version=1)
    assert state.conditional_headers(url) == {
        "If-None-Match": '"e1"', "If-Modified-Since": "Mon, 01 Jan 2024 00:00:00 GMT"}
    assert state.is_unchanged(url, h, 1)
    assert not state.is_unchanged(url, h, 2)  # a better pipeline re-extracts
    assert not state.is_unchanged(url, body_hash(b"v2"), 1)
    state.close()

    state = CrawlState(tmp_path)  # reopened: the memory persists
    state.record_fetch(url, url=url, source_id="s", status=304)  # keeps hash and validators
    assert state.get(url).content_hash == h and state.get(url).etag == '"e1"'
    assert state.mark_gone(url, "2024-02-01T00:00:00+00:00")
    assert state.mark_gone(url, "2024-03-01T00:00:00+00:00")
    page = state.get(url)
    assert page.gone_at == "2024-02-01T00:00:00+00:00"  # the first date is kept
    assert state.conditional_headers(url) == {}  # a gone page must come back in full
    state.record_fetch(url, url=url, source_id="s", content_hash=h, pipeline_version=1)
    assert state.get(url).gone_at is None
    state.close()
    with pytest.raises(RuntimeError):
        state.get(url)


DEMO_SOURCES = Path(__file__).resolve().parents[1] / "demo" / "sources.yaml"


@pytest.mark.skipif(not DEMO_SOURCES.is_file(), reason="demo sites not present")
def test_demo_sites_crawl_and_recrawl(site_server, data_dir) -> None:
    from cyz.config import load_sources

    sources = load_sources(DEMO_SOURCES)
    hosts = site_server.host_map()
    items_path = data_dir / "items.jsonl"
    overrides = {"CYZ_TEST_ITEMS_PATH": str(items_path), "LOG_LEVEL": "ERROR"}
    site_server.reset_counts()
    stats = run_crawl(sources, data_dir=data_dir, item_pipelines={RECORDING_PIPELINE: 100},
                      host_map=hosts, settings_overrides=overrides)
    items = read_items(items_path)
    assert {i["source_id"] for i in items} == {s.id for s in sources}
    assert stats["cyz/fetched"] == len(items) > 0
    assert stats["cyz/robots_forbidden"] >= 1
    assert not [s for s in site_server.served if s.path.startswith("/search/")]
    charsets = {i["source_id"]: i["http_charset"] for i in items}
    assert charsets["demo-qianxin"] == "gbk"

    items_path.unlink()
    stats2 = run_crawl(sources, data_dir=data_dir, item_pipelines={RECORDING_PIPELINE: 100},
                       host_map=hosts, settings_overrides={**overrides,
                                                           "CYZ_NOW": days_later(31)})
    assert stats2["cyz/not_modified"] == stats["cyz/fetched"]
    assert stats2.get("cyz/fetched", 0) == 0


def test_source_slots_name_each_host_of_a_source_with_its_own_delay() -> None:
    from cyz.crawler.spider import source_slots

    slow = gov_source(download_delay=3)
    assert source_slots([slow, news_source()]) == {GOV: {"delay": 3.0}}


def test_build_settings_merges_component_overrides(tmp_path: Path) -> None:
    from cyz.crawler.settings import build_settings

    settings = build_settings(
        tmp_path, host_map={GOV: "127.0.0.1:1"}, max_pages=5,
        item_pipelines={"x.Pipeline": 300},
        overrides={"DOWNLOADER_MIDDLEWARES": {"x.Extra": 999}, "DOWNLOAD_TIMEOUT": 3})
    mws = settings.getdict("DOWNLOADER_MIDDLEWARES")
    assert mws["x.Extra"] == 999
    assert mws["cyz.crawler.middlewares.LoopbackHostsMiddleware"] == 740
    assert settings.getbool("ROBOTSTXT_OBEY") and settings.getint("DOWNLOAD_TIMEOUT") == 3
    assert settings.getint("CYZ_MAX_PAGES") == 5
    assert settings.getdict("CYZ_HOST_MAP") == {GOV: "127.0.0.1:1"}
    assert settings["CYZ_DATA_DIR"] == str(tmp_path)
