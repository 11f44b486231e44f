"""Least privilege, by contract (docs/roles.md): the nightly key needs no index management.

Every HTTP request that the nightly path (the scheduler's start-up check, a real crawl
of a loopback site with its events and reprints, alerts, maintenance, `cyz health`,
`cyz search`/`events`/`export`/`index status`) puts on the wire is recorded against a
real OpenSearch node through a recording proxy, mapped to the Elasticsearch privilege
that authorises it, and checked against the `cyz_writer` role as docs/roles.md writes
it. The admin commands (`cyz index init`, `cyz index migrate`) are recorded the same
way: they must be covered by `cyz_admin`, and need privileges the writer lacks.

(The OpenSearch test node runs without the security plugin, so the privileges
themselves cannot be enforced here; the mapping below follows Elasticsearch 8's
documented privileges: `read`, `write` ⊇ index/delete, `view_index_metadata`,
`maintenance` (refresh), `manage`, `create_index`, `delete_index`,
`manage_index_templates`.)
"""

from __future__ import annotations

import fnmatch
import json
import re
import secrets
import shutil
from pathlib import Path

import pytest
from http_recorder import Recorded, RecordingProxy
from sites import FAST
from test_es_contract import RECORDS, _drop
from test_run_integrity import Site

from cyz.index.base import EventFilters, Filters, SearchRequest
from cyz.index.opensearch import OpenSearchClient
from cyz.index.query import parse
from cyz.index.search_engine import SearchEngine
from cyz.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
ROLES = REPO / "docs" / "roles.md"

# --- the roles as docs/roles.md writes them --------------------------------------


def role_from_docs(name: str) -> dict:
    """The JSON body of `POST _security/role/<name>` in docs/roles.md."""
    text = ROLES.read_text(encoding="utf-8")
    match = re.search(rf"```\nPOST _security/role/{name}\n(\{{.*?\n\}})\n```", text, re.S)
    assert match, f"docs/roles.md has no POST _security/role/{name} block"
    return json.loads(match[1])


def api_key_descriptor(key_name: str, role: str) -> dict:
    """The `role_descriptors[role]` of `POST _security/api_key` named `key_name`."""
    text = ROLES.read_text(encoding="utf-8")
    for block in re.findall(r"```\nPOST _security/api_key\n(\{.*?\n\})\n```", text, re.S):
        body = json.loads(block)
        if body["name"] == key_name:
            return body["role_descriptors"][role]
    raise AssertionError(f"docs/roles.md creates no API key named {key_name}")


# Named index privileges and the narrower ones each includes (Elasticsearch 8).
IMPLIES = {
    "all": {"read", "write", "index", "create", "create_doc", "delete", "view_index_metadata",
            "maintenance", "manage", "create_index", "delete_index", "monitor"},
    "manage": {"view_index_metadata", "maintenance", "create_index", "delete_index", "monitor"},
    "write": {"index", "create", "create_doc", "delete"},
    "index": {"create", "create_doc"},
}


def expand(privileges: list[str]) -> set[str]:
    held = set(privileges)
    for name in privileges:
        held |= IMPLIES.get(name, set())
    return held


def covers(role: dict, needed: tuple[str, str, str]) -> bool:
    """`needed` is (kind, privilege, target): kind "cluster" or "index"."""
    kind, privilege, target = needed
    if kind == "cluster":
        return privilege in role.get("cluster", []) or "all" in role.get("cluster", [])
    for entry in role.get("indices", []):
        # A wildcard target (cyz-articles-v*) needs an entry whose names cover the pattern.
        if any(fnmatch.fnmatchcase(target, pattern) for pattern in entry["names"]) \
                and privilege in expand(entry["privileges"]):
            return True
    return False


