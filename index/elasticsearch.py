"""Elasticsearch 8 engine: the shared `SearchEngine` over the official `elasticsearch` client.

Configured from the environment only: `CYZ_ES_URL`, `CYZ_ES_API_KEY` (or `CYZ_ES_USER`
and `CYZ_ES_PASSWORD`), `CYZ_ES_CA_CERTS`, `CYZ_ES_VERIFY_CERTS` (default on). The admin
commands (`cyz index init`, `cyz index migrate`) use `CYZ_ES_ADMIN_API_KEY` (or
`CYZ_ES_ADMIN_USER`/`CYZ_ES_ADMIN_PASSWORD`) when set, else the normal credentials
(docs/roles.md: the nightly key may not manage indices).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from cyz.config import ConfigError
from cyz.index.search_engine import (
    BULK_OPTIONS,
    ApiError,
    BulkFailure,
    Client,
    EngineMisconfigured,
    EngineUnavailable,
    SearchEngine,
    bulk_failure,
)

_JSON = {"accept": "application/json", "content-type": "application/json"}


def _flag(value: str | None, default: bool = True) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() not in ("0", "false", "no", "off")


class ElasticsearchClient(Client):
    name = "elasticsearch"

    def __init__(self, es):
        self.es = es

    def _translate(self, exc: Exception, what: str) -> Exception:
        """Our error for one of the client library's."""
        from elastic_transport import ConnectionError as TransportConnectionError
        from elastic_transport import ConnectionTimeout, TlsError
        from elasticsearch import ApiError as EsApiError
        from elasticsearch import UnsupportedProductError

        if isinstance(exc, UnsupportedProductError):
            return EngineMisconfigured(f"{what}: the server at CYZ_ES_URL is not Elasticsearch "
                                       f"({exc.message})")
        if isinstance(exc, TlsError):
            return EngineMisconfigured(f"{what}: TLS verification failed ({exc}); "
                                       "set CYZ_ES_CA_CERTS to the cluster's CA certificate")
        if isinstance(exc, EsApiError):
            if exc.meta.status in (401, 403):
                return self.denied(exc.meta.status, exc.body, what)
            return ApiError(exc.meta.status, exc.body, what)
        if isinstance(exc, TransportConnectionError | ConnectionTimeout):
            return EngineUnavailable(f"{what}: {exc}")
        return exc

    url_setting = "CYZ_ES_URL"
    user_settings = "CYZ_ES_API_KEY (or CYZ_ES_USER/CYZ_ES_PASSWORD)"
    admin_settings = "CYZ_ES_ADMIN_API_KEY (or CYZ_ES_ADMIN_USER/CYZ_ES_ADMIN_PASSWORD)"

    @classmethod
    def from_env(cls, environ: dict | None = None, *, admin: bool = False) -> ElasticsearchClient:
        """A client with the normal credentials, or with `admin` the admin ones when
        they are set (else the normal ones)."""
        from elasticsearch import Elasticsearch

        env = os.environ if environ is None else environ
        url = env.get("CYZ_ES_URL")
        if not url:
            raise ConfigError("CYZ_ENGINE=elasticsearch needs CYZ_ES_URL (e.g. https://localhost:9200)")
        options: dict = {"request_timeout": 30, "retry_on_timeout": True, "max_retries": 2}
        use_admin = admin and bool(env.get("CYZ_ES_ADMIN_API_KEY") or env.get("CYZ_ES_ADMIN_USER"))
        key, user = ("CYZ_ES_ADMIN_API_KEY", "CYZ_ES_ADMIN_USER") if use_admin else \
            ("CYZ_ES_API_KEY", "CYZ_ES_USER")
        credentials = None
        if env.get(key):
            options["api_key"] = env[key]
            credentials = key
        elif env.get(user):
            password = user.replace("_USER", "_PASSWORD")
            options["basic_auth"] = (env[user], env.get(password, ""))
            credentials = f"{user}/{password}"
        if env.get("CYZ_ES_CA_CERTS"):
            options["ca_certs"] = env["CYZ_ES_CA_CERTS"]
        if url.startswith("https"):
            options["verify_certs"] = _flag(env.get("CYZ_ES_VERIFY_CERTS"))
        client = cls(Elasticsearch(url, **options))
        client.url, client.credentials, client.admin = url, credentials, use_admin
        return client

    def request(self, method: str, path: str, body: object = None,
                params: dict | None = None, retry: bool = True) -> dict:
        from elastic_transport import TransportError
        from elasticsearch import ApiError as EsApiError

        es = self.es if retry else self.es.options(max_retries=0, retry_on_timeout=False)
        try:
            response = es.perform_request(method, path, params=params, body=body,
                                               headers=_JSON if body is not None else
                                               {"accept": "application/json"})
        except (EsApiError, TransportError) as exc:
            raise self._translate(exc, f"{method} {path}") from None
        return response.body if isinstance(response.body, dict) else {}

    def bulk(self, actions: Iterable[dict]) -> Iterator[BulkFailure]:
        from elastic_transport import TransportError
        from elasticsearch import UnsupportedProductError
        from elasticsearch.helpers import streaming_bulk

        try:
            for _ok, item in streaming_bulk(self.es, actions, **BULK_OPTIONS,
                                            retry_on_status=(429, 502, 503, 504)):
                info = next(iter(item.values()))
                if isinstance(info.get("exception"), UnsupportedProductError):
                    raise info["exception"]
                yield bulk_failure(item)
        except (UnsupportedProductError, TransportError) as exc:
            raise self._translate(exc, "bulk") from None

    def close(self) -> None:
        self.es.close()


def open_elasticsearch(data_dir: Path, admin: bool = False) -> SearchEngine:
    return SearchEngine(ElasticsearchClient.from_env(admin=admin), data_dir,
                        os.environ.get("CYZ_INDEX_PREFIX") or "cyz")
