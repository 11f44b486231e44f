"""The one item the crawler yields: the outcome of fetching one article page."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    extra: dict = field(default_factory=dict)


class JsonLinesPipeline:
    """Appends every `PageItem` to the JSON Lines file named by `CYZ_ITEMS_JSONL`
    (body as latin-1 text plus its length), for `cyz sources check` and for tests."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fh = None

    @classmethod
    def from_crawler(cls, crawler: object) -> JsonLinesPipeline:
        from scrapy.exceptions import NotConfigured

        path = crawler.settings.get("CYZ_ITEMS_JSONL")  # type: ignore[attr-defined]
        if not path:
            raise NotConfigured("CYZ_ITEMS_JSONL is not set")
        return cls(path)

    def open_spider(self) -> None:
        self._fh = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - closed below

    def close_spider(self) -> None:
        if self._fh is not None:
            self._fh.close()
            self._fh = None

    def process_item(self, item: PageItem) -> PageItem:
        import json
        from dataclasses import asdict

        row = asdict(item)
        row["body_len"] = len(item.body)
        row["body"] = item.body.decode("latin-1")
        assert self._fh is not None
        # ASCII-only lines: the latin-1 body holds \x85 and friends, which some
        # line splitters (str.splitlines) take for line ends.
        self._fh.write(json.dumps(row) + "\n")
        self._fh.flush()
        return item
