"""The scheduler (`cyz schedule`) on the real APScheduler: scheduled crawls recorded in the
run history, the overlap guard, catch-up after downtime, a timed-out crawl recorded as
failed and the next one working, and a clean stop on SIGTERM in the middle of a crawl.

The in-process tests run the scheduler's jobs on a BackgroundScheduler with triggers
that fire at once; the catch-up decision takes a simulated "now". Crawls reach loopback
sites (tests/test_run_integrity.py's `Site`). Waits are on the run history, with a deadline.
"""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Iterator
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from sites import FAST
from test_run_integrity import Cyz, Site, alive, crawl_child, lock_is_free, stored, wait_for

from cyz.health import last_due
from cyz.lock import data_dir_lock
from cyz.runs import list_runs, prune_runs, record_run
from cyz.scheduling import CRAWL_JOB, TIMEZONE, TZ, NightlyScheduler, missed_crawl
from cyz.settings import load_settings

REPO = Path(__file__).resolve().parents[1]


def crawls(data_dir: Path) -> list[dict]:
    return [r for r in list_runs(data_dir, None) if r["kind"] == "crawl"]


def config_dir_for(site: Site, path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO / "config" / "topic.yaml", path / "topic.yaml")
    site.sources_file(path / "sources.yaml")
    return path


@pytest.fixture
def site(site_server) -> Iterator:
    """make(**kwargs) → a loopback `Site`; its held pages are released at the end."""
    made: list[Site] = []

    def make(**kwargs) -> Site:
        made.append(Site(site_server, **kwargs))
        return made[-1]

    yield make
    for s in made:
        s.release()


@pytest.fixture
def nightly(tmp_path: Path, site_server) -> Iterator:
    """make(site, **settings) → a NightlyScheduler on a BackgroundScheduler, crawling
    `site` through the loopback server; stopped at the end of the test."""
    made: list[NightlyScheduler] = []

    def make(site: Site, *, trigger=None, env: dict[str, str] | None = None) -> NightlyScheduler:
        sched = NightlyScheduler(
            config_dir_for(site, tmp_path / "config"), tmp_path / "data",
            load_settings({"CYZ_CRAWL_AT": "02:00", **(env or {})}),
            scheduler=BackgroundScheduler(timezone=TIMEZONE), crawl_trigger=trigger,
            crawl_options={"engine": "sqlite", "host_map": site_server.host_map([site.host]),
                           "settings_overrides": {**FAST, "CYZ_WORKERS": 1}})
        made.append(sched)
        return sched

    yield make
    for sched in made:
        sched.stop()
        assert sched.wait_idle(60)


def soon() -> DateTrigger:
    return DateTrigger(run_date=datetime.now(TZ) + timedelta(milliseconds=200))


def test_a_scheduled_crawl_is_recorded_then_alerts_run(nightly, site, tmp_path):
    s = site(articles=5)
    sched = nightly(s, trigger=soon())
    sched.add_jobs()
    sched.scheduler.start()
    data_dir = tmp_path / "data"
    run = wait_for(lambda: next(iter(crawls(data_dir)), None), "the scheduled crawl recorded")
    assert run["status"] == "ok" and run["sources"]["run-test"]["new"] == 5, run
    wait_for(lambda: any(r["kind"] == "alerts" for r in list_runs(data_dir, None)),
             "the alerts run after the crawl")
    assert len(stored(data_dir)) == 5


def test_a_crawl_already_holding_the_data_dir_makes_the_scheduled_one_skipped(
        nightly, site, tmp_path):
    s = site(articles=3)
    data_dir = tmp_path / "data"
    sched = nightly(s, trigger=soon())
    with data_dir_lock(data_dir, "crawl", command="cyz crawl"):  # a manual crawl running
        sched.add_jobs()
        sched.scheduler.start()
        run = wait_for(lambda: next(iter(crawls(data_dir)), None), "the scheduled crawl")
        assert sched.wait_idle(60)
    assert run["status"] == "skipped" and "in use" in run["errors"][0], run
    assert s.served == 0  # it did not wait and did not crawl beside the other one


