"""The whole path on loopback sites: crawl → process → dedupe → store → search.

Demo sites plus the fault sites of tests/sites.py, crawled with the real item
pipelines into the embedded index and into a real OpenSearch node; then the summary,
the index and the crawl state are checked, a second crawl must skip everything, and a
page that disappears must be kept and marked gone.
"""

from __future__ import annotations

import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sites import FAST, GONE_LATER, GOOD, GOV, gov_source, news_source  # tests/ is on sys.path

from cyz.config import load_sources
from cyz.crawl import crawl
from cyz.index import open_engine
from cyz.index.base import Filters, SearchRequest
from cyz.index.query import parse
from cyz.record import article_id
from cyz.urls import canonical_url

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sources():
    return load_sources(REPO / "demo" / "sources.yaml") + [gov_source(), news_source()]


@pytest.fixture(scope="module", params=["sqlite", "opensearch"])
def engine_name(request):
    if request.param == "opensearch":
        url = request.getfixturevalue("opensearch_url")
        prefix = f"cyze2e{secrets.token_hex(3)}"
        # The crawl runs in a child process: it reads the engine settings from the environment.
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("CYZ_OPENSEARCH_URL", url)
            patch.setenv("CYZ_INDEX_PREFIX", prefix)
            yield "opensearch"
        from test_engines import drop_prefix

        drop_prefix(url, prefix)
    else:
        yield "sqlite"


@pytest.fixture(scope="module")
def runs(tmp_path_factory, site_server, fault_sites, sources, engine_name):
    """First crawl, second crawl (unchanged), third crawl after one page went away."""
    data_dir = tmp_path_factory.mktemp("e2e")
    hosts = site_server.host_map()

    def run(now=None):
        return crawl(sources, data_dir=data_dir, engine=engine_name, host_map=hosts,
                     settings_overrides=FAST, now=now)

    first = run()
    second = run()  # the same day: no known article is due
    fault_sites.gone.set()
    try:
        # A month later (the crawl's clock): every article is due, the gone page is seen.
        third = run(datetime.now(UTC) + timedelta(days=31))
    finally:
        fault_sites.gone.clear()
    return data_dir, first, second, third


@pytest.fixture(scope="module")
def index(runs, engine_name):
    engine = open_engine(engine_name, runs[0])
    engine.init()
    yield engine
    engine.close()


def search(engine, query: str, **filters) -> list[dict]:
    result = engine.search(SearchRequest(parse(query), Filters(**filters), limit=200))
    return [h.record for h in result.hits]


def test_first_crawl_summary_counts_every_outcome(runs):
    _, first, _, _ = runs
    # demo: 33 readable articles; fault gov site: the GOOD pages; fault news site: 5
    assert first.new == 33 + len(GOOD) + 5
    assert first.updated == 0 and first.unchanged == 0
    assert first.url_duplicates >= 2  # demo ?from=timeline copy and the fault site's copy
    assert first.reprints >= 2  # the demo reprint and the traditional copy
    for reason in ("http_5xx", "redirect_loop", "too_large", "timeout", "robots_forbidden"):
        assert first.failed.get(reason, 0) >= 1, (reason, first.failed)


def test_everything_new_is_searchable(runs, index):
    _, first, _, _ = runs
    assert index.count() == first.new
    assert index.count(Filters(sources=["test-gov"])) == len(GOOD)
    hits = search(index, "遵义 合作", sources=["demo-zunyi-gov"])
    assert hits and all("遵义" in h["text_zh"] + h["title_zh"] for h in hits)


def test_wrong_charset_and_malformed_pages_are_indexed_readably(index):
    records = {r["url"]: r for r in search(index, "", sources=["test-gov"])}
    charset_page = records[f"http://{GOV}/xwdt/202401/t20240111_1007.html"]
    assert "遵义与重庆签署合作协议" in charset_page["text"]
    assert "\ufffd" not in charset_page["text"]


def test_second_crawl_extracts_nothing_again(runs):
    _, first, second, third = runs
    assert second.new == 0 and second.updated == 0
    # The same day no known article is asked again (issue 15: not due, not requested)...
    assert second.not_due == first.new and second.unchanged == 0
    assert second.reprints == 0
    # ...and a month later every one is, conditionally, and none is extracted again.
    assert third.new == 0 and third.updated == 0 and third.not_due == 0
    assert third.unchanged >= first.new - 1  # all but the page that went away


def test_a_page_that_went_away_is_kept_and_marked_gone(runs, index):
    _, first, _, third = runs
    assert third.gone == 1
    record = index.get(article_id(canonical_url(f"http://{GOV}{GONE_LATER}")))
    assert record is not None and record["gone_at"]
    assert index.count() == first.new  # nothing deleted


def test_reprint_cluster_has_exactly_one_first_copy(index):
    records = search(index, "", sources=["demo-huaxia", "demo-zunyi-gov", "demo-qianxin"])
    clusters: dict[str, list[dict]] = {}
    for rec in records:
        clusters.setdefault(rec["cluster_id"], []).append(rec)
    shared = [members for members in clusters.values() if len(members) > 1]
    assert len(shared) >= 2
    for members in shared:
        firsts = [m for m in members if m["is_first_in_cluster"]]
        assert len(firsts) == 1
        earliest = min(m["published_at"] for m in members)
        assert firsts[0]["published_at"] == earliest
    scripts = {m["script"] for members in shared for m in members}
    assert scripts == {"hans", "hant"}  # the traditional copy joined its simplified story


def test_crawl_with_the_engine_down_spools_and_the_next_run_flushes(
        tmp_path, monkeypatch, site_server, opensearch_url):
    demo = load_sources(REPO / "demo" / "sources.yaml")
    prefix = f"cyzdown{secrets.token_hex(3)}"
    monkeypatch.setenv("CYZ_INDEX_PREFIX", prefix)
    monkeypatch.setenv("CYZ_OPENSEARCH_URL", "http://127.0.0.1:9")  # nothing listens there

    def run():
        return crawl(demo, data_dir=tmp_path, engine="opensearch",
                     host_map=site_server.host_map(), settings_overrides=FAST)

    try:
        down = run()
        assert down.new == 33 and down.failed_total == 2  # the crawl itself went on normally
        spooled = (tmp_path / "spool" / f"opensearch-{prefix}.jsonl").read_text(encoding="utf-8")
        assert len(spooled.splitlines()) == 33
        monkeypatch.setenv("CYZ_OPENSEARCH_URL", opensearch_url)
        back = run()
        # Nothing extracted again (the same day, nothing even asked: not due).
        assert back.new == 0 and back.not_due == 33
        engine = open_engine("opensearch", tmp_path)
        try:
            engine.init()
            assert engine.count() == 33  # every spooled record, once
            assert engine.status()["spooled"] == 0
        finally:
            engine.close()
    finally:
        from test_engines import drop_prefix

        drop_prefix(opensearch_url, prefix)
