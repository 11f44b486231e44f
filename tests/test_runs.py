"""Run history: real crawls of the loopback sites record their runs (per-source counts,
status), `cyz runs` lists them and `cyz index status` shows the last one."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from sites import FAST, gov_source, news_source  # tests/ is on sys.path

from cyz.crawl import crawl
from cyz.lock import DataDirLocked, data_dir_lock
from cyz.runs import RUNS_FILE, last_run, list_runs, record_run

REPO = Path(__file__).resolve().parents[1]
COUNTS = ("fetched", "new", "updated", "unchanged")


def cyz(*args: str, data_dir: Path) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("CYZ_ENGINE", "CYZ_INDEX"))}
    environ.update({"CYZ_DATA_DIR": str(data_dir), "COLUMNS": "200"})
    proc = subprocess.run([sys.executable, "-m", "cyz.cli", *args], capture_output=True,
                          text=True, env=environ, cwd=REPO, timeout=300)
    assert proc.returncode == 0, (args, proc.returncode, proc.stdout, proc.stderr)
    return proc


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def down_source(source_id: str = "test-down"):
    """A source whose site does not answer (nothing listens on its port)."""
    return gov_source(id=source_id, start_urls=[f"http://127.0.0.1:{closed_port()}/xwdt/"])


@pytest.fixture(scope="module")
def two_sources(tmp_path_factory, site_server, fault_sites):
    data_dir = tmp_path_factory.mktemp("runs-two")
    summary = crawl([gov_source(), news_source()], data_dir=data_dir, engine="sqlite",
                    host_map=site_server.host_map(), settings_overrides=FAST)
    return data_dir, summary


def test_a_crawl_records_one_run_with_per_source_counts_that_add_up(two_sources):
    data_dir, summary = two_sources
    runs = list_runs(data_dir, 10)
    assert len(runs) == 1
    run = runs[0]
    assert run["kind"] == "crawl" and run["status"] == "ok" == summary.status
    assert run["started_at"] <= run["ended_at"]
    assert set(run["sources"]) == {"test-gov", "test-news"}
    assert run["sources"] == summary.sources == summary.as_dict()["sources"]
    for key in COUNTS:
        assert sum(c[key] for c in run["sources"].values()) == getattr(summary, key), key
    assert summary.new > 0 and all(c["new"] > 0 for c in run["sources"].values())
    failed: dict[str, int] = {}
    for counts in run["sources"].values():
        for reason, n in counts["failed"].items():
            failed[reason] = failed.get(reason, 0) + n
    assert failed == summary.failed and summary.failed  # the fault sites fail some pages
    assert run["alerts_sent"] == 0 and run["errors"] == []


def test_a_source_whose_site_is_down_makes_the_run_partial(tmp_path, site_server, fault_sites):
    summary = crawl([gov_source(), down_source()], data_dir=tmp_path, engine="sqlite",
                    host_map=site_server.host_map(), settings_overrides=FAST)
    run = last_run(tmp_path, "crawl")
    assert run["status"] == "partial" == summary.status
    down = run["sources"]["test-down"]
    assert {k: down[k] for k in COUNTS} == dict.fromkeys(COUNTS, 0)
    assert down["failed"] and sum(down["failed"].values()) >= 1
    assert all(reason.isidentifier() for reason in down["failed"])  # by reason, e.g. connection_refused
    assert run["sources"]["test-gov"]["new"] > 0
    assert any(e.startswith("test-down: no article page answered") for e in run["errors"])


def test_every_source_down_fails_the_run_and_a_broken_history_never_fails_the_crawl(
        tmp_path, caplog):
    data_dir = tmp_path / "data"
    summary = crawl([down_source("down-a"), down_source("down-b")], data_dir=data_dir,
                    engine="sqlite", settings_overrides=FAST)
    run = last_run(data_dir)
    assert run["status"] == "failed" == summary.status
    assert set(run["sources"]) == {"down-a", "down-b"}
    assert any("nothing could be fetched" in e for e in run["errors"])

    broken = tmp_path / "broken"
    (broken / RUNS_FILE).mkdir(parents=True)  # the history cannot be written
    again = crawl([down_source()], data_dir=broken, engine="sqlite", settings_overrides=FAST)
    assert again.status == "failed"
    assert "cannot record the run in the run history" in caplog.text


def test_a_locked_data_dir_is_recorded_as_skipped(tmp_path):
    with data_dir_lock(tmp_path, "crawl"), pytest.raises(DataDirLocked):
        crawl([gov_source()], data_dir=tmp_path, engine="sqlite", settings_overrides=FAST)
    run = last_run(tmp_path)
    assert run["status"] == "skipped"
    assert len(run["errors"]) == 1 and "in use" in run["errors"][0]
    assert run["sources"] == {"test-gov": {"fetched": 0, "new": 0, "updated": 0,
                                           "unchanged": 0, "not_due": 0, "failed": {}}}


def test_a_crash_is_recorded_as_failed_with_its_line(tmp_path, monkeypatch):
    import cyz.crawler.run

    def boom(*args, **kwargs):
        raise RuntimeError("the crawl child crashed\nTraceback ...")

    monkeypatch.setattr(cyz.crawler.run, "run_crawl", boom)
    with pytest.raises(RuntimeError):
        crawl([gov_source()], data_dir=tmp_path, engine="sqlite", settings_overrides=FAST)
    run = last_run(tmp_path)
    assert run["status"] == "failed"
    assert run["errors"] == ["RuntimeError: the crawl child crashed"]


def test_cyz_runs_json_lists_runs_newest_first(two_sources, tmp_path):
    data_dir, summary = two_sources
    runs = json.loads(cyz("runs", "--json", data_dir=data_dir).stdout)
    assert isinstance(runs, list) and len(runs) == 1
    run = runs[0]
    assert set(run) == {"kind", "started_at", "ended_at", "status", "sources", "alerts_sent",
                        "errors"}
    for counts in run["sources"].values():
        assert set(counts) == {*COUNTS, "not_due", "failed"}  # not_due: issue 15
        assert all(isinstance(n, int) for n in counts["failed"].values())

    # newest first, --limit, the table and an empty history
    other = tmp_path / "other"
    record_run(other, "crawl", "2026-01-01T02:00:00+00:00", "2026-01-01T02:05:30+00:00",
               "ok", {"a": {"fetched": 3, "new": 2, "updated": 1, "unchanged": 0,
                            "failed": {"http_5xx": 1}}})
    record_run(other, "crawl", "2026-01-02T02:00:00+00:00", "2026-01-02T02:00:01+00:00",
               "skipped", {}, errors=["locked by another run"])
    listed = json.loads(cyz("runs", "--json", "--limit", "1", data_dir=other).stdout)
    assert [r["status"] for r in listed] == ["skipped"]
    table = cyz("runs", data_dir=other).stdout
    assert table.index("skipped") < table.index("5m30s")
    assert "locked by another run" in table
    assert "no runs recorded" in cyz("runs", data_dir=tmp_path / "empty").stdout
    assert json.loads(cyz("runs", "--json", data_dir=tmp_path / "empty").stdout) == []


def test_index_status_shows_the_last_run(two_sources):
    data_dir, _ = two_sources
    status = json.loads(cyz("index", "status", "--json", data_dir=data_dir).stdout)
    run = list_runs(data_dir, 1)[0]
    assert status["last_run"] == {"ended_at": run["ended_at"], "status": "ok"}
    assert "last_run" in cyz("index", "status", data_dir=data_dir).stdout
