"""Cooperation events: which signings, visits, projects, conferences, policies and
transport openings an article tells, sentence by sentence.

The rules are data (the `events:` section of topic.yaml). Per sentence: a trigger of a
rule must occur (one cheap regex over all triggers decides which sentences are looked
at, so most of a page costs one scan), the rule's `needs` and `unless` words must agree,
no negation may stand right before the trigger; then the event gets its date (resolved
against the article's date), amount, count, places, parties (jieba, only here) and key
phrase. Reports of the same happening inside one article merge into one event.
"""

from __future__ import annotations

import calendar
import logging
import re
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from functools import cache, lru_cache
from pathlib import Path

from cyz.config import EventRule, TopicFile, load_topic
from cyz.paths import config_dir
from cyz.pipelines.tag import Tagger
from cyz.record import Event, date_range

# --- sentences ------------------------------------------------------------------------

_ENDS = set("。！？；!?;")
_OPEN = {"“": "”", "《": "》", "「": "」", "『": "』", "‘": "’"}
_CLOSERS = set("”’」』）)》】\"'")
# Every character split_sentences acts on: line breaks, ends, quote openers and closers.
_MARKS = re.compile("[" + re.escape("".join(sorted({"\n", *_ENDS, *_OPEN, *_OPEN.values()})))
                    + "]")


def split_sentences(text: str) -> list[tuple[int, str]]:
    """The sentences of `text` with their offsets. A sentence ends at 。！？；(and the
    closing quotes or brackets right after it) and at every line break; an end inside
    “…” or 《…》 does not count (a quoted speech stays one sentence)."""
    out: list[tuple[int, str]] = []
    start = 0
    waiting: list[str] = []  # closing marks of the quotes open at this point
    i, n = 0, len(text)
    search = _MARKS.search
    while i < n:
        found = search(text, i)  # other characters change nothing: skip them
        if found is None:
            break
        i = found.start()
        ch = text[i]
        if ch == "\n":
            _add(out, text, start, i)
            start, waiting = i + 1, []  # an unbalanced quote never spans lines
        elif ch in _OPEN and not (ch == "‘" and waiting and waiting[-1] == "’"):
            waiting.append(_OPEN[ch])
        elif waiting and ch == waiting[-1]:
            waiting.pop()
            if not waiting and ch != "》" and i and text[i - 1] in _ENDS:
                # “…签约了。”: the quote ended the sentence
                while i + 1 < n and text[i + 1] in _CLOSERS:
                    i += 1
                _add(out, text, start, i + 1)
                start = i + 1
        elif ch in _ENDS and not waiting:
            while i + 1 < n and text[i + 1] in _CLOSERS:
                i += 1
            _add(out, text, start, i + 1)
            start = i + 1
        i += 1
    _add(out, text, start, n)
    return out


def _add(out: list[tuple[int, str]], text: str, start: int, end: int) -> None:
    piece = text[start:end]
    stripped = piece.strip()
    if stripped:
        out.append((start + len(piece) - len(piece.lstrip()), stripped))


_TITLES = re.compile(r"《[^》\n]*》")


def _untitled(sentence: str) -> str:
    """`sentence` with its 《titles》 blanked out (\\0, the same length)."""
    if "《" not in sentence:
        return sentence
    return _TITLES.sub(lambda m: "\0" * len(m.group(0)), sentence)


# The dateline of a wire or paper report: 新华社重庆12月5日电, 本报成都12月5日讯（记者 …）
_DATELINE = re.compile(r"[^，。；\s\d]{0,8}(?:社|报|网|台|端)[^，。；\s\d]{0,8}\d{1,2}月\d{1,2}日[电讯]"
                       r"(?:[（(][^）)]{0,30}[）)])?\s*")

# A date right after these ends a tally (截至11月底), it dates no happening.
_CUTOFFS = ("截至", "截止", "截至到")

# Clause ends inside a sentence: what `needs`, markers and the key look at.
_CLAUSE = re.compile(r"[，,：:]")


def _clause(sentence: str, pos: int) -> tuple[int, int]:
    marks = _clause_marks(sentence)
    i = bisect_left(marks, pos)
    return marks[i - 1] + 1 if i else 0, marks[i] if i < len(marks) else len(sentence)


@lru_cache(maxsize=64)
def _clause_marks(sentence: str) -> tuple[int, ...]:
    """Where the clause marks of `sentence` stand (a sentence asks many times)."""
    return tuple(m.start() for m in _CLAUSE.finditer(sentence))


# --- dates ----------------------------------------------------------------------------

_CN_DIGITS = {"一": 1, "二": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7, "八": 8, "九": 9}
_NUM = r"\d{1,2}|[一二三四五六七八九十]{1,3}"
_DATE = re.compile(
    rf"(?:(?P<y>(?:19|20)\d{{2}})\s*年|(?P<rel>前年|去年|今年|明年|年内|上半年|下半年))?"
    rf"(?:上半年|下半年|底|初|内)?\s*"
    rf"(?:(?P<m>{_NUM})\s*月(?!份?[以之]?[内来])|(?P<relm>本月|上个?月|下个?月))?\s*"
    rf"(?:(?P<d>{_NUM})\s*[日号]|(?P<xun>上旬|中旬|下旬)|(?P<reld>今天|今日|昨天|昨日|前天|明天|明日))?"
    rf"(?:\s*(?:至|到|—|－|-|~|～)\s*(?:(?P<m2>\d{{1,2}})月)?(?P<d2>\d{{1,2}})[日号])?"
)
# The same, tried only where a date can start (elsewhere _DATE matches the empty string,
# which find_dates skips): its first character is one of these.
_DATE_AT = re.compile(r"(?=[\d\s一二三四五六七八九十前去今明年上下中底初内本昨至到—－\-~～])"
                      + _DATE.pattern)
