"""Publication dates from meta tags, date lines and URLs, as ISO 8601 with +08:00.

Chinese pages state local (Beijing) time without a zone, so +08:00 is implied
unless the page itself gives an offset.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

from cyz.pipelines import rules

CST = timezone(timedelta(hours=8))

# Meta names/properties/itemprops that carry the publication time, best first.
META_KEYS = (
    "article:published_time",
    "og:article:published_time",
    "og:release_date",
    "datepublished",
    "publishdate",
    "pubdate",
    "publish_date",
    "publishtime",
    "publish_time",
    "firstpublishedtime",
    "ptime",
    "release_date",
    "dc.date.issued",
    "dcterms.issued",
    "dc.date",
    "sailthru.date",
    "parsely-pub-date",
    "weibo:article:create_at",
    "unix:ct",  # WeChat's `var ct = "..."`, passed on by the extractor
)

_SEP = r"\s*[-/.年]\s*"
# The zone belongs to the time: "2007-08-20-23:59:59" is a date and a time, no zone.
_TIME = (r"(?:\s*[T\s日]?\s*(\d{1,2})\s*[:：时時]\s*(\d{1,2})(?:\s*[:：分]\s*(\d{1,2}))?"
         r"(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?)?")
FULL_DATE = re.compile(
    r"(?<!\d)((?:19|20)\d{2})" + _SEP + r"(\d{1,2})" + _SEP.replace("年", "月")
    + r"(\d{1,2})(?!\d)\s*日?" + _TIME
)
# "12-14 06:22:48", "12月14日 06:22": no year, but a time makes it a date line.
SHORT_DATE = re.compile(
    r"(?<![\d\-/.])(\d{1,2})\s*[-/月]\s*(\d{1,2})(?!\d)\s*日?\s+(\d{1,2})[:：](\d{2})(?:[:：](\d{2}))?"
)
# "2024年12月5日" without time is covered by FULL_DATE; "12月5日" alone is too
# common in body text ("6月4日，...") to mean the publication date.

_URL_PATTERNS = (
    re.compile(r"/t((?:19|20)\d{2})(\d{2})(\d{2})_"),            # TRS: t20241205_123.html
    re.compile(r"/((?:19|20)\d{2})-(\d{1,2})/(\d{1,2})/"),       # /2024-12/05/
    re.compile(r"/((?:19|20)\d{2})(\d{2})/(\d{2})/"),            # /202412/05/
    re.compile(r"/((?:19|20)\d{2})/(\d{2})(\d{2})/"),            # /n2/2024/1205/
    re.compile(r"/((?:19|20)\d{2})/(\d{1,2})/(\d{1,2})/"),       # /2024/12/5/
    re.compile(r"[/_-]((?:19|20)\d{2})(\d{2})(\d{2})(?:\d{2,})?[/_.\-]"),  # /20241205/
    re.compile(r"[/_-]((?:19|20)\d{2})-(\d{2})-(\d{2})[/_.\-]"),  # /2024-12-05/
)
_URL_YEAR = re.compile(r"[/_-]((?:19|20)\d{2})(?:[/_\-]|\d{2}[/_\-])")
_IMAGE_DATE = re.compile(
    r"((?:19|20)\d{2})-?(\d{2})-?(\d{2})[\w\-]*\.(?:jpe?g|png|gif|webp)", re.IGNORECASE
)


# Keys under which embedded page state (JSON in <script>, JS objects) carries the
# publication time of the item; ISO strings or epoch seconds/milliseconds. Matched by
# their words rather than listed one by one, so `createTime`, `add_time`, `pubDate`,
# `firstPublishTime` or `showtime` are all found; update/modify/expire times are not.
_STATE_KEY = (
    r"(?:first_?)?(?:publish(?:ed)?|pub|release[ds]?|create[ds]?|add(?:ed)?|input|post(?:ed)?|show|"
    r"issue[ds]?|c)_?(?:date_?time|date|time|at|_?ts)(?:_?str)?|date_?published|dt_?publish"
)
_STATE_DATE = re.compile(
    r"""(?<![\w$])["']?(?:""" + _STATE_KEY + r""")["']?\s*[:=]\s*["']?"""
    r"""(?P<value>\d{10}(?:\d{3})?(?!\d)|(?:19|20)\d{2}[-/.年][^"',;}\]<>\n]{3,30})""",
    re.IGNORECASE,
)
# Beyond this distance a date in the state is about some other item than the title's.
_STATE_NEAR = 2000
# Relative labels on feeds and self-media pages ("3小时前", "昨天 08:15").
_RELATIVE = re.compile(
    r"(?P<now>刚刚|剛剛)|(?P<n>\d{1,3})\s*(?P<unit>秒|分钟|分鐘|分|小时|小時|个小时|個小時|天)前"
    r"|(?P<day>今天|今日|昨天|昨日|前天)\s*(?:(?P<h>\d{1,2})[:：](?P<mi>\d{2}))?"
)


