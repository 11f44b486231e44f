"""Cooperation events end to end: `cyz demo` into the embedded index and into a real
OpenSearch node, then `cyz events`, `cyz export --events`, the Kibana panels' queries
on the node, and the roll-out of a new pipeline version to stored records.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
import urllib.request
from pathlib import Path

import pytest
from test_cli import cyz  # tests/ is on sys.path
from test_engines import drop_prefix

from cyz.index import open_engine
from cyz.record import PIPELINE_VERSION, Happening
from cyz.timeline import EXPORT_COLUMNS

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def sqlite_demo(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("events-sqlite")
    return data_dir, cyz("demo", data_dir=data_dir), {}


@pytest.fixture(scope="module")
def os_demo(tmp_path_factory, opensearch_url):
    data_dir = tmp_path_factory.mktemp("events-os")
    prefix = f"cyzev{secrets.token_hex(3)}"
    env = {"CYZ_ENGINE": "opensearch", "CYZ_OPENSEARCH_URL": opensearch_url,
           "CYZ_INDEX_PREFIX": prefix}
    try:
        yield data_dir, cyz("demo", data_dir=data_dir, **env), env | {"prefix": prefix}
    finally:
        drop_prefix(opensearch_url, prefix)


def events_json(demo, *args: str) -> dict:
    data_dir, _, env = demo
    env = {k: v for k, v in env.items() if k.startswith("CYZ_")}
    return json.loads(cyz("events", "--json", "--limit", "500", *args, data_dir=data_dir,
                          **env).stdout)


def zunyi_jiangbei(result: dict) -> list[dict]:
    return [e for e in result["events"] if e["type"] == "agreement"
            and any("江北" in p for p in e["parties"]) and any("遵义" in p for p in e["parties"])]


def test_demo_ends_with_the_event_timeline(sqlite_demo):
    _, demo, _ = sqlite_demo
    timeline = demo.stdout[demo.stdout.index("cooperation event(s) in the demo"):]
    assert "2024-12" in timeline and "2024-11" in timeline  # grouped by month
    assert "签约" in timeline and "江北区" in timeline
    assert "136.8亿元" in timeline  # the 2024 推介会's 23 projects


def test_the_jiangbei_agreement_is_one_event_with_every_report(sqlite_demo):
    result = events_json(sqlite_demo)
    assert result["total"] == len(result["events"]) > 0
    for event in result["events"]:
        Happening.model_validate(event)  # the contract `--json` promises
    (agreement,) = zunyi_jiangbei(result)
    assert agreement["date"] == "2024-12-04" and agreement["date_precision"] == "day"
    assert agreement["planned"] is False
    assert "重庆" in {r["name"] for r in agreement["regions"]}
    sources = {r["source_id"] for r in agreement["reports"]}
    assert {"demo-zunyi-gov", "demo-huaxia"} <= sources  # the government's story and the reprint
    assert any("簽署" in r["title"] for r in agreement["reports"])  # and the traditional one
    assert agreement["report_count"] == len(agreement["reports"]) == 3
    assert agreement["first_reported_at"] == min(r["published_at"] for r in agreement["reports"])


def test_the_investment_fair_carries_its_amount(sqlite_demo):
    result = events_json(sqlite_demo, "--since", "2024-11-12", "--until", "2024-11-12")
    amounts = [e for e in result["events"] if e.get("amount_yuan") == 13_680_000_000]
    assert amounts, [(e["type"], e["sentence"]) for e in result["events"]]
    assert all(e["date_from"] <= "2024-11-12" <= e["date_to"] for e in result["events"])


def test_filters_narrow_the_timeline(sqlite_demo):
    everything = events_json(sqlite_demo)
    agreements = events_json(sqlite_demo, "--type", "签约")
    assert 0 < agreements["total"] < everything["total"]
    assert {e["type"] for e in agreements["events"]} == {"agreement"}
    assert events_json(sqlite_demo, "--type", "agreement") == agreements
    party = events_json(sqlite_demo, "--party", "江北")
    assert party["total"] >= 1
    assert all(any("江北" in p for p in e["parties"]) for e in party["events"])
    planned, done = events_json(sqlite_demo, "--planned"), events_json(sqlite_demo, "--done")
    assert planned["total"] + done["total"] == everything["total"]
    assert all(e["planned"] for e in planned["events"])
    dates = [e["date_from"] for e in everything["events"] if e["date_from"]]
    assert dates == sorted(dates, reverse=True)  # newest first


def test_bad_event_options_are_refused(sqlite_demo):
    data_dir, _, _ = sqlite_demo
    proc = cyz("events", "--type", "宴会", data_dir=data_dir, check=False)
    assert proc.returncode == 2 and "agreement (签约)" in proc.stderr
    proc = cyz("events", "--since", "2024-12-31", "--until", "2024-01-01", data_dir=data_dir,
               check=False)
    assert proc.returncode == 2 and "after --until" in proc.stderr


def test_export_events_as_csv(sqlite_demo, tmp_path):
    data_dir, _, _ = sqlite_demo
    target = tmp_path / "events.csv"
    cyz("export", "--events", "--format", "csv", "-o", str(target), data_dir=data_dir)
    raw = target.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert list(rows[0]) == EXPORT_COLUMNS
    assert len(rows) == events_json(sqlite_demo)["total"]
    assert any(r["type_label"] == "签约" and "江北" in r["parties"] for r in rows)
    lines = cyz("export", "--events", data_dir=data_dir).stdout.splitlines()
    assert len(lines) == len(rows) and "reports" in json.loads(lines[0])


def test_every_engine_gives_the_same_events(sqlite_demo, os_demo):
    def shape(result: dict) -> list[tuple]:
        return [(e["event_id"], e["type"], e["date"], e["planned"], tuple(e["parties"]),
                 tuple(sorted(r["article_id"] for r in e["reports"]))) for e in result["events"]]

    for args in ([], ["--type", "签约"], ["--region", "重庆"], ["--region", "遵義"],
                 ["--party", "江北"], ["--since", "2024-12-01", "--until", "2024-12-31"],
                 ["--planned"], ["--done"], ["--type", "项目", "--type", "会议"]):
        on_sqlite, on_os = events_json(sqlite_demo, *args), events_json(os_demo, *args)
        assert on_sqlite["total"] == on_os["total"], args
        assert shape(on_sqlite) == shape(on_os), args


# -- the Kibana dashboard's event panels, asked of the node the way Kibana asks --------


def _saved_objects() -> dict[str, dict]:
    lines = (REPO / "config" / "kibana" / "cyz.ndjson").read_text(encoding="utf-8").splitlines()
    return {o["id"]: o for o in map(json.loads, lines) if o}


def _post(url: str, body: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def test_dashboard_event_panels_have_the_demo_events(os_demo, opensearch_url):
    objects = _saved_objects()
    view = objects["cyz-events-view"]["attributes"]
    dashboard = objects["cyz-dashboard"]["attributes"]
    alias = f"{os_demo[2]['prefix']}-events"
    window = {"range": {view["timeFieldName"]: {"gte": dashboard["timeFrom"], "lte": "now"}}}
    panels = [ref["id"] for ref in objects["cyz-dashboard"]["references"]]
    checked = 0
    for panel in panels:
        obj = objects[panel]
        # a panel on the events view (the how-to-search text panel reads no data)
        if [ref["id"] for ref in obj["references"]][:1] != ["cyz-events-view"]:
            continue
        attrs = obj["attributes"]
        if obj["type"] == "visualization":
            aggs = json.loads(attrs["visState"])["aggs"]
            fields = {a["type"]: a["params"]["field"] for a in aggs if "field" in a["params"]}
            body = {"size": 0, "query": window, "aggs": {
                "when": {"date_histogram": {"field": fields["date_histogram"],
                                            "calendar_interval": "month", "min_doc_count": 1},
                         "aggs": {"kind": {"terms": {"field": fields["terms"]}}}}}}
            buckets = _post(f"{opensearch_url}/{alias}/_search", body)["aggregations"]["when"]["buckets"]
            assert buckets and all(b["kind"]["buckets"] for b in buckets), panel
        else:
            (field, order), = attrs["sort"]
            body = {"query": window, "sort": [{field: order}], "_source": attrs["columns"]}
            hits = _post(f"{opensearch_url}/{alias}/_search", body)["hits"]["hits"]
            assert hits, panel
            assert all(set(attrs["columns"]) & set(h["_source"]) for h in hits)
        checked += 1
    assert checked == 2  # the events-by-type chart and the latest-events table


def test_one_kibana_filter_works_on_articles_and_events(os_demo, opensearch_url):
    prefix = os_demo[2]["prefix"]
    query = {"query": {"bool": {"filter": [{"term": {"regions.name": "遵义"}},
                                           {"term": {"event_types": "agreement"}}]}}}
    for alias in (f"{prefix}-articles", f"{prefix}-events"):
        assert _post(f"{opensearch_url}/{alias}/_count", query)["count"] > 0, alias


# -- a new pipeline version reaches stored records ---------------------------------------


def _make_stale(data_dir: Path) -> int:
    """Turn the stored records into what the previous pipeline wrote: no events."""
    engine = open_engine("sqlite", data_dir)
    try:
        records = list(engine.iter_records())
        for record in records:
            record.update(pipeline_version=PIPELINE_VERSION - 1, events=[], event_types=[])
        engine.write(records)
        return len(records)
    finally:
        engine.close()


def test_stale_records_are_reported_and_brought_up_to_date(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("events-stale")
    cyz("demo", data_dir=data_dir)
    before = events_json((data_dir, None, {}))["total"]
    stored = _make_stale(data_dir)
    assert events_json((data_dir, None, {}))["total"] == 0
    status = json.loads(cyz("index", "status", "--json", data_dir=data_dir).stdout)
    assert status["stale"] == stored
    assert "cyz reextract --stale" in cyz("index", "status", data_dir=data_dir).stdout

    # A crawl re-extracts a bounded number of them (every page answers 304 or is unchanged).
    demo = cyz("demo", data_dir=data_dir, CYZ_REEXTRACT_PER_RUN="5")
    assert "re-extracted (pipeline upgrade)" in demo.stdout
    status = json.loads(cyz("index", "status", "--json", data_dir=data_dir).stdout)
    assert status["stale"] == stored - 5

    proc = cyz("reextract", "--stale", data_dir=data_dir)
    assert f"re-extracted {stored - 5} page(s), 0 failed" in proc.stdout
    status = json.loads(cyz("index", "status", "--json", data_dir=data_dir).stdout)
    assert status["stale"] == 0
    assert events_json((data_dir, None, {}))["total"] == before
    engine = open_engine("sqlite", data_dir)
    try:
        changed = [r for r in engine.iter_records() if r["events"]]
        # What alerts will read: the records that gained events say they changed.
        assert changed and all(r["updated_at"] > r["crawled_at"] for r in changed)
    finally:
        engine.close()

    # Removing the demo's articles removes the events only they reported.
    cyz("demo", "--clean", data_dir=data_dir)
    assert events_json((data_dir, None, {}))["total"] == 0
