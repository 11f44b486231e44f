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


def test_a_list_page_under_an_article_url_is_counted_not_indexed(site_server, data_dir):
    _install(site_server)
    source = _source()

    def run(full=False):
        return crawl([source], data_dir=data_dir, engine="sqlite", host_map=site_server.host_map(),
                     settings_overrides=FAST, full=full)

    first = run()
    assert (first.new, first.not_article) == (1, 1)
    assert first.as_dict()["not_article"] == 1
    console = Console(width=100, record=True, file=io.StringIO())
    console.print(first.table())
    assert "not articles (list pages)" in console.export_text()
    engine = open_engine("sqlite", data_dir)
    try:
        assert engine.count() == 1
    finally:
        engine.close()
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