_RELATIVE = {"前年": -2, "去年": -1, "今年": 0, "明年": 1, "年内": 0, "上半年": 0, "下半年": 0}
_RELATIVE_MONTH = {"本月": 0, "上月": -1, "上个月": -1, "下月": 1, "下个月": 1}
_RELATIVE_DAY = {"今天": 0, "今日": 0, "昨天": -1, "昨日": -1, "前天": -2, "明天": 1, "明日": 1}


def _cn_number(text: str) -> int:
    if text.isdigit():
        return int(text)
    if "十" in text:
        tens, _, ones = text.partition("十")
        return _CN_DIGITS.get(tens, 1) * 10 + _CN_DIGITS.get(ones, 0)
    return _CN_DIGITS.get(text, 0)


@dataclass
class _Date:
    start: int
    end: int
    value: str
    value_end: str | None
    precision: str
    first_day: date  # for "later than the article" and ranges


def _article_day(published_at: str | None) -> date | None:
    if not published_at:
        return None
    try:
        return datetime.fromisoformat(published_at[:10]).date()
    except ValueError:
        return None


def find_dates(sentence: str, article: date | None, ahead: bool = False) -> list[_Date]:
    """Date expressions of a sentence, resolved against the article's day: a month
    without a year is the latest such month not after the article's; a day alone is
    in the article's month (the month before, when the day is later than the article's);
    去年/今年/明年 count from the article's year; an explicit year wins. With `ahead`
    (the sentence tells a plan: 将于11月上旬启动) a bare month or day is the next one."""
    found = []
    for m in _DATE_AT.finditer(sentence):
        if not m.group(0).strip() or not (m["y"] or m["rel"] or m["m"] or m["d"] or m["relm"]
                                          or m["reld"]):
            continue
        if m["xun"] and not m["m"]:
            continue
        resolved = _resolve(m, article, ahead)
        if resolved:
            found.append(resolved)
    return found


def _resolve(m: re.Match, article: date | None, ahead: bool) -> _Date | None:
    month = _cn_number(m["m"]) if m["m"] else None
    day = _cn_number(m["d"]) if m["d"] else None
    if (m["reld"] or m["relm"]) and not m["y"] and not m["rel"]:
        if article is None:
            return None
        if m["reld"]:  # 昨日, 今天: a day counted from the article's
            when = date.fromordinal(article.toordinal() + _RELATIVE_DAY[m["reld"]])
            return _Date(m.start(), m.end(), when.isoformat(), None, "day", when)
        index = article.year * 12 + article.month - 1 + _RELATIVE_MONTH[m["relm"]]
        year, month = divmod(index, 12)
        month += 1
        if day is None:
            return _Date(m.start(), m.end(), f"{year:04d}-{month:02d}", None, "month",
                         date(year, month, 1))
    if m["y"]:
        year = int(m["y"])
    elif m["rel"]:
        if article is None:
            return None
        year = article.year + _RELATIVE[m["rel"]]
    elif article is None:
        return None  # 7月 of which year: unknown without the article's date
    elif m["relm"]:
        pass  # year and month counted above
    elif month:
        if ahead:
            year = article.year + (1 if month < article.month else 0)
        else:
            year = article.year - (1 if month > article.month else 0)
    else:  # a day alone: this month, or the last one when the day is still to come
        year, month = article.year, article.month
        if day and ahead and day < article.day:
            year, month = (year, month + 1) if month < 12 else (year + 1, 1)
        elif day and not ahead and day > article.day:
            year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    if month is None:
        if day:
            return None  # 2024年5日: not a date
        return _Date(m.start(), m.end(), f"{year:04d}", None, "year", date(year, 1, 1))
    if not 1 <= month <= 12:
        return None
    last = calendar.monthrange(year, month)[1]
    if m["xun"]:
        first, to = {"上旬": (1, 10), "中旬": (11, 20), "下旬": (21, last)}[m["xun"]]
        return _Date(m.start(), m.end(), f"{year:04d}-{month:02d}-{first:02d}",
                     f"{year:04d}-{month:02d}-{to:02d}", "day", date(year, month, first))
    if day is None:
        return _Date(m.start(), m.end(), f"{year:04d}-{month:02d}", None, "month",
                     date(year, month, 1))
    if not 1 <= day <= last:
        return None
    value_end = None
    if m["d2"]:
        month2 = int(m["m2"]) if m["m2"] else month
        year2 = year + (1 if month2 < month else 0)
        day2 = int(m["d2"])
        if 1 <= month2 <= 12 and 1 <= day2 <= calendar.monthrange(year2, month2)[1]:
            value_end = f"{year2:04d}-{month2:02d}-{day2:02d}"
    return _Date(m.start(), m.end(), f"{year:04d}-{month:02d}-{day:02d}", value_end, "day",
                 date(year, month, day))


# --- amounts and counts ---------------------------------------------------------------

