"""Sites that try to make cyz fetch what it must not (issue 10): redirects off the
source's domains, private addresses, catastrophic URL patterns, ids hidden in query
parameters, endless list pages, and tracking-parameter spellings of one article.

Every site is served on loopback by the session's SiteServer; the crawl is the real one
(a child process, as `cyz crawl` runs it) and the CLI tests drive the real command.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from rich.console import Console
from sites import FAST, RECORDING_PIPELINE, read_items

from cyz.config import ConfigError, Source, load_sources
from cyz.crawl import RunSummary
from cyz.crawler.run import run_crawl
from cyz.demo.server import SiteServer, conditional_response

REPO = Path(__file__).resolve().parents[1]

HOST = "www.hostile-test.gov.cn"  # the source's own site (mapped to the loopback server)
OTHER = "secret.other-test.com.cn"  # somewhere the source must never lead the crawler
STALE = "www.stale-proxy.invalid"  # mapped
STALE_OTHER = "other.stale-proxy.invalid"  # same source domain, not mapped
LITERAL = "literal-site.test"  # reached as http://127.0.0.1:PORT/literal-site.test/...
EXTRACT = "extract-site.test"
HTML = {"Content-Type": "text/html; charset=utf-8"}
EVIL_LINK = "/" + "a" * 38 + "!"


def _page(title: str, links: list[str] = ()) -> bytes:
    anchors = "".join(f"<li><a href='{u}'>{u}</a></li>" for u in links)
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{title}</title></head>"
            f"<body><h1>{title}</h1><div class='TRS_Editor'><p>遵义与重庆签署合作协议。{title}</p>"
            f"</div><ul>{anchors}</ul></body></html>").encode()


def _static(body: bytes):
    return lambda req: conditional_response(req, body, HTML)


def _redirect(location: str):
    return 302, {"Location": location}, b""


def _calendar(req) -> tuple[int, dict[str, str], bytes]:
    """An ever-new list: every day's page links to the next day's."""
    day = dt.date.fromisoformat(req.path.rsplit("/", 1)[1].removesuffix(".html"))
    return 200, HTML, _page(f"日历{day}", [f"/cal/{day + dt.timedelta(days=1)}.html"])


@pytest.fixture(scope="module")
def hostile(site_server: SiteServer) -> SiteServer:
    add = site_server.add_route
    loop = site_server.address  # 127.0.0.1:PORT
    port = site_server.port
    add(HOST, "/robots.txt", _redirect(f"http://{OTHER}/robots.txt"))
    add(HOST, "/list/", _static(_page("列表", [f"/a/{n}.html" for n in range(1, 7)])))
    add(HOST, "/a/1.html", _redirect(f"http://{OTHER}/secret.html"))
    add(HOST, "/a/2.html", _redirect(f"http://{loop}/{OTHER}/secret.html"))
    add(HOST, "/a/3.html", _redirect(f"http://localhost:{port}/{OTHER}/secret.html"))
    add(HOST, "/a/4.html", _redirect(f"http://127.0.0.2:{port}/{OTHER}/secret.html"))
    add(HOST, "/a/5.html", _redirect(f"http://{HOST}/a/5b.html"))  # on-site: followed
    add(HOST, "/a/5b.html", _static(_page("五")))
    add(HOST, "/a/6.html", _static(_page("六")))
    add(OTHER, "/robots.txt", (200, {"Content-Type": "text/plain"}, b"User-agent: *\n"))
    add(OTHER, "/secret.html", _static(_page("机密")))

    add(HOST, "/evil/", _static(_page("恶意", [EVIL_LINK, "/ok.html"])))
    add(HOST, "/ok.html", _static(_page("好")))

    add(HOST, "/ids/", _static(_page("编号", [
        "/a/20.html?source=101", "/a/20.html?source=102", "/a/21.html?ref=home", "/a/21.html",
        "/a/22.html?utm_source=x#top"])))
    for path in ("/a/20.html", "/a/21.html", "/a/22.html"):
        add(HOST, path, lambda req, p=path: conditional_response(
            req, _page(f"{p}?{req.query}"), HTML))

    add(HOST, "/cal/*", _calendar)

    add(STALE, "/list/", _static(_page("列表", ["/a/9.html"])))
    add(STALE, "/a/9.html", _redirect(f"http://{STALE_OTHER}/a/9.html"))
    add(STALE_OTHER, "/a/9.html", _static(_page("九")))

    add(LITERAL, "/list/", _static(_page("列表", ["/literal-site.test/a/1.html"])))
    add(LITERAL, "/a/1.html", _static(_page("字面")))

    add(EXTRACT, "/page.html", _static(_page("遵义与重庆签约")))
    add(EXTRACT, "/redir.html", _redirect(f"http://localhost:{port}/{OTHER}/secret.html"))
    return site_server


def source(**changes: object) -> Source:
    data = {"id": "test-hostile", "name": "敌意站点", "kind": "government", "region": "遵义",
            "start_urls": [f"http://{HOST}/list/"], "article_patterns": [r"/a/\d+b?\.html$"],
            "max_depth": 2}
    data.update(changes)
    return Source.model_validate(data)


def crawl(server: SiteServer, data_dir: Path, sources: list[Source], hosts: list[str],
          **overrides: object) -> tuple[dict, list[dict]]:
    items_path = data_dir / "items.jsonl"
    items_path.unlink(missing_ok=True)
    stats = run_crawl(sources, data_dir=data_dir, item_pipelines={RECORDING_PIPELINE: 100},
                      host_map=server.host_map(hosts),
                      settings_overrides={**FAST, "CYZ_TEST_ITEMS_PATH": str(items_path),
                                          **overrides})
    return stats, read_items(items_path)


def cyz(*args: str, data_dir: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CYZ_")}
    environ.update({"CYZ_DATA_DIR": str(data_dir), "COLUMNS": "200", **env})
    return subprocess.run([sys.executable, "-m", "cyz.cli", *args], capture_output=True,
                          text=True, env=environ, cwd=REPO, timeout=300)


# -- redirects stay on the source's domains ------------------------------------------

def test_redirects_off_the_source_domains_are_not_fetched(hostile, data_dir) -> None:
    hostile.reset_counts()
    stats, items = crawl(hostile, data_dir, [source()], [HOST, OTHER])
    assert hostile.count(host=OTHER) == 0  # neither the pages nor robots.txt
    assert hostile.count(host="127.0.0.2") == 0
    assert sorted(i["url"] for i in items) == [f"http://{HOST}/a/5b.html", f"http://{HOST}/a/6.html"]
    # Counted where the operator sees failures: the run summary's failed-by-reason.
    assert stats["cyz/failed/offsite_redirect"] == 4
    assert "cyz/offsite_redirects" not in stats
    assert RunSummary.from_stats(stats).failed["offsite_redirect"] == 4


def test_a_redirect_to_an_unmapped_host_does_not_ride_the_loopback_proxy(hostile, data_dir) -> None:
    """The demo/test host map proxies mapped hosts only; a redirect from a mapped host to
    another host of the same source must not inherit the proxy."""
    hostile.reset_counts()
    src = source(start_urls=[f"http://{STALE}/list/"], allowed_domains=["stale-proxy.invalid"])
    stats, items = crawl(hostile, data_dir, [src], [STALE])
    assert hostile.count(host=STALE, path="/a/9.html") == 1
    assert hostile.count(host=STALE_OTHER) == 0
    assert items == []


def _private_hostname() -> str | None:
    """This machine's name when it resolves to a private or loopback address (the usual
    /etc/hosts entry): a public-looking name that points inside."""
    name = socket.gethostname().lower()
    try:
        address = ipaddress.ip_address(socket.gethostbyname(name))
    except (OSError, ValueError):
        return None
    if name == "localhost" or not (address.is_private or address.is_loopback):
        return None
    return name


def test_a_name_that_resolves_to_a_private_address_is_refused(hostile, data_dir) -> None:
    name = _private_hostname()
    if name is None:
        pytest.skip("this machine's name does not resolve to a private address")
    hostile.add_route(name, "/list/", _static(_page("内网", ["/a/1.html"])))
    hostile.add_route(name, "/a/1.html", _static(_page("内网文章")))
    src = source(start_urls=[f"http://{name}:{hostile.port}/list/"])
    hostile.reset_counts()
    stats, items = crawl(hostile, data_dir, [src], [])
    assert hostile.count(host=name) == 0 and items == []
    assert stats["cyz/failed/private_address"] == 1

    # An intranet source says so explicitly.
    if socket.gethostbyname(name) == "127.0.0.1":  # only then does the server answer
        stats, items = crawl(hostile, data_dir / "allowed", [source(
            start_urls=[f"http://{name}:{hostile.port}/list/"], allow_private_addresses=True)], [])
        assert [i["url"] for i in items] == [f"http://{name}:{hostile.port}/a/1.html"]


def test_a_private_address_named_by_the_source_is_crawled(hostile, data_dir) -> None:
    loop = hostile.address
    src = source(start_urls=[f"http://{loop}/{LITERAL}/list/"])
    stats, items = crawl(hostile, data_dir, [src], [])
    assert [i["url"] for i in items] == [f"http://{loop}/{LITERAL}/a/1.html"]
    assert not any(k.startswith("cyz/failed/") for k in stats)


def test_sources_check_stays_on_the_source_domains(hostile, tmp_path) -> None:
    sources_file = tmp_path / "sources.yaml"
    sources_file.write_text(
        "sources:\n  - id: test-hostile\n    name: 敌意站点\n    kind: government\n"
        f"    region: 遵义\n    start_urls: ['http://{HOST}/list/']\n"
        "    article_patterns: ['/a/\\d+b?\\.html$']\n", encoding="utf-8")
    proxy = f"http://{hostile.address}"
    hostile.reset_counts()
    proc = cyz("sources", "check", "test-hostile", "--sources", str(sources_file), "--json",
               data_dir=tmp_path, http_proxy=proxy, HTTP_PROXY=proxy, no_proxy="", NO_PROXY="")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert hostile.count(host=OTHER) == 0
    assert report["summary"]["failed"]["offsite_redirect"] >= 2  # capped at 5 articles
    assert all(r["url"].startswith(f"http://{HOST}/") for r in report["records"])


# -- cyz extract URL ---------------------------------------------------------------------

def test_extract_refuses_a_private_address_unless_allowed(hostile, tmp_path) -> None:
    url = f"http://{hostile.address}/{EXTRACT}/page.html"
    hostile.reset_counts()
    refused = cyz("extract", url, "--json", data_dir=tmp_path)
    assert refused.returncode != 0 and "Traceback" not in refused.stderr
    assert "private" in refused.stderr and "--allow-private" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert hostile.count(host=EXTRACT) == 0

    allowed = cyz("extract", url, "--json", "--allow-private", data_dir=tmp_path)
    assert allowed.returncode == 0, allowed.stderr
    assert json.loads(allowed.stdout)["title"] == "遵义与重庆签约"


def test_extract_refuses_a_redirect_to_another_host(hostile, tmp_path) -> None:
    hostile.reset_counts()
    proc = cyz("extract", f"http://{hostile.address}/{EXTRACT}/redir.html", "--allow-private",
               data_dir=tmp_path)
    assert proc.returncode != 0 and "Traceback" not in proc.stderr
    assert "redirect" in proc.stderr and "localhost" in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1
    assert hostile.count(host=OTHER) == 0


# -- URL patterns run in linear time ---------------------------------------------------

def test_a_pattern_re2_cannot_run_is_a_config_error(tmp_path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(
        "sources:\n  - id: backref\n    name: X\n    kind: news\n    region: 重庆\n"
        "    start_urls: [https://x.cn/]\n    article_patterns: ['/(\\d+)/\\1\\.html$']\n"
        "    follow_patterns: ['/list(?=_\\d)']\n", encoding="utf-8")
    with pytest.raises(ConfigError) as exc:
        load_sources(path)
    message = str(exc.value)
    assert str(path) in message and "'backref'" in message
    assert "'article_patterns'" in message and "'follow_patterns'" in message


@pytest.mark.timeout(120)
def test_a_catastrophic_pattern_cannot_freeze_the_crawl(hostile, data_dir) -> None:
    # In Python's `re`, this pattern against the 38 a's takes hours.
    src = source(start_urls=[f"http://{HOST}/evil/"], article_patterns=[r"/(\w+)+\.html$"])
    hostile.reset_counts()
    stats, items = crawl(hostile, data_dir, [src], [HOST])
    assert [i["url"] for i in items] == [f"http://{HOST}/ok.html"]
    assert hostile.count(host=HOST, path=EVIL_LINK) == 0


# -- query parameters that name pages are kept -----------------------------------------

def test_ids_in_query_parameters_are_different_articles(hostile, data_dir) -> None:
    src = source(start_urls=[f"http://{HOST}/ids/"], article_patterns=[r"/a/2\d\.html"],
                 tracking_params=["ref"])
    hostile.reset_counts()
    stats, items = crawl(hostile, data_dir, [src], [HOST])
    by_url = {i["url"]: i for i in items}
    assert set(by_url) == {f"http://{HOST}/a/20.html?source=101",
                           f"http://{HOST}/a/20.html?source=102",
                           f"http://{HOST}/a/21.html", f"http://{HOST}/a/22.html"}
    # The source's own tracking parameter reaches the canonical form (and so the id).
    assert by_url[f"http://{HOST}/a/21.html"]["canonical_url"] == f"https://{HOST}/a/21.html"
    assert len({i["canonical_url"] for i in items}) == 4
    assert stats["cyz/url_duplicates"] == 1  # /a/21.html?ref=home
    # The tracked spelling is never requested: the clean URL is.
    assert hostile.count(host=HOST, path="/a/22.html") == 1
    assert hostile.count(host=HOST, path="/a/22.html?utm_source=x") == 0


# -- list pages are bounded --------------------------------------------------------------

CAL = dict(start_urls=[f"http://{HOST}/cal/2024-11-27.html"], max_depth=20,
           follow_patterns=[r"/cal/\d{4}-\d{2}-\d{2}\.html$"], article_patterns=[r"/never/\d+$"])


def test_a_calendar_trap_is_cut_at_the_source_list_page_limit(hostile, data_dir) -> None:
    hostile.reset_counts()
    stats, _ = crawl(hostile, data_dir, [source(**CAL, max_list_pages=5)], [HOST])
    assert stats["cyz/list_pages"] == 5
    assert hostile.count(host=HOST) - hostile.count(host=HOST, path="/robots.txt") == 5
    assert stats["cyz/list_pages_capped"] == 1
    summary = RunSummary.from_stats(stats)
    assert summary.as_dict()["list_pages_capped"] == 1
    console = Console(record=True, width=100)
    console.print(summary.table())
    assert re.search(r"list pages capped\W+1\b", console.export_text())


def test_the_list_page_limit_has_a_crawl_wide_default(hostile, data_dir) -> None:
    from cyz.crawler.settings import BASE_SETTINGS

    assert BASE_SETTINGS["CYZ_MAX_LIST_PAGES"] == 200
    stats, _ = crawl(hostile, data_dir, [source(**CAL)], [HOST], CYZ_MAX_LIST_PAGES=3)
    assert stats["cyz/list_pages"] == 3 and stats["cyz/list_pages_capped"] == 1

