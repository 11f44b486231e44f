"""Search indexes behind one interface (`cyz.index.base.Engine`); `open_engine` picks one."""

from __future__ import annotations

import os
from pathlib import Path

from cyz.index.base import Engine

ENGINES = ("sqlite", "elasticsearch", "opensearch")
_NOT_YET = {"elasticsearch", "opensearch"}


def open_engine(name: str | None = None, data_dir: Path | None = None) -> Engine:
    """The engine `name` (default: env `CYZ_ENGINE`, else "sqlite").

    The sqlite index lives at `<data_dir>/index.sqlite3` (default: `cyz.paths.data_dir()`).
    """
    chosen = (name or os.environ.get("CYZ_ENGINE") or "sqlite").strip().lower()
    if chosen == "sqlite":
        from cyz.index.sqlite import SqliteEngine

        if data_dir is None:
            from cyz.paths import data_dir as default_data_dir

            data_dir = default_data_dir()
        return SqliteEngine(Path(data_dir) / "index.sqlite3")
    if chosen in _NOT_YET:
        raise ValueError(
            f"the {chosen} engine is not implemented yet (a later issue adds it); "
            "use CYZ_ENGINE=sqlite for now"
        )
    raise ValueError(f"unknown engine {chosen!r}; valid engines: {', '.join(ENGINES)}")