def _simulated_night(at: time) -> tuple[datetime, datetime]:
    """A night's due time and an hour after it (a fixed date: the history decides)."""
    due = datetime.combine(date(2024, 5, 2), at, tzinfo=TZ)
    return due, due + timedelta(hours=1)


def _far_from_now() -> time:
    """A crawl time six hours from the real clock: the cron trigger stays quiet."""
    return time((datetime.now(TZ).hour + 6) % 24, 0)


def test_after_downtime_the_missed_night_is_crawled_once_at_start(nightly, site, tmp_path):
    s = site(articles=3)
    data_dir = tmp_path / "data"
    at = _far_from_now()
    due, now = _simulated_night(at)
    two_days_ago = (due - timedelta(days=2)).astimezone(UTC).isoformat(timespec="seconds")
    record_run(data_dir, "crawl", two_days_ago, two_days_ago, "ok", {})
    sched = nightly(s, env={"CYZ_CRAWL_AT": f"{at:%H:%M}"})
    sched.add_jobs(now=now)
    sched.scheduler.start()
    wait_for(lambda: len(crawls(data_dir)) == 2, "the catch-up crawl recorded")
    assert sched.wait_idle(60)
    runs = crawls(data_dir)
    assert len(runs) == 2 and runs[0]["status"] == "ok", runs  # one run for every missed night
    following = sched.scheduler.get_job(CRAWL_JOB).next_run_time
    assert following > datetime.now(TZ) + timedelta(hours=5)  # tonight's, by the cron


def test_no_catch_up_when_last_nights_crawl_ran(nightly, site, tmp_path):
    s = site(articles=3)
    data_dir = tmp_path / "data"
    at = _far_from_now()
    due, now = _simulated_night(at)
    ran = (due + timedelta(minutes=1)).astimezone(UTC).isoformat(timespec="seconds")
    record_run(data_dir, "crawl", ran, ran, "ok", {})
    sched = nightly(s, env={"CYZ_CRAWL_AT": f"{at:%H:%M}"})
    sched.add_jobs(now=now)
    sched.scheduler.start()
    assert sched.scheduler.get_job(CRAWL_JOB).next_run_time > datetime.now(TZ) + timedelta(hours=5)
    assert sched.wait_idle(5) and len(crawls(data_dir)) == 1 and s.served == 0


def test_the_catch_up_decision(tmp_path):
    at = time(2, 0)
    due, _ = _simulated_night(at)
    assert last_due(due, at) == due
    assert last_due(due - timedelta(seconds=1), at) == due - timedelta(days=1)
    assert missed_crawl(tmp_path, at, due + timedelta(hours=1)) == due  # no history at all
    assert missed_crawl(tmp_path, at, due + timedelta(hours=13)) is None  # past the grace
    assert missed_crawl(tmp_path, at, due + timedelta(hours=13), timedelta(hours=14)) == due
    stamp = due.astimezone(UTC).isoformat(timespec="seconds")
    record_run(tmp_path, "crawl", stamp, stamp, "skipped", {})  # a crawl ran beside it
    assert missed_crawl(tmp_path, at, due + timedelta(hours=1)) is None


def test_a_timed_out_crawl_is_recorded_failed_and_the_next_one_works(nightly, site, tmp_path):
    s = site(articles=40, delay=1.0)
    data_dir = tmp_path / "data"
    sched = nightly(s, trigger=IntervalTrigger(seconds=1, timezone=TIMEZONE),
                    env={"CYZ_CRAWL_TIMEOUT": "3s"})
    sched.add_jobs()
    sched.scheduler.start()
    first = wait_for(lambda: next(iter(crawls(data_dir)), None), "the first crawl recorded")
    assert first["status"] == "failed", first
    assert any("CYZ_CRAWL_TIMEOUT" in e for e in first["errors"]), first
    assert 0 < len(stored(data_dir)) < 40  # stopped gracefully: what was fetched is stored
    # The next run, on a site that answers at once and with time enough, works: the
    # lock was released and nothing of the stopped run is in its way.
    s.delay = 0
    sched.settings = load_settings({"CYZ_CRAWL_AT": "02:00", "CYZ_CRAWL_TIMEOUT": "120s"})
    wait_for(lambda: any(r["status"] == "ok" for r in crawls(data_dir)), "a good crawl",
             timeout=120)
    assert len(stored(data_dir)) == 40


