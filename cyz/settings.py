"""Every `CYZ_*` environment setting, read and validated in one place.

`load_settings()` runs when a `cyz` command starts and when the scheduler starts, so a
bad value ends the run with one line naming the variable (exit code 2) before anything
happens, not with a traceback at 02:00. Engine and mail settings, secrets included,
come from the environment only, never from the YAML files. An empty value means unset:
docker compose passes unset variables as empty strings.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Callable, Mapping
from datetime import time
from email.utils import parseaddr
from pathlib import Path
from typing import Annotated, get_args
from urllib.parse import urlsplit

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, ValidationError

from cyz.config import ConfigError, parse_clock
from cyz.index import ENGINES


class SettingsError(ConfigError):
    """A `CYZ_*` variable has a bad value; the message names it and never shows a secret."""


def _engine(value: str) -> str:
    name = value.strip().lower()
    if name not in ENGINES:
        raise ValueError(f"expected {', '.join(ENGINES[:-1])} or {ENGINES[-1]}")
    return name


def _clock(value: str) -> time:
    return parse_clock(value, "02:00")


def _whole_number(zero_means: str) -> Callable[[str], int]:
    """A validator of a count, 0 or more; the error says what 0 means."""
    def check(value: str) -> int:
        try:
            number = int(value.strip())
        except ValueError:
            number = -1
        if number < 0:
            raise ValueError(f"expected a whole number, 0 or more (0: {zero_means})")
        return number

    return check


def _port(value: str) -> int:
    try:
        number = int(value.strip())
    except ValueError:
        number = 0
    if not 1 <= number <= 65535:
        raise ValueError("expected a port number, 1-65535")
    return number


_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off"}


def _flag(value: str) -> bool:
    word = value.strip().lower()
    if word not in _TRUE | _FALSE:
        raise ValueError("expected true or false (or 1/0, yes/no, on/off)")
    return word in _TRUE


def _url(value: str) -> str:
    url = value.strip()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError on a bad port
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("expected an http(s) URL like https://host:9200")
    return url


def _security(value: str) -> str:
    word = value.strip().lower()
    if word not in ("none", "starttls", "ssl"):
        raise ValueError("expected none, starttls or ssl")
    return word


def _index_prefix(value: str) -> str:
    # Elasticsearch and OpenSearch index names: lower case, no spaces or \/*?"<>|,#: and
    # not starting with - _ + .; the prefix is followed by "-articles-v1" and the like.
    prefix = value.strip()
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,99}", prefix):
        raise ValueError("expected a lower-case index name prefix (a-z, 0-9, - _ .)")
    return prefix


def _mail_from(value: str) -> str:
    _, address = parseaddr(value)
    if not re.fullmatch(r"[^@\s<>]+@[^@\s<>]+", address):
        raise ValueError("expected a mail address like cyz@example.org or 'cyz <cyz@example.org>'")
    return value.strip()


def _addresses(value: str) -> tuple[str, ...]:
    found = tuple(a.strip() for a in value.split(",") if a.strip())
    for address in found:
        _mail_from(address)
    return found


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _duration(value: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)\s*([smhd]?)", value.strip().lower())
    if not match or float(match[1]) <= 0:
        raise ValueError("expected a duration like 90s, 30m, 4h (a bare number: seconds)")
    return float(match[1]) * _UNITS[match[2] or "s"]


def _directory(value: str) -> Path:
    path = Path(value)
    if not path.exists():
        raise ValueError("no such directory")
    if not path.is_dir():
        raise ValueError("not a directory")
    return path


def _data_directory(value: str) -> Path:
    path = Path(value)
    if path.exists() and not path.is_dir():  # a missing one is created on first use
        raise ValueError("not a directory")
    return path


def _file(value: str) -> Path:
    path = Path(value)
    if not path.is_file():
        raise ValueError("no such file")
    return path


Engine = Annotated[str, BeforeValidator(_engine)]
Clock = Annotated[time, BeforeValidator(_clock)]
Count = Annotated[int, BeforeValidator(_whole_number("one per core"))]
Port = Annotated[int, BeforeValidator(_port)]
Flag = Annotated[bool, BeforeValidator(_flag)]
Url = Annotated[str, BeforeValidator(_url)]
File = Annotated[Path, BeforeValidator(_file)]
Duration = Annotated[float, BeforeValidator(_duration)]  # seconds


class Settings(BaseModel):
    """The validated `CYZ_*` settings. Field aliases are the variable names."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    config_dir: Annotated[Path, BeforeValidator(_directory)] | None = Field(
        None, alias="CYZ_CONFIG_DIR")
    data_dir: Annotated[Path, BeforeValidator(_data_directory)] | None = Field(
        None, alias="CYZ_DATA_DIR")
    engine: Engine = Field("sqlite", alias="CYZ_ENGINE")
    index_prefix: Annotated[str, BeforeValidator(_index_prefix)] = Field(
        "cyz", alias="CYZ_INDEX_PREFIX")
    crawl_at: Clock = Field(time(2, 0), alias="CYZ_CRAWL_AT")
    workers: Count | None = Field(None, alias="CYZ_WORKERS")  # None: one per core
    # After a pipeline upgrade, each crawl re-extracts this many stale records from the
    # raw archive (pages a 304 would otherwise never bring up to date).
    reextract_per_run: Annotated[int, BeforeValidator(_whole_number("never during a crawl"))] = Field(
        1000, alias="CYZ_REEXTRACT_PER_RUN")
    # A crawl still running after this long is stopped like a Ctrl-C (what was fetched
    # is stored) and recorded as failed; one page's extraction after CYZ_PAGE_TIMEOUT is
    # counted as failed (`extraction_timeout`) and its worker replaced.
    crawl_timeout: Duration = Field(4 * 3600.0, alias="CYZ_CRAWL_TIMEOUT")
    page_timeout: Duration = Field(120.0, alias="CYZ_PAGE_TIMEOUT")
    # The Chromium for `render: browser` sources (None: chromium etc. on PATH).
    chromium: File | None = Field(None, alias="CYZ_CHROMIUM")

    es_url: Url | None = Field(None, alias="CYZ_ES_URL")
    es_api_key: SecretStr | None = Field(None, alias="CYZ_ES_API_KEY")
    es_user: str | None = Field(None, alias="CYZ_ES_USER")
    es_password: SecretStr | None = Field(None, alias="CYZ_ES_PASSWORD")
    es_ca_certs: File | None = Field(None, alias="CYZ_ES_CA_CERTS")
    es_verify_certs: Flag = Field(True, alias="CYZ_ES_VERIFY_CERTS")
    # The operator's credentials for `cyz index init`, `cyz index migrate` (and, when no
    # CYZ_KIBANA_* login is set, `cyz kibana import`): role cyz_admin of docs/roles.md.
    # Unset: those commands use the normal credentials above.
    es_admin_api_key: SecretStr | None = Field(None, alias="CYZ_ES_ADMIN_API_KEY")
    es_admin_user: str | None = Field(None, alias="CYZ_ES_ADMIN_USER")
    es_admin_password: SecretStr | None = Field(None, alias="CYZ_ES_ADMIN_PASSWORD")

    opensearch_url: Url | None = Field(None, alias="CYZ_OPENSEARCH_URL")
    opensearch_user: str | None = Field(None, alias="CYZ_OPENSEARCH_USER")
    opensearch_password: SecretStr | None = Field(None, alias="CYZ_OPENSEARCH_PASSWORD")
    opensearch_ca_certs: File | None = Field(None, alias="CYZ_OPENSEARCH_CA_CERTS")
    opensearch_verify_certs: Flag = Field(True, alias="CYZ_OPENSEARCH_VERIFY_CERTS")
    opensearch_admin_user: str | None = Field(None, alias="CYZ_OPENSEARCH_ADMIN_USER")
    opensearch_admin_password: SecretStr | None = Field(None, alias="CYZ_OPENSEARCH_ADMIN_PASSWORD")

    kibana_url: Url | None = Field(None, alias="CYZ_KIBANA_URL")
    kibana_api_key: SecretStr | None = Field(None, alias="CYZ_KIBANA_API_KEY")
    kibana_user: str | None = Field(None, alias="CYZ_KIBANA_USER")
    kibana_password: SecretStr | None = Field(None, alias="CYZ_KIBANA_PASSWORD")
    kibana_ca_certs: File | None = Field(None, alias="CYZ_KIBANA_CA_CERTS")
    kibana_verify: Flag = Field(True, alias="CYZ_KIBANA_VERIFY")

    smtp_host: str | None = Field(None, alias="CYZ_SMTP_HOST")
    smtp_port: Port | None = Field(None, alias="CYZ_SMTP_PORT")  # None: the security's usual
    smtp_user: str | None = Field(None, alias="CYZ_SMTP_USER")
    smtp_password: SecretStr | None = Field(None, alias="CYZ_SMTP_PASSWORD")
    smtp_security: Annotated[str, BeforeValidator(_security)] = Field(
        "starttls", alias="CYZ_SMTP_SECURITY")  # none | starttls | ssl
    mail_from: Annotated[str, BeforeValidator(_mail_from)] | None = Field(
        None, alias="CYZ_MAIL_FROM")
    smtp_timeout: Duration = Field(30.0, alias="CYZ_SMTP_TIMEOUT")
    # Crawl-health mails (a source gone silent, a failed or missed night, ...): one or
    # more addresses, comma-separated; unset: `cyz health` only.
    operator_email: Annotated[tuple[str, ...], BeforeValidator(_addresses)] = Field(
        (), alias="CYZ_OPERATOR_EMAIL")

