"""Loopback HTTP servers that record what a search client sends.

`FakeElasticsearch` answers like an Elasticsearch 8 node for the requests cyz makes
(it keeps indices, aliases and documents in memory, so answers follow from earlier
writes the way a real node's do). `RecordingProxy` forwards to a real node and
returns its answers unchanged. Both record every request as a `Recorded`, so a test
can compare what two clients put on the wire.
"""

from __future__ import annotations

import fnmatch
import http.client
import json
import ssl
import threading
from dataclasses import dataclass, field
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit


@dataclass
class Recorded:
    method: str
    path: str  # percent-decoded, without the query string
    params: dict[str, str]
    headers: dict[str, str]  # names lower-cased
    body: object  # parsed JSON; a list of parsed lines for NDJSON; None when empty

    def key(self) -> tuple:
        """What must match between two clients (headers legitimately differ)."""
        return (self.method, self.path, self.params, self.body)


def parse_body(path: str, headers: dict[str, str], raw: bytes) -> object:
    if not raw:
        return None
    text = raw.decode("utf-8")
    if path.endswith("/_bulk") or "ndjson" in headers.get("content-type", ""):
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return json.loads(text)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the clients' connection pools expect

    def _any(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length) if length else b""
        split = urlsplit(self.path)
        headers = {k.lower(): v for k, v in self.headers.items()}
        path = unquote(split.path)
        recorded = Recorded(self.command, path, dict(parse_qsl(split.query, keep_blank_values=True)),
                            headers, parse_body(path, headers, raw))
        status, reply_headers, body = self.server.owner.answer(recorded, self.path, raw)
        self.send_response(status)
        for name, value in reply_headers.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass  # keep pytest output clean


class LoopbackServer:
    """A threaded HTTP(S) server on 127.0.0.1 that records requests; subclasses answer."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None):
        self.requests: list[Recorded] = []
        self.faults: list[str] = []  # requests the server could not answer (bugs in a fake)
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self
        if ssl_context is not None:
            self._httpd.socket = ssl_context.wrap_socket(self._httpd.socket, server_side=True)
        scheme = "https" if ssl_context else "http"
        self.url = f"{scheme}://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def __enter__(self) -> LoopbackServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def answer(self, request: Recorded, raw_target: str, raw_body: bytes) -> tuple[int, dict, bytes]:
        with self._lock:
            self.requests.append(request)
            try:
                return self.reply(request, raw_target, raw_body)
            except Exception as exc:  # a gap in the fake: answer so the test fails visibly
                self.faults.append(f"{request.method} {request.path}: {exc!r}")
                return 500, {"content-type": "text/plain"}, repr(exc).encode()

    def reply(self, request: Recorded, raw_target: str, raw_body: bytes) -> tuple[int, dict, bytes]:
        raise NotImplementedError


class RecordingProxy(LoopbackServer):
    """Forwards every request to `upstream` (http://host:port) and returns its answer."""

    _HOP = {"host", "content-length", "connection", "keep-alive", "transfer-encoding"}

    def __init__(self, upstream: str):
        super().__init__()
        self.upstream = urlsplit(upstream)

    def reply(self, request: Recorded, raw_target: str, raw_body: bytes) -> tuple[int, dict, bytes]:
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=60)
        try:
            headers = {k: v for k, v in request.headers.items() if k not in self._HOP}
            conn.request(request.method, raw_target, body=raw_body or None, headers=headers)
            response = conn.getresponse()
            body = response.read()
            keep = {k.lower(): v for k, v in response.getheaders()
                    if k.lower() not in self._HOP and k.lower() != "content-encoding"}
            return response.status, keep, body
        finally:
            conn.close()


# --- a fake Elasticsearch 8 -------------------------------------------------------


def _json(status: int, body: object, product: bool = True) -> tuple[int, dict, bytes]:
    headers = {"content-type": "application/vnd.elasticsearch+json;compatible-with=8"}
    if product:
        headers["x-elastic-product"] = "Elasticsearch"
    return status, headers, json.dumps(body, ensure_ascii=False).encode("utf-8")


def _error(status: int, kind: str, reason: str) -> dict:
    cause = {"type": kind, "reason": reason}
    return {"error": {"root_cause": [cause], **cause}, "status": status}


