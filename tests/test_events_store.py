"""Happenings: the merge rules (cyz.index.events), the same happenings and the same
`search_events` answers on every engine, the SQLite v1 → v2 migration, the events
index upgrade on OpenSearch, and the one record contract where records enter engines."""

from __future__ import annotations

import json
import secrets
import sqlite3
import urllib.request
from datetime import date
from pathlib import Path

import pytest
from test_engines import drop_prefix, opensearch_engine

from cyz.index import cjk
from cyz.index.base import EventFilters, Filters, SearchRequest, indexed_now
from cyz.index.events import build_happenings, candidate_lookup, date_range, plan
from cyz.index.mapping import (
    ARTICLE_PROPERTIES,
    EVENT_DOC_PROPERTIES,
    EVENT_PROPERTIES,
    MAPPING_VERSION,
    REPORT_PROPERTIES,
    article_template,
)
from cyz.index.opensearch import OpenSearchClient
from cyz.index.query import parse
from cyz.index.search_engine import SearchEngine
from cyz.index.sqlite import SCHEMA_VERSION, SqliteEngine, read_records
from cyz.record import Article, Event, Happening, RegionCount, RegionName, Report

# --- the scenario -------------------------------------------------------------------------


def event(type_: str = "agreement", when: str | None = "2024-12-04", *, end: str | None = None,
          parties: tuple[str, ...] = ("遵义市", "重庆市江北区"), places: tuple[str, ...] = ("重庆",),
          regions: tuple[str, ...] = ("遵义", "重庆"), key: str = "", sentence: str = "",
          planned: bool = False, amount: float | None = None) -> dict:
    precision = None if when is None else {4: "year", 7: "month", 10: "day"}[len(when)]
    return Event(type=type_, date=when, date_end=end, date_precision=precision, parties=list(parties),
                 places=list(places), regions=list(regions), amount_yuan=amount, sentence=sentence,
                 planned=planned, key=key, rule=type_, trigger="签署").model_dump()


def article(rid: str, published: str | None, events: list[dict], *, source: str = "zunyi-gov",
            cluster: str | None = None, origin: str | None = None, title: str = "") -> dict:
    return Article(id=rid, url=f"https://example.gov.cn/{rid}.html", source_id=source,
                   source_name=source.upper(), title=title or f"标题{rid}", text="遵义合作",
                   text_zh="遵义合作", published_at=published, cluster_id=cluster, origin=origin,
                   regions=[{"name": "遵义", "count": 1}], events=events,
                   event_types=sorted({e["type"] for e in events})).model_dump()