_AMOUNT = re.compile(
    r"(?P<num>\d+(?:\.\d+)?)\s*(?P<mid>多|余)?(?P<unit>万亿|亿|千万|百万|万|千)?(?P<post>多|余)?元"
    r"(?P<after>以上|左右)?")
_UNITS = {None: 1, "千": 1e3, "万": 1e4, "百万": 1e6, "千万": 1e7, "亿": 1e8, "万亿": 1e12}
_COUNT = re.compile(
    r"(?P<a>\d+)\s*[多余]?(?:个|项|份|批)[^，。；\d]{0,8}?(?:项目|协议|合同|备忘录)"
    r"|(?:项目|协议|备忘录)(?P<b>\d+)\s*[多余]?(?:个|项|份)"
    r"|(?P<c>\d+)\s*家(?:[^，。；\d]{0,4})企业")
# Money is part of these types' story; a visit's or a policy's 亿元 are targets or context.
_MONEY_TYPES = {"project", "agreement", "conference", "other"}
_COUNT_TYPES = {"project", "agreement"}


# --- the extractor --------------------------------------------------------------------


def _alternation(words) -> str:
    return "|".join(map(re.escape, sorted(set(words), key=len, reverse=True)))


class _Rule:
    def __init__(self, rule: EventRule):
        self.rule = rule
        parts = [_alternation(rule.triggers)] if rule.triggers else []
        if rule.pattern:
            parts.append(f"(?:{rule.pattern})")
        self.trigger = re.compile("|".join(parts))
        self.needs = re.compile(_alternation(rule.needs)) if rule.needs else None
        self.unless = re.compile(_alternation(rule.unless)) if rule.unless else None
        self.key = re.compile(rule.key) if rule.key else None
        self.type = rule.type
        self.whole_sentence = rule.scope == "sentence"  # where `needs` are looked for


