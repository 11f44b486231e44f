"""Keyword alerts by email: rules (`config/alerts.yaml`) matched against the articles
new to them, recorded in an outbox before they are sent, sent exactly once.

`run_alerts` is the one entry point (`cyz alerts run`, the scheduler after each crawl
and at digest times, `cyz demo` into a Maildir).
"""

from cyz.alerts.run import AlertsRun, check_ready, digest_times, run_alerts

__all__ = ["AlertsRun", "check_ready", "digest_times", "run_alerts"]