def _values(doc: dict, dotted: str) -> list:
    """Every value at a dotted path (through lists), like a keyword field's terms."""
    found: list = [doc]
    for part in dotted.split("."):
        nxt: list = []
        for item in found:
            for one in item if isinstance(item, list) else [item]:
                if isinstance(one, dict) and one.get(part) is not None:
                    value = one[part]
                    nxt.extend(value if isinstance(value, list) else [value])
        found = nxt
    return found


def _instant(value: str) -> datetime | None:
    try:
        return datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None


def matches(query: dict, doc_id: str, doc: dict) -> bool:
    """The query-DSL subset cyz sends, evaluated the way Elasticsearch would."""
    ((kind, spec),) = query.items()
    if kind == "match_all":
        return True
    if kind == "ids":
        return doc_id in spec["values"]
    if kind == "exists":
        return bool(_values(doc, spec["field"]))
    if kind == "function_score":  # scores aside, it finds what its query finds
        return matches(spec["query"], doc_id, doc)
    if kind == "terms":
        ((name, wanted),) = spec.items()
        return any(v in wanted for v in _values(doc, name))
    if kind == "prefix":
        ((name, start),) = spec.items()
        return any(str(v).startswith(start) for v in _values(doc, name))
    if kind == "range":
        ((name, bounds),) = spec.items()
        ok = False
        for value in _values(doc, name):
            at = _instant(value)
            if at is None:
                continue
            low, high = _instant(bounds.get("gte", "")), _instant(bounds.get("lte", ""))
            ok = ok or ((low is None or at >= low) and (high is None or at <= high))
        return ok
    if kind == "multi_match":  # type phrase: a contiguous string (what CJK bigrams give)
        fields = [f.split("^")[0] for f in spec["fields"]]
        return any(spec["query"] in str(v) for f in fields for v in _values(doc, f))
    if kind == "bool":
        must = spec.get("must", []) + spec.get("filter", [])
        should = spec.get("should", [])
        return (all(matches(q, doc_id, doc) for q in must)
                and not any(matches(q, doc_id, doc) for q in spec.get("must_not", []))
                and (not should or sum(matches(q, doc_id, doc) for q in should)
                     >= spec.get("minimum_should_match", 1)))
    raise AssertionError(f"the fake does not know the query {kind!r}: teach it")


