"""`cyz index migrate` on a real node (issue 15): the copy is a reindex task, polled with
progress lines; an interrupted migration is taken up by the next run without another
version; a client retry never starts a second copy; an index older than the code's
mapping is named in `cyz index status`, at a crawl's start and by the scheduler.

Mapping v3 (`text` kept, not analysed) is checked here too: searching and snippets are
what they were, and an index of mapping v2 keeps serving until migrated.
"""

from __future__ import annotations

import copy
import http.server
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from test_cli import REPO, cyz  # tests/ is on sys.path
from test_engines import drop_prefix, opensearch_engine, record

from cyz.index.base import Filters, SearchRequest
from cyz.index.mapping import INDEX_ANALYZER, MAPPING_VERSION, article_template
from cyz.index.query import parse
from cyz.index.search_engine import EngineUnavailable, SearchEngine

N = 3000  # enough for a task of several polls with small batches


def corpus(n: int) -> list[dict]:
    places = ["遵义", "重庆", "成都", "遵義"]
    return [record(f"m{i:05d}", f"{places[i % 4]}第{i}号新闻",
                   f"{places[i % 4]}与{places[(i + 1) % 4]}签署合作协议，第{i}号项目开工。")
            for i in range(n)]


def _http(method: str, url: str, body: object = None) -> dict:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as answer:
        return json.loads(answer.read() or b"{}")


def versions(url: str, alias: str) -> list[str]:
    found = _http("GET", f"{url}/{alias}-v*/_settings/index.creation_date")
    return sorted(found, key=lambda name: int(name.rsplit("-v", 1)[1]))


@pytest.fixture
def loaded(opensearch_url, tmp_path):
    """An OpenSearch engine under a private prefix holding N articles."""
    engine, prefix = opensearch_engine(opensearch_url, tmp_path)
    records = corpus(N)
    for start in range(0, N, 1000):
        engine.write(records[start:start + 1000])
    engine.refresh()
    assert engine.count() == N
    yield engine, prefix
    engine.close()
    drop_prefix(opensearch_url, prefix)


def test_a_migration_of_thousands_is_a_task_polled_with_progress(loaded, opensearch_url):
    engine, prefix = loaded
    alias = f"{prefix}-articles"
    lines: list[str] = []
    moved = engine.migrate(progress=lines.append, batch_size=50, poll_seconds=0.05)
    first, second = (f"{alias}-v{MAPPING_VERSION + n}" for n in range(2))
    assert moved[alias] == {"from": first, "to": second, "dropped_old": False, "documents": N}
    copied = [line for line in lines if "documents copied" in line]
    assert len(copied) >= 2, lines  # several looks at the task while it ran
    assert copied[-1] == f"{alias}: {N:,} / {N:,} documents copied (100%)"
    assert any("(task " in line and "batches of 50" in line for line in lines)
    assert versions(opensearch_url, alias) == [first, second]
    # the new index carries its version, and nothing of the migration's bookkeeping
    meta = _http("GET", f"{opensearch_url}/{second}/_mapping")[second]["mappings"]["_meta"]
    assert meta == {"cyz_mapping_version": MAPPING_VERSION}
    assert engine.status().get("mapping_drift") is None
    assert engine.search(SearchRequest(parse("遵义 合作"), Filters(), limit=1)).total == N * 3 // 4


