"""Run one crawl and return its stats.

Twisted's reactor cannot be restarted within a process, yet tests crawl many times and
the scheduler crawls every night. So each crawl runs in a fresh child Python
(`python -m cyz.crawler.run FD`): no inherited threads or locks from the parent, which
may be serving the demo sites, and unlike multiprocessing's spawn no re-import of the
caller's main script. The job goes in pickled on stdin; progress snapshots and the
final stats come back as JSON lines on a pipe; the item pipelines run in the child.

The child lives and stops with its parent:
- it runs in its own process group, so Ctrl-C in a terminal reaches only the parent,
  which forwards one signal; the child then stops gracefully (what was fetched is
  flushed) and still reports its stats, and the run ends as interrupted;
- it dies with its parent (Linux `PR_SET_PDEATHSIG`; elsewhere, EOF on its stdin, which
  the parent holds open), so a `kill -9` of `cyz crawl` leaves no orphan crawling on;
- it inherits the data dir lock (`cyz.lock`), so even while it winds down after its
  parent died, no other crawl of the data dir can start.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import pickle
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import date, datetime
from pathlib import Path
from typing import Any

from scrapy import signals
from scrapy.exceptions import NotConfigured

from cyz.config import Source
from cyz.lock import DataDirLock
from cyz.storage import StorageError

Progress = Callable[[dict[str, Any]], None]


class CrawlError(RuntimeError):
    """The crawl process failed; the message carries the child's traceback."""


# A second stop signal within this many seconds of the first is the same request
# (a terminal, systemd and the parent may each deliver one); a later one stops at once.
SIGNAL_GRACE = 3.0
INTERRUPTED = "cyz/interrupted"  # stats key: the signal that stopped the run
# A crawl past its time limit gets SIGTERM (a graceful stop: requests in flight finish,
# what was fetched is stored); one still running this many seconds later is killed.
# The systemd unit's TimeoutStopSec allows as much for the same stop.
KILL_GRACE = 120.0


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

    from cyz.crawler.browser import browser_settings, browser_sources, require_chromium
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
    if browser_sources(models):
        # Only a crawl with a browser source installs the browser's download handler.
        # cyz.crawl found and checked the Chromium; a direct caller gets the same check.
        chromium = settings.get("CYZ_CHROMIUM") or require_chromium(models)
        settings.setdict(browser_settings(chromium, timeout=settings.getfloat("DOWNLOAD_TIMEOUT"),
                                          host_map=host_map), priority="project")
    process = CrawlerProcess(settings)
    for name in _EXPECTED_FAILURE_LOGGERS:
        logging.getLogger(name).addFilter(_without_traceback)
    crawler = process.create_crawler(SourceSpider)
    failures: list[Any] = []
    done = process.crawl(crawler, sources=models)
    done.addErrback(failures.append)  # CrawlerProcess only logs a failed start
    stop = _GracefulStop(process)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    process.start(install_signal_handlers=False)
    if failures:
        failures[0].raiseException()
    stats = _jsonable(crawler.stats.get_stats())
    if stop.signum is not None:
        stats[INTERRUPTED] = signal.Signals(stop.signum).name
    return stats


# Loggers that report the failures of a normal night (a site down, robots.txt not
# answering) with a traceback: the failure is counted and named, the traceback is noise.
_EXPECTED_FAILURE_LOGGERS = ("scrapy.downloadermiddlewares.robotstxt",)


def _without_traceback(record: logging.LogRecord) -> bool:
    record.exc_info, record.exc_text = None, None
    return True


class _GracefulStop:
    """SIGINT/SIGTERM handler of the crawl: the first stops it gracefully (requests in
    flight finish, items are stored, the summary is reported); repeats within
    `SIGNAL_GRACE` seconds are the same request; a later one stops the reactor at once.
    Scrapy's own handlers would take a duplicate signal as "force" and lose the batch."""

    def __init__(self, process: Any) -> None:
        self.process = process
        self.signum: int | None = None
        self.first = 0.0

    def __call__(self, signum: int, frame: Any) -> None:
        from twisted.internet import reactor

        now = time.monotonic()
        if self.signum is None:
            self.signum, self.first = signum, now
            reactor.callFromThread(self._stop)
        elif now - self.first > SIGNAL_GRACE:
            reactor.callFromThread(self._stop_now)

    def _stop(self) -> None:
        self.process.stop().addErrback(lambda failure: None)  # stopping anyway

    @staticmethod
    def _stop_now() -> None:
        from twisted.internet import reactor

        with contextlib.suppress(RuntimeError):  # already stopping
            reactor.stop()


