"""The one item the crawler yields: the outcome of fetching one article page."""

from __future__ import annotations

from dataclasses import dataclass

SOURCE_STATS = "cyz/source/"  # per-source counterparts of the run's `cyz/...` stats


def source_stat(source_id: str, key: str) -> str:
    """The per-source stats key of a global one: `cyz/new` → `cyz/source/<id>/new`."""
    return f"{SOURCE_STATS}{source_id}/{key.removeprefix('cyz/')}"


@dataclass
class PageItem:
    """One article page outcome.

    status 200: `body` holds the page as sent (bytes; decoding is the pipeline's job,
    with `http_charset` and `encoding_override` as hints).
    status 304: unchanged since the validators stored in CrawlState; `body` is empty.
    status 404/410: the page is not there; `known_before` says whether CrawlState knew
    it (then it is *gone* and its record must be marked, never deleted).
    """

    source_id: str
    url: str  # final URL, after redirects
    canonical_url: str  # cyz.urls.canonical_url of the requested URL
    status: int
    body: bytes = b""
    http_charset: str | None = None
    content_type: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    fetched_at: str = ""  # ISO 8601, UTC
    depth: int = 0
    encoding_override: str | None = None  # the source's `encoding`, for lying sites
    known_before: bool = False
    discovered_via: str = ""  # list | feed | sitemap | start
    referer: str | None = None
