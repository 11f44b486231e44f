"""Fetching one URL outside a crawl (`cyz extract URL`)."""

from __future__ import annotations

import urllib.request

from tenacity import retry, retry_if_exception_type, stop_after_attempt, wait_exponential

from cyz import __version__

MAX_BYTES = 10 * 1024 * 1024
USER_AGENT = f"cyz/{__version__} (+research monitoring)"


class TooLarge(OSError):
    pass


@retry(stop=stop_after_attempt(3), wait=wait_exponential(multiplier=0.5, max=4), reraise=True,
       retry=retry_if_exception_type((TimeoutError, ConnectionError)))
def fetch_url(url: str, timeout: float = 20) -> tuple[bytes, str, str | None]:
    """GET `url`; returns (body, final URL, charset from Content-Type or None)."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read(MAX_BYTES + 1)
        if len(body) > MAX_BYTES:
            raise TooLarge(f"page larger than {MAX_BYTES // 1024 // 1024} MB")
        return body, response.geturl(), response.headers.get_content_charset()
