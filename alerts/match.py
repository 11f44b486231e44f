"""Which articles an alert rule matches: keywords and filters, on records as the engines store them.

Pure functions over record dicts. Keywords are folded the way search folds a query
(OpenCC traditional → simplified, width and case), and looked for in the simplified
copies of title and text (`title_zh`, `text_zh`), so 遵义 finds 遵義. Every keyword of
every rule is found in one pass over each text (an RE2 set: linear in the text,
whatever the number of keywords), then each rule is a few set lookups.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import re2

from cyz.config import AlertRule
from cyz.index.cjk import fold_aligned, normalize, width_folded


def fold_keyword(word: str) -> str:
    return normalize(word.strip())


def haystack(record: dict) -> str:
    """The folded simplified title and text a rule's keywords are looked for in."""
    title = record.get("title_zh") or record.get("title") or ""
    text = record.get("text_zh") or record.get("text") or ""
    joined = f"{title}\n{text}"
    # Most texts hold no full-width or compatibility letters: lower() is all the
    # folding they need, at a fifteenth of the cost.
    return fold_aligned(joined) if width_folded(joined) else joined.lower()


@dataclass(frozen=True)
class _Compiled:
    order: int
    rule: AlertRule
    all: frozenset[int]
    any: frozenset[int]
    none: frozenset[int]


class Matcher:
    """Every rule of `rules`, compiled once; `match(records)` says which rule takes which."""

    def __init__(self, rules: Sequence[AlertRule]) -> None:
        self.keywords: list[str] = []
        index: dict[str, int] = {}

        def ids(words: Iterable[str]) -> frozenset[int]:
            out = set()
            for word in words:
                folded = fold_keyword(word)
                if folded not in index:
                    index[folded] = len(self.keywords)
                    self.keywords.append(folded)
                out.add(index[folded])
            return frozenset(out)

        self._rules = [_Compiled(n, r, ids(r.all), ids(r.any), ids(r.none))
                       for n, r in enumerate(rules)]
        # A rule can only take a text holding one of its trigger keywords (one of `all`,
        # else each of `any`); rules without keywords are tried on every record.
        self._always: list[_Compiled] = []
        self._by_keyword: dict[int, list[_Compiled]] = {}
        for compiled in self._rules:
            triggers = [min(compiled.all)] if compiled.all else sorted(compiled.any)
            if not triggers:
                self._always.append(compiled)
            for keyword in triggers:
                self._by_keyword.setdefault(keyword, []).append(compiled)
        self._terms: dict[str, list[str]] = {}
        self._set = None
        if self.keywords:
            options = re2.Options()
            options.max_mem = 64 << 20  # hundreds of rules' keywords fit easily
            self._set = re2.Set.SearchSet(options)
            for word in self.keywords:
                self._set.Add(re2.escape(word))
            self._set.Compile()

    def found(self, record: dict) -> tuple[frozenset[int], str]:
        """The ids (positions in `keywords`) of the keywords the record contains, and
        the folded text they were looked for in."""
        folded = haystack(record)
        if self._set is None:
            return frozenset(), folded
        return frozenset(self._set.Match(folded) or ()), folded  # None: no keyword

    def rules_for(self, record: dict) -> tuple[list[AlertRule], str]:
        """The rules that take `record`, and its folded body text (for snippets)."""
        found, folded = self.found(record)
        candidates = {c.order: c for c in self._always}
        for keyword in found:
            for compiled in self._by_keyword.get(keyword, ()):
                candidates[compiled.order] = compiled
        taken = [c.rule for _, c in sorted(candidates.items()) if _takes(c, found, record)]
        title = record.get("title_zh") or record.get("title") or ""
        return taken, folded[len(title) + 1:]

    def match(self, records: Iterable[dict]) -> dict[str, list[dict]]:
        """{rule id: the records it matches, in the order given}."""
        out: dict[str, list[dict]] = {c.rule.id: [] for c in self._rules}
        for record in records:
            for rule in self.rules_for(record)[0]:
                out[rule.id].append(record)
        return out

    def terms(self, rule: AlertRule) -> list[str]:
        """The folded words that make `rule` match (all and any): what snippets mark."""
        if rule.id not in self._terms:
            self._terms[rule.id] = [t for t in dict.fromkeys(
                fold_keyword(w) for w in [*rule.all, *rule.any]) if t]
        return self._terms[rule.id]


def _takes(compiled: _Compiled, found: frozenset[int], record: dict) -> bool:
    if not compiled.all <= found:
        return False
    if compiled.any and compiled.any.isdisjoint(found):
        return False
    if not compiled.none.isdisjoint(found):
        return False
    return passes_filters(compiled.rule, record)


def passes_filters(rule: AlertRule, record: dict) -> bool:
    """The rule's optional filters (every one given must hold)."""
    if rule.sources and record.get("source_id") not in rule.sources:
        return False
    if rule.source_kinds and record.get("source_kind") not in rule.source_kinds:
        return False
    if rule.min_relevance and float(record.get("relevance") or 0) < rule.min_relevance:
        return False
    if rule.regions:
        names = {r.get("name") if isinstance(r, dict) else r for r in record.get("regions") or []}
        if not names.intersection(rule.regions):
            return False
    if rule.topics and not set(record.get("topics") or []).intersection(rule.topics):
        return False
    if rule.event_types or rule.planned is not None:
        return bool(matching_events(rule, record))
    return True


def matching_events(rule: AlertRule, record: dict) -> list[dict]:
    """The record's events the rule asks for (all of them when it asks for none)."""
    events = record.get("events") or []
    return [e for e in events
            if (not rule.event_types or e.get("type") in rule.event_types)
            and (rule.planned is None or bool(e.get("planned")) == rule.planned)]
