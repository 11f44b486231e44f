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
from urllib.parse import urlsplit

from cyz.alerts.match import fold_keyword, matching_events
from cyz.config import AlertRule
from cyz.index.cjk import fold_aligned
from cyz.timeline import TYPE_LABELS

SNIPPET_CHARS = 160
SNIPPET_LEAD = 40  # characters shown before the first match
EVENTS_SHOWN = 3


# -- hits -------------------------------------------------------------------------------


def hit_of(record: dict, rule: AlertRule) -> dict:
    """What the outbox keeps of a matched article: enough to write its mail later."""
    events = matching_events(rule, record) if rule.event_types else record.get("events") or []
    return {
        "id": record["id"],
        "story": record.get("cluster_id") or record["id"],
        "title": record.get("title") or "(无标题)",
        "url": record.get("url") or "",
        "source_id": record.get("source_id") or "",
        "source_name": record.get("source_name") or record.get("source_id") or "",
        "origin": record.get("origin") or "",
        "published_at": record.get("published_at"),
        "first": bool(record.get("is_first_in_cluster", True)),
        "snippet": snippet(record, [*rule.all, *rule.any]),
        "events": [{"type": e.get("type"), "date": e.get("date"), "date_end": e.get("date_end"),
                    "parties": list(e.get("parties") or [])[:6], "planned": bool(e.get("planned"))}
                   for e in events[:EVENTS_SHOWN]],
    }


def snippet(record: dict, words: Iterable[str]) -> list[list]:
    """A window of the text around the first keyword, as [text, is_match] pieces, in the
    page's own script (matching runs on the simplified copy)."""
    original = record.get("text") or ""
    simplified = record.get("text_zh") or original
    # OpenCC almost always converts one character for one: then offsets carry over.
    shown = original if len(original) == len(simplified) else simplified
    folded = fold_aligned(simplified)
    terms = [t for t in dict.fromkeys(fold_keyword(w) for w in words) if t]
    spans = _merged(_spans(folded, terms))
    first = spans[0][0] if spans else 0
    start = max(0, first - SNIPPET_LEAD)
    end = min(len(shown), start + SNIPPET_CHARS)
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


def _spans(folded: str, terms: list[str]) -> Iterable[tuple[int, int]]:
    for term in terms:
        at = folded.find(term)
        while at >= 0:
            yield at, at + len(term)
            at = folded.find(term, at + len(term))


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


def compose(rule: AlertRule, told: list[list[dict]], *, sender: str, now: datetime,
            digest: bool = False) -> EmailMessage:
    """The mail of `rule` telling `told` (stories, each a list of copies, lead first)."""
    msg = EmailMessage()
    msg["Subject"] = subject(rule, len(told), digest)
    msg["From"] = sender
    msg["To"] = ", ".join(rule.recipients)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(idstring=f"cyz.{rule.id}",
                                   domain=sender.rsplit("@", 1)[-1].strip(" >") or "localhost")
    msg["X-Cyz-Rule"] = rule.id
    msg.set_content(_plain(rule, told, digest))
    msg.add_alternative(_html(rule, told, digest), subtype="html")
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
    for number, copies in enumerate(told, 1):
        lead = copies[0]
        lines.append(f"{number}. {lead['title']}")
        lines.append(f"   {_source_line(lead)}")
        text = "".join(f"【{t}】" if marked else t for t, marked in lead["snippet"])
        if text:
            lines.append(f"   {text}")
        lines.append(f"   {lead['url']}")
        if len(copies) > 1:
            lines.append(f"   转载 {len(copies) - 1}：{', '.join(_outlets(copies))}")
        for event in lead["events"]:
            lines.append(f"   事件：{_event_line(event)}")
        lines.append("")
    lines += ["--", _footer(rule, digest)]
    return "\n".join(" ".join(line.split("\r")) for line in lines) + "\n"


def _link(url: str, label: str) -> str:
    text = html.escape(label)
    if urlsplit(url).scheme in ("http", "https"):
        return f'<a href="{html.escape(url, quote=True)}">{text}</a>'
    return text


def _html(rule: AlertRule, told: list[list[dict]], digest: bool) -> str:
    esc = html.escape
    items = []
    for copies in told:
        lead = copies[0]
        parts = [f'<li style="margin-bottom:1em"><div style="font-size:1.1em">'
                 f"<b>{_link(lead['url'], lead['title'])}</b></div>",
                 f'<div style="color:#555">{esc(_source_line(lead))}</div>']
        text = "".join(f"<mark>{esc(t)}</mark>" if marked else esc(t)
                       for t, marked in lead["snippet"])
        if text:
            parts.append(f"<div>{text}</div>")
        if len(copies) > 1:
            parts.append(f'<div style="color:#555">转载 {len(copies) - 1}：'
                         f"{esc(', '.join(_outlets(copies)))}</div>")
        for event in lead["events"]:
            parts.append(f"<div>事件：{esc(_event_line(event))}</div>")
        parts.append(f'<div style="font-size:0.85em;color:#777">{esc(lead["url"])}</div></li>')
        items.append("".join(parts))
    return (f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{esc(rule.name)}</title>'
            f"</head><body><h2>{esc(rule.name)}：{len(told)} 篇新文章</h2><ol>"
            + "".join(items)
            + f'</ol><hr><p style="font-size:0.85em;color:#777">{esc(_footer(rule, digest))}</p>'
            "</body></html>\n")
