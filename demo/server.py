"""A loopback web server that plays many websites at once, for the demo and the tests.

The crawler reaches real-looking host names (www.zunyi.gov.cn, ...) by sending every
request for a mapped host to this server as an HTTP proxy: plain `http://` URLs arrive
as absolute-URI request lines, `https://` URLs as a CONNECT tunnel that the server
answers with TLS on a throwaway self-signed certificate (Scrapy does not verify
certificates by default). Requests for the loopback address itself can name the site
in the first path segment (`url_for`), so a browser can look at a demo site too.

Static sites live in `sites_dir/<host>/...`; an optional `sites_dir/<host>/_site.yaml`
sets the site's charset (files are written in UTF-8 and transcoded on the way out) and
per-file status overrides. Tests add dynamic routes for fault sites (slow, huge,
looping, failing pages) with `add_route`. Every answer is counted per
(host, path, status) so tests can prove what was and was not requested.
"""

from __future__ import annotations

import email.utils
import hashlib
import mimetypes
import socket
import ssl
import tempfile
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import yaml

LOOPBACK = "127.0.0.1"
# A fixed base date, so Last-Modified is stable for unchanged content across runs.
_EPOCH_BASE = 1_704_067_200  # 2024-01-01T00:00:00Z

_TEXT_SUFFIXES = {".html", ".htm", ".shtml", ".xml"}
_CONTENT_TYPES = {
    ".html": "text/html",
    ".htm": "text/html",
    ".shtml": "text/html",
    ".xml": "application/xml",
    ".txt": "text/plain",
    ".json": "application/json",
    ".gz": "application/x-gzip",
    ".css": "text/css",
    ".js": "application/javascript",
}


