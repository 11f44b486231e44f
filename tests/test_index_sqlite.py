"""The embedded SQLite/FTS5 engine, on real SQLite files."""

from __future__ import annotations

import json
import sqlite3
from datetime import date
from pathlib import Path

import pytest

from cyz.index import open_engine
from cyz.index.base import Filters, SearchRequest
from cyz.index.cjk import to_simplified
from cyz.index.query import QueryError, parse
from cyz.index.sqlite import SCHEMA_VERSION, SqliteEngine
from cyz.record import Article


def article(
    rid: str,
    title: str,
    text: str,
    *,
    source_id: str = "zunyi-gov",
    published_at: str | None = "2024-11-27T10:31:00+08:00",
    regions: tuple[str, ...] = (),
) -> dict:
    # Like the normalize stage: the simplified copies are what gets indexed.
    return Article(
        id=rid,
        url=f"https://example.gov.cn/{rid}.html",
        source_id=source_id,
        title=title,
        text=text,
        title_zh=to_simplified(title),
        text_zh=to_simplified(text),
        published_at=published_at,
        regions=[{"name": r, "count": 1} for r in regions],
    ).model_dump()


CORPUS = [
    article(
        "zy1",
        "遵义市与重庆市签署合作协议",
        "11月27日，遵义市与重庆市在重庆签署战略合作协议，推进成渝地区双城经济圈建设。",
        regions=("遵义", "重庆"),
    ),
    article(
        "tw1",
        "遵義與重慶深化合作",
        "遵義市代表團赴重慶考察，雙方就交通互聯達成共識。",
        source_id="news-tw",
        published_at="2024-10-01T09:00:00+08:00",
        regions=("遵义", "重庆"),
    ),
    article(
        "cd1",
        "成都高新区产业发展",
        "成都高新区发布产业政策，支持企业发展。Chengdu hi-tech zone policy.",
        source_id="chengdu-news",
        published_at="2024-09-15T08:00:00+08:00",
        regions=("成都",),
    ),
    article(
        "body",
        "交通建设新闻",
        "本周，多个项目开工。其中一条高速公路连接成渝两地，另有遵义段同步施工。",
        source_id="demo-news",
        published_at="2024-11-28T00:30:00+08:00",
        regions=("遵义",),
    ),
]


@pytest.fixture
def engine(tmp_path: Path):
    eng = SqliteEngine(tmp_path / "index.sqlite3")
    eng.init()
    eng.write(CORPUS)
    yield eng
    eng.close()


def ids(engine, text, **filters):
    result = engine.search(SearchRequest(parse(text), Filters(**filters), limit=50))
    assert result.total == len(result.hits)
    return {h.record["id"] for h in result.hits}


def test_two_char_words(engine):
    assert ids(engine, "遵义") == {"zy1", "tw1", "body"}
    assert ids(engine, "成渝") == {"zy1", "body"}
    assert ids(engine, "遵义 成渝") == {"zy1", "body"}


def test_one_char_query_matches_anywhere_in_a_run(engine):
    # 渝 is never first in its run (成渝地区, 成渝两地): it starts the bigram 渝地/渝两.
    assert ids(engine, "渝") == {"zy1", "body"}
    # 展 is the last character of a run (…支持企业发展。), 考 sits inside one.
    assert "cd1" in ids(engine, "展")
    assert ids(engine, "考") == {"tw1"}


def test_phrase_must_be_contiguous(engine):
    assert ids(engine, "遵义 重庆 签署") == {"zy1"}
    assert ids(engine, '"重庆签署"') == {"zy1"}
    # Both words are in zy1 but never side by side.
    assert ids(engine, "遵义 协议") == {"zy1"}
    assert ids(engine, '"遵义协议"') == set()
    # A phrase spanning punctuation matches like FTS sees it: tokens in sequence.
    assert ids(engine, '"重庆签署战略合作协议，推进"') == {"zy1"}


