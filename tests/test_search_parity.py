"""One answer on every engine: the same queries over the same corpus (the demo sites,
crawled once) on the embedded SQLite index and on the real OpenSearch node give the
same articles, and the same order under `--sort date`. Then the ranking of `best`,
and an index of the older mapping brought up to date by `cyz index migrate`.
"""

from __future__ import annotations

import json
import logging
import urllib.request
from datetime import date

import pytest
from test_cli import cyz  # tests/ is on sys.path
from test_engines import drop_prefix, opensearch_engine, record

from cyz.index.base import Filters, SearchRequest
from cyz.index.mapping import ANALYZER, article_template
from cyz.index.query import parse
from cyz.index.sqlite import SqliteEngine

# (query, filters, sort). {cluster} is a reprint cluster of the corpus with several copies.
CASES = [
    ("遵义", {}, "best"),
    ("合作 签约", {}, "best"),
    ("遵義", {}, "best"),
    ("渝", {}, "best"),
    ("黔", {}, "best"),
    ("川", {}, "best"),
    ("蓉", {}, "best"),
    ("渝 合作", {}, "best"),
    ('"成渝地区双城经济圈"', {}, "best"),
    ('"签署合作协议"', {}, "best"),
    ("赤水 OR 仁怀", {}, "best"),
    ("赤水 or 仁怀", {}, "best"),
    ("遵义 签约 OR 协议", {}, "best"),
    ("遵义 -重庆", {}, "best"),
    ("遵义 NOT 重庆", {}, "best"),
    ("遵义 not 渝", {}, "best"),
    ('合作 -"成渝地区"', {}, "best"),
    ("-重庆", {}, "best"),
    ("NOT 遵义", {}, "best"),
    ('-"双城经济圈" -川', {}, "date"),
    ("", {"regions": ["重庆", "遵义"]}, "best"),
    ("", {"regions": ["重庆", "遵义"], "regions_all": True}, "best"),
    ("合作", {"regions": ["成都", "遵義"], "regions_all": True}, "relevance"),
    ("", {"regions": ["永川区", "渝北区", "桐梓县"], "regions_all": False}, "date"),
    ("", {"topics": ["agreement"]}, "best"),
    ("遵义", {"topics": ["transport", "delegation"]}, "relevance"),
    ("", {"cluster_ids": ["{cluster}"]}, "date"),
    ("", {"since": date(2024, 12, 1), "until": date(2024, 12, 10)}, "date"),
    ("重庆", {"since": date(2024, 11, 20)}, "best"),
    ("", {}, "date"),
    ("", {}, "relevance"),
    ("遵义", {}, "date"),
    ("合作", {}, "relevance"),
    ("-遵义", {}, "date"),
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> list[dict]:
    """The demo sites as `cyz demo` stores them."""
    data_dir = tmp_path_factory.mktemp("parity-demo")
    cyz("demo", data_dir=data_dir)
    engine = SqliteEngine(data_dir / "index.sqlite3")
    records = list(engine.iter_records())
    engine.close()
    assert len(records) > 20
    return records


@pytest.fixture(scope="module")
def engines(corpus, opensearch_url, tmp_path_factory):
    """The same records in a fresh SQLite index and in the OpenSearch node."""
    here = tmp_path_factory.mktemp("parity")
    sqlite = SqliteEngine(here / "index.sqlite3")
    node, prefix = opensearch_engine(opensearch_url, here)
    for engine in (sqlite, node):
        engine.write(corpus)
        engine.refresh()
    yield {"sqlite": sqlite, "opensearch": node}
    sqlite.close()
    node.close()
    drop_prefix(opensearch_url, prefix)


def shared_cluster(corpus: list[dict]) -> str:
    clusters = [r["cluster_id"] for r in corpus if r.get("cluster_id")]
    return max(set(clusters), key=clusters.count)


def run(engine, text: str, filters: dict, sort: str):
    return engine.search(SearchRequest(parse(text), Filters(**filters), limit=500, sort=sort))


@pytest.mark.parametrize(("text", "filters", "sort"), CASES,
                         ids=[f"{t or '∅'}|{','.join(f)}|{s}" for t, f, s in CASES])
def test_every_engine_finds_the_same_articles(engines, corpus, text, filters, sort):
    if filters.get("cluster_ids"):
        filters = {**filters, "cluster_ids": [shared_cluster(corpus)]}
    on_sqlite = run(engines["sqlite"], text, filters, sort)
    on_node = run(engines["opensearch"], text, filters, sort)
    found = [h.record["id"] for h in on_sqlite.hits]
    assert on_sqlite.total == len(found)
    assert on_node.total == on_sqlite.total
    assert {h.record["id"] for h in on_node.hits} == set(found)
    if sort == "date" or (sort == "best" and not parse(text).has_words):
        assert [h.record["id"] for h in on_node.hits] == found
    if sort == "relevance":
        for result in (on_sqlite, on_node):
            relevance = [h.record["relevance"] for h in result.hits]
            assert relevance == sorted(relevance, reverse=True)


def text_of(record: dict) -> str:
    return f"{record.get('title_zh')} {record.get('text_zh')}"


def test_the_suite_is_not_vacuous(engines, corpus):
    """The cases find something, and exclusions exclude what they name."""
    sqlite = engines["sqlite"]
    for word in ("渝", "黔", "川"):
        assert run(sqlite, word, {}, "best").total > 0, word
    everything = len(corpus)
    with_chongqing = run(sqlite, "重庆", {}, "best").total
    assert 0 < with_chongqing < everything
    assert run(sqlite, "-重庆", {}, "best").total == everything - with_chongqing
    for hit in run(sqlite, "遵义 -重庆", {}, "best").hits:
        assert "重庆" not in text_of(hit.record) and "遵义" in text_of(hit.record)
    any_of = run(sqlite, "", {"regions": ["重庆", "成都"]}, "best").total
    all_of = run(sqlite, "", {"regions": ["重庆", "成都"], "regions_all": True}, "best").total
    assert 0 < all_of < any_of


def test_exclusions_are_never_marked_in_snippets(engines):
    for engine in engines.values():
        for hit in run(engine, "遵义 -重庆", {}, "best").hits:
            assert "【" in hit.snippet
        for hit in run(engine, "-重庆", {}, "best").hits:
            assert "【" not in hit.snippet


# --- ranking --------------------------------------------------------------------------

RANKED = [
    # common words in the title and few in the body: the old text score's favourites
    record("marathon", "遵义马拉松开跑", "遵义马拉松鸣枪开跑，遵义市民踊跃参加。",
           published="2024-12-20T08:00:00+08:00"),
    record("cold", "遵义寒潮预警", "遵义市气象台发布寒潮预警，请遵义市民注意防寒。",
           published="2024-12-19T08:00:00+08:00"),
    record("agreement", "两地签署合作协议", "遵义市与重庆市江北区签署合作协议，共建产业园区。",
           published="2024-11-02T08:00:00+08:00"),
    record("visit", "考察团来访", "成都市代表团到遵义考察交通互联项目并签约。",
           published="2024-10-15T08:00:00+08:00"),
]
RELEVANCE = {"marathon": 0.0, "cold": 0.0, "agreement": 0.9, "visit": 0.8}


@pytest.fixture
def ranked(engine):
    engine.write([{**r, "relevance": RELEVANCE[r["id"]]} for r in RANKED])
    engine.refresh()
    return engine


def order(engine, text: str, sort: str) -> list[str]:
    return [h.record["id"] for h in run(engine, text, {}, sort).hits]


def test_best_puts_signed_agreements_above_a_marathon_and_a_cold_wave(ranked):
    best = order(ranked, "遵义", "best")
    assert set(best[:2]) == {"agreement", "visit"} and set(best[2:]) == {"marathon", "cold"}
    by_relevance = order(ranked, "遵义", "relevance")
    assert by_relevance[:2] == ["agreement", "visit"]  # the rest tie: text score decides
    assert set(by_relevance[2:]) == {"marathon", "cold"}
    assert order(ranked, "遵义", "date") == ["marathon", "cold", "agreement", "visit"]
    assert order(ranked, "", "best") == order(ranked, "", "date")  # browsing: newest first


# --- an index of the older mapping ----------------------------------------------------


def _v1_text(spec: dict) -> dict:
    """A text field as mapping v1 had it: one analyser, pairs only."""
    if spec.get("type") == "text":
        spec = {**spec, "analyzer": ANALYZER}
        spec.pop("search_analyzer", None)
    if "properties" in spec:
        spec = {**spec, "properties": {k: _v1_text(v) for k, v in spec["properties"].items()}}
    return spec


def test_an_older_mapping_keeps_serving_until_migrate_finds_one_character_words(
        opensearch_url, tmp_path, caplog):
    engine, prefix = opensearch_engine(opensearch_url, tmp_path)
    template = article_template(f"{prefix}-articles")["template"]
    mappings = _v1_text(template["mappings"])
    mappings.pop("_meta")  # versions carry theirs in `_meta` from mapping v3 on
    old = {"aliases": {f"{prefix}-articles": {}}, "settings": template["settings"],
           "mappings": mappings}
    request = urllib.request.Request(f"{opensearch_url}/{prefix}-articles-v1",
                                     data=json.dumps(old).encode(), method="PUT",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=30).read()
    try:
        with caplog.at_level(logging.WARNING):
            engine.write(RANKED)
        engine.refresh()
        assert "cyz index migrate" in caplog.text
        assert run(engine, "遵义", {}, "best").total == 4  # words of two and more: as before
        assert run(engine, "遵", {}, "best").total == 0  # no single characters indexed
        engine.migrate(drop_old=True)
        assert run(engine, "遵", {}, "best").total == 4
        assert run(engine, '"签署合作协议"', {}, "best").total == 1  # phrases stay exact
        assert run(engine, '"签署协议"', {}, "best").total == 0
    finally:
        engine.close()
        drop_prefix(opensearch_url, prefix)
