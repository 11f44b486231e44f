"""The Elasticsearch/OpenSearch engine: everything both share, over a thin client adapter.

Templates, mappings (`mapping.py`), query bodies (`dsl.py`) and bulk actions are the
same for both engines; `elasticsearch.py` and `opensearch.py` only say how to send a
request with their own client. Writes go through an alias (`cyz-articles` →
`cyz-articles-vN`), so `migrate` can reindex into a new version and swap atomically.

Nothing is lost when the engine is away or rejects documents: the records are parked
in the spool (`spool.py`) and replayed at the next `init()`, i.e. the next run.

`cyz-events` holds one document per happening (`cyz.index.events`), derived from the
articles: after each bulk of articles the engine fetches the happenings the batch may
touch, plans, writes the changes and refreshes the events index, so the next batch sees
them. When the events mapping changes, the events index is rebuilt from the articles.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from cyz.index import dsl
from cyz.index.base import (
    Engine,
    EventFilters,
    EventResult,
    Filters,
    Hit,
    SearchRequest,
    SearchResult,
    indexed_now,
)
from cyz.index.events import (
    ARTICLE_FIELDS,
    Plan,
    build_happenings,
    candidate_lookup,
    plan,
    reported_articles,
    touchable,
)
from cyz.index.mapping import (
    EVENTS_MAPPING_VERSION,
    INDEX_ANALYZER,
    MAPPING_VERSION,
    article_template,
    event_template,
    index_names,
    versioned,
)
from cyz.index.spool import MAX_ATTEMPTS, Spool
from cyz.record import validate_article

log = logging.getLogger(__name__)

# Options of the client libraries' `streaming_bulk` (the same in both): chunks of 500
# documents or 10 MB, each retried 3 times with exponential backoff on 429, failures
# reported item by item instead of raised.
BULK_OPTIONS = {
    "chunk_size": 500, "max_chunk_bytes": 10 * 1024 * 1024, "max_retries": 3,
    "initial_backoff": 1, "max_backoff": 30,
    "raise_on_error": False, "raise_on_exception": False, "yield_ok": False,
}


# Articles go to the engine in this many bulk requests at once (a bounded pool per
# engine): one request keeps one core of the node busy analysing, two keep two (bench/
# README.md, issue 15). A write smaller than two slices of BULK_SLICE_MIN is one request.
# The pool sends them while the calling thread plans the batch's happenings
# (`PLAN_DURING_BULK`; off, the plan follows the bulk: one request at a time, in a
# fixed order, as the contract tests compare them).
BULK_THREADS = 2
BULK_SLICE_MIN = 100
PLAN_DURING_BULK = True

# The planning fields (`ARTICLE_FIELDS`) of the articles this engine wrote last: a plan
# reads the reports of the happenings a batch touches, mostly articles of the batches
# before, and a real-time `_mget` of unrefreshed documents makes the node refresh.
RECENT_ARTICLES = 20_000

# `cyz index migrate`: documents per reindex batch, seconds between looks at the task.
MIGRATE_BATCH = 1000
MIGRATE_POLL_SECONDS = 2.0

# Pages of candidate happenings and of the articles they report (one request each, as
# a rule: a batch rarely touches more).
EVENT_PAGE = 5000
MGET_CHUNK = 1000


# The client libraries log every failed attempt as a WARNING with a traceback (a dozen
# per run while the engine is down). Our own one-line message says it: above ERROR only.
CLIENT_LOGGERS = ("opensearch", "elasticsearch", "elastic_transport", "urllib3")


def quiet_client_logs() -> None:
    """Keep the client libraries' retry warnings out of the logs (parent and crawl child)."""
    for name in CLIENT_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level < logging.ERROR:
            logger.setLevel(logging.ERROR)


class EngineUnavailable(RuntimeError):
    """The engine cannot be reached (connection refused, timeout, DNS)."""


class EngineMisconfigured(RuntimeError):
    """The engine answers, but not as it must: wrong product, TLS verification failed.
    Retrying cannot help, so this stops the run with the message instead of spooling."""


class ApiError(RuntimeError):
    def __init__(self, status: int, body: object, what: str):
        self.status, self.body = status, body
        super().__init__(f"{what}: HTTP {status}: {_reason(body)}")


class AccessDenied(ApiError, EngineMisconfigured):
    """HTTP 401 (credentials refused) or 403 (a privilege missing). Retrying cannot
    help: the message names the engine's URL and the setting to fix (`cyz` exits 2)."""

    def __init__(self, status: int, body: object, message: str):
        ApiError.__init__(self, status, body, "")
        self.args = (message,)

    def __str__(self) -> str:
        return self.args[0]


def safe_url(url: str) -> str:
    """A URL as a message may show it: without a password."""
    return re.sub(r"(//[^/@:]*):[^/@]*@", r"\1:***@", url)


def _reason(body: object) -> str:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return f"{error.get('type')}: {error.get('reason')}"
        return str(error or body)[:300]
    return str(body)[:300]


@dataclass
class BulkFailure:
    doc_id: str
    index: str
    status: object
    error: str


def bulk_failure(item: dict) -> BulkFailure:
    """A failed item as `streaming_bulk` yields it: {op_type: {_id, _index, status, error}}."""
    info = next(iter(item.values()))
    return BulkFailure(str(info.get("_id")), str(info.get("_index")), info.get("status"),
                       str(info.get("error"))[:500])


