"""One happening, many reports: merging the articles' event mentions into happenings.

Every article record carries `events`: its *mentions* of cooperation events. The same
signing is told by the original report, its reprints and other outlets' own reports;
the office wants it once. This module turns mentions into `cyz.record.Happening`
documents, the same way for every engine (it is pure: engines fetch and store, this
decides).

Merge evidence, between a new mention and a happening's mentions:
- required: the same type; the same `planned` (an announced plan and the later signing
  are different happenings); compatible dates — the mention's day range overlaps the
  range of every dated mention of the happening, and when either side has no date,
  a report of it was published within `UNDATED_DAYS` of the mention's article;
  never two mentions of one article;
- then either the same reprint cluster (`cluster_id`: strong evidence on its own), or
  overlapping parties or places *and* a similar key phrase (`key`, else the sentence;
  character bigrams, with the names and generic words such as 合作/协议 taken out,
  so 交通合作协议 and 旅游合作协议 between the same cities stay apart).
A mention joins the compatible happening with the best evidence, else starts one.

Determinism: mentions are taken in (published_at, article id, position) order, and a
happening's id is derived from its earliest mention's content (article id, type,
key or sentence), so writing the same articles in any order or batching gives the same
happenings and ids; re-running never duplicates one.

Engines use `candidate_lookup` (what to fetch: `CandidateLookup`) and `plan` (what to
write and delete); `build_happenings` is `plan` over nothing stored (rebuilds).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import cached_property, lru_cache

from cyz.index.cjk import to_simplified
from cyz.record import EVENT_TYPES, SHANGHAI, Happening, date_range

# What a plan reads of an article record (engines fetch no more than this).
ARTICLE_FIELDS = ("id", "url", "source_id", "source_name", "origin", "title", "published_at",
                  "cluster_id", "events")

# Undated mentions merge when their reports were published this close together.
UNDATED_DAYS = 14
# Key phrases this similar (bigram Dice between two keys, else the share of the shorter
# text's bigrams found in the other) are the same event's.
MIN_SIMILARITY = 0.3
# A date range this short (in days) pins a happening down: the same parties on
# overlapping precise dates are the same happening even when the wording differs.
PRECISE_DAYS = 7
# Candidate lookups merge their date windows down to this many per event type and kind
# (a wider window only fetches more candidates; the merge rules above still decide).
# Bounded so that a search engine's query stays well under its 1024-clause limit.
MAX_WINDOWS_PER_TYPE = 16


# Words every report of every event of a kind uses: they say nothing about *which*
# agreement or visit it is, so similarity ignores them.
GENERIC_WORDS = (
    "战略合作", "合作协议", "框架协议", "备忘录", "合作", "协议", "框架", "战略", "签约", "签署",
    "签订", "举行", "举办", "召开", "开展", "推进", "双方", "两地", "仪式", "项目", "会议",
    "考察", "调研", "代表团", "一行", "进行", "达成", "深入", "共同", "工作",
    # and when, which the dates already compare
    "本月", "今年", "去年", "明年", "近日", "日前", "昨日", "昨天", "今天", "当天", "上午", "下午",
)
_GENERIC = re.compile("|".join(sorted(map(re.escape, GENERIC_WORDS), key=len, reverse=True)))
_NOT_WORD = re.compile(r"[^\w]|[\d_]")


# -- dates -------------------------------------------------------------------------------


@lru_cache(maxsize=8192)
def published_moment(value: str | None) -> datetime | None:
    """published_at as an aware datetime (naive times are Beijing time by the contract)."""
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=SHANGHAI)


def shanghai_day(value: str | None) -> date | None:
    """The Asia/Shanghai calendar day of a timestamp: the day an undated event sorts on."""
    moment = published_moment(value)
    return moment.astimezone(SHANGHAI).date() if moment else None


# -- text evidence -----------------------------------------------------------------------


@lru_cache(maxsize=65_536)  # the same few names are compared again and again
def _norm(name: str) -> str:
    return to_simplified(name).strip().lower()


def names_overlap(a: Iterable[str], b: Iterable[str]) -> bool:
    """Whether two lists of parties/places share one (遵义市 and 遵义 count as one:
    a name containing the other)."""
    left = [n for n in map(_norm, a) if len(n) >= 2]
    right = [n for n in map(_norm, b) if len(n) >= 2]
    return any(x in y or y in x for x in left for y in right)


def content_bigrams(text: str, names: Iterable[str] = ()) -> frozenset[str]:
    """Character bigrams of what a phrase says beyond its names and generic words."""
    text = _norm(text)
    for name in sorted({_norm(n) for n in names if n}, key=len, reverse=True):
        if len(name) >= 2:
            text = text.replace(name, " ")
    text = _GENERIC.sub(" ", text)
    text = _NOT_WORD.sub(" ", text)
    grams = set()
    for run in text.split():
        grams.update(run[i:i + 2] for i in range(len(run) - 1))
    return frozenset(grams)


def similarity(a: Mention, b: Mention) -> float | None:
    """How alike two mentions' key phrases are (None: nothing specific to compare)."""
    if a.key_bigrams and b.key_bigrams:  # two key phrases: both must say the same
        left, right = a.key_bigrams, b.key_bigrams
        return 2 * len(left & right) / (len(left) + len(right))
    left, right = a.key_bigrams or a.sentence_bigrams, b.key_bigrams or b.sentence_bigrams
    if not left or not right:
        return None
    # a key against a sentence (or two sentences): is the shorter one in the other
    return len(left & right) / min(len(left), len(right))


