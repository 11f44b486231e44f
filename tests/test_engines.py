"""One behaviour, every engine: the embedded SQLite index and a real OpenSearch node run
the same tests; OpenSearch-only tests cover versions, aliases and the spool."""

from __future__ import annotations

import json
import secrets
import urllib.request
from datetime import date
from pathlib import Path

import pytest

from cyz.index.base import Filters, SearchRequest
from cyz.index.mapping import MAPPING_VERSION, article_template
from cyz.index.opensearch import OpenSearchClient
from cyz.index.query import QueryError, parse
from cyz.index.search_engine import SearchEngine
from cyz.record import Article


def record(rid: str, title: str, text: str, *, source: str = "src-a", published: str | None = None,
           regions: tuple[str, ...] = ()) -> dict:
    from cyz.pipelines.script import to_simplified

    return Article(id=rid, url=f"https://example.gov.cn/{rid}.html", source_id=source,
                   title=title, text=text, title_zh=to_simplified(title), text_zh=to_simplified(text),
                   published_at=published,
                   regions=[{"name": r, "count": 1} for r in regions]).model_dump()


CORPUS = [
    record("a1", "遵义与重庆签署合作协议", "遵义市与重庆市江北区签署全面深化合作协议，共建产业园区。",
           published="2024-12-05T10:00:00+08:00", regions=("遵义", "重庆")),
    record("a2", "成渝中線高鐵建設提速", "業內人士表示，遵義等周邊城市前往成都、重慶的時間也將縮短。",
           source="src-b", published="2024-12-10T09:00:00+08:00", regions=("遵义", "成都", "重庆")),
    record("a3", "湄潭茶叶进入重庆市场", "湄潭县茶叶企业与重庆采购商对接，遵义茶叶搭上物流快车。",
           published="2024-11-27T00:30:00+08:00", regions=("遵义", "重庆")),
    record("a4", "全市气温回升", "气象部门提醒市民注意早晚温差。", source="src-b",
           published="2024-10-01T08:00:00+08:00"),
    record("a5", "协议", "成渝地区双城经济圈建设持续推进，遵义积极对接。",
           published="2024-12-01T12:00:00+08:00", regions=("遵义", "成都", "重庆")),
]


def _http(method: str, url: str) -> None:
    request = urllib.request.Request(url, method=method)
    try:
        urllib.request.urlopen(request, timeout=30).read()
    except OSError:
        pass


def opensearch_engine(url: str, data_dir: Path) -> tuple[SearchEngine, str]:
    prefix = f"cyzt{secrets.token_hex(4)}"
    return SearchEngine(OpenSearchClient.from_env({"CYZ_OPENSEARCH_URL": url}), data_dir, prefix), prefix


def drop_prefix(url: str, prefix: str) -> None:
    _http("DELETE", f"{url}/{prefix}-*")
    for name in (f"{prefix}-articles", f"{prefix}-events"):
        _http("DELETE", f"{url}/_index_template/{name}")


@pytest.fixture
def loaded(engine):
    assert engine.write(CORPUS) == len(CORPUS)
    engine.refresh()
    return engine


def ids(result) -> list[str]:
    return [h.record["id"] for h in result.hits]


def find(engine, query: str, **filters):
    return engine.search(SearchRequest(parse(query), Filters(**filters), limit=50))


def test_write_get_count_and_update_in_place(loaded):
    assert loaded.count() == 5
    assert loaded.get("a1")["title"] == "遵义与重庆签署合作协议"
    assert loaded.get("nope") is None
    changed = {**CORPUS[0], "title": "遵义与重庆签署全面合作协议"}
    loaded.write([changed])
    loaded.refresh()
    assert loaded.count() == 5
    assert loaded.get("a1")["title"] == "遵义与重庆签署全面合作协议"


def test_simplified_and_traditional_find_each_other(loaded):
    simplified, traditional = find(loaded, "遵义"), find(loaded, "遵義")
    assert set(ids(simplified)) == set(ids(traditional)) == {"a1", "a2", "a3", "a5"}
    assert simplified.total == traditional.total == 4
    assert set(ids(find(loaded, "重慶"))) == set(ids(find(loaded, "重庆")))