NAMES: tuple[str, ...] = tuple(f.alias for f in Settings.model_fields.values() if f.alias)
SECRETS = frozenset(f.alias for f in Settings.model_fields.values()
                    if f.alias and SecretStr in get_args(f.annotation))
_URLS = frozenset(f.alias for f in Settings.model_fields.values()
                  if f.alias and f.alias.endswith("_URL"))

# CYZ_* names that are not cyz's settings and draw no warning: the test suite's and
# CI's (CYZ_TEST_*, CYZ_REQUIRE_OPENSEARCH, CYZ_REQUIRE_CHROMIUM), docker compose's host folder
# (CYZ_CONFIG_PATH), the OpenSearch test node's heap, the benchmarks' venv, and the
# crawl's clock for tests and benchmarks (CYZ_NOW, read and checked by cyz.crawl).
_OTHERS = frozenset({"CYZ_REQUIRE_OPENSEARCH", "CYZ_REQUIRE_CHROMIUM", "CYZ_CONFIG_PATH",
                     "CYZ_OPENSEARCH_HEAP",
                     "CYZ_NEWS_PLEASE_VENV", "CYZ_NOW"})


def _shown(name: str, value: str) -> str:
    """The value as an error message may show it: never a secret, nor a URL's password."""
    if name in _URLS:
        value = re.sub(r"(//[^/@:]*):[^/@]*@", r"\1:***@", value)
    return f" (got {value!r})"


def load_settings(environ: Mapping[str, str] | None = None, *,
                  warn: Callable[[str], None] | None = None) -> Settings:
    """Read and validate every `CYZ_*` variable of `environ` (default: `os.environ`).

    Raises SettingsError with one line per bad variable. An unknown `CYZ_*` name (a
    typo, most likely) is passed to `warn` with a suggestion, and is otherwise ignored.
    """
    env = os.environ if environ is None else environ
    for name in sorted(n for n in env if n.startswith("CYZ_")):
        if name in NAMES or name in _OTHERS or name.startswith("CYZ_TEST_"):
            continue
        if warn is not None:
            close = difflib.get_close_matches(name, NAMES, n=1)
            warn(f"unknown setting {name}" + (f" (did you mean {close[0]!r}?)" if close
                                              else ", ignored"))
    given = {name: env[name] for name in NAMES if env.get(name, "").strip()}
    try:
        return Settings.model_validate(given)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            name = str(err["loc"][0])
            message = err["msg"].removeprefix("Value error, ")
            shown = "" if name in SECRETS else _shown(name, given.get(name, ""))
            lines.append(f"{name}: {message}{shown}")
        raise SettingsError("\n".join(lines)) from None