SIGNING = "全面深化合作框架协议"
R = {
    # the signing, its traditional-script reprint and another outlet's own report
    "zy1": article("zy1", "2024-12-05T10:00:00+08:00", [event(
        key=SIGNING, sentence="12月4日，遵义市与重庆市江北区在重庆签署全面深化合作框架协议。")], cluster="k1"),
    "tw1": article("tw1", "2024-12-05T15:00:00+08:00", [event(
        parties=("遵義市", "重慶市江北區"), key=SIGNING,
        sentence="12月4日，遵义市与重庆市江北区在重庆签署全面深化合作框架协议。")],
        source="news-tw", cluster="k1"),
    "hx1": article("hx1", "2024-12-06T09:00:00+08:00", [event(
        when="2024-12", parties=("遵义市", "江北区"), key="全面合作框架协议", amount=1.5e9,
        sentence="本月，遵义市和江北区在重庆签订全面合作框架协议，涉及金额15亿元。")],
        source="huaxia", origin="华夏新闻网"),
    # the same cities, the same day, another agreement
    "hx2": article("hx2", "2024-12-06T10:00:00+08:00", [event(
        parties=("遵义市", "江北区"), key="旅游合作协议", sentence="遵义市与江北区签署旅游合作协议。")],
        source="huaxia"),
    # announced before: a planned happening, not the signing
    "pl1": article("pl1", "2024-11-06T09:00:00+08:00", [event(
        when="2024-12", parties=("遵义市", "江北区"), key=SIGNING, planned=True,
        sentence="遵义市与江北区计划于12月签署全面深化合作框架协议。")]),
    # a visit told twice in different words (the day and the two-day range)
    "cd1": article("cd1", "2024-06-14T07:30:00+08:00", [event(
        "visit", "2024-06-12", end="2024-06-13", parties=("遵义市党政代表团",), places=("青白江区",),
        regions=("遵义", "成都"), sentence="6月12日至13日，遵义市党政代表团赴成都市青白江区考察。")],
        source="chengdu-news"),
    "dm1": article("dm1", "2024-06-13T20:15:00+08:00", [event(
        "visit", "2024-06-12", parties=("遵义市党政代表团",), places=("青白江区",),
        regions=("遵义", "成都"), sentence="遵义市党政代表团于12日抵达青白江，实地考察成都国际铁路港。")],
        source="demo-x"),
    # undated: ordered and filtered by the day of its first report
    "tr1": article("tr1", "2024-12-26T18:20:00+08:00", [event(
        "transport", None, parties=("成都", "遵义"), places=("成都", "遵义"), regions=("成都", "遵义"),
        key="直达动车", sentence="今日起，成都东至遵义的直达动车正式开行。")], source="demo-y"),
    "pj1": article("pj1", "2024-03-01T09:00:00+08:00", [event(
        "project", "2023", parties=("CRRC长客",), places=("遵义",), regions=("遵义",),
        key="轨道交通装备产业园", amount=2e9, sentence="2023年，CRRC长客轨道交通装备产业园落户遵义。")]),
    # the same words on another date, and between other parties
    "ag9": article("ag9", "2024-09-10T09:00:00+08:00", [event(
        when="2024-09-09", parties=("遵义市", "江北区"), key=SIGNING,
        sentence="9月9日，遵义市与江北区签署全面深化合作框架协议。")], source="huaxia"),
    "qj1": article("qj1", "2024-12-05T11:00:00+08:00", [event(
        parties=("綦江区", "习水县"), places=("綦江区", "习水县"), regions=("重庆", "遵义"), key=SIGNING,
        sentence="12月4日，綦江区与习水县签署全面深化合作框架协议。")], source="qijiang-gov"),
}
RECORDS = list(R.values())
# The happenings, by the articles that report them (first reporter first).
EXPECTED = {("zy1", "tw1", "hx1"), ("hx2",), ("pl1",), ("dm1", "cd1"), ("tr1",), ("pj1",), ("ag9",),
            ("qj1",)}


def grouped(happenings) -> set[tuple[str, ...]]:
    return {tuple(r["article_id"] for r in h["reports"]) for h in happenings}


def snapshot(engine) -> dict[str, dict]:
    return {h["event_id"]: h for h in engine.iter_events()}


# --- merging (pure) -------------------------------------------------------------------------


def test_date_ranges():
    assert date_range("2024-07") == (date(2024, 7, 1), date(2024, 7, 31))
    assert date_range("2024-12") == (date(2024, 12, 1), date(2024, 12, 31))
    assert date_range("2024") == (date(2024, 1, 1), date(2024, 12, 31))
    assert date_range("2024-04-20", "2024-04-22") == (date(2024, 4, 20), date(2024, 4, 22))
    assert date_range("2024-02", "2024-01") == (date(2024, 2, 1), date(2024, 2, 29))  # end before start
    assert date_range(None) is None and date_range("2024-13") is None and date_range("soon") is None


