"""The long-running scheduler: one crawl of every enabled source each night.

Alert runs and digests join this schedule with the alerts work; for now it only crawls.
"""

from __future__ import annotations

import logging

from cyz import paths
from cyz.config import ConfigError, load_config
from cyz.settings import load_settings

log = logging.getLogger("cyz.scheduler")

TIMEZONE = "Asia/Shanghai"


def nightly_crawl() -> None:
    from cyz.crawl import crawl
    from cyz.storage import StorageError

    # The operator may have edited a file since start-up: check them all again, here in
    # the scheduler's process, before any request. A bad edit skips the night in one line.
    try:
        config = load_config(paths.config_dir())
    except ConfigError as exc:
        log.error("nightly crawl skipped: %s", exc)
        return
    sources = [s for s in config.sources if s.enabled]

    def waiting(holder: dict) -> None:
        from cyz.lock import describe

        log.info("nightly crawl waits for %s to finish", describe(holder))

    # The data dir lock: a manual crawl or a re-extraction running at 02:00 is waited
    # for, never overlapped.
    try:
        summary = crawl(sources, data_dir=paths.data_dir(), wait=True, on_wait=waiting)
    except StorageError as exc:
        log.error("nightly crawl: cannot store records in %s: %s", exc.path, exc.reason)
        return
    log.info("nightly crawl: %s", summary.as_dict())
    for line in summary.problems():
        log.error("nightly crawl: %s", line)


def run_forever() -> None:
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.cron import CronTrigger

    # Every CYZ_* setting and every config file are checked at start-up, not at 02:00
    # (ConfigError / SettingsError: `cyz schedule` exits 2 naming the file or variable).
    # The config dir is pinned, so each night's crawl reads the dir checked here.
    at = load_settings().crawl_at
    paths.pin_config_dir(load_config(paths.config_dir()).dir)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    scheduler = BlockingScheduler(timezone=TIMEZONE)
    scheduler.add_job(nightly_crawl, CronTrigger(hour=at.hour, minute=at.minute, timezone=TIMEZONE),
                      id="nightly-crawl", max_instances=1, coalesce=True,
                      misfire_grace_time=3600)
    log.info("scheduler started: nightly crawl at %s %s", at.strftime("%H:%M"), TIMEZONE)
    scheduler.start()