def _die_with_parent(parent: int) -> bool:
    """Have the kernel end this crawl (gracefully, by SIGTERM) when the process that
    started it dies. Linux only: False elsewhere (see `_watch_parent`)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes

    pr_set_pdeathsig = 1
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(pr_set_pdeathsig, signal.SIGTERM, 0, 0, 0) != 0:
            return False
    except (OSError, AttributeError):
        return False
    if os.getppid() != parent:  # it died before the call: no signal will come
        os.kill(os.getpid(), signal.SIGTERM)
    return True


def _watch_parent() -> None:
    """The portable way: SIGTERM ourselves at EOF on stdin (call once the job is read)."""

    def watch_stdin() -> None:
        # The parent holds our stdin open while it lives: EOF means it is gone.
        with contextlib.suppress(OSError, ValueError):
            while sys.stdin.buffer.read(65536):
                pass
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch_stdin, name="cyz-parent-watch", daemon=True).start()


def _child_main(fd: int, parent: int) -> int:
    """`python -m cyz.crawler.run FD PARENT_PID`: read the pickled job on stdin, crawl,
    and write JSON lines (progress snapshots, then the stats or an error) to file
    descriptor FD."""
    with os.fdopen(fd, "w", encoding="utf-8") as out:

        def send(kind: str, body: Any) -> None:
            out.write(json.dumps({"kind": kind, "body": body}, ensure_ascii=False) + "\n")
            out.flush()

        try:
            armed = _die_with_parent(parent)
            job = pickle.load(sys.stdin.buffer)
            if not armed:
                _watch_parent()
            for entry in reversed(job.pop("sys_path")):
                if entry not in sys.path:
                    sys.path.insert(0, entry)
            job.pop("lock_fd", None)  # inherited only to be held until this process ends
            want_progress = job.pop("want_progress")
            stats = crawl_here(**job, progress=(lambda snap: send("progress", snap))
                               if want_progress else None)
            send("done", stats)
        except KeyboardInterrupt:  # stopped before the crawl had begun
            send("interrupted", None)
            return 130
        except StorageError as exc:
            send("storage_error", exc.reason)
            return 1
        except BaseException:  # noqa: BLE001 - report anything to the parent, then exit
            send("error", traceback.format_exc())
            return 1
    return 0


def _lines(fd: int) -> Iterator[str]:
    """Lines from a pipe until EOF; a signal handler running meanwhile loses nothing."""
    buffer = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            yield line.decode("utf-8")
    if buffer.strip():
        yield buffer.decode("utf-8")


# The crawl children running now, so a scheduler's signal handler (main thread) can stop
# the crawls its worker threads started (`stop_running_crawls`).
_running: set[subprocess.Popen] = set()
_running_lock = threading.RLock()  # re-entrant: a signal handler may run while it is held


def stop_running_crawls(signum: int = signal.SIGTERM) -> int:
    """Send `signum` to every crawl child of this process (a graceful stop: each run
    returns its stats, interrupted); returns how many were told. Callable from any thread,
    signal handlers included."""
    with _running_lock:
        running = [proc for proc in _running if proc.poll() is None]
        for proc in running:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)
    return len(running)


@contextlib.contextmanager
def _registered(proc: subprocess.Popen) -> Iterator[None]:
    with _running_lock:
        _running.add(proc)
    try:
        yield
    finally:
        with _running_lock:
            _running.discard(proc)


class _Deadline:
    """The whole-run time limit: SIGTERM to the child after `timeout` seconds, SIGKILL
    `grace` seconds later if it has not finished by then."""

    def __init__(self, proc: subprocess.Popen, timeout: float | None, grace: float) -> None:
        self.proc, self.timeout, self.grace = proc, timeout, grace
        self.expired = False
        self.killed = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="cyz-crawl-deadline",
                                        daemon=True)

    def __enter__(self) -> _Deadline:
        if self.timeout is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()

    def _watch(self) -> None:
        assert self.timeout is not None
        if self._done.wait(self.timeout) or self.proc.poll() is not None:
            return
        self.expired = True
        logging.getLogger(__name__).error(
            "the crawl is still running after %g s (CYZ_CRAWL_TIMEOUT): stopping it", self.timeout)
        with contextlib.suppress(ProcessLookupError):
            self.proc.send_signal(signal.SIGTERM)
        if self._done.wait(self.grace) or self.proc.poll() is not None:
            return
        logging.getLogger(__name__).error("the crawl did not stop within %g s: killing it",
                                          self.grace)
        self.killed = True
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()

    def reason(self) -> str:
        """The `cyz/interrupted` value of a run stopped by the time limit."""
        assert self.timeout is not None
        what = "killed" if self.killed else "stopped"
        return f"CYZ_CRAWL_TIMEOUT: {what} after {self.timeout:g} s"


@contextlib.contextmanager
def _forwarding_signals(proc: subprocess.Popen, received: list[int]) -> Iterator[None]:
    """While the crawl runs, SIGINT/SIGTERM to this process go to the crawl child, which
    stops gracefully and reports; this process waits for that report. (Only the main
    thread can handle signals: elsewhere, e.g. in the scheduler, they keep their way.)"""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def forward(signum: int, frame: Any) -> None:
        received.append(signum)
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signum)

    previous = {sig: signal.signal(sig, forward) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_crawl(
    sources: list[Source],
    *,
    data_dir: Path,
    item_pipelines: dict[str, int],
    host_map: dict[str, str] | None = None,
    max_pages: int | None = None,
    settings_overrides: dict[str, Any] | None = None,
    progress: Progress | None = None,
    lock: DataDirLock | None = None,
    timeout: float | None = None,
    kill_grace: float = KILL_GRACE,
) -> dict[str, Any]:
    """Crawl `sources` once, in a child Python process; return the final Scrapy stats
    (JSON-serialisable, with the `cyz/...` keys). Callable any number of times.

    `item_pipelines` are dotted paths → order, imported in the child (which gets this
    process's `sys.path`); `settings_overrides` must be picklable (no callables: pass
    `progress` to receive progress snapshots here). The child's stdout goes to stderr,
    so a `--json` caller's stdout stays clean. `lock`, the data dir's lock held by the
    caller, is inherited by the child.

    SIGINT/SIGTERM during the crawl stop it gracefully: the stats of what was done come
    back with `cyz/interrupted` set. So does `timeout` (seconds; None: no limit): a crawl
    still running after it is sent SIGTERM, and SIGKILL `kill_grace` seconds later; its
    `cyz/interrupted` names CYZ_CRAWL_TIMEOUT. A storage failure before the crawl could
    begin raises `StorageError`.

    The child is registered while it runs, so `stop_running_crawls` (the scheduler's
    signal handler) can stop it from any thread.
    """
    lock_fd = lock.fd if lock is not None else None
    job = {
        "sources": [s.model_dump() if isinstance(s, Source) else dict(s) for s in sources],
        "data_dir": str(data_dir),
        "item_pipelines": dict(item_pipelines),
        "host_map": dict(host_map) if host_map else None,
        "max_pages": max_pages,
        "settings_overrides": dict(settings_overrides or {}),
        "want_progress": progress is not None,
        "sys_path": [p for p in sys.path if p and os.path.isdir(p)],
        "lock_fd": lock_fd,
    }
    read_fd, write_fd = os.pipe()
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cyz.crawler.run", str(write_fd), str(os.getpid())],
            stdin=subprocess.PIPE, stdout=2,
            pass_fds=(write_fd,) if lock_fd is None else (write_fd, lock_fd),
            process_group=0,  # Ctrl-C reaches us only; we forward it (see the module doc)
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)  # the child holds the only writer: EOF means it has exited
    if lock is not None:
        lock.note(crawl_pid=proc.pid)
    stats: dict[str, Any] | None = None
    error: str | None = None
    storage_error: str | None = None
    received: list[int] = []
    deadline = _Deadline(proc, timeout, kill_grace)
    try:
        with _registered(proc), deadline, _forwarding_signals(proc, received):
            assert proc.stdin is not None
            proc.stdin.write(pickle.dumps(job))
            proc.stdin.flush()  # and kept open: its EOF tells the child we are gone
            for line in _lines(read_fd):
                msg = json.loads(line)
                if msg["kind"] == "progress" and progress is not None:
                    progress(msg["body"])
                elif msg["kind"] == "done":
                    stats = msg["body"]
                elif msg["kind"] == "error":
                    error = msg["body"]
                elif msg["kind"] == "storage_error":
                    storage_error = msg["body"]
            proc.wait()
    except BaseException:
        # A failing progress callback: let the crawl shut down, then re-raise.
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        raise
    finally:
        os.close(read_fd)
        with contextlib.suppress(OSError):
            proc.stdin.close()
    if storage_error is not None:
        raise StorageError(data_dir, storage_error)
    if error is not None:
        raise CrawlError(f"crawl failed:\n{error}")
    if deadline.expired:
        # Stopped (or killed) by the time limit: what came back, and the limit named.
        return {**(stats or {}), INTERRUPTED: deadline.reason()}
    if stats is None and received:
        # Stopped before it had begun: nothing was done.
        return {INTERRUPTED: signal.Signals(received[0]).name}
    if stats is None and -proc.returncode in (signal.SIGINT, signal.SIGTERM):
        # Told to stop (by `stop_running_crawls`, say) before its handler was installed.
        return {INTERRUPTED: signal.Signals(-proc.returncode).name}
    if stats is None:
        raise CrawlError(f"crawl process exited with code {proc.returncode} and no result")
    if received and INTERRUPTED not in stats:
        stats[INTERRUPTED] = signal.Signals(received[0]).name
    return stats


if __name__ == "__main__":
    sys.exit(_child_main(int(sys.argv[1]), int(sys.argv[2])))
