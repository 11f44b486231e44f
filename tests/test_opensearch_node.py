"""The OpenSearch node the engine tests rely on: up, and with the analysis parts and
the percolator our mappings use. Plain HTTP, so these tests don't depend on the client."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest


def call(url: str, method: str, path: str, body: object | None = None) -> dict:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        url + path, data=data, method=method, headers={"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)
    except urllib.error.HTTPError as error:
        raise AssertionError(f"{method} {path}: {error.code} {error.read().decode()}") from None


def tokens(result: dict) -> list[str]:
    return [token["token"] for token in result["tokens"]]


@pytest.fixture
def index_name(opensearch_url: str) -> Iterator[str]:
    name = f"test-node-{uuid.uuid4().hex[:12]}"
    yield name
    try:
        call(opensearch_url, "DELETE", f"/{name}")
    except AssertionError:
        pass  # the test never created it


def test_node_is_up_and_is_2_19(opensearch_url: str) -> None:
    assert opensearch_url.startswith("http://127.0.0.1:")
    health = call(opensearch_url, "GET", "/_cluster/health")
    assert health["status"] in ("green", "yellow")
    info = call(opensearch_url, "GET", "/")
    assert info["version"]["distribution"] == "opensearch"
    assert info["version"]["number"].startswith("2.19.")


def test_cjk_bigram_chain(opensearch_url: str) -> None:
    result = call(opensearch_url, "POST", "/_analyze", {
        "tokenizer": "standard",
        "filter": ["cjk_width", "lowercase", "cjk_bigram"],
        "text": "成渝地区 ＡＢＣ",
    })
    # Overlapping bigrams for Han text; full-width Latin folded and lowercased.
    assert tokens(result) == ["成渝", "渝地", "地区", "abc"]


def test_mapping_char_filter_folds_traditional(opensearch_url: str, index_name: str) -> None:
    call(opensearch_url, "PUT", f"/{index_name}", {
        "settings": {
            "number_of_shards": 1,
            "number_of_replicas": 0,
            "analysis": {
                "char_filter": {
                    "t2s": {"type": "mapping", "mappings": ["遵義 => 遵义", "會 => 会", "議 => 议"]}
                },
                "analyzer": {
                    "zh": {
                        "type": "custom",
                        "char_filter": ["t2s"],
                        "tokenizer": "standard",
                        "filter": ["cjk_width", "lowercase", "cjk_bigram"],
                    }
                },
            },
        },
        "mappings": {"properties": {"body": {"type": "text", "analyzer": "zh"}}},
    })
    analyzed = call(opensearch_url, "POST", f"/{index_name}/_analyze",
                    {"analyzer": "zh", "text": "遵義會議"})
    assert tokens(analyzed) == ["遵义", "义会", "会议"]

    call(opensearch_url, "PUT", f"/{index_name}/_doc/trad", {"body": "遵義會議召開"})
    call(opensearch_url, "PUT", f"/{index_name}/_doc/simp?refresh=true", {"body": "遵义会议召开"})
    for query in ("遵义", "遵義"):
        hits = call(opensearch_url, "POST", f"/{index_name}/_search",
                    {"query": {"match_phrase": {"body": query}}})["hits"]["hits"]
        assert sorted(hit["_id"] for hit in hits) == ["simp", "trad"], query


def test_percolator(opensearch_url: str, index_name: str) -> None:
    call(opensearch_url, "PUT", f"/{index_name}", {
        "settings": {"number_of_shards": 1, "number_of_replicas": 0},
        "mappings": {"properties": {
            "query": {"type": "percolator"},
            "body": {"type": "text"},
        }},
    })
    mapping = call(opensearch_url, "GET", f"/{index_name}/_mapping")
    assert mapping[index_name]["mappings"]["properties"]["query"]["type"] == "percolator"

    call(opensearch_url, "PUT", f"/{index_name}/_doc/watch?refresh=true",
         {"query": {"match": {"body": "chongqing"}}})
    matched = call(opensearch_url, "POST", f"/{index_name}/_search", {"query": {"percolate": {
        "field": "query", "document": {"body": "Chengdu and Chongqing sign a pact"},
    }}})["hits"]["hits"]
    assert [hit["_id"] for hit in matched] == ["watch"]
    missed = call(opensearch_url, "POST", f"/{index_name}/_search", {"query": {"percolate": {
        "field": "query", "document": {"body": "Zunyi only"},
    }}})["hits"]["hits"]
    assert missed == []
