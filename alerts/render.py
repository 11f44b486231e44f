"""Alert mails: what a hit shows of an article, and the mail (plain text and HTML) of a rule.

Everything that comes from a page (title, outlet, snippet, URL, parties) is data, never
markup or header: HTML is escaped, links other than http(s) are not links, and no page
text reaches a mail header (the subject is the rule's name and a count).
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from cyz.alerts.match import matching_events
from cyz.config import AlertRule
from cyz.index.cjk import fold_aligned
from cyz.timeline import TYPE_LABELS

SNIPPET_CHARS = 160
SNIPPET_LEAD = 40  # characters shown before the first match
EVENTS_SHOWN = 3
# A mail tells this many stories in full; the rest of a big batch (a broad rule, a first
# run) as one line each, so the mail stays readable and every hit is still told.
FULL_STORIES = 50


# -- hits -------------------------------------------------------------------------------


def hit_of(record: dict, rule: AlertRule, terms: list[str], folded: str | None = None, *,
           details: bool = True) -> dict:
    """What the outbox keeps of a matched article: enough to write its mail later.
    `terms` are the rule's folded keywords (`Matcher.terms`), `folded` the record's
    folded text when the caller has it (`Matcher.rules_for`). Without `details`, the
    snippet and events are None: `add_details` makes them for the stories a mail
    shows in full (a broad rule's first run may match thousands)."""
    hit = {
        "id": record["id"],
        "story": record.get("cluster_id") or record["id"],
        "title": record.get("title") or "(无标题)",
        "url": record.get("url") or "",
        "source_id": record.get("source_id") or "",
        "source_name": record.get("source_name") or record.get("source_id") or "",
        "origin": record.get("origin") or "",
        "published_at": record.get("published_at"),
        "first": bool(record.get("is_first_in_cluster", True)),
        "snippet": None,
        "events": None,
    }
    if details:
        add_details(hit, record, rule, terms, folded)
    return hit


def add_details(hit: dict, record: dict, rule: AlertRule, terms: list[str],
                folded: str | None = None) -> None:
    """The hit's snippet and the events the rule asked for (all of them if none)."""
    events = matching_events(rule, record) if rule.event_types else record.get("events") or []
    hit["snippet"] = snippet(record, terms, folded)
    hit["events"] = [{"type": e.get("type"), "date": e.get("date"), "date_end": e.get("date_end"),
                      "parties": list(e.get("parties") or [])[:6], "planned": bool(e.get("planned"))}
                     for e in events[:EVENTS_SHOWN]]


def snippet(record: dict, terms: list[str], folded: str | None = None) -> list[list]:
    """A window of the text around the first of `terms` (folded keywords), as
    [text, is_match] pieces, in the page's own script (matching runs on the folded
    simplified copy, `folded` when the caller has it)."""
    original = record.get("text") or ""
    simplified = record.get("text_zh") or original
    # OpenCC almost always converts one character for one: then offsets carry over.
    shown = original if len(original) == len(simplified) else simplified
    if folded is None or len(folded) != len(simplified):
        folded = fold_aligned(simplified)
    firsts = [at for t in terms if (at := folded.find(t)) >= 0]
    start = max(0, min(firsts, default=0) - SNIPPET_LEAD)
    end = min(len(shown), start + SNIPPET_CHARS)
    spans = _merged(_spans(folded, terms, start, end))
    pieces: list[list] = []
    at = start
    for lo, hi in spans:
        if lo < at or hi > end:
            continue
        if lo > at:
            pieces.append([shown[at:lo], False])
        pieces.append([shown[lo:hi], True])
        at = hi
    if at < end:
        pieces.append([shown[at:end], False])
    if pieces:
        pieces[0][0] = ("…" if start else "") + pieces[0][0].lstrip()
        pieces[-1][0] = pieces[-1][0].rstrip() + ("…" if end < len(shown) else "")
    return [[" ".join(text.split()), marked] for text, marked in pieces]


def _spans(folded: str, terms: list[str], start: int, end: int) -> Iterable[tuple[int, int]]:
    """Where the terms occur within folded[start:end]."""
    for term in terms:
        at = folded.find(term, start, end)
        while at >= 0:
            yield at, at + len(term)
            at = folded.find(term, at + len(term), end)


def _merged(spans: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping or touching matches as one: 【成渝地区双城经济圈】, not 【成渝地区】【双城经济圈】."""
    out: list[tuple[int, int]] = []
    for lo, hi in sorted(spans):
        if out and lo <= out[-1][1]:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return out


def stories(hits: list[dict]) -> list[list[dict]]:
    """Hits grouped by story (reprints together), in the order their first copy came;
    each story's lead is the copy first in its reprint cluster, else the earliest."""
    grouped: dict[str, list[dict]] = {}
    for hit in hits:
        grouped.setdefault(hit["story"], []).append(hit)
    return [sorted(copies, key=lambda h: (not h.get("first", True), h.get("published_at") or "~"))
            for copies in grouped.values()]


# -- the mail ---------------------------------------------------------------------------


def subject(rule: AlertRule, count: int, digest: bool) -> str:
    name = " ".join(rule.name.split())  # the rule's name, on one line whatever the YAML held
    kind = " · 每日摘要" if digest else ""
    return f"[cyz] {name}{kind} · {count} 篇新文章"


def _message(subject_line: str, rule_id: str, recipients: list[str], sender: str,
             now: datetime) -> EmailMessage:
    """A mail's headers; the rule id names it for filters (`X-Cyz-Rule`) and in its
    Message-ID."""
    msg = EmailMessage()
    msg["Subject"] = subject_line
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = format_datetime(now)
    domain = sender.rsplit("@", 1)[-1].strip(" >") or "localhost"
    msg["Message-ID"] = make_msgid(idstring=f"cyz.{rule_id.lstrip('_')}", domain=domain)
    msg["X-Cyz-Rule"] = rule_id
    return msg


def compose(rule: AlertRule, told: list[list[dict]], *, sender: str, now: datetime,
            digest: bool = False) -> EmailMessage:
    """The mail of `rule` telling `told` (stories, each a list of copies, lead first)."""
    msg = _message(subject(rule, len(told), digest), rule.id, rule.recipients, sender, now)
    # base64 outright: the content manager would otherwise encode a long body both
    # ways to pick the shorter.
    msg.set_content(_plain(rule, told, digest), cte="base64")
    msg.add_alternative(_html(rule, told, digest), subtype="html", cte="base64")
    return msg


def _when(value: str | None) -> str:
    if not value:
        return "日期不详"
    return value[:16].replace("T", " ") if len(value) >= 16 else value[:10]


def _outlets(copies: list[dict]) -> list[str]:
    return list(dict.fromkeys(c["origin"] or c["source_name"] for c in copies[1:]))


def _event_line(event: dict) -> str:
    label = TYPE_LABELS.get(event.get("type") or "", event.get("type") or "")
    when = event.get("date") or "日期不详"
    if event.get("date_end") and event["date_end"] != event.get("date"):
        when += f"至{event['date_end']}"
    parties = "、".join(event.get("parties") or [])
    planned = "（计划）" if event.get("planned") else ""
    return " ".join(p for p in (f"{label}{planned}", when, parties) if p)


def _source_line(hit: dict) -> str:
    parts = [hit["source_name"]]
    if hit["origin"] and hit["origin"] != hit["source_name"]:
        parts.append(f"来源：{hit['origin']}")
    parts.append(_when(hit["published_at"]))
    return " · ".join(parts)


def _footer(rule: AlertRule, digest: bool) -> str:
    mode = f"每日摘要（{rule.digest_at}，北京时间）" if digest else "即时提醒"
    return (f"此邮件由 cyz 提醒规则 {rule.id}（{rule.name}，{mode}）发送；"
            "修改或停用该规则请编辑 config/alerts.yaml。")


def _plain(rule: AlertRule, told: list[list[dict]], digest: bool) -> str:
    lines = [f"{rule.name}：{len(told)} 篇新文章", ""]
    for number, copies in enumerate(told[:FULL_STORIES], 1):
        lead = copies[0]
        lines.append(f"{number}. {lead['title']}")
        lines.append(f"   {_source_line(lead)}")
        text = "".join(f"【{t}】" if marked else t for t, marked in lead["snippet"] or ())
        if text:
            lines.append(f"   {text}")
        lines.append(f"   {lead['url']}")
        if len(copies) > 1:
            lines.append(f"   转载 {len(copies) - 1}：{', '.join(_outlets(copies))}")
        for event in lead["events"] or ():
            lines.append(f"   事件：{_event_line(event)}")
        lines.append("")
    if len(told) > FULL_STORIES:
        lines.append(f"另有 {len(told) - FULL_STORIES} 篇：")
        for number, copies in enumerate(told[FULL_STORIES:], FULL_STORIES + 1):
            lead = copies[0]
            lines.append(f"{number}. {lead['title']}（{_source_line(lead)}）{lead['url']}")
        lines.append("")
    lines += ["--", _footer(rule, digest)]
    return "\n".join(" ".join(line.split("\r")) for line in lines) + "\n"


def _link(url: str, label: str) -> str:
    text = html.escape(label)
    if url.lower().startswith(("http://", "https://")):
        return f'<a href="{html.escape(url, quote=True)}">{text}</a>'
    return text


def _html(rule: AlertRule, told: list[list[dict]], digest: bool) -> str:
    esc = html.escape
    items = []
    for copies in told[:FULL_STORIES]:
        lead = copies[0]
        parts = [f'<li style="margin-bottom:1em"><div style="font-size:1.1em">'
                 f"<b>{_link(lead['url'], lead['title'])}</b></div>",
                 f'<div style="color:#555">{esc(_source_line(lead))}</div>']
        text = "".join(f"<mark>{esc(t)}</mark>" if marked else esc(t)
                       for t, marked in lead["snippet"] or ())
        if text:
            parts.append(f"<div>{text}</div>")
        if len(copies) > 1:
            parts.append(f'<div style="color:#555">转载 {len(copies) - 1}：'
                         f"{esc(', '.join(_outlets(copies)))}</div>")
        for event in lead["events"] or ():
            parts.append(f"<div>事件：{esc(_event_line(event))}</div>")
        parts.append(f'<div style="font-size:0.85em;color:#777">{esc(lead["url"])}</div></li>')
        items.append("".join(parts))
    for copies in told[FULL_STORIES:]:
        lead = copies[0]
        items.append(f"<li>{_link(lead['url'], lead['title'])} "
                     f'<span style="color:#555">{esc(_source_line(lead))}</span></li>')
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{esc(rule.name)}</title>'
            f"</head><body><h2>{esc(rule.name)}：{len(told)} 篇新文章</h2><ol>"
            + "".join(items)
            + f'</ol><hr><p style="font-size:0.85em;color:#777">{esc(_footer(rule, digest))}</p>'
            "</body></html>\n")


def compose_health(problems: list, *, recipients: list[str], sender: str, now: datetime,
                   data_dir: str) -> EmailMessage:
    """The operator's mail of crawl-health problems (`cyz.health.Problem`s)."""
    errors = sum(p.severity == "error" for p in problems)
    msg = _message(f"[cyz] crawl health: {len(problems)} problem(s)"
                   + (f", {errors} error(s)" if errors else ""), "_health", recipients, sender, now)
    footer = (f"Data dir {data_dir}. `cyz health` shows the state now, `cyz runs` the runs; "
              "each problem is mailed once a day while it lasts (CYZ_OPERATOR_EMAIL).")
    plain = [f"{p.severity.upper()}: {' '.join(p.message.split())}" for p in problems]
    msg.set_content("\n".join([*plain, "", "--", footer]) + "\n")
    items = "".join(f"<li><b>{html.escape(p.severity)}</b>: {html.escape(p.message)}</li>"
                    for p in problems)
    msg.add_alternative(f'<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><ul>'
                        f"{items}</ul><hr><p>{html.escape(footer)}</p></body></html>\n",
                        subtype="html")
    return msg
