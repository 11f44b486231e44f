"""Query DSL shared by the Elasticsearch and OpenSearch engines (one body, both engines).

The query tree of `cyz.index.query` becomes a bool query: each OR-group a `should`,
each exclusion a `must_not`, each term a phrase match on the simplified fields (a
Chinese word must match as a contiguous string, as in the embedded engine). Queries are
simplified with the same OpenCC conversion that made `title_zh`/`text_zh`, so the two
never disagree. Results are ordered as `cyz.index.ranking` defines (`best` is a
`function_score`).
"""

from __future__ import annotations

import re

from cyz.index import ranking
from cyz.index.base import SNIPPET_MARK, EventFilters, Filters, SearchRequest
from cyz.index.events import CandidateLookup
from cyz.index.query import Query, Term
from cyz.text import to_simplified

SEARCH_FIELDS = [f"title_zh^{ranking.TITLE_BOOST:g}", "text_zh"]
SNIPPET_CHARS = 120


def term_clause(term: Term, fields: list[str] = SEARCH_FIELDS) -> dict:
    return {"multi_match": {"query": to_simplified(term.text), "type": "phrase", "fields": fields}}


def query_clause(query: Query, fields: list[str] = SEARCH_FIELDS) -> dict:
    """The articles `query` finds; exclusions alone exclude from every article."""
    if query.is_empty:
        return {"match_all": {}}
    must = []
    for group in query.clauses:
        clauses = [term_clause(t, fields) for t in group]
        must.append(clauses[0] if len(clauses) == 1 else
                    {"bool": {"should": clauses, "minimum_should_match": 1}})
    if not query.exclude:
        return {"bool": {"must": must}}
    return {"bool": {"must": must or [{"match_all": {}}],
                     "must_not": [term_clause(t, fields) for t in query.exclude]}}


def highlight_clause(query: Query) -> dict:
    """What snippets mark: the terms that must occur, never an exclusion (searched in
    `text_zh`, marked in `text`)."""
    return query_clause(Query(query.clauses), ["text_zh"])


def filter_clauses(filters: Filters | None) -> list[dict]:
    if filters is None:
        return []
    out: list[dict] = []
    if filters.regions:
        out += region_clauses(filters.regions, filters.regions_all)
    if filters.topics:
        out.append({"terms": {"topics": list(filters.topics)}})
    if filters.cluster_ids:
        out.append({"terms": {"cluster_id": list(filters.cluster_ids)}})
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
    if filters.indexed_since:
        out.append({"range": {"indexed_at": {"gte": filters.indexed_since}}})
    if filters.pipeline_below is not None:
        # a record without a pipeline_version counts as version 0
        out.append({"bool": {"should": [
            {"range": {"pipeline_version": {"lt": int(filters.pipeline_below)}}},
            {"bool": {"must_not": [{"exists": {"field": "pipeline_version"}}]}},
        ], "minimum_should_match": 1}})
    return out


def region_clauses(regions: list[str], every: bool) -> list[dict]:
    """Any of `regions` (one clause), or every one of them (one clause each); each as
    typed or simplified, as records name them."""
    def names(values: list[str]) -> list[str]:
        return sorted({n for r in values for n in (r, to_simplified(r))})

    if every:
        return [{"terms": {"regions.name": names([r])}} for r in regions]
    return [{"terms": {"regions.name": names(regions)}}]


def filtered(query: dict, filters: Filters | None) -> dict:
    clauses = filter_clauses(filters)
    if not clauses:
        return query
    return {"bool": {"must": [query], "filter": clauses}}


# Newest first, undated last, then by id: `date`, and the tie-breaks of the others.
NEWEST = [{"published_at": {"order": "desc", "missing": "_last"}}, {"id": "asc"}]

# `best` (cyz.index.ranking): the sum of three functions replaces the text score.
# Decay functions give a document without the field 1, hence the `exists` filter: an
# undated article gets no recency, as in the embedded engine.
BEST_FUNCTIONS = [
    {"script_score": {"script": {"source": "_score / (_score + params.half)",
                                 "params": {"half": ranking.TEXT_HALF}}},
     "weight": ranking.TEXT_WEIGHT},
    {"field_value_factor": {"field": "relevance", "missing": 0}, "weight": ranking.RELEVANCE_WEIGHT},
    {"filter": {"exists": {"field": "published_at"}},
     "exp": {"published_at": {"origin": "now/d", "scale": f"{ranking.RECENCY_HALF_LIFE:g}d",
                              "decay": 0.5}},
     "weight": ranking.RECENCY_WEIGHT},
]


def best(query: dict) -> dict:
    return {"function_score": {"query": query, "functions": BEST_FUNCTIONS,
                               "score_mode": "sum", "boost_mode": "replace"}}


