"""Kibana saved objects, their import client, and the production compose file.

The saved objects are checked against the index mapping twice: statically against
`cyz.index.mapping`, and against the mapping a real OpenSearch node builds from the
same templates (when the `opensearch_url` fixture is available). Their queries, and the
examples of the dashboard's "how to search" panel, are translated the way Kibana's KQL
translates them and run on the real node.
"""

from __future__ import annotations

import base64
import copy
import email.parser
import email.policy
import json
import re
import secrets
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml

from cyz.index import mapping
from cyz.kibana import (
    UI_SETTINGS,
    KibanaError,
    default_files,
    env_settings,
    import_saved_objects,
    import_url,
    settings_url,
)
from cyz.text import CJK_CHARS

REPO = Path(__file__).resolve().parents[1]
KIBANA_DIR = REPO / "config" / "kibana"
INDEX_REF = "kibanaSavedObjectMeta.searchSourceJSON.index"


def load_objects() -> list[dict]:
    objects = []
    for path in sorted(KIBANA_DIR.glob("*.ndjson")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert line.strip(), f"{path.name}:{number} is blank"
            try:
                objects.append(json.loads(line))
            except ValueError as error:
                pytest.fail(f"{path.name}:{number} is not JSON: {error}")
    return objects


OBJECTS = load_objects()
BY_ID = {(o["type"], o["id"]): o for o in OBJECTS}


def is_markdown(obj: dict) -> bool:
    """A text panel: a visualization without a data view."""
    return obj["type"] == "visualization" and json.loads(obj["attributes"]["visState"])["type"] == "markdown"


def embedded(obj: dict, key: str):
    """Parse one JSON-in-a-string attribute (visState, panelsJSON, ...)."""
    attrs = obj["attributes"]
    if key == "searchSourceJSON":
        return json.loads(attrs["kibanaSavedObjectMeta"]["searchSourceJSON"])
    return json.loads(attrs[key])


# --- the files themselves --------------------------------------------------------


def test_files_ship_as_package_data():
    assert [p.name for p in default_files()] == sorted(p.name for p in KIBANA_DIR.glob("*.ndjson"))
    assert default_files(), "no saved-object files found"


def test_every_object_is_well_formed_and_ids_unique():
    ids = [(o["type"], o["id"]) for o in OBJECTS]
    assert len(ids) == len(set(ids))
    # Stable, readable ids: re-importing with overwrite replaces rather than duplicates.
    assert all(o["id"].startswith("cyz-") for o in OBJECTS)
    types = {o["type"] for o in OBJECTS}
    assert types == {"index-pattern", "search", "visualization", "dashboard"}
    for obj in OBJECTS:
        attrs = obj["attributes"]
        assert attrs.get("title"), obj["id"]
        for key in ("visState", "panelsJSON", "optionsJSON", "uiStateJSON", "fieldAttrs",
                    "fieldFormatMap", "runtimeFieldMap", "sourceFilters", "fields"):
            if key in attrs:
                embedded(obj, key)  # raises if the string is not JSON
        if "kibanaSavedObjectMeta" in attrs:
            embedded(obj, "searchSourceJSON")


def test_references_resolve_and_are_used():
    for obj in OBJECTS:
        names = [r["name"] for r in obj["references"]]
        assert len(names) == len(set(names)), obj["id"]
        for ref in obj["references"]:
            assert (ref["type"], ref["id"]) in BY_ID, f"{obj['id']} → missing {ref}"
        if is_markdown(obj):
            assert obj["references"] == [] and "indexRefName" not in embedded(obj, "searchSourceJSON")
        elif obj["type"] in {"search", "visualization"}:
            source = embedded(obj, "searchSourceJSON")
            assert source["indexRefName"] == INDEX_REF
            assert [r["type"] for r in obj["references"] if r["name"] == INDEX_REF] == ["index-pattern"]
        if obj["type"] == "dashboard":
            panels = embedded(obj, "panelsJSON")
            wanted = {f"{p['panelIndex']}:{p['panelRefName']}" for p in panels}
            assert wanted == set(names)
            for panel in panels:
                ref = next(r for r in obj["references"]
                           if r["name"] == f"{panel['panelIndex']}:{panel['panelRefName']}")
                assert ref["type"] == panel["type"]


def test_dashboard_has_the_help_text_and_four_panels():
    dashboard = BY_ID[("dashboard", "cyz-dashboard")]
    targets = {(r["type"], r["id"]) for r in dashboard["references"]}
    assert targets == {
        ("visualization", "cyz-vis-search-help"),
        ("visualization", "cyz-vis-articles-by-region"),
        ("visualization", "cyz-vis-top-sources"),
        ("visualization", "cyz-vis-events-by-type"),
        ("search", "cyz-search-latest-events"),
    }
    # Event charts must read cyz-events: Kibana cannot aggregate nested article events.
    for vis_id in ("cyz-vis-events-by-type",):
        assert view_of(BY_ID[("visualization", vis_id)])["attributes"]["title"] == mapping.EVENTS
    latest = BY_ID[("search", "cyz-search-latest-events")]["attributes"]
    # One row per happening: what, when, who, the evidence and who reported it.
    assert latest["columns"] == ["date", "type", "parties", "sentence", "outlets", "report_count"]
    assert latest["sort"] == [["date_from", "desc"]]  # a day, also for month/year precision


def test_data_views_have_chinese_labels():
    articles = BY_ID[("index-pattern", "cyz-articles-view")]
    labels = {f: a["customLabel"] for f, a in embedded(articles, "fieldAttrs").items()}
    assert labels["title"] == "标题" and labels["regions.name"] == "地区"
    assert labels["source_name"] == "来源网站" and labels["relevance"] == "相关度"
    assert articles["attributes"]["title"] == mapping.ARTICLES
    events = BY_ID[("index-pattern", "cyz-events-view")]
    assert events["attributes"]["title"] == mapping.EVENTS
    assert embedded(events, "fieldAttrs")["type"]["customLabel"] == "事件类型"


# --- queries staff can trust: phrases, not bare Chinese ---------------------------
#
# KQL sends a bare Chinese string to the bigram analyzer as an OR of its character pairs
# (遵义合作协议 matches an article with only 遵义); a quoted phrase is exact. Every saved
# query quotes its Chinese, and the dashboard's help panel tells staff to do the same.

_CJK = re.compile(f"[{CJK_CHARS}]")


def bare_cjk(query: str) -> list[str]:
    """CJK characters of a KQL query outside double quotes."""
    return _CJK.findall(_QUOTED.sub('""', query))


def saved_queries() -> dict[str, str]:
    """{object id: KQL query} of every saved search and chart."""
    queries = {}
    for obj in OBJECTS:
        if obj["type"] in {"search", "visualization"}:
            query = embedded(obj, "searchSourceJSON")["query"]
            assert query["language"] == "kuery", obj["id"]
            queries[obj["id"]] = query["query"]
    return queries


def help_markdown() -> str:
    return json.loads(BY_ID[("visualization", "cyz-vis-search-help")]["attributes"]["visState"])["params"]["markdown"]


def help_examples() -> list[str]:
    """The queries the help panel shows (its `code` spans)."""
    return re.findall(r"`([^`]+)`", help_markdown())


def test_bare_cjk_finder():
    assert bare_cjk("遵义合作协议") and bare_cjk('"遵义" and 合作')
    assert not bare_cjk('"遵义" and regions.name: ("成都" or "重庆") and not "马拉松"')
    assert not bare_cjk('title: "a \\"遵义\\" b"')


def test_saved_queries_quote_their_chinese():
    queries = saved_queries()
    assert "cyz-search-zunyi-agreement-text" in queries  # the full-text example
    for object_id, query in queries.items():
        assert not bare_cjk(query), f"{object_id}: quote the Chinese words of {query!r}"
        for field in kql_fields(query):
            assert field.isascii(), f"{object_id}: field {field!r}"


def test_help_panel_tells_staff_how_to_search():
    help_vis = BY_ID[("visualization", "cyz-vis-search-help")]
    assert is_markdown(help_vis) and help_vis["attributes"]["title"] == "怎样搜索"
    text = help_markdown()
    examples = help_examples()
    for wanted in ('"遵义" and "合作"', '"遵义" and not "马拉松"', 'regions.name : "遵义"'):
        assert wanted in examples
    assert "双引号" in text and "时间选择器" in text and "北京时间" in text
    # Exactly one example is the unquoted pitfall; every other one is safe to copy.
    assert [e for e in examples if bare_cjk(e)] == ["遵义合作协议"]
    # On top, across the dashboard: the first thing staff read.
    panels = embedded(BY_ID[("dashboard", "cyz-dashboard")], "panelsJSON")
    ref = next(r for r in BY_ID[("dashboard", "cyz-dashboard")]["references"] if r["id"] == help_vis["id"])
    panel = next(p for p in panels if f"{p['panelIndex']}:{p['panelRefName']}" == ref["name"])
    assert panel["gridData"]["y"] == 0 and panel["gridData"]["w"] == 48


def test_saved_searches_sort_newest_first():
    for obj in OBJECTS:
        if obj["type"] == "search":
            # published_at for articles, the event's day for events: the views' time fields.
            wanted = view_of(obj)["attributes"]["timeFieldName"]
            assert obj["attributes"]["sort"] == [[wanted, "desc"]], obj["id"]


# --- every field used exists in the mapping --------------------------------------

_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_FIELD = re.compile(r"([A-Za-z_][\w.]*)\s*(?::|>=|<=|>|<)")


def kql_fields(query: str) -> set[str]:
    """Field names in a KQL query (`field: value`, `field >= value`), quoted text removed."""
    return set(_FIELD.findall(_QUOTED.sub('""', query)))


def test_kql_field_parser():
    assert kql_fields('a.b: "x:y" and (c >= 0.5 or d: (e or f)) and not g<3') == {"a.b", "c", "d", "g"}


def view_of(obj: dict) -> dict:
    ref = next(r for r in obj["references"] if r["name"] == INDEX_REF)
    return BY_ID[("index-pattern", ref["id"])]


def used_fields() -> dict[str, dict[str, set[str]]]:
    """{index alias: {field: how it is used}} over every saved object."""
    used: dict[str, dict[str, set[str]]] = {}

    def add(alias: str, field: str, use: str) -> None:
        used.setdefault(alias, {}).setdefault(field, set()).add(use)

    for obj in OBJECTS:
        attrs = obj["attributes"]
        if obj["type"] == "index-pattern":
            alias = attrs["title"]
            add(alias, attrs["timeFieldName"], "time")
            for field in embedded(obj, "fieldAttrs"):
                add(alias, field, "label")
            continue
        if obj["type"] == "dashboard" or is_markdown(obj):
            query = embedded(obj, "searchSourceJSON")["query"]["query"]
            assert not query, "a dashboard-wide query would span two indices"
            continue
        alias = view_of(obj)["attributes"]["title"]
        source = embedded(obj, "searchSourceJSON")
        for field in kql_fields(source["query"]["query"]):
            add(alias, field, "query")
        for flt in source.get("filter", []):
            if "key" in flt.get("meta", {}):
                add(alias, flt["meta"]["key"], "query")
        if obj["type"] == "search":
            for field in attrs["columns"]:
                add(alias, field, "column")
            for field, _direction in attrs["sort"]:
                add(alias, field, "sort")
        if obj["type"] == "visualization":
            for agg in embedded(obj, "visState")["aggs"]:
                if "field" in agg["params"]:
                    add(alias, agg["params"]["field"], agg["type"])
    return used


def flatten(properties: dict, prefix: str = "") -> dict[str, str]:
    """{dotted field: type} including object sub-fields and multi-fields (title.raw)."""
    fields = {}
    for name, spec in properties.items():
        path = prefix + name
        if "properties" in spec:
            if spec.get("type") == "nested":
                fields[path] = "nested"
            fields.update(flatten(spec["properties"], path + "."))
            continue
        fields[path] = spec["type"]
        for sub, sub_spec in spec.get("fields", {}).items():
            fields[f"{path}.{sub}"] = sub_spec["type"]
    return fields


AGGREGATABLE = {"keyword", "boolean", "integer", "long", "float", "double", "date"}


def check_fields(alias: str, fields: dict[str, str]) -> list[str]:
    problems = []
    for field, uses in sorted(used_fields()[alias].items()):
        kind = fields.get(field)
        if kind is None:
            problems.append(f"{alias}: {field} ({', '.join(sorted(uses))}) is not in the mapping")
            continue
        parts = field.split(".")
        if any(fields.get(".".join(parts[:n])) == "nested" for n in range(1, len(parts) + 1)):
            problems.append(f"{alias}: {field} is nested; Kibana cannot chart it")
        if uses & {"terms", "sort"} and kind not in AGGREGATABLE:
            problems.append(f"{alias}: {field} is {kind}; cannot sort or aggregate on it")
        if uses & {"time", "date_histogram"} and kind != "date":
            problems.append(f"{alias}: {field} is {kind}, not a date")
    return problems


def test_every_used_field_exists_in_the_static_mapping():
    used = used_fields()
    assert set(used) == {mapping.ARTICLES, mapping.EVENTS}
    static = {
        mapping.ARTICLES: flatten(mapping.article_template()["template"]["mappings"]["properties"]),
        mapping.EVENTS: flatten(mapping.event_template()["template"]["mappings"]["properties"]),
    }
    problems = [p for alias, fields in static.items() for p in check_fields(alias, fields)]
    assert not problems, "\n".join(problems)


def test_field_check_catches_bad_fields():
    fields = flatten(mapping.ARTICLE_PROPERTIES)
    del fields["regions.name"]
    assert any("regions.name" in p for p in check_fields(mapping.ARTICLES, fields))
    fields = flatten(mapping.ARTICLE_PROPERTIES) | {"source_name": "text"}
    assert any("source_name is text" in p for p in check_fields(mapping.ARTICLES, fields))
    fields = flatten(mapping.ARTICLE_PROPERTIES) | {"regions": "nested"}
    assert any("regions.name is nested" in p for p in check_fields(mapping.ARTICLES, fields))


def _http(method: str, url: str, body: dict | None = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"{}")


@pytest.fixture(scope="module")
def node_url(request: pytest.FixtureRequest) -> str:
    try:
        return request.getfixturevalue("opensearch_url")
    except pytest.FixtureLookupError:
        pytest.skip("no opensearch_url fixture (tests/opensearch_node.py) in this checkout")


def test_every_used_field_exists_in_a_real_node_mapping(node_url: str):
    token = secrets.token_hex(4)
    problems = []
    templates = {mapping.ARTICLES: mapping.article_template, mapping.EVENTS: mapping.event_template}
    for alias, template_of in templates.items():
        # The real template under a private name and pattern, so a shared node is untouched.
        name = f"cyz-kibanatest-{token}-{alias.removeprefix('cyz-')}"
        template = copy.deepcopy(template_of())
        template["index_patterns"] = [f"{name}-v*"]
        template["priority"] = 200
        index = f"{name}-v{mapping.MAPPING_VERSION}"
        try:
            _http("PUT", f"{node_url}/_index_template/{name}", template)
            _http("PUT", f"{node_url}/{index}", {})
            got = _http("GET", f"{node_url}/{index}/_mapping")
        finally:
            for path in (index, f"_index_template/{name}"):
                try:
                    _http("DELETE", f"{node_url}/{path}")
                except OSError:
                    pass
        properties = got[index]["mappings"]["properties"]
        problems += check_fields(alias, flatten(properties))
    assert not problems, "\n".join(problems)


# --- the queries on a real node, translated as KQL translates them ----------------

_KQL_TOKEN = re.compile(r'\s*("(?:[^"\\]|\\.)*"|\(|\)|>=|<=|>|<|:|[^\s():<>"]+)')


def kql_to_dsl(query: str) -> dict:
    """Kibana's KQL → query DSL, for the subset cyz's objects and help text use.

    As Kibana's kuery functions do: `"phrase"` → multi_match type phrase (the index's
    default fields), a bare word → multi_match best_fields, `field: "v"` → match_phrase,
    `field: v` → match, `field >= v` → range; and → bool filter, or → bool should, not →
    bool must_not.
    """
    tokens = [t for t in _KQL_TOKEN.findall(query) if t]
    assert "".join(tokens) == re.sub(r"\s+", "", query), f"cannot tokenize {query!r}"
    pos = 0

    def peek(offset: int = 0) -> str | None:
        return tokens[pos + offset] if pos + offset < len(tokens) else None

    def take(expected: str | None = None) -> str:
        nonlocal pos
        token = tokens[pos]
        assert expected is None or token.lower() == expected, (query, token, expected)
        pos += 1
        return token

    def value(token: str) -> tuple[str, bool]:
        if token.startswith('"'):
            return re.sub(r"\\(.)", r"\1", token[1:-1]), True
        return token, False

    def combine(kind: str, parts: list[dict]) -> dict:
        if len(parts) == 1:
            return parts[0]
        if kind == "and":
            return {"bool": {"filter": parts}}
        return {"bool": {"should": parts, "minimum_should_match": 1}}

    def chain(operand, words=("or", "and")) -> dict:
        # or binds loosest, then and.
        def level(i: int) -> dict:
            if i == len(words):
                return operand()
            parts = [level(i + 1)]
            while (peek() or "").lower() == words[i]:
                take()
                parts.append(level(i + 1))
            return combine(words[i], parts)
        return level(0)

    def field_value(field: str) -> dict:
        if peek() == "(":
            take("(")
            result = chain(lambda: field_value(field))
            take(")")
            return result
        text, quoted = value(take())
        return {"match_phrase" if quoted else "match": {field: text}}

    def primary() -> dict:
        if (peek() or "").lower() == "not":
            take()
            return {"bool": {"must_not": [primary()]}}
        if peek() == "(":
            take("(")
            result = chain(primary)
            take(")")
            return result
        token = take()
        if peek() == ":":
            take(":")
            return field_value(token)
        if peek() in {">=", "<=", ">", "<"}:
            op = {">=": "gte", "<=": "lte", ">": "gt", "<": "lt"}[take()]
            return {"range": {token: {op: value(take())[0]}}}
        text, quoted = value(token)
        return {"multi_match": {"type": "phrase" if quoted else "best_fields", "query": text, "lenient": True}}

    result = chain(primary)
    assert pos == len(tokens), f"trailing tokens in {query!r}"
    return result


def test_kql_translation():
    assert kql_to_dsl('a: "x" and not (b >= 1 or c)') == {"bool": {"filter": [
        {"match_phrase": {"a": "x"}},
        {"bool": {"must_not": [{"bool": {"should": [
            {"range": {"b": {"gte": "1"}}},
            {"multi_match": {"type": "best_fields", "query": "c", "lenient": True}}],
            "minimum_should_match": 1}}]}}]}}
    assert kql_to_dsl('r: ("x" or "y")') == {"bool": {"should": [
        {"match_phrase": {"r": "x"}}, {"match_phrase": {"r": "y"}}], "minimum_should_match": 1}}


# Articles (a: the agreement, b: 遵义 without 合作, c: 合作 without 遵义, d: a traditional
# copy of another agreement, 20 days old) and what each query must find among them.
_NOW = "now"
ARTICLE_FIXTURES = {
    "a": {"title": "遵义与重庆签署合作协议", "text": "遵义市与重庆市签署战略合作协议。",
          "regions": [{"name": "遵义", "count": 2}, {"name": "重庆", "count": 1}],
          "topics": ["cooperation", "agreement"], "event_types": ["agreement"], "relevance": 0.9, "days": 1},
    "b": {"title": "遵义马拉松开跑", "text": "遵义马拉松今天开跑，两万人参赛。",
          "regions": [{"name": "遵义", "count": 2}], "topics": [], "event_types": [], "relevance": 0.1, "days": 2},
    "c": {"title": "成都两家企业加强合作", "text": "成都两家企业宣布加强合作。",
          "regions": [{"name": "成都", "count": 1}], "topics": ["cooperation"], "event_types": [],
          "relevance": 0.6, "days": 3},
    "d": {"title": "遵義與成都簽署合作協議", "text": "遵義市與成都市簽署合作協議。",
          "regions": [{"name": "遵义", "count": 1}, {"name": "成都", "count": 1}],
          "topics": ["cooperation", "agreement"], "event_types": ["agreement"], "relevance": 0.8, "days": 20},
}
EXPECTED = {
    # The pitfall the help panel names: unquoted, any character pair is enough.
    "遵义合作协议": {"a", "b", "c", "d"},
    # The help panel's and docs/production.md's examples.
    '"合作协议"': {"a", "d"},
    '"遵义" and "合作"': {"a", "d"},
    '"赤水" or "仁怀"': set(),
    '"遵义" and not "马拉松"': {"a", "d"},
    'regions.name : "遵义"': {"a", "b", "d"},
    'title : "合作协议"': {"a", "d"},
    'event_types : "agreement"': {"a", "d"},
    'topics : "cooperation"': {"a", "c", "d"},
    '"遵义" and ("成都" or "重庆")': {"a", "d"},
    '"遵義"': {"a", "b", "d"},
    '"遵义"': {"a", "b", "d"},
    # The saved searches.
    'published_at >= "now-7d" and (relevance >= 0.5 or topics: "cooperation")': {"a", "c"},
    'event_types: "agreement" or topics: "agreement"': {"a", "d"},
    'regions.name: "遵义" and regions.name: ("成都" or "重庆")': {"a", "d"},
    '"遵义" and "合作协议"': {"a", "d"},
}


def test_every_article_query_has_an_expected_answer():
    for object_id, query in saved_queries().items():
        if query and view_of(BY_ID[(OBJECTS_TYPE[object_id], object_id)])["attributes"]["title"] == mapping.ARTICLES:
            assert query in EXPECTED, object_id
    for example in help_examples():
        assert example in EXPECTED, example


OBJECTS_TYPE = {o["id"]: o["type"] for o in OBJECTS}


def test_saved_queries_and_help_examples_on_a_real_node(node_url: str):
    import datetime

    name = f"cyz-kibanatest-{secrets.token_hex(4)}-articles"
    template = copy.deepcopy(mapping.article_template())
    template["index_patterns"] = [f"{name}-v*"]
    template["priority"] = 200
    index = f"{name}-v{mapping.MAPPING_VERSION}"
    now = datetime.datetime.now(datetime.UTC)
    try:
        _http("PUT", f"{node_url}/_index_template/{name}", template)
        _http("PUT", f"{node_url}/{index}", {})
        for doc_id, fixture in ARTICLE_FIXTURES.items():
            doc = {k: v for k, v in fixture.items() if k != "days"}
            doc["published_at"] = (now - datetime.timedelta(days=fixture["days"])).isoformat()
            _http("PUT", f"{node_url}/{index}/_doc/{doc_id}?refresh=true", doc)
        got = {}
        for query in EXPECTED:
            body = {"query": kql_to_dsl(query), "size": 20, "_source": False}
            hits = _http("POST", f"{node_url}/{index}/_search", body)["hits"]["hits"]
            got[query] = {hit["_id"] for hit in hits}
    finally:
        for path in (index, f"_index_template/{name}"):
            try:
                _http("DELETE", f"{node_url}/{path}")
            except OSError:
                pass
    wrong = {q: (got[q], want) for q, want in EXPECTED.items() if got[q] != want}
    assert not wrong, "\n".join(f"{q}: got {g}, want {w}" for q, (g, w) in wrong.items())


# --- import client against a loopback Kibana -------------------------------------


class FakeKibana:
    """A loopback HTTP server that records each request and answers as told."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.status = 200
        self.statuses: dict[str, int] = {}  # per path (without the query string)
        self.reply: dict | str = {"success": True, "successCount": 10, "errors": []}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                length = int(self.headers.get("Content-Length", 0))
                fake.requests.append({
                    "method": self.command, "path": self.path,
                    "headers": self.headers, "body": self.rfile.read(length),
                })
                reply = fake.reply if isinstance(fake.reply, str) else json.dumps(fake.reply)
                payload = reply.encode()
                self.send_response(fake.statuses.get(self.path.split("?")[0], fake.status))
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key, as PEM files."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "cyz test kibana")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "kibana.crt", tmp_path / "kibana.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


@pytest.fixture
def kibana() -> Iterator[FakeKibana]:
    fake = FakeKibana()
    fake.thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def file_part(request: dict) -> email.message.EmailMessage:
    """Parse the multipart body with the standard library's MIME parser."""
    raw = b"Content-Type: " + request["headers"]["Content-Type"].encode() + b"\r\n\r\n" + request["body"]
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(raw)
    assert message.is_multipart()
    parts = list(message.iter_parts())
    assert len(parts) == 1
    return parts[0]


def test_import_posts_each_file_as_multipart_with_api_key(kibana: FakeKibana):
    files = default_files()
    summary = import_saved_objects(kibana.url, files, api_key="a2V5OnNlY3JldA==")
    assert summary["success"] is True
    assert summary["successCount"] == 10 * len(files)
    assert summary["settings"] == {"dateFormat:tz": "Asia/Shanghai"}
    assert len(kibana.requests) == len(files) + 1
    for request, path in zip(kibana.requests[:-1], files, strict=True):
        assert request["method"] == "POST"
        assert request["path"] == "/api/saved_objects/_import?overwrite=true"
        assert request["headers"]["kbn-xsrf"] == "true"
        assert request["headers"]["Authorization"] == "ApiKey a2V5OnNlY3JldA=="
        part = file_part(request)
        assert part.get_param("name", header="content-disposition") == "file"
        assert part.get_filename() == path.name
        assert part.get_payload(decode=True) == path.read_bytes()


def test_import_into_a_space_with_basic_auth(kibana: FakeKibana, tmp_path: Path):
    ndjson = tmp_path / "extra.ndjson"
    ndjson.write_bytes('{"type":"index-pattern","id":"x","attributes":{"title":"遵义"}}\n'.encode())
    import_saved_objects(kibana.url + "/", [ndjson], username="staff", password="pä:ss", space="research")
    request, settings = kibana.requests
    assert request["path"] == "/s/research/api/saved_objects/_import?overwrite=true"
    assert request["headers"]["Authorization"] == "Basic " + base64.b64encode("staff:pä:ss".encode()).decode()
    assert file_part(request).get_payload(decode=True) == ndjson.read_bytes()
    # Advanced settings are per space: the time zone goes to the same one.
    assert settings["path"] == "/s/research/api/kibana/settings"
    assert settings["headers"]["Authorization"] == request["headers"]["Authorization"]


def test_import_sets_dates_to_beijing_time(kibana: FakeKibana):
    assert UI_SETTINGS == {"dateFormat:tz": "Asia/Shanghai"}
    import_saved_objects(kibana.url, default_files(), api_key="k")
    settings = kibana.requests[-1]
    assert [r["path"] for r in kibana.requests].count("/api/kibana/settings") == 1
    assert settings["method"] == "POST" and settings["path"] == "/api/kibana/settings"
    assert settings["headers"]["kbn-xsrf"] == "true"
    assert settings["headers"]["Content-Type"] == "application/json"
    assert settings["headers"]["Authorization"] == "ApiKey k"
    assert json.loads(settings["body"]) == {"changes": {"dateFormat:tz": "Asia/Shanghai"}}


def test_import_without_settings_and_a_refused_setting(kibana: FakeKibana):
    import_saved_objects(kibana.url, default_files(), ui_settings={})
    assert all(r["path"].startswith("/api/saved_objects/_import") for r in kibana.requests)
    kibana.statuses["/api/kibana/settings"] = 400
    # One reply for every path: an import success, and the settings API's error message.
    kibana.reply = {"success": True, "successCount": 10, "errors": [],
                    "error": "Bad Request", "message": "[validation [dateFormat:tz]]"}
    with pytest.raises(KibanaError) as caught:
        import_saved_objects(kibana.url, default_files())
    assert "/api/kibana/settings" in str(caught.value) and "validation" in str(caught.value)


def test_no_credentials_sends_no_authorization(kibana: FakeKibana):
    import_saved_objects(kibana.url, default_files()[:1])
    assert "Authorization" not in kibana.requests[0]["headers"]


def test_http_error_names_url_and_kibana_message(kibana: FakeKibana):
    kibana.status = 403
    kibana.reply = {"statusCode": 403, "error": "Forbidden",
                    "message": "Unable to bulk_create index-pattern"}
    with pytest.raises(KibanaError) as caught:
        import_saved_objects(kibana.url, default_files(), api_key="s3cr3t-key")
    message = str(caught.value)
    assert kibana.url + "/api/saved_objects/_import" in message
    assert "403" in message and "Unable to bulk_create index-pattern" in message
    assert "s3cr3t" not in message


def test_unsuccessful_import_is_an_error(kibana: FakeKibana):
    kibana.reply = {"success": False, "successCount": 9, "errors": [{
        "id": "cyz-dashboard", "type": "dashboard",
        "error": {"type": "missing_references", "message": "missing cyz-vis-top-sources"}}]}
    with pytest.raises(KibanaError, match="cyz-dashboard.*missing cyz-vis-top-sources"):
        import_saved_objects(kibana.url, default_files())


def test_unreachable_kibana_is_a_clear_error(kibana: FakeKibana):
    url = kibana.url
    kibana.server.shutdown()
    kibana.server.server_close()
    with pytest.raises(KibanaError, match="cannot reach Kibana at " + re.escape(url)):
        import_saved_objects(url, default_files(), timeout=5)


def test_https_trusts_only_the_given_ca(tmp_path: Path):
    import ssl

    pytest.importorskip("cryptography")
    cert, key = self_signed(tmp_path)
    fake = FakeKibana()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    fake.server.socket = context.wrap_socket(fake.server.socket, server_side=True)
    url = fake.url.replace("http:", "https:")
    fake.thread.start()
    try:
        with pytest.raises(KibanaError, match="cannot reach Kibana at https://.*CERTIFICATE_VERIFY_FAILED"):
            import_saved_objects(url, default_files(), timeout=5)
        assert import_saved_objects(url, default_files(), ca_certs=str(cert))["success"]
        assert import_saved_objects(url, default_files(), verify=False)["success"]
    finally:
        fake.server.shutdown()
        fake.server.server_close()
    assert len(fake.requests) == 2 * (len(default_files()) + 1)


def test_import_url_and_env(monkeypatch: pytest.MonkeyPatch):
    assert import_url("https://k:5601", "default") == "https://k:5601/api/saved_objects/_import?overwrite=true"
    assert settings_url("https://k:5601/", "a b") == "https://k:5601/s/a%20b/api/kibana/settings"
    for name in ("CYZ_KIBANA_URL", "CYZ_KIBANA_API_KEY", "CYZ_KIBANA_USER", "CYZ_KIBANA_PASSWORD",
                 "CYZ_KIBANA_CA_CERTS", "CYZ_KIBANA_VERIFY"):
        monkeypatch.delenv(name, raising=False)
    assert env_settings() == {"kibana_url": None, "api_key": None, "username": None,
                              "password": None, "ca_certs": None, "verify": True}
    monkeypatch.setenv("CYZ_KIBANA_URL", "https://kibana:5601")
    monkeypatch.setenv("CYZ_KIBANA_API_KEY", "abc")
    monkeypatch.setenv("CYZ_KIBANA_VERIFY", "false")
    settings = env_settings()
    assert settings["kibana_url"] == "https://kibana:5601" and settings["api_key"] == "abc"
    assert settings["verify"] is False


# --- docker-compose.yml ----------------------------------------------------------


def test_compose_file_is_consistent():
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    assert {"setup", "es01", "kibana", "cyz"} <= set(services)
    volumes = set(compose.get("volumes") or {})
    for name, service in services.items():
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown {dependency}"
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if not source.startswith((".", "/", "$")):
                assert source in volumes, f"{name} mounts undefined volume {source}"
    env = lambda name: dict(item.split("=", 1) for item in services[name]["environment"])  # noqa: E731
    es = env("es01")
    assert es["xpack.security.enabled"] == "true"
    assert es["ELASTIC_PASSWORD"] == "${ELASTIC_PASSWORD}"
    cyz = env("cyz")
    assert cyz["CYZ_ENGINE"] == "elasticsearch"
    assert cyz["CYZ_ES_URL"].startswith("https://es01:")
    assert cyz["CYZ_DATA_DIR"] == "/data" and cyz["CYZ_CONFIG_DIR"] == "/config"
    assert env("kibana")["ELASTICSEARCH_USERNAME"] == "kibana_system"
    assert services["cyz"]["build"] == "."
    dockerfile = (REPO / "Dockerfile").read_text(encoding="utf-8")
    assert dockerfile.startswith("#") and "FROM python:3.11-slim" in dockerfile
    assert 'CMD ["cyz", "schedule"]' in dockerfile


def test_compose_runs_cyz_as_the_operator_expects():
    """Every cyz setting reaches the container (an unset one arrives empty, which cyz
    reads as unset), a real init forwards SIGTERM, `cyz health` is the healthcheck, and
    every service's log rotates."""
    from cyz.settings import NAMES

    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text(encoding="utf-8"))
    services = compose["services"]
    cyz = services["cyz"]
    passed = {item.split("=", 1)[0] for item in cyz["environment"]}
    # The compose stack runs Elasticsearch; the OpenSearch settings have no use there.
    # The admin credentials never reach the long-running scheduler (docs/roles.md): the
    # operator passes them to one `docker compose run` of an admin command.
    admin = {n for n in NAMES if n.startswith("CYZ_ES_ADMIN_")}
    assert admin == {"CYZ_ES_ADMIN_API_KEY", "CYZ_ES_ADMIN_USER", "CYZ_ES_ADMIN_PASSWORD"}
    expected = {n for n in NAMES if not n.startswith("CYZ_OPENSEARCH_")} - admin
    assert expected - passed == set()
    assert not admin & passed
    assert cyz["init"] is True
    # Long enough for a crawl's checkpoint: in-flight pages extracted (CYZ_PAGE_TIMEOUT
    # default 120 s) and the last flush; as long as the systemd unit's TimeoutStopSec.
    unit = (REPO / "deploy" / "cyz-scheduler.service").read_text(encoding="utf-8")
    stop_sec = int(re.search(r"^TimeoutStopSec=(\d+)$", unit, re.M)[1])
    assert compose_seconds(cyz["stop_grace_period"]) >= max(stop_sec, 120 + 20)
    assert cyz["healthcheck"]["test"] == ["CMD", "cyz", "health"]
    for name, service in services.items():
        options = service.get("logging", {}).get("options", {})
        assert options.get("max-size") and options.get("max-file"), f"{name} logs never rotate"