class EventExtractor:
    """The events of one article, by the rules of one topic.yaml."""

    def __init__(self, topic: TopicFile):
        self.topic = topic
        ev = topic.events
        self._tagger = Tagger(topic)
        self._rules = [_Rule(r) for r in ev.rules]
        triggers = [r.trigger.pattern for r in self._rules]
        # The prefilter: a sentence without any trigger costs one scan and nothing else.
        self._prefilter = re.compile("|".join(f"(?:{t})" for t in triggers)) if triggers else None
        self._exclude = re.compile(_alternation(ev.exclude)) if ev.exclude else None
        self._evidence = re.compile(_alternation(ev.evidence)) if ev.evidence else None
        mk = ev.markers
        self._ignore = re.compile(_alternation(mk.ignore)) if mk.ignore else None
        self._planned = re.compile(_alternation(mk.planned)) if mk.planned else None
        self._done = re.compile(_alternation(mk.done)) if mk.done else None
        self._negation = re.compile(f"(?:{_alternation(mk.negation)})$") if mk.negation else None
        self._approx = set(mk.approx)
        self._approx_words = tuple(self._approx)
        self._key_cut = re.compile(_alternation(ev.key_cut)) if ev.key_cut else None
        self._joint = re.compile(_alternation(ev.joint)) if ev.joint else None
        self._scene = re.compile(_alternation(mk.scene)) if mk.scene else None
        tally = [_alternation(mk.tally)] if mk.tally else []
        if mk.tally_pattern:
            tally.append(f"(?:{mk.tally_pattern})")
        self._tally = re.compile("|".join(tally)) if tally else None
        self._content = re.compile(mk.content) if mk.content else None
        self._parties = _PartyFinder(topic, self._tagger)

    def extract(self, title_zh: str, text_zh: str, published_at: str | None) -> list[dict]:
        """Event dicts (every key of `cyz.record.Event`) of an article's simplified text."""
        if self._prefilter is None:
            return []
        article = _article_day(published_at)
        title, body = ([event for _offset, sentence in split_sentences(text or "")
                        if self._prefilter.search(sentence)
                        for event in self._sentence(sentence, article)]
                       for text in (title_zh, text_zh))
        # 同日/会上/现场/大会期间…: an undated mention happened when the event that opened
        # the scene did (the last one with a date of its own: a date found only after the
        # trigger's clause is no scene's, and yields to the scene's). A plan is dated by a
        # scene only when the scene is a plan too (消费季将于11月上旬启动。活动期间，将…).
        scene = None
        for event in body:
            in_scene, weak = event.pop("_scene"), event.pop("_weak")
            if in_scene and scene and event["planned"] <= scene["planned"] and (
                    not event["date"] or weak):
                event.update({k: scene[k] for k in ("date", "date_end", "date_precision")})
            elif event["date"] and not weak:
                scene = {k: event[k] for k in ("date", "date_end", "date_precision", "planned")}
        for event in title:
            event.pop("_scene")
            event.pop("_weak")
        sides = self._parties.sides
        events = _merge(body, sides)
        # A headline names the article's main event, which the body then tells: it joins
        # the body's first event of its type, and stands alone only when the body has none.
        for event in _merge(title, sides):
            index = next((i for i, kept in enumerate(events) if kept["type"] == event["type"]
                          and _dates_agree(kept, event)), None)
            if index is None:
                events.insert(0, event)
            else:
                events[index] = _join(events[index], event)
        for event in events:
            event["parties"] = self._parties.tidy(event["parties"])
        return events

    def warm(self) -> None:
        """Load jieba and its dictionary now (extraction workers call it at start)."""
        self._parties.tokenizer()

    # -- one sentence --

    def _sentence(self, sentence: str, article: date | None) -> list[dict]:
        if self._exclude and self._exclude.search(sentence):
            return []
        # 新华社重庆12月5日电: where and when the report was filed, not the event's.
        dateline = _DATELINE.match(sentence)
        told = sentence[dateline.end():] if dateline else sentence
        # Markers are looked for outside 《titles》 (…行动计划》 plans nothing) and outside
        # the words that only contain one (未来 negates nothing).
        masked = _untitled(sentence)
        if self._ignore:
            masked = self._ignore.sub(lambda m: "\0" * len(m.group(0)), masked)
        fired: dict[str, tuple[_Rule, re.Match]] = {}
        for rule in self._rules:
            if rule.type in fired:
                continue  # one event per type and sentence
            matches = rule.trigger.finditer(sentence)
            match = next(matches, None)
            if match is None or rule.unless and rule.unless.search(sentence):
                continue
            while match is not None:
                if self._fires(rule, sentence, masked, match):
                    fired[rule.type] = (rule, match)
                    break
                match = next(matches, None)
        if not fired:
            return []
        content = bool(self._content and self._content.match(told))
        mentions = self._tagger.mentions(told)
        places = _unique(place for _w, place, _names in mentions if place)
        regions = _unique(name for _w, _place, names in mentions for name in names)
        # Top-level regions named (a place counts as its city; 成渝 as both).
        tops = {names[-1] for _w, place, names in mentions if place} | {
            name for _w, place, names in mentions if not place for name in names}
        parties: list[tuple[str, bool]] | None = None  # jieba only once a rule fired
        # Dates: not a 《title》's, not the dateline's.
        undated = _untitled(sentence)
        if dateline:
            undated = "\0" * dateline.end() + undated[dateline.end():]
        out = []
        for rule, match in fired.values():
            if rule.rule.cross_region and len(tops) < 2 and not (
                    self._joint and self._joint.search(sentence)):
                continue
            if self._tallied(masked, undated, match.start(), article):
                continue  # 今年以来…签署合作协议41份: many events summed, none told
            if parties is None:
                parties = self._parties.find(told)
            if not (mentions or any(is_org for _name, is_org in parties)
                    or (self._evidence and self._evidence.search(sentence))
                    or (self._joint and self._joint.search(sentence))):
                continue  # no place, no organisation, no cooperation word: not ours
            event = self._event(rule, match, sentence, masked, article, undated,
                                [name for name, _is_org in parties], places, regions)
            if content and not event["date"]:
                continue  # 按照协议，两地将…: what a document says, not a happening
            out.append((match.start(), event))
        # 发布了《倡议》，将联合举办…: an `other` event in the clause of a typed one, or a
        # plan that goes on telling it, adds nothing to it.
        typed = [_clause(sentence, pos) for pos, event in out if event["type"] != "other"]
        return [event for pos, event in out if event["type"] != "other" or not typed
                or not (event["planned"] or _clause(sentence, pos) in typed)]

    def _tallied(self, masked: str, undated: str, pos: int, article: date | None) -> bool:
        """Whether a tally word stands in the trigger's clause after it (论坛自2022年起每年
        举办) or before it (今年以来, 累计, 先后签署…) with no date of its own between them
        (累计完成投资约62%，预计2026年底建成通车 tells a plan); a plan is no tally."""
        if not self._tally:
            return False
        _, end = _clause(masked, pos)
        found = list(self._tally.finditer(masked, 0, end))
        if not found or self._is_planned(masked, masked, pos):
            return False
        last = found[-1]
        return last.end() > pos or not find_dates(undated[last.end():pos], article)

    def _fires(self, rule: _Rule, sentence: str, masked: str, match: re.Match) -> bool:
        pos = match.start()
        start, end = _clause(sentence, pos)
        if rule.needs:
            lo, hi = (0, len(sentence)) if rule.whole_sentence else (start, end)
            if not rule.needs.search(sentence, lo, hi):
                return False
        return not (self._negation and self._negation.search(masked, max(start, pos - 4), pos))

    def _event(self, rule: _Rule, match: re.Match, sentence: str, masked: str,
               article: date | None, undated: str, parties: list[str],
               places: list[str], regions: list[str]) -> dict:
        typ = rule.rule.type
        planned = self._is_planned(sentence, masked, match.start())
        # 截至11月底: the end of a tally, not the day of a happening
        dates = [d for d in find_dates(undated, article, ahead=planned)
                 if not undated.endswith(_CUTOFFS, 0, d.start)]
        when = _pick_date(dates, sentence, match.start())
        if not planned and when and article and _later_month(when.first_day, article) \
                and not self._done_before(sentence, masked, match.start()):
            planned = True  # a date still to come: announced, not done
        amount, approx = (None, False)
        if typ in _MONEY_TYPES:
            amount, approx = self._amount(sentence, match.start())
        count = None
        if typ in _COUNT_TYPES:
            count = _count(sentence, match.start())
        out = _event_dict(
            type=typ,
            date=when.value if when else None,
            date_end=when.value_end if when else None,
            date_precision=when.precision if when else None,
            parties=parties,
            places=list(places),
            regions=list(regions),
            amount_yuan=amount,
            amount_approx=approx,
            count=count,
            sentence=sentence,
            planned=planned,
            key=self._key(rule, sentence, match),
            rule=rule.rule.id,
            trigger=match.group(0),
        )
        _, clause_end = _clause(sentence, match.start())
        out["_scene"] = bool(self._scene and self._scene.search(masked, 0, clause_end))
        # A date found only after the trigger's clause (推介会上，…推出优惠政策：12月至次年2月)
        # is weak: it does not open a scene, and a scene's date wins over it.
        out["_weak"] = bool(when and when.start >= clause_end)
        return out

    def _is_planned(self, sentence: str, masked: str, pos: int) -> bool:
        # Anywhere before the trigger in its sentence: 重庆一家企业将在新蒲新区投资建设…，
        # 总投资20亿元 is planned; what follows the trigger (签署…，明确双方将…) is not.
        if not self._planned:
            return False
        _, end = _clause(sentence, pos)  # 代表团计划近期赴遵义: the verb follows the trigger
        last_plan = max((m.end() for m in self._planned.finditer(masked, 0, end)), default=-1)
        if last_plan < 0:
            return False
        return not (self._done and self._done.search(masked, last_plan, end))

    def _done_before(self, sentence: str, masked: str, pos: int) -> bool:
        start, _ = _clause(sentence, pos)
        return bool(self._done and self._done.search(masked, start, pos))

    def _amount(self, sentence: str, pos: int) -> tuple[float | None, bool]:
        found = list(_AMOUNT.finditer(sentence))
        if not found:
            return None, False
        m = next((a for a in found if a.start() >= pos), found[-1])
        value = float(m["num"]) * _UNITS[m["unit"]]
        before = sentence[max(0, m.start() - 2):m.start()]
        approx = before.endswith(self._approx_words) or any(
            m[g] in self._approx for g in ("mid", "post", "after") if m[g])
        return round(value, 2), approx

    def _key(self, rule: _Rule, sentence: str, match: re.Match) -> str:
        if not rule.key:
            return ""
        start, end = _clause(sentence, match.start())
        found = rule.key.search(sentence, start, end) or rule.key.search(sentence)
        if not found:
            return ""
        groups = [g for g in found.groups() if g] if found.re.groups else []
        key = groups[0] if groups else found.group(0)
        quoted = found.group(0) != key and found.group(0)[:1] in "《“"
        if not quoted and self._key_cut:
            cuts = [m.end() for m in self._key_cut.finditer(key)]
            if cuts:
                key = key[max(cuts):]
            key = _strip_date(key)
        key = key.strip(" 　、")
        if not quoted and key.startswith(_ANAPHORA):
            return ""  # 本届峰会, 该项目: the event told before, not a name of its own
        return key if len(key) >= 3 or quoted else ""


