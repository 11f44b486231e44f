"""Search indexes behind one interface (`cyz.index.base.Engine`); `open_engine` picks one."""

from __future__ import annotations

import os
from pathlib import Path

from cyz.index.base import Engine

ENGINES = ("sqlite", "elasticsearch", "opensearch")


def open_engine(name: str | None = None, data_dir: Path | None = None, *,
                admin: bool = False) -> Engine:
    """The engine `name` (default: env `CYZ_ENGINE`, else "sqlite").

    `admin`: the search engines log in with the admin credentials when they are set
    (`cyz index init`, `cyz index migrate`; docs/roles.md).

    The sqlite index lives at `<data_dir>/index.sqlite3` (default: `cyz.paths.data_dir()`);
    the search engines keep their spool of not-yet-indexed records there.
    """
    chosen = (name or os.environ.get("CYZ_ENGINE") or "sqlite").strip().lower()
    if chosen not in ENGINES:
        raise ValueError(f"unknown engine {chosen!r}; valid engines: {', '.join(ENGINES)}")
    if data_dir is None:
        from cyz.paths import data_dir as default_data_dir

        data_dir = default_data_dir()
    if chosen == "elasticsearch":
        from cyz.index.elasticsearch import open_elasticsearch

        return open_elasticsearch(Path(data_dir), admin)
    if chosen == "opensearch":
        from cyz.index.opensearch import open_opensearch

        return open_opensearch(Path(data_dir), admin)
    from cyz.index.sqlite import SqliteEngine

    return SqliteEngine(Path(data_dir) / "index.sqlite3")