def test_the_scenario_merges_as_a_reader_would():
    happenings = build_happenings(RECORDS)
    assert grouped(happenings) == EXPECTED
    for h in happenings:
        Happening.model_validate(h)
    signing = next(h for h in happenings if len(h["reports"]) == 3)
    assert signing["type"] == "agreement" and signing["event_types"] == ["agreement"]
    # described by its best mention: a day beats a month (the amount came with the month)
    assert (signing["date"], signing["date_from"], signing["date_to"]) == ("2024-12-04",) + ("2024-12-04",) * 2
    assert signing["report_count"] == 3 and signing["outlets"] == ["ZUNYI-GOV", "NEWS-TW", "华夏新闻网"]
    assert signing["first_reported_at"] == "2024-12-05T10:00:00+08:00" and signing["article_id"] == "zy1"
    assert [r["event_index"] for r in signing["reports"]] == [0, 0, 0]
    assert signing["regions"] == [{"name": "遵义"}, {"name": "重庆"}]
    visit = next(h for h in happenings if h["type"] == "visit")
    assert visit["article_id"] == "dm1"  # published first, though written second
    # two day-precise mentions: the earlier report describes it
    assert (visit["date_from"], visit["date_to"]) == ("2024-06-12", "2024-06-12")
    project = next(h for h in happenings if h["type"] == "project")
    assert (project["date_from"], project["date_to"]) == ("2023-01-01", "2023-12-31")
    undated = next(h for h in happenings if h["type"] == "transport")
    assert undated["date_from"] is None and undated["date"] is None


def test_a_reprint_cluster_is_one_happening_with_two_reports():
    (one,) = build_happenings([R["zy1"], R["tw1"]])
    assert [r["article_id"] for r in one["reports"]] == ["zy1", "tw1"]
    assert one["parties"] == ["遵义市", "重庆市江北区"]  # simplified for the party filter
    # a reprint needs no shared wording: the cluster says it
    other = {**R["tw1"], "events": [{**R["tw1"]["events"][0], "key": "", "sentence": "签约。"}]}
    assert len(build_happenings([R["zy1"], other])) == 1


def test_an_independent_report_in_other_words_is_merged():
    assert grouped(build_happenings([R["zy1"], R["hx1"]])) == {("zy1", "hx1")}


@pytest.mark.parametrize("other", ["ag9", "qj1", "pl1", "hx2"],
                         ids=["other-date", "other-parties", "planned-vs-done", "other-agreement"])
def test_what_keeps_happenings_apart(other):
    assert grouped(build_happenings([R["zy1"], R[other]])) == {("zy1",), (other,)}


def test_one_article_tells_a_happening_once():
    twice = article("x1", "2024-12-05T10:00:00+08:00", [R["zy1"]["events"][0], R["zy1"]["events"][0]])
    happenings = build_happenings([twice])
    assert len(happenings) == 2 and len({h["event_id"] for h in happenings}) == 2


def test_ids_are_stable_and_independent_of_order_and_batches():
    first = {h["event_id"]: grouped([h]) for h in build_happenings(RECORDS)}
    again = {h["event_id"]: grouped([h]) for h in build_happenings(list(reversed(RECORDS)))}
    assert first == again
    # batches in another order, planned incrementally against what is stored
    stored: dict[str, dict] = {}
    for batch in (RECORDS[8:], RECORDS[3:8], RECORDS[:3]):
        lookup = candidate_lookup(batch)
        assert lookup.article_ids and lookup.dated
        changes = plan(batch, stored.values(), {r["id"]: r for r in RECORDS})
        for event_id in changes.deleted:
            del stored[event_id]
        stored.update({h["event_id"]: h for h in changes.upserts})
    assert {i: grouped([h]) for i, h in stored.items()} == first


def test_the_same_records_again_plan_nothing():
    stored = build_happenings(RECORDS)
    changes = plan(RECORDS, stored, {})
    assert changes.upserts == [] and changes.deleted == []


# --- every engine -------------------------------------------------------------------------


def test_writes_build_the_happenings(engine):
    engine.write(RECORDS[:4])
    engine.write(RECORDS[4:])
    engine.refresh()
    happenings = list(engine.iter_events())
    assert grouped(happenings) == EXPECTED
    assert {h["event_id"] for h in happenings} == {h["event_id"] for h in build_happenings(RECORDS)}
    assert engine.count_events() == len(EXPECTED) == engine.status()["events"]


def test_rewriting_the_same_records_changes_nothing(engine):
    engine.write(RECORDS)
    before = snapshot(engine)
    engine.write(RECORDS)
    engine.write(list(reversed(RECORDS)))
    engine.refresh()
    assert snapshot(engine) == before


