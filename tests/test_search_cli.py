"""`cyz search` end to end (issue 13): the query as typed, its filters and sorts, reprints
grouped in the terminal, `--json` one result per article, `--csv` for a weekly report.

Each test drives the real command (`python -m cyz.cli`) over the demo sites crawled into
a data dir, on SQLite and on the OpenSearch node (skipped when none is available), and
expects the same answers from both.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import secrets
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
# The three stored copies of one story in the demo (遵义市人民政府, 新华社 and 香江時報 via
# 华夏新闻网): the 江北区 signing.
JIANGBEI = "江北"


def run(*args: str, data_dir: Path, env: dict | None = None, cwd: Path = REPO,
        code: int | None = 0) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("CYZ_ENGINE", "CYZ_INDEX", "CYZ_OPENSEARCH"))}
    environ.update({"CYZ_DATA_DIR": str(data_dir), "CYZ_CONFIG_DIR": str(REPO / "config"),
                    "COLUMNS": "200", **(env or {})})
    proc = subprocess.run([sys.executable, "-m", "cyz.cli", *args], capture_output=True,
                          text=True, env=environ, cwd=cwd, timeout=600)
    if code is not None and proc.returncode != code:
        raise AssertionError(f"cyz {shlex.join(args)} exited {proc.returncode}, expected {code}"
                             f"\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module", params=["sqlite", "opensearch"])
def demo(request, tmp_path_factory):
    """(data dir, engine env): the demo sites crawled into the index of each engine."""
    data_dir = tmp_path_factory.mktemp(f"search-{request.param}")
    if request.param == "sqlite":
        run("demo", data_dir=data_dir)
        yield data_dir, {"CYZ_ENGINE": "sqlite"}
        return
    url = request.getfixturevalue("opensearch_url")
    prefix = f"cyzsearch{secrets.token_hex(3)}"
    env = {"CYZ_ENGINE": "opensearch", "CYZ_OPENSEARCH_URL": url, "CYZ_INDEX_PREFIX": prefix}
    try:
        run("demo", data_dir=data_dir, env=env)
        yield data_dir, env
    finally:
        from test_engines import drop_prefix

        drop_prefix(url, prefix)


def cyz(demo, *args: str, code: int | None = 0, cwd: Path = REPO) -> subprocess.CompletedProcess:
    data_dir, env = demo
    return run("search", *args, data_dir=data_dir, env=env, code=code, cwd=cwd)


def found(demo, *args: str) -> dict:
    return json.loads(cyz(demo, *args, "--json", "--limit", "200").stdout)


def ids(demo, *args: str) -> set[str]:
    return {r["id"] for r in found(demo, *args)["results"]}


def everything(demo) -> list[dict]:
    return found(demo, "")["results"]


def region_names(record: dict) -> set[str]:
    return {r["name"] for r in record["regions"]}


def has(record: dict, word: str) -> bool:
    """Does the record's title or text contain `word` (simplified or traditional)?"""
    from cyz.text import to_simplified

    return word in to_simplified(record["title"] + "\n" + record["text"])


# -- the query as typed -------------------------------------------------------------------

def test_words_as_separate_arguments_are_the_query(demo):
    def without_scores(result: dict) -> dict:  # `best` blends recency: scores move with time
        return {**result, "results": [{k: v for k, v in r.items() if k != "score"}
                                      for r in result["results"]]}

    separate = found(demo, "遵义", "合作")
    assert separate["total"] > 0
    assert without_scores(separate) == without_scores(found(demo, "遵义 合作"))


def test_a_leading_minus_word_is_an_exclusion_not_an_option(demo):
    proc = cyz(demo, "-重庆", "遵义", "--json", "--limit", "200")  # not "No such option"
    excluded = json.loads(proc.stdout)["results"]
    both = found(demo, "遵义", "重庆")["results"]
    assert both, "the demo has articles naming both"
    assert excluded, "and articles naming 遵义 without 重庆"
    assert not any(has(r, "重庆") for r in excluded)
    assert all(has(r, "遵义") for r in excluded)
    assert ids(demo, "遵义", "-重庆") == {r["id"] for r in excluded}
    assert ids(demo, "遵义", "NOT", "重庆") == {r["id"] for r in excluded}
    assert not {r["id"] for r in excluded} & {r["id"] for r in both}


def test_a_phrase_can_be_excluded(demo):
    rest = found(demo, "遵义", '-"成渝地区双城经济圈"')["results"]
    assert rest and not any(has(r, "成渝地区双城经济圈") for r in rest)
    assert len(rest) < found(demo, "遵义")["total"]


