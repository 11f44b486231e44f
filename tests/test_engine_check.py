"""The start-up check of the engine and its credentials (`Engine.check_writable`).

`cyz schedule` (and `cyz crawl` on a search engine) must notice an empty, wrong or
under-privileged key when it starts, in one line naming the engine's URL and the
setting to fix, not at 02:00 with a 401. Reachability and the passing check run
against the real OpenSearch node; the test node has no security plugin, so the
401/403 answers come from a loopback server that answers exactly as OpenSearch's
security plugin and Elasticsearch 8 do, and the exact requests made are checked.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from http_recorder import LoopbackServer, Recorded
from test_es_contract import _drop

from cyz.exit_codes import ExitCode
from cyz.index.mapping import article_template, event_template
from cyz.index.opensearch import OpenSearchClient
from cyz.index.search_engine import WRITE_PROBE_ID, AccessDenied, EngineUnavailable, SearchEngine
from cyz.index.sqlite import SqliteEngine
from cyz.storage import StorageError

REPO = Path(__file__).resolve().parents[1]


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cyz(*args: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CYZ_")}
    environ.update({"CYZ_DATA_DIR": str(data_dir), "COLUMNS": "200", **env})
    return subprocess.run([sys.executable, "-m", "cyz.cli", *args], capture_output=True,
                          text=True, env=environ, cwd=REPO, timeout=300)


def config_dir(tmp_path: Path) -> Path:
    """A config with one source (never fetched: the check comes first) and no alerts."""
    path = tmp_path / "config"
    path.mkdir()
    (path / "sources.yaml").write_text(
        "sources:\n  - id: s\n    name: 站\n    kind: news\n    region: 遵义\n"
        "    start_urls: [http://127.0.0.1:9/list/]\n    article_patterns: ['/a/\\d+\\.html$']\n",
        encoding="utf-8")
    (path / "alerts.yaml").write_text("rules: []\n", encoding="utf-8")
    shutil.copy(REPO / "config" / "topic.yaml", path / "topic.yaml")
    return path


# --- the real node ------------------------------------------------------------------


def test_the_check_passes_on_a_reachable_node_and_writes_nothing(opensearch_url, tmp_path):
    from http_recorder import RecordingProxy

    prefix = f"cyzck{secrets.token_hex(4)}"
    try:
        with RecordingProxy(opensearch_url) as proxy:
            engine = SearchEngine(OpenSearchClient.from_env({"CYZ_OPENSEARCH_URL": proxy.url}),
                                  tmp_path, prefix)
            engine.check_writable()  # a fresh cluster: the indices are made (no security here)
            first = [f"{r.method} {r.path}" for r in proxy.requests]
            proxy.requests.clear()
            engine.check_writable()  # and now they are current: reads and probes only
            again = [f"{r.method} {r.path}" for r in proxy.requests]
            assert engine.count() == 0 and engine.count_events() == 0
            engine.close()
    finally:
        _drop(opensearch_url, prefix)
    assert "PUT /_index_template/" + prefix + "-articles" in first
    assert again == [f"GET /{prefix}-articles/_mapping", f"GET /{prefix}-events/_mapping",
                     f"POST /{prefix}-articles/_count",
                     f"POST /{prefix}-articles/_update/{WRITE_PROBE_ID}",
                     f"POST /{prefix}-articles/_refresh",
                     f"POST /{prefix}-events/_count",
                     f"POST /{prefix}-events/_update/{WRITE_PROBE_ID}",
                     f"POST /{prefix}-events/_refresh"]


def test_an_unreachable_engine_stops_the_scheduler_at_start(tmp_path):
    url = f"http://127.0.0.1:{closed_port()}"
    proc = cyz("schedule", data_dir=tmp_path / "data", CYZ_CONFIG_DIR=str(config_dir(tmp_path)),
               CYZ_ENGINE="opensearch", CYZ_OPENSEARCH_URL=url)
    assert proc.returncode == ExitCode.ERROR, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert url in lines[0] and "unreachable" in lines[0] and "CYZ_OPENSEARCH_URL" in lines[0]
    assert "scheduler started" not in proc.stderr


def test_an_unreachable_engine_still_lets_a_crawl_spool(tmp_path):
    engine = SearchEngine(OpenSearchClient.from_env(
        {"CYZ_OPENSEARCH_URL": f"http://127.0.0.1:{closed_port()}"}), tmp_path, "cyzck")
    with pytest.raises(EngineUnavailable, match="CYZ_OPENSEARCH_URL"):
        engine.check_writable()
    engine.init()  # the crawl's own set-up: spools, as before
    assert not engine.online and engine.write([]) == 0
    engine.close()


# --- the SQLite index -----------------------------------------------------------------


def test_sqlite_checks_its_file_is_writable(tmp_path):
    good = SqliteEngine(tmp_path / "data" / "index.sqlite3")
    good.check_writable()
    assert good.schema_version > 0 and good.count() == 0
    good.close()
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    bad = SqliteEngine(blocker / "data" / "index.sqlite3")
    with pytest.raises(StorageError) as raised:
        bad.check_writable()
    assert str(blocker) in str(raised.value)


# --- 401 and 403, answered as OpenSearch's security plugin and Elasticsearch 8 do -----------

OS_401 = (401, {"content-type": "text/plain; charset=UTF-8",
                "www-authenticate": 'Basic realm="OpenSearch Security"'}, b"Unauthorized")


def os_403(action: str, user: str = "cyz") -> tuple[int, dict, bytes]:
    reason = f"no permissions for [{action}] and User [name={user}, backend_roles=[], requestedTenant=null]"
    cause = {"type": "security_exception", "reason": reason}
    return 403, {"content-type": "application/json; charset=UTF-8"}, json.dumps(
        {"error": {"root_cause": [cause], **cause}, "status": 403}).encode()


ES_HEADERS = {"content-type": "application/vnd.elasticsearch+json;compatible-with=8",
              "x-elastic-product": "Elasticsearch"}


def es_error(status: int, kind: str, reason: str, **extra) -> tuple[int, dict, bytes]:
    cause = {"type": kind, "reason": reason, **extra}
    headers = dict(ES_HEADERS)
    if status == 401:
        headers["www-authenticate"] = 'Basic realm="security" charset="UTF-8", ApiKey'
    return status, headers, json.dumps({"error": {"root_cause": [cause], **cause},
                                        "status": status}).encode()


def es_403(action: str, granted_by: str) -> tuple[int, dict, bytes]:
    return es_error(403, "security_exception",
                    f"action [{action}] is unauthorized for API key id [Nightly1] of user "
                    f"[elastic] on indices [cyz-articles], this action is granted by the "
                    f"index privileges [{granted_by}]")


def current_mapping(path: str, headers: dict) -> tuple[int, dict, bytes]:
    """GET /<alias>/_mapping of an index made by this cyz's templates."""
    alias = path.strip("/").split("/")[0]
    template = article_template(alias) if alias.endswith("-articles") else event_template(alias)
    return 200, headers, json.dumps({f"{alias}-v2": {"mappings": template["template"]["mappings"]}}).encode()


