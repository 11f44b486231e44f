"""The shared query syntax (`cyz.index.query`) and its translation to FTS5 MATCH text."""

from __future__ import annotations

import sqlite3

import pytest

from cyz.index.cjk import index_terms, query_terms
from cyz.index.query import Term, parse
from cyz.index.sqlite import fts_expression


def test_words_are_anded():
    assert parse("遵义 重庆").clauses == [[Term("遵义")], [Term("重庆")]]


def test_phrase_keeps_inner_spaces_normalized():
    assert parse('"成渝地区  双城经济圈" 签约').clauses == [
        [Term("成渝地区 双城经济圈", phrase=True)],
        [Term("签约")],
    ]


def test_or_joins_neighbours():
    q = parse("遵义 签约 OR 协议 OR 备忘录")
    assert q.clauses == [[Term("遵义")], [Term("签约"), Term("协议"), Term("备忘录")]]


def test_leading_or_and_stray_quote():
    q = parse('OR 遵义 "成渝')
    assert q.clauses == [[Term("遵义")], [Term("成渝", phrase=True)]]


def test_empty_query():
    assert parse("").is_empty
    assert parse('  ""  ').is_empty
    assert parse("OR").is_empty


def test_cjk_index_terms_are_bigrams_with_trailing_char():
    assert index_terms("成渝合作") == "成渝 渝合 合作 作"
    assert index_terms("一") == "一"
    # Full-width forms fold, Latin lowercases, traditional becomes simplified.
    assert index_terms("遵義ＡＢＣ，5G網絡") == "遵义 义 abc 5g 网络 络"


def test_query_terms_drop_trailing_char_of_last_run():
    assert query_terms("遵义") == ["遵义"]
    assert query_terms("遵義") == ["遵义"]
    assert query_terms("渝") == ["渝"]
    assert query_terms("成都 市") == ["成都", "都", "市"]
    assert query_terms("Chengdu-Chongqing") == ["chengdu", "chongqing"]
    assert query_terms("*:-") == []


def test_query_tokens_occur_contiguously_in_index_tokens():
    # A term found in a text must be a contiguous run of that text's tokens.
    text = "贵州遵义市与重庆市签署合作协议，推进成渝地区双城经济圈建设"
    tokens = index_terms(text).split()
    for term in ["遵义", "遵义市", "重庆市签署", "协议，推进", "双城经济圈建设"]:
        q = query_terms(term)
        assert any(tokens[i : i + len(q)] == q for i in range(len(tokens))), term


@pytest.mark.parametrize(
    "text",
    [
        '"',
        '""',
        "*",
        "AND",
        "NEAR(",
        "NEAR(a b)",
        "-",
        ":",
        "a:b",
        "遵义 -重庆",
        "^x",
        "(",
        ")",
        "title:遵义",
        "OR",
        "NOT 遵义",
        "遵义*",
        '"遵义" OR "',
        "{}",
        "'",
        "\\",
        "a + b",
    ],
)
def test_fts_expression_is_always_valid_fts5(text):
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(title, text, tokenize='ascii')")
    db.execute("INSERT INTO t VALUES (?, ?)", ("遵义", index_terms("遵义 and near title a b x")))
    expression = fts_expression(parse(text))
    if expression is not None:
        db.execute("SELECT rowid FROM t WHERE t MATCH ?", (expression,)).fetchall()


def test_fts_expression_shape():
    assert fts_expression(parse("遵义 签约 OR 协议")) == '("遵义") AND ("签约" OR "协议")'
    assert fts_expression(parse("渝")) == '("渝" *)'
    assert fts_expression(parse("* -")) is None
