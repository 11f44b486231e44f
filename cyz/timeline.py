"""The cooperation-event timeline: `cyz events`, the demo's last table, `cyz export --events`.

Events come from the engine as happenings (`cyz.record.Happening`): one real-world event
with every article that reported it. This module asks for them and words them for the
office: Chinese type labels, dates as precise as the reports were, amounts in 亿元.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import groupby

from rich.console import Console
from rich.markup import escape

from cyz.index import open_engine
from cyz.index.base import Engine, EventFilters, EventResult

# What the office calls each type (DESIGN.md's types, in the words).
TYPE_LABELS = {
    "agreement": "签约", "visit": "考察", "project": "项目", "conference": "会议",
    "policy": "政策", "transport": "交通", "other": "其他",
}
# `--type` takes either the English id or the Chinese label.
TYPE_BY_LABEL = {label: type_id for type_id, label in TYPE_LABELS.items()}

UNDATED = "日期不详"
EXPORT_COLUMNS = ["event_id", "date", "date_end", "date_precision", "type", "type_label",
                  "planned", "parties", "places", "regions", "amount_yuan", "amount_approx",
                  "count", "key", "sentence", "report_count", "outlets", "first_reported_at",
                  "title", "url"]


def event_type(value: str) -> str:
    """An event type from a user's `--type` (agreement or 签约); ValueError names the valid ones."""
    value = value.strip()
    if value in TYPE_LABELS:
        return value
    if value in TYPE_BY_LABEL:
        return TYPE_BY_LABEL[value]
    valid = ", ".join(f"{t} ({label})" for t, label in TYPE_LABELS.items())
    raise ValueError(f"unknown event type {value!r}; valid types: {valid}")


def find_events(filters: EventFilters | None = None, *, limit: int = 50, offset: int = 0,
                engine: Engine | None = None) -> EventResult:
    """Happenings matching `filters`, newest event date first."""
    own = engine is None
    engine = engine or open_engine()
    try:
        engine.init()
        return engine.search_events(filters or EventFilters(), limit=limit, offset=offset)
    finally:
        if own:
            engine.close()


# -- wording ----------------------------------------------------------------------------


def when(event: dict) -> str:
    """The event's date as precise as its reports: 2024-12-04, 2024-04-20至22, 2024-07, 2024;
    an undated one by its first report: 日期不详（报道于 2024-12-05）."""
    start, end = event.get("date"), event.get("date_end")
    if not start:
        reported = (event.get("first_reported_at") or "")[:10]
        return f"{UNDATED}（报道于 {reported}）" if reported else UNDATED
    if not end or end == start:
        return start
    # Only what differs from the start: 2024-04-20至22, 2024-04-28至05-02, 2024-12-30至2025-01-02.
    for shared in (8, 5):  # "YYYY-MM-" then "YYYY-"
        if len(start) == len(end) and start[:shared] == end[:shared] and len(start) > shared:
            return f"{start}至{end[shared:]}"
    return f"{start}至{end}"


def amount(event: dict) -> str:
    """136.8亿元, 约18.6亿元, 4000万元; '' when the event names no money."""
    yuan = event.get("amount_yuan")
    if yuan is None:
        return ""
    prefix = "约" if event.get("amount_approx") else ""
    if yuan >= 1e8:
        return f"{prefix}{_trim(yuan / 1e8)}亿元"
    if yuan >= 1e4:
        return f"{prefix}{_trim(yuan / 1e4)}万元"
    return f"{prefix}{_trim(yuan)}元"


def _trim(number: float) -> str:
    return f"{number:.2f}".rstrip("0").rstrip(".")


def month_of(event: dict) -> str:
    """The heading an event is listed under: its month (its year when that is all the
    reports say); an undated event under the month it was first reported, the order
    the engines give."""
    if event.get("date_precision") == "year" and event.get("date"):
        return event["date"][:4]
    start = event.get("date_from") or (event.get("first_reported_at") or "")[:10]
    return start[:7] if len(start) >= 7 else UNDATED


def outlets(event: dict) -> str:
    names = event.get("outlets") or []
    count = event.get("report_count") or len(event.get("reports") or [])
    shown = "、".join(names[:4]) + ("等" if len(names) > 4 else "")
    return f"{shown}（{count} 篇报道）" if shown else f"{count} 篇报道"


def print_timeline(result: EventResult, out: Console, *, compact: bool = False) -> None:
    """The terminal timeline: grouped by month, newest first; per event its date, type,
    parties and amount, the evidence sentence (not when `compact`) and its reports."""
    events = result.events
    if not events:
        out.print("no cooperation events found")
        return
    for month, group in groupby(events, key=month_of):
        out.print(f"\n[bold underline]{escape(month)}[/bold underline]")
        for event in group:
            label = TYPE_LABELS.get(event["type"], event["type"])
            planned = " [yellow](计划)[/yellow]" if event.get("planned") else ""
            parties = "、".join(event.get("parties") or []) or "-"
            money = amount(event)
            count = f" · {event['count']}个" if event.get("count") else ""
            line = (f"  [bold]{escape(when(event))}[/bold]  [cyan]{label}[/cyan]{planned}  "
                    f"{escape(parties)}{'  ' + escape(money) if money else ''}{count}")
            if compact:
                out.print(f"{line}  [dim]← {escape(outlets(event))}[/dim]")
                continue
            out.print(line)
            out.print(f"    {escape(event.get('sentence') or '')}", style="dim")
            out.print(f"    ← {escape(outlets(event))}")
    more = result.total - len(events)
    if more > 0:
        out.print(f"\n… {more} more (use --limit, or --json)")


def export_rows(events: Iterable[dict]) -> Iterator[dict]:
    """Flat rows for `cyz export --events --format csv` (lists joined with ';')."""
    for event in events:
        row = {column: event.get(column) for column in EXPORT_COLUMNS}
        row["type_label"] = TYPE_LABELS.get(event.get("type", ""), "")
        row["regions"] = [r["name"] if isinstance(r, dict) else r for r in event.get("regions") or []]
        yield row
