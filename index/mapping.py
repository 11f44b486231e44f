"""Index templates and mappings shared by the Elasticsearch and OpenSearch engines.

Chinese text is analysed with parts built into both engines: a `mapping` char filter
made from OpenCC's traditional→simplified character table, then the standard
tokenizer, `cjk_width`, `lowercase` and `cjk_bigram`. The same analysis runs on the
original-script fields and on queries, so a Kibana search for 遵義 finds 遵义 and back.

Text is indexed with the single characters beside the pairs (`cjk_bigram` with
`output_unigrams`, `INDEX_ANALYZER`) and searched with pairs only (`ANALYZER`): a
one-character word (渝, 黔, 川, 蓉) finds its character, and a phrase's pairs must
still follow each other, so phrases stay exact (checked on the 2.19 node).
"""

from __future__ import annotations

from functools import cache

ARTICLES = "cyz-articles"  # alias staff and cyz read and write through
EVENTS = "cyz-events"
# Bump when the mapping below changes; `cyz index migrate` moves data into a new index.
# 2: single characters indexed beside the pairs (`INDEX_ANALYZER`).
# 3: `text` kept, not analysed (`STORED_TEXT`): searches run on `text_zh`, its simplified
#    copy, which the same analysis indexes once (issue 15: bulk indexing 1.6× faster).
# An articles index carries the version that created it in its mapping's `_meta`
# (`cyz_mapping_version`; none before 3). A bump means `cyz index migrate`.
MAPPING_VERSION = 3
# The events index holds derived data (happenings): when its mapping changes, bump this
# and the engine rebuilds it from the articles (at init when the current mapping cannot
# be applied to the old index, and in `cyz index migrate`). 2: one document per happening.
EVENTS_MAPPING_VERSION = 2

ANALYZER = "cyz_cjk"  # pairs only: queries, Kibana's query bar
INDEX_ANALYZER = "cyz_cjk_index"  # pairs and single characters: documents


def versioned(alias: str, version: int) -> str:
    return f"{alias}-v{version}"


@cache
def t2s_rules() -> tuple[str, ...]:
    """`mapping` char-filter rules for every Han character OpenCC simplifies (≈4,000)."""
    from cyz.text import HAN_CHARS, code_ranges
    from cyz.text import converter as opencc_converter

    converter = opencc_converter("t2s")
    rules = []
    for block in code_ranges(HAN_CHARS):
        for code in block:
            char = chr(code)
            simple = converter.convert(char)
            # One BMP character to one: keeps offsets exact for highlighting.
            if simple != char and len(simple) == 1 and ord(simple) < 0x10000:
                rules.append(f"{char} => {simple}")
    return tuple(rules)


def analysis() -> dict:
    chain = {"type": "custom", "char_filter": ["cyz_t2s"], "tokenizer": "standard"}
    return {
        "char_filter": {"cyz_t2s": {"type": "mapping", "mappings": list(t2s_rules())}},
        "filter": {"cyz_bigram_unigram": {"type": "cjk_bigram", "output_unigrams": True}},
        "analyzer": {
            ANALYZER: {**chain, "filter": ["cjk_width", "lowercase", "cjk_bigram"]},
            INDEX_ANALYZER: {**chain, "filter": ["cjk_width", "lowercase", "cyz_bigram_unigram"]},
        },
    }


_TEXT = {"type": "text", "analyzer": INDEX_ANALYZER, "search_analyzer": ANALYZER}
# The article body in its own script: kept in `_source` and shown, never searched. The
# search fields are `title`, `title_zh` and `text_zh` (the same body simplified: the
# `cyz_t2s` char filter folds traditional text anyway, so analysing both copies only
# doubled the work). Snippets still mark `text`: the highlighter analyses it again
# with the analyzers named here (`require_field_match: false`, cyz.index.dsl).
STORED_TEXT = {**_TEXT, "index": False}
_KEYWORD = {"type": "keyword"}
_BOOLEAN = {"type": "boolean"}
_INTEGER = {"type": "integer"}
_DATE = {"type": "date", "format": "strict_date_optional_time||epoch_millis"}
# An event's own date as precise as the text: a day, a month or a year.
_EVENT_DATE = {"type": "date", "format": "strict_date_optional_time||yyyy-MM||yyyy", "ignore_malformed": True}
_DAY = {"type": "date", "format": "yyyy-MM-dd"}

# The field lists follow `cyz.record` (Event, Article, Report, Happening); the tests
# check that every model field is mapped and nothing else.

# One article's mention of an event (`Event`).
EVENT_PROPERTIES = {
    "type": _KEYWORD,
    "date": _EVENT_DATE,
    "date_end": _EVENT_DATE,
    "date_precision": _KEYWORD,
    "parties": _KEYWORD,
    "places": _KEYWORD,
    "regions": _KEYWORD,
    "amount_yuan": {"type": "double"},
    "amount_approx": _BOOLEAN,
    "count": _INTEGER,
    "sentence": _TEXT,
    "planned": _BOOLEAN,
    "key": _KEYWORD,
    "rule": _KEYWORD,
    "trigger": _KEYWORD,
}