def test_batches_in_any_order_give_the_same_happenings(engine):
    for batch in (RECORDS[8:], RECORDS[5:8], RECORDS[:2], RECORDS[2:5]):
        engine.write(batch)
    for record in RECORDS:  # one at a time, too
        engine.write([record])
    engine.refresh()
    assert snapshot(engine) == {h["event_id"]: h for h in build_happenings(RECORDS)}


def test_deleting_articles_removes_their_reports(engine):
    engine.write(RECORDS)
    signing_id = next(i for i, h in snapshot(engine).items() if h["report_count"] == 3)
    assert engine.delete(["tw1", "hx2"]) == 2
    engine.refresh()
    after = snapshot(engine)
    assert grouped(after.values()) == EXPECTED - {("zy1", "tw1", "hx1"), ("hx2",)} | {("zy1", "hx1")}
    assert after[signing_id]["report_count"] == 2
    # the first reporter goes: the happening stays, under its new first report's id
    engine.delete(["zy1"])
    engine.refresh()
    after = snapshot(engine)
    assert signing_id not in after
    (signing,) = [h for h in after.values() if h["article_id"] == "hx1"]
    assert signing["report_count"] == 1 and signing["date"] == "2024-12"
    assert after == {h["event_id"]: h for h in build_happenings(r for r in RECORDS
                                                                if r["id"] not in ("tw1", "hx2", "zy1"))}


def test_re_extraction_updates_the_happenings(engine):
    engine.write(RECORDS)
    # hx1 now reads November: no longer the December signing
    changed = {**R["hx1"], "events": [{**R["hx1"]["events"][0], "date": "2024-11"}]}
    engine.write([changed])
    engine.refresh()
    assert ("zy1", "tw1") in grouped(engine.iter_events()) and ("hx1",) in grouped(engine.iter_events())
    # and an article that lost its only event leaves no empty happening behind
    engine.write([{**R["tr1"], "events": [], "event_types": []}])
    engine.refresh()
    assert engine.count_events(EventFilters(types=["transport"])) == 0
    expected = [changed, *(r for r in RECORDS if r["id"] not in ("hx1", "tr1"))]
    assert snapshot(engine) == {h["event_id"]: h for h in build_happenings(expected)}


# `search_events` answers, the same on every engine: (filters, expected first reporters in order).
NEWEST_FIRST = ["tr1", *sorted(["zy1", "hx2", "qj1"], key=lambda a: next(
    h["event_id"] for h in build_happenings(RECORDS) if h["article_id"] == a)), "pl1", "ag9", "dm1", "pj1"]
FILTER_CASES = [
    (EventFilters(), NEWEST_FIRST),
    (EventFilters(since=date(2024, 12, 1)), NEWEST_FIRST[:5]),
    (EventFilters(until=date(2024, 6, 30)), ["dm1", "pj1"]),
    (EventFilters(since=date(2024, 12, 20), until=date(2024, 12, 31)), ["tr1", "pl1"]),
    (EventFilters(since=date(2024, 12, 15), until=date(2024, 12, 15)), ["pl1"]),  # inside 2024-12
    (EventFilters(types=["visit", "transport"]), ["tr1", "dm1"]),
    (EventFilters(regions=["成都"]), ["tr1", "dm1"]),
    (EventFilters(regions=["遵義"]), NEWEST_FIRST),  # traditional
    (EventFilters(regions=["重慶", "nowhere"]), [a for a in NEWEST_FIRST if a not in ("tr1", "dm1", "pj1")]),
    (EventFilters(party="江北"), [a for a in NEWEST_FIRST if a in ("zy1", "hx2", "pl1", "ag9")]),
    (EventFilters(party="江北區"), [a for a in NEWEST_FIRST if a in ("zy1", "hx2", "pl1", "ag9")]),
    (EventFilters(party="crrc"), ["pj1"]),
    (EventFilters(party="*"), []),  # no wildcard syntax leaks through
    (EventFilters(planned=True), ["pl1"]),
    (EventFilters(planned=False), [a for a in NEWEST_FIRST if a != "pl1"]),
    (EventFilters(source_prefix="demo-"), ["tr1", "dm1"]),
    (EventFilters(source_prefix="news-"), ["zy1"]),  # the reprint's source counts
    (EventFilters(types=["agreement"], party="遵义", since=date(2024, 12, 4), until=date(2024, 12, 4),
                  planned=False), [a for a in NEWEST_FIRST if a in ("zy1", "hx2")]),
]


