"""Every `CYZ_*` environment setting is validated when a command starts: a bad value
ends the command with one line naming the variable and exit code 2, before anything
runs; an unknown `CYZ_*` name is a warning with a suggestion; secrets never show."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import time
from pathlib import Path

import pytest
from click.testing import CliRunner

import cyz.config
from cyz.cli import main
from cyz.config import ConfigError

REPO = Path(__file__).resolve().parents[1]
CONFIG_DIR = Path(cyz.config.__file__).parent


def run_cyz(tmp_path: Path, *args: str, **env: str):
    """`cyz ARGS` in this process, with only the given CYZ_* variables set."""
    environ: dict[str, str | None] = {k: None for k in os.environ if k.startswith("CYZ_")}
    environ.update({"CYZ_CONFIG_DIR": str(CONFIG_DIR), "CYZ_DATA_DIR": str(tmp_path), **env})
    return CliRunner().invoke(main, list(args), env=environ)


BAD_VALUES = [
    ("CYZ_ENGINE", "foo", "sqlite, elasticsearch or opensearch"),
    ("CYZ_CRAWL_AT", "2am", "HH:MM"),
    ("CYZ_CRAWL_AT", "24:00", "HH:MM"),
    ("CYZ_CRAWL_AT", "02:60", "HH:MM"),
    ("CYZ_WORKERS", "-1", "0 or more"),
    ("CYZ_WORKERS", "many", "whole number"),
    ("CYZ_SMTP_PORT", "smtp", "port number"),
    ("CYZ_SMTP_PORT", "70000", "port number"),
    ("CYZ_SMTP_SECURITY", "tls", "none, starttls or ssl"),
    ("CYZ_ES_VERIFY_CERTS", "maybe", "true or false"),
    ("CYZ_OPENSEARCH_VERIFY_CERTS", "nope", "true or false"),
    ("CYZ_KIBANA_VERIFY", "2", "true or false"),
    ("CYZ_ES_URL", "localhost:9200", "http(s) URL"),
    ("CYZ_OPENSEARCH_URL", "ftp://search.example.org", "http(s) URL"),
    ("CYZ_KIBANA_URL", "http://kibana:56o1", "http(s) URL"),
    ("CYZ_INDEX_PREFIX", "Cyz Prod", "index name"),
    ("CYZ_MAIL_FROM", "nobody", "mail address"),
    ("CYZ_OPERATOR_EMAIL", "ops@example.org, ops", "mail address"),
    ("CYZ_CRAWL_TIMEOUT", "3 hours", "duration"),
    ("CYZ_PAGE_TIMEOUT", "0", "duration"),
    ("CYZ_SMTP_TIMEOUT", "-5s", "duration"),
    ("CYZ_REEXTRACT_PER_RUN", "-3", "0 or more"),
]


@pytest.mark.parametrize(("name", "value", "detail"), BAD_VALUES,
                         ids=[f"{n}={v}" for n, v, _ in BAD_VALUES])
def test_a_bad_value_is_one_line_naming_the_variable(tmp_path, name, value, detail):
    result = run_cyz(tmp_path, "sources", "list", **{name: value})
    assert result.exit_code == 2, result.output
    assert result.stdout == ""  # nothing ran
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: {name}: ") and detail in lines[0]
    assert f"(got {value!r})" in lines[0]
    assert "Traceback" not in result.stderr


def test_paths_must_be_usable(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    missing = tmp_path / "missing"
    for name, value, detail in [("CYZ_CONFIG_DIR", missing, "no such directory"),
                                ("CYZ_CONFIG_DIR", a_file, "not a directory"),
                                ("CYZ_DATA_DIR", a_file, "not a directory"),
                                ("CYZ_ES_CA_CERTS", missing, "no such file"),
                                ("CYZ_KIBANA_CA_CERTS", tmp_path, "no such file")]:
        result = run_cyz(tmp_path, "sources", "list", **{name: str(value)})
        assert result.exit_code == 2, (name, result.output)
        assert result.stderr.startswith(f"error: {name}: {detail}"), (name, result.stderr)
        assert str(value) in result.stderr


def test_several_bad_values_are_all_named(tmp_path):
    result = run_cyz(tmp_path, "sources", "list", CYZ_ENGINE="foo", CYZ_CRAWL_AT="2am")
    assert result.exit_code == 2
    assert "error: CYZ_ENGINE: " in result.stderr and "CYZ_CRAWL_AT: " in result.stderr


def test_secrets_are_never_echoed(tmp_path):
    result = run_cyz(tmp_path, "sources", "list",
                     CYZ_ES_URL="https://elastic:s3cret-pw@es01:92OO",
                     CYZ_SMTP_PASWORD="hunter2-secret")
    assert result.exit_code == 2
    assert "CYZ_ES_URL" in result.stderr and "es01" in result.stderr
    assert "CYZ_SMTP_PASWORD" in result.stderr and "'CYZ_SMTP_PASSWORD'" in result.stderr
    assert "s3cret-pw" not in result.output and "hunter2" not in result.output


def test_good_and_empty_values_pass(tmp_path):
    ca = tmp_path / "ca.crt"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    good = {
        "CYZ_ENGINE": "OpenSearch", "CYZ_CRAWL_AT": "2:30", "CYZ_WORKERS": "0",
        "CYZ_INDEX_PREFIX": "cyz-prod", "CYZ_ES_URL": "https://es01:9200",
        "CYZ_ES_API_KEY": "abc==", "CYZ_ES_USER": "cyz", "CYZ_ES_PASSWORD": "pw",
        "CYZ_ES_CA_CERTS": str(ca), "CYZ_ES_VERIFY_CERTS": "false",
        "CYZ_OPENSEARCH_URL": "http://127.0.0.1:9201", "CYZ_OPENSEARCH_USER": "admin",
        "CYZ_OPENSEARCH_PASSWORD": "pw", "CYZ_OPENSEARCH_CA_CERTS": str(ca),
        "CYZ_OPENSEARCH_VERIFY_CERTS": "on", "CYZ_KIBANA_URL": "http://kibana:5601",
        "CYZ_KIBANA_API_KEY": "k", "CYZ_KIBANA_USER": "u", "CYZ_KIBANA_PASSWORD": "p",
        "CYZ_KIBANA_CA_CERTS": str(ca), "CYZ_KIBANA_VERIFY": "0",
        "CYZ_SMTP_HOST": "smtp.example.org", "CYZ_SMTP_PORT": "587", "CYZ_SMTP_USER": "cyz",
        "CYZ_SMTP_PASSWORD": "pw", "CYZ_SMTP_SECURITY": "STARTTLS",
        "CYZ_MAIL_FROM": "cyz <cyz@example.org>",
        # Set by tests, CI and docker compose, not by cyz: never warned about.
        "CYZ_TEST_OPENSEARCH_URL": "http://127.0.0.1:9201", "CYZ_REQUIRE_OPENSEARCH": "1",
        "CYZ_CONFIG_PATH": "./config",
    }
    result = run_cyz(tmp_path, "sources", "list", **good)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    # docker compose passes unset variables as empty strings: empty means unset
    empty = {name: "" for name in good if name not in ("CYZ_CONFIG_DIR", "CYZ_DATA_DIR")}
    result = run_cyz(tmp_path, "sources", "list", **empty)
    assert result.exit_code == 0, result.output
    assert result.stderr == ""


def test_an_unknown_variable_is_a_warning_with_a_suggestion(tmp_path):
    result = run_cyz(tmp_path, "sources", "list", CYZ_ENGIN="opensearch", CYZ_FOO="1")
    assert result.exit_code == 0, result.output
    assert "warning: unknown setting CYZ_ENGIN (did you mean 'CYZ_ENGINE'?)" in result.stderr
    assert "warning: unknown setting CYZ_FOO" in result.stderr
    assert "opensearch" not in result.stderr  # values are never shown


def test_help_and_version_do_not_validate(tmp_path):
    for args in (["crawl", "--help"], ["index", "init", "-h"], ["--version"], ["--help"]):
        result = run_cyz(tmp_path, *args, CYZ_ENGINE="foo")
        assert result.exit_code == 0, (args, result.output)


def test_load_settings_types_and_defaults():
    from cyz.settings import load_settings

    defaults = load_settings({})
    assert defaults.engine == "sqlite" and defaults.crawl_at == time(2, 0)
    assert defaults.index_prefix == "cyz" and defaults.workers is None
    assert defaults.es_verify_certs is True and defaults.smtp_security == "starttls"
    given = load_settings({"CYZ_CRAWL_AT": "7:05", "CYZ_ENGINE": " Elasticsearch ",
                           "CYZ_WORKERS": "4", "CYZ_ES_VERIFY_CERTS": "no",
                           "CYZ_ES_PASSWORD": "pw", "HOME": "/root"})
    assert given.crawl_at == time(7, 5) and given.engine == "elasticsearch"
    assert given.workers == 4 and given.es_verify_certs is False
    assert "pw" not in repr(given)  # secrets are SecretStr
    warnings: list[str] = []
    load_settings({"CYZ_CRAWLAT": "02:00"}, warn=warnings.append)
    assert warnings == ["unknown setting CYZ_CRAWLAT (did you mean 'CYZ_CRAWL_AT'?)"]


# -- end to end: the real console command and the scheduler -----------------------------

def _cyz(*args: str, tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CYZ_")}
    environ.update({"CYZ_DATA_DIR": str(tmp_path), "COLUMNS": "200", **env})
    return subprocess.run([sys.executable, "-m", "cyz.cli", *args], capture_output=True,
                          text=True, env=environ, cwd=REPO, timeout=120)


def test_crawl_with_an_unknown_engine_exits_2_before_anything_runs(tmp_path):
    proc = _cyz("crawl", tmp_path=tmp_path, CYZ_ENGINE="foo")
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: CYZ_ENGINE: expected sqlite, elasticsearch or opensearch (got 'foo')"]
    assert not any(tmp_path.iterdir())  # not even the data dir was touched


def test_schedule_refuses_a_bad_crawl_time(tmp_path):
    proc = _cyz("schedule", tmp_path=tmp_path, CYZ_CRAWL_AT="2am")
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: CYZ_CRAWL_AT: ") and "(got '2am')" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_scheduler_validates_settings_at_start(monkeypatch, tmp_path):
    # run_forever is also the library entry point (`python scheduler.py`).
    from cyz.scheduling import run_forever

    monkeypatch.setenv("CYZ_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CYZ_CONFIG_DIR", str(CONFIG_DIR))
    monkeypatch.setenv("CYZ_CRAWL_AT", "25:00")
    with pytest.raises(ConfigError, match="CYZ_CRAWL_AT"):
        run_forever()