def privileges_of(request: Recorded, prefix: str) -> list[tuple[str, str, str]]:
    """What authorises one request: [(cluster|index, privilege, index or alias name)],
    every one needed. Index names are given with the docs' prefix `cyz`."""
    method = request.method
    path = re.sub(rf"(?<=[/,]){prefix}-", "cyz-", request.path)
    parts = path.strip("/").split("/")
    if parts[0] == "_index_template":
        return [("cluster", "manage_index_templates", "")]
    if parts[0] == "_tasks" and method == "GET":  # a reindex task's progress
        return [("cluster", "monitor", "")]
    if path == "/_bulk":
        lines = request.body or []
        out = []
        for action in lines[::2]:
            ((op, meta),) = action.items()
            index = re.sub(rf"^{prefix}-", "cyz-", meta["_index"])
            out.append(("index", "delete" if op == "delete" else "index", index))
        return out
    if path == "/_aliases":
        out = []
        for action in request.body["actions"]:
            ((_verb, spec),) = action.items()
            out += [("index", "manage", spec["index"].replace(f"{prefix}-", "cyz-", 1)),
                    ("index", "manage", spec["alias"].replace(f"{prefix}-", "cyz-", 1))]
        return out
    if path == "/_reindex":
        body = request.body
        return [("index", "read", body["source"]["index"].replace(f"{prefix}-", "cyz-", 1)),
                ("index", "index", body["dest"]["index"].replace(f"{prefix}-", "cyz-", 1))]
    if parts[0] == "_alias":
        return [("index", "view_index_metadata", parts[1])]
    targets = parts[0].split(",")
    action = parts[1] if len(parts) > 1 else ""
    if method == "PUT" and not action:
        needed = [("index", "create_index", parts[0])]
        for alias in (request.body or {}).get("aliases", {}):
            needed.append(("index", "manage", alias.replace(f"{prefix}-", "cyz-", 1)))
        return needed
    if method == "DELETE" and not action:
        return [("index", "delete_index", t) for t in targets]
    privilege = {
        ("GET", "_mapping"): "view_index_metadata",
        ("GET", "_settings"): "view_index_metadata",
        ("PUT", "_mapping"): "manage",
        ("POST", "_refresh"): "maintenance",
        ("POST", "_count"): "read",
        ("POST", "_search"): "read",
        ("POST", "_mget"): "read",
        ("GET", "_doc"): "read",
        ("POST", "_update"): "index",
    }.get((method, action))
    if (method, action) == ("POST", "_delete_by_query"):
        return [("index", p, t) for t in targets for p in ("read", "delete")]
    assert privilege, f"no privilege known for {method} {request.path}: teach privileges_of"
    return [("index", privilege, t) for t in targets]


# --- the recordings ---------------------------------------------------------------


def changed(record: dict) -> dict:
    """The article again, its events gone: its happenings are deleted by query."""
    return {**record, "text": record["text"] + "（更新）", "events": [], "event_types": []}