def test_an_interrupted_migration_is_taken_up_without_another_version(
        loaded, opensearch_url, tmp_path, monkeypatch):
    engine, prefix = loaded
    alias = f"{prefix}-articles"
    first, second = (f"{alias}-v{MAPPING_VERSION + n}" for n in range(2))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # Ctrl-C (or a lost terminal) right after the task started

    with monkeypatch.context() as patch:
        patch.setattr(SearchEngine, "_wait_for", interrupted)
        with pytest.raises(KeyboardInterrupt):
            engine.migrate(batch_size=20, poll_seconds=0.05)
    assert versions(opensearch_url, alias) == [first, second]
    meta = _http("GET", f"{opensearch_url}/{second}/_mapping")[second]["mappings"]["_meta"]
    task = meta["cyz_migration"]["task"]
    assert meta["cyz_migration"]["from"] == first

    again = SearchEngine(engine.client.__class__.from_env({"CYZ_OPENSEARCH_URL": opensearch_url}),
                         tmp_path / "again", prefix)
    lines: list[str] = []
    try:
        moved = again.migrate(progress=lines.append, batch_size=20, poll_seconds=0.05)
    finally:
        again.close()
    assert moved[alias]["from"] == first and moved[alias]["to"] == second
    assert moved[alias]["documents"] == N
    assert any(f"taking up the unfinished migration into {second}" in line for line in lines)
    # the task of the first run was waited for, or found finished: never a second copy
    assert any(task in line for line in lines), lines
    assert versions(opensearch_url, alias) == [first, second]
    assert _http("GET", f"{opensearch_url}/_alias/{alias}") == {second: {"aliases": {alias: {}}}}


def test_a_killed_migrate_command_is_finished_by_the_next_one(opensearch_url, tmp_path):
    """The real thing: `cyz index migrate` killed (SIGKILL) while its task runs."""
    engine, prefix = opensearch_engine(opensearch_url, tmp_path / "data")
    alias = f"{prefix}-articles"
    env = {"CYZ_ENGINE": "opensearch", "CYZ_OPENSEARCH_URL": opensearch_url,
           "CYZ_INDEX_PREFIX": prefix}
    try:
        records = corpus(N)
        for start in range(0, N, 1000):
            engine.write(records[start:start + 1000])
        engine.refresh()
        environ = {k: v for k, v in os.environ.items() if not k.startswith("CYZ_")}
        environ.update({"CYZ_DATA_DIR": str(tmp_path / "data"), **env})
        proc = subprocess.Popen([sys.executable, "-m", "cyz.cli", "index", "migrate",
                                 "--batch-size", "10", "--poll", "0.05"], cwd=REPO,
                                env=environ, stderr=subprocess.PIPE, text=True)
        seen = []
        deadline = time.monotonic() + 120
        for line in proc.stderr:  # killed at its first progress line
            seen.append(line)
            if "documents copied" in line or time.monotonic() > deadline:
                break
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        assert any("documents copied" in line for line in seen), seen
        first, second = (f"{alias}-v{MAPPING_VERSION + n}" for n in range(2))
        assert versions(opensearch_url, alias) == [first, second]
        assert list(_http("GET", f"{opensearch_url}/_alias/{alias}")) == [first]

        done = cyz("index", "migrate", "--batch-size", "10", "--poll", "0.05",
                   data_dir=tmp_path / "data", **env)
        assert f"taking up the unfinished migration into {second}" in done.stderr
        assert f"now on {second} ({N} documents" in done.stderr
        assert versions(opensearch_url, alias) == [first, second]
        assert list(_http("GET", f"{opensearch_url}/_alias/{alias}")) == [second]
    finally:
        engine.close()
        drop_prefix(opensearch_url, prefix)


def test_leftovers_of_an_older_migration_are_cleaned_up(loaded, opensearch_url):
    """A target an older cyz left (its copy never finished) is deleted, not resumed, and
    the migration takes the next number after it, once."""
    engine, prefix = loaded
    alias = f"{prefix}-articles"
    first = f"{alias}-v{MAPPING_VERSION}"
    stale = f"{alias}-v{MAPPING_VERSION + 1}"
    template = article_template(alias)["template"]
    mappings = copy.deepcopy(template["mappings"])
    mappings["_meta"] = {"cyz_mapping_version": MAPPING_VERSION - 1}
    _http("PUT", f"{opensearch_url}/{stale}", {"settings": template["settings"], "mappings": mappings})
    lines: list[str] = []
    moved = engine.migrate(progress=lines.append, batch_size=500, poll_seconds=0.05)
    assert any(f"deleting {stale}" in line for line in lines), lines
    assert moved[alias]["from"] == first and moved[alias]["documents"] == N
    assert versions(opensearch_url, alias) == [first, moved[alias]["to"]]


# -- never a second copy -----------------------------------------------------------------