@dataclass
class RouteRequest:
    """What a dynamic route handler sees of one request."""

    method: str
    host: str
    path: str
    query: str
    headers: dict[str, str]
    handler: BaseHTTPRequestHandler = field(repr=False)
    body: bytes = field(default=b"", repr=False)  # a POST's body (search APIs in tests)

    def header(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


# A handler returns (status, headers, body) or None when it wrote the response itself.
RouteResult = tuple[int, dict[str, str], bytes] | None
RouteHandler = Callable[[RouteRequest], RouteResult]


@dataclass(frozen=True)
class Served:
    """One answered request, as the log keeps it."""

    method: str
    host: str
    path: str  # path plus "?query" when there was one
    status: int
    headers: dict[str, str]


def etag_for(body: bytes) -> str:
    return '"' + hashlib.sha1(body).hexdigest()[:20] + '"'


def last_modified_for(body: bytes) -> str:
    # Derived from the content: unchanged bytes keep their date, changed bytes move it.
    offset = int(hashlib.sha1(body).hexdigest()[:8], 16) % (365 * 86400)
    return email.utils.formatdate(_EPOCH_BASE + offset, usegmt=True)


_CERT_LOCK = threading.Lock()
_CERT_DIR: Path | None = None
_CERTS: dict[str, tuple[str, str]] = {}


def _cert_for(host: str) -> tuple[str, str]:
    """A self-signed certificate naming `host`, made once per host and process.

    The client does not verify it (Scrapy's default); naming the host keeps the
    client's hostname check from logging a warning for every tunnel."""
    global _CERT_DIR
    with _CERT_LOCK:
        if host not in _CERTS:
            import datetime as dt
            import ipaddress

            from cryptography import x509
            from cryptography.hazmat.primitives import hashes, serialization
            from cryptography.hazmat.primitives.asymmetric import ec
            from cryptography.x509.oid import NameOID

            if _CERT_DIR is None:
                _CERT_DIR = Path(tempfile.mkdtemp(prefix="cyz-tls-"))
            try:
                alt: x509.GeneralName = x509.IPAddress(ipaddress.ip_address(host))
            except ValueError:
                alt = x509.DNSName(host)
            key = ec.generate_private_key(ec.SECP256R1())
            name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host[:64] or "cyz")])
            now = dt.datetime.now(dt.UTC)
            cert = (
                x509.CertificateBuilder()
                .subject_name(name)
                .issuer_name(name)
                .public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - dt.timedelta(days=1))
                .not_valid_after(now + dt.timedelta(days=30))
                .add_extension(x509.SubjectAlternativeName([alt]), critical=False)
                .sign(key, hashes.SHA256())
            )
            stem = hashlib.sha1(host.encode()).hexdigest()[:16]
            cert_path, key_path = _CERT_DIR / f"{stem}.crt", _CERT_DIR / f"{stem}.key"
            cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
            key_path.write_bytes(
                key.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
            _CERTS[host] = (str(cert_path), str(key_path))
        return _CERTS[host]


class _SocketWriter:
    """Unbuffered writer over a (TLS) socket; `sendall` so no write is partial."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock

    def write(self, data: bytes) -> int:
        self._sock.sendall(data)
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    def writable(self) -> bool:
        return True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server
    _tunnel_host: str | None = None

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
        pass  # quiet: the request log is kept in `SiteServer.served`

    def do_CONNECT(self) -> None:  # noqa: N802 - stdlib naming
        host = self.path.rsplit(":", 1)[0].lower()
        self.send_response(200, "Connection established")
        self.send_header("Content-Length", "0")
        self.end_headers()
        self.wfile.flush()
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*_cert_for(host))
        try:
            tls = ctx.wrap_socket(self.connection, server_side=True)
        except (ssl.SSLError, OSError):
            self.close_connection = True
            return
        # The handler's loop goes on reading requests, now from inside the tunnel.
        self.connection = tls
        self.rfile = tls.makefile("rb")
        self.wfile = _SocketWriter(tls)
        self._tunnel_host = host
        self.close_connection = False

    def do_GET(self) -> None:  # noqa: N802
        self._serve(head=False)

    def do_HEAD(self) -> None:  # noqa: N802
        self._serve(head=True)

    def do_POST(self) -> None:  # noqa: N802 - dynamic routes only (tests' search APIs)
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        self._serve(head=False, body=self.rfile.read(length) if length > 0 else b"")

    def _target(self) -> tuple[str, str, str]:
        raw = self.path
        if raw.startswith(("http://", "https://")):
            parts = urlsplit(raw)
            host = parts.hostname or ""
            path, query = parts.path or "/", parts.query
        else:
            host = (self.headers.get("Host") or self._tunnel_host or "").rsplit(":", 1)[0]
            path, _, query = raw.partition("?")
        host = host.lower().rstrip(".")
        if host in (LOOPBACK, "localhost"):
            # Direct browser access: the first path segment names the site.
            first, _, rest = path.lstrip("/").partition("/")
            if first:
                host, path = first.lower(), "/" + rest
        return host, unquote(path) or "/", query

    def _serve(self, head: bool, body: bytes = b"") -> None:
        generation = self.server.site._generation
        host, path, query = self._target()
        logged_path = f"{path}?{query}" if query else path
        headers = {k.lower(): v for k, v in self.headers.items()}
        req = RouteRequest(self.command, host, path, query, headers, self, body)
        try:
            result = self.server.site.respond(req)
        except Exception as exc:  # a broken route must show up as a 500, not a hang
            result = (500, {"Content-Type": "text/plain"}, f"route error: {exc!r}".encode())
        if result is None:  # the route wrote its own answer
            status = getattr(self, "_cyz_status", 200)
            self.server.site._record(
                Served(self.command, host, logged_path, status, headers), generation)
            return
        status, out_headers, body = result
        # Counted before sending, so a client that has read the answer sees it counted.
        self.server.site._record(
            Served(self.command, host, logged_path, status, headers), generation)
        self._send(status, out_headers, body, head)

    def send_response(self, code: int, message: str | None = None) -> None:
        self._cyz_status = code
        super().send_response(code, message)

    def _send(self, status: int, headers: dict[str, str], body: bytes, head: bool) -> None:
        try:
            self.send_response(status)
            names = {k.lower() for k in headers}
            for name, value in headers.items():
                self.send_header(name, value)
            if "content-length" not in names:
                self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not head and body and status not in (204, 304):
                self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            # The client gave up (e.g. a page over its size limit): nothing to answer.
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    # A crawler opens many connections at once; the default backlog of 5 drops SYNs,
    # which a client sees as a connect timeout after the 1 s retransmit.
    request_queue_size = 128
    site: SiteServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # clients that hang up mid-answer are normal here (timeouts, size limits)


class SiteServer:
    """Serve `sites_dir/<host>/...` and dynamic routes on 127.0.0.1, by Host header."""

    def __init__(self, sites_dir: Path | None = None, *, port: int = 0) -> None:
        self.sites_dir = Path(sites_dir) if sites_dir else None
        self._requested_port = port
        self._routes: dict[tuple[str, str], RouteHandler] = {}
        self._prefix_routes: list[tuple[str, str, RouteHandler]] = []
        self._site_conf: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()
        self.served: list[Served] = []
        self.counts: Counter[tuple[str, str, int]] = Counter()
        self._generation = 0
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------
    def start(self) -> SiteServer:
        if self._httpd is not None:
            return self
        httpd = _Server((LOOPBACK, self._requested_port), _Handler)
        httpd.site = self
        self._httpd = httpd
        self._thread = threading.Thread(
            target=httpd.serve_forever, kwargs={"poll_interval": 0.2},
            name=f"SiteServer:{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._httpd is None:
            return
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._httpd = None
        self._thread = None

    def __enter__(self) -> SiteServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._httpd is None:
            raise RuntimeError("SiteServer is not started")
        return self._httpd.server_address[1]

    @property
    def address(self) -> str:
        """`127.0.0.1:PORT`, the value of every entry of a crawler host map."""
        return f"{LOOPBACK}:{self.port}"

    def url_for(self, host: str, path: str = "/") -> str:
        """A URL that reaches `host`'s content directly on loopback (e.g. for a browser)."""
        return f"http://{self.address}/{host}/{path.lstrip('/')}"

    @property
    def hosts(self) -> list[str]:
        """Every host this server plays: site folders plus hosts with dynamic routes."""
        found = {h for h, _ in self._routes} | {h for h, _, _ in self._prefix_routes}
        if self.sites_dir and self.sites_dir.is_dir():
            found |= {p.name.lower() for p in self.sites_dir.iterdir()
                      if p.is_dir() and not p.name.startswith((".", "_"))}
        return sorted(found)

    def host_map(self, hosts: list[str] | None = None) -> dict[str, str]:
        """The crawler's `CYZ_HOST_MAP`: each host → this server's address."""
        return {h: self.address for h in (hosts if hosts is not None else self.hosts)}

    # -- routes and counts -------------------------------------------------------
    def add_route(self, host: str, path: str, handler: RouteHandler | RouteResult) -> None:
        """Answer `host` + `path` dynamically. A path ending in `*` matches as a prefix.

        `handler` is a callable taking a `RouteRequest`, or a fixed (status, headers, body).
        """
        if not callable(handler):
            fixed = handler
            handler = lambda _req: fixed  # noqa: E731
        host = host.lower()
        with self._lock:
            if path.endswith("*"):
                self._prefix_routes.append((host, path[:-1], handler))
            else:
                self._routes[(host, path)] = handler

    def reset_counts(self) -> None:
        """Forget what was served, including answers still in progress (a slow route
        finishing later is not counted against the next test)."""
        with self._lock:
            self._generation += 1
            self.served.clear()
            self.counts.clear()

    def count(self, host: str | None = None, path: str | None = None,
              status: int | None = None) -> int:
        """Requests answered, filtered by host, path (with `?query` if any) and status."""
        with self._lock:
            return sum(n for (h, p, s), n in self.counts.items()
                       if (host is None or h == host) and (path is None or p == path)
                       and (status is None or s == status))

    def requests_for(self, host: str) -> list[Served]:
        with self._lock:
            return [s for s in self.served if s.host == host]

    def _record(self, served: Served, generation: int) -> None:
        with self._lock:
            if generation != self._generation:
                return
            self.served.append(served)
            self.counts[(served.host, served.path, served.status)] += 1

    # -- answering ---------------------------------------------------------------
    def respond(self, req: RouteRequest) -> RouteResult:
        with self._lock:
            handler = self._routes.get((req.host, req.path))
            if handler is None:
                for host, prefix, candidate in self._prefix_routes:
                    if host == req.host and req.path.startswith(prefix):
                        handler = candidate
                        break
        if handler is not None:
            return handler(req)
        return self._static(req)

    def _conf(self, host: str) -> dict[str, Any]:
        if host not in self._site_conf:
            conf: dict[str, Any] = {}
            if self.sites_dir:
                path = self.sites_dir / host / "_site.yaml"
                if path.is_file():
                    conf = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
            self._site_conf[host] = conf
        return self._site_conf[host]

    def _static(self, req: RouteRequest) -> RouteResult:
        if not self.sites_dir or not req.host:
            return _not_found()
        root = (self.sites_dir / req.host).resolve()
        if not root.is_dir():
            return _not_found()
        target = (root / req.path.lstrip("/")).resolve()
        if target != root and root not in target.parents:
            return _not_found()
        if target.is_dir():
            if not req.path.endswith("/"):
                return 301, {"Location": req.path + "/"}, b""
            target = target / "index.html"
        rel = target.relative_to(root).as_posix()
        conf = self._conf(req.host)
        override = (conf.get("files") or {}).get(rel) or {}
        if "status" in override and int(override["status"]) != 200:
            status = int(override["status"])
            headers = {"Content-Type": "text/html; charset=utf-8"}
            if override.get("location"):
                headers["Location"] = override["location"]
            return status, headers, f"<html><body>{status}</body></html>".encode()
        if not target.is_file() or target.name == "_site.yaml":
            return _not_found()
        body = target.read_bytes()
        suffix = target.suffix.lower()
        charset = conf.get("charset")
        ctype = _CONTENT_TYPES.get(suffix) or mimetypes.guess_type(target.name)[0] \
            or "application/octet-stream"
        if suffix == ".xml" and b"<rss" in body[:500]:
            ctype = "application/rss+xml"
        if suffix in _TEXT_SUFFIXES and charset:
            body = body.decode("utf-8").encode(charset, errors="xmlcharrefreplace")
            ctype = f"{ctype}; charset={charset.upper()}"
        elif suffix in _TEXT_SUFFIXES or ctype.startswith("text/"):
            ctype = f"{ctype}; charset=utf-8"
        if override.get("content_type"):
            ctype = override["content_type"]
        return conditional_response(req, body, {"Content-Type": ctype})


def conditional_response(req: RouteRequest, body: bytes,
                         headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    """A 200 with ETag/Last-Modified, or a 304 when the client's validators still hold."""
    etag, modified = etag_for(body), last_modified_for(body)
    headers = {**headers, "ETag": etag, "Last-Modified": modified}
    inm = req.header("if-none-match")
    ims = req.header("if-modified-since")
    if inm is not None:
        tags = {t.strip().removeprefix("W/") for t in inm.split(",")}
        if etag in tags or "*" in tags:
            return 304, {"ETag": etag, "Last-Modified": modified}, b""
    elif ims is not None:
        try:
            since = email.utils.parsedate_to_datetime(ims)
            if since >= email.utils.parsedate_to_datetime(modified):
                return 304, {"ETag": etag, "Last-Modified": modified}, b""
        except (TypeError, ValueError):
            pass
    return 200, headers, body


def _not_found() -> tuple[int, dict[str, str], bytes]:
    return 404, {"Content-Type": "text/html; charset=utf-8"}, b"<html><body>404</body></html>"


def main() -> None:  # pragma: no cover - manual use: python -m cyz.demo.server [DIR]
    import sys
    import time

    sites = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).parent / "sites"
    with SiteServer(sites) as server:
        for host in server.hosts:
            print(server.url_for(host))
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":  # pragma: no cover
    main()
