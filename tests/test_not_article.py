"""A list page reached where an article was expected is counted, not indexed.

Sources' article patterns are guesses; a section index under an article-like URL must
not become a one-paragraph "article" in the index. The crawl counts it (`not
articles` in the summary), `cyz extract --json` says why, and an unchanged list page
is not extracted again on the next run.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

from rich.console import Console
from sites import FAST, HTML  # tests/ is on sys.path
from test_cli import cyz

from cyz.config import Source
from cyz.crawl import crawl
from cyz.demo.server import conditional_response
from cyz.index import open_engine
from cyz.index.base import stale_filter
from cyz.pipelines.archive import RawArchive, RawPage, text_hash
from cyz.pipelines.page import build_record
from cyz.record import PIPELINE_VERSION, article_id
from cyz.urls import canonical_url

REGRESSION = Path(__file__).parent / "pages" / "regression"
HOST = "www.listcheck.gov.cn"
ARTICLE = "/xwdt/202410/t20241015_5001.html"
INDEX_PAGE = "/xwdt/202410/t20241016_5002.html"  # an article's URL, a section index's page


def _source() -> Source:
    return Source.model_validate({
        "id": "test-lists", "name": "列表测试网", "kind": "government", "region": "遵义",
        "start_urls": [f"http://{HOST}/xwdt/"],
        "article_patterns": [r"/\d{6}/t\d{8}_\d+\.html$"],
    })


def _install(site_server) -> None:
    article = (REGRESSION / "meta_vs_byline_date.html").read_bytes()
    index_page = (REGRESSION / "section_index_page.html").read_bytes()
    listing = (f"<html><body><ul><li><a href='{ARTICLE}'>对接会</a></li>"
               f"<li><a href='{INDEX_PAGE}'>商务要闻</a></li></ul></body></html>").encode()
    site_server.add_route(HOST, "/xwdt/", lambda req: (200, HTML, listing))
    site_server.add_route(HOST, ARTICLE, lambda req: conditional_response(req, article, HTML))
    site_server.add_route(HOST, INDEX_PAGE, lambda req: conditional_response(req, index_page, HTML))


def _printed(table) -> str:
    console = Console(width=100, record=True, file=io.StringIO())
    console.print(table)
    return console.export_text()


def _indexed(data_dir: Path) -> int:
    engine = open_engine("sqlite", data_dir)
    try:
        return engine.count()
    finally:
        engine.close()


def test_a_list_page_under_an_article_url_is_counted_not_indexed(site_server, data_dir):
    _install(site_server)
    source = _source()

    def run(full=False):
        return crawl([source], data_dir=data_dir, engine="sqlite", host_map=site_server.host_map(),
                     settings_overrides=FAST, full=full)

    first = run()
    assert (first.new, first.not_article) == (1, 1)
    assert first.as_dict()["not_article"] == 1
    assert "not articles (list pages)" in _printed(first.table())
    assert _indexed(data_dir) == 1
    second = run()  # the same day: both known, neither due (issue 15), neither asked
    assert (second.new, second.not_article, second.unchanged, second.not_due) == (0, 0, 0, 2)
    third = run(full=True)  # asked again: both unchanged, the list page not counted again
    assert (third.new, third.not_article, third.unchanged, third.not_due) == (0, 0, 2, 0)


def test_extract_json_says_why_a_page_is_not_an_article(tmp_path):
    page = str(REGRESSION / "section_index_page.html")
    record = json.loads(cyz("extract", "--json", page, data_dir=tmp_path).stdout)
    assert record["is_article"] is False
    assert "list page" in record["not_article_reason"]
    article = json.loads(cyz("extract", "--json", str(REGRESSION / "meta_vs_byline_date.html"),
                             data_dir=tmp_path).stdout)
    assert article["is_article"] is True and article["not_article_reason"] is None
    assert article["published_from"] == "byline"


def _stale_state(data_dir: Path) -> list[dict]:
    """What an upgrade leaves behind: an older pipeline indexed a section index as an
    article, and a real article beside it; both records stale, both pages archived."""
    pages = {ARTICLE: (REGRESSION / "meta_vs_byline_date.html").read_bytes(),
             INDEX_PAGE: (REGRESSION / "section_index_page.html").read_bytes()}
    records, raws = [], []
    for path, body in pages.items():
        url = f"http://{HOST}{path}"
        record = build_record(body, url, source=_source(), http_charset="utf-8",
                              fetched_at="2024-10-16T08:00:00+00:00")
        record.update(id=article_id(canonical_url(url)), is_article=True, not_article_reason=None,
                      pipeline_version=PIPELINE_VERSION - 1)
        records.append(record)
        raws.append(RawPage(record["id"], url, "test-lists", "utf-8", "2024-10-16T08:00:00+00:00", body,
                            text_hash=text_hash(record)))
    archive = RawArchive(data_dir)
    archive.put_many(raws)
    archive.close()
    engine = open_engine("sqlite", data_dir)
    engine.init()
    engine.write(records)
    assert engine.count(stale_filter()) == 2
    engine.close()
    return records


def test_reextract_removes_a_record_an_older_pipeline_made_of_a_list_page(data_dir):
    records = _stale_state(data_dir)
    out = cyz("reextract", "--stale", data_dir=data_dir).stdout
    assert "re-extracted 1 page(s), 0 failed, 1 no longer articles" in out

    engine = open_engine("sqlite", data_dir)
    try:
        assert engine.count() == 1 and engine.count(stale_filter()) == 0
        assert engine.get(records[0]["id"]) is not None
        assert engine.get(records[1]["id"]) is None
    finally:
        engine.close()
    archive = RawArchive(data_dir)  # the page itself is kept: nothing is lost
    try:
        assert archive.get(records[1]["id"]) is not None
    finally:
        archive.close()
    # Done once: a second pass over the whole archive removes nothing more.
    again = cyz("reextract", data_dir=data_dir).stdout
    assert "re-extracted 1 page(s), 0 failed" in again and "no longer" not in again


def test_the_crawls_stale_pass_removes_it_too_and_says_so(site_server, data_dir):
    _install(site_server)
    records = _stale_state(data_dir)
    summary = crawl([_source()], data_dir=data_dir, engine="sqlite",
                    host_map=site_server.host_map(), settings_overrides=FAST)
    # The article is fetched anew; the list page is not an article again, and its stale
    # record goes in the crawl's re-extraction pass.
    assert (summary.new, summary.not_article, summary.reextract_removed) == (1, 1, 1)
    assert summary.as_dict()["reextract_removed"] == 1
    assert "removed: no longer articles" in _printed(summary.table())
    assert _indexed(data_dir) == 1
    engine = open_engine("sqlite", data_dir)
    try:
        assert engine.get(records[1]["id"]) is None
    finally:
        engine.close()


def test_an_indexed_articles_url_that_now_serves_a_list_page_is_gone(site_server, data_dir):
    # A CMS that deletes an article often serves its column's index at the old URL.
    article = (REGRESSION / "meta_vs_byline_date.html").read_bytes()
    index_page = (REGRESSION / "section_index_page.html").read_bytes()
    serving = {"body": article}
    listing = f"<html><body><a href='{INDEX_PAGE}'>商务要闻</a></body></html>".encode()
    site_server.add_route(HOST, "/xwdt/", lambda req: (200, HTML, listing))
    site_server.add_route(HOST, INDEX_PAGE,
                          lambda req: conditional_response(req, serving["body"], HTML))

    def run():
        return crawl([_source()], data_dir=data_dir, engine="sqlite", full=True,
                     host_map=site_server.host_map(), settings_overrides=FAST)

    assert run().new == 1
    serving["body"] = index_page
    second = run()
    assert (second.not_article, second.gone, second.new, second.updated) == (1, 1, 0, 0)
    third = run()  # still a list page: gone once, counted once
    assert (third.not_article, third.gone) == (1, 0)
    engine = open_engine("sqlite", data_dir)
    try:
        [record] = list(engine.iter_records())
    finally:
        engine.close()
    assert record["gone_at"] and record["title"] and record["text"]  # the text is kept
