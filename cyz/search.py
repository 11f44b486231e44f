"""Search as a library call, shared by `cyz search` and the demo.

`search()` runs one query with its filters and sort; with `reprints=True` it also looks
up every stored copy of the reprint clusters it found, so a caller can show one entry
per story (`Found.stories()`) and each article's `cluster_size`. The resolvers below
turn what a user typed for `--region` and `--topic` into the gazetteer's names and the
topic ids that records carry.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

from cyz.config import TopicFile
from cyz.index import open_engine
from cyz.index.base import SORTS, Filters, Hit, SearchRequest, SearchResult
from cyz.index.query import QueryError, parse
from cyz.text import to_simplified

__all__ = ["SORTS", "Found", "QueryError", "Story", "resolve_regions", "resolve_topics",
           "search", "stored_source_ids"]


@dataclass
class Story:
    """One story: the best-ranked copy that matched and every stored copy of it."""

    lead: Hit
    copies: list[dict]  # the lead's record first, then the other copies, oldest first

    @property
    def reprints(self) -> list[dict]:
        return self.copies[1:]

    def reprint_names(self) -> list[str]:
        """The other copies' outlets: 来源 (`origin`) else the site, each once."""
        return list(dict.fromkeys(outlet(c) for c in self.reprints))


def outlet(record: dict) -> str:
    return record.get("origin") or record.get("source_name") or record.get("source_id") or "?"


@dataclass
class Found(SearchResult):
    """A SearchResult, with the stored copies of its reprint clusters when asked for."""

    copies: dict[str, list[dict]] = field(default_factory=dict)  # cluster_id -> records

    def cluster_size(self, record: dict) -> int:
        """How many stored copies the record's story has (1 when it stands alone)."""
        cluster = record.get("cluster_id")
        if not cluster or cluster not in self.copies:
            return 1
        return max(1, len(self.copies[cluster]))

    def stories(self) -> list[Story]:
        """The hits grouped by reprint cluster, in rank order of each story's best hit."""
        out: list[Story] = []
        seen: set[str] = set()
        for hit in self.hits:
            record = hit.record
            cluster = record.get("cluster_id")
            if cluster and cluster in seen:
                continue
            if cluster:
                seen.add(cluster)
            others = [c for c in self.copies.get(cluster or "", []) if c["id"] != record["id"]]
            out.append(Story(hit, [record, *others]))
        return out


def search(query: str, *, regions: list[str] | None = None, regions_all: bool = False,
           topics: list[str] | None = None, sources: list[str] | None = None,
           since: date | None = None, until: date | None = None, limit: int = 10,
           sort: str = "best", reprints: bool = False, engine=None) -> Found:
    """Run `query` (the syntax of `cyz.index.query`; QueryError when it can mean nothing
    or is too long) with its filters, best hits first by `sort` (best | relevance |
    date). `regions` any of them, or every one with `regions_all`; `topics` topic ids.
    With `reprints`, `Found.copies` holds every stored copy of the clusters found."""
    if sort not in SORTS:
        raise ValueError(f"sort {sort!r}: one of {', '.join(SORTS)}")
    parsed = parse(query)  # before the engine opens: a bad query costs nothing
    own = engine is None
    engine = engine or open_engine()
    try:
        engine.init()
        filters = Filters(regions=list(regions or []), regions_all=regions_all,
                          topics=list(topics or []), sources=list(sources or []),
                          since=since, until=until)
        result = engine.search(SearchRequest(parsed, filters, limit=limit, sort=sort))
        copies = cluster_copies(engine, [h.record for h in result.hits]) if reprints else {}
        return Found(result.total, result.hits, copies)
    finally:
        if own:
            engine.close()