_EVENT_FIELDS = tuple(Event.model_fields)


def _event_dict(**fields) -> dict:
    """`Event(**fields).model_dump()` for the values _event makes (of the model's types
    already, fresh lists), without pydantic's cost: every field, in the model's order (a
    field added to the model and not given here is a KeyError). Records are validated as
    a whole where they enter an engine (`cyz.record.validate_article`)."""
    if len(fields) != len(_EVENT_FIELDS):
        raise TypeError(f"unknown event fields: {sorted(set(fields) - set(_EVENT_FIELDS))}")
    return {name: fields[name] for name in _EVENT_FIELDS}


_ANAPHORA = ("本届", "本次", "此次", "这次", "该", "此", "这", "其")


def _strip_date(key: str) -> str:
    m = _DATE.match(key)
    return key[m.end():] if m and m.group(0) and not re.fullmatch(r"\d{4}", m.group(0)) else key


def _pick_date(dates: list[_Date], sentence: str, pos: int) -> _Date | None:
    """The date that goes with the trigger at `pos`: one in its clause (the nearest),
    else the last before it, else the first after it."""
    if not dates:
        return None
    start, end = _clause(sentence, pos)
    inside = [d for d in dates if start <= d.start < end]
    if inside:
        chosen = min(inside, key=lambda d: abs(d.start - pos))
    else:
        before = [d for d in dates if d.start < pos]
        chosen = before[-1] if before else dates[0]
    if chosen.precision == "year":
        # 11月26日，2024年遵义市投资推介会…: the year names the edition; the day is the date
        finer = [d for d in dates if d.precision != "year" and d.value[:4] == chosen.value]
        if finer:
            return finer[0]
    return chosen


def _later_month(day: date, article: date) -> bool:
    return (day.year, day.month) > (article.year, article.month)


def _count(sentence: str, pos: int) -> int | None:
    found = list(_COUNT.finditer(sentence))
    if not found:
        return None
    # a project or agreement count beats a number of companies
    ranked = sorted(found, key=lambda m: (m["c"] is not None, m.start() < pos))
    m = ranked[0]
    return int(m["a"] or m["b"] or m["c"])


def _unique(items) -> list[str]:
    return list(dict.fromkeys(items))


# --- parties --------------------------------------------------------------------------

# jieba's tags that end a name when walking back from an organisation suffix: verbs,
# prepositions, conjunctions, particles, pronouns, adverbs, numerals and measure words.
_STOP_FLAGS = ("v", "p", "c", "u", "r", "d", "m", "q", "y", "e", "o", "w", "f", "t")
_NAME_CHARS = re.compile(r"^[\w（）()·]+$")