# -- mentions ----------------------------------------------------------------------------


@dataclass(eq=False)
class Mention:
    """One article's mention of an event (record["events"][index])."""

    article: dict
    index: int
    event: dict
    # What the merge reads on every comparison (a mention is compared with every
    # happening near it, and a crawl's batch with hundreds): plain attributes, computed
    # once here rather than by a property per comparison.
    article_id: str = field(init=False, repr=False)
    type: str = field(init=False, repr=False)
    planned: bool = field(init=False, repr=False)
    kind: tuple[str, bool] = field(init=False, repr=False)  # (type, planned): must be equal
    key: str = field(init=False, repr=False)
    cluster_id: str | None = field(init=False, repr=False)
    days: tuple[date, date] | None = field(init=False, repr=False)
    published: datetime | None = field(init=False, repr=False)
    names: list[str] = field(init=False, repr=False)
    # the names as `names_overlap` compares them (normalised, two characters or more) ...
    norm_names: tuple[str, ...] = field(init=False, repr=False)
    # ... and their character bigrams: two overlapping names share one (a name of two
    # characters or more inside another has its first bigram in both), so a happening
    # none of whose bigrams the mention has cannot have a party or place in common
    name_grams: frozenset[str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        event, article = self.event, self.article
        self.article_id = article["id"]
        self.type = event.get("type") or "other"
        self.planned = bool(event.get("planned"))
        self.kind = (self.type, self.planned)
        self.key = event.get("key") or ""
        self.cluster_id = article.get("cluster_id") or None
        self.days = date_range(event.get("date"), event.get("date_end"))
        self.published = published_moment(article.get("published_at"))
        self.names = [*(event.get("parties") or []), *(event.get("places") or [])]
        self.norm_names = tuple(n for n in map(_norm, self.names) if len(n) >= 2)
        self.name_grams = frozenset(n[i:i + 2] for n in self.norm_names for i in range(len(n) - 1))

    @cached_property
    def key_bigrams(self) -> frozenset[str]:
        return content_bigrams(self.key, [*self.names, *(self.event.get("regions") or [])])

    @cached_property
    def sentence_bigrams(self) -> frozenset[str]:
        names = [*self.names, *(self.event.get("regions") or [])]
        return content_bigrams(self.event.get("sentence") or "", names)

    @property
    def precise(self) -> bool:
        """Dated to within a week (a day, or a range such as 4月20日至22日)."""
        return self.days is not None and (self.days[1] - self.days[0]).days < PRECISE_DAYS

    @cached_property
    def order(self) -> tuple:
        """Processing order: published first (undated articles last), then article, position."""
        stamp = self.published.timestamp() if self.published else 0.0
        return (self.published is None, stamp, self.article_id, self.index)

    @cached_property
    def detail(self) -> tuple:
        """How well described: a date beats none, day beats month beats year, an amount
        beats none, then a count, a key phrase, more names."""
        precision = {"day": 3, "month": 2, "year": 1}
        if self.days is None:
            rank = 0
        else:
            rank = precision.get(self.event.get("date_precision") or "", 0) or (
                3 if self.days[0] == self.days[1] else 2 if (self.days[1] - self.days[0]).days < 31 else 1)
        return (self.days is not None, rank, self.event.get("amount_yuan") is not None,
                self.event.get("count") is not None, bool(self.key), len(self.names))

    def id_basis(self) -> str:
        text = self.key or self.event.get("sentence") or ""
        return f"{self.article_id}\x1f{self.type}\x1f{_norm(text)}"


def mentions_of(record: dict) -> list[Mention]:
    # Records enter engines validated; a record stored by an older cyz may still hold an
    # event of a type the contract no longer has: it tells no happening.
    return [Mention(record, n, event) for n, event in enumerate(record.get("events") or [])
            if isinstance(event, dict) and event.get("type") in EVENT_TYPES]


def _same_cluster(a: Mention, b: Mention) -> bool:
    return a.cluster_id is not None and a.cluster_id == b.cluster_id


def _overlap(a: tuple[date, date], b: tuple[date, date]) -> bool:
    return a[0] <= b[1] and b[0] <= a[1]


def _dates_fit(m: Mention, group: _Group) -> bool:
    """Every dated report of the happening agrees with the mention's date; where a date
    is missing on either side, a report of it appeared near the mention's article."""
    if m.days is not None and group.dated_end is not None:
        # m overlaps every dated member's days iff it overlaps their common part: it
        # starts by the earliest end and ends from the latest start
        return m.days[0] <= group.dated_end and group.dated_start <= m.days[1]
    if m.cluster_id is not None and m.cluster_id in group.clusters:
        return True
    if m.published is None:
        return False
    reach = timedelta(days=UNDATED_DAYS)
    return any(abs(m.published - at) <= reach for at in group.published)


def _names_meet(a: Mention, b: Mention) -> bool:
    """`names_overlap(a.names, b.names)`, on the names normalised once per mention (no
    shared bigram, no overlap: see `Mention.name_grams`)."""
    if a.name_grams.isdisjoint(b.name_grams):
        return False
    return any(x in y or y in x for x in a.norm_names for y in b.norm_names)


def _pair_evidence(m: Mention, n: Mention) -> float | None:
    """How strongly two compatible mentions tell the same happening (None: no evidence)."""
    if _same_cluster(m, n):  # a reprint of the same story
        return 2.0 + (similarity(m, n) or 0.0)
    if not _names_meet(m, n):
        return None
    sim = similarity(m, n)
    if m.key_bigrams and n.key_bigrams:
        # Two key phrases name what was signed or opened: they decide (交通合作协议 and
        # 旅游合作协议 signed the same day by the same cities are two happenings).
        return 1.0 + sim if sim >= MIN_SIMILARITY else None
    if sim is not None and sim >= MIN_SIMILARITY:
        return 1.0 + sim
    # Wording too different to compare: the same parties on the same precise days
    # (both dated within a week, overlapping) are the same happening.
    return 0.5 if m.precise and n.precise else None


def _evidence(m: Mention, group: _Group) -> float | None:
    """The mention's best evidence for joining `group`, None when it may not. The caller
    has checked what `_Group.may_take` checks: no report of the mention's article in the
    group (a happening has at most one mention per article), one type and planned."""
    if not _dates_fit(m, group):
        return None
    # Every evidence needs a member of the same reprint cluster or with a name in common
    # (see `Mention.name_grams`): most happenings near a mention fail this, and it is
    # one set operation rather than a comparison with each member.
    if not ((m.cluster_id is not None and m.cluster_id in group.clusters)
            or not m.name_grams.isdisjoint(group.name_grams)):
        return None
    scores = [s for n in group.mentions if (s := _pair_evidence(m, n)) is not None]
    return max(scores) if scores else None


# -- happenings --------------------------------------------------------------------------


def event_id_for(first: Mention, taken: set[str] | frozenset[str] = frozenset()) -> str:
    """A stable id from the earliest mention's content; a second identical mention of
    one article (same type and phrase) gets a numbered variant."""
    basis, n = first.id_basis(), 1
    while True:
        digest = hashlib.sha1(f"{basis}\x1f{n}".encode() if n > 1 else basis.encode()).hexdigest()
        candidate = f"ev{digest[:20]}"
        if candidate not in taken:
            return candidate
        n += 1


def happening_doc(event_id: str, mentions: list[Mention]) -> dict:
    """The Happening document of a group of mentions."""
    mentions = sorted(mentions, key=lambda m: m.order)
    # The best-described mention speaks for the happening; the earliest wins a tie.
    best = min(mentions, key=lambda m: (tuple(-int(x) for x in m.detail), m.order))
    event = best.event
    days = best.days
    regions: dict[str, None] = {}
    for m in mentions:
        for name in m.event.get("regions") or []:
            regions.setdefault(name, None)
    reports = [{
        "article_id": m.article_id, "url": m.article.get("url") or "",
        "source_id": m.article.get("source_id") or "", "source_name": m.article.get("source_name") or "",
        "origin": m.article.get("origin") or None, "title": m.article.get("title") or "",
        "published_at": m.article.get("published_at") or None, "cluster_id": m.cluster_id,
        "event_index": m.index,
    } for m in mentions]
    outlets: dict[str, None] = {}
    for report in reports:
        name = report["origin"] or report["source_name"] or report["source_id"]
        if name:
            outlets.setdefault(name, None)
    first = reports[0]
    doc = {
        "event_id": event_id,
        "type": best.type,
        "event_types": [best.type],
        "date": event.get("date"),
        "date_end": event.get("date_end"),
        "date_precision": event.get("date_precision"),
        "date_from": days[0].isoformat() if days else None,
        "date_to": days[1].isoformat() if days else None,
        # simplified, so a party filter finds 遵义 in a traditional-script report too
        "parties": [to_simplified(p) for p in event.get("parties") or []],
        "places": list(event.get("places") or []),
        "regions": [{"name": name} for name in regions],
        "amount_yuan": event.get("amount_yuan"),
        "amount_approx": bool(event.get("amount_approx")),
        "count": event.get("count"),
        "sentence": event.get("sentence") or "",
        "planned": best.planned,
        "key": best.key,
        "reports": reports,
        "report_count": len(reports),
        "outlets": list(outlets),
        "first_reported_at": next((r["published_at"] for r in reports if r["published_at"]), None),
        "article_id": first["article_id"],
        "url": first["url"],
        "title": first["title"],
        "source_id": first["source_id"],
        "source_name": first["source_name"],
        "published_at": first["published_at"],
    }
    return Happening.model_validate(doc).model_dump()


@dataclass
class Plan:
    """What an engine writes after a batch: happenings to index (by `event_id`) and the
    ids of happenings to delete."""

    upserts: list[dict] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)

    def articles_of(self, event_id: str) -> list[str]:
        """The article ids reported by an upserted happening (to park them if it fails)."""
        for doc in self.upserts:
            if doc["event_id"] == event_id:
                return [r["article_id"] for r in doc["reports"]]
        return []


