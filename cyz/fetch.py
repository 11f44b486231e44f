"""Fetching one URL outside a crawl (`cyz extract URL`).

The rules of the crawl hold here too: a redirect may not leave the URL's own host (or
its subdomains), and a private, loopback or link-local address is refused unless the
caller allows it. The address is checked when the connection is made, on the address
the socket then connects to, so a second DNS answer cannot slip past the check.
"""

from __future__ import annotations

import http.client
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from cyz import __version__
from cyz.urls import host_allowed, is_private_address, is_private_host

MAX_BYTES = 10 * 1024 * 1024
USER_AGENT = f"cyz/{__version__} (+research monitoring)"


class TooLarge(OSError):
    pass


class OffHostRedirect(OSError):
    """The page redirects to another host."""


class PrivateAddress(OSError):
    """The URL's host is, or resolves to, a private/loopback/link-local address."""


def _connect_public(address: tuple[str, int], timeout: Any = socket._GLOBAL_DEFAULT_TIMEOUT,
                    source_address: tuple[str, int] | None = None) -> socket.socket:
    """`socket.create_connection`, refusing a host with any private address and
    connecting to exactly the addresses checked."""
    host, port = address
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    for *_, sockaddr in infos:
        if is_private_address(sockaddr[0].split("%", 1)[0]):
            raise PrivateAddress(f"{host} resolves to private address {sockaddr[0]}")
    error: OSError | None = None
    for family, type_, proto, _, sockaddr in infos:
        sock = socket.socket(family, type_, proto)
        try:
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error or OSError(f"cannot connect to {host}")


def _guarded(connection_class: type[http.client.HTTPConnection], req: urllib.request.Request,
             allow_private: bool) -> Callable[..., http.client.HTTPConnection]:
    # Through a proxy the socket goes to the proxy (the operator's choice), which
    # resolves the name itself: only the URL's written host was checked (fetch_url).
    proxied = req.has_proxy() or getattr(req, "_tunnel_host", None)

    def make(host: str, **kwargs: Any) -> http.client.HTTPConnection:
        conn = connection_class(host, **kwargs)
        if not (allow_private or proxied):
            conn._create_connection = _connect_public
        return conn

    return make


class _HTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, allow_private: bool) -> None:
        super().__init__()
        self.allow_private = allow_private

    def http_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_guarded(http.client.HTTPConnection, req, self.allow_private), req)


class _HTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, allow_private: bool) -> None:
        super().__init__()
        self.allow_private = allow_private

    def https_open(self, req: urllib.request.Request) -> Any:
        return self.do_open(_guarded(http.client.HTTPSConnection, req, self.allow_private), req,
                            context=self._context)


class _SameHostRedirects(urllib.request.HTTPRedirectHandler):
    def __init__(self, host: str) -> None:
        self.host = host

    def redirect_request(self, req: urllib.request.Request, fp: Any, code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        target = urlsplit(newurl)
        if target.scheme not in ("http", "https") or not host_allowed(target.hostname or "",
                                                                      [self.host]):
            raise OffHostRedirect(f"redirect to {newurl} leaves {self.host}")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


@retry(stop=stop_after_attempt(3), wait=wait_exponential(multiplier=0.5, max=4), reraise=True,
       retry=retry_if_exception_type((TimeoutError, ConnectionError)))
def fetch_url(url: str, timeout: float = 20, *, allow_private: bool = False
              ) -> tuple[bytes, str, str | None]:
    """GET `url`; returns (body, final URL, charset from Content-Type or None).

    Raises OffHostRedirect for a redirect off the URL's host, PrivateAddress for a
    private address unless `allow_private`, TooLarge past 10 MB, OSError otherwise."""
    host = (urlsplit(url).hostname or "").lower()
    if not allow_private and is_private_host(host):
        raise PrivateAddress(f"{host} is a private address")
    opener = urllib.request.build_opener(
        _HTTPHandler(allow_private), _HTTPSHandler(allow_private), _SameHostRedirects(host))
    # Chinese sites write Chinese in paths and queries; HTTP wants them percent-encoded.
    url = quote(url, safe=":/?#[]@!$&'()*+,;=%~")
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        with opener.open(request, timeout=timeout) as response:
            body = response.read(MAX_BYTES + 1)
            if len(body) > MAX_BYTES:
                raise TooLarge(f"page larger than {MAX_BYTES // 1024 // 1024} MB")
            return body, response.geturl(), response.headers.get_content_charset()
    except urllib.error.URLError as exc:
        # urllib wraps what the connection raised; ours say what they mean as they are.
        if isinstance(exc.reason, PrivateAddress | OffHostRedirect):
            raise exc.reason from None
        raise