ARTICLE_PROPERTIES = {
    "id": _KEYWORD,
    "url": _KEYWORD,
    "source_id": _KEYWORD,
    "source_name": _KEYWORD,
    "source_kind": _KEYWORD,
    "source_region": _KEYWORD,
    "title": {**_TEXT, "fields": {"raw": {"type": "keyword", "ignore_above": 512}}},
    "text": STORED_TEXT,
    "text_truncated": {"type": "boolean"},
    "title_zh": _TEXT,
    "text_zh": _TEXT,
    "published_at": _DATE,
    "published_from": _KEYWORD,  # which evidence dated the page (a filter for doubtful dates)
    "crawled_at": _DATE,
    "updated_at": _DATE,
    "indexed_at": _DATE,
    "version": {"type": "integer"},
    "gone_at": _DATE,
    "language": _KEYWORD,
    "script": _KEYWORD,
    "origin": _KEYWORD,
    "author": _KEYWORD,
    "editor": _KEYWORD,
    "cluster_id": _KEYWORD,
    "is_first_in_cluster": {"type": "boolean"},
    "regions": {"properties": {"name": _KEYWORD, "count": {"type": "integer"}}},
    "organizations": _KEYWORD,
    "topics": _KEYWORD,
    "relevance": {"type": "float"},
    # nested so Kibana/Discover can filter on one event's type *and* date together
    "events": {"type": "nested", "properties": EVENT_PROPERTIES},
    "event_types": _KEYWORD,
    "pipeline_version": {"type": "integer"},
    "content_hash": _KEYWORD,
}

# One article that told a happening (`Report`). An object, not nested: Kibana can
# aggregate reports.source_id, and no filter needs two fields of one report together.
REPORT_PROPERTIES = {
    "article_id": _KEYWORD,
    "url": _KEYWORD,
    "source_id": _KEYWORD,
    "source_name": _KEYWORD,
    "origin": _KEYWORD,
    "title": _TEXT,
    "published_at": _DATE,
    "cluster_id": _KEYWORD,
    "event_index": _INTEGER,
}

# One document per happening (`Happening`), with the first report's article fields, so
# Kibana's events panels (it cannot aggregate nested fields) share field names with the
# articles': regions.name, event_types, source_id, published_at.
EVENT_DOC_PROPERTIES = {
    "event_id": _KEYWORD,
    "type": _KEYWORD,
    "event_types": _KEYWORD,
    "date": _EVENT_DATE,
    "date_end": _EVENT_DATE,
    "date_precision": _KEYWORD,
    "date_from": _DAY,
    "date_to": _DAY,
    "parties": _KEYWORD,
    "places": _KEYWORD,
    "regions": {"properties": {"name": _KEYWORD}},
    "amount_yuan": {"type": "double"},
    "amount_approx": _BOOLEAN,
    "count": _INTEGER,
    "sentence": _TEXT,
    "planned": _BOOLEAN,
    "key": _KEYWORD,
    "reports": {"properties": REPORT_PROPERTIES},
    "report_count": _INTEGER,
    "outlets": _KEYWORD,
    "first_reported_at": _DATE,
    "article_id": _KEYWORD,
    "url": _KEYWORD,
    "title": ARTICLE_PROPERTIES["title"],
    "source_id": _KEYWORD,
    "source_name": _KEYWORD,
    "published_at": _DATE,
}


def _settings(default_fields: list[str]) -> dict:
    return {
        "number_of_shards": 1,
        "number_of_replicas": 0,
        "refresh_interval": "30s",  # cyz refreshes once at the end of a run
        # A bare-word search in Kibana's query bar hits these fields.
        "query": {"default_field": default_fields},
        "analysis": analysis(),
    }


def article_template(alias: str = ARTICLES) -> dict:
    """Index template for `cyz-articles-v*` (body of PUT _index_template/cyz-articles)."""
    return {
        "index_patterns": [f"{alias}-v*"],
        "priority": 100,
        "template": {
            "settings": {"index": _settings(["title", "title_zh", "text_zh"])},
            "mappings": article_mappings(),
        },
        "_meta": {"cyz_mapping_version": MAPPING_VERSION},
    }


def article_mappings() -> dict:
    """The articles index mappings; `_meta` tells which mapping version made an index."""
    return {"dynamic": "false", "_meta": {"cyz_mapping_version": MAPPING_VERSION},
            "properties": ARTICLE_PROPERTIES}


def event_mappings() -> dict:
    """The events index mappings; `_meta` tells which version made an index."""
    return {"dynamic": "false", "_meta": {"cyz_events_version": EVENTS_MAPPING_VERSION},
            "properties": EVENT_DOC_PROPERTIES}


def event_template(alias: str = EVENTS) -> dict:
    return {
        "index_patterns": [f"{alias}-v*"],
        "priority": 100,
        "template": {
            "settings": {"index": _settings(["title", "sentence"])},
            "mappings": event_mappings(),
        },
        "_meta": {"cyz_mapping_version": MAPPING_VERSION, "cyz_events_version": EVENTS_MAPPING_VERSION},
    }


def index_names(prefix: str = "cyz") -> tuple[str, str]:
    """The article and event aliases for an index prefix (`CYZ_INDEX_PREFIX`, default cyz)."""
    return f"{prefix}-articles", f"{prefix}-events"
