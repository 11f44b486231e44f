"""The revisit policy (issue 15): list pages are fetched every run, a known article only
when it is due — after as long as it has stayed unchanged (1, 1, 2, 4 … days, at most
`max_days`), again after `first_days` once it changes — and `--full` asks for all.

Real crawls (`cyz.crawl.crawl`, SQLite index) of a loopback site whose articles answer
with an ETag only (no Last-Modified: their age is unknown, the schedule starts at the
first fetch) unless a test gives one; the days pass by the crawl's clock (`now`), never
by sleeping. What the site server saw is what was asked.
"""

from __future__ import annotations

import hashlib
import io
import secrets
import sqlite3
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from rich.console import Console
from sites import FAST

from cyz.config import ConfigError, Source, load_sources
from cyz.crawl import RunSummary, crawl
from cyz.crawler.state import STATE_FILE, CrawlState, RevisitPolicy
from cyz.urls import canonical_url

HTML = {"Content-Type": "text/html; charset=utf-8"}
T0 = datetime.now(UTC).replace(microsecond=0)


def day(n: float) -> datetime:
    return T0 + timedelta(days=n)


class RevisitSite:
    """One list page linking `n` articles on a host of its own; articles can be edited,
    removed, or given a Last-Modified date."""

    def __init__(self, server, n: int = 6) -> None:
        self.server = server
        self.host = f"r{secrets.token_hex(4)}.revisit.gov.cn"
        self.paths = [f"/xw/202411/t202411{10 + i:02d}_{500 + i}.html" for i in range(n)]
        self.bodies = {p: self._body(p, 1) for p in self.paths}
        self.gone: set[str] = set()
        self.last_modified: dict[str, str] = {}
        links = "".join(f"<li><a href='{p}'>{p}</a></li>" for p in self.paths)
        listing = f"<html><body><ul>{links}</ul></body></html>".encode()
        server.add_route(self.host, "/robots.txt", (200, {"Content-Type": "text/plain"}, b""))
        server.add_route(self.host, "/xw/", (200, HTML, listing))
        for path in self.paths:
            server.add_route(self.host, path, lambda req, path=path: self._article(req, path))

    @staticmethod
    def _body(path: str, version: int) -> bytes:
        n = path.rsplit("_", 1)[1]
        return (f"<html><head><meta charset='utf-8'><title>遵义与重庆合作{n}</title></head>"
                f"<body><h1>遵义与重庆合作{n}</h1><div class='TRS_Editor'><p>遵义市与重庆市"
                f"签署合作协议，推动成渝地区双城经济圈建设，第{n}篇，第{version}版。</p>"
                "</div></body></html>").encode()

    def _article(self, req, path: str):
        if path in self.gone:
            return 404, HTML, b"<html>404</html>"
        body = self.bodies[path]
        etag = '"' + hashlib.sha1(body).hexdigest()[:16] + '"'
        headers = {**HTML, "ETag": etag}
        if path in self.last_modified:
            headers["Last-Modified"] = self.last_modified[path]
        if req.header("if-none-match") == etag:
            return 304, {"ETag": etag}, b""
        return 200, headers, body

    def edit(self, path: str) -> None:
        self.bodies[path] = self._body(path, 2)

    def source(self, **changes) -> Source:
        data = {"id": "revisit-test", "name": "复访测试", "kind": "government", "region": "遵义",
                "start_urls": [f"http://{self.host}/xw/"],
                "article_patterns": [r"/\d{6}/t\d{8}_\d+\.html$"], "max_depth": 1,
                "download_delay": 0, **changes}
        return Source.model_validate(data)

    def asked(self) -> set[str]:
        """The article paths requested since the last `reset`."""
        return {s.path for s in self.server.requests_for(self.host) if s.path in self.paths}

    def reset(self) -> None:
        self.server.reset_counts()


@pytest.fixture
def site(site_server):
    return RevisitSite(site_server)


def run(site: RevisitSite, data_dir: Path, when: datetime, source: Source | None = None,
        **kwargs) -> RunSummary:
    site.reset()
    return crawl([source or site.source()], data_dir=data_dir, engine="sqlite",
                 host_map=site.server.host_map([site.host]), settings_overrides=FAST,
                 now=when, **kwargs)


