"""The long-running scheduler (`cyz schedule`, `python scheduler.py`).

Jobs, on APScheduler 3.x in Asia/Shanghai time:
- the nightly crawl of every enabled source at `CYZ_CRAWL_AT`, limited to
  `CYZ_CRAWL_TIMEOUT`, then an alerts run (the `immediate` rules);
- one alerts run per distinct `digest_at` of the digest rules;
- maintenance every `MAINTENANCE_EVERY`: the engine's set-up and the replay of its spool,
  and pruning run records older than `KEEP_RUNS_DAYS`.

The schedule lives in memory; the run history (`cyz.runs`) is what survives a restart.
At start, a nightly crawl that the history shows did not happen (the host was down at
02:00) is run once at once, however many nights were missed, provided its time is less
than `CATCH_UP_GRACE` ago; older than that, tonight's crawl comes sooner than a late one
would be useful.

One crawl at a time per data dir, also against a manual `cyz crawl`: the scheduled crawl
does not wait for the data dir's lock; a held lock is recorded as a `skipped` crawl.

SIGTERM or SIGINT (systemd stop, docker stop, Ctrl-C): no job starts any more; a running
crawl is told to stop, as a Ctrl-C would (requests in flight finish, what was fetched is
stored, the run is recorded); the scheduler waits for its jobs and exits 0. Jobs run in
APScheduler's worker threads, where Python cannot handle signals: the main thread's
handler reaches the crawl child through `cyz.crawler.run.stop_running_crawls`. The child
also dies with the scheduler if the scheduler is killed (see `cyz.crawler.run`).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any

from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.base import BaseTrigger

from cyz import paths
from cyz.config import Config, ConfigError, load_config
from cyz.record import SHANGHAI
from cyz.settings import Settings, load_settings

log = logging.getLogger("cyz.scheduler")

TIMEZONE = "Asia/Shanghai"
TZ = SHANGHAI
CATCH_UP_GRACE = timedelta(hours=12)  # a missed nightly crawl later than this waits for tonight
MAINTENANCE_EVERY = timedelta(hours=6)
KEEP_RUNS_DAYS = 366  # run records kept: a year of nights, for `cyz runs` and health trends
CRAWL_JOB = "nightly-crawl"


def missed_crawl(data_dir: Path, at: time, now: datetime,
                 grace: timedelta = CATCH_UP_GRACE) -> datetime | None:
    """The due time of a nightly crawl to catch up now, or None: the run history has no
    crawl started at or after the last due time, and that time is within `grace`.

    Any recorded crawl counts, a manual one or a skipped one too: the night had its crawl
    (or one ran beside it), a second would fetch the same pages again."""
    from cyz.health import last_due
    from cyz.runs import last_run

    due = last_due(now, at).astimezone(TZ)
    if now - due > grace:
        return None
    last = last_run(data_dir, "crawl")
    if last is not None and datetime.fromisoformat(last["started_at"]) >= due:
        return None
    return due


class NightlyScheduler:
    """The jobs of `cyz schedule` on an APScheduler scheduler (a BlockingScheduler in
    production; tests pass a BackgroundScheduler and triggers that fire in seconds).

    `crawl_options` go to `cyz.crawl.crawl` (tests: host_map, settings_overrides)."""

    def __init__(self, config_dir: Path, data_dir: Path, settings: Settings, *,
                 scheduler: BaseScheduler | None = None,
                 crawl_trigger: BaseTrigger | None = None,
                 catch_up_grace: timedelta = CATCH_UP_GRACE,
                 crawl_options: dict[str, Any] | None = None) -> None:
        from apscheduler.schedulers.blocking import BlockingScheduler
        from apscheduler.triggers.cron import CronTrigger

        self.config_dir = Path(config_dir)
        self.data_dir = Path(data_dir)
        self.settings = settings
        self.scheduler = scheduler or BlockingScheduler(timezone=TIMEZONE)
        at = settings.crawl_at
        self.crawl_trigger = crawl_trigger or CronTrigger(hour=at.hour, minute=at.minute,
                                                          timezone=TIMEZONE)
        self.catch_up_grace = catch_up_grace
        self.crawl_options = dict(crawl_options or {})
        self.stopping = threading.Event()
        self._active = 0
        self._idle = threading.Condition()

    # -- the schedule -------------------------------------------------------------------
    def add_jobs(self, now: datetime | None = None) -> None:
        """Add every job; catch up a missed nightly crawl as of `now` (default: the
        clock; tests pass a simulated time)."""
        from apscheduler.triggers.cron import CronTrigger
        from apscheduler.triggers.interval import IntervalTrigger

        from cyz.alerts import digest_times

        now = now or datetime.now(TZ)
        # One instance at a time; runs missed while a long crawl ran are coalesced.
        common = {"max_instances": 1, "coalesce": True, "misfire_grace_time": 3600}
        catch_up = {}
        due = missed_crawl(self.data_dir, self.settings.crawl_at, now, self.catch_up_grace)
        if due is not None:
            log.info("the nightly crawl due %s did not run (run history): running it now",
                     due.strftime("%Y-%m-%d %H:%M %Z"))
            catch_up = {"next_run_time": datetime.now(TZ)}  # the real clock: run at once
        else:
            from cyz.health import last_due

            log.info("no nightly crawl to catch up (the last one due %s ran, or is more "
                     "than %s ago)", last_due(now, self.settings.crawl_at).astimezone(TZ)
                     .strftime("%Y-%m-%d %H:%M %Z"), self.catch_up_grace)
        self.scheduler.add_job(self._tracked, self.crawl_trigger, args=(self.crawl_job,),
                               id=CRAWL_JOB, name="nightly crawl", **common, **catch_up)
        # The config as validated at start: a bad file is exit 2 there, not here.
        for at in digest_times(load_config(self.config_dir)):
            self.scheduler.add_job(
                self._tracked, CronTrigger(hour=at.hour, minute=at.minute, timezone=TIMEZONE),
                args=(self.alerts_job, f"digest {at:%H:%M}"), id=f"digest-{at:%H%M}",
                name=f"alert digests at {at:%H:%M}", **common)
        self.scheduler.add_job(
            self._tracked, IntervalTrigger(seconds=MAINTENANCE_EVERY.total_seconds(),
                                           timezone=TIMEZONE),
            args=(self.maintenance_job,), id="maintenance", name="maintenance", **common)

    # -- running and stopping ---------------------------------------------------------------
    def _tracked(self, job: Callable[..., None], *args: Any) -> None:
        """Every job runs through here: counted (`wait_idle`), and not at all once the
        scheduler is stopping (a job already queued when the signal came)."""
        with self._idle:
            self._active += 1
        try:
            if not self.stopping.is_set():
                job(*args)
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    def stop(self, signum: int = signal.SIGTERM) -> None:
        """Stop scheduling and tell running crawls to stop (gracefully: they store what
        they fetched and are recorded). Safe from a signal handler; a repeat forwards the
        signal again, which a crawl takes as "stop now" after its first few seconds."""
        from apscheduler.schedulers import SchedulerNotRunningError

        from cyz.crawler.run import stop_running_crawls

        first = not self.stopping.is_set()
        self.stopping.set()
        told = stop_running_crawls(signum)
        log.info("%s: %s%s", signal.Signals(signum).name,
                 "stopping the scheduler" if first else "stop requested again",
                 f"; the running crawl is told to stop ({told})" if told else "")
        if first:
            with contextlib.suppress(SchedulerNotRunningError):
                self.scheduler.shutdown(wait=False)

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no job runs; False if `timeout` seconds passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._active == 0, timeout)

    # -- the jobs ------------------------------------------------------------------------
    def _config(self, job: str) -> Config | None:
        """The config as it is now: the operator may have edited a file since start-up.
        A bad edit skips the job in one log line (the caller records it as failed)."""
        try:
            return load_config(self.config_dir)
        except ConfigError as exc:
            log.error("%s skipped: %s", job, exc)
            return None

    def crawl_job(self) -> None:
        """The nightly crawl, then the alerts of its new articles."""
        from cyz.crawl import crawl
        from cyz.lock import DataDirLocked
        from cyz.storage import StorageError

        config = self._config("nightly crawl")
        if config is None:
            _record(self.data_dir, "crawl", "failed", ["configuration error: see the log"])
            return
        sources = [s for s in config.sources if s.enabled]
        log.info("nightly crawl of %d source(s) starts", len(sources))
        try:
            summary = crawl(sources, data_dir=self.data_dir, wait=False,
                            timeout=self.settings.crawl_timeout, **self.crawl_options)
        except DataDirLocked as exc:
            # Never two crawls of one data dir: crawl() recorded this one as skipped.
            log.warning("nightly crawl skipped: %s", exc)
            return
        except StorageError as exc:
            log.error("nightly crawl: cannot store records in %s: %s", exc.path, exc.reason)
            return
        except Exception as exc:  # noqa: BLE001 - recorded as failed by crawl(); the scheduler goes on
            log.error("nightly crawl failed: %s: %s", type(exc).__name__,
                      str(exc).strip().splitlines()[0] if str(exc).strip() else "")
            return
        log.info("nightly crawl %s: fetched %d, new %d, updated %d, unchanged %d, failed %d",
                 summary.status, summary.fetched, summary.new, summary.updated,
                 summary.unchanged, summary.failed_total)
        for line in summary.problems():
            log.error("nightly crawl: %s", line)
        if not self.stopping.is_set():
            self.alerts_job("after the crawl", config)

    def alerts_job(self, why: str, config: Config | None = None) -> None:
        """One alerts run (it records itself in the run history, kind "alerts")."""
        from cyz.alerts import run_alerts

        config = config or self._config(f"alerts ({why})")
        if config is None:
            _record(self.data_dir, "alerts", "failed", ["configuration error: see the log"])
            return
        try:
            result = run_alerts(config, self.data_dir)
        except Exception as exc:  # noqa: BLE001 - a failed alerts run must not stop the scheduler
            log.error("alerts (%s) failed: %s: %s", why, type(exc).__name__, exc)
            _record(self.data_dir, "alerts", "failed", [f"{type(exc).__name__}: {exc}"])
            return
        log.info("alerts (%s) %s: %d sent, %d queued, %d new hits", why, result.status,
                 result.sent, result.queued, result.hits)
        for line in result.errors:
            log.error("alerts (%s): %s", why, line)

    def maintenance_job(self) -> None:
        """Engine set-up and spool replay, and pruning old run records; recorded as a
        "maintenance" run. Under the data dir's lock: the replay must not race a crawl
        writing the same spool (skipped while one runs)."""
        from cyz.index import open_engine
        from cyz.lock import DataDirLocked, data_dir_lock
        from cyz.runs import now, prune_runs

        started, status, errors = now(), "ok", []
        try:
            with data_dir_lock(self.data_dir, "maintenance"):
                engine = open_engine(None, self.data_dir)
                try:
                    engine.init()  # search engines: templates, then the spool replayed
                    if getattr(engine, "online", True) is False:
                        status = "failed"
                        errors.append(f"{engine.name} is unreachable: the spool is kept")
                finally:
                    engine.close()
                pruned = prune_runs(self.data_dir, KEEP_RUNS_DAYS)
            log.info("maintenance %s: %d run record(s) older than %d days pruned", status,
                     pruned, KEEP_RUNS_DAYS)
        except DataDirLocked as exc:
            status, errors = "skipped", [str(exc)]
            log.info("maintenance skipped: %s", exc)
        except Exception as exc:  # noqa: BLE001 - recorded; the scheduler goes on
            status, errors = "failed", [f"{type(exc).__name__}: {exc}"]
            log.error("maintenance failed: %s", errors[0])
        _record(self.data_dir, "maintenance", status, errors, started_at=started)


def _record(data_dir: Path, kind: str, status: str, errors: list[str],
            started_at: str | None = None) -> None:
    """A job's run in the history (a failure to write it is only logged)."""
    from cyz.runs import now, record_quietly

    record_quietly(data_dir, kind, started_at or now(), status, errors=errors)