@pytest.mark.parametrize(("filters", "expected"), FILTER_CASES)
def test_search_events_filters(engine, filters, expected):
    engine.write(RECORDS)
    engine.refresh()
    result = engine.search_events(filters)
    assert [h["article_id"] for h in result.events] == expected
    assert result.total == len(expected) == engine.count_events(filters)
    assert [h["article_id"] for h in engine.iter_events(filters)] == expected


def test_search_events_pages(engine):
    engine.write(RECORDS)
    engine.refresh()
    page = engine.search_events(limit=3, offset=2)
    assert page.total == len(NEWEST_FIRST)
    assert [h["article_id"] for h in page.events] == NEWEST_FIRST[2:5]


def test_sqlite_and_opensearch_answer_alike(opensearch_url, tmp_path):
    lite = SqliteEngine(tmp_path / "index.sqlite3")
    node, prefix = opensearch_engine(opensearch_url, tmp_path)
    try:
        for eng in (lite, node):
            eng.write(RECORDS[6:])
            eng.write(RECORDS[:6])
            eng.delete(["hx2"])
            eng.refresh()
        for filters, _ in FILTER_CASES:
            assert lite.search_events(filters) == node.search_events(filters), filters
        assert list(lite.iter_events()) == list(node.iter_events())
    finally:
        lite.close()
        node.close()
        drop_prefix(opensearch_url, prefix)


def test_stale_records_are_found_by_pipeline_version(engine):
    old = [{**r, "pipeline_version": 1} for r in RECORDS[:3]]
    engine.write([*old, *RECORDS[3:]])
    engine.refresh()
    stale = Filters(pipeline_below=2)
    assert engine.count(stale) == 3
    assert sorted(r["id"] for r in engine.iter_records(stale)) == sorted(r["id"] for r in old)
    assert engine.search(SearchRequest(parse(""), stale, limit=50)).total == 3
    assert engine.count(Filters(pipeline_below=1)) == 0


# --- validation: one record contract ---------------------------------------------------------


def test_an_invalid_record_is_refused_whole(engine):
    bad = {**R["zy1"], "id": "bad", "events": [{**R["zy1"]["events"][0], "type": "park"}]}
    with pytest.raises(ValueError, match=r"'bad'.*events\.0\.type"):
        engine.write([R["hx1"], bad])
    with pytest.raises(ValueError, match=r"'nodate'.*date_precision"):
        engine.write([{**R["hx1"], "id": "nodate",
                       "events": [{**R["hx1"]["events"][0], "date_precision": "week"}]}])
    with pytest.raises(ValueError, match="url"):
        engine.write([{"id": "x", "source_id": "s"}])
    engine.refresh()
    assert engine.count() == 0 and engine.count_events() == 0
    if isinstance(engine, SearchEngine):
        assert len(engine.spool) == 0  # refused, not parked


def test_records_are_stored_as_the_contract_has_them(engine):
    partial = {"id": "p1", "url": "https://example.gov.cn/p1.html", "source_id": "s",
               "events": [{"type": "visit", "sentence": "考察"}], "unknown": 1}
    engine.write([partial])
    engine.refresh()
    stored = engine.get("p1")
    assert set(stored) == set(Article.model_fields)
    assert set(stored["events"][0]) == set(Event.model_fields)


def test_the_field_lists_are_the_models():
    assert set(ARTICLE_PROPERTIES) == set(Article.model_fields)
    assert set(ARTICLE_PROPERTIES["regions"]["properties"]) == set(RegionCount.model_fields)
    assert set(ARTICLE_PROPERTIES["events"]["properties"]) == set(EVENT_PROPERTIES) == set(Event.model_fields)
    assert set(EVENT_DOC_PROPERTIES) == set(Happening.model_fields)
    assert set(EVENT_DOC_PROPERTIES["regions"]["properties"]) == set(RegionName.model_fields)
    assert set(REPORT_PROPERTIES) == set(EVENT_DOC_PROPERTIES["reports"]["properties"]) == set(Report.model_fields)
    # fields Kibana filters on in both indices have one name and one type
    for name in ("event_types", "source_id", "published_at", "title"):
        assert EVENT_DOC_PROPERTIES[name] == ARTICLE_PROPERTIES[name]
    assert EVENT_DOC_PROPERTIES["regions"]["properties"]["name"] == ARTICLE_PROPERTIES["regions"]["properties"]["name"]