def test_cjk_word_is_contiguous_without_quotes(engine):
    # 成渝 and 两地 are both in `body`; 成两 is not a substring anywhere.
    assert ids(engine, "成两") == set()
    assert ids(engine, "成渝两地") == {"body"}


def test_latin_words(engine):
    assert ids(engine, "chengdu") == {"cd1"}
    assert ids(engine, "CHENGDU Policy") == {"cd1"}
    assert ids(engine, '"hi-tech zone"') == {"cd1"}
    assert ids(engine, "cheng") == set()  # whole words only


def test_or(engine):
    assert ids(engine, "成都 OR 考察") == {"cd1", "tw1"}
    assert ids(engine, "遵义 签署 OR 考察") == {"zy1", "tw1"}


def test_simplified_and_traditional_find_each_other(engine):
    assert ids(engine, "遵义") == ids(engine, "遵義") == {"zy1", "tw1", "body"}
    assert ids(engine, "重庆") == ids(engine, "重慶") == {"zy1", "tw1"}
    assert ids(engine, "代表团") == {"tw1"}
    assert ids(engine, '"雙城經濟圈"') == {"zy1"}


def test_filters(engine):
    assert ids(engine, "遵义", regions=["重庆"]) == {"zy1", "tw1"}
    assert ids(engine, "遵义", regions=["重慶"]) == {"zy1", "tw1"}
    assert ids(engine, "", regions=["成都", "重庆"]) == {"zy1", "tw1", "cd1"}
    assert ids(engine, "遵义", sources=["news-tw", "demo-news"]) == {"tw1", "body"}
    assert ids(engine, "", source_prefix="demo-") == {"body"}
    assert ids(engine, "", source_prefix="demo_") == set()
    assert ids(engine, "", since=date(2024, 11, 27)) == {"zy1", "body"}
    assert ids(engine, "", until=date(2024, 10, 1)) == {"tw1", "cd1"}
    assert ids(engine, "遵义", since=date(2024, 10, 1), until=date(2024, 11, 27)) == {"zy1", "tw1"}
    # The calendar day is the page's own: 00:30 +08:00 on the 28th is still the 28th.
    assert ids(engine, "", since=date(2024, 11, 28), until=date(2024, 11, 28)) == {"body"}


def test_empty_query_is_newest_first(engine):
    result = engine.search(SearchRequest(parse(""), limit=10))
    assert [h.record["id"] for h in result.hits] == ["body", "zy1", "tw1", "cd1"]
    assert result.total == 4


def test_total_counts_all_matches_and_paging(engine):
    first = engine.search(SearchRequest(parse("遵义"), limit=2))
    rest = engine.search(SearchRequest(parse("遵义"), limit=2, offset=2))
    assert first.total == rest.total == 3
    assert len(first.hits) == 2 and len(rest.hits) == 1
    assert {h.record["id"] for h in first.hits + rest.hits} == {"zy1", "tw1", "body"}


def test_title_match_ranks_above_body_only_match(tmp_path):
    eng = SqliteEngine(tmp_path / "rank.sqlite3")
    filler = "会议还研究了其他事项。" * 3
    eng.write(
        [
            article("body-only", "工作会议召开", filler + "会上提到遵义的交通项目。" + filler),
            article("in-title", "遵义交通项目推进", filler + "会上提到遵义的交通项目。" + filler),
        ]
    )
    result = eng.search(SearchRequest(parse("遵义")))
    assert [h.record["id"] for h in result.hits] == ["in-title", "body-only"]
    assert result.hits[0].score > result.hits[1].score
    assert all(isinstance(h.score, float) for h in result.hits)
    eng.close()


def test_snippet_is_in_original_script_with_marks(engine):
    hit = engine.search(SearchRequest(parse("重庆 考察"), Filters(sources=["news-tw"]))).hits[0]
    assert hit.snippet == "遵義市代表團赴【重慶】【考察】，雙方就交通互聯達成共識。"
    hit = engine.search(SearchRequest(parse('"成渝地区"'), Filters(sources=["zunyi-gov"]))).hits[0]
    assert "【成渝地区】" in hit.snippet


