"""Run one crawl and return its stats.

Twisted's reactor cannot be restarted within a process, yet tests crawl many times and
the scheduler crawls every night. So each crawl runs in a fresh child Python
(`python -m cyz.crawler.run FD`): no inherited threads or locks from the parent, which
may be serving the demo sites, and unlike multiprocessing's spawn no re-import of the
caller's main script. The job goes in pickled on stdin; progress snapshots and the
final stats come back as JSON lines on a pipe; the item pipelines run in the child.
"""

from __future__ import annotations

import json
import os
import pickle
import signal
import subprocess
import sys
import traceback
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path
from typing import Any

from scrapy import signals
from scrapy.exceptions import NotConfigured

from cyz.config import Source

Progress = Callable[[dict[str, Any]], None]


class CrawlError(RuntimeError):
    """The crawl process failed; the message carries the child's traceback."""


def progress_snapshot(stats: dict[str, Any], *, done: bool = False) -> dict[str, Any]:
    """The counters a progress line shows, from a Scrapy stats dict."""
    failed = sum(v for k, v in stats.items()
                 if k.startswith("cyz/failed/") and isinstance(v, int))
    return {
        "responses": stats.get("response_received_count", 0),
        "list_pages": stats.get("cyz/list_pages", 0),
        "fetched": stats.get("cyz/fetched", 0),
        "not_modified": stats.get("cyz/not_modified", 0),
        "gone": stats.get("cyz/gone", 0),
        "items": stats.get("item_scraped_count", 0),
        "failed": failed,
        "done": done,
    }


def stderr_progress(snapshot: dict[str, Any]) -> None:
    """A plain heartbeat line, for callers without a progress display of their own."""
    print(
        "crawl: {responses} responses, {list_pages} list pages, {fetched} fetched, "
        "{not_modified} unchanged, {failed} failed{end}".format(
            **snapshot, end=" (done)" if snapshot["done"] else ""),
        file=sys.stderr, flush=True,
    )