def test_words_are_anded_phrases_are_contiguous_or_alternates(loaded):
    assert set(ids(find(loaded, "遵义 茶叶"))) == {"a3"}
    assert ids(find(loaded, '"遵义合作"')) == []
    assert set(ids(find(loaded, '"成渝地区双城经济圈"'))) == {"a5"}
    assert set(ids(find(loaded, "温差 OR 茶叶"))) == {"a3", "a4"}


def test_title_match_ranks_above_body_match(loaded):
    result = find(loaded, "协议")
    assert ids(result)[0] == "a5"  # the word is the whole title there
    assert set(ids(result)) == {"a1", "a5"}


def test_filters(loaded):
    assert set(ids(find(loaded, "", regions=["成都"]))) == {"a2", "a5"}
    assert set(ids(find(loaded, "", sources=["src-b"]))) == {"a2", "a4"}
    assert set(ids(find(loaded, "", source_prefix="src-"))) == {"a1", "a2", "a3", "a4", "a5"}
    assert set(ids(find(loaded, "", since=date(2024, 11, 27), until=date(2024, 12, 5)))) == {"a1", "a3", "a5"}
    assert loaded.count(Filters(sources=["src-a"])) == 3


def test_empty_query_lists_newest_first(loaded):
    assert ids(find(loaded, "")) == ["a2", "a1", "a5", "a3", "a4"]


def test_snippets_are_in_the_page_script_with_marks(loaded):
    hit = {h.record["id"]: h for h in find(loaded, "遵义").hits}["a2"]
    assert "【遵義】" in hit.snippet


def test_hostile_queries_raise_only_query_errors(loaded):
    for query in ['"', "*", "AND", "NEAR(", "-", ":", "title:遵义", "a OR", "OR", "\\"]:
        try:
            parse(query)
        except QueryError:  # a query that can mean nothing: the user is told so
            continue
        find(loaded, query)


def test_delete_and_iterate(loaded):
    assert sorted(r["id"] for r in loaded.iter_records(Filters(sources=["src-a"]))) == ["a1", "a3", "a5"]
    assert loaded.delete(["a1", "a4"]) == 2
    loaded.refresh()
    assert loaded.count() == 3 and loaded.get("a1") is None


def test_iteration_pages_through_many_records(engine):
    many = [record(f"m{i:04d}", f"第{i}条", "遵义合作" * 5, published="2024-12-01T00:00:00+08:00")
            for i in range(1203)]
    engine.write(many)
    engine.refresh()
    seen = [r["id"] for r in engine.iter_records()]
    assert len(seen) == len(set(seen)) == 1203


# --- OpenSearch only: versions, aliases, spool -----------------------------------


@pytest.fixture
def node(opensearch_url, tmp_path):
    eng, prefix = opensearch_engine(opensearch_url, tmp_path)
    yield eng, prefix, opensearch_url
    eng.close()
    drop_prefix(opensearch_url, prefix)


def test_migrate_reindexes_swaps_alias_and_loses_nothing(node):
    eng, prefix, url = node
    # a fresh index is named after the mapping version; a migration takes the next number
    first, second, third = (f"{prefix}-articles-v{MAPPING_VERSION + n}" for n in range(3))
    eng.write(CORPUS)
    eng.refresh()
    moved = eng.migrate()
    assert moved[f"{prefix}-articles"] == {"from": first, "to": second,
                                           "dropped_old": False, "documents": 5}
    status = eng.status()
    assert status[f"{prefix}-articles"]["current"] == [second]
    assert status[f"{prefix}-articles"]["versions"] == {first: 5, second: 5}
    assert set(ids(find(eng, "遵義"))) == {"a1", "a2", "a3", "a5"}  # analyser carried over
    eng.write([record("a6", "新文章", "遵义新动态。")])  # writes now land in the new index
    eng.refresh()
    assert eng.count() == 6
    moved = eng.migrate(drop_old=True)
    assert moved[f"{prefix}-articles"]["from"] == second
    assert moved[f"{prefix}-articles"]["dropped_old"] and eng.count() == 6
    assert list(eng.status()[f"{prefix}-articles"]["versions"]) == [first, third]


