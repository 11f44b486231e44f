"""`cyz demo`: serve the bundled sample sites on loopback, crawl them, show what was found."""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

from cyz import paths
from cyz.config import load_alerts, load_config
from cyz.crawl import RunSummary, crawl
from cyz.index import open_engine
from cyz.index.base import EventFilters, Filters
from cyz.lock import data_dir_lock
from cyz.timeline import find_events, print_timeline

DEMO_PREFIX = "demo-"
SAMPLE_QUERIES = ["遵义 合作", '"成渝地区双城经济圈"', "遵義"]
DEMO_EVENTS = 200  # the whole demo timeline, one line per event
DEMO_MAILDIR = "demo-mail"  # under the data dir: where the demo's alert mails go


def demo_dir() -> Path:
    return Path(str(resources.files("cyz.demo")))


def run_demo(data_dir: Path, out: Console, engine_name: str | None = None) -> RunSummary:
    from cyz.demo.server import SiteServer
    from cyz.search import search

    # The demo's own sources, with the topic.yaml (and every other file) of the config
    # dir in use: all checked before the sites are served, and pinned for the workers.
    config = load_config(paths.config_dir(), sources_file=demo_dir() / "sources.yaml")
    paths.pin_config_dir(config.dir)
    sources = config.sources
    with SiteServer(demo_dir() / "sites") as server:
        host_map = {host: f"127.0.0.1:{server.port}" for host in server.hosts}
        out.print(f"Serving {len(host_map)} sample sites on 127.0.0.1:{server.port}: "
                  f"{', '.join(sorted(host_map))}")
        out.print(f"Crawling into {data_dir} …")
        summary = crawl(sources, data_dir=data_dir, engine=engine_name, host_map=host_map)

    out.print(summary.table("Demo crawl"))
    if summary.exit_code:  # interrupted, or nothing stored: no sample searches to show
        return summary
    engine = open_engine(engine_name, data_dir)
    try:
        engine.init()
        table = Table("source", "articles", title="Indexed demo articles", title_justify="left")
        for source in sources:
            table.add_row(source.id, str(engine.count(Filters(sources=[source.id]))))
        out.print(table)
        for query in SAMPLE_QUERIES:
            result = search(query, limit=3, engine=engine)
            out.print(f"\n[bold]cyz search {query}[/bold] → {result.total} result(s)")
            for hit in result.hits:
                rec = hit.record
                out.print(f"  • {(rec.get('published_at') or '')[:10]} {rec['title']} "
                          f"[dim]({rec['source_id']})[/dim]")
                out.print(f"    {hit.snippet}", markup=False)
        timeline = find_events(EventFilters(source_prefix=DEMO_PREFIX), limit=DEMO_EVENTS,
                               engine=engine)
        out.print(f"\n[bold]cyz events[/bold] → {timeline.total} cooperation event(s) in the demo")
        print_timeline(timeline, out, compact=True)
    finally:
        engine.close()
    _demo_alerts(config, data_dir, out, engine_name)
    out.print("\nTry: cyz search 遵义 签约 OR 协议 --region 重庆   ·   cyz events --type 签约   ·   "
              "cyz demo --clean removes these records")
    return summary


def _demo_alerts(config, data_dir: Path, out: Console, engine_name: str | None) -> None:
    """The demo's alert rules, delivered into a Maildir under the data dir."""
    from cyz.alerts import run_alerts
    from cyz.alerts.mail import MaildirTransport

    rules = load_alerts(demo_dir() / "alerts.yaml", config.sources, config.topic)
    maildir = data_dir / DEMO_MAILDIR
    result = run_alerts(config, data_dir, engine=engine_name, rules=rules,
                        transport=MaildirTransport(maildir))
    out.print(f"\n[bold]cyz alerts run[/bold] → {result.sent} new mail(s) from "
              f"{len(rules)} demo rule(s), delivered to the Maildir {maildir}")
    for line in result.errors:
        out.print(f"  [red]{line}[/red]")
    import email
    import mailbox
    from email import policy

    box = mailbox.Maildir(maildir, create=False, factory=lambda f: email.message_from_binary_file(
        f, policy=policy.default))
    try:
        for message in sorted(box, key=lambda m: m["Date"] or ""):
            out.print(f"  ✉ {message['Subject']}", markup=False)
    finally:
        box.close()


def clean_demo(data_dir: Path, engine_name: str | None = None) -> int:
    """Delete the records of demo sources (ids starting `demo-`) and their crawl state."""
    with data_dir_lock(data_dir, "demo --clean"):  # not beside a crawl writing them
        return _clean_demo(data_dir, engine_name)


def _clean_demo(data_dir: Path, engine_name: str | None) -> int:
    from cyz.crawler.state import CrawlState

    engine = open_engine(engine_name, data_dir)
    try:
        engine.init()
        ids = [r["id"] for r in engine.iter_records(Filters(source_prefix=DEMO_PREFIX))]
        removed = engine.delete(ids)
    finally:
        engine.close()
    from cyz.pipelines.archive import RawArchive
    from cyz.pipelines.dedupe import ReprintIndex

    for store in (ReprintIndex(data_dir / "reprints.sqlite3"), RawArchive(data_dir)):
        try:
            store.delete(ids)
        finally:
            store.close()
    state = CrawlState(data_dir)
    try:
        state.forget_sources(DEMO_PREFIX)
    finally:
        state.close()
    from cyz.alerts.outbox import Outbox

    with Outbox(data_dir) as outbox:  # the demo rules' ids start with demo- too
        outbox.forget_rules(DEMO_PREFIX)
    shutil.rmtree(data_dir / DEMO_MAILDIR, ignore_errors=True)
    return removed
