"""The per-page extraction time limit (CYZ_PAGE_TIMEOUT): a page whose extraction runs
past it fails with a timeout, its worker is replaced, and the pages after it go on,
through the same pool and in a real crawl."""

from __future__ import annotations

import asyncio
import random
import secrets
import time

from sites import FAST

from cyz.config import Source
from cyz.crawl import crawl
from cyz.crawler.workers import ExtractionPool, process_page
from cyz.runs import last_run

HTML = {"Content-Type": "text/html; charset=utf-8"}
_CHARS = "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能"


def _article(title: str, text: str) -> bytes:
    return (f"<html><head><meta charset='utf-8'><title>{title}</title></head><body>"
            f"<h1>{title}</h1><div class='TRS_Editor'>{text}</div></body></html>").encode()


SMALL = _article("遵义与重庆签署合作协议", "<p>遵义与重庆签署合作协议，推动成渝地区双城经济圈建设。</p>")


def hang_on_marker(body: bytes, url: str, **kwargs):
    """`process_page`, except that a page holding HANG never finishes (a worker stuck in
    a C extension looks like this from outside)."""
    if b"HANG" in body:
        time.sleep(600)
    return process_page(body, url, **kwargs)


def test_a_hung_page_times_out_and_the_next_page_goes_through_the_same_pool():
    pool = ExtractionPool(workers=2, timeout=1.0, fn=hang_on_marker)

    async def scenario():
        hung = asyncio.ensure_future(pool.process_page(b"<html>HANG</html>", "http://a.cn/1.html"))
        started = time.monotonic()
        try:
            await hung
        except TimeoutError:
            waited = time.monotonic() - started
        else:
            raise AssertionError("the hung page did not time out")
        # Both workers busy or replaced: each next page still gets a worker.
        results = await asyncio.gather(*(pool.process_page(SMALL, f"http://a.cn/{n}.html")
                                          for n in range(2, 6)))
        return waited, results

    try:
        waited, results = asyncio.run(scenario())
    finally:
        pool.close()
    assert waited < 30  # the limit, plus the worker warm-up before the clock starts
    assert [r["title"] for r, _work in results] == ["遵义与重庆签署合作协议"] * 4


def test_the_in_process_path_has_no_limit_and_still_extracts():
    pool = ExtractionPool(workers=1, timeout=0.001)
    record, _work = asyncio.run(pool.process_page(SMALL, "http://a.cn/1.html"))
    assert record["title"] == "遵义与重庆签署合作协议"


def _huge_text(paragraphs: int) -> str:
    # Distinct random paragraphs: seconds of real extraction work, nothing to shortcut.
    chars = "".join(random.Random(7).choices(_CHARS, k=300 * paragraphs))
    return "".join(f"<p>{chars[i:i + 300]}。</p>" for i in range(0, len(chars), 300))


def test_a_crawl_counts_the_page_that_timed_out_and_stores_the_others(site_server, tmp_path):
    host = f"p{secrets.token_hex(4)}.timeout.gov.cn"
    huge = _article("遵义合作长文", _huge_text(20000))  # 18 MB: ~5 s to extract here
    add = site_server.add_route
    add(host, "/robots.txt", (200, {"Content-Type": "text/plain"}, b"User-agent: *\nAllow: /\n"))
    links = "".join(f"<li><a href='/a/{n}.html'>{n}</a></li>" for n in range(1, 5))
    add(host, "/list/", (200, HTML, f"<html><body><ul>{links}</ul></body></html>".encode()))
    for n in range(1, 4):
        add(host, f"/a/{n}.html", (200, HTML, _article(f"第{n}篇 遵义合作", f"<p>遵义第{n}篇。</p>")))
    add(host, "/a/4.html", (200, HTML, huge))
    source = Source.model_validate({
        "id": "page-timeout", "name": "测试站", "kind": "government", "region": "遵义",
        "start_urls": [f"http://{host}/list/"], "article_patterns": [r"/a/\d+\.html$"],
        "max_depth": 1, "download_delay": 0})
    data_dir = tmp_path / "data"
    summary = crawl([source], data_dir=data_dir, engine="sqlite",
                    host_map=site_server.host_map([host]),
                    settings_overrides={**FAST, "DOWNLOAD_TIMEOUT": 20,
                                        "DOWNLOAD_MAXSIZE": 32 * 1024 * 1024,
                                        "CYZ_WORKERS": 2, "CYZ_PAGE_TIMEOUT": 1.5})
    assert summary.failed == {"extraction_timeout": 1}, summary.as_dict()
    assert summary.sources["page-timeout"]["failed"] == {"extraction_timeout": 1}
    assert summary.new == 3 and summary.status == "ok"
    assert last_run(data_dir, "crawl")["sources"]["page-timeout"]["failed"] == {
        "extraction_timeout": 1}