class ProgressExtension:
    """Calls the `CYZ_PROGRESS` callable every `CYZ_PROGRESS_EVERY` responses and at
    the end."""

    def __init__(self, crawler: Any, callback: Progress, every: int) -> None:
        self.crawler = crawler
        self.callback = callback
        self.every = max(1, every)
        self.seen = 0

    @classmethod
    def from_crawler(cls, crawler: Any) -> ProgressExtension:
        callback = crawler.settings.get("CYZ_PROGRESS")
        if not callable(callback):
            raise NotConfigured
        ext = cls(crawler, callback, crawler.settings.getint("CYZ_PROGRESS_EVERY", 25))
        crawler.signals.connect(ext.response_received, signal=signals.response_received)
        crawler.signals.connect(ext.spider_closed, signal=signals.spider_closed)
        return ext

    def response_received(self) -> None:
        self.seen += 1
        if self.seen % self.every == 0:
            self.callback(progress_snapshot(self.crawler.stats.get_stats()))

    def spider_closed(self) -> None:
        self.callback(progress_snapshot(self.crawler.stats.get_stats(), done=True))


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def crawl_here(
    sources: list[Source | dict],
    *,
    data_dir: Path,
    item_pipelines: dict[str, int],
    host_map: dict[str, str] | None = None,
    max_pages: int | None = None,
    settings_overrides: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Run the crawl in this process. Only once per process (the reactor cannot
    restart); `run_crawl` is the reusable entry point."""
    from scrapy.crawler import CrawlerProcess

    from cyz.crawler.settings import build_settings
    from cyz.crawler.spider import SourceSpider, source_slots

    models = [s if isinstance(s, Source) else Source.model_validate(s) for s in sources]
    overrides = dict(settings_overrides or {})
    slots = source_slots(models)
    if slots:
        overrides["DOWNLOAD_SLOTS"] = {**slots, **overrides.get("DOWNLOAD_SLOTS", {})}
    if progress is not None:
        overrides["CYZ_PROGRESS"] = progress
    settings = build_settings(Path(data_dir), host_map=host_map, max_pages=max_pages,
                              item_pipelines=item_pipelines, overrides=overrides)
    process = CrawlerProcess(settings)
    crawler = process.create_crawler(SourceSpider)
    failures: list[Any] = []
    done = process.crawl(crawler, sources=models)
    done.addErrback(failures.append)  # CrawlerProcess only logs a failed start
    process.start()
    if failures:
        failures[0].raiseException()
    return _jsonable(crawler.stats.get_stats())


def _child_main(fd: int) -> int:
    """`python -m cyz.crawler.run FD`: read the pickled job on stdin, crawl, and write
    JSON lines (progress snapshots, then the stats or an error) to file descriptor FD."""
    job = pickle.load(sys.stdin.buffer)
    for entry in reversed(job.pop("sys_path")):
        if entry not in sys.path:
            sys.path.insert(0, entry)
    with os.fdopen(fd, "w", encoding="utf-8") as out:

        def send(kind: str, body: Any) -> None:
            out.write(json.dumps({"kind": kind, "body": body}, ensure_ascii=False) + "\n")
            out.flush()

        try:
            want_progress = job.pop("want_progress")
            stats = crawl_here(**job, progress=(lambda snap: send("progress", snap))
                               if want_progress else None)
            send("done", stats)
        except BaseException:  # noqa: BLE001 - report anything to the parent, then exit
            send("error", traceback.format_exc())
            return 1
    return 0


def run_crawl(
    sources: list[Source],
    *,
    data_dir: Path,
    item_pipelines: dict[str, int],
    host_map: dict[str, str] | None = None,
    max_pages: int | None = None,
    settings_overrides: dict[str, Any] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Crawl `sources` once, in a child Python process; return the final Scrapy stats
    (JSON-serialisable, with the `cyz/...` keys). Callable any number of times.

    `item_pipelines` are dotted paths → order, imported in the child (which gets this
    process's `sys.path`); `settings_overrides` must be picklable (no callables: pass
    `progress` to receive progress snapshots here). The child's stdout goes to stderr,
    so a `--json` caller's stdout stays clean.
    """
    job = {
        "sources": [s.model_dump() if isinstance(s, Source) else dict(s) for s in sources],
        "data_dir": str(data_dir),
        "item_pipelines": dict(item_pipelines),
        "host_map": dict(host_map) if host_map else None,
        "max_pages": max_pages,
        "settings_overrides": dict(settings_overrides or {}),
        "want_progress": progress is not None,
        "sys_path": [p for p in sys.path if p and os.path.isdir(p)],
    }
    read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cyz.crawler.run", str(write_fd)],
            stdin=subprocess.PIPE, stdout=2, pass_fds=(write_fd,),
        )
    finally:
        os.close(write_fd)  # the child holds the only writer: EOF means it has exited
    stats: dict[str, Any] | None = None
    error: str | None = None
    try:
        assert proc.stdin is not None
        proc.stdin.write(pickle.dumps(job))
        proc.stdin.close()
        with os.fdopen(read_fd, "r", encoding="utf-8") as messages:
            for line in messages:
                msg = json.loads(line)
                if msg["kind"] == "progress" and progress is not None:
                    progress(msg["body"])
                elif msg["kind"] == "done":
                    stats = msg["body"]
                elif msg["kind"] == "error":
                    error = msg["body"]
        proc.wait()
    except BaseException:
        # Ctrl-C or a failing progress callback: let the crawl shut down, then re-raise.
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        raise
    if error is not None:
        raise CrawlError(f"crawl failed:\n{error}")
    if stats is None:
        raise CrawlError(f"crawl process exited with code {proc.returncode} and no result")
    return stats


if __name__ == "__main__":
    sys.exit(_child_main(int(sys.argv[1])))
