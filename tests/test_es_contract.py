"""The Elasticsearch engine, tested by contract (no Elasticsearch distribution here).

The same script of engine operations runs twice with the same index prefix: through
`OpenSearchClient` against a real OpenSearch node (behind a recording proxy), and
through `ElasticsearchClient` against a loopback fake that answers like
Elasticsearch 8. The Elasticsearch client must put exactly the requests on the wire
that were proven to work on the real node. ES-only wiring (product check, auth
headers, content types, TLS, outages, rejected bulk items) is checked on the fake.
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import ssl
import subprocess
from datetime import date
from pathlib import Path

import pytest
from http_recorder import FakeElasticsearch, Recorded, RecordingProxy

from cyz.index.base import Filters, SearchRequest
from cyz.index.elasticsearch import ElasticsearchClient
from cyz.index.events import build_happenings
from cyz.index.mapping import MAPPING_VERSION
from cyz.index.opensearch import OpenSearchClient
from cyz.index.query import parse
from cyz.index.search_engine import ApiError, EngineMisconfigured, EngineUnavailable, SearchEngine
from cyz.record import Article

REFUSED = "http://127.0.0.1:9"  # nothing listens on the discard port


def article(rid: str, title: str, text: str, *, source: str = "src-a", published: str | None = None,
            regions: tuple[str, ...] = (), events: list[dict] | None = None,
            topics: tuple[str, ...] = (), cluster: str | None = None) -> dict:
    return Article(id=rid, url=f"https://example.gov.cn/{rid}.html", source_id=source, title=title,
                   text=text, title_zh=title, text_zh=text, published_at=published,
                   regions=[{"name": r, "count": 1} for r in regions], events=events or [],
                   event_types=sorted({e["type"] for e in events or []}), topics=list(topics),
                   cluster_id=cluster).model_dump()


RECORDS = [
    article("c1", "遵义与重庆签署合作协议", "遵义市与重庆市江北区签署合作协议，共建产业园区。",
            published="2024-12-05T10:00:00+08:00", regions=("遵义", "重庆"),
            events=[{"type": "agreement", "date": "2024-12", "date_precision": "month",
                     "parties": ["遵义市", "江北区"], "places": ["遵义", "重庆"],
                     "sentence": "遵义市与重庆市江北区签署合作协议", "amount_yuan": 1.5e9},
                    {"type": "project", "sentence": "共建产业园区", "planned": True}],
            topics=("cooperation",), cluster="k1"),
    article("c2", "成渝中线高铁建设提速", "遵义等城市前往成都的时间将缩短，合作更紧密。", source="src-b",
            published="2024-12-10T09:00:00+08:00", regions=("遵义", "成都"), cluster="k1"),
    article("c3", "全市气温回升", "气象部门提醒市民注意早晚温差。", source="src-b",
            published="2024-10-01T08:00:00+08:00"),
]


def happening_ids(*records: dict) -> list[str]:
    return [h["event_id"] for h in build_happenings(records)]


# A date field that does not parse: a real node answers 400 mapper_parsing_exception.
BAD = {**RECORDS[2], "id": "bad", "published_at": "not a date"}
REJECT = {"bad": (400, "mapper_parsing_exception")}


def script(engine: SearchEngine) -> dict:
    """Every operation cyz performs on an engine; returns what the engine answered."""
    engine.init()
    out: dict = {"written": engine.write([*RECORDS, BAD])}
    engine.refresh()
    out["spooled"] = [json.loads(line)["record"]["id"] for line in engine.spool.path.read_text("utf-8").splitlines()]
    found = engine.search(SearchRequest(parse("遵义 合作"), Filters(regions=["遵義"], since=date(2024, 11, 1)),
                                        limit=10))
    out["search"] = (found.total, sorted(h.record["id"] for h in found.hits))
    browse = engine.search(SearchRequest(parse(""), Filters(sources=["src-b"]), limit=10))
    out["browse"] = (browse.total, sorted(h.record["id"] for h in browse.hits))
    # exclusions, every region, topics, clusters and the other sorts (issue 13)
    kinds = [SearchRequest(parse("合作 -重庆"), Filters(regions=["遵义", "成都"], regions_all=True),
                           sort="relevance"),
             SearchRequest(parse('NOT "气温"'), Filters(topics=["cooperation"]), sort="date"),
             SearchRequest(parse("遵 OR 渝"), Filters(cluster_ids=["k1"]), sort="best")]
    out["kinds"] = [sorted(h.record["id"] for h in engine.search(r).hits) for r in kinds]
    out["count"] = (engine.count(), engine.count(Filters(source_prefix="src-b")))
    out["get"] = (engine.get("c1"), engine.get("missing"))
    out["iter"] = sorted(r["id"] for r in engine.iter_records())
    out["indexed_since"] = (sorted(r["id"] for r in engine.iter_records(Filters(indexed_since=STAMP))),
                            engine.count(Filters(indexed_since="2030-01-01T00:00:00+00:00")))
    out["deleted"] = engine.delete(["c1"])
    engine.refresh()
    out["after_delete"] = engine.count()
    out["migrate"] = engine.migrate()
    out["migrate_drop"] = engine.migrate(drop_old=True)
    out["status"] = {k: v for k, v in engine.status().items() if k not in ("engine", "last_flush")}
    return out


# Both runs stamp the records they write with this `indexed_at`, so the two request
# sequences can be compared byte for byte.
STAMP = "2026-01-02T03:04:05.000006+00:00"


def _drop(proxy_free_url: str, prefix: str) -> None:
    engine = OpenSearchClient.from_env({"CYZ_OPENSEARCH_URL": proxy_free_url})
    for path in (f"/{prefix}-*", f"/_index_template/{prefix}-articles", f"/_index_template/{prefix}-events"):
        try:
            engine.request("DELETE", path)
        except ApiError:
            pass
    engine.close()


def wire(requests: list[Recorded]) -> list[tuple]:
    """The requests as (method, path, params, body). The one allowed difference: the
    `elasticsearch` 8 client's bulk helper sends `PUT /_bulk` where opensearch-py
    sends `POST /_bulk`; Elasticsearch routes both methods to the same bulk action,
    and the wiring test asserts the method separately. What follows a reindex task's
    sequence (where the answers differ by nature) is normalised: a reindex task's id is
    `<task>` wherever it appears, and repeated looks at the same task count once (how
    many polls a real task takes is timing)."""
    out: list[tuple] = []
    for r in requests:
        method, path, params, body = r.key()
        path = re.sub(r"^/_tasks/.+$", "/_tasks/<task>", path)
        body = _without_task_ids(body)
        entry = ("POST" if path == "/_bulk" else method, path, params, body)
        if path == "/_tasks/<task>" and out and out[-1] == entry:
            continue
        out.append(entry)
    return out


def _without_task_ids(body: object) -> object:
    if isinstance(body, dict):
        return {k: "<task>" if k == "task" else _without_task_ids(v) for k, v in body.items()}
    if isinstance(body, list):
        return [_without_task_ids(v) for v in body]
    return body


@pytest.fixture(scope="module")
def both_runs(opensearch_url, tmp_path_factory):
    """(OpenSearch requests, OpenSearch answers, fake ES, ES answers), same prefix."""
    prefix = f"cyzc{secrets.token_hex(4)}"
    _drop(opensearch_url, prefix)
    clock = pytest.MonkeyPatch()
    clock.setattr("cyz.index.search_engine.indexed_now", lambda: STAMP)
    # The happenings planned after the articles' bulk, not beside it: one order on the wire.
    clock.setattr("cyz.index.search_engine.PLAN_DURING_BULK", False)
    try:
        with RecordingProxy(opensearch_url) as proxy:
            engine = SearchEngine(OpenSearchClient.from_env({"CYZ_OPENSEARCH_URL": proxy.url}),
                                  tmp_path_factory.mktemp("os-data"), prefix)
            os_out = script(engine)
            engine.close()
    finally:
        _drop(opensearch_url, prefix)
    with FakeElasticsearch(reject=dict(REJECT)) as fake:
        engine = SearchEngine(ElasticsearchClient.from_env({"CYZ_ES_URL": fake.url}),
                              tmp_path_factory.mktemp("es-data"), prefix)
        es_out = script(engine)
        engine.close()
    clock.undo()
    assert os_out["indexed_since"] == (["c1", "c2", "c3"], 0)
    return proxy.requests, os_out, fake, es_out


def test_elasticsearch_sends_exactly_what_the_real_node_took(both_runs):
    os_requests, _, fake, _ = both_runs
    expected, sent = wire(os_requests), wire(fake.requests)
    # first point of divergence, readable, before the whole-list comparison
    for n, (want, got) in enumerate(zip(expected, sent, strict=False)):
        assert got == want, f"request #{n} differs"
    assert len(sent) == len(expected)
    assert fake.faults == []
    assert {r.method for r in fake.requests if r.path == "/_bulk"} == {"PUT"}
    kinds = {(r.method, r.path.split("/")[-1]) for r in fake.requests}
    for needed in [("PUT", "_bulk"), ("POST", "_delete_by_query"), ("POST", "_reindex"),
                   ("POST", "_aliases"), ("POST", "_search"), ("POST", "_count"), ("POST", "_refresh"),
                   ("GET", "index.creation_date"), ("GET", "missing")]:
        assert needed in kinds
    assert any(r.method == "DELETE" for r in fake.requests)
    articles, events = [r for r in fake.requests if r.path == "/_bulk"][:2]
    assert isinstance(articles.body, list) and len(articles.body) == 2 * (len(RECORDS) + 1)
    # then c1's two happenings, one document each
    assert [line["index"]["_id"] for line in events.body[::2]] == happening_ids(RECORDS[0])
    search = next(r for r in fake.requests if r.path.endswith("/_search") and "highlight" in r.body)
    assert search.body["query"]["function_score"]["query"]["bool"]["filter"]  # sort best


def test_the_fake_answers_like_the_real_node(both_runs):
    """The engine sees the same results from both, so the fake's answers are faithful
    enough that the request sequences above are comparable at all."""
    _, os_out, _, es_out = both_runs
    assert os_out["spooled"] == es_out["spooled"] == ["bad"]
    assert os_out["search"] == es_out["search"] == (2, ["c1", "c2"])
    assert os_out["kinds"] == [["c2"], ["c1"], ["c1", "c2"]]
    assert os_out["get"][0]["title"] == "遵义与重庆签署合作协议" and os_out["get"][1] is None
    assert os_out == es_out


def test_content_types_and_product_header(both_runs):
    _, _, fake, _ = both_runs
    json_types = {"application/json", "application/vnd.elasticsearch+json; compatible-with=8"}
    ndjson_types = {"application/x-ndjson", "application/vnd.elasticsearch+x-ndjson; compatible-with=8"}
    for r in fake.requests:
        assert r.headers.get("accept") in json_types, (r.method, r.path, r.headers.get("accept"))
        if r.body is not None:
            allowed = ndjson_types if r.path.endswith("/_bulk") else json_types
            assert r.headers.get("content-type") in allowed, (r.method, r.path, r.headers.get("content-type"))


def es_engine(fake_url: str, data_dir: Path, prefix: str = "cyzes", **env: str) -> SearchEngine:
    return SearchEngine(ElasticsearchClient.from_env({"CYZ_ES_URL": fake_url, **env}), data_dir, prefix)


def test_a_server_that_is_not_elasticsearch_is_refused_clearly(tmp_path):
    with FakeElasticsearch(product_header=False) as impostor:
        engine = es_engine(impostor.url, tmp_path)
        with pytest.raises(RuntimeError, match="(?i)not elasticsearch"):
            engine.init()
        engine.close()


def test_a_server_that_is_not_elasticsearch_is_refused(tmp_path):
    with FakeElasticsearch(product_header=False) as impostor:
        engine = es_engine(impostor.url, tmp_path)
        with pytest.raises(EngineMisconfigured) as raised:
            engine.init()
        # The client checks the product on successful answers only (the mapping read of a
        # fresh cluster is a 404): nothing is sent after the first one.
        assert not engine.online
        assert [f"{r.method} {r.path}" for r in impostor.requests] == [
            "GET /cyzes-articles/_mapping", "PUT /_index_template/cyzes-articles"]
        assert len(engine.spool) == 0
        engine.close()
    assert "PUT /_index_template/cyzes-articles" in str(raised.value)


@pytest.mark.parametrize(("env", "expected"), [
    ({"CYZ_ES_API_KEY": "a2V5aWQ6c2VjcmV0"}, "ApiKey a2V5aWQ6c2VjcmV0"),
    ({"CYZ_ES_USER": "cyz", "CYZ_ES_PASSWORD": "s3cret:x"},
     "Basic " + base64.b64encode(b"cyz:s3cret:x").decode()),
    ({"CYZ_ES_API_KEY": "a2V5", "CYZ_ES_USER": "ignored"}, "ApiKey a2V5"),
])
def test_credentials_from_the_environment(tmp_path, env, expected):
    with FakeElasticsearch() as fake:
        engine = es_engine(fake.url, tmp_path, **env)
        engine.write(RECORDS[:1])
        engine.close()
    assert fake.requests and {r.headers.get("authorization") for r in fake.requests} == {expected}


def test_no_credentials_sends_no_authorization(tmp_path):
    with FakeElasticsearch() as fake:
        es_engine(fake.url, tmp_path).init()
    assert not any("authorization" in r.headers for r in fake.requests)


def test_a_rejected_bulk_item_is_spooled_and_the_rest_indexed(tmp_path):
    with FakeElasticsearch(reject={"c2": (400, "mapper_parsing_exception")}) as fake:
        engine = es_engine(fake.url, tmp_path)
        assert engine.write(RECORDS) == 3
        engine.refresh()
        assert engine.count() == 2 and engine.get("c2") is None
        parked = list(engine.spool.take())
        engine.spool.done()
        assert [e["record"]["id"] for e in parked] == ["c2"]
        assert "400" in parked[0]["reason"] and "mapper_parsing_exception" in parked[0]["reason"]
        # the happenings of the accepted article are indexed too
        assert sorted(fake.indices[f"cyzes-events-v{MAPPING_VERSION}"]) == sorted(happening_ids(RECORDS[0]))
        engine.close()


@pytest.mark.parametrize("throttled", [1, 3])
def test_a_throttled_bulk_is_retried(tmp_path, throttled):
    """One 429 is retried by the transport; three exhaust the transport's retries
    (max_retries=2) and the bulk helper retries the chunk after its backoff."""
    with FakeElasticsearch(throttle_bulk=throttled) as fake:
        engine = es_engine(fake.url, tmp_path)
        engine.write(RECORDS)
        engine.close()
    bulks = [r for r in fake.requests if r.path == "/_bulk"
             and r.body[0]["index"]["_index"] == "cyzes-articles"]
    assert len(bulks) == throttled + 1 and all(b.body == bulks[0].body for b in bulks)
    assert len(engine.spool) == 0 and len(fake.indices[f"cyzes-articles-v{MAPPING_VERSION}"]) == 3


def test_connection_refused_at_init_spools_and_the_next_run_replays(tmp_path):
    down = es_engine(REFUSED, tmp_path)
    down.init()
    assert not down.online
    assert down.write(RECORDS) == 3 and len(down.spool) == 3
    assert down.get("c1") is None
    with pytest.raises(EngineUnavailable):
        down.count()
    down.close()
    with pytest.raises(EngineUnavailable):
        ElasticsearchClient.from_env({"CYZ_ES_URL": REFUSED}).request("GET", "/_alias/x")
    with FakeElasticsearch() as fake:
        up = es_engine(fake.url, tmp_path)
        up.init()  # replays the spool
        up.refresh()
        assert up.online and len(up.spool) == 0 and up.count() == 3
        up.close()


# --- TLS ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory) -> tuple[Path, Path]:
    where = tmp_path_factory.mktemp("tls")
    cert, key = where / "cert.pem", where / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    return cert, key


def _tls_fake(certificate: tuple[Path, Path]) -> FakeElasticsearch:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    return FakeElasticsearch(ssl_context=context)


def test_tls_with_the_ca_certificate_is_accepted(certificate, tmp_path):
    with _tls_fake(certificate) as fake:
        assert fake.url.startswith("https://")
        engine = es_engine(fake.url, tmp_path, CYZ_ES_CA_CERTS=str(certificate[0]))
        engine.write(RECORDS[:1])
        engine.close()
    assert engine.online and fake.indices[f"cyzes-articles-v{MAPPING_VERSION}"]


def test_tls_without_the_ca_certificate_fails_verification(certificate, tmp_path):
    with _tls_fake(certificate) as fake:
        client = ElasticsearchClient.from_env({"CYZ_ES_URL": fake.url})
        with pytest.raises(EngineMisconfigured, match="CERTIFICATE_VERIFY_FAILED.*CYZ_ES_CA_CERTS"):
            client.request("GET", "/_alias/x")
        client.close()
        engine = es_engine(fake.url, tmp_path)
        # a wrong certificate is a configuration error, not an outage: stop, don't spool
        with pytest.raises(EngineMisconfigured):
            engine.write(RECORDS[:1])
        assert len(engine.spool) == 0
        engine.close()
    assert fake.requests == []