def test_prune_runs_drops_only_old_records(tmp_path):
    old = (datetime.now(UTC) - timedelta(days=400)).isoformat(timespec="seconds")
    new = datetime.now(UTC).isoformat(timespec="seconds")
    record_run(tmp_path, "crawl", old, old, "ok", {})
    record_run(tmp_path, "crawl", new, new, "ok", {})
    assert prune_runs(tmp_path, 366) == 1
    assert [r["started_at"] for r in list_runs(tmp_path)] == [new]
    assert prune_runs(tmp_path / "none", 1) == 0


def test_maintenance_is_recorded_and_skipped_while_a_crawl_holds_the_data_dir(
        nightly, site, tmp_path):
    sched = nightly(site(articles=1))
    data_dir = tmp_path / "data"
    sched.maintenance_job()
    with data_dir_lock(data_dir, "crawl"):
        sched.maintenance_job()
    runs = [r for r in list_runs(data_dir, None) if r["kind"] == "maintenance"]
    assert [r["status"] for r in runs] == ["skipped", "ok"], runs


# -- the real command: SIGTERM during a crawl -------------------------------------------

def test_sigterm_stops_the_scheduler_cleanly_during_a_crawl(site_server, site, tmp_path):
    s = site(articles=400, delay=0.3)
    config = config_dir_for(s, tmp_path / "config")
    data_dir = tmp_path / "data"
    an_hour_ago = datetime.now(TZ) - timedelta(hours=1)  # so the catch-up crawls at start
    runner = Cyz(tmp_path, site_server.port)
    try:
        proc = runner.start("schedule", data_dir=data_dir, CYZ_CONFIG_DIR=str(config),
                            CYZ_CRAWL_AT=f"{an_hour_ago:%H:%M}", CYZ_WORKERS="1")
        wait_for(lambda: s.served >= 5, "the catch-up crawl under way")
        child = wait_for(lambda: crawl_child(proc.pid), "the crawl child")
        os.kill(proc.pid, signal.SIGTERM)  # what systemd (KillMode=mixed) and docker stop do
        code, out, err = runner.finish(proc, timeout=60)
        assert code == 0, (code, out, err)
        assert "Traceback" not in err, err
        assert not alive(child)
        assert lock_is_free(data_dir)
        run = crawls(data_dir)[0]
        assert run["status"] == "failed" and any("SIGTERM" in e for e in run["errors"]), run
        fetched = run["sources"]["run-test"]["new"]
        assert 5 <= fetched < 400 and len(stored(data_dir)) == fetched  # checkpointed
        assert "catch" in err.lower() or "did not run" in err
    finally:
        runner.cleanup()


def test_cyz_crawl_past_crawl_timeout_stops_is_recorded_failed_and_frees_the_data_dir(
        site_server, site, tmp_path):
    import json

    from cyz.exit_codes import ExitCode

    s = site(articles=60, delay=1.0)
    sources = s.sources_file(tmp_path / "sources.yaml")
    data_dir = tmp_path / "data"
    runner = Cyz(tmp_path, site_server.port)
    try:
        code, out, err = runner.run("crawl", "--sources", str(sources), "--json",
                                    data_dir=data_dir, timeout=60, CYZ_CRAWL_TIMEOUT="3s",
                                    CYZ_WORKERS="1")
        assert code == ExitCode.INTERRUPTED, (code, out, err)
        assert "CYZ_CRAWL_TIMEOUT" in err and "Traceback" not in err, err
        assert lock_is_free(data_dir)
        code, out, err = runner.run("runs", "--json", data_dir=data_dir, timeout=60)
        runs = json.loads(out)
        assert runs[0]["status"] == "failed", runs
        assert any("CYZ_CRAWL_TIMEOUT" in e for e in runs[0]["errors"]), runs
        s.delay = 0
        code, out, err = runner.run("crawl", "--sources", str(sources), "--json",
                                    data_dir=data_dir, timeout=120, CYZ_WORKERS="1")
        assert code == ExitCode.OK, (code, out, err)
        assert len(stored(data_dir)) == 60
    finally:
        runner.cleanup()
