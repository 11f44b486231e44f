"""What an extraction worker holds: every core runs one, so what each imports counts once
per core. The MinHash signature (datasketch, which brings scipy: about 50 MB) is made in
the crawl process, once, not in each worker."""

from __future__ import annotations

import asyncio
import sys

from cyz.crawler.workers import ExtractionPool, process_page

PAGE = ("<html><head><meta charset='utf-8'><title>遵义与重庆签署合作协议</title></head><body>"
        "<h1>遵义与重庆签署合作协议</h1><div class='TRS_Editor'><p>"
        + "遵义市与重庆市签署交通合作协议，推动成渝地区双城经济圈建设。" * 20
        + "</p></div></body></html>").encode()

HEAVY = ("scipy", "datasketch")


def page_and_modules(body: bytes, url: str, **kwargs):
    """`process_page` in a worker, and which of HEAVY the worker has imported by then."""
    record, work = process_page(body, url, **kwargs)
    return record, work, sorted(m for m in HEAVY if m in sys.modules)


def test_a_warm_worker_never_imports_scipy_or_datasketch():
    pool = ExtractionPool(workers=2, fn=page_and_modules)
    try:
        record, work, heavy = asyncio.run(pool.process_page(PAGE, "http://a.cn/t20240101_1.html"))
    finally:
        pool.close()
    assert record["title"] == "遵义与重庆签署合作协议"
    assert record["events"]  # the event extractor (jieba, the gazetteer) ran
    assert len(work.body_hash) == 40 and work.compressed
    assert heavy == []
