"""The shared query syntax (`cyz.index.query`) and its translation to FTS5 MATCH text."""

from __future__ import annotations

import sqlite3

import pytest

from cyz.index.cjk import index_terms, query_terms
from cyz.index.query import MAX_QUERY_CHARS, QueryError, Term, parse
from cyz.index.sqlite import exclusion_expression, fts_expression


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


@pytest.mark.parametrize("word", ["or", "Or", "oR", "OR"])
def test_or_in_any_case(word):
    assert parse(f"赤水 {word} 仁怀").clauses == [[Term("赤水"), Term("仁怀")]]
    assert parse(f'"{word}"').clauses == [[Term(word, phrase=True)]]  # quoted: a word


def test_leading_or_and_stray_quote():
    q = parse('OR 遵义 "成渝')
    assert q.clauses == [[Term("遵义")], [Term("成渝", phrase=True)]]


@pytest.mark.parametrize(("text", "excluded"), [
    ("遵义 -重庆", [Term("重庆")]),
    ("遵义 NOT 重庆", [Term("重庆")]),
    ("遵义 not 重庆", [Term("重庆")]),
    ('遵义 -"成渝 地区"', [Term("成渝 地区", phrase=True)]),
    ('遵义 NOT "成渝地区" -招聘 -招聘', [Term("成渝地区", phrase=True), Term("招聘")]),
])
def test_exclusions(text, excluded):
    q = parse(text)
    assert q.clauses == [[Term("遵义")]] and q.exclude == excluded
    assert q.terms() == [Term("遵义")]  # snippets never mark an excluded word


def test_only_exclusions_mean_everything_without_them():
    q = parse("-重庆 NOT 成都")
    assert q.clauses == [] and q.exclude == [Term("重庆"), Term("成都")]
    assert not q.is_empty and not q.has_words


def test_dashes_inside_a_word_and_lone_dashes_are_not_exclusions():
    assert parse("Chengdu-Chongqing").clauses == [[Term("Chengdu-Chongqing")]]
    q = parse("遵义 - 合作")
    assert q.clauses == [[Term("遵义")], [Term("合作")]] and q.exclude == []


def test_terms_without_searchable_characters_are_dropped():
    assert parse("遵义 * :").clauses == [[Term("遵义")]]
    assert parse("遵义 OR *").clauses == [[Term("遵义")]]
    assert parse("遵义 -*").exclude == []


def test_empty_query_is_browse():
    for text in ("", "   ", "\u3000", None):
        q = parse(text)
        assert q.is_empty and q.clauses == [] and q.exclude == []


@pytest.mark.parametrize(("text", "message"), [
    ('"', "empty phrase"),
    ('  ""  ', "empty phrase"),
    ('遵义 ""', "empty phrase"),
    ("OR", "nothing to search for"),
    ("or OR", "nothing to search for"),
    ("NOT", "NOT must be followed"),
    ("遵义 NOT", "NOT must be followed"),
    ("NOT OR 遵义", "NOT must be followed"),
    ("*", "nothing to search for"),
    ("- :", "nothing to search for"),
    ("遵义 OR -重庆", "cannot be an alternative"),
    ("-重庆 OR 遵义", "cannot be an alternative"),
    ("遵义 OR NOT 重庆", "cannot be an alternative"),
])
def test_queries_that_mean_nothing_are_errors(text, message):
    with pytest.raises(QueryError, match=message) as raised:
        parse(text)
    assert isinstance(raised.value, ValueError) and "\n" not in str(raised.value)


def test_long_queries_are_errors():
    parse("遵" * MAX_QUERY_CHARS)
    with pytest.raises(QueryError, match=f"at most {MAX_QUERY_CHARS}"):
        parse("遵" * (MAX_QUERY_CHARS + 1))
    with pytest.raises(QueryError):
        parse("遵义 " * 3000)  # a 10 KB query is refused at once


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
        "AND",
        "NEAR(",
        "NEAR(a b)",
        "a:b",
        "遵义 -重庆",
        "-重庆",
        "^x",
        "title:遵义",
        "NOT 遵义",
        "遵义*",
        '"遵义" OR "x',
        '-"遵义" AND',
        "{a}",
        "'a",
        "\\a",
        "a + b",
    ],
)
def test_fts_expressions_are_always_valid_fts5(text):
    db = sqlite3.connect(":memory:")
    db.execute("CREATE VIRTUAL TABLE t USING fts5(title, text, tokenize='ascii')")
    db.execute("INSERT INTO t VALUES (?, ?)", ("遵义", index_terms("遵义 and near title a b x")))
    query = parse(text)
    for expression in (fts_expression(query), exclusion_expression(query)):
        if expression is not None:
            db.execute("SELECT rowid FROM t WHERE t MATCH ?", (expression,)).fetchall()


def test_fts_expression_shape():
    assert fts_expression(parse("遵义 签约 OR 协议")) == '("遵义") AND ("签约" OR "协议")'
    assert fts_expression(parse("渝")) == '("渝" *)'
    assert fts_expression(parse('遵义 -重庆 NOT "成渝 地区"')) == (
        '(("遵义")) NOT ("重庆" OR "成渝 渝 地区")')
    only = parse("-重庆")
    assert fts_expression(only) is None and exclusion_expression(only) == '("重庆")'
