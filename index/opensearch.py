"""OpenSearch 2 engine: the shared `SearchEngine` over the `opensearch-py` client.

Configured from the environment only: `CYZ_OPENSEARCH_URL`, `CYZ_OPENSEARCH_USER` and
`CYZ_OPENSEARCH_PASSWORD`, `CYZ_OPENSEARCH_CA_CERTS`, `CYZ_OPENSEARCH_VERIFY_CERTS`. The
admin commands (`cyz index init`, `cyz index migrate`) log in as
`CYZ_OPENSEARCH_ADMIN_USER`/`CYZ_OPENSEARCH_ADMIN_PASSWORD` when set.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from cyz.config import ConfigError
from cyz.index.elasticsearch import _flag
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


class OpenSearchClient(Client):
    name = "opensearch"

    def __init__(self, client, options: dict | None = None):
        self.os = client
        self.options = options or {}  # what `from_env` made the client with
        self.once = None

    url_setting = "CYZ_OPENSEARCH_URL"
    user_settings = "CYZ_OPENSEARCH_USER/CYZ_OPENSEARCH_PASSWORD"
    admin_settings = "CYZ_OPENSEARCH_ADMIN_USER/CYZ_OPENSEARCH_ADMIN_PASSWORD"

    @classmethod
    def from_env(cls, environ: dict | None = None, *, admin: bool = False) -> OpenSearchClient:
        """A client with the normal login, or with `admin` the admin login when it is set."""
        from opensearchpy import OpenSearch

        env = os.environ if environ is None else environ
        url = env.get("CYZ_OPENSEARCH_URL")
        if not url:
            raise ConfigError("CYZ_ENGINE=opensearch needs CYZ_OPENSEARCH_URL (e.g. http://localhost:9200)")
        options: dict = {"timeout": 30, "retry_on_timeout": True, "max_retries": 2}
        use_admin = admin and bool(env.get("CYZ_OPENSEARCH_ADMIN_USER"))
        user = "CYZ_OPENSEARCH_ADMIN_USER" if use_admin else "CYZ_OPENSEARCH_USER"
        password = user.replace("_USER", "_PASSWORD")
        credentials = None
        if env.get(user):
            options["http_auth"] = (env[user], env.get(password, ""))
            credentials = f"{user}/{password}"
        if env.get("CYZ_OPENSEARCH_CA_CERTS"):
            options["ca_certs"] = env["CYZ_OPENSEARCH_CA_CERTS"]
        if url.startswith("https"):
            options["verify_certs"] = _flag(env.get("CYZ_OPENSEARCH_VERIFY_CERTS"))
        client = cls(OpenSearch([url], **options), options)
        client.url, client.credentials, client.admin = url, credentials, use_admin
        return client

    def request(self, method: str, path: str, body: object = None,
                params: dict | None = None, retry: bool = True) -> dict:
        from opensearchpy import ConnectionError as OsConnectionError
        from opensearchpy import SSLError, TransportError

        transport = self.os.transport if retry else self._once().transport
        try:
            result = transport.perform_request(method, path, params=params, body=body)
        except SSLError as exc:
            raise EngineMisconfigured(f"{method} {path}: TLS verification failed ({exc}); set "
                                      "CYZ_OPENSEARCH_CA_CERTS to the cluster's CA") from None
        except OsConnectionError as exc:  # includes timeouts
            raise EngineUnavailable(f"{method} {path}: {exc}") from None
        except TransportError as exc:
            status = exc.status_code if isinstance(exc.status_code, int) else 0
            if status in (401, 403):  # the security plugin's 401 body is plain text
                body = exc.info if exc.info is not None else exc.error
                raise self.denied(status, body, f"{method} {path}") from None
            raise ApiError(status, exc.info, f"{method} {path}") from None
        return result if isinstance(result, dict) else {}

    def _once(self):
        """A second client of the same options that never retries a request."""
        if self.once is None:
            from opensearchpy import OpenSearch

            self.once = OpenSearch([self.url], **{**self.options, "max_retries": 0,
                                                  "retry_on_timeout": False})
        return self.once

    def bulk(self, actions: Iterable[dict]) -> Iterator[BulkFailure]:
        from opensearchpy import ConnectionError as OsConnectionError
        from opensearchpy import SSLError
        from opensearchpy.helpers import streaming_bulk

        try:
            for _ok, item in streaming_bulk(self.os, actions, **BULK_OPTIONS):
                yield bulk_failure(item)
        except SSLError as exc:
            raise EngineMisconfigured(f"bulk: TLS verification failed ({exc})") from None
        except OsConnectionError as exc:
            raise EngineUnavailable(f"bulk: {exc}") from None

    def close(self) -> None:
        self.os.close()
        if self.once is not None:
            self.once.close()


def open_opensearch(data_dir: Path, admin: bool = False) -> SearchEngine:
    return SearchEngine(OpenSearchClient.from_env(admin=admin), data_dir,
                        os.environ.get("CYZ_INDEX_PREFIX") or "cyz")