def test_csv_columns_are_article_fields():
    from cyz.export import CSV_COLUMNS

    assert set(CSV_COLUMNS) <= set(Article.model_fields)


def test_sqlite_rows_hold_the_contract(tmp_path):
    eng = SqliteEngine(tmp_path / "index.sqlite3")
    eng.write(RECORDS)
    db = sqlite3.connect(tmp_path / "index.sqlite3")
    for (doc,) in db.execute("SELECT doc FROM events"):
        assert set(json.loads(doc)) == set(Happening.model_fields)
    for record in read_records(tmp_path / "index.sqlite3"):
        assert set(record) == set(Article.model_fields)
    reports = db.execute("SELECT count(*) FROM event_reports").fetchone()[0]
    assert reports == sum(len(h["reports"]) for h in build_happenings(RECORDS))
    db.close()
    eng.close()


# --- SQLite: an index written by the previous release ------------------------------------------

# The v1 schema as the previous release created it (frozen here: the test must not
# depend on git or on today's DDL).
V1_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS articles (
        doc          INTEGER PRIMARY KEY,
        id           TEXT NOT NULL UNIQUE,
        source_id    TEXT NOT NULL,
        published_at TEXT,
        pub_date     TEXT,
        pub_ts       REAL,
        regions      TEXT NOT NULL DEFAULT '[]',
        record       TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS articles_source ON articles (source_id)",
    "CREATE INDEX IF NOT EXISTS articles_date ON articles (pub_date)",
    "CREATE INDEX IF NOT EXISTS articles_ts ON articles (pub_ts)",
    "CREATE VIRTUAL TABLE IF NOT EXISTS articles_fts USING fts5 (title, text, tokenize = 'ascii')",
)


def write_v1_index(path: Path, records: list[dict]) -> None:
    db = sqlite3.connect(path)
    for statement in V1_SCHEMA:
        db.execute(statement)
    for n, record in enumerate(records, 1):
        # as the previous release stored them: its own pipeline version, no newer fields
        old = {k: v for k, v in record.items() if k not in ("text_truncated",)}
        old["pipeline_version"] = 1
        db.execute("INSERT INTO articles (doc, id, source_id, published_at, pub_date, pub_ts, regions, "
                   "record) VALUES (?, ?, ?, ?, ?, NULL, ?, ?)",
                   (n, record["id"], record["source_id"], record["published_at"],
                    (record["published_at"] or "")[:10] or None,
                    json.dumps([r["name"] for r in record["regions"]], ensure_ascii=False),
                    json.dumps(old, ensure_ascii=False)))
        db.execute("INSERT INTO articles_fts (rowid, title, text) VALUES (?, ?, ?)",
                   (n, cjk.index_terms(record["title"]), cjk.index_terms(record["text_zh"])))
    # an article stored with an event type the contract no longer has: kept, tells nothing
    legacy = {**records[0], "id": "legacy", "pipeline_version": 1,
              "events": [{"type": "park", "sentence": "共建园区"}]}
    db.execute("INSERT INTO articles (id, source_id, published_at, regions, record) VALUES (?, ?, ?, ?, ?)",
               ("legacy", "zunyi-gov", None, "[]", json.dumps(legacy, ensure_ascii=False)))
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()


