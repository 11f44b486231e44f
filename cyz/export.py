"""`cyz export`: records for the office's own tools, as JSON lines or CSV (Excel-ready)."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from typing import TextIO

CSV_COLUMNS = ["id", "published_at", "title", "source_id", "source_name", "origin", "url",
               "regions", "topics", "relevance", "language", "script", "cluster_id",
               "is_first_in_cluster", "gone_at", "text"]


def write_jsonl(records: Iterable[dict], out: TextIO) -> int:
    n = 0
    for record in records:
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
        n += 1
    return n


def write_csv(records: Iterable[dict], out: TextIO) -> int:
    """CSV that Excel opens correctly: UTF-8 with BOM, lists joined with ';'."""
    out.write("\ufeff")
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    n = 0
    for record in records:
        n += 1
        row = []
        for column in CSV_COLUMNS:
            value = record.get(column)
            if column == "regions":
                value = ";".join(f"{r['name']}:{r['count']}" for r in value or [])
            elif isinstance(value, list):
                value = ";".join(map(str, value))
            row.append("" if value is None else value)
        writer.writerow(row)
    return n
