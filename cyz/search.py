"""Search as a library call, shared by `cyz search` and the demo."""

from __future__ import annotations

from datetime import date

from cyz.index import open_engine
from cyz.index.base import Filters, SearchRequest, SearchResult
from cyz.index.query import parse


def search(query: str, *, regions: list[str] | None = None, sources: list[str] | None = None,
           since: date | None = None, until: date | None = None, limit: int = 10,
           engine=None) -> SearchResult:
    own = engine is None
    engine = engine or open_engine()
    try:
        engine.init()
        filters = Filters(regions=regions or [], sources=sources or [], since=since, until=until)
        return engine.search(SearchRequest(parse(query), filters, limit=limit))
    finally:
        if own:
            engine.close()