def _tags(tokenizer) -> dict[str, str]:
    """The part-of-speech tags of jieba's dictionary that tell a party's words apart,
    as far as `_PartyFinder` asks (a tag's first letter; vn, a verb used as a noun, in
    full), leaving out nouns: two thirds of the 350,000 words, which `_tokens` tags "n"
    by their place in the dictionary. jieba.posseg's own table of every word would add
    some 100 MB to each extraction process."""
    tags: dict[str, str] = {}
    kinds: dict[str, str] = {}  # one string object per kind
    with tokenizer.get_dict_file() as lines:
        for raw in lines:
            word, _freq, *tag = raw.decode("utf-8").split()
            if tag and not tag[0].startswith("n"):
                kind = tag[0] if tag[0] == "vn" else tag[0][:1]
                tags[word] = kinds.setdefault(kind, kind)
    return tags


class _PartyFinder:
    """Organisations (a name ending in an organisation suffix) and gazetteer places that
    act (遵义市 与 重庆市江北区 签署…), on the words of a private jieba tokenizer whose
    dictionary knows every gazetteer name and the suffixes."""

    def __init__(self, topic: TopicFile, tagger: Tagger):
        rules = topic.events.parties
        self._tagger = tagger
        self._suffixes = sorted(set(rules.suffixes), key=len, reverse=True)
        # _suffix's lookups: one C-level test, then a set per length, longest first
        self._suffix_tuple = tuple(s for s in self._suffixes if s)
        self._suffix_by_length = [(n, {s for s in self._suffix_tuple if len(s) == n})
                                  for n in sorted({len(s) for s in self._suffix_tuple},
                                                  reverse=True)]
        self._location = set(rules.location_markers)
        self._generic = set(rules.generic)
        self._not_org = set(rules.not_organisations)
        self._extra = list(rules.words)
        self._prepositions = tuple(rules.prepositions)
        self._sources = set(rules.source_verbs)
        self._places: set[str] = set()
        for region in topic.regions:
            self._places.update([region.name, *region.aliases])
            for place in region.places:
                self._places.update([place.name, *place.aliases])
        self._compounds = set(topic.compounds)
        self._jieba = None
        self._entries_of: dict[str, tuple[str | None, ...] | None] = {}

    def tokenizer(self):
        """A private jieba tokenizer whose dictionary knows the gazetteer and the
        suffixes, built on first use (a process that never meets a trigger never loads
        jieba), and the part-of-speech tags that are not nouns (`_tags`)."""
        if self._jieba is None:
            import jieba

            jieba.setLogLevel(logging.WARNING)  # no "Building prefix dict…" on stderr
            tokenizer = jieba.Tokenizer()
            tags = _tags(tokenizer)
            for words, tag in ((sorted(self._places), "ns"),
                               (sorted(self._compounds), "j"),  # 成渝: a pair, no party
                               ([w for w in [*self._suffixes, *self._extra] if len(w) > 1], "nt")):
                for word in words:
                    tokenizer.add_word(word, freq=None, tag=tag)
                    tags[word] = tag
            self._jieba = (tokenizer, tags)
        return self._jieba

    def _known(self, word: str) -> bool:
        """Whether `word` is in the tokenizer's dictionary (its FREQ also holds every
        prefix of a word, with frequency 0)."""
        return self.tokenizer()[0].FREQ.get(word, 0) > 0

    def _tokens(self, sentence: str) -> list[tuple[str, str]]:
        # Words by the tokenizer (its HMM finds unknown names such as 宇强), tags by the
        # dictionary: posseg's own tagging HMM would cost most of the extraction time.
        # A dictionary word without a kept tag is a noun; a word the dictionary lacks is
        # a number, punctuation, or taken as a name.
        tokenizer, tags = self.tokenizer()
        freq = tokenizer.FREQ
        out = []
        for word in tokenizer.lcut(sentence):
            tag = tags.get(word)
            if tag is None:
                if freq.get(word, 0) > 0:
                    tag = "n"
                else:
                    tag = "m" if word.isdigit() else "nz" if _NAME_CHARS.match(word) else "x"
            out.append((word, tag))
        return out

    def find(self, sentence: str) -> list[tuple[str, bool]]:
        """(party, is an organisation) in order of appearance; a party inside a longer
        one (遵义市 in 遵义市党政代表团) is left out."""
        tokens = self._tokens(sentence)
        found: list[tuple[int, str, bool]] = []
        # Names inside a 《title》 are the document's, not parties of this sentence.
        taken: set[int] = set()
        if "《" in sentence or "》" in sentence:
            depth = 0
            for i, (word, _flag) in enumerate(tokens):
                depth += word.count("《") - word.count("》")
                if depth > 0 or "》" in word:
                    taken.add(i)
        suffixes = self._suffix_tuple
        for j, (word, flag) in enumerate(tokens):
            if not word.endswith(suffixes):
                continue  # what _suffix says first, without the call
            suffix = None if j in taken else self._suffix(word, flag)
            if not suffix:
                continue
            k = j
            head = ""  # 从市 glued by jieba: the name starts after the preposition
            while k > 0 and j - k < 8 and self._name_like(*tokens[k - 1]):
                word_before = tokens[k - 1][0]
                if not self._known(word_before) and word_before.startswith(self._prepositions):
                    head = word_before
                    break
                k -= 1
            while not head and k < j and (tokens[k][0] in self._generic
                                          or tokens[k][0] in self._location):
                k += 1
            name = head[1:] + "".join(w for w, _f in tokens[k:j + 1])
            if len(name) - len(suffix) < 2 or len(name) > 40:
                continue  # 商协会, 该局: no name before the suffix
            start = k - 1 if head else k
            taken.update(range(start, j + 1))
            # 记者从市商务局获悉, 据市商务局介绍: who told the news, not who took part
            preposition = head[:1] if head else tokens[k - 1][0] if k > 0 else ""
            if preposition in ("从", "据") and any(
                    w in self._sources for w, _f in tokens[j + 1:j + 3]):
                continue
            found.append((start, name, True))
        j = 0
        n = len(tokens)
        places, location = self._places, self._location
        where = False  # inside a list of places after 在/赴 (赴成都市双流区、四川天府新区)
        while j < n:
            word = tokens[j][0]
            if word not in places:
                if word not in ("、", "和", "及"):
                    where = word in location
                j += 1
                continue
            if j in taken:
                j += 1
                continue
            k = j
            while k + 1 < n and k + 1 not in taken and tokens[k + 1][0] in places:
                k += 1  # 重庆市 江北区: one party
            after, after_flag = tokens[k + 1] if k + 1 < n else ("", "x")
            # After 在/赴/于 a place is where, not who; before a noun, a number, 的 or 至 it
            # is a modifier or a route's end (遵义企业, 重庆一家企业, 遵义至重庆段); before
            # 是 it is described (遵义是贵州对接成渝的桥头堡).
            modifier = (after_flag.startswith(("n", "j")) or after in ("的", "至", "到", "是")
                        or after_flag.startswith("m") and not after.isdigit())
            if not where and not modifier:
                found.append((j, "".join(w for w, _f in tokens[j:k + 1]), False))
            j = k + 1
        found.sort()
        names = list(dict.fromkeys((name, org) for _k, name, org in found))
        kept = set(self.tidy([name for name, _org in names]))
        return [(name, org) for name, org in names if name in kept]

    # -- one party, many written forms --

    def _entries(self, name: str) -> tuple[str | None, ...] | None:
        """The gazetteer entries `name` is written with from its start (重庆市江北区 →
        (重庆, 江北区)); None when it does not start with one. Kept per name: tidying and
        merging ask about the same parties again and again."""
        try:
            return self._entries_of[name]
        except KeyError:
            pass
        if len(self._entries_of) >= 4096:
            self._entries_of.clear()
        found = self._entries_of[name] = self._find_entries(name)
        return found

    def _find_entries(self, name: str) -> tuple[str | None, ...] | None:
        out, at = [], 0
        for surface, place, _names in self._tagger.mentions(name):
            if not name.startswith(surface, at) or place is None:
                break
            out.append(place)
            at += len(surface)
        if not out:
            return None
        return tuple(out) if at == len(name) else (*out, None)

    def place_of(self, name: str) -> str | None:
        """The gazetteer entry a place party names (重庆江津区 and 重庆市江津区: 江津区;
        贵州省遵义市: 遵义), None for an organisation."""
        places = self._entries(name)
        return places[-1] if places and places[-1] is not None else None

    def side(self, name: str) -> str:
        """Who a party stands for: its place, or the place its name starts with
        (遵义市党政代表团: 遵义), or the name itself."""
        places = self._entries(name)
        if not places:
            return name
        known = [p for p in places if p is not None]
        return known[-1] if known else name

    def sides(self, parties: list[str]) -> frozenset[str]:
        return frozenset(self.side(name) for name in parties)

    def tidy(self, parties: list[str]) -> list[str]:
        """One written form per party: the forms of one gazetteer entry (遵义, 遵义市,
        贵州省遵义市) become the most complete one, in the place of the first; a name
        inside a longer one goes (遵义市 in 遵义市党政代表团) unless both are places of
        different entries (遵义市 and 贵州省遵义市汇川区 are two parties)."""
        if len(parties) < 2:
            return list(parties)
        entry = {name: self.place_of(name) for name in parties}
        best: dict[str, str] = {}
        for name, place in entry.items():
            if place and len(name) > len(best.get(place, "")):
                best[place] = name
        out = _unique(best[entry[name]] if entry[name] else name for name in parties)
        return [name for name in out if not any(
            name != other and name in other and not (entry[name] and entry.get(other))
            for other in out)]

    def _suffix(self, word: str, flag: str) -> str | None:
        """The longest organisation suffix `word` ends with."""
        if not word.endswith(self._suffix_tuple) or word in self._not_org or flag.startswith(
                ("v", "a", "d")):
            return None
        return next((word[-n:] for n, ends in self._suffix_by_length if word[-n:] in ends), None)

    def _name_like(self, word: str, flag: str) -> bool:
        if word in self._location or word in self._compounds:
            return False
        if not _NAME_CHARS.match(word):
            return False  # punctuation
        return not flag.startswith(_STOP_FLAGS) or flag == "vn"