def test_snippet_window_around_first_match(tmp_path):
    eng = SqliteEngine(tmp_path / "snip.sqlite3")
    text = "前" * 300 + "遵義" + "後" * 300
    eng.write([article("long", "标题", text)])
    snippet = eng.search(SearchRequest(parse("遵义"))).hits[0].snippet
    assert "【遵義】" in snippet
    assert snippet.startswith("…") and snippet.endswith("…")
    assert 100 <= len(snippet) <= 130
    eng.close()


def test_snippet_falls_back_to_title_then_text(engine):
    # 签署合作协议 is in zy1's title and its body (with 战略 between): title marked.
    hit = engine.search(SearchRequest(parse('"签署合作协议"'))).hits[0]
    assert hit.snippet == "遵义市与重庆市【签署合作协议】"
    # 成渝 without a query: the start of the body.
    hit = engine.search(SearchRequest(parse(""), Filters(sources=["demo-news"]))).hits[0]
    assert hit.snippet.startswith("本周，多个项目开工。")


def test_rewrite_same_id_updates_not_duplicates(engine):
    changed = dict(CORPUS[0], title="遵义市与重庆市签署协议（更新）", text="更新后的正文提到贵阳。")
    changed["title_zh"], changed["text_zh"] = changed["title"], changed["text"]
    assert engine.write([changed, changed]) == 2
    assert engine.count() == 4
    assert engine.get("zy1")["text"] == "更新后的正文提到贵阳。"
    assert ids(engine, "贵阳") == {"zy1"}
    assert ids(engine, "成渝") == {"body"}  # the old body's tokens are gone


def test_nasty_input_never_raises_but_a_query_error(engine):
    for text in [
        '"',
        '"遵义',
        "*",
        "AND",
        "OR",
        "NOT",
        "NEAR(",
        "NEAR(遵义 重庆)",
        "-",
        ":",
        "title:遵义",
        "遵义*",
        "-遵义",
        "^遵义",
        "(遵义",
        "遵义)",
        "'",
        "\\",
        "+",
        "{a}",
        "遵义 AND 重庆",
        "遵义 NOT 重庆",
        "\x00",
        "　",
        "遵义 : -",
    ]:
        try:
            query = parse(text)
        except QueryError:  # a query that can mean nothing: the user is told so
            continue
        result = engine.search(SearchRequest(query))
        assert result.total == len(result.hits)
    assert ids(engine, "遵义 : -") == {"zy1", "tw1", "body"}
    assert ids(engine, "遵义 NOT 重庆") == {"body"}  # tw1 says 重慶


def test_count_get_delete_iter(engine):
    assert engine.count() == 4
    assert engine.count(Filters(regions=["遵义"])) == 3
    assert engine.get("cd1")["title"] == "成都高新区产业发展"
    assert engine.get("nope") is None
    assert {r["id"] for r in engine.iter_records(Filters(source_prefix="demo-"))} == {"body"}
    assert engine.delete(["body", "body", "nope"]) == 1
    assert engine.count() == 3
    assert ids(engine, "遵义") == {"zy1", "tw1"}
    assert engine.delete([]) == 0
    assert sorted(r["id"] for r in engine.iter_records()) == ["cd1", "tw1", "zy1"]


def test_iter_records_in_batches_while_writing(tmp_path):
    eng = SqliteEngine(tmp_path / "many.sqlite3")
    eng.write(article(f"a{i}", f"标题{i}", "遵义", source_id="demo-x") for i in range(1203))
    seen = []
    for record in eng.iter_records():
        seen.append(record["id"])
        record["title"] += "！"
        eng.write([record])  # reextract rewrites as it goes
    assert len(seen) == len(set(seen)) == 1203
    assert eng.count() == 1203
    eng.close()


