"""Shared fixtures: the loopback site server (demo sites when present, plus fault
sites added by tests) and a private data dir per test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from opensearch_node import opensearch_url  # noqa: F401  (session fixture, tests/opensearch_node.py)

from cyz.demo.server import SiteServer

REPO = Path(__file__).resolve().parents[1]
DEMO_SITES = REPO / "demo" / "sites"


@pytest.fixture(scope="session")
def site_server() -> Iterator[SiteServer]:
    """One server for the session, serving demo/sites when it exists."""
    with SiteServer(DEMO_SITES if DEMO_SITES.is_dir() else None) as server:
        yield server


@pytest.fixture(scope="session")
def fault_sites(site_server: SiteServer):
    """The crawler tests' fault sites (tests/sites.py), installed once per session."""
    try:
        from sites import FaultSites  # tests/ on sys.path (no tests/__init__.py)
    except ImportError:
        from tests.sites import FaultSites

    return FaultSites(site_server).install()


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh CYZ_DATA_DIR for one test."""
    path = tmp_path / "data"
    path.mkdir()
    monkeypatch.setenv("CYZ_DATA_DIR", str(path))
    return path


@pytest.fixture(params=["sqlite", "opensearch"])
def engine(request, tmp_path: Path):
    """An empty index on each engine: SQLite in tmp_path, and the OpenSearch node under a
    private prefix (dropped afterwards)."""
    from test_engines import drop_prefix, opensearch_engine

    from cyz.index.sqlite import SqliteEngine

    if request.param == "sqlite":
        eng = SqliteEngine(tmp_path / "index.sqlite3")
        eng.init()
        yield eng
        eng.close()
        return
    url = request.getfixturevalue("opensearch_url")
    eng, prefix = opensearch_engine(url, tmp_path)
    eng.init()
    yield eng
    eng.close()
    drop_prefix(url, prefix)