# --- merging mentions inside one article ----------------------------------------------


def _span(event: dict) -> tuple[date, date] | None:
    return date_range(event["date"], event["date_end"])


def _dates_agree(a: dict, b: dict) -> bool:
    sa, sb = _span(a), _span(b)
    return sa is None or sb is None or (sa[0] <= sb[1] and sb[0] <= sa[1])


def _bigrams(text: str) -> set[str]:
    return {text[i:i + 2] for i in range(len(text) - 1)}


def _keys_agree(a: str, b: str) -> bool:
    if not a or not b:
        return False
    if a in b or b in a:
        return True
    ga, gb = _bigrams(a), _bigrams(b)
    return len(ga & gb) / max(1, len(ga | gb)) >= 0.5


def _parties_agree(a: list[str], b: list[str]) -> bool:
    return any(x in y or y in x for x in a for y in b)


Sides = Callable[[list[str]], frozenset]


def _sides_differ(a: dict, b: dict, sides: Sides) -> bool:
    """Two agreements signed by different sides: neither's parties are among the other's
    (遵义市与江北区 and 遵义市与永川区 both sign a 合作协议)."""
    x, y = sides(a["parties"]), sides(b["parties"])
    return bool(x and y and not (x <= y or y <= x))


def _figures_differ(a: dict, b: dict) -> bool:
    """Two different sums or counts: two different happenings (730亿元 and 14.5亿元)."""
    x, y = a["amount_yuan"], b["amount_yuan"]
    if x and y and abs(x - y) > 0.005 * max(x, y):
        return True
    return bool(a["count"] and b["count"] and a["count"] != b["count"])


