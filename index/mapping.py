"""Index templates and mappings shared by the Elasticsearch and OpenSearch engines.

Chinese text is analysed with parts built into both engines: a `mapping` char filter
made from OpenCC's traditional→simplified character table, then the standard
tokenizer, `cjk_width`, `lowercase` and `cjk_bigram`. The same analyser runs on the
original-script fields and on queries, so a Kibana search for 遵義 finds 遵义 and back.
"""

from __future__ import annotations

from functools import cache

ARTICLES = "cyz-articles"  # alias staff and cyz read and write through
EVENTS = "cyz-events"
MAPPING_VERSION = 1  # bump when the mapping below changes; `cyz index migrate` moves data

ANALYZER = "cyz_cjk"


def versioned(alias: str, version: int) -> str:
    return f"{alias}-v{version}"


@cache
def t2s_rules() -> tuple[str, ...]:
    """`mapping` char-filter rules for every Han character OpenCC simplifies (≈4,000)."""
    import opencc

    converter = opencc.OpenCC("t2s")
    rules = []
    ranges = (range(0x3400, 0x4DC0), range(0x4E00, 0xA000), range(0xF900, 0xFB00))
    for block in ranges:
        for code in block:
            char = chr(code)
            simple = converter.convert(char)
            # One BMP character to one: keeps offsets exact for highlighting.
            if simple != char and len(simple) == 1 and ord(simple) < 0x10000:
                rules.append(f"{char} => {simple}")
    return tuple(rules)


def analysis() -> dict:
    return {
        "char_filter": {"cyz_t2s": {"type": "mapping", "mappings": list(t2s_rules())}},
        "analyzer": {
            ANALYZER: {
                "type": "custom",
                "char_filter": ["cyz_t2s"],
                "tokenizer": "standard",
                "filter": ["cjk_width", "lowercase", "cjk_bigram"],
            }
        },
    }


_TEXT = {"type": "text", "analyzer": ANALYZER}
_KEYWORD = {"type": "keyword"}
_DATE = {"type": "date", "format": "strict_date_optional_time||epoch_millis"}

EVENT_PROPERTIES = {
    "type": _KEYWORD,
    "date": {"type": "date", "format": "strict_date_optional_time||yyyy-MM||yyyy", "ignore_malformed": True},
    "date_precision": _KEYWORD,
    "parties": _KEYWORD,
    "places": _KEYWORD,
    "amount_yuan": {"type": "double"},
    "sentence": _TEXT,
    "planned": {"type": "boolean"},
}

ARTICLE_PROPERTIES = {
    "id": _KEYWORD,
    "url": _KEYWORD,
    "source_id": _KEYWORD,
    "source_name": _KEYWORD,
    "source_kind": _KEYWORD,
    "source_region": _KEYWORD,
    "title": {**_TEXT, "fields": {"raw": {"type": "keyword", "ignore_above": 512}}},
    "text": _TEXT,
    "text_truncated": {"type": "boolean"},
    "title_zh": _TEXT,
    "text_zh": _TEXT,
    "published_at": _DATE,
    "crawled_at": _DATE,
    "updated_at": _DATE,
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

# One document per event, with the article's fields Kibana charts need copied in
# (Kibana cannot aggregate nested fields).
EVENT_DOC_PROPERTIES = {
    **EVENT_PROPERTIES,
    "event_id": _KEYWORD,
    "article_id": _KEYWORD,
    "url": _KEYWORD,
    "title": ARTICLE_PROPERTIES["title"],
    "source_id": _KEYWORD,
    "source_name": _KEYWORD,
    "published_at": _DATE,
    "regions": _KEYWORD,
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
            "settings": {"index": _settings(["title", "text", "title_zh", "text_zh"])},
            "mappings": {"dynamic": "false", "properties": ARTICLE_PROPERTIES},
        },
        "_meta": {"cyz_mapping_version": MAPPING_VERSION},
    }


def event_template(alias: str = EVENTS) -> dict:
    return {
        "index_patterns": [f"{alias}-v*"],
        "priority": 100,
        "template": {
            "settings": {"index": _settings(["title", "sentence"])},
            "mappings": {"dynamic": "false", "properties": EVENT_DOC_PROPERTIES},
        },
        "_meta": {"cyz_mapping_version": MAPPING_VERSION},
    }


def index_names(prefix: str = "cyz") -> tuple[str, str]:
    """The article and event aliases for an index prefix (`CYZ_INDEX_PREFIX`, default cyz)."""
    return f"{prefix}-articles", f"{prefix}-events"


def event_documents(record: dict) -> list[dict]:
    """The `cyz-events` documents of one article (ids stable across re-crawls)."""
    regions = [r["name"] for r in record.get("regions") or []]
    docs = []
    for n, event in enumerate(record.get("events") or []):
        docs.append({
            **event,
            "event_id": f"{record['id']}-{n}",
            "article_id": record["id"],
            "url": record["url"],
            "title": record.get("title", ""),
            "source_id": record.get("source_id"),
            "source_name": record.get("source_name"),
            "published_at": record.get("published_at"),
            "regions": regions,
        })
    return docs
