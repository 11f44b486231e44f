"""URL canonicalisation: one canonical form per article, so a re-crawl updates its record."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters that identify a campaign or a share, never the page.
_TRACKING = re.compile(
    r"^(utm_\w+|spm|from|source|share_?\w*|isappinstalled|scene|clicktime|enterid|"
    r"wfr|for|timestamp|_t|ref|refer|fbclid|gclid|chksm|mpshare|srcid|sharer_\w+|sessionid)$",
    re.IGNORECASE,
)
# The same article as a mobile/app/PC copy: TRS t20241205_123_app.html / _wap.html,
# 上游新闻 6143485_pc.html.
_COPY_SUFFIX = re.compile(r"(\d)_(?:app|wap|m|pc)(\.s?html?)$")
_INDEX_PAGE = re.compile(r"/index\.(?:s?html?|php|jsp|asp)$")


def canonical_url(url: str) -> str:
    """Normalise a URL: https scheme, lower-case host, no default port, fragment,
    tracking parameters, trailing index page or mobile/app copy suffix."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower().rstrip(".")
    if parts.port and parts.port not in (80, 443):
        host = f"{host}:{parts.port}"
    path = parts.path or "/"
    path = re.sub(r"/{2,}", "/", path)
    path = _INDEX_PAGE.sub("/", path)
    path = _COPY_SUFFIX.sub(r"\1\2", path)
    params = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
              if not _TRACKING.match(k)]
    query = urlencode(sorted(params))
    # http and https copies are the same page; WeChat keeps only the identifying params.
    return urlunsplit(("https", host, path, query, ""))
