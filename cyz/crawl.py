"""One crawl run as a library call: sources in, a run summary out."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from cyz.config import Source

# The per-run path of every article page, in order (see pipelines/process.py and store.py).
ITEM_PIPELINES = {
    "cyz.pipelines.process.ProcessPipeline": 300,
    "cyz.pipelines.store.DedupePipeline": 500,
    "cyz.pipelines.store.StorePipeline": 800,
}


@dataclass
class RunSummary:
    fetched: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    url_duplicates: int = 0
    reprints: int = 0
    gone: int = 0
    list_pages: int = 0
    list_pages_capped: int = 0  # list pages not fetched: the source's list page cap
    failed: dict[str, int] = field(default_factory=dict)
    stats: dict = field(default_factory=dict, repr=False)

    @classmethod
    def from_stats(cls, stats: dict) -> RunSummary:
        def n(key: str) -> int:
            return int(stats.get(f"cyz/{key}", 0) or 0)

        failed = {key.removeprefix("cyz/failed/"): int(v) for key, v in stats.items()
                  if key.startswith("cyz/failed/") and v}
        return cls(fetched=n("fetched") + n("not_modified"), new=n("new"), updated=n("updated"),
                   unchanged=n("unchanged"), url_duplicates=n("url_duplicates"),
                   reprints=n("reprints"), gone=n("gone"), list_pages=n("list_pages"),
                   list_pages_capped=n("list_pages_capped"),
                   failed=dict(sorted(failed.items())), stats=stats)

    @property
    def failed_total(self) -> int:
        return sum(self.failed.values())

    def table(self, title: str = "Crawl summary"):
        """The summary as a rich table (what `cyz crawl` and `cyz demo` print)."""
        from rich.table import Table

        table = Table(title=title, show_header=False, title_justify="left")
        table.add_column(style="bold")
        table.add_column(justify="right")
        rows = [("fetched", self.fetched), ("new", self.new), ("updated", self.updated),
                ("unchanged", self.unchanged), ("URL duplicates", self.url_duplicates),
                ("reprints", self.reprints), ("gone", self.gone), ("failed", self.failed_total)]
        rows += [(f"  failed: {reason}", count) for reason, count in self.failed.items()]
        if self.list_pages_capped:
            rows.append(("list pages capped", self.list_pages_capped))
        for label, value in rows:
            table.add_row(label, str(value))
        return table

    def as_dict(self) -> dict:
        return {"fetched": self.fetched, "new": self.new, "updated": self.updated,
                "unchanged": self.unchanged, "url_duplicates": self.url_duplicates,
                "reprints": self.reprints, "gone": self.gone, "list_pages": self.list_pages,
                "list_pages_capped": self.list_pages_capped, "failed": self.failed}


def crawl(
    sources: list[Source],
    *,
    data_dir: Path,
    engine: str | None = None,
    max_pages: int | None = None,
    host_map: dict[str, str] | None = None,
    settings_overrides: dict | None = None,
    progress=None,
) -> RunSummary:
    """Crawl `sources` once into the index of `data_dir`; returns the run summary.

    The engine is opened here first, so a configuration error stops the run before any
    request; an engine that is merely down does not (records are spooled)."""
    from cyz.crawler.run import run_crawl
    from cyz.index import open_engine

    check = open_engine(engine, data_dir)
    try:
        check.init()
    finally:
        check.close()

    overrides = {"CYZ_ENGINE": engine, "CYZ_DATA_DIR": str(data_dir), **(settings_overrides or {})}
    stats = run_crawl(sources, data_dir=data_dir, item_pipelines=ITEM_PIPELINES,
                      host_map=host_map, max_pages=max_pages, settings_overrides=overrides,
                      progress=progress)
    return RunSummary.from_stats(stats)