@pytest.fixture(scope="module")
def recorded(opensearch_url, site_server, tmp_path_factory):
    """{"admin": [...], "nightly": [...]} requests, and the prefix they used."""
    from cyz.health import probe_engine
    from cyz.scheduling import NightlyScheduler, check_engine

    prefix = f"cyzlp{secrets.token_hex(4)}"
    data_dir = tmp_path_factory.mktemp("lp-data")
    config_dir = tmp_path_factory.mktemp("lp-config")
    shutil.copy(REPO / "config" / "topic.yaml", config_dir / "topic.yaml")
    site = Site(site_server, articles=6)
    site.listed += [101, 102]  # reprints of 1 and 2: story clusters
    site.sources_file(config_dir / "sources.yaml")
    (config_dir / "alerts.yaml").write_text(
        "rules:\n  - id: zunyi\n    name: 遵义\n    all: [遵义]\n"
        "    recipients: [office@example.org]\n    mode: immediate\n", encoding="utf-8")
    env = pytest.MonkeyPatch()
    out: dict[str, list[Recorded]] = {}
    _drop(opensearch_url, prefix)
    try:
        with RecordingProxy(opensearch_url) as proxy:
            env.setenv("CYZ_ENGINE", "opensearch")
            env.setenv("CYZ_OPENSEARCH_URL", proxy.url)
            env.setenv("CYZ_INDEX_PREFIX", prefix)
            env.setenv("CYZ_DATA_DIR", str(data_dir))
            env.setenv("CYZ_CONFIG_DIR", str(config_dir))

            def engine() -> SearchEngine:
                return SearchEngine(OpenSearchClient.from_env(), data_dir, prefix)

            # The operator, once: `cyz index init`.
            admin = engine()
            admin.admin_init()
            admin.close()
            out["init"], proxy.requests = proxy.requests, []

            # Night after night, with the writer key only.
            check_engine(data_dir)  # `cyz schedule` and `cyz crawl` at start
            nightly = NightlyScheduler(
                config_dir, data_dir, load_settings(),
                crawl_options={"engine": "opensearch",
                               "host_map": site_server.host_map([site.host]),
                               "settings_overrides": {**FAST, "CYZ_WORKERS": 1}})
            nightly.crawl_job()  # the crawl, then the alerts of its new articles
            nightly.maintenance_job()
            assert probe_engine("opensearch", data_dir)["online"]  # `cyz health`
            writer = engine()
            writer.write(RECORDS)  # articles with events: happenings planned and written
            writer.close()
            # another run, another report of the same happenings: the stored reports are
            # read (_mget; an engine remembers only the articles it wrote itself)
            writer = engine()
            writer.write([{**RECORDS[0], "id": "c9", "url": "https://example.gov.cn/c9.html"}])
            writer.write([changed(RECORDS[0])])  # c1's events gone: its reports leave
            writer.refresh()
            writer.search(SearchRequest(parse("遵义 合作"), Filters(regions=["遵义"])))
            writer.search_events(EventFilters(types=["agreement"]))
            list(writer.iter_records(Filters(since=None)))
            list(writer.iter_events())
            writer.get(RECORDS[1]["id"])
            writer.status()  # `cyz index status`
            writer.newest_by_source()
            writer.close()
            out["nightly"], proxy.requests = proxy.requests, []

            # The operator, after an upgrade: `cyz index migrate --drop-old`.
            admin = engine()
            admin.migrate(drop_old=True)
            admin.close()
            out["migrate"] = proxy.requests
        assert proxy.faults == []
    finally:
        env.undo()
        site.release()
        _drop(opensearch_url, prefix)
    return out, prefix


def test_the_nightly_path_was_recorded_in_full(recorded):
    """The recording holds what the claim is about: the crawl's bulk writes of articles
    and happenings, the happenings' lookups and deletes, refreshes, reads."""
    requests, _ = recorded
    seen = {(r.method, r.path.split("/")[-1] if "/_update/" not in r.path else "_update")
            for r in requests["nightly"]}
    for needed in [("POST", "_bulk"), ("POST", "_mget"), ("POST", "_search"),
                   ("POST", "_delete_by_query"), ("POST", "_refresh"), ("POST", "_count"),
                   ("GET", "_mapping"), ("POST", "_update")]:
        assert needed in seen, needed
    bulk_indices = {line[next(iter(line))]["_index"] for r in requests["nightly"]
                    if r.path == "/_bulk" for line in r.body[::2]}
    assert {i.rsplit("-", 1)[-1] for i in bulk_indices} == {"articles", "events"}


def test_every_nightly_request_is_covered_by_the_writer_role(recorded):
    requests, prefix = recorded
    writer = role_from_docs("cyz_writer")
    uncovered = sorted({f"{r.method} {r.path} needs {kind} {priv} on {target}"
                        for r in requests["nightly"]
                        for kind, priv, target in privileges_of(r, prefix)
                        if not covers(writer, (kind, priv, target))})
    assert uncovered == [], "\n".join(uncovered)