def test_record_round_trips(engine):
    stored = engine.get("tw1")
    # the engine stamps when it wrote the record (what alert rules go by), nothing else
    assert stored.pop("indexed_at") > "2020"
    assert stored == {k: v for k, v in CORPUS[1].items() if k != "indexed_at"}


def test_schema_version_and_wal(tmp_path):
    path = tmp_path / "v.sqlite3"
    eng = SqliteEngine(path)
    eng.init()
    eng.init()
    assert eng.schema_version == SCHEMA_VERSION
    eng.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(RuntimeError, match="schema version"):
        SqliteEngine(path).init()


def test_second_connection_reads_while_a_writer_holds_the_lock(tmp_path):
    path = tmp_path / "shared.sqlite3"
    writer = SqliteEngine(path)
    writer.write(CORPUS)
    # Another process in the middle of a write transaction.
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    other.execute("UPDATE articles SET source_id = 'x'")
    reader = SqliteEngine(path)
    assert ids(reader, "遵义") == {"zy1", "tw1", "body"}
    assert reader.count(Filters(sources=["x"])) == 0
    other.execute("COMMIT")
    assert reader.count(Filters(sources=["x"])) == 4
    other.close()
    reader.close()
    writer.close()


def test_open_engine(tmp_path, monkeypatch):
    eng = open_engine("sqlite", data_dir=tmp_path)
    assert isinstance(eng, SqliteEngine) and eng.path == tmp_path / "index.sqlite3"
    monkeypatch.setenv("CYZ_DATA_DIR", str(tmp_path / "d"))
    monkeypatch.delenv("CYZ_ENGINE", raising=False)
    assert open_engine().path == tmp_path / "d" / "index.sqlite3"
    monkeypatch.setenv("CYZ_ENGINE", "opensearch")
    monkeypatch.delenv("CYZ_OPENSEARCH_URL", raising=False)
    with pytest.raises(ValueError, match="CYZ_OPENSEARCH_URL"):
        open_engine()
    monkeypatch.delenv("CYZ_ES_URL", raising=False)
    with pytest.raises(ValueError, match="CYZ_ES_URL"):
        open_engine("elasticsearch")
    with pytest.raises(ValueError, match="sqlite, elasticsearch, opensearch"):
        open_engine("solr")


def test_write_needs_id_and_source(tmp_path):
    eng = SqliteEngine(tmp_path / "bad.sqlite3")
    with pytest.raises(ValueError):
        eng.write([{"id": "x", "title": "t"}])
    assert eng.count() == 0
    eng.close()


# --- v5: a contentless FTS index kept in step with the stored records -----------------


def indexed_tokens(path: Path) -> set[tuple]:
    """Every (token, article id, column, position) the FTS index holds (fts5vocab)."""
    db = sqlite3.connect(path)
    try:
        db.execute("CREATE VIRTUAL TABLE temp.vocab USING fts5vocab(main, articles_fts, instance)")
        ids_by_doc = dict(db.execute("SELECT doc, id FROM articles"))
        rows = db.execute("SELECT term, doc, col, offset FROM temp.vocab").fetchall()
    finally:
        db.close()
    return {(term, ids_by_doc.get(doc, f"orphan {doc}"), col, offset)
            for term, doc, col, offset in rows}


def assert_index_matches_records(engine, tmp_path):
    """The engine's FTS index holds exactly what a fresh index of its records would."""
    fresh = SqliteEngine(tmp_path / "fresh.sqlite3")
    fresh.write(list(engine.iter_records()))
    fresh.close()
    engine.close()
    assert indexed_tokens(engine.path) == indexed_tokens(fresh.path)
    (tmp_path / "fresh.sqlite3").unlink()


def test_no_second_copy_of_the_text(engine):
    db = sqlite3.connect(engine.path)
    tables = {name for (name,) in db.execute("SELECT name FROM sqlite_master")}
    columns = {row[1] for row in db.execute("PRAGMA table_info(articles)")}
    db.close()
    assert "articles_fts_content" not in tables  # contentless
    assert "record" not in columns  # records live compressed in `records`
    assert engine.get("zy1")["text"] == CORPUS[0]["text"]