class Client:
    """What an engine needs from its client library. Subclasses wrap one library."""

    name = "?"
    url = "?"  # the engine's URL (may hold a password: show it through `safe_url`)
    url_setting = "?"  # the setting that names it (CYZ_ES_URL, CYZ_OPENSEARCH_URL)
    # The setting(s) the credentials in use came from (None: none sent), the settings of
    # the normal (nightly) credentials, and of the admin credentials (docs/roles.md).
    credentials: str | None = None
    user_settings = "?"
    admin_settings = "?"
    admin = False  # the credentials in use are the admin ones

    def denied(self, status: int, body: object, what: str) -> AccessDenied:
        """Our one-line error for an HTTP 401 or 403 answer to `what` (METHOD PATH)."""
        where = f"{self.name} at {safe_url(self.url)}"
        reason = _reason(body)
        if status == 401:
            if self.credentials is None:
                fix = f"it needs credentials: set {self.user_settings}"
            else:
                fix = f"check {self.credentials} (a wrong, expired or deleted key or password)"
            return AccessDenied(status, body, f"{where} refused the credentials (HTTP 401 on "
                                f"{what}: {reason}): {fix} (docs/roles.md)")
        held = self.credentials or "no credentials"
        return AccessDenied(status, body, f"{where} denied {what} (HTTP 403: {reason}) to "
                            f"{held}: give them the privileges of docs/roles.md")

    def request(self, method: str, path: str, body: object = None,
                params: dict | None = None, retry: bool = True) -> dict:
        """Send one request; return the JSON body (or {} for HEAD). Raise ApiError on an
        HTTP error status, EngineUnavailable when the engine cannot be reached. With
        `retry` False the request is sent once, never again after a timeout (a request
        that must not run twice, like starting a reindex)."""
        raise NotImplementedError

    def bulk(self, actions: Iterable[dict]) -> Iterator[BulkFailure]:
        """Stream `actions` through the library's streaming bulk helper (chunked,
        retried with backoff on 429); yield the actions that still failed."""
        raise NotImplementedError

    def close(self) -> None:
        pass


