"""Load cyz's Kibana saved objects (data views, searches, charts, dashboard) into Kibana.

The objects live as NDJSON beside the packaged config (`cyz.config` → `kibana/*.ndjson`)
and go through Kibana's own import API with `overwrite=true`, so running the import
again after an upgrade replaces them in place (their ids are fixed) instead of adding
copies. Only the standard library is used: one multipart POST per file.

Advanced settings are not saved objects that import well (Kibana keys them by its own
version), so the ones cyz needs (`UI_SETTINGS`: dates shown in Asia/Shanghai) are set
afterwards through Kibana's settings API, `POST /api/kibana/settings`, in the same space.
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import uuid
from importlib import resources
from pathlib import Path
from urllib.error import HTTPError, URLError
from urllib.parse import quote
from urllib.request import Request, urlopen

IMPORT_PATH = "/api/saved_objects/_import?overwrite=true"
SETTINGS_PATH = "/api/kibana/settings"

# Kibana advanced settings applied by every import. The articles' times are stored in UTC;
# staff read them, and type absolute dates into the time picker, in Beijing time.
UI_SETTINGS = {"dateFormat:tz": "Asia/Shanghai"}


class KibanaError(Exception):
    """Kibana refused or failed an import; the message names the URL and Kibana's reason."""


def default_files() -> list[Path]:
    """The saved-object files shipped with cyz, in name order."""
    folder = resources.files("cyz.config") / "kibana"
    return sorted(Path(str(entry)) for entry in folder.iterdir() if entry.name.endswith(".ndjson"))


def env_settings() -> dict:
    """Connection settings from the environment, as keyword arguments of `import_saved_objects`.

    `kibana_url` is None when `CYZ_KIBANA_URL` is unset. Secrets are read here only and
    never printed; callers should not log the returned dict.
    """
    verify = os.environ.get("CYZ_KIBANA_VERIFY", "true").strip().lower()
    return {
        "kibana_url": os.environ.get("CYZ_KIBANA_URL") or None,
        "api_key": os.environ.get("CYZ_KIBANA_API_KEY") or None,
        "username": os.environ.get("CYZ_KIBANA_USER") or None,
        "password": os.environ.get("CYZ_KIBANA_PASSWORD") or None,
        "ca_certs": os.environ.get("CYZ_KIBANA_CA_CERTS") or None,
        "verify": verify not in {"0", "false", "no", "off"},
    }


def _space_base(kibana_url: str, space: str | None) -> str:
    base = kibana_url.rstrip("/")
    if space and space != "default":
        base += "/s/" + quote(space, safe="")
    return base


def import_url(kibana_url: str, space: str | None = None) -> str:
    """The import endpoint, inside `space` when one is named (Kibana's `/s/<space>` prefix)."""
    return _space_base(kibana_url, space) + IMPORT_PATH


def settings_url(kibana_url: str, space: str | None = None) -> str:
    """The advanced-settings endpoint of `space` (settings are per space)."""
    return _space_base(kibana_url, space) + SETTINGS_PATH