def test_or_in_any_case(demo):
    upper = ids(demo, "赤水", "OR", "仁怀")
    assert upper and ids(demo, "赤水", "or", "仁怀") == upper == ids(demo, "赤水", "Or", "仁怀")
    assert ids(demo, "赤水") < upper or ids(demo, "仁怀") < upper


def test_real_options_still_work_and_a_mistyped_one_is_an_error(demo):
    limited = json.loads(cyz(demo, "遵义", "--limit", "2", "--json").stdout)
    assert len(limited["results"]) == 2
    typo = cyz(demo, "遵义", "--regoin", "遵义", code=2)
    assert "No such option" in typo.stderr and "--region" in typo.stderr


@pytest.mark.parametrize("query", ['"', "OR", '" "', "x" * 300])
def test_a_query_that_means_nothing_or_is_too_long_is_an_error(demo, query):
    proc = cyz(demo, query, code=2)
    assert "error:" in proc.stderr and "Traceback" not in proc.stderr
    assert proc.stdout == ""


def test_one_character_words_find_articles(demo):
    yu = found(demo, "渝")["results"]
    assert yu and all(has(r, "渝") for r in yu)


# -- filters ------------------------------------------------------------------------------

def test_unknown_source_exits_2_listing_the_known_ones(demo):
    proc = cyz(demo, "遵义", "--source", "typo", code=2)
    assert "'typo'" in proc.stderr
    assert "demo-qianxin" in proc.stderr and "zunyi-gov" in proc.stderr  # stored and configured
    assert found(demo, "", "--source", "demo-qianxin")["total"] >= 5


def test_region_by_short_name_or_alias_finds_what_its_gazetteer_name_finds(demo):
    full = ids(demo, "", "--region", "汇川区")
    assert full
    assert ids(demo, "", "--region", "汇川") == full
    assert ids(demo, "", "--region", "遵义市") == ids(demo, "", "--region", "遵义")
    assert ids(demo, "", "--region", "道真") == ids(demo, "", "--region", "道真仡佬族苗族自治县")


def test_unknown_region_warns_with_the_closest_names(demo):
    proc = cyz(demo, "", "--region", "汇川县")
    assert "warning:" in proc.stderr and "汇川县" in proc.stderr and "汇川区" in proc.stderr
    quiet = cyz(demo, "", "--region", "汇川")
    assert "warning" not in quiet.stderr


def test_since_after_until_is_an_error(demo):
    proc = cyz(demo, "遵义", "--since", "2024-12-01", "--until", "2024-11-01", code=2)
    assert "--since" in proc.stderr and "Traceback" not in proc.stderr


def test_regions_any_by_default_and_all_with_all_regions(demo):
    zunyi, jiangjin = ids(demo, "", "--region", "遵义"), ids(demo, "", "--region", "江津区")
    either = found(demo, "", "--region", "遵义", "--region", "江津区")
    assert {r["id"] for r in either["results"]} == zunyi | jiangjin
    between = found(demo, "", "--region", "遵义", "--region", "江津区", "--all-regions")
    assert between["results"], "articles on 遵义 and 江津区 together"
    assert {r["id"] for r in between["results"]} == zunyi & jiangjin
    assert all({"遵义", "江津区"} <= region_names(r) for r in between["results"])
    assert between["total"] < either["total"]


def test_topic_by_id_or_chinese_name(demo):
    by_id = found(demo, "", "--topic", "agreement")["results"]
    assert by_id and all("agreement" in r["topics"] for r in by_id)
    assert len(by_id) < len(everything(demo))
    assert ids(demo, "", "--topic", "签约协议") == {r["id"] for r in by_id}
    either = ids(demo, "", "--topic", "agreement", "--topic", "交通互联")
    assert either == {r["id"] for r in everything(demo)
                      if {"agreement", "transport"} & set(r["topics"])}
    proc = cyz(demo, "", "--topic", "nope", code=2)
    assert "签约协议" in proc.stderr and "agreement" in proc.stderr


# -- sorts --------------------------------------------------------------------------------

def test_sort_date_is_newest_first(demo):
    results = found(demo, "遵义", "--sort", "date")["results"]
    dates = [r["published_at"] for r in results]
    assert len(dates) > 5 and dates == sorted(dates, reverse=True)
    assert {r["id"] for r in results} == ids(demo, "遵义")  # the same set, another order


def test_sort_relevance_puts_the_most_relevant_first(demo):
    results = found(demo, "遵义", "--sort", "relevance")["results"]
    relevance = [r["relevance"] for r in results]
    assert relevance == sorted(relevance, reverse=True)