def compose_seconds(value: str) -> float:
    """A compose duration (`2m30s`, `90s`, `1h`) in seconds."""
    parts = re.fullmatch(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?", str(value))
    assert parts and any(parts.groups()), f"not a compose duration: {value!r}"
    hours, minutes, seconds = (int(x or 0) for x in parts.groups())
    return hours * 3600 + minutes * 60 + seconds


def test_compose_duration_parser():
    assert [compose_seconds(v) for v in ("2m30s", "90s", "1h", "2m")] == [150, 90, 3600, 120]
    with pytest.raises(AssertionError):
        compose_seconds("soon")


def test_compose_kibana_address_and_snapshot_repository():
    """Kibana's published address is a setting (loopback by default, for a reverse proxy
    on the host) and knows the address staff use; Elasticsearch has a snapshot
    repository path on a volume of its own, and the docs show how to use both."""
    text = (REPO / "docker-compose.yml").read_text(encoding="utf-8")
    compose = yaml.safe_load(text)
    services = compose["services"]
    env = lambda name: dict(item.split("=", 1) for item in services[name]["environment"])  # noqa: E731
    kibana = services["kibana"]
    (port,) = kibana["ports"]
    assert port == "${KIBANA_BIND:-127.0.0.1}:5601:5601"
    public = env("kibana")["SERVER_PUBLICBASEURL"]
    assert re.fullmatch(r"\$\{KIBANA_PUBLIC_URL:-https?://[^}]+\}", public), public
    # Elasticsearch stays on loopback whatever KIBANA_BIND says.
    assert all(p.startswith("127.0.0.1:") for p in services["es01"]["ports"])

    es = services["es01"]
    repo_path = env("es01")["path.repo"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in es["volumes"]}
    assert repo_path in mounts, "path.repo is not a mounted volume"
    volume = mounts[repo_path]
    assert volume in (compose.get("volumes") or {}) and volume != "esdata"

    production = (REPO / "docs" / "production.md").read_text(encoding="utf-8")
    for needed in ("KIBANA_BIND", "KIBANA_PUBLIC_URL", "reverse_proxy", "proxy_pass",
                   repo_path, "_snapshot/", "_restore", "backup.md"):
        assert needed in production, f"docs/production.md does not mention {needed}"


def test_docker_build_context_keeps_the_package():
    import tomllib

    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    needed = set(project["tool"]["setuptools"]["package-dir"].values()) | {"pyproject.toml", "README.md"}
    ignored = {line.strip().rstrip("/") for line in (REPO / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert not needed & ignored
    assert {".git", ".env", "tools"} <= ignored  # secrets and the 50 MB test jars stay out