def test_a_v1_index_migrates_in_place(tmp_path):
    path = tmp_path / "index.sqlite3"
    write_v1_index(path, RECORDS)
    eng = SqliteEngine(path)
    assert eng.schema_version == SCHEMA_VERSION
    assert eng.count() == len(RECORDS) + 1  # nothing lost
    assert eng.get("zy1")["events"] == R["zy1"]["events"]
    assert {r["id"] for r in eng.iter_records(Filters(regions=["遵义"]))} == set(R)
    # every stored record is indexed again from its text, the one the v1 file left out too
    assert eng.search(SearchRequest(parse("遵义"), limit=50)).total == len(RECORDS) + 1
    # the happenings were rebuilt from the stored articles
    assert snapshot(eng) == {h["event_id"]: h for h in build_happenings(RECORDS)}
    # every stored record is stale for this pipeline; a rewritten one is not
    assert eng.count(Filters(pipeline_below=2)) == len(RECORDS) + 1
    # v3: stored records count as indexed when they last changed; a write stamps anew
    before = indexed_now()
    assert eng.count(Filters(indexed_since=before)) == 0
    eng.write([R["zy1"]])
    assert [r["id"] for r in eng.iter_records(Filters(indexed_since=before))] == ["zy1"]
    assert eng.count(Filters(pipeline_below=2)) == len(RECORDS)
    assert snapshot(eng) == {h["event_id"]: h for h in build_happenings(RECORDS)}
    eng.close()
    again = SqliteEngine(path)  # a second open migrates nothing
    assert again.schema_version == SCHEMA_VERSION and again.count_events() == len(EXPECTED)
    again.close()


# --- OpenSearch: the events index -----------------------------------------------------------