class _Group:
    """A happening being planned: its mentions, and what `_dates_fit`, `_evidence` and
    `may_take` would otherwise read member by member, kept up to date as members join
    (a group only grows while a plan runs)."""

    def __init__(self, position: int, stored: dict | None = None):
        self.position = position  # ties go to the earlier group
        self.mentions: list[Mention] = []
        self.stored = stored  # the happening as the engine holds it, None when new
        self.touched = stored is None
        # A mention of a reported article, or of another (type, planned), never joins.
        self.article_ids: set[str] = set()
        self.kinds: set[tuple[str, bool]] = set()
        # The common part of the dated members' days (None: no dated member).
        self.dated_start: date | None = None
        self.dated_end: date | None = None
        self.published: list[datetime] = []  # the members' articles' times, when known
        self.clusters: set[str] = set()
        self.name_grams: set[str] = set()  # `Mention.name_grams` of every member

    def add(self, mention: Mention) -> None:
        self.mentions.append(mention)
        self.article_ids.add(mention.article_id)
        self.kinds.add(mention.kind)
        if mention.days is not None:
            start, end = mention.days
            if self.dated_end is None:
                self.dated_start, self.dated_end = start, end
            else:
                self.dated_start = max(self.dated_start, start)
                self.dated_end = min(self.dated_end, end)
        if mention.published is not None:
            self.published.append(mention.published)
        if mention.cluster_id is not None:
            self.clusters.add(mention.cluster_id)
        self.name_grams |= mention.name_grams

    def may_take(self, mention: Mention) -> bool:
        return (mention.article_id not in self.article_ids
                and len(self.kinds) == 1 and mention.kind in self.kinds)


