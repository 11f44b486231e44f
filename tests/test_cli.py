"""The `cyz` command end to end: drive the real console script and read its output."""

from __future__ import annotations

import csv
import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def cyz(*args: str, data_dir: Path, check: bool = True, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CYZ_ENGINE", "CYZ_INDEX"))}
    environ.update({"CYZ_DATA_DIR": str(data_dir), "COLUMNS": "200", **env})
    proc = subprocess.run([sys.executable, "-m", "cyz.cli", *args], capture_output=True,
                          text=True, env=environ, cwd=REPO, timeout=600)
    if check and proc.returncode != 0:
        raise AssertionError(f"cyz {' '.join(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    data_dir = tmp_path_factory.mktemp("demo-data")
    first = cyz("demo", data_dir=data_dir)
    return data_dir, first


def summary_rows(stdout: str) -> dict[str, int]:
    """The numbers of the printed run summary table, by label."""
    rows = {}
    for line in stdout.splitlines():
        match = re.match(r"^[│|\s]*([a-zA-Z][\w :]*?)\s*[│|]\s*(\d+)\s*[│|]?\s*$", line)
        if match:
            rows[match.group(1).strip()] = int(match.group(2))
    return rows


def search_json(data_dir: Path, *args: str) -> dict:
    return json.loads(cyz("search", *args, "--json", "--limit", "100", data_dir=data_dir).stdout)


def test_demo_indexes_the_sample_sites_and_shows_a_search(demo_run):
    data_dir, first = demo_run
    assert "Demo crawl" in first.stdout
    assert "cyz search 遵义 合作" in first.stdout
    status = json.loads(cyz("index", "status", "--json", data_dir=data_dir).stdout)
    assert status["articles"] >= 28  # 30+ article pages, minus the broken one(s)


def test_demo_mails_its_alert_rules_into_a_maildir(demo_run):
    import email
    import mailbox
    from email import policy

    data_dir, first = demo_run
    maildir = data_dir / "demo-mail"
    assert f"delivered to the Maildir {maildir}" in first.stdout
    box = mailbox.Maildir(maildir, create=False,
                          factory=lambda f: email.message_from_binary_file(f, policy=policy.default))
    subjects = sorted(m["Subject"] for m in box)
    assert len(subjects) == 3 and all(f"✉ {s}" in first.stdout for s in subjects)
    agreements = next(m for m in box if m["X-Cyz-Rule"] == "demo-zunyi-chengyu-agreements")
    plain = agreements.get_body(("plain",)).get_content()
    # the 江北区 signing, one story told by three outlets in two scripts
    assert "遵义市与重庆市江北区签署全面深化合作框架协议" in plain and "转载 2：" in plain
    assert agreements["To"] == "research-office@demo.invalid"


def test_simplified_and_traditional_queries_find_the_same_articles(demo_run):
    data_dir, _ = demo_run
    simplified = search_json(data_dir, "遵义")
    traditional = search_json(data_dir, "遵義")
    assert simplified["total"] >= 10
    assert {r["id"] for r in simplified["results"]} == {r["id"] for r in traditional["results"]}
    scripts = {r["script"] for r in simplified["results"]}
    assert scripts == {"hans", "hant"}  # the traditional reprint is among them


def test_search_json_shape_and_snippet_marks(demo_run):
    data_dir, _ = demo_run
    result = search_json(data_dir, "成渝")
    hit = result["results"][0]
    for key in ("id", "url", "source_id", "title", "text", "published_at", "regions",
                "score", "snippet", "cluster_id", "is_first_in_cluster"):
        assert key in hit
    assert "【成渝】" in hit["snippet"] or "【成渝】" in hit["title"] or "成渝" in hit["snippet"]
    assert hit["published_at"].endswith("+08:00")


def test_search_words_may_be_separate_arguments(demo_run):
    # The README's first example: `cyz search 遵义 合作` is the query "遵义 合作".
    data_dir, _ = demo_run
    separate = search_json(data_dir, "遵义", "合作")
    assert separate["total"] > 0
    assert separate == search_json(data_dir, "遵义 合作")


def test_region_filter_uses_places_mentioned(demo_run):
    data_dir, _ = demo_run
    zunyi = search_json(data_dir, "", "--region", "遵义")
    assert zunyi["total"] > 0
    for rec in zunyi["results"]:
        assert "遵义" in {r["name"] for r in rec["regions"]}
    gbk = search_json(data_dir, "", "--source", "demo-qianxin")
    assert gbk["total"] >= 5
    assert all("\ufffd" not in r["text"] for r in gbk["results"])  # GBK decoded cleanly


def test_second_crawl_skips_unchanged_pages(demo_run):
    data_dir, first = demo_run
    before = summary_rows(first.stdout)
    assert before["new"] >= 28
    second = summary_rows(cyz("demo", data_dir=data_dir).stdout)
    assert second["new"] == 0 and second["updated"] == 0
    # fewer than 5% of article pages are asked again the same day (issue 15: known
    # articles not due are not requested), none extracted again
    assert second["not due"] >= 0.95 * before["new"]


def test_reprints_share_a_cluster(demo_run):
    data_dir, _ = demo_run
    records = search_json(data_dir, "")["results"]
    clusters: dict[str, list[dict]] = {}
    for rec in records:
        clusters.setdefault(rec["cluster_id"], []).append(rec)
    shared = [c for c in clusters.values() if len(c) > 1]
    assert shared, "the demo sites carry reprints of one story"
    for members in shared:
        assert sum(m["is_first_in_cluster"] for m in members) == 1


def test_export_jsonl_and_excel_ready_csv(demo_run, tmp_path):
    data_dir, _ = demo_run
    lines = cyz("export", "--region", "遵义", "--since", "2024-11-01", data_dir=data_dir).stdout.splitlines()
    records = [json.loads(line) for line in lines]
    assert records and all("遵义" in {r["name"] for r in rec["regions"]} for rec in records)
    assert all(rec["published_at"] >= "2024-11-01" for rec in records)
    assert [r["published_at"] for r in records] == sorted((r["published_at"] for r in records), reverse=True)
    out = tmp_path / "export.csv"
    cyz("export", "--format", "csv", "-o", str(out), data_dir=data_dir)
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # UTF-8 BOM: Excel reads the Chinese right
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert len(rows) == search_json(data_dir, "")["total"]
    assert any("遵义" in row["regions"] for row in rows)


def test_reextract_rebuilds_records_from_the_archive_without_fetching(demo_run):
    data_dir, _ = demo_run
    before = {r["id"]: r for r in search_json(data_dir, "", "--source", "demo-qianxin")["results"]}
    proc = cyz("reextract", "--source", "demo-qianxin", data_dir=data_dir)  # no server running
    assert f"re-extracted {len(before)} page(s), 0 failed" in proc.stdout
    after = {r["id"]: r for r in search_json(data_dir, "", "--source", "demo-qianxin")["results"]}
    assert after.keys() == before.keys()
    for rid, rec in after.items():
        assert rec["text"] == before[rid]["text"] and rec["crawled_at"] == before[rid]["crawled_at"]
        assert rec["cluster_id"] == before[rid]["cluster_id"]


def test_demo_clean_removes_demo_records(tmp_path, demo_run):
    data_dir, _ = demo_run
    cleaned = cyz("demo", "--clean", data_dir=data_dir)
    assert "removed" in cleaned.stdout
    status = json.loads(cyz("index", "status", "--json", data_dir=data_dir).stdout)
    assert status["articles"] == 0
    assert not (data_dir / "demo-mail").exists()  # the demo's mails go with its records


def test_bad_sources_file_fails_before_any_request(tmp_path):
    bad = tmp_path / "sources.yaml"
    bad.write_text("sources:\n  - id: x\n    name: X\n    kind: news\n    region: 重庆\n"
                   "    start_url: [https://x.cn/]\n    article_patterns: ['(']\n", encoding="utf-8")
    proc = cyz("crawl", "--sources", str(bad), data_dir=tmp_path, check=False)
    assert proc.returncode == 2
    assert str(bad) in proc.stderr and "'x'" in proc.stderr and "start_url" in proc.stderr


def test_extract_a_saved_page(tmp_path):
    page = tmp_path / "t20241205_1.html"
    page.write_text(
        "<html><head><title>遵义与重庆签约_遵义市人民政府</title>"
        "<meta name='PubDate' content='2024-12-05 09:30'></head><body>"
        "<div class='trs_paper_default'><p>12月4日，遵义市与重庆市江北区签署战略合作协议，"
        "双方将在产业协作、交通互联等领域深化合作，共同推动成渝地区双城经济圈建设。</p>"
        "<p>根据协议，两地将共建产业园区，推动一批重点项目落地。</p></div>"
        "<p>来源：遵义日报</p><p>责任编辑：张三</p></body></html>", encoding="utf-8")
    rec = json.loads(cyz("extract", str(page), "--json", data_dir=tmp_path).stdout)
    assert rec["title"] == "遵义与重庆签约"
    assert rec["published_at"] == "2024-12-05T09:30:00+08:00"
    assert rec["origin"] == "遵义日报"
    assert "责任编辑" not in rec["text"] and "共建产业园区" in rec["text"]
    assert rec["language"] == "zh-cn" and rec["script"] == "hans"
    assert {"遵义", "重庆"} <= {r["name"] for r in rec["regions"]}


def test_sources_check_through_an_http_proxy(tmp_path, site_server):
    """`cyz sources check` shows what a source would give, storing nothing; the crawl
    honours the standard http_proxy variable (here: the loopback site server)."""
    proxy = f"http://127.0.0.1:{site_server.port}"
    proc = cyz("sources", "check", "demo-qianxin", "--sources", str(REPO / "demo" / "sources.yaml"),
               "--max-pages", "3", "--json", data_dir=tmp_path, http_proxy=proxy,
               HTTP_PROXY=proxy, no_proxy="", NO_PROXY="")
    report = json.loads(proc.stdout)
    assert report["summary"]["new"] == 3 and len(report["records"]) == 3
    for rec in report["records"]:
        assert rec["source_id"] == "demo-qianxin" and rec["origin"] and len(rec["text"]) > 200
    assert not (tmp_path / "index.sqlite3").exists()  # nothing stored in the data dir


def test_engine_misconfiguration_is_one_clear_line(tmp_path):
    missing = cyz("search", "遵义", data_dir=tmp_path, check=False, CYZ_ENGINE="elasticsearch",
                  CYZ_ES_URL="")
    assert missing.returncode == 2 and "CYZ_ES_URL" in missing.stderr
    assert "Traceback" not in missing.stderr
    down = cyz("search", "遵义", data_dir=tmp_path, check=False, CYZ_ENGINE="opensearch",
               CYZ_OPENSEARCH_URL="http://127.0.0.1:9")
    assert down.returncode == 1 and "unreachable" in down.stderr and "Traceback" not in down.stderr


def test_schedule_refuses_a_bad_config_at_start(tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    (config / "sources.yaml").write_text("sources: [", encoding="utf-8")
    proc = cyz("schedule", data_dir=tmp_path, check=False, CYZ_CONFIG_DIR=str(config))
    assert proc.returncode == 2 and "bad YAML" in proc.stderr and "sources.yaml" in proc.stderr


def test_extract_a_url_with_chinese_in_its_path_is_one_clear_line(tmp_path):
    # Nothing listens on port 9: the fetch fails, and says so in one line.
    proc = cyz("extract", "http://127.0.0.1:9/新闻/t20241205_1.html", "--allow-private",
               data_dir=tmp_path, check=False)
    assert proc.returncode == 1
    assert "cannot fetch" in proc.stderr and "Traceback" not in proc.stderr


def test_sources_check_that_fetches_nothing_is_not_exit_0(tmp_path):
    sources = tmp_path / "sources.yaml"
    sources.write_text(
        "sources:\n  - id: dead\n    name: dead\n    kind: news\n    region: 遵义\n"
        "    start_urls: [http://www.dead-site.invalid/list/]\n"
        "    article_patterns: ['/a\\d+\\.html$']\n", encoding="utf-8")
    # A proxy nobody answers: every request fails at once, as when the network is down.
    proc = cyz("sources", "check", "dead", "--sources", str(sources), data_dir=tmp_path,
               check=False, http_proxy="http://127.0.0.1:9", https_proxy="http://127.0.0.1:9")
    assert proc.returncode == 3, proc.stderr
    assert "nothing could be fetched" in proc.stderr and "Traceback" not in proc.stderr