def test_updates_gone_records_and_deletes_keep_the_index_in_step(engine, tmp_path):
    # an update: the old body's tokens leave the index, the new ones come in
    changed = dict(CORPUS[0], text="正文改写，提到贵阳与毕节。")
    changed["text_zh"] = changed["text"]
    engine.write([changed])
    assert ids(engine, "贵阳") == {"zy1"}
    assert ids(engine, "成渝") == {"body"}
    assert ids(engine, "遵义") == {"zy1", "tw1", "body"}  # the title still says it
    # a gone page: kept and marked, still found, its tokens not doubled
    gone = dict(engine.get("cd1"), gone_at="2024-12-01T00:00:00+08:00")
    engine.write([gone, gone])
    assert engine.get("cd1")["gone_at"] == "2024-12-01T00:00:00+08:00"
    assert ids(engine, "高新区") == {"cd1"}
    # the same id twice in a batch with different texts: the last one wins
    first = dict(CORPUS[1], text="第一稿：茅台", text_zh="第一稿：茅台")
    second = dict(CORPUS[1], text="第二稿：赤水", text_zh="第二稿：赤水")
    engine.write([first, second])
    assert ids(engine, "茅台") == set()
    assert ids(engine, "赤水") == {"tw1"}
    # a deletion takes its tokens along
    assert engine.delete(["body"]) == 1
    assert ids(engine, "开工") == set()
    assert_index_matches_records(engine, tmp_path)


def test_a_changed_tokenizer_rebuilds_the_index_on_open(engine, tmp_path):
    db = sqlite3.connect(engine.path)
    db.execute("UPDATE meta SET value = 'an older tokenizer' WHERE key = 'fts_tokens'")
    # what an older tokenizer might have left: tokens no record has
    db.execute("INSERT INTO articles_fts (rowid, title, text) VALUES (1, '贵阳', '贵阳')")
    db.commit()
    db.close()
    engine.close()
    reopened = SqliteEngine(engine.path)
    assert ids(reopened, "贵阳") == set()
    assert ids(reopened, "遵义") == {"zy1", "tw1", "body"}
    assert_index_matches_records(reopened, tmp_path)


# The v4 schema as the previous release created it (frozen here: the test must not depend
# on git or on today's DDL). v4 stored the token strings in the FTS table and the JSON
# record in `articles`, with the v2-v4 columns after it.
V4_SCHEMA = (
    """CREATE TABLE articles (
        doc INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, source_id TEXT NOT NULL,
        published_at TEXT, pub_date TEXT, pub_ts REAL, regions TEXT NOT NULL DEFAULT '[]',
        record TEXT NOT NULL, pipeline_version INTEGER, indexed_at TEXT,
        relevance REAL NOT NULL DEFAULT 0, topics TEXT NOT NULL DEFAULT '[]', cluster_id TEXT)""",
    "CREATE INDEX articles_source ON articles (source_id)",
    "CREATE INDEX articles_date ON articles (pub_date)",
    "CREATE INDEX articles_ts ON articles (pub_ts)",
    "CREATE INDEX articles_pipeline ON articles (pipeline_version)",
    "CREATE INDEX articles_indexed ON articles (indexed_at)",
    "CREATE INDEX articles_cluster ON articles (cluster_id)",
    "CREATE VIRTUAL TABLE articles_fts USING fts5 (title, text, tokenize = 'ascii')",
    """CREATE TABLE events (
        event_id TEXT PRIMARY KEY, type TEXT NOT NULL, planned INTEGER NOT NULL,
        date_from TEXT, date_to TEXT, first_day TEXT, day_from TEXT, day_to TEXT,
        regions TEXT NOT NULL DEFAULT '[]', parties TEXT NOT NULL DEFAULT '', doc TEXT NOT NULL)""",
    "CREATE INDEX events_dates ON events (type, date_from, date_to)",
    "CREATE INDEX events_first ON events (type, first_day)",
    "CREATE INDEX events_order ON events (day_from DESC, event_id)",
    """CREATE TABLE event_reports (
        event_id TEXT NOT NULL, article_id TEXT NOT NULL, cluster_id TEXT,
        source_id TEXT NOT NULL, PRIMARY KEY (event_id, article_id)) WITHOUT ROWID""",
    "CREATE INDEX event_reports_article ON event_reports (article_id)",
    "CREATE INDEX event_reports_cluster ON event_reports (cluster_id)",
)