class Scripted(LoopbackServer):
    """Answers each request by the first (method, path start) of `script` that fits."""

    def __init__(self, script: list[tuple[str, str, object]]):
        super().__init__()
        self.script = script

    def reply(self, request: Recorded, raw_target: str, raw_body: bytes):
        for method, start, answer in self.script:
            if request.method == method and request.path.startswith(start):
                return answer(request.path, ES_HEADERS) if callable(answer) else answer
        raise AssertionError(f"unexpected {request.method} {request.path}")


def sent(server: LoopbackServer) -> list[str]:
    return [f"{r.method} {r.path}" for r in server.requests]


def test_opensearch_refusing_the_login_stops_the_scheduler(tmp_path):
    with Scripted([("GET", "/", OS_401)]) as server:
        proc = cyz("schedule", data_dir=tmp_path / "data", CYZ_CONFIG_DIR=str(config_dir(tmp_path)),
                   CYZ_ENGINE="opensearch", CYZ_OPENSEARCH_URL=server.url,
                   CYZ_OPENSEARCH_USER="cyz", CYZ_OPENSEARCH_PASSWORD="s3cretPW")
    assert proc.returncode == ExitCode.CONFIG, proc
    (line,) = proc.stderr.strip().splitlines()
    assert server.url in line and "HTTP 401" in line and "Unauthorized" in line
    assert "CYZ_OPENSEARCH_USER/CYZ_OPENSEARCH_PASSWORD" in line and "s3cretPW" not in line
    # one request, with the configured login; the client does not retry a 401
    assert sent(server) == ["GET /cyz-articles/_mapping"]
    assert server.requests[0].headers["authorization"] == "Basic " + base64.b64encode(b"cyz:s3cretPW").decode()


