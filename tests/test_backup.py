"""`cyz backup`, `cyz restore` and `cyz prune` on the embedded default, end to end.

Every step drives the real `cyz` command in a subprocess against a loopback site
reached through the site server as an HTTP proxy. The mid-crawl backup is taken
while the crawl is provably running: the site holds every article after the first
few until the test releases it (a threading.Event), the crawl holds the data dir's
lock, and the backup finishes before the release. Waits are on observable
conditions (rows stored) with a deadline, never a sleep.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sites import HTML, cli_env, write_list_source  # tests/ is on sys.path

from cyz.exit_codes import ExitCode
from cyz.index.sqlite import read_records

REPO = Path(__file__).resolve().parents[1]
ARTICLES, HELD_AFTER = 24, 8
# What a first crawl has written before its end (the run history comes at the end).
DATABASES = ("index.sqlite3", "crawl_state.sqlite3", "reprints.sqlite3", "raw_pages.sqlite3")
_POOL = ("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动"
         "同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自")


class HeldSite:
    """A loopback news site on its own host name: a list page linking `articles`
    articles; every article after `hold_after` waits for `release()`."""

    def __init__(self, server, articles: int, hold_after: int) -> None:
        self.host = f"b{secrets.token_hex(4)}.backuptest.gov.cn"
        self.articles, self.hold_after = articles, hold_after
        self.gate = threading.Event()
        server.add_route(self.host, "/robots.txt",
                         (200, {"Content-Type": "text/plain"}, b"User-agent: *\nAllow: /\n"))
        server.add_route(self.host, "/list/", self._list)
        server.add_route(self.host, "/a/*", self._article)

    def release(self) -> None:
        self.gate.set()

    def _list(self, req):
        links = "".join(f"<li><a href='/a/{n}.html'>{n}</a></li>"
                        for n in range(1, self.articles + 1))
        return 200, HTML, f"<html><body><ul>{links}</ul></body></html>".encode()

    def _article(self, req):
        n = int(req.path.rsplit("/", 1)[1].split(".")[0])
        if n > self.hold_after:
            self.gate.wait(120)
        rnd = random.Random(n)
        text = "".join(rnd.choice(_POOL) for _ in range(300))
        body = (f"<html><head><meta charset='utf-8'><title>第{n}篇 遵义合作</title>"
                f"<meta name='PubDate' content='2024-03-{1 + n % 9:02d} 09:{n:02d}'></head>"
                f"<body><h1>第{n}篇 遵义合作</h1><div class='TRS_Editor'><p>{text}</p></div>"
                "</body></html>")
        return 200, HTML, body.encode()

    def sources_file(self, path: Path) -> Path:
        return write_list_source(path, "backup-test", "备份测试站", self.host)


class Cyz:
    """Runs `cyz` commands in their own sessions; kills what it started and is left."""

    def __init__(self, logs: Path, proxy_port: int) -> None:
        self.logs = logs
        self.proxy = f"http://127.0.0.1:{proxy_port}"
        self.started: list[subprocess.Popen] = []

    def env(self, data_dir: Path, **extra: str) -> dict[str, str]:
        return cli_env(data_dir, self.proxy, **extra)

    def start(self, *args: str, data_dir: Path, **env: str) -> subprocess.Popen:
        n = len(self.started)
        with open(self.logs / f"cmd{n}.out", "w") as out, open(self.logs / f"cmd{n}.err", "w") as err:
            proc = subprocess.Popen([sys.executable, "-m", "cyz.cli", *args], stdout=out,
                                    stderr=err, env=self.env(data_dir, **env), cwd=REPO,
                                    start_new_session=True)
        proc.logs = (self.logs / f"cmd{n}.out", self.logs / f"cmd{n}.err")  # type: ignore[attr-defined]
        self.started.append(proc)
        return proc

    @staticmethod
    def finish(proc: subprocess.Popen, timeout: float = 120) -> tuple[int, str, str]:
        code = proc.wait(timeout=timeout)
        out, err = (p.read_text(encoding="utf-8") for p in proc.logs)  # type: ignore[attr-defined]
        return code, out, err

    def run(self, *args: str, data_dir: Path, **env: str) -> tuple[int, str, str]:
        return self.finish(self.start(*args, data_dir=data_dir, **env))

    def json(self, *args: str, data_dir: Path, **env: str) -> dict:
        code, out, err = self.run(*args, data_dir=data_dir, **env)
        assert code == 0, (args, code, out, err)
        return json.loads(out)

    def cleanup(self) -> None:
        for proc in self.started:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60.0) -> object:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.05)
    return value


def rows(path: Path, sql: str) -> list[tuple]:
    if not path.exists():
        return []
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return db.execute(sql).fetchall()
    except sqlite3.OperationalError:  # not created yet
        return []
    finally:
        db.close()


def stored_ids(data_dir: Path) -> set[str]:
    return {r[0] for r in rows(data_dir / "index.sqlite3", "SELECT id FROM articles")}


def integrity(path: Path) -> str:
    db = sqlite3.connect(path)
    try:
        return db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()


def one_line(err: str) -> str:
    """The one error line of a failed command (progress lines may come before it)."""
    errors = [line for line in err.strip().splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1] == errors[0], err
    return errors[0]


@pytest.fixture(scope="module")
def cyz(tmp_path_factory, site_server) -> Iterator[Cyz]:
    runner = Cyz(tmp_path_factory.mktemp("backup-logs"), site_server.port)
    yield runner
    runner.cleanup()


@pytest.fixture(scope="module")
def crawled(tmp_path_factory, site_server, cyz):
    """A crawl held after HELD_AFTER articles; while it runs: a backup (B1), a restore
    and a prune into its data dir; then the crawl finishes."""
    base = tmp_path_factory.mktemp("backup")
    site = HeldSite(site_server, ARTICLES, HELD_AFTER)
    sources = site.sources_file(base / "sources.yaml")
    data = base / "data"
    try:
        crawl = cyz.start("crawl", "--sources", str(sources), "--json", data_dir=data)
        wait_for(lambda: len(stored_ids(data)) == HELD_AFTER or crawl.poll() is not None,
                 "the first articles stored", timeout=120)
        assert crawl.poll() is None, cyz.finish(crawl)
        restore_in_use = cyz.run("restore", str(base / "nothing-yet"), data_dir=data)
        prune_in_use = cyz.run("prune", "--older-than", "1", data_dir=data)
        b1 = base / "b1"
        backup_code, backup_out, backup_err = cyz.run("backup", str(b1), "--json", data_dir=data)
        running_after_backup = crawl.poll() is None
    finally:
        site.release()
    crawl_code, crawl_out, crawl_err = cyz.finish(crawl)
    assert crawl_code == 0, (crawl_out, crawl_err)
    assert backup_code == 0, (backup_out, backup_err)
    return {"base": base, "data": data, "sources": sources, "b1": b1,
            "manifest": json.loads(backup_out), "backup_err": backup_err,
            "running_after_backup": running_after_backup, "restore_in_use": restore_in_use,
            "prune_in_use": prune_in_use, "crawl": json.loads(crawl_out)}


def test_backup_taken_mid_crawl_restores_to_a_consistent_data_dir(crawled, cyz, tmp_path):
    assert crawled["running_after_backup"], "the crawl must still run when the backup is done"
    assert crawled["crawl"]["new"] == ARTICLES
    manifest = crawled["manifest"]
    assert manifest["complete"] and manifest["source_data_dir"] == str(crawled["data"].resolve())
    assert manifest["cyz_version"] and manifest["schema_versions"]["index"] >= 4
    files = manifest["files"]
    assert set(files) >= set(DATABASES)
    assert files["index.sqlite3"]["tables"]["articles"] == HELD_AFTER
    assert files["raw_pages.sqlite3"]["added"] >= HELD_AFTER
    assert "index.sqlite3" in crawled["backup_err"]  # progress, on stderr
    assert not list(crawled["b1"].glob("*-wal")), "a backup is plain files"

    fresh = tmp_path / "restored"
    code, out, err = cyz.run("restore", str(crawled["b1"]), data_dir=fresh)
    assert code == 0, (out, err)
    assert "restored" in out and "index.sqlite3" in out
    status = cyz.json("index", "status", "--json", data_dir=fresh)
    assert status["articles"] == HELD_AFTER
    found = cyz.json("search", "遵义", "--all-copies", "--json", "--limit", "100", data_dir=fresh)
    assert found["total"] == HELD_AFTER
    for name in DATABASES:
        assert integrity(fresh / name) == "ok", name
    # The order of the copies: what the crawl state and the reprint index know is in
    # the index, and every record has its raw page.
    indexed = stored_ids(fresh)
    state_urls = {r[0] for r in rows(fresh / "crawl_state.sqlite3",
                                     "SELECT url FROM pages WHERE content_hash IS NOT NULL")}
    index_urls = {r["url"] for r in read_records(fresh / "index.sqlite3")}
    assert state_urls <= index_urls
    confirmed = {r[0] for r in rows(fresh / "reprints.sqlite3",
                                    "SELECT id FROM members WHERE pending = 0")}
    assert confirmed <= indexed
    assert indexed <= {r[0] for r in rows(fresh / "raw_pages.sqlite3", "SELECT id FROM versions")}

    # The restored data dir crawls on: the rest of the site, nothing twice.
    code, out, err = cyz.run("crawl", "--sources", str(crawled["sources"]), "--json",
                             data_dir=fresh)
    assert code == 0, (out, err)
    assert len(stored_ids(fresh)) == ARTICLES
    assert cyz.json("index", "status", "--json", data_dir=fresh)["articles"] == ARTICLES


def test_restore_refuses_a_data_dir_in_use_and_a_non_empty_one(crawled, cyz, tmp_path):
    code, _, err = crawled["restore_in_use"]
    assert code == ExitCode.LOCKED and "in use" in one_line(err)

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine", encoding="utf-8")
    code, _, err = cyz.run("restore", str(crawled["b1"]), data_dir=busy)
    assert code == ExitCode.CONFIG and "not empty" in one_line(err) and "--force" in err
    assert sorted(p.name for p in busy.iterdir()) == ["cyz.lock", "notes.txt"]

    code, out, err = cyz.run("restore", str(crawled["b1"]), "--force", data_dir=busy)
    assert code == 0, (out, err)
    assert cyz.json("index", "status", "--json", data_dir=busy)["articles"] == HELD_AFTER
    assert (busy / "notes.txt").read_text(encoding="utf-8") == "mine"

    code, _, err = cyz.run("restore", str(tmp_path / "no-backup"), data_dir=tmp_path / "empty")
    assert code == ExitCode.CONFIG and "no backup" in one_line(err)


def test_a_second_backup_copies_only_what_is_new(crawled, cyz, tmp_path):
    b2 = tmp_path / "b2"
    shutil.copytree(crawled["b1"], b2)  # the mid-crawl backup, mtimes kept
    data = crawled["data"]
    extra = data / "extra" / "notes.txt"
    extra.parent.mkdir(exist_ok=True)
    extra.write_text("operator notes", encoding="utf-8")
    try:
        second = cyz.json("backup", str(b2), "--json", data_dir=data)
        raw = second["files"]["raw_pages.sqlite3"]
        assert raw["added"] == ARTICLES - crawled["manifest"]["files"]["raw_pages.sqlite3"]["added"]
        assert raw["kept"] + raw["added"] == raw["tables"]["versions"] == ARTICLES
        assert raw["removed"] == 0 and raw["articles"] == ARTICLES
        assert second["files"]["index.sqlite3"]["tables"]["articles"] == ARTICLES
        assert second["files"]["extra/notes.txt"]["copied"] is True

        third = cyz.json("backup", str(b2), "--json", data_dir=data)
        raw = third["files"]["raw_pages.sqlite3"]
        assert (raw["added"], raw["removed"], raw["bytes_added"]) == (0, 0, 0)
        assert raw["kept"] == ARTICLES
        assert third["files"]["extra/notes.txt"]["copied"] is False

        os.utime(extra)  # a new mtime, the same content: the hash decides
        assert cyz.json("backup", str(b2), "--json", data_dir=data)[
            "files"]["extra/notes.txt"]["copied"] is False
        extra.write_text("operator notes, edited", encoding="utf-8")
        assert cyz.json("backup", str(b2), "--json", data_dir=data)[
            "files"]["extra/notes.txt"]["copied"] is True
        code, out, err = cyz.run("restore", str(b2), "--check", data_dir=tmp_path / "unused")
        assert code == 0 and "intact" in out, (out, err)
    finally:
        shutil.rmtree(extra.parent)


def test_backup_refuses_a_dir_inside_the_data_dir_and_an_unwritable_one(crawled, cyz, tmp_path):
    data = crawled["data"]
    code, _, err = cyz.run("backup", str(data / "backups"), data_dir=data)
    assert code == ExitCode.CONFIG and "inside the data dir" in one_line(err)
    assert not (data / "backups").exists()

    a_file = tmp_path / "a-file"
    a_file.write_text("", encoding="utf-8")
    code, _, err = cyz.run("backup", str(a_file / "backup"), data_dir=data)
    assert code == ExitCode.ERROR and "Not a directory" in one_line(err)

    other = tmp_path / "someone-elses"
    other.mkdir()
    (other / "thesis.docx").write_bytes(b"...")
    code, _, err = cyz.run("backup", str(other), data_dir=data)
    assert code == ExitCode.CONFIG and "holds no cyz backup" in one_line(err)
    assert [p.name for p in other.iterdir()] == ["thesis.docx"]


def test_restore_verifies_checksums_and_integrity_before_copying(crawled, cyz, tmp_path):
    damaged = tmp_path / "damaged"
    shutil.copytree(crawled["b1"], damaged)
    index = damaged / "index.sqlite3"
    with open(index, "r+b") as fh:  # a B-tree page header overwritten
        fh.seek(4096)
        fh.write(b"\xff" * 16)
    target = tmp_path / "target"
    code, _, err = cyz.run("restore", str(damaged), data_dir=target)
    assert code == ExitCode.ERROR and "does not match the manifest" in one_line(err)
    assert [p.name for p in target.iterdir()] == ["cyz.lock"]  # nothing copied

    # The same damage with a manifest that agrees: PRAGMA integrity_check catches it.
    manifest = json.loads((damaged / "manifest.json").read_text(encoding="utf-8"))
    import hashlib

    manifest["files"]["index.sqlite3"]["sha256"] = hashlib.sha256(index.read_bytes()).hexdigest()
    (damaged / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    code, _, err = cyz.run("restore", str(damaged), "--check", data_dir=target)
    assert code == ExitCode.ERROR and "integrity" in one_line(err) and "index.sqlite3" in err
    code, _, err = cyz.run("restore", str(damaged), data_dir=target)
    assert code == ExitCode.ERROR
    assert [p.name for p in target.iterdir()] == ["cyz.lock"]


def _age_versions(data: Path, days: int) -> tuple[list[str], str]:
    """As the archive records them: ten articles fetched `days` ago, and one article
    whose first version is that old and whose second is current."""
    old = (datetime.now(UTC) - timedelta(days=days)).isoformat(timespec="seconds")
    db = sqlite3.connect(data / "raw_pages.sqlite3")
    with db:
        ids = [r[0] for r in db.execute("SELECT id FROM versions ORDER BY id")]
        aged, edited = ids[:10], ids[10]
        db.executemany("UPDATE versions SET fetched_at = ? WHERE id = ?", [(old, i) for i in aged])
        db.execute("UPDATE versions SET version = 2 WHERE id = ?", (edited,))
        db.execute("INSERT INTO versions (id, version, url, source_id, http_charset, fetched_at, "
                   "body_hash, text_hash, body) SELECT id, 1, url, source_id, http_charset, ?, "
                   "'older', NULL, body FROM versions WHERE id = ?", (old, edited))
    db.close()
    return aged, edited


def test_prune_dry_run_then_real_keeps_records_and_reextract_copes(crawled, cyz, tmp_path):
    code, _, err = crawled["prune_in_use"]
    assert code == ExitCode.LOCKED and "in use" in one_line(err)

    data = tmp_path / "data"
    shutil.copytree(crawled["data"], data)
    aged, edited = _age_versions(data, 400)
    archive = data / "raw_pages.sqlite3"
    before = rows(archive, "SELECT id, version, body_hash FROM versions ORDER BY id, version")

    dry = cyz.json("prune", "--older-than", "365", "--dry-run", "--json", data_dir=data)
    assert dry["dry_run"] and dry["versions"] == 11 and dry["articles"] == 11
    assert dry["raw_gone"] == 10 and dry["bytes"] > 0
    assert {p["id"] for p in dry["sample"]} == {*aged, edited}
    assert rows(archive, "SELECT id, version, body_hash FROM versions ORDER BY id, version") == before
    code, out, _ = cyz.run("prune", "--older-than", "365", "--dry-run", data_dir=data)
    assert code == 0 and "would delete 11 raw page version(s)" in out and "backup-test" in out

    code, out, err = cyz.run("prune", "--older-than", "365", data_dir=data)
    assert code == 0, (out, err)
    assert "deleted 11 raw page version(s) of 11 article(s)" in out
    left = rows(archive, "SELECT id, version FROM versions")
    assert len(left) == ARTICLES + 1 - 11
    assert not {rid for rid, _ in left} & set(aged)
    assert [v for rid, v in left if rid == edited] == [2]  # the current version stays
    assert integrity(archive) == "ok"

    # The records stay, searchable.
    assert cyz.json("index", "status", "--json", data_dir=data)["articles"] == ARTICLES
    found = cyz.json("search", "遵义", "--all-copies", "--json", "--limit", "100", data_dir=data)
    assert {r["id"] for r in found["results"]} >= set(aged)

    # Re-extraction does what it can and skips the rest.
    code, out, err = cyz.run("reextract", data_dir=data)
    assert code == 0 and "re-extracted 14 page(s), 0 failed" in out, (out, err)
    db = sqlite3.connect(data / "index.sqlite3")
    with db:
        db.execute("UPDATE articles SET pipeline_version = 0")  # as after a pipeline upgrade
    db.close()
    code, out, err = cyz.run("reextract", "--stale", data_dir=data)
    assert code == 0 and "re-extracted 14 page(s)" in out, (out, err)
    assert "Traceback" not in err
    # The ten without a raw page stay stale: counted, not lost.
    assert cyz.json("index", "status", "--json", data_dir=data)["stale"] == 10
    assert cyz.json("index", "status", "--json", data_dir=data)["articles"] == ARTICLES

    # A second real prune finds nothing more.
    again = cyz.json("prune", "--older-than", "365", "--json", data_dir=data)
    assert again["versions"] == 0


def test_the_spool_of_records_waiting_for_an_engine_is_backed_up(cyz, site_server, tmp_path):
    site = HeldSite(site_server, 3, hold_after=3)
    sources = site.sources_file(tmp_path / "sources.yaml")
    data = tmp_path / "data"
    with socket.socket() as sock:  # a port nobody listens on: the engine is down
        sock.bind(("127.0.0.1", 0))
        down = f"http://127.0.0.1:{sock.getsockname()[1]}"
    code, out, err = cyz.run("crawl", "--sources", str(sources), "--json", data_dir=data,
                             CYZ_ENGINE="opensearch", CYZ_OPENSEARCH_URL=down,
                             CYZ_INDEX_PREFIX=f"cyzbk{secrets.token_hex(3)}")
    assert code == 0 and json.loads(out)["new"] == 3, (out, err)
    manifest = cyz.json("backup", str(tmp_path / "b"), "--json", data_dir=data,
                        CYZ_ENGINE="opensearch", CYZ_OPENSEARCH_URL=down)
    assert manifest["engine"] == "opensearch"
    spooled = [name for name in manifest["files"] if name.startswith("spool/")
               and name.endswith(".jsonl")]
    assert len(spooled) == 1 and manifest["files"][spooled[0]]["lines"] == 3, manifest["files"]
    restored = tmp_path / "restored"
    code, out, err = cyz.run("restore", str(tmp_path / "b"), data_dir=restored)
    assert code == 0, (out, err)

    def urls(path: Path) -> list[str]:
        lines = path.read_text(encoding="utf-8").splitlines()
        return sorted(json.loads(line)["record"]["url"] for line in lines)

    assert urls(restored / spooled[0]) == urls(data / spooled[0])
    assert len(urls(restored / spooled[0])) == 3


def test_the_files_named_here_are_the_ones_cyz_writes():
    """The backup's list of databases follows the modules that own them."""
    from cyz import backup
    from cyz.crawler.store import REPRINTS_FILE

    assert backup.REPRINTS_FILE == REPRINTS_FILE
    names = {name for name, _ in backup.DATABASES} | {"raw_pages.sqlite3"}
    assert names == {*DATABASES, "runs.sqlite3", "alerts.sqlite3"}