def test_the_writer_role_holds_nothing_the_nightly_path_does_not_use(recorded):
    """Exactly those privileges: each one of the role is needed by some request."""
    requests, prefix = recorded
    writer = role_from_docs("cyz_writer")
    used = {(kind, priv) for r in requests["nightly"] for kind, priv, _ in privileges_of(r, prefix)}
    assert writer.get("cluster", []) == [] and not {k for k, _ in used if k == "cluster"}
    for entry in writer["indices"]:
        for privilege in entry["privileges"]:
            narrower = {privilege} | IMPLIES.get(privilege, set())
            assert any(p in narrower for _, p in used), f"cyz_writer's {privilege} is never used"
        assert "manage" not in entry["privileges"] and "all" not in entry["privileges"]
        assert "delete_index" not in expand(entry["privileges"])


def test_the_scheduler_key_is_the_writer_role(recorded):
    """The API key docs/roles.md creates for the scheduler repeats cyz_writer exactly."""
    writer = role_from_docs("cyz_writer")
    key = api_key_descriptor("cyz-scheduler", "cyz_writer")
    assert key["indices"] == writer["indices"] and key.get("cluster", []) == writer.get("cluster", [])


def test_admin_commands_need_what_the_writer_lacks_and_the_admin_role_has(recorded):
    requests, prefix = recorded
    writer, admin = role_from_docs("cyz_writer"), role_from_docs("cyz_admin")
    for command in ("init", "migrate"):
        needed = {n for r in requests[command] for n in privileges_of(r, prefix)}
        assert all(covers(admin, n) for n in needed), (command, [n for n in needed
                                                                 if not covers(admin, n)])
        beyond = {n[:2] for n in needed if not covers(writer, n)}
        assert beyond, f"cyz index {command} needs nothing the writer lacks?"
    init_beyond = {n[:2] for r in requests["init"] for n in privileges_of(r, prefix)
                   if not covers(writer, n)}
    assert ("cluster", "manage_index_templates") in init_beyond
    assert ("index", "create_index") in init_beyond
    migrate_beyond = {n[:2] for r in requests["migrate"] for n in privileges_of(r, prefix)
                      if not covers(writer, n)}
    assert {("index", "manage"), ("index", "delete_index")} <= migrate_beyond


def test_the_admin_key_descriptor_is_the_admin_role():
    admin = role_from_docs("cyz_admin")
    key = api_key_descriptor("cyz-admin", "cyz_admin")
    assert key["indices"] == admin["indices"] and key["cluster"] == admin["cluster"]
    # and Kibana write rights for `cyz kibana import`
    kibana = [a for a in key.get("applications", []) if a["application"] == "kibana-.kibana"]
    assert kibana and {"feature_discover.all", "feature_dashboard.all", "feature_visualize.all",
                       "feature_indexPatterns.all"} <= set(kibana[0]["privileges"])


def test_the_privilege_map_itself():
    role = {"cluster": [], "indices": [{"names": ["cyz-articles", "cyz-articles-v*"],
                                        "privileges": ["write", "read"]}]}
    assert covers(role, ("index", "index", "cyz-articles"))
    assert covers(role, ("index", "delete", "cyz-articles-v2"))
    assert not covers(role, ("index", "maintenance", "cyz-articles"))
    assert not covers(role, ("index", "read", "cyz-events"))
    assert not covers(role, ("cluster", "manage_index_templates", ""))
    bulk = Recorded("POST", "/_bulk", {}, {}, [{"index": {"_index": "p-events", "_id": "1"}}, {}])
    assert privileges_of(bulk, "p") == [("index", "index", "cyz-events")]
    swap = Recorded("POST", "/_aliases", {}, {}, {"actions": [
        {"add": {"index": "p-articles-v3", "alias": "p-articles"}}]})
    assert privileges_of(swap, "p") == [("index", "manage", "cyz-articles-v3"),
                                        ("index", "manage", "cyz-articles")]
