"""`cyz health` and the per-source part of `cyz index status`: the real command over a
run history written with `record_run`, a real spool, a real OpenSearch node, one that
does not answer (a closed loopback port), a corrupt index and a real full disk."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest
from test_engines import drop_prefix, record  # tests/ is on sys.path
from test_run_integrity import tmpfs
from test_runs import closed_port

from cyz.health import (
    DISK_MIN_FREE_BYTES,
    SILENT_RUNS,
    check_health,
    disk_problems,
    last_due,
    source_problems,
)
from cyz.index.opensearch import OpenSearchClient
from cyz.index.search_engine import SearchEngine
from cyz.index.sqlite import SqliteEngine
from cyz.runs import record_run
from cyz.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("test-ok", "test-quiet", "test-flaky")


def cyz(*args: str, data_dir: Path, config: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items()
               if not k.startswith(("CYZ_ENGINE", "CYZ_INDEX", "CYZ_OPENSEARCH", "CYZ_CRAWL"))}
    environ.update({"CYZ_DATA_DIR": str(data_dir), "CYZ_CONFIG_DIR": str(config),
                    "COLUMNS": "250", **env})
    proc = subprocess.run([sys.executable, "-m", "cyz.cli", *args], capture_output=True,
                          text=True, env=environ, cwd=REPO, timeout=120)
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


def health(data_dir: Path, config: Path, **env: str) -> tuple[int, dict]:
    proc = cyz("health", "--json", data_dir=data_dir, config=config, **env)
    assert proc.returncode in (0, 1), (proc.returncode, proc.stdout, proc.stderr)
    report = json.loads(proc.stdout)
    assert report["ok"] == (proc.returncode == 0)
    return proc.returncode, report


def keys(report: dict) -> dict[str, str]:
    return {p["key"]: p["severity"] for p in report["problems"]}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """A config dir whose enabled sources are SOURCES (plus a disabled one)."""
    path = tmp_path / "config"
    path.mkdir()
    entries = "".join(
        f"  - id: {sid}\n    name: {sid}\n    kind: news\n    region: 遵义\n"
        f"    start_urls: [https://{sid}.example.cn/]\n    article_patterns: ['/a/\\d+\\.html$']\n"
        for sid in SOURCES)
    entries += ("  - id: test-disabled\n    name: disabled\n    kind: news\n    region: 遵义\n"
                "    start_urls: [https://off.example.cn/]\n    article_patterns: ['/a/']\n"
                "    enabled: false\n    disabled_reason: gone\n")
    (path / "sources.yaml").write_text("sources:\n" + entries, encoding="utf-8")
    shutil.copy(REPO / "config" / "topic.yaml", path / "topic.yaml")
    return path


def stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds")


def counts(fetched: int, **failed: int) -> dict:
    return {"fetched": fetched, "new": fetched, "updated": 0, "unchanged": 0, "failed": failed}


def crawl_run(data_dir: Path, ago: timedelta, status: str = "ok", sources: dict | None = None,
              errors: tuple[str, ...] = (), minutes: int = 30) -> str:
    """Record a crawl that started `ago` before now and lasted `minutes` (capped at now)."""
    now = datetime.now(UTC)
    started = now - ago
    ended = min(started + timedelta(minutes=minutes), now)
    record_run(data_dir, "crawl", stamp(started), stamp(ended), status,
               sources if sources is not None else {"test-ok": counts(3)}, errors=errors)
    return stamp(ended)


# -- the nightly crawl ------------------------------------------------------------------


def test_a_fresh_data_dir_is_healthy_with_one_warning(data_dir, config):
    code, report = health(data_dir, config)
    assert code == 0 and keys(report) == {"no-crawl-yet": "warning"}
    assert report["checks"]["crawl"]["last"] is None
    assert report["checks"]["engine"] == {"name": "sqlite", "online": True,
                                          "index": "not created yet"}
    assert not (data_dir / "index.sqlite3").exists()  # the probe creates nothing


def test_a_recent_good_crawl_is_healthy(data_dir, config):
    ended = crawl_run(data_dir, timedelta(minutes=40))
    code, report = health(data_dir, config)
    assert code == 0 and report["problems"] == []
    assert report["checks"]["crawl"]["last"]["ended_at"] == ended
    assert report["checks"]["crawl"]["last"]["status"] == "ok"
    human = cyz("health", data_dir=data_dir, config=config)
    assert human.returncode == 0 and f"last crawl: ok, ended {ended}" in human.stdout
    assert human.stdout.strip().splitlines()[-1] == "healthy"


def test_a_failed_last_crawl_is_an_error_naming_its_error(data_dir, config):
    crawl_run(data_dir, timedelta(hours=3))
    crawl_run(data_dir, timedelta(minutes=20), "failed", errors=("StorageError: disk is full",))
    code, report = health(data_dir, config)
    assert code == 1 and keys(report) == {"crawl-failed": "error"}
    assert "StorageError: disk is full" in report["problems"][0]["message"]
    human = cyz("health", data_dir=data_dir, config=config)
    assert human.returncode == 1 and "disk is full" in human.stdout
    assert human.stdout.strip().splitlines()[-1] == "unhealthy: 1 error(s)"


def test_no_crawl_since_the_nightly_one_was_due_is_overdue(data_dir, config):
    crawl_run(data_dir, timedelta(days=3))
    # A run skipped since (another held the data dir) is not a crawl.
    record_run(data_dir, "crawl", stamp(datetime.now(UTC)), stamp(datetime.now(UTC)), "skipped",
               {}, errors=["the data dir is locked by reextract (pid 42)"])
    code, report = health(data_dir, config)
    assert code == 1 and keys(report) == {"crawl-overdue": "error"}
    message = report["problems"][0]["message"]
    assert "Asia/Shanghai" in message and "1 skipped since" in message and "pid 42" in message
    # A crawl now, of any kind, puts it right.
    crawl_run(data_dir, timedelta(minutes=1))
    code, report = health(data_dir, config)
    assert code == 0 and keys(report) == {}


def test_the_grace_is_the_crawl_timeout_plus_an_hour(data_dir, config):
    # Due 26 h ago at the latest; with a 30-hour timeout the crawl before it may still run.
    crawl_run(data_dir, timedelta(hours=30))
    assert "crawl-overdue" in keys(health(data_dir, config)[1])
    assert "crawl-overdue" not in keys(health(data_dir, config, CYZ_CRAWL_TIMEOUT="30h")[1])


def test_last_due_is_the_newest_schedule_whose_grace_has_passed():
    shanghai = datetime.fromisoformat
    grace = timedelta(hours=5)
    at = time(2, 0)
    # 06:00 in Shanghai: tonight's 02:00 crawl may still run, so yesterday's is due.
    assert last_due(shanghai("2024-12-05T06:00:00+08:00"), at, grace) == \
        shanghai("2024-12-04T02:00:00+08:00")
    assert last_due(shanghai("2024-12-05T07:00:00+08:00"), at, grace) == \
        shanghai("2024-12-05T02:00:00+08:00")
    # The same instant given in UTC (23:30 the day before) is read in Shanghai time.
    assert last_due(shanghai("2024-12-04T23:30:00+00:00"), at, grace) == \
        shanghai("2024-12-05T02:00:00+08:00")


# -- sources ----------------------------------------------------------------------------


def test_a_source_that_went_silent_is_a_warning_after_silent_runs(data_dir, config):
    assert SILENT_RUNS == 3
    history = [{"test-ok": counts(3), "test-quiet": counts(4)}]
    history += [{"test-ok": counts(2), "test-quiet": counts(0)}] * (SILENT_RUNS - 1)
    for n, sources in enumerate(history):
        crawl_run(data_dir, timedelta(hours=10 - n), sources=sources)
    # A failed run's zeros (stopped before counting) do not count as crawled.
    crawl_run(data_dir, timedelta(hours=5), "failed", {"test-ok": counts(0), "test-quiet": counts(0)},
              errors=("TimeoutError: past CYZ_CRAWL_TIMEOUT",))
    code, report = health(data_dir, config)
    assert "source-silent:test-quiet" not in keys(report)  # two empty runs: not yet
    crawl_run(data_dir, timedelta(hours=1), sources={"test-ok": counts(1), "test-quiet": counts(0)})
    code, report = health(data_dir, config)
    assert code == 0 and keys(report) == {"source-silent:test-quiet": "warning"}
    message = report["problems"][0]["message"]
    assert "test-quiet" in message and f"last {SILENT_RUNS} crawls" in message
    assert "layout" in message


def test_a_source_that_never_yielded_is_not_silent_and_a_removed_one_not_reported(data_dir, config):
    for hours in (4, 3, 2, 1):
        crawl_run(data_dir, timedelta(hours=hours),
                  sources={"test-ok": counts(2), "test-flaky": counts(0), "test-gone": counts(0)})
    crawl_run(data_dir, timedelta(hours=5), sources={"test-gone": counts(9)})  # older
    code, report = health(data_dir, config)
    assert code == 0 and keys(report) == {}  # test-gone is not in the config
    # Without a config (as the mail builder may call it), every source of the history.
    found = check_health(data_dir, load_settings({}), engine_name="sqlite")
    assert {p.key for p in found.problems} == {"source-silent:test-gone"}


def test_a_source_whose_requests_mostly_failed_is_a_warning(data_dir, config):
    crawl_run(data_dir, timedelta(hours=2), sources={"test-flaky": counts(8)})
    crawl_run(data_dir, timedelta(hours=1), sources={
        "test-ok": counts(4, http_404=1),  # 1 of 5: fine
        "test-quiet": counts(0, timeout=4),  # 4 requests: too few to say
        "test-flaky": counts(2, timeout=5, http_500=1)})
    code, report = health(data_dir, config)
    assert code == 0 and keys(report) == {"source-failing:test-flaky": "warning"}
    message = report["problems"][0]["message"]
    assert "6 of 8 requests failed" in message and "timeout 5, http_500 1" in message


def test_exactly_half_failed_is_not_failing():
    run = {"kind": "crawl", "status": "partial", "started_at": "2024-12-05T18:00:00+00:00",
           "ended_at": "2024-12-05T19:00:00+00:00",
           "sources": {"a": counts(5, timeout=5), "b": counts(4, timeout=5)}}
    assert [p.key for p in source_problems([run])] == ["source-failing:b"]


# -- the engine and its spool -----------------------------------------------------------


def test_an_unreachable_opensearch_is_an_error_in_one_probe(data_dir, config):
    crawl_run(data_dir, timedelta(minutes=5))
    url = f"http://127.0.0.1:{closed_port()}"
    code, report = health(data_dir, config, CYZ_ENGINE="opensearch", CYZ_OPENSEARCH_URL=url)
    assert code == 1 and keys(report) == {"engine-unreachable": "error"}
    assert report["checks"]["engine"]["online"] is False
    assert "opensearch" in report["problems"][0]["message"]
    human = cyz("health", data_dir=data_dir, config=config, CYZ_ENGINE="opensearch",
                CYZ_OPENSEARCH_URL=url)
    assert human.returncode == 1 and "engine opensearch: unreachable" in human.stdout


def test_a_reachable_opensearch_is_healthy(data_dir, config, opensearch_url):
    crawl_run(data_dir, timedelta(minutes=5))
    prefix = f"cyzt{secrets.token_hex(4)}"
    try:
        code, report = health(data_dir, config, CYZ_ENGINE="opensearch",
                              CYZ_OPENSEARCH_URL=opensearch_url, CYZ_INDEX_PREFIX=prefix)
    finally:
        drop_prefix(opensearch_url, prefix)
    assert code == 0 and keys(report) == {}, report
    assert report["checks"]["engine"]["online"] is True
    assert report["checks"]["spool"]["spooled"] == 0


def spool_records(data_dir: Path, prefix: str, n: int) -> None:
    """Park `n` records in the spool of `prefix`, as a crawl does when the engine is down."""
    down = SearchEngine(OpenSearchClient.from_env(
        {"CYZ_OPENSEARCH_URL": f"http://127.0.0.1:{closed_port()}"}), data_dir, prefix)
    try:
        assert down.write([record(f"s{i}", "遵义", "遵义合作") for i in range(n)]) == n
        assert not down.online and len(down.spool) == n
    finally:
        down.close()


def test_records_the_last_crawl_could_not_index_make_the_spool_grow(data_dir, config,
                                                                    opensearch_url):
    prefix = f"cyzt{secrets.token_hex(4)}"
    env = {"CYZ_ENGINE": "opensearch", "CYZ_OPENSEARCH_URL": opensearch_url,
           "CYZ_INDEX_PREFIX": prefix}
    try:
        spool_records(data_dir, prefix, 3)
        # A crawl that ended before they were parked had no chance to index them.
        crawl_run(data_dir, timedelta(minutes=10), minutes=5)
        code, report = health(data_dir, config, **env)
        assert code == 0 and keys(report) == {}
        assert report["checks"]["spool"]["spooled"] == 3
        # One that ended after they were parked should have: the spool grows.
        record_run(data_dir, "crawl", stamp(datetime.now(UTC) - timedelta(minutes=3)),
                   stamp(datetime.now(UTC) + timedelta(seconds=2)), "ok",
                   {"test-ok": counts(3)})
        code, report = health(data_dir, config, **env)
        assert code == 1 and keys(report) == {"spool-growing": "error"}
        assert report["problems"][0]["message"].startswith("3 record(s) wait in the spool")
        # The probe replays nothing: that is the next run's job, under the data dir lock.
        assert sum(1 for _ in open(data_dir / "spool" / f"opensearch-{prefix}.jsonl")) == 3
    finally:
        drop_prefix(opensearch_url, prefix)


def test_a_sqlite_index_that_cannot_be_opened_is_an_error(data_dir, config):
    crawl_run(data_dir, timedelta(minutes=5))
    (data_dir / "index.sqlite3").write_bytes(b"this is not a database, " * 100)
    code, report = health(data_dir, config)
    assert code == 1 and keys(report) == {"engine-unreachable": "error"}
    assert "index.sqlite3" in report["problems"][0]["message"]


def test_a_corrupt_run_history_is_an_error_not_a_traceback(data_dir, config):
    (data_dir / "runs.sqlite3").write_bytes(b"garbage " * 200)
    code, report = health(data_dir, config)
    assert code == 1 and "runs-unreadable" in keys(report)


# -- disk -------------------------------------------------------------------------------


def test_a_nearly_full_data_dir_is_an_error(tmp_path, config):
    with tmpfs(tmp_path / "disk", "16m") as disk:
        crawl_run(disk, timedelta(minutes=5))
        code, report = health(disk, config)
    assert code == 1 and keys(report) == {"disk-low": "error"}
    assert report["checks"]["disk"]["total_bytes"] <= 16 * 1024 * 1024


def test_disk_thresholds():
    def keys_of(free: int, total: int) -> list[str]:
        share = free / total
        return [p.key for p in disk_problems({"path": "/d", "free_bytes": free,
                                              "total_bytes": total, "free_share": share})]

    gib = DISK_MIN_FREE_BYTES
    assert keys_of(10 * gib, 100 * gib) == []
    assert keys_of(4 * gib, 100 * gib) == ["disk-low"]  # under 5 %
    assert keys_of(gib - 1, 2 * gib) == ["disk-low"]  # under 1 GiB


# -- cyz index status: per source -------------------------------------------------------


def test_index_status_shows_each_sources_newest_article_and_last_success(data_dir, config):
    engine = SqliteEngine(data_dir / "index.sqlite3")
    engine.write([record("a1", "t", "x", source="test-ok", published="2024-12-05T10:00:00+08:00"),
                  record("a2", "t", "x", source="test-ok", published="2024-12-10T09:00:00+08:00"),
                  record("a3", "t", "x", source="test-quiet", published=None)])
    engine.close()
    first = crawl_run(data_dir, timedelta(hours=3),
                      sources={"test-ok": counts(2), "test-quiet": counts(1)})
    second = crawl_run(data_dir, timedelta(hours=1),
                       sources={"test-ok": counts(1), "test-quiet": counts(0, timeout=2),
                                "test-flaky": counts(0, timeout=1)})
    proc = cyz("index", "status", "--json", data_dir=data_dir, config=config)
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert status["sources"] == {
        "test-flaky": {"articles": 0, "newest_published_at": None, "last_success": None},
        "test-ok": {"articles": 2, "newest_published_at": "2024-12-10T09:00:00+08:00",
                    "last_success": second},
        "test-quiet": {"articles": 1, "newest_published_at": None, "last_success": first},
    }
    human = cyz("index", "status", data_dir=data_dir, config=config).stdout
    row = next(line for line in human.splitlines() if "test-ok" in line)
    assert "2024-12-10 09:00" in row and second[:16].replace("T", " ") in row
    assert "never" in next(line for line in human.splitlines() if "test-flaky" in line)


def test_newest_by_source(engine):
    assert engine.newest_by_source() == {}
    engine.write([
        record("n1", "t", "x", source="src-a", published="2024-12-05T10:00:00+08:00"),
        # Later as an instant though earlier as a string: the engines compare instants.
        record("n2", "t", "x", source="src-a", published="2024-12-05T03:00:00+00:00"),
        record("n3", "t", "x", source="src-a", published=None),
        record("n4", "t", "x", source="src-b", published="2023-01-01T08:00:00+08:00"),
        record("n5", "t", "x", source="src-c", published=None),
    ])
    engine.refresh()
    assert engine.newest_by_source() == {
        "src-a": {"articles": 3, "newest_published_at": "2024-12-05T03:00:00+00:00"},
        "src-b": {"articles": 1, "newest_published_at": "2023-01-01T08:00:00+08:00"},
        "src-c": {"articles": 1, "newest_published_at": None},
    }


def test_the_generic_newest_by_source_agrees_with_the_engines(engine):
    from cyz.index.base import Engine

    engine.write([record("g1", "t", "x", source="s1", published="2024-12-05T10:00:00+08:00"),
                  record("g2", "t", "x", source="s1", published="2024-12-06T10:00:00+08:00"),
                  record("g3", "t", "x", source="s2", published=None)])
    engine.refresh()
    assert Engine.newest_by_source(engine) == engine.newest_by_source()

