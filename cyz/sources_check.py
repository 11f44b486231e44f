"""`cyz sources check`: crawl a few pages of one source into a throwaway data dir."""

from __future__ import annotations

import tempfile
from pathlib import Path

from cyz.config import Source
from cyz.crawl import RunSummary, crawl
from cyz.index import open_engine


def check(source: Source, *, max_pages: int = 5, host_map: dict[str, str] | None = None
          ) -> tuple[RunSummary, list[dict]]:
    with tempfile.TemporaryDirectory(prefix="cyz-check-") as tmp:
        data_dir = Path(tmp)
        summary = crawl([source], data_dir=data_dir, engine="sqlite", max_pages=max_pages,
                        host_map=host_map)
        engine = open_engine("sqlite", data_dir)
        engine.init()
        records = sorted(engine.iter_records(), key=lambda r: r.get("published_at") or "",
                         reverse=True)
        engine.close()
    return summary, records