def test_an_empty_elasticsearch_key_stops_the_scheduler(tmp_path):
    answer = es_error(401, "security_exception", "missing authentication credentials for REST "
                      "request [/cyz-articles/_mapping]")
    with Scripted([("GET", "/", answer)]) as server:
        proc = cyz("schedule", data_dir=tmp_path / "data", CYZ_CONFIG_DIR=str(config_dir(tmp_path)),
                   CYZ_ENGINE="elasticsearch", CYZ_ES_URL=server.url, CYZ_ES_API_KEY="")
    assert proc.returncode == ExitCode.CONFIG, proc
    (line,) = proc.stderr.strip().splitlines()
    assert server.url in line and "HTTP 401" in line
    assert "it needs credentials: set CYZ_ES_API_KEY" in line
    assert sent(server) == ["GET /cyz-articles/_mapping"]
    assert "authorization" not in server.requests[0].headers


def test_a_key_that_may_read_but_not_write_stops_the_scheduler_and_the_crawl(tmp_path):
    script = [("GET", "/cyz-", current_mapping),
              ("POST", "/cyz-articles/_count", (200, ES_HEADERS, b'{"count": 0}')),
              ("POST", "/cyz-articles/_update/", es_403("indices:data/write/update",
                                                        "index,write,all"))]
    key = base64.b64encode(b"Nightly1:secret").decode()
    for command in (("schedule",), ("crawl",)):
        with Scripted(script) as server:
            proc = cyz(*command, data_dir=tmp_path / "data", CYZ_CONFIG_DIR=str(config_dir(tmp_path)),
                       CYZ_ENGINE="elasticsearch", CYZ_ES_URL=server.url, CYZ_ES_API_KEY=key)
        shutil.rmtree(tmp_path / "config")
        assert proc.returncode == ExitCode.CONFIG, (command, proc)
        (line,) = proc.stderr.strip().splitlines()
        assert server.url in line and "HTTP 403" in line and "CYZ_ES_API_KEY" in line
        assert "indices:data/write/update" in line and "docs/roles.md" in line and key not in line
        assert sent(server) == ["GET /cyz-articles/_mapping", "GET /cyz-events/_mapping",
                                "POST /cyz-articles/_count",
                                f"POST /cyz-articles/_update/{WRITE_PROBE_ID}"], command
        assert {r.headers["authorization"] for r in server.requests} == {f"ApiKey {key}"}
        assert server.requests[-1].body == {"doc": {}}


def test_index_init_with_the_nightly_key_names_the_admin_setting(tmp_path):
    missing = es_error(404, "index_not_found_exception", "no such index [cyz-articles]")
    script = [("GET", "/cyz-", missing),
              ("PUT", "/_index_template/", es_403("indices:admin/index_template/put",
                                                  "manage_index_templates,manage,all"))]
    with Scripted(script) as server:
        proc = cyz("index", "init", data_dir=tmp_path / "data", CYZ_ENGINE="elasticsearch",
                   CYZ_ES_URL=server.url, CYZ_ES_API_KEY="bmlnaHRseQ==")
    assert proc.returncode == ExitCode.CONFIG, proc
    (line,) = proc.stderr.strip().splitlines()
    assert "`cyz index init` needs the admin credentials" in line
    assert "CYZ_ES_ADMIN_API_KEY" in line and "HTTP 403" in line and server.url in line
    assert sent(server) == ["PUT /_index_template/cyz-articles"]


