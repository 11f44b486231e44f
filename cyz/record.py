"""The article record: what every pipeline stage fills in and every engine stores.

Records travel as plain dicts (JSON keys as DESIGN.md lists them) so that they pass
between processes and into engines without conversion; `Article` documents and
validates the shape where a boundary needs it.
"""

from __future__ import annotations

import hashlib

from pydantic import BaseModel, Field

# Bump when the per-page pipeline changes what it produces; `cyz reextract` and the
# incremental crawl use it to decide which stored records are stale.
PIPELINE_VERSION = 1

# The stored body text stops here (a 9 MB page once made a 3.2 M-character record);
# `text_truncated` says so on the record.
TEXT_LIMIT = 200_000


class RegionCount(BaseModel):
    name: str
    count: int


class Event(BaseModel):
    type: str
    date: str | None = None
    date_precision: str | None = None
    parties: list[str] = Field(default_factory=list)
    places: list[str] = Field(default_factory=list)
    amount_yuan: float | None = None
    sentence: str = ""
    planned: bool = False


class Article(BaseModel):
    id: str
    url: str
    source_id: str
    source_name: str = ""
    source_kind: str = ""
    source_region: str = ""
    title: str = ""
    text: str = ""
    text_truncated: bool = False  # `text` (and `text_zh`) stop at TEXT_LIMIT characters
    title_zh: str = ""
    text_zh: str = ""
    published_at: str | None = None
    crawled_at: str | None = None
    # When the article's title or text last changed (the first crawl's `crawled_at` until
    # it does); `version` counts those contents: 1 for a new article, +1 per change.
    updated_at: str | None = None
    version: int = 1
    gone_at: str | None = None
    language: str | None = None
    script: str | None = None
    origin: str | None = None
    author: str | None = None
    editor: str | None = None
    cluster_id: str | None = None
    is_first_in_cluster: bool = True
    regions: list[RegionCount] = Field(default_factory=list)
    organizations: list[str] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)
    relevance: float = 0.0
    events: list[Event] = Field(default_factory=list)
    event_types: list[str] = Field(default_factory=list)
    pipeline_version: int = PIPELINE_VERSION
    content_hash: str | None = None


def article_id(canonical_url: str) -> str:
    """Stable id of an article: a hash of its canonical URL."""
    return hashlib.sha1(canonical_url.encode("utf-8")).hexdigest()[:20]
