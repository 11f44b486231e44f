"""`cyz reextract`: run the current per-page pipeline over the raw HTML archive.

After an upgrade that bumped `PIPELINE_VERSION`, stored records are *stale*: a re-crawl
answered 304 never extracts them again. `cyz reextract --stale` (and each crawl, for a
bounded number per run) brings just those up to date.

It holds the data dir's lock (no crawl may write the same records meanwhile), writes
in batches every few seconds like the crawl, confirms reprint placements with the
records they belong to, and stops at the first storage failure with one message.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import replace
from pathlib import Path

from cyz.config import Source
from cyz.crawler.settings import BASE_SETTINGS
from cyz.crawler.store import REPRINTS_FILE, RecordWriter, apply_placement
from cyz.crawler.workers import default_workers
from cyz.index import open_engine
from cyz.index.base import Engine, Filters, stale_filter
from cyz.lock import data_dir_lock
from cyz.pipelines.archive import RawArchive, RawPage, text_hash
from cyz.pipelines.dedupe import ReprintIndex
from cyz.pipelines.page import build_record, now_iso
from cyz.storage import StorageError, reason_of, storing

log = logging.getLogger(__name__)

# What the crawl knows about a record that re-extraction must not reset.
_KEEP = ("crawled_at", "gone_at")
# What the pipeline derives from a page: when any of it changes, the record's
# `updated_at` moves, so later stages (alerts) see the article anew.
_DERIVED = ("title", "text", "published_at", "origin", "author", "regions", "topics",
            "relevance", "events", "event_types", "language", "script")


def _source_for(raw_source_id: str, configured: dict[str, Source], old: dict | None) -> Source | None:
    if raw_source_id in configured:
        return configured[raw_source_id]
    if old is None:
        return None
    # A source removed from the config keeps its records and their source fields.
    return Source.model_construct(
        id=old["source_id"], name=old.get("source_name", ""), kind=old.get("source_kind") or "news",
        region=old.get("source_region", ""), encoding=None, body_selector=None)


def _job(raw: RawPage, source: Source | None) -> dict:
    return build_record(raw.body, raw.url, source=source, http_charset=raw.http_charset,
                        fetched_at=raw.fetched_at)


def _in_flight(pool: ProcessPoolExecutor, pages: Iterator[RawPage], writer: RecordWriter,
               configured: dict[str, Source], window: int) -> Iterator[tuple[RawPage, dict | None, Future]]:
    """(page, its current record, future of its new record), keeping at most `window`
    pages in the workers, in archive order, so memory stays flat."""
    pending: deque = deque()
    for raw in pages:
        old = writer.get(raw.id)
        pending.append((raw, old, pool.submit(_job, raw, _source_for(raw.source_id, configured, old))))
        if len(pending) >= window:
            yield pending.popleft()
    yield from pending


def reextract(data_dir: Path, sources: list[Source], *, source_ids: list[str] | None = None,
              stale_only: bool = False, limit: int | None = None,
              engine_name: str | None = None, progress: Callable[[int, int], None] | None = None,
              wait: bool = False, on_wait: Callable[[dict], None] | None = None) -> dict:
    """Re-run the pipeline on every archived page (of `source_ids`; with `stale_only`
    only pages whose record an older pipeline made, at most `limit` of them); returns
    counts: `reextracted` (stored), `failed` (extraction errors), `not_article` (records
    removed: their pages are now judged list pages), `stale_left` (stale records not
    done), and, when the data dir could not take the records, `not_stored`
    and `storage_error` (one line). `progress(done, total)` is called per page.

    Holds the data dir's lock: raises `DataDirLocked` while a crawl, re-extraction or
    migration runs, or waits for it with `wait` (calling `on_wait(holder)` once)."""
    with data_dir_lock(data_dir, "reextract", wait=wait, on_wait=on_wait):
        return reextract_locked(data_dir, sources, source_ids=source_ids, stale_only=stale_only,
                                limit=limit, engine_name=engine_name, progress=progress)


def reextract_locked(data_dir: Path, sources: list[Source], *, source_ids: list[str] | None = None,
                     stale_only: bool = False, limit: int | None = None,
                     engine_name: str | None = None,
                     progress: Callable[[int, int], None] | None = None) -> dict:
    """`reextract` for a caller that holds the data dir's lock already (the crawl)."""
    counts = {"reextracted": 0, "failed": 0, "not_stored": 0, "stale_left": 0, "no_raw_page": 0,
              "not_article": 0}
    engine = open_engine(engine_name, data_dir)
    engine.init()
    stale = stale_filter(source_ids) if stale_only else None
    stale_count = engine.count(stale) if stale is not None else 0
    if stale is not None and stale_count == 0:
        engine.close()  # the usual case: nothing to do, and no worker pool started for it
        return counts
    with storing(data_dir):
        archive = RawArchive(data_dir)
        reprints = ReprintIndex(data_dir / REPRINTS_FILE)
        reprints.recover()  # placements of a killed run whose records were never stored
    waiting = [0]  # pages added since the last flush

    def flushed(records: list[dict]) -> None:
        counts["reextracted"] += waiting[0]
        waiting[0] = 0
        with storing(data_dir):
            reprints.confirm([r["id"] for r in records])

    # The writer puts each page back with its new text hash: the same bytes, so never a
    # new version, but later crawls compare edits with what this pipeline extracts.
    writer = RecordWriter(engine, archive, on_flush=flushed, data_dir=data_dir,
                          max_age=BASE_SETTINGS["CYZ_FLUSH_SECONDS"])
    configured = {s.id: s for s in sources}
    # Workers ignore SIGINT: Ctrl-C is ours to handle (flush, then stop), not theirs to
    # print a traceback each.
    pool = ProcessPoolExecutor(max_workers=default_workers(),
                               mp_context=multiprocessing.get_context("spawn"),
                               initializer=signal.signal, initargs=(signal.SIGINT, signal.SIG_IGN))
    done = 0
    if stale is None:
        pages: Iterator[RawPage] = archive.iter_pages(source_ids)
        total = archive.count(source_ids)
    else:
        total = stale_count if limit is None else min(limit, stale_count)
        pages = _stale_pages(engine, stale, archive, limit, counts)
    try:
        for raw, old, future in _in_flight(pool, pages, writer, configured, 4 * default_workers()):
            try:
                record = future.result()
            except Exception as exc:  # one bad page must not stop the run
                log.error("re-extraction failed for %s: %s", raw.url, exc)
                counts["failed"] += 1
                continue
            record["id"] = raw.id
            if record.get("is_article") is False:
                # A list or section index where an article was expected (the pipeline
                # learnt to tell): its record leaves the index. The raw page stays in
                # the archive, so a later pipeline can bring it back (`cyz reextract`).
                if old is not None:
                    counts["not_article"] += 1
                    log.info("no longer an article (%s), removed from the index: %s",
                             record.get("not_article_reason"), raw.url)
                    with storing(data_dir):
                        changed = reprints.delete([raw.id])
                    writer.remove(raw.id, changed)
            else:
                for key in _KEEP:
                    if old and old.get(key):
                        record[key] = old[key]
                with storing(data_dir):
                    placement = reprints.place(record["id"], record["text_zh"],
                                               record["published_at"])
                apply_placement(record, placement)
                # Re-extraction is not an edit: the archive's version stands. The record
                # did change, for what reads it, when the pipeline now derives something else.
                record["version"] = raw.version
                record["updated_at"] = (old.get("updated_at") or raw.fetched_at
                                        if old and _same_output(old, record) else now_iso())
                waiting[0] += 1
                writer.add(record, placement.changed, replace(raw, text_hash=text_hash(record)))
            done += 1
            if progress:
                progress(done, total)
        writer.flush()
        engine.refresh()
        if stale is not None:
            counts["stale_left"] = engine.count(stale)
    except StorageError as exc:
        counts["not_stored"] += waiting[0]
        writer.discard()
        counts["storage_error"] = f"cannot store records in {data_dir}: {reason_of(exc)}"
    except KeyboardInterrupt:
        writer.flush()  # keep what was re-extracted, then stop
        raise
    finally:
        pool.shutdown(cancel_futures=True)
        engine.close()
        archive.close()
        reprints.close()
    return counts


def _stale_pages(engine: Engine, stale: Filters, archive: RawArchive, limit: int | None,
                 counts: dict) -> Iterator[RawPage]:
    """The raw pages of up to `limit` stale records. A record without one (its page was
    never archived) cannot be re-extracted: counted in `no_raw_page`, not taking a place."""
    n = 0
    for record in engine.iter_records(stale):
        if limit is not None and n >= limit:
            return
        page = archive.get(record["id"])
        if page is None:
            counts["no_raw_page"] += 1
            continue
        n += 1
        yield page


def _same_output(old: dict, new: dict) -> bool:
    return all(old.get(key) == new.get(key) for key in _DERIVED)