def search_body(request: SearchRequest) -> dict:
    query = request.query
    scored = query.has_words  # otherwise there is no text score to rank by
    body: dict = {
        "query": filtered(query_clause(query), request.filters),
        "from": request.offset,
        "size": request.limit,
        "track_total_hits": True,
    }
    if request.sort == "best" and scored:
        body["query"] = best(body["query"])
        body["sort"] = ["_score", *NEWEST]
    elif request.sort == "relevance":
        body["sort"] = [{"relevance": {"order": "desc", "missing": "_last"}},
                        *(["_score"] if scored else []), *NEWEST]
    else:  # date, or best with nothing to score
        body["sort"] = list(NEWEST)
    if scored:
        body["track_scores"] = True  # hits carry their score under a field sort too
        # Snippets come from the original-script text; the analyser maps it to
        # simplified tokens, so a simplified query still finds its place there.
        # `text` is not indexed (mapping v3): the highlight query runs on `text_zh` and
        # the highlighter marks the same terms in `text` (`require_field_match: false`).
        body["highlight"] = {
            "pre_tags": [SNIPPET_MARK[0]],
            "post_tags": [SNIPPET_MARK[1]],
            "require_field_match": False,
            "fields": {"text": {
                "highlight_query": highlight_clause(query),
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


# -- happenings (cyz-events) -------------------------------------------------------------

# Newest first: the first day of the event's date, else (undated) the Asia/Shanghai day
# of its first report, as epoch milliseconds; then event_id. The embedded engine orders
# by the same day (its `day_from` column).
EVENT_ORDER_SCRIPT = """
if (doc['date_from'].size() != 0) { return doc['date_from'].value.toInstant().toEpochMilli(); }
if (doc['first_reported_at'].size() != 0) {
  long ms = doc['first_reported_at'].value.toInstant().toEpochMilli() + 28800000L;
  long rest = ms % 86400000L;
  return ms - (rest < 0 ? rest + 86400000L : rest);
}
return -1.0E18;
"""
EVENT_SORT = [
    {"_script": {"type": "number", "order": "desc",
                 "script": {"lang": "painless", "source": EVENT_ORDER_SCRIPT.strip()}}},
    {"event_id": "asc"},
]

_UNDATED = {"bool": {"must_not": [{"exists": {"field": "date_from"}}]}}
_WILDCARD_SPECIAL = re.compile(r"([*?\\])")


def _day_start(day) -> str:
    return f"{day.isoformat()}T00:00:00+08:00"


def _day_end(day) -> str:
    return f"{day.isoformat()}T23:59:59.999+08:00"


def _either(*clauses: dict) -> dict:
    return {"bool": {"should": list(clauses), "minimum_should_match": 1}}


def event_filter_clauses(filters: EventFilters | None) -> list[dict]:
    """`EventFilters` as filter clauses on cyz-events (the same rules as the SQLite engine)."""
    if filters is None:
        return []
    out: list[dict] = []
    if filters.since:
        # the date range reaches the day; an undated happening by its first report's day
        out.append(_either(
            {"range": {"date_to": {"gte": filters.since.isoformat(), "format": "yyyy-MM-dd"}}},
            {"bool": {**_UNDATED["bool"], "filter": [
                {"range": {"first_reported_at": {"gte": _day_start(filters.since)}}}]}},
        ))
    if filters.until:
        out.append(_either(
            {"range": {"date_from": {"lte": filters.until.isoformat(), "format": "yyyy-MM-dd"}}},
            {"bool": {**_UNDATED["bool"], "filter": [
                {"range": {"first_reported_at": {"lte": _day_end(filters.until)}}}]}},
        ))
    if filters.types:
        out.append({"terms": {"type": list(filters.types)}})
    if filters.regions:
        names = sorted({n for r in filters.regions for n in (r, to_simplified(r))})
        out.append({"terms": {"regions.name": names}})
    if filters.party and filters.party.strip():
        text = _WILDCARD_SPECIAL.sub(r"\\\1", to_simplified(filters.party.strip()).lower())
        out.append({"wildcard": {"parties": {"value": f"*{text}*", "case_insensitive": True}}})
    if filters.planned is not None:
        out.append({"terms": {"planned": [bool(filters.planned)]}})
    if filters.source_prefix:
        out.append({"prefix": {"reports.source_id": filters.source_prefix}})
    return out


def events_query(filters: EventFilters | None) -> dict:
    clauses = event_filter_clauses(filters)
    return {"bool": {"filter": clauses}} if clauses else {"match_all": {}}


def events_search_body(filters: EventFilters | None, limit: int, offset: int) -> dict:
    return {"query": events_query(filters), "from": max(0, int(offset)), "size": max(0, int(limit)),
            "sort": EVENT_SORT, "track_total_hits": True}


def candidates_query(lookup: CandidateLookup) -> dict:
    """The stored happenings a batch may touch (`cyz.index.events.CandidateLookup`); one
    bool per event type keeps the clause count low (engines refuse more than 1024)."""
    should: list[dict] = []
    for kind in lookup.types():
        windows: list[dict] = []
        for w in (w for w in lookup.dated if w.type == kind):
            windows.append({"bool": {"filter": [
                {"range": {"date_from": {"lte": w.end.isoformat(), "format": "yyyy-MM-dd"}}},
                {"range": {"date_to": {"gte": w.start.isoformat(), "format": "yyyy-MM-dd"}}},
            ]}})
        for w in (w for w in lookup.reported if w.type == kind):
            windows.append(
                {"range": {"first_reported_at": {"gte": _day_start(w.start), "lte": _day_end(w.end)}}})
        for w in (w for w in lookup.reported_undated if w.type == kind):
            windows.append({"bool": {**_UNDATED["bool"], "filter": [
                {"range": {"first_reported_at": {"gte": _day_start(w.start), "lte": _day_end(w.end)}}},
            ]}})
        should.append({"bool": {"filter": [{"terms": {"type": [kind]}}], "should": windows,
                                "minimum_should_match": 1}})
    if lookup.article_ids:
        should.append({"terms": {"reports.article_id": list(lookup.article_ids)}})
    if lookup.cluster_ids:
        should.append({"terms": {"reports.cluster_id": list(lookup.cluster_ids)}})
    return {"bool": {"should": should, "minimum_should_match": 1}}