def test_a_second_crawl_the_same_day_asks_no_known_article(site, data_dir) -> None:
    first = run(site, data_dir, day(0))
    assert first.new == len(site.paths) and site.asked() == set(site.paths)

    second = run(site, data_dir, day(0) + timedelta(hours=2))
    assert site.asked() == set()  # not one article request: not even a conditional one
    assert site.server.count(host=site.host, path="/xw/") == 1  # the list page, every run
    assert second.not_due == len(site.paths)
    assert second.sources["revisit-test"]["not_due"] == len(site.paths)
    assert (second.new, second.updated, second.unchanged, second.fetched) == (0, 0, 0, 0)
    assert second.status == "ok" and second.errors() == []  # nothing due is not a failure
    assert second.as_dict()["not_due"] == len(site.paths)
    console = Console(width=100, record=True, file=io.StringIO())
    console.print(second.table())
    assert "not due" in console.export_text()


def test_due_articles_are_asked_on_a_doubling_schedule(site, data_dir) -> None:
    run(site, data_dir, day(0))
    # After one day every article is due once; each answers 304.
    second = run(site, data_dir, day(2))
    assert site.asked() == set(site.paths)
    assert second.unchanged == len(site.paths) and second.stats["cyz/not_modified"] == 6
    # Unchanged for two days (day 0 → 2): asked again after about two, not one.
    third = run(site, data_dir, day(3))
    assert site.asked() == set() and third.not_due == len(site.paths)
    fourth = run(site, data_dir, day(4))
    assert site.asked() == set(site.paths) and fourth.unchanged == len(site.paths)
    # Unchanged for four days now: nothing at day 6, everything by day 8.
    run(site, data_dir, day(6))
    assert site.asked() == set()
    run(site, data_dir, day(8))
    assert site.asked() == set(site.paths)


def test_a_changed_article_is_asked_again_after_the_first_interval(site, data_dir) -> None:
    changed = site.paths[0]
    run(site, data_dir, day(0))
    run(site, data_dir, day(2))  # all unchanged: next due around day 4
    site.edit(changed)
    # At day 4 all are due again; the edited one comes back changed.
    fourth = run(site, data_dir, day(4))
    assert fourth.updated == 1 and fourth.unchanged == len(site.paths) - 1
    # Its interval went back to one day; the others' grew to four.
    fifth = run(site, data_dir, day(5))
    assert site.asked() == {changed}
    assert fifth.unchanged == 1 and fifth.not_due == len(site.paths) - 1
    with CrawlState(data_dir) as state:
        page = state.get(canonical_url(f"http://{site.host}{changed}"))
        assert page.unchanged_since[:10] == day(4).isoformat()[:10]


def test_full_asks_for_every_known_article(site, data_dir) -> None:
    run(site, data_dir, day(0))
    full = run(site, data_dir, day(0) + timedelta(hours=1), full=True)
    assert site.asked() == set(site.paths)
    assert full.not_due == 0 and full.unchanged == len(site.paths)
    assert site.server.count(host=site.host, status=304) == len(site.paths)  # conditional


def test_a_gone_page_is_detected_when_it_is_due(site, data_dir) -> None:
    removed = site.paths[-1]
    run(site, data_dir, day(0))
    site.gone.add(removed)
    same_day = run(site, data_dir, day(0) + timedelta(hours=3))
    assert same_day.gone == 0 and site.asked() == set()  # not asked yet: not known gone
    later = run(site, data_dir, day(2))
    assert later.gone == 1 and removed in site.asked()
    with CrawlState(data_dir) as state:
        page = state.get(canonical_url(f"http://{site.host}{removed}"))
        assert page.gone_at is not None and page.gone_at[:10] == day(2).isoformat()[:10]
    # Still gone: checked on the schedule too (first interval after going away, then longer).
    run(site, data_dir, day(2) + timedelta(hours=4))
    assert removed not in site.asked()
    again = run(site, data_dir, day(4))
    assert removed in site.asked() and again.gone == 1