class _SlowReindex(http.server.BaseHTTPRequestHandler):
    """Answers `POST /_reindex` after the client gave up; counts the attempts."""

    calls = 0

    def do_POST(self):  # noqa: N802 - the http.server API
        type(self).calls += 1
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        time.sleep(1.5)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(b'{"task": "n:1"}')
        except OSError:
            pass

    def log_message(self, *args):
        pass


@pytest.mark.parametrize(("retry", "attempts"), [(True, 3), (False, 1)])
def test_starting_a_reindex_is_never_retried(retry, attempts):
    from opensearchpy import OpenSearch

    from cyz.index.opensearch import OpenSearchClient

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _SlowReindex)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    _SlowReindex.calls = 0
    url = f"http://127.0.0.1:{server.server_address[1]}"
    options = {"timeout": 0.3, "retry_on_timeout": True, "max_retries": 2}
    client = OpenSearchClient(OpenSearch([url], **options), options)
    client.url = url
    try:
        with pytest.raises(EngineUnavailable):
            client.request("POST", "/_reindex", {"source": {"index": "a"}, "dest": {"index": "b"}},
                           params={"wait_for_completion": "false"}, retry=retry)
        time.sleep(0.2)
        assert _SlowReindex.calls == attempts  # with retries: the very bug of issue 15
    finally:
        client.close()
        server.shutdown()
        server.server_close()


def test_the_engine_starts_its_reindex_without_retries(loaded, monkeypatch):
    engine, _ = loaded
    sent = []
    original = engine.client.request

    def spy(method, path, body=None, params=None, retry=True):
        if path == "/_reindex":
            sent.append(retry)
        return original(method, path, body, params, retry=retry)

    monkeypatch.setattr(engine.client, "request", spy)
    engine.migrate(batch_size=1000, poll_seconds=0.05)
    assert sent == [False]


# -- an index older than the code's mapping ----------------------------------------------


def _v2_index(url: str, prefix: str) -> str:
    """An articles index as mapping v2 made it: `text` analysed, no `_meta`."""
    template = article_template(f"{prefix}-articles")["template"]
    mappings = copy.deepcopy(template["mappings"])
    mappings.pop("_meta")
    mappings["properties"]["text"] = {"type": "text", "analyzer": INDEX_ANALYZER,
                                      "search_analyzer": mappings["properties"]["text"]["search_analyzer"]}
    settings = copy.deepcopy(template["settings"])
    settings["index"]["query"]["default_field"] = ["title", "text", "title_zh", "text_zh"]
    name = f"{prefix}-articles-v2"
    _http("PUT", f"{url}/{name}", {"aliases": {f"{prefix}-articles": {}}, "settings": settings,
                                   "mappings": mappings})
    return name


def test_an_older_index_is_named_by_status_and_the_crawl_check_and_keeps_serving(
        opensearch_url, tmp_path, caplog):
    engine, prefix = opensearch_engine(opensearch_url, tmp_path / "data")
    env = {"CYZ_ENGINE": "opensearch", "CYZ_OPENSEARCH_URL": opensearch_url,
           "CYZ_INDEX_PREFIX": prefix}
    old = _v2_index(opensearch_url, prefix)
    try:
        with caplog.at_level(logging.WARNING):
            engine.write(corpus(20))
        engine.refresh()
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        drift = [m for m in warnings if f"is on mapping v2 and this cyz's is v{MAPPING_VERSION}" in m]
        assert len(drift) == 1, warnings  # one warning, not one per cause
        status = engine.status()
        assert status["mapping_version"] == 2 and status["code_mapping_version"] == MAPPING_VERSION
        assert "cyz index migrate" in status["mapping_drift"]
        # searches and snippets work on the old index as on the new
        found = engine.search(SearchRequest(parse("遵义 合作"), Filters(), limit=50))
        assert found.total == 15 and all("【" in hit.snippet for hit in found.hits)

        shown = cyz("index", "status", data_dir=tmp_path / "data", **env)
        assert "warning:" in shown.stderr and "cyz index migrate" in shown.stderr
        as_json = json.loads(cyz("index", "status", "--json", data_dir=tmp_path / "data", **env).stdout)
        assert as_json["mapping_version"] == 2 and "mapping_drift" in as_json

        # the start-up check of `cyz crawl` and `cyz schedule` says it too
        caplog.clear()
        checker = SearchEngine(engine.client.__class__.from_env({"CYZ_OPENSEARCH_URL": opensearch_url}),
                               tmp_path / "check", prefix)
        with caplog.at_level(logging.WARNING):
            checker.check_writable()
        checker.close()
        assert any("cyz index migrate" in r.getMessage() for r in caplog.records)

        engine.migrate(drop_old=True, poll_seconds=0.05)
        assert versions(opensearch_url, f"{prefix}-articles") == [f"{prefix}-articles-v3"]
        assert old not in versions(opensearch_url, f"{prefix}-articles")
        assert engine.status().get("mapping_drift") is None
        assert engine.search(SearchRequest(parse("遵義 合作"), Filters(), limit=50)).total == 15
        shown = cyz("index", "status", data_dir=tmp_path / "data", **env)
        assert "cyz index migrate" not in shown.stderr
    finally:
        engine.close()
        drop_prefix(opensearch_url, prefix)