@dataclass
class Candidate:
    when: datetime
    has_time: bool
    pos: int


def _make(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0, zone: str | None = None):
    try:
        tz = CST
        if zone:
            if zone == "Z":
                tz = UTC
            else:
                sign = -1 if zone[0] == "-" else 1
                digits = zone[1:].replace(":", "")
                tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:4])))
        return datetime(y, mo, d, h, mi, s, tzinfo=tz)
    except ValueError:
        return None


def iso(when: datetime) -> str:
    return when.isoformat(timespec="seconds")


def parse_date(value: str) -> tuple[datetime, bool] | None:
    """Parse one date value (meta content, a date line); (datetime, has_time) or None."""
    value = (value or "").strip()
    if not value:
        return None
    if value.isdigit() and len(value) in (10, 13):  # unix seconds or milliseconds
        seconds = int(value) / (1000 if len(value) == 13 else 1)
        try:
            return datetime.fromtimestamp(seconds, CST), True
        except (OverflowError, OSError, ValueError):
            return None
    match = FULL_DATE.search(value)
    if not match:
        compact = re.search(r"(?<!\d)((?:19|20)\d{2})(\d{2})(\d{2})(?:(\d{2})(\d{2})(\d{2})?)?(?!\d)", value)
        if not compact:
            return None
        y, mo, d, h, mi, s = compact.groups()
        when = _make(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0))
        return (when, bool(h)) if when else None
    y, mo, d, h, mi, s, zone = match.groups()
    when = _make(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), zone)
    return (when, h is not None) if when else None


def url_date(url: str | None) -> datetime | None:
    if not url:
        return None
    for pattern in _URL_PATTERNS:
        match = pattern.search(url)
        if match:
            when = _make(*(int(g) for g in match.groups()))
            if when:
                return when
    return None


def _year_hints(text: str, url: str | None, context: str = "") -> list[tuple[int, int | None, int | None]]:
    """(year, month, day) hints from the URL, dated image names and full dates elsewhere."""
    hints: list[tuple[int, int | None, int | None]] = []
    when = url_date(url)
    if when:
        hints.append((when.year, when.month, when.day))
    elif url:
        match = _URL_YEAR.search(url.split("?")[0])
        if match:
            hints.append((int(match.group(1)), None, None))
    for match in _IMAGE_DATE.finditer(text):
        hints.append((int(match.group(1)), int(match.group(2)), int(match.group(3))))
    # A full date elsewhere on the page (scripts, data attributes) with the same month
    # and day dates a year-less line; other full dates are no evidence.
    for match in FULL_DATE.finditer(context[:2_000_000]):
        hints.append((int(match.group(1)), int(match.group(2)), int(match.group(3))))
    return hints


def text_candidates(
    text: str, url: str | None = None, reference: datetime | None = None, context: str = ""
) -> list[Candidate]:
    """Dates found in `text`, in order of appearance."""
    reference = reference or datetime.now(CST)
    if reference.tzinfo is None:
        reference = reference.replace(tzinfo=CST)
    found: list[Candidate] = []
    taken: list[tuple[int, int]] = []
    for match in FULL_DATE.finditer(text):
        # A dated image name is a hint for the year, not a publication line.
        tail = text[match.end():match.end() + 40]
        if re.match(r"[\w\-]*\.(?:jpe?g|png|gif|webp)", tail, re.IGNORECASE):
            continue
        y, mo, d, h, mi, s, zone = match.groups()
        when = _make(int(y), int(mo), int(d), int(h or 0), int(mi or 0), int(s or 0), zone)
        if when:
            found.append(Candidate(when, h is not None, match.start()))
            taken.append(match.span())
    hints = None
    for match in SHORT_DATE.finditer(text):
        if any(a <= match.start() < b for a, b in taken):
            continue
        mo, d, h, mi, s = (int(g) if g else 0 for g in match.groups())
        if hints is None:
            hints = _year_hints(text, url, context)
        year = None
        for hy, hm, hd in hints:  # a hint on the same month/day wins, then URL year
            if hm == mo and hd == d:
                year = hy
                break
        if year is None and hints and hints[0][1] is None:
            year = hints[0][0]
        if year is None:
            # The most recent such date that is not in the future.
            year = reference.year
            when = _make(year, mo, d, h, mi, s)
            if when and when > reference + timedelta(days=1):
                year -= 1
        when = _make(year, mo, d, h, mi, s)
        if when:
            found.append(Candidate(when, True, match.start()))
    found.sort(key=lambda c: c.pos)
    return found