class SearchEngine(Engine):
    def __init__(self, client: Client, data_dir: Path, prefix: str = "cyz"):
        self.client = client
        self.name = client.name
        # Aliases: `cyz-articles` and `cyz-events` unless another prefix is configured.
        self.articles, self.events = index_names(prefix)
        self.templates = {self.articles: article_template(self.articles),
                          self.events: event_template(self.events)}
        self.spool = Spool(data_dir, client.name if prefix == "cyz" else f"{client.name}-{prefix}")
        self.online = False
        self._initialised = False
        # The crawl child sets it: the crawl's own check already said the engine is away,
        # once; the operator needs that line once per run, not once per process.
        self.quiet_unreachable = False
        self._pool: ThreadPoolExecutor | None = None
        self._pool_lock = threading.Lock()
        self._recent: OrderedDict[str, dict] = OrderedDict()
        # The articles index's mapping version as the last set-up read it (None: unknown).
        self.live_mapping_version: int | None = None
        quiet_client_logs()

    # -- set-up --------------------------------------------------------------------
    def init(self) -> None:
        """Put templates, create the first versioned indices behind their aliases, and
        replay the spool. If the engine is down, stay usable: writes go to the spool."""
        if self._initialised:
            return
        try:
            self._set_up()
        except EngineUnavailable as exc:
            say = log.info if self.quiet_unreachable else log.warning
            say("%s is unreachable (%s): records will be spooled in %s and indexed at the "
                "next run", self.name, exc, self.spool.path)
            self.quiet_unreachable = True  # said once: the end-of-run retry stays quiet
            return
        self.replay()

    def ensure_ready(self) -> None:
        """Like `init`, but an unreachable engine is an error (`cyz alerts`)."""
        if not self._initialised:
            try:
                self._set_up()
            except EngineUnavailable as exc:
                raise self._unreachable(exc) from None
            self.replay()
        elif not self.online:
            raise EngineUnavailable(f"{self.name} is unreachable")

    def admin_init(self) -> None:
        """`cyz index init`: put the templates, create the indices, add new fields to
        their mappings even when they look current (the admin credentials' work), then
        replay the spool. An unreachable engine is an error."""
        self._initialised = False
        try:
            with self._as_admin("`cyz index init`"):
                self._set_up(admin=True)
        except EngineUnavailable as exc:
            raise self._unreachable(exc) from None
        self.replay()

    def check_writable(self) -> None:
        """The start-up check of `cyz schedule` and `cyz crawl`: the engine answers, the
        indices exist (made now if the credentials may), and the credentials may read,
        write and refresh them. Nothing is written: the write probe updates a document
        that does not exist (the engine answers 404 when the credentials may write).
        The spool is not replayed (the run does that, under the data dir's lock)."""
        try:
            self._set_up()
            for alias in self.templates:
                self.client.request("POST", f"/{alias}/_count", {"query": {"match_all": {}}})
                try:
                    self.client.request("POST", f"/{alias}/_update/{WRITE_PROBE_ID}",
                                        {"doc": {}})
                except AccessDenied:
                    raise
                except ApiError as exc:
                    if exc.status != 404:
                        raise
                self.client.request("POST", f"/{alias}/_refresh")
        except EngineUnavailable as exc:
            raise self._unreachable(exc) from None
        finally:
            self._initialised = False  # the run's own init() sets up and replays

    def _unreachable(self, exc: Exception) -> EngineUnavailable:
        return EngineUnavailable(f"{self.name} at {safe_url(self.client.url)} is unreachable "
                                 f"({exc}): check {self.client.url_setting} and that the "
                                 "engine runs")

    @contextmanager
    def _as_admin(self, operation: str) -> Iterator[None]:
        """A 403 inside says which command needs the admin credentials and which setting
        gives them (the nightly key may not manage indices: docs/roles.md)."""
        try:
            yield
        except AccessDenied as exc:
            if exc.status != 403:
                raise
            if self.client.admin:
                fix = (f"the admin credentials ({self.client.credentials}) lack it: give them "
                       "the cyz_admin role (docs/roles.md)")
            else:
                fix = (f"{operation} needs the admin credentials: set "
                       f"{self.client.admin_settings} for it (docs/roles.md; the nightly "
                       f"{self.client.credentials or 'login'} may not manage indices)")
            raise AccessDenied(403, exc.body, f"{exc}; {fix}") from None

    def _current(self) -> bool:
        """Both aliases exist and their mappings hold every field and the `_meta` of this
        cyz's templates: nothing for the set-up to do (read with `view_index_metadata`).
        Remembers the articles index's mapping version for `mapping_drift`."""
        current = True
        for alias, template in self.templates.items():
            try:
                found = self.client.request("GET", f"/{alias}/_mapping")
            except ApiError as exc:
                if exc.status == 404:
                    return False
                raise
            wanted = template["template"]["mappings"]
            if len(found) != 1:
                return False
            (live,) = (v.get("mappings", {}) for v in found.values())
            if alias == self.articles:
                self.live_mapping_version = _mapping_version(live)
                # Only the version: a migration's bookkeeping may sit beside it.
                if self.live_mapping_version != MAPPING_VERSION:
                    current = False
            elif live.get("_meta") != wanted.get("_meta"):
                current = False
            if not _covers(live.get("properties", {}), wanted.get("properties", {})):
                current = False
        return current

    def mapping_drift(self) -> str | None:
        """The warning when the articles index is older than this cyz's mapping (set by
        the last set-up; `cyz index status`, the start of a crawl, the scheduler)."""
        live = self.live_mapping_version
        if live is None or live >= MAPPING_VERSION:
            return None
        meanwhile = ("one-character words find nothing until then" if live < 2 else
                     "searches work meanwhile; indexing is slower until then")
        return (f"{self.articles} is on mapping v{live} and this cyz's is v{MAPPING_VERSION}: "
                f"run `cyz index migrate` (with {self.client.admin_settings} set, where the "
                f"cluster has security) to move it ({meanwhile})")

    def _set_up(self, admin: bool = False) -> None:
        self._initialised = True
        # The nightly credentials only read the mappings; a new index, template or field
        # is the admin's (`cyz index init`, `cyz index migrate`).
        self.live_mapping_version = None
        if not admin and self._current():
            self.online = True
            return
        try:
            self._put_templates_and_indices()
        except AccessDenied as exc:
            if exc.status != 403 or admin:
                raise
            missing = [a for a in self.templates if not self._alias_targets(a)]
            if missing:
                raise AccessDenied(403, exc.body, f"{exc}; {', '.join(missing)} missing and "
                                   f"these credentials may not create it: run `cyz index "
                                   f"init` with {self.client.admin_settings} set "
                                   "(docs/roles.md)") from None
            if self.mapping_drift() is None:
                log.warning("%s: the index mappings differ from this cyz's (mapping v%d, "
                            "events v%d) and %s may not update them: run `cyz index init` "
                            "(new fields) or `cyz index migrate` (changed ones) with %s set",
                            self.name, MAPPING_VERSION, EVENTS_MAPPING_VERSION,
                            self.client.credentials or "the login", self.client.admin_settings)
            self.online = True
        # One warning for an index older than the code, whoever runs (the mapping-drift
        # warning of docs/roles.md; the in-place update above cannot bring it up to date).
        # The crawl child says it as info: the crawl's start-up check warned already.
        if (drift := self.mapping_drift()) is not None:
            (log.info if self.quiet_unreachable else log.warning)("%s: %s", self.name, drift)

    def _put_templates_and_indices(self) -> None:
        rebuild = False
        articles_existed = False
        for alias, template in self.templates.items():
            self.client.request("PUT", f"/_index_template/{alias}", template)
            if not self._alias_targets(alias):
                self.client.request("PUT", f"/{versioned(alias, MAPPING_VERSION)}",
                                    {"aliases": {alias: {}}})
                # An events index made afresh beside stored articles gets their happenings.
                rebuild = rebuild or (alias == self.events and articles_existed)
                continue
            articles_existed = articles_existed or alias == self.articles
            # Fields added since the index was created (`version`, `updated_at`, …)
            # join its mapping in place; new documents are then searchable by them
            # without a migration. A changed field type is refused by the engine and
            # needs `cyz index migrate` — except for the events index: it holds derived
            # data, so an older events mapping (v1: one document per mention, `regions`
            # a keyword) is rebuilt from the articles right away.
            mappings = template["template"]["mappings"]
            body = {k: v for k, v in mappings.items() if k in ("properties", "_meta")}
            if alias == self.articles:
                # The version stays the one that made the index (a bump means migrate).
                body.pop("_meta", None)
            try:
                self.client.request("PUT", f"/{alias}/_mapping", body)
            except ApiError as exc:
                if exc.status == 400 and alias == self.articles:
                    # An index of an older mapping (v1 analysed text without single
                    # characters; v2 analysed `text` too) keeps serving as it is until
                    # migrated: `_set_up` warns (`mapping_drift`).
                    log.info("%s: the mapping cannot change in place (%s)", alias, exc)
                    found = self.client.request("GET", f"/{alias}/_mapping")
                    self.live_mapping_version = min(
                        [_mapping_version(v.get("mappings", {})) for v in found.values()]
                        + [MAPPING_VERSION - 1])
                    continue
                if alias != self.events or exc.status != 400:
                    raise
                log.warning("%s: the events index has an older mapping (%s); rebuilding it "
                            "from the articles", alias, exc)
                rebuild = True
        self.online = True
        if rebuild:
            self._rebuild_events(drop_old=True)

    def _alias_targets(self, alias: str) -> list[str]:
        try:
            return sorted(self.client.request("GET", f"/_alias/{alias}"))
        except ApiError as exc:
            if exc.status == 404:
                return []
            raise

    def _require_online(self) -> None:
        self.init()
        if not self.online:
            raise EngineUnavailable(f"{self.name} is unreachable")

    # -- writing -------------------------------------------------------------------
    def write(self, records: Iterable[dict]) -> int:
        """Index records by id (replacing earlier versions), then their happenings.
        Records the engine does not take are parked in the spool; returns the number
        of records accepted either way. An invalid record is a ValueError (nothing is
        written or parked)."""
        self.init()
        batch = {r["id"]: r for r in map(validate_article, records)}
        if not batch:
            return 0
        if not self.online:
            self.spool.park(list(batch.values()), "engine unreachable")
            return len(batch)
        failed = self._index(list(batch.values()))
        for reason, recs in failed.items():
            self.spool.park(recs, reason)
        return len(batch)

    def _index(self, records: list[dict]) -> dict[str, list[dict]]:
        """Bulk-index the articles, then their happenings; returns the records that
        failed, grouped by reason (a failed happening parks the batch's articles it
        reports: their replay plans it again)."""
        stamp = indexed_now()
        records = [{**r, "indexed_at": stamp} for r in records]
        by_id = {r["id"]: r for r in records}
        sending = self._bulk_start(list(_article_actions(records, self.articles)))
        # While the node takes the articles, plan their happenings as if it takes them
        # all: a plan reads stored happenings and other articles, never this batch's.
        early = self._plan_or_none(records) if PLAN_DURING_BULK else False
        try:
            failures = self._bulk_finish(sending)
        except EngineUnavailable as exc:
            self.online = False
            log.warning("%s went away during a write (%s): spooling", self.name, exc)
            return {"engine unreachable": records}
        if any(not isinstance(f.status, int) for f in failures):
            # The bulk helper reports a lost connection item by item (status N/A).
            self.online = False
            log.warning("%s went away during a write (%s): spooling", self.name, failures[0].error)
            return {"engine unreachable": records}
        failed: dict[str, list[dict]] = {}
        for failure in failures:
            record = by_id.pop(failure.doc_id, None)
            if record is not None:
                log.warning("%s rejected %s (%s): %s", self.name, failure.doc_id, failure.status,
                            failure.error)
                failed.setdefault(f"rejected ({failure.status}): {failure.error}"[:300], []).append(record)
        # The articles the engine took: their happenings follow (a rejected article
        # keeps its stored version, and that version's happenings).
        accepted = list(by_id.values())
        self._remember(accepted)
        try:
            if early is not False and len(accepted) == len(records):
                event_failures = self._apply(*early) if early else {}
            else:  # some were rejected (or not planned yet): plan for those taken
                event_failures = self._update_events(accepted)
        except EngineUnavailable as exc:
            self.online = False
            log.warning("%s went away while writing events (%s): spooling", self.name, exc)
            failed.setdefault("engine unreachable", []).extend(accepted)
            return failed
        except ApiError as exc:
            log.warning("%s: cannot update the events of %d article(s): %s", self.name,
                        len(accepted), exc)
            failed.setdefault(f"events: {exc}"[:300], []).extend(accepted)
            return failed
        for reason, article_ids in event_failures.items():
            for article_id in article_ids:
                if (record := by_id.pop(article_id, None)) is not None:
                    failed.setdefault(reason, []).append(record)
        return failed

    def _bulk_start(self, actions: list[dict]) -> list[Future]:
        """Send `actions` by `client.bulk` in the engine's pool, in up to BULK_THREADS
        slices at once; `_bulk_finish` waits for them."""
        with self._pool_lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(BULK_THREADS, thread_name_prefix="cyz-bulk")
        slices = max(1, min(BULK_THREADS, len(actions) // BULK_SLICE_MIN))
        step = max(1, -(-len(actions) // slices))
        return [self._pool.submit(lambda part: list(self.client.bulk(part)),
                                  actions[start:start + step])
                for start in range(0, len(actions), step)]

    @staticmethod
    def _bulk_finish(futures: list[Future]) -> list[BulkFailure]:
        """The failures of every slice; an error in any slice (an unreachable engine) is
        raised once all have ended, as one bulk would raise it."""
        failures: list[BulkFailure] = []
        error: BaseException | None = None
        for future in futures:
            try:
                failures += future.result()
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                error = error or exc
        if error is not None:
            raise error
        return failures

    def _plan_or_none(self, records: list[dict]) -> tuple[Plan, set[str]] | None | bool:
        """`_plan_events`, or False when it failed (the caller plans again, and reports)."""
        try:
            return self._plan_events(records)
        except (EngineUnavailable, ApiError):
            return False

    def _update_events(self, records: list[dict], removed: list[str] = ()) -> dict[str, list[str]]:
        """Plan and write the happenings after `records` were indexed and `removed`
        deleted; returns the ids of batch articles whose happenings failed, by reason."""
        planned = self._plan_events(records, removed)
        return self._apply(*planned) if planned else {}

    def _plan_events(self, records: list[dict],
                     removed: list[str] = ()) -> tuple[Plan, set[str]] | None:
        """The happenings' changes for `records` indexed and `removed` deleted, and the
        batch's article ids; None when they touch no happening."""
        lookup = candidate_lookup(records, removed)
        if lookup.is_empty:
            return None
        candidates = touchable(records, self._candidates(dsl.candidates_query(lookup)), removed)
        exclude = {r["id"] for r in records} | set(removed)
        reported = self._articles_by_id(reported_articles(candidates, exclude))
        return plan(records, candidates, reported, removed), exclude

    def _candidates(self, query: dict) -> list[dict]:
        found: list[dict] = []
        body = {"query": query, "size": EVENT_PAGE, "sort": [{"event_id": "asc"}]}
        while True:
            hits = self.client.request("POST", f"/{self.events}/_search", body)["hits"]["hits"]
            found += [h["_source"] for h in hits]
            if len(hits) < EVENT_PAGE:
                return found
            body["search_after"] = hits[-1]["sort"]

    def _remember(self, records: list[dict]) -> None:
        """Keep the planning fields of articles the engine took (see RECENT_ARTICLES)."""
        for record in records:
            self._recent[record["id"]] = {k: record[k] for k in ARTICLE_FIELDS if k in record}
            self._recent.move_to_end(record["id"])
        while len(self._recent) > RECENT_ARTICLES:
            self._recent.popitem(last=False)

    def _articles_by_id(self, ids: list[str]) -> dict[str, dict]:
        """The reported articles' fields a plan reads: those this engine wrote lately
        from memory, the others by `_mget`, which reads in real time (the articles of
        the previous batch are there before the index refreshes)."""
        out: dict[str, dict] = {i: self._recent[i] for i in ids if i in self._recent}
        ids = [i for i in ids if i not in out]
        for start in range(0, len(ids), MGET_CHUNK):
            answer = self.client.request(
                "POST", f"/{self.articles}/_mget", {"ids": ids[start:start + MGET_CHUNK]},
                params={"_source_includes": ",".join(ARTICLE_FIELDS)})
            out.update({d["_id"]: d["_source"] for d in answer.get("docs", []) if d.get("found")})
        return out

    def _apply(self, changes: Plan, batch: set[str]) -> dict[str, list[str]]:
        """Write a plan; refresh so that the next batch's lookup sees it."""
        if not changes.upserts and not changes.deleted:
            return {}
        failures = list(self.client.bulk(
            {"_op_type": "index", "_index": self.events, "_id": doc["event_id"], "_source": doc}
            for doc in changes.upserts))
        if any(not isinstance(f.status, int) for f in failures):
            raise EngineUnavailable(f"bulk: {failures[0].error}")
        failed: dict[str, list[str]] = {}
        for failure in failures:
            log.warning("%s rejected event %s (%s): %s", self.name, failure.doc_id, failure.status,
                        failure.error)
            reason = f"event rejected ({failure.status}): {failure.error}"[:300]
            failed.setdefault(reason, []).extend(
                a for a in changes.articles_of(failure.doc_id) if a in batch)
        # A happening whose replacement failed must not vanish: keep every old one until
        # the parked articles' replay plans again.
        if changes.deleted and not failures:
            # (no refresh of its own: the one below serves both writes)
            self.client.request("POST", f"/{self.events}/_delete_by_query",
                                {"query": {"ids": {"values": changes.deleted}}},
                                params={"conflicts": "proceed"})
        self.client.request("POST", f"/{self.events}/_refresh")
        return failed

    def replay(self) -> int:
        """Index what the spool holds; returns how many records made it."""
        if not self.online:
            return 0
        entries = list(self.spool.take())
        if not entries:
            return 0
        latest = {e["record"]["id"]: e for e in entries}  # a later copy wins
        failed = self._index([e["record"] for e in latest.values()])
        retry, give_up = [], []
        for reason, recs in failed.items():
            for rec in recs:
                entry = latest[rec["id"]]
                entry = {**entry, "reason": reason, "attempts": entry.get("attempts", 0) + 1}
                (give_up if entry["attempts"] >= MAX_ATTEMPTS and "unreachable" not in reason
                 else retry).append(entry)
        self.spool.done()
        for entry in retry:
            self.spool.park([entry["record"]], entry["reason"], entry["attempts"])
        if give_up:
            log.error("%d record(s) rejected %d times; kept in %s", len(give_up), MAX_ATTEMPTS,
                      self.spool.rejected)
            self.spool.reject(give_up)
        done = len(latest) - len(retry) - len(give_up)
        log.info("replayed %d spooled record(s) into %s", done, self.name)
        return done

    def delete(self, ids: Iterable[str]) -> int:
        self._require_online()
        ids = list(dict.fromkeys(ids))
        if not ids:
            return 0
        for record_id in ids:
            self._recent.pop(record_id, None)
        # delete_by_query finds what search sees: this run's writes too
        self.client.request("POST", f"/{self.articles}/_refresh")
        result = self.client.request("POST", f"/{self.articles}/_delete_by_query",
                                     {"query": {"ids": {"values": ids}}},
                                     params={"conflicts": "proceed", "refresh": "true"})
        failed = self._update_events([], ids)
        if failed:
            raise ApiError(400, next(iter(failed)), "delete: updating the events")
        return int(result.get("deleted", 0))

    def refresh(self) -> None:
        """End of a run: make writes searchable. An engine that was down may be back:
        try once more, which also replays what this run spooled."""
        if not self.online:
            self._initialised = False
            self.init()
        if self.online:
            self.client.request("POST", f"/{self.articles},{self.events}/_refresh")
            self.spool.note_flush()

    # -- reading -------------------------------------------------------------------
    def get(self, record_id: str) -> dict | None:
        self.init()
        if not self.online:
            return None
        try:
            return self.client.request("GET", f"/{self.articles}/_doc/{record_id}")["_source"]
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def search(self, request: SearchRequest) -> SearchResult:
        self._require_online()
        result = self.client.request("POST", f"/{self.articles}/_search", dsl.search_body(request))
        hits = [Hit(h["_source"], float(h.get("_score") or 0.0), dsl.snippet_from(h))
                for h in result["hits"]["hits"]]
        return SearchResult(int(result["hits"]["total"]["value"]), hits)

    def count(self, filters: Filters | None = None) -> int:
        self._require_online()
        return int(self.client.request("POST", f"/{self.articles}/_count",
                                       dsl.count_body(filters))["count"])

    def iter_records(self, filters: Filters | None = None) -> Iterator[dict]:
        self._require_online()
        yield from self._iter_articles(filters)

    def _iter_articles(self, filters: Filters | None = None,
                       fields: tuple[str, ...] | None = None) -> Iterator[dict]:
        body = {**dsl.count_body(filters), "size": 500, "sort": [{"id": "asc"}]}
        if fields:
            body["_source"] = list(fields)
        while True:
            hits = self.client.request("POST", f"/{self.articles}/_search", body)["hits"]["hits"]
            yield from (h["_source"] for h in hits)
            if len(hits) < body["size"]:
                return
            body["search_after"] = hits[-1]["sort"]

    # -- happenings ----------------------------------------------------------------
    def search_events(self, filters: EventFilters | None = None, limit: int = 50,
                      offset: int = 0) -> EventResult:
        self._require_online()
        result = self.client.request("POST", f"/{self.events}/_search",
                                     dsl.events_search_body(filters, limit, offset))
        return EventResult(int(result["hits"]["total"]["value"]),
                           [h["_source"] for h in result["hits"]["hits"]])

    def count_events(self, filters: EventFilters | None = None) -> int:
        self._require_online()
        return int(self.client.request("POST", f"/{self.events}/_count",
                                       {"query": dsl.events_query(filters)})["count"])

    def iter_events(self, filters: EventFilters | None = None) -> Iterator[dict]:
        self._require_online()
        body = {**dsl.events_search_body(filters, 500, 0)}
        del body["from"]
        while True:
            hits = self.client.request("POST", f"/{self.events}/_search", body)["hits"]["hits"]
            yield from (h["_source"] for h in hits)
            if len(hits) < body["size"]:
                return
            body["search_after"] = hits[-1]["sort"]

    def _rebuild_events(self, drop_old: bool = False,
                        say: Callable[[str], None] | None = None) -> dict:
        """Build the happenings from the stored articles into a new events index, then
        move the alias to it (the old index is deleted when `drop_old`)."""
        say = say or log.info
        old = self._alias_targets(self.events)
        versions = self._versions(self.events)
        floor = max([_version_number(v) for v in old] + [0])
        for index in versions:
            if index not in old and _version_number(index) > floor:
                # A build an interruption left half done: derived data, built again.
                say(f"{self.events}: deleting {index}, left unfinished by an earlier build")
                self.client.request("DELETE", f"/{index}")
        versions = [v for v in versions if v in old or _version_number(v) <= floor]
        new = versioned(self.events, max([_version_number(v) for v in versions + old] + [0]) + 1)
        say(f"{self.events}: building happenings from {self.articles} into {new}")
        self.client.request("PUT", f"/{new}", {})
        self.client.request("POST", f"/{self.articles}/_refresh")
        happenings = build_happenings(self._iter_articles(fields=ARTICLE_FIELDS))
        failures = list(self.client.bulk(
            {"_op_type": "index", "_index": new, "_id": doc["event_id"], "_source": doc}
            for doc in happenings))
        if failures:
            raise RuntimeError(f"{self.events}: {len(failures)} happening(s) rejected while "
                               f"building {new} (first: {failures[0].error}); alias left on "
                               f"{', '.join(old) or 'nothing'}, {new} kept for inspection")
        self.client.request("POST", f"/{new}/_refresh")
        actions = [{"remove": {"index": index, "alias": self.events}} for index in old]
        actions.append({"add": {"index": new, "alias": self.events}})
        self.client.request("POST", "/_aliases", {"actions": actions})
        if drop_old:
            for index in old:
                self.client.request("DELETE", f"/{index}")
        moved = {"from": old[0] if len(old) == 1 else (old or None), "to": new,
                 "dropped_old": bool(old and drop_old), "documents": self._doc_count(new)}
        say(f"{self.events}: now on {new} ({moved['documents']} happenings, events mapping "
            f"v{EVENTS_MAPPING_VERSION})")
        return moved

    # -- versions ------------------------------------------------------------------
    def status(self) -> dict:
        self.init()
        info = {"engine": self.name, "online": self.online, "spooled": len(self.spool),
                "rejected": self.spool.rejected_count(), "last_flush": self.spool.last_flush()}
        if self.online:
            if self.live_mapping_version is None:  # set-up did not need to read it
                found = self.client.request("GET", f"/{self.articles}/_mapping")
                self.live_mapping_version = min(
                    [_mapping_version(v.get("mappings", {})) for v in found.values()] or [None])
            info["mapping_version"] = self.live_mapping_version
            info["code_mapping_version"] = MAPPING_VERSION
            if (drift := self.mapping_drift()) is not None:
                info["mapping_drift"] = drift
            for alias in self.templates:
                info[alias] = {
                    "current": self._alias_targets(alias),
                    "versions": {index: self._doc_count(index) for index in self._versions(alias)},
                }
            info["articles"] = self.count()
            info["events"] = self.count_events()
        return info

    def _versions(self, alias: str) -> list[str]:
        try:
            found = self.client.request("GET", f"/{alias}-v*/_settings/index.creation_date")
        except ApiError as exc:
            if exc.status == 404:
                return []
            raise
        return sorted(found, key=_version_number)

    def _doc_count(self, index: str) -> int:
        return int(self.client.request("POST", f"/{index}/_count", {"query": {"match_all": {}}})["count"])

    def migrate(self, drop_old: bool = False, progress: Callable[[str], None] | None = None,
                batch_size: int = MIGRATE_BATCH, poll_seconds: float = MIGRATE_POLL_SECONDS) -> dict:
        """Reindex every alias into a new version, check counts, swap the alias atomically.
        The old index is kept unless `drop_old`. Run it while no crawl is writing.

        The articles are copied by a reindex task on the engine (`batch_size` documents a
        batch), polled every `poll_seconds` with progress lines; the task outlives this
        process. A re-run after an interruption finds the unfinished target (its `_meta`
        names the task) and waits for the task, or continues the copy into the same
        target, instead of making another version."""
        self._require_online()
        with self._as_admin("`cyz index migrate`"):
            return self._migrate(drop_old, progress, batch_size, poll_seconds)

    def _migrate(self, drop_old: bool, progress: Callable[[str], None] | None,
                 batch_size: int, poll_seconds: float) -> dict:
        say = progress or log.info
        moved = {}
        for alias in self.templates:
            if alias == self.events:
                # Derived data: built again from the (just moved) articles, which also
                # brings an older events mapping up to date.
                moved[alias] = self._rebuild_events(drop_old, say)
                continue
            (old,) = self._alias_targets(alias) or (None,)
            new, task = self._migration_target(alias, old, say)
            if old:
                self._reindex(alias, old, new, task, say, batch_size, poll_seconds)
                self.client.request("POST", f"/{old}/_refresh")
                self.client.request("POST", f"/{new}/_refresh")
                before, after = self._doc_count(old), self._doc_count(new)
                if before != after:
                    raise RuntimeError(f"{alias}: {old} holds {before} documents but {new} "
                                       f"{after}; alias left on {old}, {new} kept for "
                                       f"inspection (delete it and run `cyz index migrate` "
                                       "again to copy afresh)")
            actions = [{"add": {"index": new, "alias": alias}}]
            if old:
                actions.insert(0, {"remove": {"index": old, "alias": alias}})
            self.client.request("POST", "/_aliases", {"actions": actions})
            # Done: the target's `_meta` keeps only its mapping version.
            self.client.request("PUT", f"/{new}/_mapping",
                                {"_meta": {"cyz_mapping_version": MAPPING_VERSION}})
            if old and drop_old:
                self.client.request("DELETE", f"/{old}")
            moved[alias] = {"from": old, "to": new, "dropped_old": bool(old and drop_old),
                            "documents": self._doc_count(new)}
            say(f"{alias}: now on {new} ({moved[alias]['documents']} documents, mapping "
                f"v{MAPPING_VERSION})")
        self.live_mapping_version = MAPPING_VERSION
        return moved

    def _migration_target(self, alias: str, old: str | None,
                          say: Callable[[str], None]) -> tuple[str, str | None]:
        """The index to migrate into and the reindex task a previous run left (or None).

        A version newer than the alias's that no alias points to is an unfinished
        migration's target: the newest one of this cyz's mapping is taken up again;
        the others (an older cyz's, or extra copies) are deleted, unless a reindex
        task still writes into them (then the migration stops and says so)."""
        # (No alias at all: nothing is taken up or deleted, the next number is made.)
        unfinished = [v for v in self._versions(alias)
                      if old and _version_number(v) > _version_number(old)]
        running = self._running_reindexes() if unfinished else {}
        resume, task = None, None
        for index in sorted(unfinished, key=_version_number, reverse=True):
            meta = self._index_meta(index)
            mine = (meta.get("cyz_mapping_version") == MAPPING_VERSION
                    and (meta.get("cyz_migration") or {}).get("from") in (old, None))
            if resume is None and mine:
                resume, task = index, (meta.get("cyz_migration") or {}).get("task")
                continue
            if index in running:
                raise RuntimeError(f"{alias}: reindex task {running[index]} still writes into "
                                   f"{index} (left by an earlier migration); wait for it to "
                                   f"end (GET _tasks/{running[index]}) or cancel it, then run "
                                   "`cyz index migrate` again")
            say(f"{alias}: deleting {index}, the unfinished target of an earlier migration")
            self.client.request("DELETE", f"/{index}")
        if resume is not None:
            say(f"{alias}: taking up the unfinished migration into {resume}")
            return resume, task or running.get(resume)
        versions = self._versions(alias) + ([old] if old else [])
        new = versioned(alias, max([_version_number(v) for v in versions] + [0]) + 1)
        self.client.request("PUT", f"/{new}", {})
        return new, None

    def _index_meta(self, index: str) -> dict:
        found = self.client.request("GET", f"/{index}/_mapping")
        return next(iter(found.values()), {}).get("mappings", {}).get("_meta") or {}

    def _running_reindexes(self) -> dict[str, str]:
        """{target index: task id} of the reindex tasks running on the cluster."""
        answer = self.client.request("GET", "/_tasks",
                                     params={"actions": "*reindex", "detailed": "true"})
        out = {}
        for node in answer.get("nodes", {}).values():
            for task_id, task in node.get("tasks", {}).items():
                match = re.search(r"to \[([^\]]+)\]", task.get("description", ""))
                if match and not task.get("parent_task_id"):
                    out[match[1]] = task_id
        return out

    def _reindex(self, alias: str, old: str, new: str, task: str | None,
                 say: Callable[[str], None], batch_size: int, poll_seconds: float) -> None:
        """Copy `old` into `new` by a reindex task: the one a previous run started when it
        still runs or has finished well, else a new one. Documents already copied are
        kept unless `old` holds a newer version of them (external versioning), so a
        continued copy costs little."""
        if task is not None:
            state = self._task(task)
            if state is None or (state.get("completed") and not _task_ok(state)):
                task = None  # lost with a node restart, cancelled or failed: copy on
            elif state.get("completed"):
                say(f"{alias}: the copy {old} → {new} (task {task}) finished while cyz was away")
                return
            else:
                say(f"{alias}: the copy {old} → {new} is still running (task {task}): waiting")
        if task is None:
            task = self._start_reindex(old, new, batch_size)
            say(f"{alias}: copying {old} → {new} (task {task}, batches of {batch_size})")
            self.client.request("PUT", f"/{new}/_mapping", {"_meta": {
                "cyz_mapping_version": MAPPING_VERSION,
                "cyz_migration": {"from": old, "task": task}}})
        self._wait_for(alias, task, say, poll_seconds)

    def _start_reindex(self, old: str, new: str, batch_size: int) -> str:
        """Start the reindex task and return its id. Sent once: a client retry (after a
        timeout) would start a second copy beside the first."""
        body = {"source": {"index": old, "size": batch_size},
                "dest": {"index": new, "version_type": "external"},
                "conflicts": "proceed"}
        try:
            answer = self.client.request("POST", "/_reindex", body,
                                         params={"wait_for_completion": "false"}, retry=False)
        except EngineUnavailable:
            # The engine may have started it before the answer was lost: find it.
            running = self._running_reindexes()
            if new in running:
                return running[new]
            raise
        return str(answer["task"])

    def _task(self, task: str) -> dict | None:
        try:
            return self.client.request("GET", f"/_tasks/{task}")
        except ApiError as exc:
            if exc.status == 404:
                return None
            raise

    def _wait_for(self, alias: str, task: str, say: Callable[[str], None],
                  poll_seconds: float) -> None:
        last = None
        try:
            while True:
                state = self._task(task)
                if state is None:
                    raise RuntimeError(f"{alias}: the reindex task {task} is gone (the node "
                                       "restarted?): run `cyz index migrate` again to go on")
                status = state.get("task", {}).get("status", {})
                total = int(status.get("total") or 0)
                done = sum(int(status.get(k) or 0) for k in
                           ("created", "updated", "deleted", "version_conflicts", "noops"))
                line = f"{alias}: {done:,} / {total:,} documents copied"
                if total:
                    line += f" ({done / total:.0%})"
                if line != last:
                    say(line)
                    last = line
                if state.get("completed"):
                    if not _task_ok(state):
                        raise RuntimeError(f"{alias}: the reindex task {task} failed: "
                                           f"{_task_error(state)}; run `cyz index migrate` "
                                           "again to go on")
                    return
                time.sleep(poll_seconds)
        except KeyboardInterrupt:
            say(f"{alias}: interrupted; the copy goes on in the engine (task {task}): run "
                "`cyz index migrate` again to wait for it and finish")
            raise

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        self.client.close()

    def newest_by_source(self) -> dict[str, dict]:
        """{source_id: {"articles": n, "newest_published_at": ISO or None}}: a terms
        aggregation on `source_id`, each bucket's newest article by `published_at` (its
        stored string, as the SQLite engine gives it, not the engine's epoch value)."""
        self._require_online()
        body = {"size": 0, "aggs": {"sources": {
            "terms": {"field": "source_id", "size": NEWEST_SOURCES, "order": {"_key": "asc"}},
            "aggs": {"newest": {"top_hits": {
                "size": 1, "_source": ["published_at"],
                "sort": [{"published_at": {"order": "desc", "missing": "_last"}}]}}}}}}
        answer = self.client.request("POST", f"/{self.articles}/_search", body)
        out: dict[str, dict] = {}
        for bucket in answer.get("aggregations", {}).get("sources", {}).get("buckets", []):
            hits = bucket["newest"]["hits"]["hits"]
            newest = hits[0]["_source"].get("published_at") if hits else None
            out[bucket["key"]] = {"articles": int(bucket["doc_count"]),
                                  "newest_published_at": newest or None}
        return out


# Terms buckets of `newest_by_source`: more than any config will hold.
NEWEST_SOURCES = 10_000

# The id `check_writable` updates: never an article's (those are hex hashes).
WRITE_PROBE_ID = "cyz-write-check"


def _covers(live: dict, wanted: dict) -> bool:
    """Every field of `wanted` (mapping properties) is in `live` with its type, its
    sub-fields and multi-fields too (an in-place mapping update only adds fields)."""
    for name, spec in wanted.items():
        have = live.get(name)
        if not isinstance(have, dict):
            return False
        if have.get("type", "object") != spec.get("type", "object"):
            return False
        # How a field is analysed and whether it is searched cannot change in place.
        if any(have.get(key, default) != spec[key] for key, default in
               (("analyzer", None), ("search_analyzer", None), ("index", True)) if key in spec):
            return False
        for key in ("properties", "fields"):
            if not _covers(have.get(key, {}), spec.get(key, {})):
                return False
    return True


def _mapping_version(mappings: dict) -> int:
    """The mapping version of an articles index: its `_meta` (from 3), else told by how
    `text` is analysed (2: single characters beside the pairs, 1: pairs only)."""
    version = (mappings.get("_meta") or {}).get("cyz_mapping_version")
    if isinstance(version, int):
        return version
    text = mappings.get("properties", {}).get("text", {})
    return 2 if text.get("analyzer") == INDEX_ANALYZER else 1


def _task_ok(state: dict) -> bool:
    response = state.get("response") or {}
    return not state.get("error") and not response.get("failures")


def _task_error(state: dict) -> str:
    if state.get("error"):
        return _reason({"error": state["error"]})
    failures = (state.get("response") or {}).get("failures") or []
    return f"{len(failures)} document(s) failed, first: {str(failures[0])[:300]}"


def _version_number(index: str) -> int:
    match = re.search(r"-v(\d+)$", index)
    return int(match.group(1)) if match else 0


def _article_actions(records: list[dict], articles: str) -> Iterator[dict]:
    for record in records:
        yield {"_op_type": "index", "_index": articles, "_id": record["id"], "_source": record}