def test_engine_down_at_start_spools_then_replays_exactly_once(opensearch_url, tmp_path):
    prefix = f"cyzt{secrets.token_hex(4)}"
    # a port nothing listens on: the engine is "down"
    down = SearchEngine(OpenSearchClient.from_env({"CYZ_OPENSEARCH_URL": "http://127.0.0.1:9"}),
                        tmp_path, prefix)
    assert down.write(CORPUS[:3]) == 3 and down.write(CORPUS[2:]) == 3
    assert not down.online and len(down.spool) == 6
    down.close()
    up = SearchEngine(OpenSearchClient.from_env({"CYZ_OPENSEARCH_URL": opensearch_url}), tmp_path, prefix)
    try:
        up.init()  # replays the spool
        up.refresh()
        assert len(up.spool) == 0
        assert up.count() == 5  # a3 was spooled twice and is indexed once
        assert up.status()["spooled"] == 0 and up.status()["last_flush"]
    finally:
        up.close()
        drop_prefix(opensearch_url, prefix)


def test_rejected_documents_are_parked_then_set_aside(node):
    eng, prefix, _ = node
    bad = {**CORPUS[0], "id": "bad", "published_at": "not a date"}
    eng.write([CORPUS[1], bad])
    eng.refresh()
    assert eng.count() == 1 and len(eng.spool) == 1
    parked = json.loads(eng.spool.path.read_text(encoding="utf-8"))
    assert parked["record"]["id"] == "bad" and "400" in parked["reason"]
    for _ in range(5):  # every later run tries again; after five it is set aside
        eng._initialised = False
        eng.init()
    assert len(eng.spool) == 0 and eng.spool.rejected_count() == 1


def test_node_stopped_mid_run_and_restarted(tmp_path):
    """A dedicated node: half the writes land, the node stops, the rest are spooled,
    the node comes back with its data, and the next run's replay makes counts exact."""
    from opensearch_node import LIB_DIR, load_node_module

    start_node = load_node_module().start_node
    if not any(LIB_DIR.glob("*.jar")):
        pytest.skip("OpenSearch jars not fetched (tools/opensearch/fetch.sh)")
    base = tmp_path / "node"
    cluster = f"cyz-restart-{secrets.token_hex(3)}"
    node = start_node(base, LIB_DIR, cluster)
    prefix = "cyzrestart"
    try:
        first = SearchEngine(OpenSearchClient.from_env({"CYZ_OPENSEARCH_URL": node.url}), tmp_path, prefix)
        first.write(CORPUS[:2])
        node.stop()
        first.write(CORPUS[2:])  # the node is gone: spooled
        first.refresh()
        assert len(first.spool) == 3 and not first.online
        first.close()
        node = start_node(base, LIB_DIR, cluster)  # same data directory
        second = SearchEngine(OpenSearchClient.from_env({"CYZ_OPENSEARCH_URL": node.url}), tmp_path, prefix)
        second.init()
        second.refresh()
        assert second.count() == 5 and len(second.spool) == 0
        second.write(CORPUS)  # a re-run never duplicates
        second.refresh()
        assert second.count() == 5
        second.close()
    finally:
        node.stop()


def test_fields_added_since_the_index_was_created_join_its_mapping(opensearch_url, tmp_path):
    # An index made by an older cyz: its mapping lacks `version` and `updated_at`.
    eng, prefix = opensearch_engine(opensearch_url, tmp_path)
    template = article_template(f"{prefix}-articles")["template"]
    properties = {k: v for k, v in template["mappings"]["properties"].items()
                  if k not in ("version", "updated_at", "text_truncated")}
    old = json.dumps({"aliases": {f"{prefix}-articles": {}}, "settings": template["settings"],
                      "mappings": {"dynamic": "false", "properties": properties}})
    request = urllib.request.Request(f"{opensearch_url}/{prefix}-articles-v1", data=old.encode(),
                                     method="PUT", headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=30).read()
    try:
        eng.init()
        with urllib.request.urlopen(f"{opensearch_url}/{prefix}-articles/_mapping", timeout=30) as r:
            fields = json.load(r)[f"{prefix}-articles-v1"]["mappings"]["properties"]
        assert {"version", "updated_at", "text_truncated"} <= set(fields)
        eng.write([{**record("n1", "新文章", "遵义新动态。"), "version": 3}])
        eng.refresh()
        body = json.dumps({"query": {"term": {"version": 3}}}).encode()
        request = urllib.request.Request(f"{opensearch_url}/{prefix}-articles/_count", data=body,
                                         method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as r:
            assert json.load(r)["count"] == 1
    finally:
        eng.close()
        drop_prefix(opensearch_url, prefix)