def _title_anchor(title: str) -> re.Pattern | None:
    """The title's first characters, whitespace-insensitive, as found in script text."""
    key = re.sub(r"\s+", "", title or "")[:16]
    if len(key) < 4:
        return None
    plain = r"\s*".join(re.escape(ch) for ch in key)
    escaped = re.escape(json.dumps(key)[1:-1])  # "\u8fd0\u8425..." in ASCII-only JSON
    return re.compile(f"{plain}|{escaped}", re.IGNORECASE)


def state_date(state: str, title: str = "", limit: datetime | None = None) -> tuple[datetime, bool] | None:
    """The publication time carried by embedded page state (JSON/JS in scripts).

    Single-page apps ship the article as JSON; the same state often lists related
    items with their own dates, so the date nearest to the page's title wins. With no
    title in the state, dates are trusted only when they all fall on one day.
    """
    if not state:
        return None
    hits: list[tuple[int, datetime, bool]] = []
    for match in _STATE_DATE.finditer(state):
        parsed = parse_date(match.group("value"))
        if not parsed or parsed[0].year < 1995 or (limit and parsed[0] > limit):
            continue
        hits.append((match.start(), *parsed))
    if not hits:
        return None
    anchor = _title_anchor(title)
    anchors = [m.start() for m in anchor.finditer(state)] if anchor else []
    if anchors:
        def closeness(hit: tuple[int, datetime, bool]) -> tuple[bool, int]:
            # Same object first (no brace between date and title), then distance.
            a = min(anchors, key=lambda x: abs(x - hit[0]))
            between = state[min(a, hit[0]):max(a, hit[0])]
            return bool(re.search(r"[{}]", between)), abs(a - hit[0])

        pos, when, has_time = min(hits, key=closeness)
        if closeness((pos, when, has_time))[1] <= _STATE_NEAR:
            return when, has_time
        return None
    if len({h[1].astimezone(CST).date() for h in hits}) == 1:
        return hits[0][1], hits[0][2]
    return None


def relative_date(text: str, fetched: datetime) -> tuple[datetime, bool] | None:
    """A relative label on a short line ("刚刚", "5分钟前", "昨天 08:15") against the fetch time."""
    if fetched.tzinfo is None:
        fetched = fetched.replace(tzinfo=CST)
    local = fetched.astimezone(CST)
    for line in (text or "").splitlines():
        line = line.strip()
        # Body sentences ("三天前，…") are not labels; labels sit on short info lines.
        if not line or len(line) > 40 or "。" in line or "，" in line:
            continue
        match = _RELATIVE.search(line)
        if not match:
            continue
        if match.group("now"):
            return local, True
        if match.group("n"):
            n = int(match.group("n"))
            unit = match.group("unit")
            if unit == "天":
                return local - timedelta(days=n), False
            seconds = {"秒": 1, "天": 86400}.get(unit, 3600 if "时" in unit or "時" in unit else 60)
            return local - timedelta(seconds=n * seconds), True
        back = {"今天": 0, "今日": 0, "昨天": 1, "昨日": 1, "前天": 2}[match.group("day")]
        day = local - timedelta(days=back)
        if match.group("h"):
            when = _make(day.year, day.month, day.day, int(match.group("h")), int(match.group("mi")))
            if when:
                return when, True
        return _make(day.year, day.month, day.day), False
    return None


def _normalize_meta(meta: Mapping[str, object] | None) -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in (meta or {}).items():
        if isinstance(value, (list, tuple)):
            value = value[0] if value else ""
        if value is None:
            continue
        out.setdefault(str(key).strip().lower(), str(value))
    return out


@dataclass
class Published:
    """The publication time chosen for a page and the evidence that won.

    `evidence` is one of: `meta:<name>` (a meta tag, JSON-LD or WeChat's `ct`), `byline`
    (the date line under the headline), `text` (a date line elsewhere near the article),
    `url`, `state` (embedded script state), `htmldate` (trafilatura's date finder, when
    our own rules find nothing), `relative` ("昨天 08:15" against the fetch time).
    """

    iso: str | None = None
    evidence: str | None = None


# A date the page labels as its update or print time is not its publication time.
_NOT_PUBLISHED = re.compile(r"(?:更新|修改|修订|修訂|最后|最後|打印|访问|訪問|截至|截止|updated?)\s*"
                            r"(?:时间|時間|日期|于|於)?\s*[:：]?\s*$", re.IGNORECASE)