def multipart_body(field: str, filename: str, content: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with one file part; returns (body, content type)."""
    boundary = "cyz-" + uuid.uuid4().hex
    head = (
        f"--{boundary}\r\n"
        f'Content-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
        "Content-Type: application/ndjson\r\n\r\n"
    ).encode()
    tail = f"\r\n--{boundary}--\r\n".encode()
    return head + content + tail, f"multipart/form-data; boundary={boundary}"


def _auth_header(api_key: str | None, username: str | None, password: str | None) -> str | None:
    if api_key:
        return f"ApiKey {api_key}"
    if username:
        token = base64.b64encode(f"{username}:{password or ''}".encode()).decode("ascii")
        return f"Basic {token}"
    return None


def _ssl_context(ca_certs: str | None, verify: bool) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=ca_certs)
    if not verify:
        # The operator asked for it (self-signed test setups); never the default.
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _kibana_message(body: bytes) -> str:
    """Kibana's own explanation from an error body, falling back to the raw text."""
    text = body.decode("utf-8", "replace").strip()
    try:
        data = json.loads(text)
    except ValueError:
        return text[:500] or "(empty response)"
    if isinstance(data, dict):
        parts = [str(data[key]) for key in ("error", "message") if data.get(key)]
        if parts:
            return ": ".join(parts)
    return text[:500]


def _describe_errors(errors: list) -> str:
    lines = []
    for error in errors[:10]:
        detail = error.get("error") or {}
        reason = detail.get("message") or detail.get("type") or json.dumps(detail, ensure_ascii=False)
        lines.append(f"{error.get('type')} {error.get('id')}: {reason}")
    if len(errors) > 10:
        lines.append(f"... and {len(errors) - 10} more")
    return "; ".join(lines)


def import_saved_objects(
    kibana_url: str,
    files: list[Path],
    *,
    api_key: str | None = None,
    username: str | None = None,
    password: str | None = None,
    ca_certs: str | None = None,
    verify: bool = True,
    space: str | None = None,
    timeout: float = 30,
    ui_settings: dict | None = None,
) -> dict:
    """Import each NDJSON file through Kibana's saved-objects API, overwriting same ids,
    then set the advanced settings `ui_settings` (default `UI_SETTINGS`; `{}` sets none).

    Returns `{"success": True, "successCount": N, "errors": [], "files": [per-file summary],
    "settings": {applied settings}}`.
    Raises `KibanaError` on a connection failure, an HTTP error or a response with
    `success: false` (e.g. a missing reference), naming the URL and Kibana's message.
    """
    if ui_settings is None:
        ui_settings = UI_SETTINGS
    url = import_url(kibana_url, space)
    headers = {"kbn-xsrf": "true", "Accept": "application/json"}
    auth = _auth_header(api_key, username, password)
    if auth:
        headers["Authorization"] = auth
    context = _ssl_context(ca_certs, verify) if url.startswith("https:") else None

    summaries = []
    for path in files:
        path = Path(path)
        body, content_type = multipart_body("file", path.name, path.read_bytes())
        request = Request(url, data=body, method="POST",
                          headers={**headers, "Content-Type": content_type})
        raw = _send(request, url, f"import of {path.name}", timeout, context)
        try:
            summary = json.loads(raw)
        except ValueError:
            raise KibanaError(
                f"Kibana at {url} answered the import of {path.name} with non-JSON: {raw[:200]!r}"
            ) from None
        if not summary.get("success"):
            raise KibanaError(
                f"Kibana at {url} rejected {path.name}: "
                f"{_describe_errors(summary.get('errors') or []) or 'success: false'}"
            )
        summaries.append({"file": str(path), **summary})

    if ui_settings:
        target = settings_url(kibana_url, space)
        body = json.dumps({"changes": ui_settings}).encode()
        request = Request(target, data=body, method="POST",
                          headers={**headers, "Content-Type": "application/json"})
        _send(request, target, "settings change", timeout, context)

    return {
        "success": True,
        "successCount": sum(s.get("successCount", 0) for s in summaries),
        "errors": [e for s in summaries for e in s.get("errors") or []],
        "files": summaries,
        "settings": dict(ui_settings),
    }


def _send(request: Request, url: str, what: str, timeout: float,
          context: ssl.SSLContext | None) -> bytes:
    """The response body of `request`; `KibanaError` naming `url` and Kibana's reason."""
    try:
        with urlopen(request, timeout=timeout, context=context) as response:
            return response.read()
    except HTTPError as error:
        message = _kibana_message(error.read())
        raise KibanaError(f"Kibana {what} at {url} failed: HTTP {error.code}: {message}") from None
    except (URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise KibanaError(f"cannot reach Kibana at {url}: {reason}") from None