def _same(kept: dict, new: dict, sides: Sides) -> bool:
    if kept["type"] != new["type"] or not _dates_agree(kept, new) or _figures_differ(kept, new):
        return False
    if kept["type"] == "agreement":
        if _sides_differ(kept, new, sides):
            return False
        if bool(kept["key"]) != bool(new["key"]):
            # 签署协议 … 4家企业与汇川区签订入园协议: a named agreement is the unnamed one
            # told before only when the same sides sign it
            x, y = sides(kept["parties"]), sides(new["parties"])
            return bool(x) and x == y
    if kept["key"] and new["key"]:
        return _keys_agree(kept["key"], new["key"])
    # A year (今年以来…) is a summary, not the day's happening, unless the keys say so.
    if {kept["date_precision"], new["date_precision"]} >= {"year", "day"}:
        return False
    if _parties_agree(kept["parties"], new["parties"]):
        return True
    # Without a key on one side, the same places will do (a title and its body).
    return bool(set(kept["places"]) & set(new["places"]))


def _follows(kept: dict, detail: dict, sides: Sides) -> bool:
    """Whether a keyless mention can go on telling `kept`: nothing in it disagrees
    (another date, another sum, another named party)."""
    if not _dates_agree(kept, detail) or _figures_differ(kept, detail):
        return False
    if kept["type"] == "agreement" and _sides_differ(kept, detail, sides):
        return False
    return not (kept["parties"] and detail["parties"]
                and not _parties_agree(kept["parties"], detail["parties"]))


def _detail(event: dict) -> bool:
    """A mention without a key phrase (会上…, 该项目总投资…, 参加论坛) goes on telling
    the latest event of its type, when their dates agree."""
    return not event["key"]


_RANK = {"day": 3, "month": 2, "year": 1, None: 0}


def _described(event: dict) -> tuple:
    return (_RANK[event["date_precision"]], event["amount_yuan"] is not None, bool(event["key"]),
            len(event["parties"]), len(event["places"]))


def _merge(events: list[dict], sides: Sides) -> list[dict]:
    """One event per happening: a later mention that agrees with an earlier one in type,
    date and key or parties joins it; the better-described mention (a date first) stays,
    filled in from the other."""
    merged: list[dict] = []
    for event in events:
        index = next((i for i, kept in enumerate(merged) if _same(kept, event, sides)), None)
        if index is None and _detail(event):
            index = next((i for i in range(len(merged) - 1, -1, -1)
                          if merged[i]["type"] == event["type"]), None)
            if index is not None and not _follows(merged[index], event, sides):
                index = None
        if index is None:
            merged.append(event)
            continue
        merged[index] = _join(merged[index], event)
    return merged


def _join(kept: dict, event: dict) -> dict:
    """Two mentions of one happening: the better described, filled in from the other."""
    best, other = (event, kept) if _described(event) > _described(kept) else (kept, event)
    combined = dict(best)
    for field in ("amount_yuan", "count", "key"):
        if not combined[field] and other[field]:
            combined[field] = other[field]
            if field == "amount_yuan":
                combined["amount_approx"] = other["amount_approx"]
    for field in ("parties", "places", "regions"):
        combined[field] = _unique([*best[field], *other[field]])
    return combined


# --- the default extractor ------------------------------------------------------------


@cache
def default_extractor(path: Path | None = None) -> EventExtractor:
    """The extractor of `config_dir()`'s topic.yaml, built once per process (like
    `cyz.pipelines.tag.default_tagger`)."""
    return EventExtractor(load_topic(path or config_dir() / "topic.yaml"))


_BY_TOPIC: dict[int, tuple[TopicFile, EventExtractor]] = {}


def extractor_for(topic: TopicFile) -> EventExtractor:
    """One extractor per loaded topic file (a tagger's), built on first use."""
    kept = _BY_TOPIC.get(id(topic))
    if kept is None or kept[0] is not topic:
        kept = _BY_TOPIC[id(topic)] = (topic, EventExtractor(topic))
    return kept[1]


def extract_events(title_zh: str, text_zh: str, published_at: str | None) -> list[dict]:
    """The cooperation events of an article (simplified title and text), by the default
    topic.yaml: a list of `cyz.record.Event` dicts."""
    return default_extractor().extract(title_zh, text_zh, published_at)