def byline_date(text: str, url: str | None = None, reference: datetime | None = None,
                context: str = "", limit: datetime | None = None) -> Candidate | None:
    """The first publication-like date in the lines under the headline."""
    for c in text_candidates(text, url, reference, context):
        if limit and c.when > limit:
            continue
        if _NOT_PUBLISHED.search(text[max(0, c.pos - 12):c.pos]):
            continue
        return c
    return None


def html_date(html: str, url: str | None = None, limit: datetime | None = None) -> datetime | None:
    """htmldate's guess (trafilatura's own date finder) at the original publication day."""
    if not html:
        return None
    try:
        from htmldate import find_date

        found = find_date(html, original_date=True, extensive_search=False, url=url,
                          outputformat="%Y-%m-%dT%H:%M:%S")
    except Exception:  # a page htmldate cannot read has no date from it
        return None
    parsed = parse_date(found or "")
    if not parsed or (limit and parsed[0] > limit):
        return None
    return parsed[0]


def find_published(*args, **kwargs) -> str | None:
    """`decide_published(...)`'s ISO time alone."""
    return decide_published(*args, **kwargs).iso


def decide_published(
    meta: Mapping[str, object] | None,
    text: str,
    url: str | None = None,
    reference: datetime | None = None,
    context: str = "",
    *,
    byline: str = "",
    state: str = "",
    title: str = "",
    fetched: datetime | None = None,
    html: str = "",
) -> Published:
    """Best publication time as ISO 8601 (+08:00 unless the page gives a zone), and why.

    `meta` maps lower-cased meta names/properties to their content; `byline` is the
    page text from the headline to the body (the info bar), `text` other places where a
    date line is expected (first lines of the article, dated elements), in reading
    order. Order of trust:

    1. the byline date when a meta tag gives another day (templates stamp update or
       build dates into meta tags; the reader sees the byline), else the meta tag;
    2. a visible date line, unless the URL (written by the CMS at publication) says
       another day;
    3. embedded script `state` (nearest to `title`), htmldate over `html`, the URL;
    4. relative labels ("昨天 08:15") counted back from `fetched` (default: now).
    """
    reference = reference or datetime.now(CST)
    if reference.tzinfo is None:
        reference = reference.replace(tzinfo=CST)
    limit = reference + timedelta(days=1)
    meta_map = _normalize_meta(meta)
    from_url = url_date(url)

    meta_hit: tuple[datetime, bool] | None = None
    meta_key = ""
    for key in META_KEYS:
        parsed = parse_date(meta_map.get(key, ""))
        if parsed and parsed[0] <= limit:
            meta_hit, meta_key = parsed, key
            break

    on_byline = byline_date(byline, url, reference, context, limit) if byline else None
    if on_byline and meta_hit and on_byline.when.date() != meta_hit[0].date() and rules.on("dates.byline_over_meta"):
        return Published(iso(on_byline.when), "byline")

    joined = f"{byline}\n{text}" if byline else text
    candidates = [c for c in text_candidates(joined or "", url, reference, context) if c.when <= limit]
    best: Candidate | None = None
    if candidates:
        def score(c: Candidate) -> tuple:
            same_url_day = bool(from_url and c.when.date() == from_url.date())
            same_meta_day = bool(meta_hit and c.when.date() == meta_hit[0].date())
            return (same_meta_day or same_url_day, c.has_time, -c.pos)
        best = max(candidates, key=score)
    where = "byline" if best and byline and best.pos < len(byline) else "text"

    if meta_hit and meta_hit[1]:
        return Published(iso(meta_hit[0]), f"meta:{meta_key}")
    if best and meta_hit and best.when.date() == meta_hit[0].date():
        return Published(iso(best.when), where)
    if meta_hit:
        return Published(iso(meta_hit[0]), f"meta:{meta_key}")
    if best and from_url and best.when.date() != from_url.date() and rules.on("dates.url_over_text"):
        # The URL is written by the CMS at publication; a differing text date is more
        # likely a "today" widget or a date mentioned in passing.
        return Published(iso(from_url), "url")
    if best:
        return Published(iso(best.when), where)
    from_state = state_date(state, title, limit) if rules.on("dates.state") else None
    if from_state:
        # State often holds UTC ("…T00:31:40.109Z"); the page's own day is Beijing's.
        when = from_state[0].astimezone(CST)
        if not (from_url and when.date() != from_url.date()):
            return Published(iso(when), "state")
    if from_url:
        return Published(iso(from_url), "url")
    guessed = html_date(html, url, limit) if rules.on("dates.htmldate") else None
    if guessed:
        return Published(iso(guessed), "htmldate")
    relative = relative_date(joined or "", fetched or datetime.now(CST))
    if relative:
        return Published(iso(relative[0]), "relative")
    return Published()