def test_per_source_revisit_overrides(site, data_dir, tmp_path) -> None:
    run(site, data_dir, day(0))
    always = site.source(revisit="always")
    run(site, data_dir, day(0) + timedelta(hours=1), source=always)
    assert site.asked() == set(site.paths)  # every run, as before issue 15

    never = site.source(revisit="never")
    late = run(site, data_dir, day(400), source=never)
    assert site.asked() == set() and late.not_due == len(site.paths)
    run(site, data_dir, day(400), source=never, full=True)
    assert site.asked() == set(site.paths)  # --full still asks

    other = tmp_path / "other"
    other.mkdir()
    slow = site.source(revisit={"first_days": 3, "max_days": 5})
    run(site, data_dir=other, when=day(0), source=slow)
    run(site, data_dir=other, when=day(2), source=slow)
    assert site.asked() == set()  # first_days 3
    run(site, data_dir=other, when=day(3), source=slow)
    assert site.asked() == set(site.paths)
    run(site, data_dir=other, when=day(100), source=slow)
    run(site, data_dir=other, when=day(103), source=slow)
    assert site.asked() == set()
    run(site, data_dir=other, when=day(105), source=slow)
    assert site.asked() == set(site.paths)  # capped at max_days 5, however long unchanged


def test_an_old_last_modified_date_counts_as_time_unchanged(site, data_dir) -> None:
    """An article first seen long after its Last-Modified date has been unchanged that
    long: it is not asked again the next day (the bound is max_days)."""
    old, fresh = site.paths[0], site.paths[1]
    site.last_modified[old] = "Mon, 04 Mar 2024 08:00:00 GMT"
    site.last_modified[fresh] = (day(0) - timedelta(hours=1)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    run(site, data_dir, day(0))
    run(site, data_dir, day(2))
    assert fresh in site.asked() and old not in site.asked()
    run(site, data_dir, day(31))
    assert old in site.asked()


def test_revisit_policy_units() -> None:
    from cyz.crawler.state import PageState

    def page(last: datetime, since: datetime, url: str = "http://a.cn/1.html") -> PageState:
        return PageState(url, url, "s", None, None, "h", 1, 200, last.isoformat(),
                         last.isoformat(), None, since.isoformat())

    policy = RevisitPolicy()
    fresh = page(day(0), day(0))
    assert not policy.due(fresh, day(0.5)) and policy.due(fresh, day(1))
    stable = page(day(10), day(0))  # unchanged for ten days at its last fetch
    assert not policy.due(stable, day(17)) and policy.due(stable, day(20))
    ancient = page(day(0), day(-900))
    assert not policy.due(ancient, day(22)) and policy.due(ancient, day(30))
    assert RevisitPolicy("always").due(ancient, day(0))
    assert not RevisitPolicy("never").due(ancient, day(5000))
    unstored = PageState("u", "u", "s", None, None, None, None, None, "x", None, None, None)
    assert policy.due(unstored, day(0))  # fetched, never stored: always asked


def test_an_old_state_file_is_migrated_in_place(tmp_path) -> None:
    """A crawl_state.sqlite3 written before issue 15 (no unchanged_since) gets the column,
    filled from each row's Last-Modified date or last fetch, and keeps every row."""
    path = tmp_path / STATE_FILE
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE pages (
            canonical_url TEXT PRIMARY KEY, url TEXT NOT NULL, source_id TEXT NOT NULL,
            etag TEXT, last_modified TEXT, content_hash TEXT, pipeline_version INTEGER,
            last_status INTEGER, first_seen TEXT NOT NULL, last_fetched TEXT, gone_at TEXT);
        CREATE INDEX pages_source ON pages(source_id);
    """)
    rows = [("http://a.cn/1", "http://a.cn/1", "s", '"e"', "Mon, 04 Mar 2024 08:00:00 GMT",
             "h1", 3, 200, "2026-01-01T00:00:00+00:00", "2026-11-20T02:00:00+00:00", None),
            ("http://a.cn/2", "http://a.cn/2", "s", '"f"', None, "h2", 3, 304,
             "2026-01-01T00:00:00+00:00", "2026-11-20T02:00:00+00:00", None),
            ("http://a.cn/3", "http://a.cn/3", "s", None, "garbled", "h3", 3, 404,
             "2026-01-01T00:00:00+00:00", None, "2026-02-01T00:00:00+00:00")]
    db.executemany("INSERT INTO pages VALUES (?,?,?,?,?,?,?,?,?,?,?)", rows)
    db.commit()
    db.close()

    with CrawlState(tmp_path) as state:
        assert state.count() == 3
        assert state.get("http://a.cn/1").unchanged_since == "2024-03-04T08:00:00+00:00"
        assert state.get("http://a.cn/2").unchanged_since == "2026-11-20T02:00:00+00:00"
        assert state.get("http://a.cn/3").unchanged_since == "2026-01-01T00:00:00+00:00"
        assert state.get("http://a.cn/1").etag == '"e"'  # nothing else touched
        state.record_fetch("http://a.cn/2", url="http://a.cn/2", source_id="s", status=304,
                           fetched_at="2026-11-22T02:00:00+00:00")
        assert state.get("http://a.cn/2").unchanged_since == "2026-11-20T02:00:00+00:00"
    with CrawlState(tmp_path) as state:  # reopened: migrated once, nothing redone
        assert state.get("http://a.cn/1").unchanged_since == "2024-03-04T08:00:00+00:00"
    columns = [r[1] for r in sqlite3.connect(path).execute("PRAGMA table_info(pages)")]
    assert columns.count("unchanged_since") == 1


def test_a_crawl_over_a_migrated_state_follows_the_schedule(site, data_dir) -> None:
    run(site, data_dir, day(0))
    db = sqlite3.connect(data_dir / STATE_FILE)  # back to the old schema, as an upgrade finds it
    db.execute("ALTER TABLE pages DROP COLUMN unchanged_since")
    db.commit()
    db.close()
    same_day = run(site, data_dir, day(0) + timedelta(hours=1))
    assert site.asked() == set() and same_day.not_due == len(site.paths)
    run(site, data_dir, day(2))
    assert site.asked() == set(site.paths)


def _sources_yaml(tmp_path: Path, revisit: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text(textwrap.dedent(f"""\
        sources:
          - id: zunyi-gov
            name: 遵义市人民政府
            kind: government
            region: 遵义
            start_urls: [https://www.zunyi.gov.cn/xwdt/]
            article_patterns: ['/t\\d{{8}}_\\d+\\.html$']
            revisit: {revisit}
        """), encoding="utf-8")
    return path


@pytest.mark.parametrize(("revisit", "expected"), [
    ("sometimes", "field 'revisit': expected always, never or a mapping"),
    ("{first_days: 5, max_days: 2}", "field 'revisit': max_days (2) must be at least first_days (5)"),
    ("{first_days: 0}", "field 'revisit.first_days': Input should be greater than 0"),
    ("{first_day: 1}", "field 'revisit.first_day': unknown key"),
])
def test_a_bad_revisit_names_file_source_and_field(tmp_path, revisit, expected) -> None:
    path = _sources_yaml(tmp_path, revisit)
    with pytest.raises(ConfigError) as info:
        load_sources(path)
    message = str(info.value)
    assert str(path) in message and "entry 'zunyi-gov'" in message and expected in message


@pytest.mark.parametrize(("revisit", "mode", "first", "most"), [
    ("always", "always", 1, 30), ("never", "never", 1, 30),
    ("{first_days: 2, max_days: 14}", "adaptive", 2, 14), ("{max_days: 7}", "adaptive", 1, 7),
])
def test_revisit_values(tmp_path, revisit, mode, first, most) -> None:
    src = load_sources(_sources_yaml(tmp_path, revisit))[0]
    assert (src.revisit.mode, src.revisit.first_days, src.revisit.max_days) == (mode, first, most)


def test_a_bad_now_is_refused_before_anything_runs(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("CYZ_NOW", "tomorrow")
    with pytest.raises(ValueError, match="CYZ_NOW='tomorrow': not an ISO 8601"):
        crawl([], data_dir=tmp_path)


def test_a_source_whose_articles_are_not_due_is_not_silent() -> None:
    """`cyz health` warns about a source with no article page in its last crawls: one
    whose lists still show known articles, not due yet, is quiet, not silent."""
    from cyz.health import last_success_by_source, source_problems

    def crawl_run(day_n: int, fetched: int, not_due: int) -> dict:
        when = day(day_n).isoformat()
        return {"kind": "crawl", "started_at": when, "ended_at": when, "status": "ok",
                "sources": {"quiet": {"fetched": fetched, "new": fetched, "updated": 0,
                                      "unchanged": 0, "not_due": not_due, "failed": {}},
                            "silent": {"fetched": fetched, "new": fetched, "updated": 0,
                                       "unchanged": 0, "not_due": 0, "failed": {}}}}

    runs = [crawl_run(n, 0, 40) for n in (4, 3, 2)] + [crawl_run(1, 40, 0)]  # newest first
    problems = {p.key for p in source_problems(runs)}
    assert "source-silent:silent" in problems and "source-silent:quiet" not in problems
    assert last_success_by_source(runs)["quiet"] == day(4).isoformat()
