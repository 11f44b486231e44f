"""One crawl run as a library call: sources in, a run summary out.

The run holds the data dir's lock (`cyz.lock`) throughout, whoever calls it: `cyz
crawl`, `cyz demo`, the scheduler. Its summary decides the exit status (`exit_code`).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cyz.config import Source
from cyz.crawler.items import SOURCE_STATS
from cyz.exit_codes import ExitCode
from cyz.lock import DataDirLocked, data_dir_lock
from cyz.storage import StorageError

# The per-run path of every article page, in order (see crawler/process.py and crawler/store.py).
ITEM_PIPELINES = {
    "cyz.crawler.process.ProcessPipeline": 300,
    "cyz.crawler.store.DedupePipeline": 500,
    "cyz.crawler.store.StorePipeline": 800,
}


@dataclass
class RunSummary:
    fetched: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    not_article: int = 0  # pages reached as articles that are lists or section indexes
    url_duplicates: int = 0
    reprints: int = 0
    gone: int = 0
    list_pages: int = 0
    list_pages_capped: int = 0  # list pages not fetched: the source's list page cap
    # known articles met on lists, feeds or sitemaps and not asked this run: not due yet
    # by their source's revisit policy (they cost no request)
    not_due: int = 0
    failed: dict[str, int] = field(default_factory=dict)
    not_stored: int = 0  # records fetched and extracted that could not be stored or spooled
    storage_error: str | None = None  # the run's storage failure, in one line
    interrupted: str | None = None  # the signal that stopped the run (SIGINT, SIGTERM)
    pages_received: int = 0  # list pages, feeds, sitemaps and article answers (200/304/404/410)
    reextracted: int = 0  # stale records (an older pipeline's) brought up to date after the crawl
    stale_left: int = 0  # stale records left for the next runs (or `cyz reextract --stale`)
    # stale records whose page the current pipeline judges a list page: removed
    reextract_removed: int = 0
    # {source_id: {fetched, new, updated, unchanged, failed: {reason: n}}}, every source
    # crawled (zeros included) and any other the stats name
    sources: dict[str, dict] = field(default_factory=dict)
    stats: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_stats(cls, stats: dict, source_ids: list[str] | tuple[str, ...] = ()) -> RunSummary:
        def n(key: str) -> int:
            return int(stats.get(f"cyz/{key}", 0) or 0)

        named = {key[len(SOURCE_STATS):].split("/", 1)[0] for key in stats
                 if key.startswith(SOURCE_STATS)}
        ids = list(dict.fromkeys(source_ids)) + sorted(named - set(source_ids))
        sources = {sid: _source_counts(stats, sid) for sid in ids}

        failed = {key.removeprefix("cyz/failed/"): int(v) for key, v in stats.items()
                  if key.startswith("cyz/failed/") and v}
        return cls(fetched=n("fetched") + n("not_modified"), new=n("new"), updated=n("updated"),
                   unchanged=n("unchanged"), not_article=n("not_article"),
                   url_duplicates=n("url_duplicates"),
                   reprints=n("reprints"), gone=n("gone"), list_pages=n("list_pages"),
                   list_pages_capped=n("list_pages_capped"), not_due=n("not_due"),
                   failed=dict(sorted(failed.items())), not_stored=n("not_stored"),
                   storage_error=stats.get("cyz/storage_error") or None,
                   interrupted=stats.get("cyz/interrupted") or None,
                   pages_received=sum(n(k) for k in ("list_pages", "feeds", "sitemaps",
                                                     "fetched", "not_modified", "gone")),
                   sources=sources, stats=stats)

    def answered(self, source_id: str) -> int:
        """The article pages of a source that answered (200, 304, or gone: 404/410), or
        that its lists still showed and were not due (the lists answered, the articles
        are known: nothing needed asking)."""
        gone = int(self.stats.get(f"{SOURCE_STATS}{source_id}/gone", 0) or 0)
        counts = self.sources.get(source_id, {})
        return counts.get("fetched", 0) + gone + counts.get("not_due", 0)

    @property
    def status(self) -> str:
        """The run's status in the run history: `failed` when the exit code is not OK or
        no source had one article page answer (or not due: see `answered`); `partial`
        when some sources got nothing while others worked; else `ok` (a source with a few
        failures is counted, not flagged)."""
        if self.exit_code != ExitCode.OK:
            return "failed"
        if not self.sources:
            return "ok"
        answered = [self.answered(sid) > 0 for sid in self.sources]
        if not any(answered):
            return "failed"
        return "ok" if all(answered) else "partial"

    def errors(self) -> list[str]:
        """The problems of the run, then one line per source that got nothing."""
        lines = self.problems()
        for sid, counts in self.sources.items():
            if self.answered(sid) == 0:
                reasons = ", ".join(f"{r} {n}" for r, n in counts["failed"].items())
                lines.append(f"{sid}: no article page answered"
                             + (f" ({reasons})" if reasons else ""))
        return lines

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    @property
    def nothing_fetched(self) -> bool:
        """Requests were made and not one page came back (network, DNS or proxy down)."""
        attempted = self.failed_total or self.stats.get("downloader/request_count", 0)
        return bool(attempted) and self.pages_received == 0

    @property
    def exit_code(self) -> ExitCode:
        """Records lost first, then an interruption, then a run that reached nothing;
        sources that failed while others worked are counted, not fatal."""
        if self.not_stored or self.storage_error:
            return ExitCode.NOT_STORED
        if self.interrupted:
            return ExitCode.INTERRUPTED
        if self.nothing_fetched:
            return ExitCode.NOTHING_FETCHED
        return ExitCode.OK

    def problems(self) -> list[str]:
        """One line per reason the run did not do its work (what `cyz crawl` prints)."""
        lines = []
        if self.storage_error:
            lines.append(self.storage_error)
        elif self.not_stored:
            lines.append(f"{self.not_stored} record(s) could not be stored")
        if self.interrupted:
            lines.append(f"interrupted ({self.interrupted}): stopped early; what was fetched "
                         "is stored")
        if self.nothing_fetched and not self.interrupted:
            reasons = ", ".join(f"{r} {n}" for r, n in self.failed.items()) or "no answer"
            lines.append(f"nothing could be fetched ({reasons}): is the network, DNS or "
                         "proxy down?")
        return lines

    def table(self, title: str = "Crawl summary"):
        """The summary as a rich table (what `cyz crawl` and `cyz demo` print)."""
        from rich.table import Table

        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column(justify="right")
        rows = [("fetched", self.fetched), ("new", self.new), ("updated", self.updated),
                ("unchanged", self.unchanged), ("not due", self.not_due),
                ("URL duplicates", self.url_duplicates),
                ("reprints", self.reprints), ("gone", self.gone), ("failed", self.failed_total)]
        rows += [(f"  failed: {reason}", count) for reason, count in self.failed.items()]
        if self.not_article:
            rows.append(("not articles (list pages)", self.not_article))
        if self.not_stored:
            rows.append(("not stored", self.not_stored))
        if self.list_pages_capped:
            rows.append(("list pages capped", self.list_pages_capped))
        if self.reextracted or self.stale_left or self.reextract_removed:
            rows += [("re-extracted (pipeline upgrade)", self.reextracted),
                     ("stale, left for later runs", self.stale_left)]
        if self.reextract_removed:
            rows.append(("removed: no longer articles", self.reextract_removed))
        for label, value in rows:
            table.add_row(label, str(value))
        return table

    def as_dict(self) -> dict:
        return {"fetched": self.fetched, "new": self.new, "updated": self.updated,
                "unchanged": self.unchanged, "not_due": self.not_due,
                "not_article": self.not_article,
                "url_duplicates": self.url_duplicates,
                "reprints": self.reprints, "gone": self.gone, "list_pages": self.list_pages,
                "list_pages_capped": self.list_pages_capped, "failed": self.failed,
                "not_stored": self.not_stored, "interrupted": self.interrupted,
                "reextracted": self.reextracted, "stale_left": self.stale_left,
                "reextract_removed": self.reextract_removed, "sources": self.sources}


def _source_counts(stats: dict, source_id: str) -> dict:
    prefix = f"{SOURCE_STATS}{source_id}/"

    def n(key: str) -> int:
        return int(stats.get(prefix + key, 0) or 0)

    failed = {key.removeprefix(prefix + "failed/"): int(v) for key, v in stats.items()
              if key.startswith(prefix + "failed/") and v}
    return {"fetched": n("fetched") + n("not_modified"), "new": n("new"),
            "updated": n("updated"), "unchanged": n("unchanged"), "not_due": n("not_due"),
            "failed": dict(sorted(failed.items()))}


def crawl(
    sources: list[Source],
    *,
    data_dir: Path,
    engine: str | None = None,
    max_pages: int | None = None,
    host_map: dict[str, str] | None = None,
    settings_overrides: dict | None = None,
    progress=None,
    wait: bool = False,
    on_wait: Callable[[dict], None] | None = None,
    timeout: float | None = None,
    full: bool = False,
    now: datetime | str | None = None,
) -> RunSummary:
    """Crawl `sources` once into the index of `data_dir`; returns the run summary.

    Known articles are asked again only when due by their source's revisit policy;
    `full` asks for every one (`cyz crawl --full`; the scheduler never does). `now` sets
    the crawl's clock (default: the environment's `CYZ_NOW`, else the real time): tests
    and benchmarks simulate days passing with it. A `now` that is not an ISO 8601
    date-time raises ValueError naming it, before anything runs.

    A crawl still running after `timeout` seconds (None: no limit) is stopped like a
    Ctrl-C (what was fetched is stored) and ends interrupted, naming CYZ_CRAWL_TIMEOUT.

    Takes the data dir's lock first: another crawl, re-extraction or migration of it
    raises `DataDirLocked`, or with `wait` is waited for (`on_wait(holder)` is called
    once then). The engine is opened next, so a configuration error stops the run before
    any request; an engine that is merely down does not (records are spooled). A data
    dir that cannot take records raises `StorageError`; one that fills up during the
    run ends it early, with `storage_error` and `not_stored` in the summary.

    Every outcome is recorded in the run history (`cyz.runs`, kind "crawl"): a locked
    data dir as `skipped`, an exception as `failed` with its line; the history failing
    to be written is logged, never raised."""
    from cyz.runs import now as wall_now

    start = clock_start(now)
    started_at = wall_now()
    source_ids = [s.id for s in sources if s.enabled]
    overrides = dict(settings_overrides or {})
    if full:
        overrides["CYZ_REVISIT_FULL"] = True
    if start:
        overrides.setdefault("CYZ_NOW", start)
    try:
        summary = _crawl(sources, data_dir=data_dir, engine=engine, max_pages=max_pages,
                         host_map=host_map, settings_overrides=overrides,
                         progress=progress, wait=wait, on_wait=on_wait, timeout=timeout)
    except DataDirLocked as exc:
        _record(data_dir, started_at, "skipped", source_ids, [str(exc)])
        raise
    except StorageError as exc:
        _record(data_dir, started_at, "failed", source_ids, [str(exc)])
        raise
    except BaseException as exc:
        line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _record(data_dir, started_at, "failed", source_ids,
                [f"{type(exc).__name__}: {line}" if line else type(exc).__name__])
        raise
    _record(data_dir, started_at, summary.status, summary, summary.errors())
    return summary


def clock_start(now: datetime | str | None) -> str | None:
    """The crawl clock's start as the `CYZ_NOW` setting: `now`, else the environment's
    CYZ_NOW (read here, at the edge), else None (the real time)."""
    from cyz.crawler.state import clock, iso

    if now is None:
        now = os.environ.get("CYZ_NOW", "").strip() or None
        if now is None:
            return None
        where = "CYZ_NOW"
    else:
        where = "now"
    try:
        return iso(clock(now)())
    except ValueError:
        raise ValueError(f"{where}={now!r}: not an ISO 8601 date-time "
                         "(e.g. 2026-11-27T02:00:00+08:00)") from None


def _record(data_dir: Path, started_at: str, status: str, sources: RunSummary | list[str],
            errors: list[str]) -> None:
    from cyz.runs import record_quietly

    counts = (sources if isinstance(sources, RunSummary)
              else RunSummary.from_stats({}, sources)).sources
    record_quietly(data_dir, "crawl", started_at, status, counts, errors=errors)


def _crawl(
    sources: list[Source],
    *,
    data_dir: Path,
    engine: str | None,
    max_pages: int | None,
    host_map: dict[str, str] | None,
    settings_overrides: dict | None,
    progress,
    wait: bool,
    on_wait: Callable[[dict], None] | None,
    timeout: float | None = None,
) -> RunSummary:
    from cyz.crawler.browser import browser_sources, require_chromium
    from cyz.crawler.run import run_crawl
    from cyz.index import open_engine

    settings_overrides = dict(settings_overrides or {})
    if browser_sources(sources) and not settings_overrides.get("CYZ_CHROMIUM"):
        # A browser source without a browser is a configuration error, found here.
        from cyz.settings import load_settings

        settings_overrides["CYZ_CHROMIUM"] = require_chromium(sources,
                                                              load_settings().chromium)
    with data_dir_lock(data_dir, "crawl", wait=wait, on_wait=on_wait) as lock:
        check = open_engine(engine, data_dir)
        try:
            check.init()
        except StorageError as exc:
            raise StorageError(data_dir, exc.reason) from None
        finally:
            check.close()

        overrides = {"CYZ_ENGINE": engine, "CYZ_DATA_DIR": str(data_dir),
                     **(settings_overrides or {})}
        if "CYZ_WORKERS" not in overrides or "CYZ_PAGE_TIMEOUT" not in overrides:
            # The environment's CYZ_WORKERS and CYZ_PAGE_TIMEOUT (validated at start) size
            # the extraction pool and limit one page's extraction.
            from cyz.settings import load_settings

            settings = load_settings()
            if settings.workers is not None:
                overrides.setdefault("CYZ_WORKERS", settings.workers)
            overrides.setdefault("CYZ_PAGE_TIMEOUT", settings.page_timeout)
        stats = run_crawl(sources, data_dir=data_dir, item_pipelines=ITEM_PIPELINES,
                          host_map=host_map, max_pages=max_pages, settings_overrides=overrides,
                          progress=progress, lock=lock, timeout=timeout)
        summary = RunSummary.from_stats(stats, [s.id for s in sources if s.enabled])
        if not (summary.interrupted or summary.storage_error or summary.not_stored):
            _bring_stale_up_to_date(summary, sources, data_dir, engine)
    return summary


def _bring_stale_up_to_date(summary: RunSummary, sources: list[Source], data_dir: Path,
                            engine: str | None) -> None:
    """After a pipeline upgrade, re-extract a bounded number of the crawled sources'
    stale records from the raw archive: a page that answers 304 every night would
    otherwise keep what the old pipeline made of it for ever."""
    import logging

    from cyz.index.search_engine import EngineUnavailable
    from cyz.reextract import reextract_locked
    from cyz.settings import load_settings

    per_run = load_settings().reextract_per_run
    if not per_run:
        return
    try:
        counts = reextract_locked(data_dir, sources, source_ids=[s.id for s in sources],
                                  stale_only=True, limit=per_run, engine_name=engine)
    except EngineUnavailable as exc:  # records are spooled this run; stale ones wait
        logging.getLogger(__name__).info("stale records not re-extracted: %s", exc)
        return
    summary.reextracted = counts["reextracted"]
    summary.stale_left = counts["stale_left"]
    summary.reextract_removed = counts["not_article"]
    if counts.get("storage_error"):
        summary.storage_error = counts["storage_error"]
        summary.not_stored += counts["not_stored"]
