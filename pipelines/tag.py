"""Tagging: which places of the gazetteer an article names, its topics and its relevance.

Matching runs on the simplified copy (`title_zh` + `text_zh`), so traditional pages are
tagged like simplified ones. One regex alternation, longest name first, counts each
mention once: 汇川区 is one mention of 汇川区 (and so of 遵义), never also of a shorter name.
"""

from __future__ import annotations

import re
from collections import Counter
from functools import cache
from pathlib import Path

from cyz.config import TopicFile, load_topic
from cyz.paths import config_dir


class Tagger:
    def __init__(self, topic: TopicFile):
        self.topic = topic
        # surface string -> the region names it counts toward (a place: itself and its city)
        self._targets: dict[str, tuple[str, ...]] = {}
        self._compounds = set(topic.compounds)
        for region in topic.regions:
            for alias in [region.name, *region.aliases]:
                self._targets[alias] = (region.name,)
            for place in region.places:
                for alias in [place.name, *place.aliases]:
                    self._targets[alias] = (place.name, region.name)
        for compound, parts in topic.compounds.items():
            self._targets[compound] = tuple(parts)
        names = sorted(self._targets, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, names)))
        self._topics = [
            (t.id, re.compile("|".join(map(re.escape, sorted(t.keywords, key=len, reverse=True)))))
            for t in topic.topics
            if t.keywords
        ]
        self._order = {r.name: i for i, r in enumerate(topic.regions)}

    def regions(self, text: str) -> list[dict]:
        """Places named in `text` with mention counts, most mentioned first."""
        counts: Counter[str] = Counter()
        for match in self._pattern.finditer(text):
            for name in self._targets[match.group(0)]:
                counts[name] += 1
        return [{"name": n, "count": c} for n, c in
                sorted(counts.items(), key=lambda kv: (-kv[1], self._order.get(kv[0], 99), kv[0]))]

    def mentions(self, text: str) -> list[tuple[str, str | None, tuple[str, ...]]]:
        """Each gazetteer name in `text`, in order: (as written, the canonical place or
        region it names — None for a compound like 成渝 —, every region it counts toward)."""
        out = []
        for match in self._pattern.finditer(text):
            surface = match.group(0)
            names = self._targets[surface]
            out.append((surface, None if surface in self._compounds else names[0], names))
        return out

    def topics(self, text: str) -> list[str]:
        return [topic_id for topic_id, pattern in self._topics if pattern.search(text)]

    def relevance(self, regions: list[dict], topics: list[str], text: str,
                  events: list[dict] | None = None) -> float:
        """0–1: how squarely the article is about cooperation among the focus cities.

        Parts, each explainable: how many focus cities it names (up to 0.65), how much
        cooperation vocabulary (up to 0.35), and — when events were extracted — how many
        kinds of cooperation event involve a focus city (0.1 each, up to 0.2). Without a
        focus city the vocabulary and the events count a third. When events were
        extracted and none involves a focus city, the whole counts three quarters: the
        cities are only named in passing (a marathon with runners from 重庆)."""
        named = {r["name"] for r in regions}
        focus = [name for name in self.topic.focus_regions if name in named]
        place_score = (0.0, 0.3, 0.55, 0.65)[min(len(focus), 3)]
        topic_score = 0.35 * min(1.0, len([t for t in topics if t != "industry"]) / 3)
        focus_set = set(self.topic.focus_regions)
        kinds = {e["type"] for e in events or () if focus_set & set(e.get("regions", ()))}
        event_score = 0.1 * min(2, len(kinds))
        if not focus:
            topic_score /= 3  # cooperation talk about other places is only faintly relevant
            event_score = 0.1 * min(2, len({e["type"] for e in events or ()})) / 3
        score = place_score + topic_score + event_score
        if events is not None and not kinds:
            score *= 0.75
        return round(min(1.0, score), 3)

    def tag(self, record: dict) -> dict:
        """Fill `regions`, `topics` and `relevance` of a record from its simplified text
        (and its `events`, when they were extracted: `cyz.pipelines.page.tag_record`)."""
        text = f"{record.get('title_zh', '')}\n{record.get('text_zh', '')}"
        record["regions"] = self.regions(text)
        record["topics"] = self.topics(text)
        record["relevance"] = self.relevance(record["regions"], record["topics"], text,
                                             record.get("events"))
        return record


@cache
def default_tagger(path: Path | None = None) -> Tagger:
    """The tagger of `config_dir()`'s topic.yaml. In the crawl's extraction workers that
    is the file the main process validated before any request: it pins the config dir
    (`cyz.paths.pin_config_dir`), so a worker never is the first to read a bad file."""
    return Tagger(load_topic(path or config_dir() / "topic.yaml"))