def write_v4_index(path: Path, records: list[dict]) -> None:
    from cyz.index import cjk

    db = sqlite3.connect(path)
    for statement in V4_SCHEMA:
        db.execute(statement)
    for n, record in enumerate(records, 1):
        record = {**record, "indexed_at": "2024-11-28T00:00:00+00:00"}
        db.execute(
            "INSERT INTO articles (doc, id, source_id, published_at, pub_date, pub_ts, regions, "
            "record, pipeline_version, indexed_at, relevance, topics, cluster_id) "
            "VALUES (?, ?, ?, ?, ?, NULL, ?, ?, 0, ?, 0, '[]', NULL)",
            (n, record["id"], record["source_id"], record["published_at"],
             (record["published_at"] or "")[:10] or None,
             json.dumps([r["name"] for r in record["regions"]], ensure_ascii=False),
             json.dumps(record, ensure_ascii=False), record["indexed_at"]))
        db.execute("INSERT INTO articles_fts (rowid, title, text) VALUES (?, ?, ?)",
                   (n, cjk.index_terms(record["title_zh"]), cjk.index_terms(record["text_zh"])))
    db.execute("PRAGMA user_version = 4")
    db.commit()
    db.close()


def test_a_v4_index_migrates_in_place(tmp_path):
    path = tmp_path / "index.sqlite3"
    write_v4_index(path, CORPUS)
    eng = SqliteEngine(path)
    assert eng.schema_version == SCHEMA_VERSION
    # the same answers as an index written today, snippets included
    fresh = SqliteEngine(tmp_path / "today.sqlite3")
    fresh.write(CORPUS)
    for text in ["遵义", "渝", "成渝", '"双城经济圈"', "遵義 -重庆", "hi-tech", "高新区 OR 考察"]:
        old = eng.search(SearchRequest(parse(text), limit=10))
        new = fresh.search(SearchRequest(parse(text), limit=10))
        assert old.total == new.total > 0, text
        assert [(h.record["id"], h.snippet) for h in old.hits] == \
            [(h.record["id"], h.snippet) for h in new.hits], text
    fresh.close()
    assert eng.get("tw1")["title"] == "遵義與重慶深化合作"
    db = sqlite3.connect(path)
    assert "record" not in {row[1] for row in db.execute("PRAGMA table_info(articles)")}
    assert db.execute("SELECT count(*) FROM records").fetchone()[0] == len(CORPUS)
    db.close()
    # and it is written like any other from now on
    changed = dict(CORPUS[0], text="迁移之后改写的正文。", text_zh="迁移之后改写的正文。")
    eng.write([changed])
    eng.delete(["cd1"])
    assert ids(eng, "迁移") == {"zy1"}
    assert ids(eng, "成渝") == {"body"}
    assert ids(eng, "高新区") == set()
    assert_index_matches_records(eng, tmp_path)


def test_read_records_reads_the_file_without_an_engine(engine, tmp_path):
    from cyz.index.sqlite import read_records

    engine.close()
    assert sorted(r["id"] for r in read_records(engine.path)) == sorted(r["id"] for r in CORPUS)
    write_v4_index(tmp_path / "v4.sqlite3", CORPUS)  # an older file, left as it is
    assert [r["title"] for r in read_records(tmp_path / "v4.sqlite3")] == \
        [r["title"] for r in CORPUS]