def test_mapping_v3_analyses_the_body_once(opensearch_url, tmp_path):
    """`text` is stored, not indexed; searches and snippets go through `text_zh`."""
    engine, prefix = opensearch_engine(opensearch_url, tmp_path)
    try:
        engine.write([record("t1", "遵義與重慶簽署合作協議", "遵義市與重慶市簽署合作協議，共建園區。"),
                      record("s1", "遵义马拉松", "遵义马拉松今天开跑。")])
        engine.refresh()
        (mappings,) = (v["mappings"] for v in
                       _http("GET", f"{opensearch_url}/{prefix}-articles/_mapping").values())
        assert mappings["properties"]["text"]["index"] is False
        assert mappings["_meta"] == {"cyz_mapping_version": MAPPING_VERSION}
        hits = engine.search(SearchRequest(parse("遵义"), Filters(), limit=10)).hits
        snippets = {hit.record["id"]: hit.snippet for hit in hits}
        assert snippets["t1"].startswith("【遵義】市與重慶市") and "【遵义】马拉松" in snippets["s1"]
        phrase = engine.search(SearchRequest(parse('"合作协议"'), Filters(), limit=10)).hits
        assert [h.record["id"] for h in phrase] == ["t1"] and "【合作協議】" in phrase[0].snippet
        record_back = engine.get("t1")
        assert record_back["text"].startswith("遵義市") and record_back["text_zh"].startswith("遵义市")
    finally:
        engine.close()
        drop_prefix(opensearch_url, prefix)


def test_bulk_slices_run_in_parallel_and_lose_nothing(opensearch_url, tmp_path, monkeypatch):
    import cyz.index.search_engine as search_engine

    engine, prefix = opensearch_engine(opensearch_url, tmp_path)
    threads: set[str] = set()
    original = engine.client.bulk

    def spy(actions):
        threads.add(threading.current_thread().name)
        yield from original(actions)

    monkeypatch.setattr(engine.client, "bulk", spy)
    bad = {**record("bad", "坏", "坏"), "published_at": "not a date"}
    try:
        records = corpus(600)
        assert engine.write([*records[:300], bad, *records[300:]]) == 601
        engine.refresh()
        assert engine.count() == 600
        assert len(engine.spool) == 1  # the rejected one, parked as before
        assert len({t for t in threads if t.startswith("cyz-bulk")}) == search_engine.BULK_THREADS
    finally:
        engine.close()
        drop_prefix(opensearch_url, prefix)


def test_the_article_cache_is_forgotten_on_delete(opensearch_url, tmp_path):
    engine, prefix = opensearch_engine(opensearch_url, tmp_path)
    try:
        engine.write(corpus(3))
        assert set(engine._recent) == {"m00000", "m00001", "m00002"}
        engine.delete(["m00001"])
        assert set(engine._recent) == {"m00000", "m00002"}
    finally:
        engine.close()
        drop_prefix(opensearch_url, prefix)