def cluster_copies(engine, records: Iterable[dict]) -> dict[str, list[dict]]:
    """Every stored copy of the records' reprint clusters, oldest first per cluster."""
    wanted = list(dict.fromkeys(r["cluster_id"] for r in records if r.get("cluster_id")))
    if not wanted:
        return {}
    copies: dict[str, list[dict]] = {c: [] for c in wanted}
    for record in engine.iter_records(Filters(cluster_ids=wanted)):
        if record.get("cluster_id") in copies:  # an engine that ignored the filter
            copies[record["cluster_id"]].append(record)
    for members in copies.values():
        members.sort(key=lambda r: (r.get("published_at") or "", r["id"]))
    return copies


def stored_source_ids(engine) -> set[str]:
    """The source ids that have records in the index (a source removed from the config
    keeps its records, and the demo's sources are not in the config)."""
    return set(engine.newest_by_source())


# -- what the user typed for --region and --topic -------------------------------------

_SUFFIXES = ("区", "县", "市")


def _gazetteer(topic: TopicFile) -> tuple[set[str], dict[str, str]]:
    """(every gazetteer name, {another way to write one: the name})."""
    names: set[str] = set()
    aliases: dict[str, str] = {}
    entries = [(r.name, r.aliases) for r in topic.regions]
    entries += [(p.name, p.aliases) for r in topic.regions for p in r.places]
    for name, others in entries:
        names.add(name)
        for alias in others:
            aliases.setdefault(alias, name)
    short: dict[str, set[str]] = {}
    for name in names:
        if len(name) > 2 and name.endswith(_SUFFIXES):
            short.setdefault(name[:-1], set()).add(name)
    for stem, full in short.items():
        if len(full) == 1 and stem not in names:  # 汇川 → 汇川区; never an ambiguous stem
            aliases.setdefault(stem, next(iter(full)))
    return names, aliases


def resolve_regions(values: Iterable[str], topic: TopicFile
                    ) -> tuple[list[str], dict[str, list[str]]]:
    """The gazetteer names for what was typed (a name, an alias, a name without 区/县/市,
    traditional or simplified), and {unknown value: the closest gazetteer names}.
    An unknown value is kept as typed, so it still filters (and finds nothing)."""
    names, aliases = _gazetteer(topic)
    resolved: list[str] = []
    unknown: dict[str, list[str]] = {}
    for value in values:
        text = value.strip()
        simple = to_simplified(text)
        for candidate in (text, simple):
            if candidate in names:
                resolved.append(candidate)
                break
            if candidate in aliases:
                resolved.append(aliases[candidate])
                break
        else:
            resolved.append(text)
            unknown[value] = closest_regions(simple, names, aliases)
    return list(dict.fromkeys(resolved)), unknown


def closest_regions(text: str, names: set[str], aliases: dict[str, str], n: int = 5) -> list[str]:
    """Gazetteer names that look like `text`: names containing it or contained in it,
    then the nearest by difflib (汇川县 → 汇川区)."""
    spelled = sorted(names | set(aliases))
    near = [s for s in spelled if text and (text in s or (len(s) > 1 and s in text))]
    near += difflib.get_close_matches(text, spelled, n=n, cutoff=0.5)
    out = [aliases.get(s, s) for s in near]
    return list(dict.fromkeys(out))[:n]


def resolve_topics(values: Iterable[str], topic: TopicFile) -> list[str]:
    """Topic ids for what was typed: an id (any case) or its Chinese name (traditional
    too). ValueError naming the known topics for anything else."""
    by_key: dict[str, str] = {}
    for t in topic.topics:
        by_key[t.id.lower()] = t.id
        by_key[t.name] = t.id
    ids = []
    for value in values:
        text = value.strip()
        found = by_key.get(text.lower()) or by_key.get(to_simplified(text))
        if found is None:
            known = ", ".join(f"{t.id} ({t.name})" for t in topic.topics)
            raise ValueError(f"no topic {value!r}; known: {known}")
        ids.append(found)
    return list(dict.fromkeys(ids))


def topic_labels(topic: TopicFile) -> dict[str, str]:
    """{topic id: its Chinese name}, what users read."""
    return {t.id: t.name for t in topic.topics}