def _put(url: str, path: str, body: object) -> dict:
    request = urllib.request.Request(f"{url}{path}", data=json.dumps(body).encode(), method="PUT",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


def _get(url: str, path: str) -> dict:
    with urllib.request.urlopen(f"{url}{path}", timeout=30) as response:
        return json.load(response)


# The events mapping of the previous release: one document per mention, regions a keyword.
V1_EVENT_PROPERTIES = {
    "type": {"type": "keyword"},
    "date": {"type": "date", "format": "strict_date_optional_time||yyyy-MM||yyyy", "ignore_malformed": True},
    "date_precision": {"type": "keyword"}, "parties": {"type": "keyword"}, "places": {"type": "keyword"},
    "amount_yuan": {"type": "double"}, "sentence": {"type": "text"}, "planned": {"type": "boolean"},
    "event_id": {"type": "keyword"}, "article_id": {"type": "keyword"}, "url": {"type": "keyword"},
    "title": {"type": "text"}, "source_id": {"type": "keyword"}, "source_name": {"type": "keyword"},
    "published_at": {"type": "date"}, "regions": {"type": "keyword"},
}


def test_an_older_events_index_is_rebuilt_from_the_articles(opensearch_url, tmp_path):
    url = opensearch_url
    eng, prefix = opensearch_engine(url, tmp_path)
    articles, events = f"{prefix}-articles", f"{prefix}-events"
    try:
        # what the previous release left: its events template and index, and articles
        _put(url, f"/_index_template/{events}", {
            "index_patterns": [f"{events}-v*"], "priority": 100,
            "template": {"mappings": {"dynamic": "false", "properties": V1_EVENT_PROPERTIES}}})
        _put(url, f"/{events}-v1", {"aliases": {events: {}}})
        _put(url, f"/{events}-v1/_doc/zy1-0?refresh=true", {
            "event_id": "zy1-0", "article_id": "zy1", "type": "agreement", "regions": ["遵义"]})
        _put(url, f"/_index_template/{articles}", article_template(articles))
        _put(url, f"/{articles}-v1", {"aliases": {articles: {}}})
        for record in RECORDS:
            _put(url, f"/{articles}-v1/_doc/{record['id']}", record)
        eng.init()  # the current mapping cannot join the old index: rebuilt, alias moved
        assert sorted(_get(url, f"/_alias/{events}")) == [f"{events}-v2"]
        assert f"{events}-v1" not in _get(url, f"/{events}-v*/_settings/index.creation_date")
        mapping = _get(url, f"/{events}/_mapping")[f"{events}-v2"]["mappings"]
        assert mapping["properties"]["regions"]["properties"]["name"]["type"] == "keyword"
        assert mapping["_meta"]["cyz_events_version"] == 2
        assert snapshot(eng) == {h["event_id"]: h for h in build_happenings(RECORDS)}
        assert eng.search_events(EventFilters(regions=["成都"])).total == 2
        # writes go on into the new index; a later init leaves it alone
        eng.delete(["tr1"])
        eng.close()
        again = SearchEngine(OpenSearchClient.from_env({"CYZ_OPENSEARCH_URL": url}), tmp_path, prefix)
        again.init()
        assert sorted(_get(url, f"/_alias/{events}")) == [f"{events}-v2"]
        assert again.count_events() == len(EXPECTED) - 1
        again.close()
    finally:
        drop_prefix(url, prefix)


def test_migrate_rebuilds_the_events(opensearch_url, tmp_path):
    eng, prefix = opensearch_engine(opensearch_url, tmp_path)
    try:
        eng.write(RECORDS)
        eng.refresh()
        before = snapshot(eng)
        moved = eng.migrate(drop_old=True)
        assert moved[f"{prefix}-events"] == {"from": f"{prefix}-events-v{MAPPING_VERSION}",
                                             "to": f"{prefix}-events-v{MAPPING_VERSION + 1}",
                                             "dropped_old": True, "documents": len(EXPECTED)}
        assert snapshot(eng) == before
        eng.write([{**R["hx2"], "events": []}])  # writes land in the new version
        assert eng.count_events() == len(EXPECTED) - 1
    finally:
        eng.close()
        drop_prefix(opensearch_url, prefix)


def test_spooled_records_get_their_happenings_when_replayed(opensearch_url, tmp_path):
    prefix = f"cyzt{secrets.token_hex(4)}"
    down = SearchEngine(OpenSearchClient.from_env({"CYZ_OPENSEARCH_URL": "http://127.0.0.1:9"}),
                        tmp_path, prefix)
    down.write(RECORDS[:5])
    down.write(RECORDS[3:])
    assert not down.online and len(down.spool) == len(RECORDS) + 2
    down.close()
    up = SearchEngine(OpenSearchClient.from_env({"CYZ_OPENSEARCH_URL": opensearch_url}), tmp_path, prefix)
    try:
        up.init()
        up.refresh()
        assert len(up.spool) == 0
        assert snapshot(up) == {h["event_id"]: h for h in build_happenings(RECORDS)}
    finally:
        up.close()
        drop_prefix(opensearch_url, prefix)


def test_a_rejected_happening_parks_its_articles(tmp_path):
    """A happening the engine refuses parks the batch's articles that report it (their
    replay plans it again); the other happenings are written."""
    from http_recorder import FakeElasticsearch

    from cyz.index.elasticsearch import ElasticsearchClient

    happenings = build_happenings(RECORDS)
    signing = next(h["event_id"] for h in happenings if h["report_count"] == 3)
    with FakeElasticsearch(reject={signing: (400, "mapper_parsing_exception")}) as fake:
        eng = SearchEngine(ElasticsearchClient.from_env({"CYZ_ES_URL": fake.url}), tmp_path, "cyzes")
        eng.write(RECORDS)
        parked = sorted(e["record"]["id"] for e in eng.spool.take())
        eng.spool.done()
        assert parked == ["hx1", "tw1", "zy1"]
        assert len(fake.indices[f"cyzes-articles-v{MAPPING_VERSION}"]) == len(RECORDS)
        assert sorted(fake.indices[f"cyzes-events-v{MAPPING_VERSION}"]) == sorted(h["event_id"] for h in happenings
                                                                 if h["event_id"] != signing)
        assert fake.faults == []
        eng.close()


def test_iter_events_pages_through_many_happenings(engine):
    many = [article(f"m{i:04d}", f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}T09:00:00+08:00",
                    [event("visit", None if i % 5 == 0 else f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}",
                           parties=(f"代表团{i:04d}",), places=(f"地点{i:04d}",), key=f"考察{i}号")])
            for i in range(1203)]
    engine.write(many)
    engine.refresh()
    seen = [h["event_id"] for h in engine.iter_events()]
    assert len(seen) == len(set(seen)) == 1203 == engine.count_events()
    assert seen == [h["event_id"] for h in engine.search_events(limit=2000).events]