def test_best_sort_puts_agreements_above_a_marathon(demo):
    # The example: 遵义 returned a marathon and a cold-wave warning above
    # signed agreements, the text score of a common word being the same for every hit.
    results = found(demo, "遵义")["results"]
    titles = [r["title"] for r in results]
    marathon = next(i for i, t in enumerate(titles) if "马拉松" in t)
    signing = next(i for i, t in enumerate(titles) if "江北区签署" in t)
    assert signing < marathon
    assert cyz(demo, "遵义", "--sort", "bogus", code=2).stderr


def test_sort_choices_are_the_engines(demo):
    from cyz.index.base import SORTS

    help_text = cyz(demo, "--help").stdout
    assert f"[{'|'.join(SORTS)}]" in help_text.replace("\n", "")


# -- what the terminal shows ---------------------------------------------------------------

def story_entries(stdout: str) -> list[str]:
    """The entries of the terminal listing, each as its block of lines."""
    return [block for block in re.split(r"\n(?=\d+\. )", stdout) if re.match(r"\d+\. ", block)]


def three_copies(demo) -> list[dict]:
    """The demo's 江北区 signing: one story, three stored copies (one cluster)."""
    records = everything(demo)
    sizes: dict[str, int] = {}
    for r in records:
        sizes[r["cluster_id"]] = sizes.get(r["cluster_id"], 0) + 1
    copies = [r for r in records if sizes[r["cluster_id"]] == 3 and has(r, JIANGBEI)]
    assert len(copies) == 3, "the demo's 江北区 story has three copies"
    return copies


def test_reprints_of_a_story_are_one_entry_naming_the_other_copies(demo):
    copies = three_copies(demo)
    stdout = cyz(demo, JIANGBEI, "--limit", "50").stdout
    entries = [e for e in story_entries(stdout) if any(c["url"] in e for c in copies)]
    assert len(entries) == 1, stdout  # one entry for the three copies
    entry = entries[0]
    lead = next(c for c in copies if c["url"] in entry)
    others = [c for c in copies if c is not lead]
    listed = re.search(r"转载 2: (.+)", entry)
    assert listed, entry
    assert all((c["origin"] or c["source_name"]) in listed.group(1) for c in others)
    assert not any(c["url"] in entry for c in others)  # named, not listed
    total = found(demo, JIANGBEI)["total"]
    assert f"{total} result(s)" in stdout and "stories" in stdout


def test_all_copies_lists_every_copy(demo):
    copies = three_copies(demo)
    stdout = cyz(demo, JIANGBEI, "--all-copies", "--limit", "50").stdout
    for copy in copies:
        assert copy["url"] in stdout
    grouped = cyz(demo, JIANGBEI, "--limit", "50").stdout
    assert sum(c["url"] in grouped for c in copies) == 1


def test_each_entry_shows_date_site_and_origin(demo):
    stdout = cyz(demo, "湄潭翠芽", "--limit", "1").stdout
    first = story_entries(stdout)[0].splitlines()[0]
    assert "2024-11-27" in first and "黔新网" in first and "来源 贵州日报" in first


def test_count_line_says_how_many_are_shown(demo):
    total = found(demo, "遵义")["total"]
    assert total > 3
    stdout = cyz(demo, "遵义", "--limit", "3").stdout
    assert f"showing 3 of {total} (--limit)" in stdout.splitlines()[0]
    assert "showing" not in cyz(demo, "遵义", "--limit", "200").stdout.splitlines()[0]


def test_topics_are_shown_by_their_chinese_names(demo):
    stdout = cyz(demo, "湄潭翠芽", "--limit", "1").stdout
    assert "区域合作" in stdout and "cooperation" not in stdout


# -- --json and --csv ----------------------------------------------------------------------

def test_json_keeps_one_result_per_article_with_its_cluster_size(demo):
    results = everything(demo)
    sizes: dict[str, int] = {}
    for r in results:
        sizes[r["cluster_id"]] = sizes.get(r["cluster_id"], 0) + 1
    assert len({r["id"] for r in results}) == len(results)
    assert any(size > 1 for size in sizes.values())
    for r in results:
        for key in ("cluster_id", "cluster_size", "score", "snippet"):
            assert key in r
        assert r["cluster_size"] == sizes[r["cluster_id"]]
    jiangbei = found(demo, JIANGBEI)["results"]
    assert len(jiangbei) > 2 and {r["cluster_size"] for r in jiangbei} >= {1, 3}


def read_csv(path: Path) -> list[dict]:
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 with BOM: Excel reads the Chinese right
    return list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))


