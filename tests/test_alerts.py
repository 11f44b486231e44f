"""Keyword alerts: rules matched against the demo sites' articles (crawled for real), mails
sent to a real SMTP server (aiosmtpd) on loopback and read back, exactly once across
mail server and engine outages."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from smtp_server import SmtpServer, free_port  # tests/ is on sys.path

from cyz.alerts import run_alerts
from cyz.alerts.match import Matcher
from cyz.config import AlertRule, load_config
from cyz.crawl import crawl
from cyz.demo.run import demo_dir
from cyz.index import open_engine
from cyz.index.base import Filters
from cyz.settings import load_settings

REPO = Path(__file__).resolve().parents[1]
SHANGHAI = ZoneInfo("Asia/Shanghai")

RULES = """
rules:
  - id: jiangbei
    name: 遵义与成渝签约合作
    all: [遵義]                # a traditional keyword finds simplified articles too
    any: [江北区]
    none: [招聘]
    event_types: [agreement]
    recipients: [office@cyz.test, analyst@cyz.test]
  - id: rail-digest
    name: 高铁动态
    any: [高铁]
    recipients: [office@cyz.test]
    mode: digest
    digest_at: "08:00"
"""


@pytest.fixture(scope="module")
def crawled(tmp_path_factory, site_server) -> Path:
    """The demo sites crawled once into a SQLite data dir; tests work on copies."""
    data_dir = tmp_path_factory.mktemp("alerts-crawl")
    sources = load_config(REPO / "config", sources_file=demo_dir() / "sources.yaml").sources
    summary = crawl(sources, data_dir=data_dir, engine="sqlite", host_map=site_server.host_map(),
                    settings_overrides={"DOWNLOAD_DELAY": 0, "AUTOTHROTTLE_ENABLED": False,
                                        "LOG_LEVEL": "ERROR"})
    assert summary.new > 20
    return data_dir


@pytest.fixture
def office(tmp_path, crawled) -> dict[str, str]:
    """A data dir (a copy of the crawl) and a config dir with RULES: the env of a command."""
    data_dir = tmp_path / "data"
    shutil.copytree(crawled, data_dir)
    config_dir = tmp_path / "config"
    shutil.copytree(REPO / "config", config_dir)
    (config_dir / "alerts.yaml").write_text(RULES, encoding="utf-8")
    return {"CYZ_DATA_DIR": str(data_dir), "CYZ_CONFIG_DIR": str(config_dir),
            "CYZ_ENGINE": "sqlite"}


def cyz(*args: str, env: dict[str, str], code: int | None = 0) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CYZ_")}
    environ.update({"COLUMNS": "200", **env})
    proc = subprocess.run([sys.executable, "-m", "cyz.cli", *args], capture_output=True,
                          text=True, env=environ, cwd=REPO, timeout=300)
    if code is not None:
        assert proc.returncode == code, (args, proc.returncode, proc.stdout, proc.stderr)
    return proc


def alert_runs(env: dict[str, str]) -> list[dict]:
    runs = json.loads(cyz("runs", "--json", env=env).stdout)
    return [r for r in runs if r["kind"] == "alerts"]


def rewrite(data_dir: Path, record: dict) -> None:
    """Write a record the way the crawl and re-extraction do: through the engine."""
    engine = open_engine("sqlite", data_dir)
    try:
        engine.write([record])
    finally:
        engine.close()


def stored(data_dir: Path, title_part: str) -> list[dict]:
    engine = open_engine("sqlite", data_dir)
    try:
        return [r for r in engine.iter_records() if title_part in r["title"]]
    finally:
        engine.close()


# -- matching ---------------------------------------------------------------------------


def rule(**fields) -> AlertRule:
    return AlertRule(**{"id": "r", "name": "规则", "recipients": ["a@b.cn"], **fields})


def article(id: str, title: str, text: str, **fields) -> dict:
    from cyz.index.cjk import to_simplified

    return {"id": id, "title": title, "text": text, "title_zh": to_simplified(title),
            "text_zh": to_simplified(text), "source_id": "s", "source_kind": "news",
            "regions": [], "topics": [], "events": [], "relevance": 0.5, **fields}


def test_keywords_match_either_script_and_respect_all_any_none():
    records = [article("hans", "遵义与重庆签约", "两地签署协议。"),
               article("hant", "遵義與重慶簽約", "兩地簽署協議。"),
               article("jobs", "遵义招聘", "重庆企业招聘。"),
               article("cd", "成都新闻", "GDP增长。")]
    matcher = Matcher([rule(id="trad", all=["遵義"], any=["重庆", "成都"], none=["招聘"]),
                       rule(id="simp", all=["签约"]),
                       rule(id="latin", any=["gdp"])])
    got = {rule_id: [r["id"] for r in hits] for rule_id, hits in matcher.match(records).items()}
    assert got == {"trad": ["hans", "hant"], "simp": ["hans", "hant"], "latin": ["cd"]}


def test_filters_narrow_what_keywords_found():
    agreement = {"type": "agreement", "planned": False}
    planned = {"type": "agreement", "planned": True}
    records = [article("done", "遵义签约", "", events=[agreement], regions=[{"name": "遵义"}]),
               article("plan", "遵义签约", "", events=[planned], regions=[{"name": "遵义"}]),
               article("low", "遵义签约", "", events=[agreement], relevance=0.1),
               article("gov", "遵义签约", "", source_kind="government", topics=["agreement"])]
    matcher = Matcher([rule(id="done", all=["遵义"], event_types=["agreement"], planned=False),
                       rule(id="planned", event_types=["agreement"], planned=True),
                       rule(id="relevant", all=["签约"], min_relevance=0.3, regions=["遵义"]),
                       rule(id="kind", all=["签约"], source_kinds=["government"],
                            topics=["agreement"])])
    got = {rule_id: [r["id"] for r in hits] for rule_id, hits in matcher.match(records).items()}
    assert got == {"done": ["done", "low"], "planned": ["plan"], "relevant": ["done", "plan"],
                   "kind": ["gov"]}


# -- the rules file ---------------------------------------------------------------------


@pytest.mark.parametrize("entry, says", [
    ("recipent: [a@b.cn]", "entry 'bad', field 'recipent': unknown key (did you mean 'recipients'?)"),
    ("recipients: [nobody]", "entry 'bad', field 'recipients.0': not a mail address"),
    ("recipients: [a@b.cn]\n    mode: digest\n    digest_at: '25:00'", "field 'digest_at'"),
    ("recipients: [a@b.cn]\n    regions: [遵义县城]", "field 'regions': unknown region '遵义县城'"),
    ("recipients: [a@b.cn]\n    sources: [nope]", "field 'sources': unknown source 'nope'"),
    ("recipients: [a@b.cn]\n    event_types: [party]", "field 'event_types.0'"),
])
def test_a_bad_rule_stops_every_command_naming_file_rule_and_field(office, entry, says):
    config = Path(office["CYZ_CONFIG_DIR"]) / "alerts.yaml"
    config.write_text(f"rules:\n  - id: bad\n    name: 坏规则\n    any: [遵义]\n    {entry}\n",
                      encoding="utf-8")
    for command in (["alerts", "list"], ["alerts", "run"], ["crawl", "--max-pages", "1"]):
        proc = cyz(*command, env=office, code=2)
        assert str(config) in proc.stderr and says in proc.stderr, (command, proc.stderr)


def test_a_rule_that_would_match_everything_is_refused(office):
    config = Path(office["CYZ_CONFIG_DIR"]) / "alerts.yaml"
    config.write_text("rules:\n  - id: all\n    name: 全部\n    none: [招聘]\n"
                      "    recipients: [a@b.cn]\n", encoding="utf-8")
    assert "would match every article" in cyz("alerts", "list", env=office, code=2).stderr


def test_enabled_rules_without_a_mail_server_is_a_settings_error(office):
    proc = cyz("alerts", "run", env=office, code=2)
    assert "CYZ_SMTP_HOST: not set" in proc.stderr and "2 enabled rule(s)" in proc.stderr


# -- mails over SMTP --------------------------------------------------------------------


def test_each_match_is_mailed_once_over_smtp_with_reprints_grouped(office):
    with SmtpServer() as smtp:
        env = {**office, **smtp.env()}
        first = json.loads(cyz("alerts", "run", "--json", env=env).stdout)
        assert first["status"] == "ok" and first["sent"] == 1 and first["queued"] == 0
        assert len(smtp.inbox) == 1
        mail = smtp.inbox[0]
        assert sorted(mail.rcpt_tos) == ["analyst@cyz.test", "office@cyz.test"]
        assert mail.mail_from == "alerts@cyz.test"
        msg = mail.message
        assert msg["Subject"] == "[cyz] 遵义与成渝签约合作 · 1 篇新文章"
        assert b"=?utf-8?" in mail.data.split(b"\r\n\r\n", 1)[0]  # encoded, not raw UTF-8
        assert msg["X-Cyz-Rule"] == "jiangbei"
        plain = msg.get_body(("plain",)).get_content()
        html = msg.get_body(("html",)).get_content()
        # the signing, told by three outlets in two scripts: one story, its reprints named
        assert "遵义市与重庆市江北区签署全面深化合作框架协议" in plain
        assert "转载 2：" in plain and "新华社" in plain and "香江時報" in plain
        assert "事件：签约 2024-12-04 遵义市、重庆市江北区" in plain
        assert "来源：遵义日报" in plain and "2024-12-05" in plain
        assert "【江北区】" in plain and "<mark>江北区</mark>" in html
        assert "规则 jiangbei" in plain
        # the digest rule collects until 08:00; a second run finds nothing new
        again = json.loads(cyz("alerts", "run", "--json", env=env).stdout)
        assert again["sent"] == again["hits"] == 0 and len(smtp.inbox) == 1
    assert [r["alerts_sent"] for r in alert_runs(env)] == [0, 1]


def test_an_smtp_outage_queues_the_mail_and_the_next_run_sends_it_once(office):
    smtp = SmtpServer(port=free_port())  # not started: nothing listens there
    env = {**office, **smtp.env()}
    down = cyz("alerts", "run", env=env, code=1)
    assert "stays queued" in down.stderr and "cannot reach the mail server" in down.stderr
    assert "1 queued" in down.stdout
    assert alert_runs(env)[0]["status"] == "failed"
    with smtp:
        up = cyz("alerts", "run", env=env)
        assert "sent 1 mail(s)" in up.stdout and "0 queued" in up.stdout
        assert len(smtp.inbox) == 1
        cyz("alerts", "run", env=env)
        assert len(smtp.inbox) == 1
    assert smtp.inbox[0].message["Subject"].endswith("1 篇新文章")


def test_a_hostile_title_cannot_inject_markup_or_headers(office):
    data_dir = Path(office["CYZ_DATA_DIR"])
    lead = next(r for r in stored(data_dir, "江北区签署") if r["is_first_in_cluster"])
    evil = {**lead, "id": "evil", "cluster_id": "evil", "is_first_in_cluster": True,
            "url": "javascript:alert(1)",
            "title": '<img src=x onerror=alert(1)>遵义江北区签约\r\nBcc: victim@evil.example',
            "origin": "<b>来源</b>"}
    with SmtpServer() as smtp:
        env = {**office, **smtp.env()}
        cyz("alerts", "run", env=env)
        assert len(smtp.inbox) == 1
        mail = smtp.inbox[0]
        rewrite(data_dir, {**evil, "published_at": "2030-01-01T00:00:00+08:00"})
        cyz("alerts", "run", env=env)
        assert len(smtp.inbox) == 2
        mail = smtp.inbox[1]
    msg = mail.message
    assert sorted(mail.rcpt_tos) == ["analyst@cyz.test", "office@cyz.test"]
    assert msg["Bcc"] is None and b"victim@evil.example" not in mail.data.split(b"\r\n\r\n", 1)[0]
    html = msg.get_body(("html",)).get_content()
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<b>来源</b>" not in html and "javascript:" not in html.split("href=")[-1][:20]
    assert 'href="javascript' not in html


def test_a_rule_sees_what_became_new_to_it_not_what_was_published_lately(office):
    """Back-filled articles alert; an article re-extracted so that it now matches alerts;
    what was mailed once is never mailed again, even when rewritten."""
    data_dir = Path(office["CYZ_DATA_DIR"])
    lead = next(r for r in stored(data_dir, "江北区签署") if r["is_first_in_cluster"])
    with SmtpServer() as smtp:
        env = {**office, **smtp.env()}
        cyz("alerts", "run", env=env)
        assert len(smtp.inbox) == 1
        old = {**lead, "id": "old", "cluster_id": "old", "url": "http://old.example/1.html",
               "title": "遵义与江北区2019年合作回顾", "published_at": "2019-03-01T09:00:00+08:00",
               "events": [], "event_types": []}
        rewrite(data_dir, old)  # back-filled, no agreement event yet: no mail
        assert json.loads(cyz("alerts", "run", "--json", env=env).stdout)["sent"] == 0
        rewrite(data_dir, {**old, "events": lead["events"], "event_types": lead["event_types"]})
        assert json.loads(cyz("alerts", "run", "--json", env=env).stdout)["sent"] == 1
        assert "遵义与江北区2019年合作回顾" in smtp.inbox[1].message.get_body(("plain",)).get_content()
        rewrite(data_dir, {**lead, "title": lead["title"] + "（更新）"})  # mailed before
        assert json.loads(cyz("alerts", "run", "--json", env=env).stdout)["sent"] == 0
        assert len(smtp.inbox) == 2


def test_a_digest_collects_until_its_time_then_mails_once(office, monkeypatch):
    for key, value in office.items():
        monkeypatch.setenv(key, value)
    data_dir = Path(office["CYZ_DATA_DIR"])
    config = load_config(Path(office["CYZ_CONFIG_DIR"]))
    day = datetime.now(SHANGHAI).date()
    at = {hm: datetime.fromisoformat(f"{day}T{hm}:00+08:00") for hm in ("02:00", "07:59", "08:01", "09:00")}
    with SmtpServer() as smtp:
        monkeypatch.setenv("CYZ_SMTP_HOST", "127.0.0.1")
        for key, value in smtp.env().items():
            monkeypatch.setenv(key, value)
        settings = load_settings()
        night = run_alerts(config, data_dir, now=at["02:00"], settings=settings)
        assert night.hits >= 2 and [m.message["X-Cyz-Rule"] for m in smtp.inbox] == ["jiangbei"]
        assert run_alerts(config, data_dir, now=at["07:59"], settings=settings).sent == 0
        morning = run_alerts(config, data_dir, now=at["08:01"], settings=settings)
        assert morning.sent == 1 and len(smtp.inbox) == 2
        digest = smtp.inbox[1].message
        rail = len(night.matches["rail-digest"])
        assert digest["Subject"].startswith("[cyz] 高铁动态 · 每日摘要 · ")
        assert rail >= 2 and "高铁" in digest.get_body(("plain",)).get_content()
        assert run_alerts(config, data_dir, now=at["09:00"], settings=settings).sent == 0
        assert len(smtp.inbox) == 2


def test_alerts_wait_for_an_engine_outage_and_lose_nothing(tmp_path, site_server, opensearch_url):
    """A crawl while OpenSearch is down spools its records; the alerts run then fails
    and sends nothing; with the node back it indexes them and mails each once."""
    prefix = f"cyzalert{secrets.token_hex(3)}"
    data_dir = tmp_path / "data"
    config_dir = tmp_path / "config"
    shutil.copytree(REPO / "config", config_dir)
    (config_dir / "alerts.yaml").write_text(RULES, encoding="utf-8")
    down = {"CYZ_DATA_DIR": str(data_dir), "CYZ_CONFIG_DIR": str(config_dir),
            "CYZ_ENGINE": "opensearch", "CYZ_INDEX_PREFIX": prefix,
            "CYZ_OPENSEARCH_URL": f"http://127.0.0.1:{free_port()}"}
    saved = {key: os.environ.get(key) for key in down}
    os.environ.update(down)  # the crawl child reads the engine's settings from there
    try:
        sources = load_config(REPO / "config", sources_file=demo_dir() / "sources.yaml").sources
        summary = crawl(sources, data_dir=data_dir, engine="opensearch",
                        host_map=site_server.host_map(),
                        settings_overrides={"DOWNLOAD_DELAY": 0, "AUTOTHROTTLE_ENABLED": False,
                                            "LOG_LEVEL": "ERROR"})
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    assert summary.new > 20 and summary.exit_code == 0  # stored: in the spool
    try:
        with SmtpServer() as smtp:
            env = {**down, **smtp.env()}
            proc = cyz("alerts", "run", env=env, code=1)
            assert "alerts wait for the index" in proc.stderr and smtp.inbox == []
            up = {**env, "CYZ_OPENSEARCH_URL": opensearch_url}
            result = json.loads(cyz("alerts", "run", "--json", env=up).stdout)
            assert result["sent"] == 1 and len(smtp.inbox) == 1
            assert "转载 2：" in smtp.inbox[0].message.get_body(("plain",)).get_content()
            assert json.loads(cyz("alerts", "run", "--json", env=up).stdout)["sent"] == 0
            assert len(smtp.inbox) == 1
    finally:
        from test_engines import drop_prefix

        drop_prefix(opensearch_url, prefix)


# -- list and test ----------------------------------------------------------------------


def test_alerts_test_shows_the_mail_and_writes_an_eml_without_sending(office, tmp_path):
    eml = tmp_path / "out.eml"
    proc = cyz("alerts", "test", "jiangbei", "-o", str(eml), env=office)
    assert "Subject: [cyz] 遵义与成渝签约合作 · 1 篇新文章" in proc.stdout
    assert "转载 2：" in proc.stdout
    import email
    from email import policy

    msg = email.message_from_bytes(eml.read_bytes(), policy=policy.default)
    assert msg["Subject"] == "[cyz] 遵义与成渝签约合作 · 1 篇新文章"
    # older articles by publication date, matched or mailed before
    since = cyz("alerts", "test", "rail-digest", "--since", "2024-12-01", env=office)
    assert "matching article(s)" in since.stdout
    listed = json.loads(cyz("alerts", "list", "--json", env=office).stdout)
    assert [r["id"] for r in listed["rules"]] == ["jiangbei", "rail-digest"]
    assert listed["rules"][0]["seen_until"] is None and listed["mails"] == {"queued": 0, "sent": 0}
    unknown = cyz("alerts", "test", "nope", env=office, code=2)
    assert "no alert rule 'nope'" in unknown.stderr and "jiangbei" in unknown.stderr


def test_dry_run_shows_matches_and_changes_nothing(office):
    proc = json.loads(cyz("alerts", "run", "--dry-run", "--json", env=office).stdout)
    assert [h["title"] for h in proc["matches"]["jiangbei"]]
    assert proc["sent"] == 0 and proc["subjects"] == []
    assert alert_runs(office) == []
    again = json.loads(cyz("alerts", "run", "--dry-run", "--json", env=office).stdout)
    assert again["matches"] == proc["matches"]


def test_filters_by_indexed_at_are_what_rules_read(crawled):
    engine = open_engine("sqlite", crawled)
    try:
        stamps = sorted(r["indexed_at"] for r in engine.iter_records())
        assert stamps[0] and engine.count(Filters(indexed_since=stamps[-1])) >= 1
        assert engine.count(Filters(indexed_since="2999-01-01")) == 0
    finally:
        engine.close()


def test_crawl_health_problems_reach_the_operator_once_a_day(office):
    """A failed night and a source gone silent (it yielded articles, then three crawls
    with none) are mailed to CYZ_OPERATOR_EMAIL, each once a day."""
    from cyz.runs import record_run

    data_dir = Path(office["CYZ_DATA_DIR"])
    source = load_config(Path(office["CYZ_CONFIG_DIR"])).sources[0].id
    counts = {"fetched": 0, "new": 0, "updated": 0, "unchanged": 0, "failed": {}}
    history = [("ok", 12)] + [("ok", 0)] * 3
    for day, (status, fetched) in enumerate(history, 1):
        stamp = f"2026-01-0{day}T18:00:00+00:00"
        record_run(data_dir, "crawl", stamp, stamp, status, {source: {**counts, "fetched": fetched}})
    now = datetime.now(ZoneInfo("UTC")).isoformat(timespec="seconds")
    record_run(data_dir, "crawl", now, now, "failed", {source: counts},
               errors=["nothing could be fetched (dns_error 40): is the network, DNS or proxy down?"])
    with SmtpServer() as smtp:
        env = {**office, **smtp.env(), "CYZ_OPERATOR_EMAIL": "ops@cyz.test"}
        cyz("alerts", "run", env=env)
        health = [m for m in smtp.inbox if m.rcpt_tos == ["ops@cyz.test"]]
        assert len(health) == 1
        msg = health[0].message
        assert msg["Subject"].startswith("[cyz] crawl health: 2 problem(s), 1 error(s)")
        body = msg.get_body(("plain",)).get_content()
        assert "ERROR: the last crawl" in body and "dns_error 40" in body
        assert f"WARNING: source {source}: no article page in its last 3 crawls" in body
        cyz("alerts", "run", env=env)
        assert [m for m in smtp.inbox if m.rcpt_tos == ["ops@cyz.test"]] == health


def test_a_second_alerts_run_waits_for_the_first(office):
    """Two runs at once would both find a queued mail and send it twice: the second
    waits for the first's outbox lock (held here), then finds nothing left to send."""
    from cyz.alerts.outbox import Outbox

    with SmtpServer() as smtp:
        env = {**office, **smtp.env()}
        environ = {k: v for k, v in os.environ.items() if not k.startswith("CYZ_")} | env
        with Outbox(Path(office["CYZ_DATA_DIR"])) as outbox, outbox.exclusive():
            proc = subprocess.Popen([sys.executable, "-m", "cyz.cli", "alerts", "run"],
                                    env=environ, cwd=REPO, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
            with pytest.raises(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
            assert smtp.inbox == []
        out, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, (out, err)
        assert len(smtp.inbox) == 1


def test_no_enabled_rule_and_an_unwritable_eml_each_say_so_in_one_line(office, tmp_path):
    proc = cyz("alerts", "test", "jiangbei", "-o", str(tmp_path / "missing" / "x.eml"),
               env=office, code=1)
    assert proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'missing' / 'x.eml'}: cannot write the mail: No such file or directory"]
    config = Path(office["CYZ_CONFIG_DIR"]) / "alerts.yaml"
    config.write_text(RULES.replace("recipients: [office@cyz.test]",
                                    "recipients: [office@cyz.test]\n    enabled: false")
                      .replace("recipients: [office@cyz.test, analyst@cyz.test]",
                               "recipients: [office@cyz.test, analyst@cyz.test]\n    enabled: false"),
                      encoding="utf-8")
    assert f"no enabled alert rules in {config}" in cyz("alerts", "run", "--dry-run", env=office).stdout
