"""The ``opensearch_url`` session fixture: a real OpenSearch 2.19 node for tests.

In order of preference:

1. ``CYZ_TEST_OPENSEARCH_URL`` names a running node (CI starts one up front);
2. the jars are in tools/opensearch/lib (or ``mvn`` can fetch them with fetch.sh):
   a node is started in a temporary directory for the session and stopped after it;
3. otherwise the tests that use the fixture are skipped, with the reason.

With ``CYZ_REQUIRE_OPENSEARCH=1`` (set by CI) a missing node fails the tests instead
of skipping them, so a broken setup cannot pass as green.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]
TOOLS = REPO / "tools" / "opensearch"
LIB_DIR = TOOLS / "lib"
FETCH_TIMEOUT = 600.0


def load_node_module() -> ModuleType:
    """tools/opensearch/node.py, which is a script and not part of the cyz package."""
    name = "cyz_tools_opensearch_node"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TOOLS / "node.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _unavailable(reason: str) -> None:
    if os.environ.get("CYZ_REQUIRE_OPENSEARCH") == "1":
        pytest.fail(f"OpenSearch required (CYZ_REQUIRE_OPENSEARCH=1): {reason}", pytrace=False)
    pytest.skip(f"no OpenSearch node: {reason}")


def _jars_ready() -> bool:
    # fetch.sh writes the stamp only after Maven copied every jar.
    return (LIB_DIR / ".complete").is_file()


def _fetch_jars() -> str | None:
    """Run fetch.sh; None on success, else why not."""
    if shutil.which("mvn") is None:
        return f"the jars are not in {LIB_DIR} and mvn is not installed to fetch them"
    try:
        result = subprocess.run(
            ["bash", str(TOOLS / "fetch.sh")], capture_output=True, text=True,
            timeout=FETCH_TIMEOUT, check=False,
        )
    except subprocess.TimeoutExpired:
        return f"tools/opensearch/fetch.sh took over {FETCH_TIMEOUT:.0f} s"
    if result.returncode != 0 or not _jars_ready():
        return f"tools/opensearch/fetch.sh failed:\n{result.stderr[-2000:]}"
    return None


@pytest.fixture(scope="session")
def opensearch_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Base URL (``http://127.0.0.1:N``, no trailing slash) of a green or yellow node."""
    node_module = load_node_module()
    given = os.environ.get("CYZ_TEST_OPENSEARCH_URL", "").strip().rstrip("/")
    if given:
        # Named explicitly, so a dead URL is a setup error, never a skip.
        try:
            node_module.wait_for_health(given, timeout=30)
        except node_module.NodeError as error:
            pytest.fail(f"CYZ_TEST_OPENSEARCH_URL: {error}", pytrace=False)
        yield given
        return

    if shutil.which("java") is None and not os.environ.get("JAVA_HOME"):
        _unavailable("java (17+) is not installed")
    if not _jars_ready():
        problem = _fetch_jars()
        if problem:
            _unavailable(problem)
    base = tmp_path_factory.mktemp("opensearch")
    try:
        # A cluster name of our own, so parallel sessions never mistake nodes.
        node = node_module.start_node(base, LIB_DIR, f"cyz-test-{os.getpid()}")
    except node_module.NodeError as error:
        _unavailable(f"the node did not start (log: {base / 'node.log'}):\n{error}")
    try:
        yield node.url
    finally:
        node.stop()
