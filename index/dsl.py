"""Query DSL shared by the Elasticsearch and OpenSearch engines (one body, both engines).

The query tree of `cyz.index.query` becomes a bool query: each OR-group a `should`,
each term a phrase match on the simplified fields (a Chinese word must match as a
contiguous string, as in the embedded engine). Queries are simplified with the same
OpenCC conversion that made `title_zh`/`text_zh`, so the two never disagree.
"""

from __future__ import annotations

from cyz.index.base import SNIPPET_MARK, Filters, SearchRequest
from cyz.index.query import Query, Term
from cyz.pipelines.script import to_simplified

SEARCH_FIELDS = ["title_zh^5", "text_zh"]
SNIPPET_CHARS = 120


def term_clause(term: Term, fields: list[str] = SEARCH_FIELDS) -> dict:
    return {"multi_match": {"query": to_simplified(term.text), "type": "phrase", "fields": fields}}


def query_clause(query: Query, fields: list[str] = SEARCH_FIELDS) -> dict:
    if query.is_empty:
        return {"match_all": {}}
    must = []
    for group in query.clauses:
        clauses = [term_clause(t, fields) for t in group]
        must.append(clauses[0] if len(clauses) == 1 else
                    {"bool": {"should": clauses, "minimum_should_match": 1}})
    return {"bool": {"must": must}}


def filter_clauses(filters: Filters | None) -> list[dict]:
    if filters is None:
        return []
    out: list[dict] = []
    if filters.regions:
        names = sorted({n for r in filters.regions for n in (r, to_simplified(r))})
        out.append({"terms": {"regions.name": names}})
    if filters.sources:
        out.append({"terms": {"source_id": list(filters.sources)}})
    if filters.source_prefix:
        out.append({"prefix": {"source_id": filters.source_prefix}})
    if filters.since or filters.until:
        bounds = {}
        if filters.since:
            bounds["gte"] = f"{filters.since.isoformat()}T00:00:00+08:00"
        if filters.until:
            bounds["lte"] = f"{filters.until.isoformat()}T23:59:59.999+08:00"
        out.append({"range": {"published_at": bounds}})
    return out


def filtered(query: dict, filters: Filters | None) -> dict:
    clauses = filter_clauses(filters)
    if not clauses:
        return query
    return {"bool": {"must": [query], "filter": clauses}}


def search_body(request: SearchRequest) -> dict:
    query = request.query
    body: dict = {
        "query": filtered(query_clause(query), request.filters),
        "from": request.offset,
        "size": request.limit,
        "track_total_hits": True,
    }
    if query.is_empty:
        body["sort"] = [{"published_at": {"order": "desc", "missing": "_last"}}, {"id": "asc"}]
    else:
        body["sort"] = ["_score", {"published_at": {"order": "desc", "missing": "_last"}}]
        # Snippets come from the original-script text; the analyser maps it to
        # simplified tokens, so a simplified query still finds its place there.
        body["highlight"] = {
            "pre_tags": [SNIPPET_MARK[0]],
            "post_tags": [SNIPPET_MARK[1]],
            "fields": {"text": {
                "highlight_query": query_clause(query, ["text"]),
                "fragment_size": SNIPPET_CHARS,
                "number_of_fragments": 1,
            }},
        }
    return body


def count_body(filters: Filters | None) -> dict:
    return {"query": filtered({"match_all": {}}, filters)}


def snippet_from(hit: dict) -> str:
    fragments = (hit.get("highlight") or {}).get("text")
    if fragments:
        return " ".join(fragments[0].split())
    text = " ".join((hit["_source"].get("text") or "").split())
    return text[:SNIPPET_CHARS] + ("…" if len(text) > SNIPPET_CHARS else "")
