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
from collections.abc import Callable, Iterable, Iterator
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
                params: dict | None = None) -> dict:
        """Send one request; return the JSON body (or {} for HEAD). Raise ApiError on an
        HTTP error status, EngineUnavailable when the engine cannot be reached."""
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
        cyz's templates: nothing for the set-up to do (read with `view_index_metadata`)."""
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
            if live.get("_meta") != wanted.get("_meta"):
                return False
            if not _covers(live.get("properties", {}), wanted.get("properties", {})):
                return False
        return True

    def _set_up(self, admin: bool = False) -> None:
        self._initialised = True
        # The nightly credentials only read the mappings; a new index, template or field
        # is the admin's (`cyz index init`, `cyz index migrate`).
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
            log.warning("%s: the index mappings differ from this cyz's (mapping v%d, events "
                        "v%d) and %s may not update them: run `cyz index init` (new fields) "
                        "or `cyz index migrate` (changed ones) with %s set", self.name,
                        MAPPING_VERSION, EVENTS_MAPPING_VERSION,
                        self.client.credentials or "the login", self.client.admin_settings)
            self.online = True

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
            try:
                self.client.request("PUT", f"/{alias}/_mapping", body)
            except ApiError as exc:
                if exc.status == 400 and alias == self.articles:
                    # An index of an older mapping (v1 analysed text without single
                    # characters) keeps serving as it is until migrated.
                    log.warning("%s has an older mapping (%s): run `cyz index migrate` to "
                                "bring it to mapping v%d (one-character words find nothing "
                                "until then)", alias, exc, MAPPING_VERSION)
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
        try:
            failures = list(self.client.bulk(_article_actions(records, self.articles)))
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
        try:
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

    def _update_events(self, records: list[dict], removed: list[str] = ()) -> dict[str, list[str]]:
        """Plan and write the happenings after `records` were indexed and `removed`
        deleted; returns the ids of batch articles whose happenings failed, by reason."""
        lookup = candidate_lookup(records, removed)
        if lookup.is_empty:
            return {}
        candidates = touchable(records, self._candidates(dsl.candidates_query(lookup)), removed)
        exclude = {r["id"] for r in records} | set(removed)
        reported = self._articles_by_id(reported_articles(candidates, exclude))
        changes = plan(records, candidates, reported, removed)
        return self._apply(changes, exclude)

    def _candidates(self, query: dict) -> list[dict]:
        found: list[dict] = []
        body = {"query": query, "size": EVENT_PAGE, "sort": [{"event_id": "asc"}]}
        while True:
            hits = self.client.request("POST", f"/{self.events}/_search", body)["hits"]["hits"]
            found += [h["_source"] for h in hits]
            if len(hits) < EVENT_PAGE:
                return found
            body["search_after"] = hits[-1]["sort"]

    def _articles_by_id(self, ids: list[str]) -> dict[str, dict]:
        """The reported articles' fields a plan reads. `_mget` reads in real time: the
        articles of the previous batch are there before the index refreshes."""
        out: dict[str, dict] = {}
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
            self.client.request("POST", f"/{self.events}/_delete_by_query",
                                {"query": {"ids": {"values": changes.deleted}}},
                                params={"conflicts": "proceed", "refresh": "true"})
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

    def migrate(self, drop_old: bool = False, progress: Callable[[str], None] | None = None) -> dict:
        """Reindex every alias into a new version, check counts, swap the alias atomically.
        The old index is kept unless `drop_old`. Run it while no crawl is writing."""
        self._require_online()
        with self._as_admin("`cyz index migrate`"):
            return self._migrate(drop_old, progress)

    def _migrate(self, drop_old: bool, progress: Callable[[str], None] | None) -> dict:
        say = progress or log.info
        moved = {}
        for alias in self.templates:
            if alias == self.events:
                # Derived data: built again from the (just moved) articles, which also
                # brings an older events mapping up to date.
                moved[alias] = self._rebuild_events(drop_old, say)
                continue
            (old,) = self._alias_targets(alias) or (None,)
            versions = self._versions(alias)
            new = versioned(alias, max([_version_number(v) for v in versions] + [0]) + 1)
            self.client.request("PUT", f"/{new}", {})
            if old:
                say(f"{alias}: reindexing {old} → {new}")
                self.client.request("POST", "/_reindex", {"source": {"index": old}, "dest": {"index": new}},
                                    params={"wait_for_completion": "true", "refresh": "true"})
                self.client.request("POST", f"/{old}/_refresh")
                before, after = self._doc_count(old), self._doc_count(new)
                if before != after:
                    raise RuntimeError(f"{alias}: {old} holds {before} documents but {new} "
                                       f"{after}; alias left on {old}, {new} kept for inspection")
            actions = [{"add": {"index": new, "alias": alias}}]
            if old:
                actions.insert(0, {"remove": {"index": old, "alias": alias}})
            self.client.request("POST", "/_aliases", {"actions": actions})
            if old and drop_old:
                self.client.request("DELETE", f"/{old}")
            moved[alias] = {"from": old, "to": new, "dropped_old": bool(old and drop_old),
                            "documents": self._doc_count(new)}
            say(f"{alias}: now on {new} ({moved[alias]['documents']} documents)")
        return moved

    def close(self) -> None:
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
        for key in ("properties", "fields"):
            if not _covers(have.get(key, {}), spec.get(key, {})):
                return False
    return True


def _version_number(index: str) -> int:
    match = re.search(r"-v(\d+)$", index)
    return int(match.group(1)) if match else 0


def _article_actions(records: list[dict], articles: str) -> Iterator[dict]:
    for record in records:
        yield {"_op_type": "index", "_index": articles, "_id": record["id"], "_source": record}
