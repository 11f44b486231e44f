"""The long-running scheduler: one crawl of every enabled source each night.

Alert runs and digests join this schedule with the alerts work; for now it only crawls.
"""

from __future__ import annotations

import logging
import os

from cyz import paths
from cyz.config import load_sources

log = logging.getLogger("cyz.scheduler")

TIMEZONE = "Asia/Shanghai"


def nightly_crawl() -> None:
    from cyz.crawl import crawl

    sources = [s for s in load_sources(paths.config_dir() / "sources.yaml") if s.enabled]
    summary = crawl(sources, data_dir=paths.data_dir())
    log.info("nightly crawl: %s", summary.as_dict())


def run_forever() -> None:
    from apscheduler.schedulers.blocking import BlockingScheduler
    from apscheduler.triggers.cron import CronTrigger

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    # Validate the config at start-up, not at 02:00.
    load_sources(paths.config_dir() / "sources.yaml")
    at = os.environ.get("CYZ_CRAWL_AT", "02:00")
    hour, minute = (int(x) for x in at.split(":"))
    scheduler = BlockingScheduler(timezone=TIMEZONE)
    scheduler.add_job(nightly_crawl, CronTrigger(hour=hour, minute=minute, timezone=TIMEZONE),
                      id="nightly-crawl", max_instances=1, coalesce=True,
                      misfire_grace_time=3600)
    log.info("scheduler started: nightly crawl at %s %s", at, TIMEZONE)
    scheduler.start()