def test_csv_for_a_weekly_report(demo, tmp_path):
    out = tmp_path / "week.csv"
    proc = cyz(demo, JIANGBEI, "--csv", str(out), "--limit", "50")
    results = found(demo, JIANGBEI)["results"]
    rows = read_csv(out)
    assert f"wrote {len(rows)} article(s) to {out}" in proc.stderr
    assert list(rows[0]) == ["日期", "发布时间", "标题", "网站", "来源", "作者", "地区", "主题",
                             "转载数", "摘要", "链接"]
    assert [row["链接"] for row in rows] == [r["url"] for r in results]  # the search's order
    for row, rec in zip(rows, results, strict=True):
        assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d", row["日期"])
        assert row["发布时间"] == rec["published_at"]
        assert row["日期"] == rec["published_at"][:16].replace("T", " ")  # +08:00 already
        assert row["标题"] == rec["title"] and row["网站"] == rec["source_name"]
        assert row["来源"] == (rec["origin"] or "") and row["作者"] == (rec["author"] or "")
        assert int(row["转载数"]) == rec["cluster_size"] - 1
        assert row["地区"].split("、") == [r["name"] for r in rec["regions"]]
        assert row["摘要"] == rec["snippet"]
    assert any(row["转载数"] == "2" for row in rows)
    topics = {t for row in rows for t in row["主题"].split("、") if t}
    assert "签约协议" in topics and not {"agreement", "cooperation"} & topics


def test_csv_holds_at_most_limit_rows_and_says_so(demo, tmp_path):
    out = tmp_path / "top3.csv"
    total = found(demo, "遵义")["total"]
    proc = cyz(demo, "遵义", "--csv", str(out), "--limit", "3")
    assert len(read_csv(out)) == 3
    assert f"wrote 3 article(s) to {out} (of {total}: raise --limit" in proc.stderr
    json_too = cyz(demo, "遵义", "--csv", str(out), "--limit", "3", "--json").stdout
    assert len(json.loads(json_too)["results"]) == 3  # --json still owns stdout


def test_csv_into_a_missing_directory_is_one_line(demo, tmp_path):
    proc = cyz(demo, "遵义", "--csv", str(tmp_path / "nope" / "x.csv"), code=1)
    assert "cannot write" in proc.stderr and "Traceback" not in proc.stderr


def test_csv_rows_are_spreadsheet_safe():
    from cyz.export import SEARCH_CSV_COLUMNS, beijing_minute, search_rows, write_csv
    from cyz.index.base import Hit

    assert beijing_minute("2024-12-05T01:30:00+00:00") == "2024-12-05 09:30"
    assert beijing_minute("2024-12-05T09:30:00") == "2024-12-05 09:30"  # naive: Beijing
    assert beijing_minute("2024-12-05") == "2024-12-05" and beijing_minute(None) == ""
    record = {"title": '=HYPERLINK("http://evil.example")', "url": "http://x.cn/1",
              "published_at": "2024-12-05T09:30:00+08:00", "source_name": "站",
              "origin": None, "author": None, "regions": [{"name": "遵义", "count": 1}],
              "topics": ["agreement"], "cluster_id": None, "text": "正文" * 20_000}
    rows = list(search_rows([Hit(record, 1.0, "+" + "字" * 40_000)], lambda r: 1,
                            {"agreement": "签约协议"}))
    buffer = io.StringIO()
    write_csv(rows, buffer, columns=SEARCH_CSV_COLUMNS)
    row = next(csv.DictReader(io.StringIO(buffer.getvalue().lstrip("\ufeff"))))
    assert row["标题"].startswith("'=") and row["摘要"].startswith("'+")
    assert len(row["摘要"]) == 32_767 and row["主题"] == "签约协议" and row["转载数"] == "0"


# -- the documentation runs as printed -----------------------------------------------------

def readme_search_examples() -> list[list[str]]:
    text = (REPO / "README.md").read_text(encoding="utf-8")
    examples = []
    for block in re.findall(r"```sh\n(.*?)```", text, flags=re.S):
        for line in block.splitlines():
            if line.startswith("cyz search "):
                args = shlex.split(line, comments=True)
                examples.append(args[2:])
    return examples


def test_readme_search_examples_run_as_printed(demo, tmp_path):
    examples = readme_search_examples()
    assert len(examples) >= 8
    spelled = [" ".join(e) for e in examples]
    for wanted in ("遵义 合作", "遵义 -重庆", "--sort date", "--all-copies", "--csv"):
        assert any(wanted in e for e in spelled), wanted
    for args in examples:
        proc = cyz(demo, *args, cwd=tmp_path, code=None)
        assert proc.returncode == 0, f"cyz search {shlex.join(args)}\n{proc.stderr}"
        assert "result(s)" in proc.stdout or args[-1:] == ["--json"] or "--json" in args


def test_help_documents_the_syntax_and_the_region_modes(demo):
    help_text = cyz(demo, "--help").stdout
    for phrase in ("--all-regions", "-重庆", "NOT", "--all-copies", "--csv", "--topic",
                   "cluster_size", "any of them"):
        assert phrase in help_text, phrase