@dataclass
class FakeElasticsearch(LoopbackServer):
    """An in-memory Elasticsearch 8 for the requests `SearchEngine` makes.

    `reject` maps a document id to the (status, error type) its bulk item fails with;
    `throttle_bulk` answers that many `_bulk` requests with HTTP 429 first;
    `product_header=False` plays a server that is not Elasticsearch.
    """

    ssl_context: ssl.SSLContext | None = None
    product_header: bool = True
    reject: dict[str, tuple[int, str]] = field(default_factory=dict)
    throttle_bulk: int = 0
    indices: dict[str, dict[str, dict]] = field(default_factory=dict)
    aliases: dict[str, set[str]] = field(default_factory=dict)
    templates: dict[str, dict] = field(default_factory=dict)
    tasks: dict[str, dict] = field(default_factory=dict)

    def __post_init__(self) -> None:
        LoopbackServer.__init__(self, self.ssl_context)
        self._created = 1_700_000_000_000
        self._creation: dict[str, int] = {}

    # -- names -----------------------------------------------------------------------
    def _resolve(self, target: str) -> list[str]:
        out: list[str] = []
        for name in target.split(","):
            if "*" in name:
                out += sorted(i for i in self.indices if fnmatch.fnmatchcase(i, name))
            elif name in self.aliases:
                out += sorted(self.aliases[name])
            elif name in self.indices:
                out.append(name)
        return out

    def _missing(self, target: str) -> tuple[int, dict, bytes] | None:
        for name in target.split(","):
            if "*" not in name and name not in self.aliases and name not in self.indices:
                return self._answer(404, _error(404, "index_not_found_exception", f"no such index [{name}]"))
        return None

    def _answer(self, status: int, body: object) -> tuple[int, dict, bytes]:
        return _json(status, body, self.product_header)

    def _docs(self, target: str, query: dict) -> list[tuple[str, str, dict]]:
        return [(index, doc_id, doc) for index in self._resolve(target)
                for doc_id, doc in self.indices[index].items() if matches(query, doc_id, doc)]

    def _template_of(self, index: str) -> dict:
        for template in self.templates.values():
            if any(fnmatch.fnmatchcase(index, p) for p in template["index_patterns"]):
                return template["template"]["mappings"]
        return {}

    def _create(self, index: str, body: dict | None) -> None:
        self.indices[index] = {}
        self._created += 1
        self._creation[index] = self._created
        for alias in (body or {}).get("aliases", {}):
            self.aliases.setdefault(alias, set()).add(index)

    # -- routes ----------------------------------------------------------------------
    def reply(self, request: Recorded, raw_target: str, raw_body: bytes) -> tuple[int, dict, bytes]:
        method, body = request.method, request.body
        parts = request.path.strip("/").split("/")
        if method == "PUT" and parts[0] == "_index_template":
            self.templates[parts[1]] = body
            return self._answer(200, {"acknowledged": True})
        if method == "GET" and parts[0] == "_alias":
            alias = parts[1]
            if not self.aliases.get(alias):
                return self._answer(404, {"error": f"alias [{alias}] missing", "status": 404})
            return self._answer(200, {i: {"aliases": {alias: {}}} for i in sorted(self.aliases[alias])})
        if method in ("POST", "PUT") and parts == ["_bulk"]:  # ES routes both
            return self._bulk(body)
        if method == "POST" and parts == ["_reindex"]:
            source, dest = body["source"]["index"], body["dest"]["index"]
            docs = dict(self.indices[source])
            self.indices[dest].update(docs)
            result = {"took": 1, "timed_out": False, "total": len(docs),
                      "created": len(docs), "updated": 0, "deleted": 0,
                      "batches": 1, "version_conflicts": 0, "noops": 0, "failures": []}
            if request.params.get("wait_for_completion") == "false":
                # A task that has finished by the time anyone asks (`GET _tasks/<id>`).
                task = f"fakenode:{len(self.tasks) + 1}"
                status = {k: result[k] for k in ("total", "created", "updated", "deleted",
                                                 "batches", "version_conflicts", "noops")}
                self.tasks[task] = {"completed": True, "task": {
                    "node": "fakenode", "id": len(self.tasks) + 1, "type": "transport",
                    "action": "indices:data/write/reindex", "status": status,
                    "description": f"reindex from [{source}] to [{dest}]"}, "response": result}
                return self._answer(200, {"task": task})
            return self._answer(200, result)
        if method == "GET" and parts == ["_tasks"]:  # running tasks: none, all finish at once
            return self._answer(200, {"nodes": {}})
        if method == "GET" and parts[0] == "_tasks" and len(parts) == 2:
            if parts[1] not in self.tasks:
                return self._answer(404, _error(404, "resource_not_found_exception",
                                                f"task [{parts[1]}] isn't running and hasn't stored its results"))
            return self._answer(200, self.tasks[parts[1]])
        if method == "POST" and parts == ["_aliases"]:
            for action in body["actions"]:
                ((verb, spec),) = action.items()
                names = self.aliases.setdefault(spec["alias"], set())
                (names.add if verb == "add" else names.discard)(spec["index"])
            return self._answer(200, {"acknowledged": True})
        if method == "PUT" and len(parts) == 1:
            if parts[0] in self.indices:
                return self._answer(400, _error(400, "resource_already_exists_exception",
                                                f"index [{parts[0]}] already exists"))
            self._create(parts[0], body)
            return self._answer(200, {"acknowledged": True, "shards_acknowledged": True, "index": parts[0]})
        if method == "DELETE" and len(parts) == 1:
            if missing := self._missing(parts[0]):
                return missing
            for index in self._resolve(parts[0]):
                del self.indices[index]
                for names in self.aliases.values():
                    names.discard(index)
            return self._answer(200, {"acknowledged": True})
        target = parts[0]
        if missing := self._missing(target):
            return missing
        if method == "PUT" and parts[1:] == ["_mapping"]:
            return self._answer(200, {"acknowledged": True})
        if method == "GET" and parts[1:] == ["_mapping"]:  # what the matching template made
            return self._answer(200, {i: {"mappings": self._template_of(i)} for i in self._resolve(target)})
        if method == "POST" and parts[1:2] == ["_update"]:
            for index in self._resolve(target):
                if parts[2] in self.indices[index]:
                    raise AssertionError("the fake updates no stored document: teach it")
            index = (self._resolve(target) or [target])[0]
            return self._answer(404, _error(404, "document_missing_exception",
                                            f"[{parts[2]}]: document missing"))
        if method == "POST" and parts[1:] == ["_refresh"]:
            n = len(self._resolve(target))
            return self._answer(200, {"_shards": {"total": n, "successful": n, "failed": 0}})
        if method == "POST" and parts[1:] == ["_count"]:
            return self._answer(200, {"count": len(self._docs(target, body["query"])),
                                      "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0}})
        if method == "POST" and parts[1:] == ["_delete_by_query"]:
            found = self._docs(target, body["query"])
            for index, doc_id, _doc in found:
                del self.indices[index][doc_id]
            return self._answer(200, {"took": 1, "timed_out": False, "total": len(found),
                                      "deleted": len(found), "batches": 1, "version_conflicts": 0,
                                      "noops": 0, "failures": []})
        if method == "POST" and parts[1:] == ["_search"]:
            return self._search(target, body)
        if method == "GET" and parts[1:2] == ["_doc"]:
            for index in self._resolve(target):
                if parts[2] in self.indices[index]:
                    return self._answer(200, {"_index": index, "_id": parts[2], "_version": 1,
                                              "_seq_no": 0, "_primary_term": 1, "found": True,
                                              "_source": self.indices[index][parts[2]]})
            index = (self._resolve(target) or [target])[0]
            return self._answer(404, {"_index": index, "_id": parts[2], "found": False})
        if method == "GET" and parts[1:] == ["_settings", "index.creation_date"]:
            return self._answer(200, {i: {"settings": {"index": {"creation_date": str(self._creation[i])}}}
                                      for i in self._resolve(target)})
        return self._answer(400, _error(400, "illegal_argument_exception",
                                        f"the fake has no route for {method} {request.path}"))

    def _bulk(self, lines: list[dict]) -> tuple[int, dict, bytes]:
        if self.throttle_bulk:
            self.throttle_bulk -= 1
            return self._answer(429, _error(429, "es_rejected_execution_exception",
                                            "rejected execution of coordinating operation"))
        items, errors = [], False
        for action, source in zip(lines[::2], lines[1::2], strict=True):
            ((op, meta),) = action.items()
            (index,) = self._resolve(meta["_index"])  # an alias must have one write index
            doc_id = meta["_id"]
            if doc_id in self.reject:
                status, kind = self.reject[doc_id]
                errors = True
                items.append({op: {"_index": index, "_id": doc_id, "status": status,
                                   "error": {"type": kind, "reason": f"failed to parse document [{doc_id}]"}}})
                continue
            created = doc_id not in self.indices[index]
            self.indices[index][doc_id] = source
            items.append({op: {"_index": index, "_id": doc_id, "_version": 1,
                               "result": "created" if created else "updated",
                               "_shards": {"total": 1, "successful": 1, "failed": 0},
                               "_seq_no": 0, "_primary_term": 1, "status": 201 if created else 200}})
        return self._answer(200, {"took": 1, "errors": errors, "items": items})

    def _search(self, target: str, body: dict) -> tuple[int, dict, bytes]:
        found = self._docs(target, body.get("query", {"match_all": {}}))
        if body.get("sort") == [{"id": "asc"}]:
            found.sort(key=lambda hit: hit[2].get("id", ""))
            if after := body.get("search_after"):
                found = [hit for hit in found if hit[2].get("id", "") > after[0]]
        start, size = body.get("from", 0), body.get("size", 10)
        hits = [{"_index": index, "_id": doc_id, "_score": 1.0, "_source": doc,
                 "sort": [doc.get("id")]} for index, doc_id, doc in found[start:start + size]]
        return self._answer(200, {"took": 1, "timed_out": False,
                                  "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                                  "hits": {"total": {"value": len(found), "relation": "eq"},
                                           "max_score": 1.0, "hits": hits}})