def _weeks(first: date, last: date) -> range:
    return range(first.toordinal() // 7, last.toordinal() // 7 + 1)


def _cluster_and_date_keys(m: Mention) -> Iterator[tuple]:
    """A mention's index keys by reprint cluster and by the weeks of its days."""
    if m.cluster_id:
        yield (*m.kind, "cluster", m.cluster_id)
    if m.days is not None:
        for week in _weeks(*m.days):
            yield (*m.kind, "date", week)


def _published_weeks(m: Mention, reach: int) -> range:
    """The weeks within `reach` days of the mention's report (none when undated)."""
    if m.published is None:
        return range(0)
    day = m.published.astimezone(SHANGHAI).date()
    return _weeks(day - timedelta(days=reach), day + timedelta(days=reach))


class _Groups:
    """The groups, indexed so that a mention is compared only with the groups that can
    take it: same type and planned, and a shared reprint cluster, an overlapping dated
    mention or a report published within UNDATED_DAYS (a rebuild plans every article
    at once, a crawl's batch meets every stored happening of its weeks: comparing each
    mention with every group would be quadratic).

    Keys (all prefixed with the kind, (type, planned)):
    - ("cluster", id): groups with a member of that reprint cluster;
    - ("date", week): groups with a dated member whose days reach that week;
    - ("published", week): groups with a member published that week;
    - ("undated", week): the same, of groups with no dated member yet.
    A dated mention fits a dated group only when it overlaps its members' days (so the
    group is under one of the mention's date weeks), and an undated group when a report
    is near: it looks up "date" and "undated" keys, not every group published near it.
    An undated mention fits any group with a report near it: it looks up "published".
    """

    def __init__(self) -> None:
        self.all: list[_Group] = []
        # key → {group position: group}; a dict so that a group leaves "undated" buckets
        # when it gets its first dated member
        self._index: dict[tuple, dict[int, _Group]] = {}
        self._undated: dict[int, list[tuple]] = {}  # position → its "undated" keys

    def add(self, mentions: list[Mention], stored: dict | None = None) -> _Group:
        group = _Group(len(self.all), stored)
        self.all.append(group)
        for mention in mentions:
            self.join(group, mention)
        return group

    def join(self, group: _Group, mention: Mention) -> None:
        was_dated = group.dated_end is not None
        group.add(mention)
        kind = mention.kind
        keys = list(_cluster_and_date_keys(mention))
        if mention.published is not None:
            week = mention.published.astimezone(SHANGHAI).date().toordinal() // 7
            keys.append((*kind, "published", week))
            if group.dated_end is None:
                undated = (*kind, "undated", week)
                keys.append(undated)
                self._undated.setdefault(group.position, []).append(undated)
        for key in keys:
            self._index.setdefault(key, {})[group.position] = group
        if group.dated_end is not None and not was_dated:
            for key in self._undated.pop(group.position, ()):
                self._index[key].pop(group.position, None)

    def near(self, mention: Mention) -> Iterator[_Group]:
        """The groups that may take `mention` by kind, dates, report times or cluster (a
        group may come more than once; the order is not the groups')."""
        kind, index = mention.kind, self._index
        keys = list(_cluster_and_date_keys(mention))
        which = "undated" if mention.days is not None else "published"
        keys += [(*kind, which, week) for week in _published_weeks(mention, UNDATED_DAYS)]
        for key in keys:
            yield from index.get(key, {}).values()

    @staticmethod
    def keys(m: Mention, reach: int) -> Iterator[tuple]:
        """The keys a mention reaches within `reach` days of its report: `touchable`
        indexes the batch by these, to meet `_StoredHappening.keys`."""
        yield from _cluster_and_date_keys(m)
        for week in _published_weeks(m, reach):
            yield (*m.kind, "published", week)


def plan(records: Iterable[dict], candidates: Iterable[dict] = (),
         reported: Mapping[str, dict] | None = None, removed: Iterable[str] = ()) -> Plan:
    """The happenings to write and delete after `records` were (re)written and the
    articles `removed` deleted.

    `candidates` are the stored happenings `candidate_lookup` finds; `reported` maps the
    id of every other article they report to its record (at least `ARTICLE_FIELDS`), so
    their mentions can be compared and the happenings re-described. The articles'
    old reports leave their happenings (an emptied happening is deleted); each mention,
    earliest first, joins the best compatible happening or starts one.
    """
    batch: dict[str, dict] = {}
    for record in records:
        batch[record["id"]] = record  # a later copy wins
    gone = set(batch) | set(removed)
    reported = reported or {}

    groups = _Groups()
    for stored in sorted(candidates, key=lambda h: h["event_id"]):
        kept = []
        for report in stored.get("reports") or []:
            article = reported.get(report["article_id"])
            events = (article or {}).get("events") or []
            index = report.get("event_index", 0)
            if report["article_id"] in gone or article is None or index >= len(events) \
                    or (events[index] or {}).get("type") != stored.get("type"):
                continue  # rewritten, deleted or no longer there: the report leaves
            kept.append(Mention(article, index, events[index]))
        group = groups.add(kept, stored)
        group.touched = len(kept) != len(stored.get("reports") or [])

    new = sorted((m for r in batch.values() for m in mentions_of(r)), key=lambda m: m.order)
    for mention in new:
        # The best evidence wins, the earliest group (position) a tie.
        best, best_rank, seen = None, None, set()
        for group in groups.near(mention):
            if group.position in seen:
                continue
            seen.add(group.position)
            if not group.may_take(mention):
                continue
            score = _evidence(mention, group)
            if score is not None:
                rank = (score, -group.position)
                if best_rank is None or rank > best_rank:
                    best, best_rank = group, rank
        if best is None:
            groups.add([mention])
        else:
            groups.join(best, mention)
            best.touched = True

    return _diff(groups.all)


def _diff(groups: list[_Group]) -> Plan:
    out = Plan()
    stored = {g.stored["event_id"]: g.stored for g in groups if g.stored is not None}
    stored_ids = set(stored)
    # Untouched happenings keep their ids; touched ones take the id of their earliest
    # mention (which may be new: an older report arrived later).
    taken = {g.stored["event_id"] for g in groups if g.stored is not None and not g.touched}
    written: set[str] = set()
    for group in groups:
        if not group.touched or not group.mentions:
            continue
        first = min(group.mentions, key=lambda m: m.order)
        event_id = event_id_for(first, taken)
        taken.add(event_id)
        doc = happening_doc(event_id, group.mentions)
        written.add(event_id)
        # (a re-written article re-joins its happenings: they come out the same)
        if stored.get(event_id) != doc:
            out.upserts.append(doc)
    kept = written | {g.stored["event_id"] for g in groups if g.stored is not None and not g.touched}
    out.deleted = sorted(stored_ids - kept)
    return out


def build_happenings(records: Iterable[dict]) -> list[dict]:
    """Every happening the articles tell (a rebuild: nothing stored yet)."""
    return plan(records).upserts


# -- what an engine fetches before planning -----------------------------------------------


@dataclass(frozen=True)
class Window:
    type: str
    start: date
    end: date


@dataclass
class CandidateLookup:
    """The stored happenings a batch may touch, as every engine must find them: any of

    - `dated`: happenings of `type` whose [date_from, date_to] overlaps [start, end];
    - `reported`: happenings of `type` first reported (Asia/Shanghai day) in [start, end]
      (for undated mentions: any happening reported near them);
    - `reported_undated`: the same, of undated happenings only (for dated mentions);
    - `article_ids`: happenings holding a report of one of these articles;
    - `cluster_ids`: happenings holding a report of one of these reprint clusters.

    Finding more is harmless (`touchable` and the merge rules decide); finding fewer
    would split happenings.
    """

    dated: list[Window] = field(default_factory=list)
    reported: list[Window] = field(default_factory=list)
    reported_undated: list[Window] = field(default_factory=list)
    article_ids: list[str] = field(default_factory=list)
    cluster_ids: list[str] = field(default_factory=list)

    @property
    def is_empty(self) -> bool:
        return not (self.dated or self.reported or self.reported_undated or self.article_ids
                    or self.cluster_ids)

    def types(self) -> list[str]:
        return sorted({w.type for w in (*self.dated, *self.reported, *self.reported_undated)})


def candidate_lookup(records: Iterable[dict], removed: Iterable[str] = ()) -> CandidateLookup:
    """What to fetch before planning `records` (and the deletion of `removed`)."""
    dated: dict[str, list[tuple[date, date]]] = {}
    reported: dict[str, list[tuple[date, date]]] = {}
    reported_undated: dict[str, list[tuple[date, date]]] = {}
    article_ids: set[str] = set(removed)
    cluster_ids: set[str] = set()
    for record in records:
        article_ids.add(record["id"])
        if record.get("cluster_id"):
            cluster_ids.add(record["cluster_id"])
        for m in mentions_of(record):
            if m.days is not None:
                dated.setdefault(m.type, []).append(m.days)
            day = m.published.astimezone(SHANGHAI).date() if m.published else None
            if day is not None:
                # Happenings reported near this article: their first report up to a month
                # earlier (later reports of it may be nearer) or up to UNDATED_DAYS later.
                # A dated mention can join such a happening only when it is undated.
                near = (day - timedelta(days=2 * UNDATED_DAYS + 3), day + timedelta(days=UNDATED_DAYS))
                (reported_undated if m.days is not None else reported).setdefault(m.type, []).append(near)
    return CandidateLookup(
        dated=_windows(dated), reported=_windows(reported),
        reported_undated=_windows(reported_undated),
        article_ids=sorted(article_ids), cluster_ids=sorted(cluster_ids),
    )


def _windows(spans: dict[str, list[tuple[date, date]]]) -> list[Window]:
    out = []
    for kind in sorted(spans):
        merged: list[list[date]] = []
        for start, end in sorted(spans[kind]):
            if merged and start <= merged[-1][1] + timedelta(days=1):
                merged[-1][1] = max(merged[-1][1], end)
            else:
                merged.append([start, end])
        while len(merged) > MAX_WINDOWS_PER_TYPE:  # close the smallest gap
            gaps = [(merged[i + 1][0] - merged[i][1], i) for i in range(len(merged) - 1)]
            _, i = min(gaps)
            merged[i][1] = max(merged[i][1], merged[i + 1][1])
            del merged[i + 1]
        out += [Window(kind, start, end) for start, end in merged]
    return out


def touchable(records: Iterable[dict], candidates: Iterable[dict],
              removed: Iterable[str] = ()) -> list[dict]:
    """The candidates a plan of `records` (and `removed`) can change: those reporting one
    of the articles, and those some new mention could join by type, planned, dates,
    report times or cluster — necessary conditions of the merge rules, checked on the
    stored documents before an engine fetches the articles they report."""
    records = list(records)
    gone = {r["id"] for r in records} | set(removed)
    near: dict[tuple, list[Mention]] = {}  # the batch's mentions by the keys they reach
    for record in records:
        for m in mentions_of(record):
            for key in _Groups.keys(m, UNDATED_DAYS):
                near.setdefault(key, []).append(m)
    out = []
    for doc in candidates:
        reports = doc.get("reports") or []
        if any(r["article_id"] in gone for r in reports):
            out.append(doc)
            continue
        stored = _StoredHappening(doc)
        mentions = {id(m): m for key in stored.keys() for m in near.get(key, ())}
        if any(stored.may_join(m) for m in mentions.values()):
            out.append(doc)
    return out


class _StoredHappening:
    """What `touchable` reads of a stored happening, parsed once (it is checked against
    every batch mention that shares one of its keys)."""

    def __init__(self, doc: dict):
        reports = doc.get("reports") or []
        self.kind = (doc.get("type"), bool(doc.get("planned")))
        # its own date range is its best mention's, which every dated mention of it overlaps
        self.days = date_range(doc.get("date_from"), doc.get("date_to"))
        self.clusters = {r["cluster_id"] for r in reports if r.get("cluster_id")}
        self.published = [at for r in reports
                          if (at := published_moment(r.get("published_at"))) is not None]

    def keys(self) -> set[tuple]:
        """Its keys in the `_Groups.keys` index of the batch (from its own date range
        and from its reports)."""
        kind = self.kind
        keys = {(*kind, "cluster", cluster) for cluster in self.clusters}
        if self.days is not None:
            keys.update((*kind, "date", week) for week in _weeks(*self.days))
        keys.update((*kind, "published", at.astimezone(SHANGHAI).date().toordinal() // 7)
                    for at in self.published)
        return keys

    def may_join(self, m: Mention) -> bool:
        """Whether the merge rules could let `m` join this happening."""
        if m.kind != self.kind:
            return False
        if m.cluster_id and m.cluster_id in self.clusters:
            return True
        if m.days is not None and self.days is not None:
            return _overlap(m.days, self.days)
        if m.published is None:
            return False
        reach = timedelta(days=UNDATED_DAYS)
        return any(abs(at - m.published) <= reach for at in self.published)


def reported_articles(candidates: Iterable[dict], exclude: Iterable[str] = ()) -> list[str]:
    """Ids of the articles the candidates report, less `exclude` (the batch, the deleted):
    the records an engine fetches for `plan(reported=...)`."""
    skip = set(exclude)
    return sorted({r["article_id"] for h in candidates for r in h.get("reports") or []} - skip)