def test_admin_commands_use_the_admin_key_and_the_scheduler_does_not(tmp_path):
    script = [("GET", "/cyz-", es_error(404, "index_not_found_exception", "no such index")),
              ("GET", "/_alias/", (404, ES_HEADERS, b'{"error": "alias missing", "status": 404}')),
              ("PUT", "/_index_template/", es_403("indices:admin/index_template/put",
                                                  "manage_index_templates,manage,all"))]
    env = {"CYZ_ENGINE": "elasticsearch", "CYZ_ES_API_KEY": "bmlnaHRseQ==",
           "CYZ_ES_ADMIN_API_KEY": "YWRtaW4="}
    with Scripted(script) as server:
        init = cyz("index", "init", data_dir=tmp_path / "data", CYZ_ES_URL=server.url, **env)
    assert {r.headers["authorization"] for r in server.requests} == {"ApiKey YWRtaW4="}
    (line,) = init.stderr.strip().splitlines()
    # the admin key itself lacks the privilege: say so, not "set the admin key"
    assert "admin credentials (CYZ_ES_ADMIN_API_KEY) lack it" in line and init.returncode == 2
    with Scripted(script) as server:
        start = cyz("schedule", data_dir=tmp_path / "data", CYZ_ES_URL=server.url,
                    CYZ_CONFIG_DIR=str(config_dir(tmp_path)), **env)
    assert {r.headers["authorization"] for r in server.requests} == {"ApiKey bmlnaHRseQ=="}
    # a nightly key on a cluster without the indices: run `cyz index init` as the admin
    (line,) = start.stderr.strip().splitlines()
    assert start.returncode == ExitCode.CONFIG
    assert "cyz-articles, cyz-events missing" in line and "`cyz index init`" in line
    assert "CYZ_ES_ADMIN_API_KEY" in line
    assert sent(server) == ["GET /cyz-articles/_mapping", "PUT /_index_template/cyz-articles",
                            "GET /_alias/cyz-articles", "GET /_alias/cyz-events"]


def test_migrate_with_the_nightly_key_names_the_admin_setting(tmp_path):
    created = {"cyz-articles-v2": {"settings": {"index": {"creation_date": "1700000000000"}}}}
    script = [("GET", "/cyz-articles-v*/_settings", (200, ES_HEADERS, json.dumps(created).encode())),
              ("GET", "/cyz-", current_mapping),
              ("GET", "/_alias/", lambda path, headers: (200, headers, json.dumps(
                  {f"{path.rsplit('/', 1)[1]}-v2": {"aliases": {}}}).encode())),
              ("PUT", "/cyz-", es_403("indices:admin/create", "create_index,manage,all"))]
    with Scripted(script) as server:
        engine = SearchEngine(_es_client(server.url), tmp_path, "cyz")
        with pytest.raises(AccessDenied) as raised:
            engine.migrate()
        engine.close()
    message = str(raised.value)
    assert "`cyz index migrate` needs the admin credentials: set CYZ_ES_ADMIN_API_KEY" in message
    assert "PUT /cyz-articles-v3" in message and "HTTP 403" in message


def _es_client(url: str):
    from cyz.index.elasticsearch import ElasticsearchClient

    return ElasticsearchClient.from_env({"CYZ_ES_URL": url, "CYZ_ES_API_KEY": "bmlnaHRseQ=="})


def test_a_password_in_the_url_is_never_shown(tmp_path):
    with Scripted([("GET", "/", OS_401)]) as server:
        url = server.url.replace("http://", "http://cyz:hunter2@")
        engine = SearchEngine(OpenSearchClient.from_env({"CYZ_OPENSEARCH_URL": url}), tmp_path, "cyz")
        with pytest.raises(AccessDenied) as raised:
            engine.check_writable()
        engine.close()
    assert "hunter2" not in str(raised.value) and "cyz:***@" in str(raised.value)
