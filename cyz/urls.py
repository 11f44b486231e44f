"""URLs: one canonical form per article (so a re-crawl updates its record), the clean
spelling a record keeps, source URL patterns in linear time, and which hosts are
private.

Only parameters known to track a campaign or a share are dropped: `?source=101`,
`?ref=2`, `?from=xyz` or `?_t=...` can be what tells two pages apart on some site, so they
stay unless the source names them (`tracking_params`).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from urllib.parse import parse_qsl, unquote_plus, urlencode, urlsplit, urlunsplit

import re2

# Query parameters that identify a campaign, a share or a session, never the page.
TRACKING_PARAMS = frozenset({
    "spm", "spm_id_from", "isappinstalled", "scene", "subscene", "fbclid", "gclid",
    "yclid", "msclkid", "mpshare", "clicktime", "enterid", "wfr", "chksm", "srcid",
    "sessionid",
})
TRACKING_PREFIXES = ("utm_", "share_", "sharer_")
# `from` names a page on some sites; these values are WeChat's share markers only.
TRACKING_FROM = frozenset({"singlemessage", "timeline", "groupmessage"})

# The same article as a mobile/app/PC copy: TRS t20241205_123_app.html / _wap.html,
# 上游新闻 6143485_pc.html.
_COPY_SUFFIX = re.compile(r"(\d)_(?:app|wap|m|pc)(\.s?html?)$")
_INDEX_PAGE = re.compile(r"/index\.(?:s?html?|php|jsp|asp)$")


def is_tracking_param(name: str, value: str = "", extra: Iterable[str] = ()) -> bool:
    """Whether query parameter `name=value` only tracks (built-in list plus `extra`
    names, compared case-insensitively)."""
    key = name.lower()
    if key == "from":
        return value.lower() in TRACKING_FROM or "from" in _lower(extra)
    return key in TRACKING_PARAMS or key.startswith(TRACKING_PREFIXES) or key in _lower(extra)


def _lower(names: Iterable[str]) -> frozenset[str]:
    return names if isinstance(names, frozenset) else frozenset(n.lower() for n in names)


def canonical_url(url: str, tracking_params: Iterable[str] = ()) -> str:
    """Normalise a URL: https scheme, lower-case host, no default port, fragment,
    tracking parameters (built-in plus the source's `tracking_params`), trailing index
    page or mobile/app copy suffix; the remaining parameters sorted."""
    extra = _lower(tracking_params)
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().rstrip(".")
    if parts.port and parts.port not in (80, 443):
        host = f"{host}:{parts.port}"
    path = parts.path or "/"
    path = re.sub(r"/{2,}", "/", path)
    path = _INDEX_PAGE.sub("/", path)
    path = _COPY_SUFFIX.sub(r"\1\2", path)
    params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
              if not is_tracking_param(k, v, extra)]
    query = urlencode(sorted(params))
    # http and https copies are the same page; WeChat keeps only the identifying params.
    return urlunsplit(("https", host, path, query, ""))


def clean_url(url: str, tracking_params: Iterable[str] = ()) -> str:
    """`url` without its fragment and tracking parameters, otherwise exactly as written
    (scheme, host, path, and the order and encoding of the other parameters): what the
    crawl requests and what a record keeps, whichever spelling of a page came first."""
    extra = _lower(tracking_params)
    parts = urlsplit(url.strip())
    kept = []
    for field in parts.query.split("&") if parts.query else ():
        name, _, value = field.partition("=")
        if field and not is_tracking_param(unquote_plus(name), unquote_plus(value), extra):
            kept.append(field)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "&".join(kept), ""))


# -- URL patterns ------------------------------------------------------------------------

_RE2_OPTIONS = re2.Options()
_RE2_OPTIONS.log_errors = False  # the error comes back as an exception; no stderr noise


def url_pattern(pattern: str) -> re2._Regexp:
    """Compile a source URL pattern with RE2, whose matching time is linear in the URL:
    a pattern like `/(\\w+)+\\.html$` cannot freeze the crawl as it does in Python's `re`.
    RE2 has no backreferences or lookarounds; such a pattern raises ValueError."""
    try:
        return re2.compile(pattern, _RE2_OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else exc
        if isinstance(reason, bytes):
            reason = reason.decode("utf-8", "replace")
        raise ValueError(f"bad regex {pattern!r}: {reason} (RE2 syntax: no backreferences "
                         "or lookarounds)") from None


# -- hosts ---------------------------------------------------------------------------------

def host_allowed(host: str, domains: Iterable[str]) -> bool:
    """Whether `host` is one of `domains` or a subdomain of one; an IP address only
    matches itself (`0.1` must not admit `127.0.0.1`)."""
    host = host.lower().rstrip(".")
    if ip_literal(host) is not None:
        return any(host == d.lower().strip("[]") for d in domains)
    return any(host == d or host.endswith("." + d) for d in (d.lower() for d in domains))


def ip_literal(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address a host written as an IP literal stands for, else None."""
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


def is_private_address(address: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Private, loopback, link-local (169.254.169.254: cloud metadata), reserved,
    multicast or unspecified: addresses a crawl of public sites has no business with."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_reserved
            or ip.is_multicast or ip.is_unspecified)


def is_local_name(host: str) -> bool:
    """`localhost` and its subdomains, which resolve to loopback by definition (RFC 6761)."""
    host = host.lower().rstrip(".")
    return host == "localhost" or host.endswith(".localhost")


def is_private_host(host: str) -> bool:
    """Whether a host is *written* as a private address (an IP literal in a private
    range, or localhost), without resolving it."""
    ip = ip_literal(host)
    return is_local_name(host) if ip is None else is_private_address(ip)