def nightly_crawl() -> None:
    """One nightly crawl job now, with the settings and dirs of the environment."""
    NightlyScheduler(paths.config_dir(), paths.data_dir(), load_settings()).crawl_job()


def check_engine(data_dir: Path, name: str | None = None) -> None:
    """The engine answers and the credentials may write its indices, now rather than at
    02:00 (`Engine.check_writable`). Raises, with one line naming the engine's URL and
    the setting to fix: EngineUnavailable (`cyz` exits 1), AccessDenied or
    EngineMisconfigured (exit 2), StorageError for an unwritable SQLite index (exit 4)."""
    from cyz.index import open_engine

    engine = open_engine(name, data_dir)
    try:
        engine.check_writable()
    finally:
        engine.close()


def run_forever() -> None:
    """`cyz schedule`: check everything, then run the jobs until SIGTERM/SIGINT."""
    from cyz.alerts import check_ready
    from cyz.crawler.browser import require_chromium

    # Every CYZ_* setting and every config file, alert rules and their mail settings
    # included, are checked at start-up, not at 02:00 (ConfigError / SettingsError:
    # `cyz schedule` exits 2 naming the file or variable); so are the engine and its
    # credentials (`check_engine`). The config dir is pinned, so each night's crawl
    # reads the dir checked here.
    settings = load_settings()
    config = load_config(paths.config_dir())
    check_ready(config, settings)
    require_chromium(config.sources, settings.chromium)  # for `render: browser` sources
    check_engine(paths.data_dir())
    config_dir = paths.pin_config_dir(config.dir)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    nightly = NightlyScheduler(config_dir, paths.data_dir(), settings)
    nightly.add_jobs()

    def on_signal(signum: int, frame: Any) -> None:
        nightly.stop(signum)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)
    at = settings.crawl_at
    log.info("scheduler started: nightly crawl at %s %s (CYZ_CRAWL_TIMEOUT %g s), data dir %s",
             at.strftime("%H:%M"), TIMEZONE, settings.crawl_timeout, nightly.data_dir)
    nightly.scheduler.start()  # returns once stop() shut it down
    nightly.wait_idle()  # the running crawl winds down and records its run
    log.info("scheduler stopped")
