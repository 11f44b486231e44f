"""How the nightly job is doing, as a list of problems: `cyz health` and the crawl-health
mails to `CYZ_OPERATOR_EMAIL` are both built from `check_health`.

A problem has a stable `key` (one per kind and source, so a mail can say "still" or
"solved" across runs), a one-line `message` for the operator and a `severity`: an
`error` makes `cyz health` exit 1 (a failed or overdue nightly crawl, a spool the runs
cannot drain, an unreachable engine, a nearly full data dir); a `warning` does not (a
source gone silent or failing: the site is at fault, not this host).

The checks read the run history, the spool's files, the disk and one small request to
the engine, never the crawl state: probes call this every few seconds. The judging is
done by pure functions over those facts (`crawl_problems`, `source_problems`,
`spool_problems`, `disk_problems`, `engine_problems`), so they are testable on a run
history written with `cyz.runs.record_run`.
"""

from __future__ import annotations

import shutil
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Literal

from cyz.record import SHANGHAI
from cyz.settings import Settings

TIMEZONE = "Asia/Shanghai"
# A source that yielded articles before and fetched none in its last this many crawls
# (a redesigned site answers 200 with no article links) is reported silent.
SILENT_RUNS = 3
# A source whose article requests failed more than this share in its last crawl, when
# it made at least FAILING_MIN_REQUESTS of them (fewer say little).
FAILING_SHARE = 0.5
FAILING_MIN_REQUESTS = 5
# A nightly crawl may still be running until CYZ_CRAWL_TIMEOUT after its start; this on
# top covers waiting for the data dir lock and starting up.
GRACE_EXTRA = timedelta(hours=1)
# The data dir is nearly full below either of these.
DISK_MIN_FREE_BYTES = 1 << 30
DISK_MIN_FREE_SHARE = 0.05
# A probe must answer: an engine that does not within this is unreachable.
ENGINE_PROBE_TIMEOUT = 10.0

Severity = Literal["error", "warning"]
# Runs that crawled (a `skipped` one did nothing; a `failed` one may have stopped before
# counting, so its zeros say nothing about a source).
_CRAWLED = ("ok", "partial")


@dataclass(frozen=True)
class Problem:
    key: str  # stable id: "crawl-failed", "source-silent:<id>", ...
    message: str  # one line for the operator
    severity: Severity = "error"

    def as_dict(self) -> dict:
        return {"key": self.key, "severity": self.severity, "message": self.message}


@dataclass
class HealthReport:
    problems: list[Problem] = field(default_factory=list)
    checks: dict = field(default_factory=dict)  # what was looked at

    @property
    def ok(self) -> bool:
        """No error (warnings allowed)."""
        return not any(p.severity == "error" for p in self.problems)

    def as_dict(self) -> dict:
        """What `cyz health --json` prints."""
        return {"ok": self.ok, "problems": [p.as_dict() for p in self.problems],
                "checks": self.checks}


def check_health(data_dir: Path, settings: Settings, *, engine_name: str | None = None,
                 now: datetime | None = None, config_dir: Path | None = None) -> HealthReport:
    """Every check over `data_dir`; never raises for what it finds (an unreadable run
    history, an engine that does not answer are problems of the report).

    `engine_name` defaults to `settings.engine`. With `config_dir`, the source checks
    cover the enabled sources of its config (a source removed from the config is no
    longer reported) and a config the nightly crawl would refuse is an error."""
    now = _aware(now or datetime.now(UTC))
    data_dir = Path(data_dir)
    report = HealthReport()
    sources = None
    if config_dir is not None:
        sources, problem = configured_sources(config_dir)
        report.checks["config"] = {"dir": str(config_dir), "valid": problem is None}
        _add(report, [problem] if problem else [])
    try:
        runs = crawl_runs(data_dir)
    except Exception as exc:  # noqa: BLE001 - sqlite3 or OS errors: a problem, not a crash
        runs = None
        report.problems.append(Problem("runs-unreadable", f"cannot read the run history in "
                                       f"{data_dir}: {type(exc).__name__}: {exc}"))
    if runs is not None:
        grace = timedelta(seconds=settings.crawl_timeout) + GRACE_EXTRA
        checks, problems = crawl_problems(runs, now, settings.crawl_at, grace)
        report.checks["crawl"] = checks
        _add(report, problems)
        problems = source_problems(runs, sources)
        report.checks["sources_checked"] = len(_source_ids(runs, sources))
        _add(report, problems)
    engine = probe_engine(engine_name or settings.engine, data_dir)
    report.checks["engine"] = {k: v for k, v in engine.items() if k != "spool"}
    _add(report, engine_problems(engine))
    if engine.get("spool") is not None:
        report.checks["spool"] = engine["spool"]
        last_end = (report.checks.get("crawl") or {}).get("last") or {}
        _add(report, spool_problems(engine["spool"], last_end.get("ended_at"), now))
    disk = disk_usage(data_dir)
    report.checks["disk"] = disk
    _add(report, disk_problems(disk))
    return report


def _add(report: HealthReport, problems: Iterable[Problem]) -> None:
    report.problems.extend(problems)


# -- the nightly crawl ------------------------------------------------------------------


def crawl_problems(runs: list[dict], now: datetime, crawl_at: time,
                   grace: timedelta) -> tuple[dict, list[Problem]]:
    """The last crawl failed, or none started since the last scheduled one whose grace
    is over. `runs`: the crawl runs, newest first."""
    expected = last_due(now, crawl_at, grace)
    done = [r for r in runs if r["status"] != "skipped"]
    last = done[0] if done else None
    checks = {"last": _brief(last), "expected_since": expected.isoformat(timespec="seconds"),
              "nightly_at": f"{crawl_at:%H:%M} {TIMEZONE}"}
    if last is None:
        return checks, [Problem("no-crawl-yet", "no crawl recorded yet", "warning")]
    problems = []
    if last["status"] == "failed":
        why = "; ".join(last["errors"])[:200] or "no error recorded"
        problems.append(Problem("crawl-failed", f"the last crawl (started {last['started_at']})"
                                f" failed: {why}"))
    started = _parse(last["started_at"])
    if started is None or started < expected:
        local = expected.astimezone(SHANGHAI)
        message = (f"no crawl since the one due at {local:%Y-%m-%d %H:%M} {TIMEZONE} (the last "
                   f"started {last['started_at']}): is `cyz schedule` running?")
        skipped = [r for r in runs if r["status"] == "skipped"
                   and (_parse(r["started_at"]) or expected) >= expected]
        if skipped:
            message += f" ({len(skipped)} skipped since: {'; '.join(skipped[0]['errors'])[:150]})"
        problems.append(Problem("crawl-overdue", message))
    return checks, problems


def last_due(now: datetime, crawl_at: time, grace: timedelta = timedelta(0)) -> datetime:
    """The newest scheduled crawl time (`crawl_at`, Asia/Shanghai, returned in UTC) whose
    grace has passed by `now`: a crawl must have started since then. With no grace, the
    latest due time at or before `now` (what the scheduler catches up)."""
    local = _aware(now).astimezone(SHANGHAI)
    due = datetime.combine(local.date(), crawl_at, tzinfo=local.tzinfo)
    while due + grace > local:
        due -= timedelta(days=1)
    return due.astimezone(UTC)


def _brief(run: dict | None) -> dict | None:
    if run is None:
        return None
    return {"started_at": run["started_at"], "ended_at": run["ended_at"], "status": run["status"]}


# -- sources ----------------------------------------------------------------------------


def source_problems(runs: list[dict], sources: Iterable[str] | None = None) -> list[Problem]:
    """Sources gone silent or failing (warnings). `runs`: the crawl runs, newest first;
    `sources`: the ids to check (None: every source of the history)."""
    problems = []
    for source_id in _source_ids(runs, sources):
        crawled = [r for r in runs if r["status"] in _CRAWLED and source_id in r["sources"]]
        failing = _failing(source_id, crawled[0]) if crawled else None
        if failing:
            problems.append(failing)
            continue  # a failing site is silent too: one line says it
        silent = _silent(source_id, runs, crawled)
        if silent:
            problems.append(silent)
    return problems


def _source_ids(runs: list[dict], sources: Iterable[str] | None) -> list[str]:
    if sources is not None:
        return sorted(set(sources))
    return sorted({sid for r in runs for sid in r["sources"]})


def _fetched(run: dict, source_id: str) -> int:
    return int(run["sources"].get(source_id, {}).get("fetched", 0) or 0)


def _alive(run: dict, source_id: str) -> int:
    """Articles fetched, or known and not due (its lists answered and still showed them:
    the revisit policy did not ask, issue 15)."""
    counts = run["sources"].get(source_id, {})
    return _fetched(run, source_id) + int(counts.get("not_due", 0) or 0)


def _failures(run: dict, source_id: str) -> dict[str, int]:
    return {k: int(v) for k, v in run["sources"].get(source_id, {}).get("failed", {}).items()}


def _silent(source_id: str, runs: list[dict], crawled: list[dict]) -> Problem | None:
    recent = crawled[:SILENT_RUNS]
    if len(recent) < SILENT_RUNS or any(_alive(r, source_id) for r in recent):
        return None
    success = last_success_by_source(runs).get(source_id)
    if success is None:  # never yielded anything: a new or broken entry, not a change
        return None
    failures = _failures(recent[0], source_id)
    why = (f"; its last crawl failed {_reasons(failures)}" if failures
           else ": has the site changed its layout or its article links?")
    return Problem(f"source-silent:{source_id}",
                   f"source {source_id}: no article page in its last {SILENT_RUNS} crawls (the "
                   f"last that had some ended {success}){why}", "warning")


def _failing(source_id: str, run: dict) -> Problem | None:
    failures = _failures(run, source_id)
    failed = sum(failures.values())
    requests = failed + _fetched(run, source_id)
    if requests < FAILING_MIN_REQUESTS or failed <= FAILING_SHARE * requests:
        return None
    return Problem(f"source-failing:{source_id}",
                   f"source {source_id}: {failed} of {requests} requests failed in its last "
                   f"crawl (started {run['started_at']}): {_reasons(failures)}", "warning")


def _reasons(failures: dict[str, int]) -> str:
    return ", ".join(f"{reason} {n}" for reason, n in sorted(failures.items(), key=lambda x: -x[1]))


def last_success_by_source(runs: list[dict]) -> dict[str, str]:
    """{source_id: ended_at of the newest run in which it fetched articles}. `runs`:
    newest first (as `cyz.runs.list_runs` gives them)."""
    found: dict[str, str] = {}
    for run in runs:
        if run.get("kind", "crawl") != "crawl":
            continue
        for source_id in run["sources"]:
            if source_id not in found and _alive(run, source_id) > 0:
                found[source_id] = run["ended_at"]
    return found


def configured_sources(config_dir: Path) -> tuple[list[str] | None, Problem | None]:
    """The enabled source ids of the config, or a problem saying why the nightly crawl
    would refuse it."""
    from cyz.config import ConfigError, load_config

    try:
        config = load_config(Path(config_dir))
    except ConfigError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "invalid"
        return None, Problem("config-invalid", f"the nightly crawl would stop at the "
                             f"configuration: {first}")
    return [s.id for s in config.sources if s.enabled], None


# -- the engine and its spool -----------------------------------------------------------


def probe_engine(name: str, data_dir: Path) -> dict:
    """{name, online, error?, articles?, spool?}: one cheap read, within
    ENGINE_PROBE_TIMEOUT. Nothing is written: the spool is not replayed (the next run
    does it, under the data dir lock)."""
    result: dict = {}

    def run() -> None:
        try:
            result.update(_probe(name, data_dir))
        except Exception as exc:  # noqa: BLE001 - whatever it is, the engine cannot be used
            result.update(online=False, error=f"{type(exc).__name__}: {_line(exc)}")

    # A daemon thread: an engine that hangs cannot hold the probe (nor the exit).
    worker = threading.Thread(target=run, name="cyz-health-engine", daemon=True)
    worker.start()
    worker.join(ENGINE_PROBE_TIMEOUT)
    if worker.is_alive():
        return {"name": name, "online": False,
                "error": f"no answer within {ENGINE_PROBE_TIMEOUT:g} s"}
    return {"name": name, **result}


def _probe(name: str, data_dir: Path) -> dict:
    if name == "sqlite":
        return _probe_sqlite(Path(data_dir) / "index.sqlite3")
    from cyz.index import open_engine
    from cyz.index.search_engine import ApiError

    engine = open_engine(name, data_dir)
    try:
        spool = spool_facts(engine.spool)
        try:
            answer = engine.client.request("POST", f"/{engine.articles}/_count",
                                           {"query": {"match_all": {}}})
        except ApiError as exc:
            if exc.status == 404:  # reachable; the first run creates the index
                return {"online": True, "articles": 0, "spool": spool}
            return {"online": False, "error": _line(exc), "spool": spool}
        except Exception as exc:  # noqa: BLE001 - unreachable, TLS, bad product
            return {"online": False, "error": _line(exc), "spool": spool}
        return {"online": True, "articles": int(answer.get("count", 0)), "spool": spool}
    finally:
        engine.close()


def _probe_sqlite(path: Path) -> dict:
    """Open the index read-only (no schema upgrade, no file created)."""
    from cyz.index.sqlite import SCHEMA_VERSION

    if not path.exists():
        return {"online": True, "index": "not created yet"}
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=5)
        try:
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                return {"online": False, "error": f"{path} has index schema version {version};"
                        f" this cyz knows {SCHEMA_VERSION}: upgrade cyz"}
            # The newest row id, not count(*): constant time on any size of index.
            newest = db.execute("SELECT max(doc) FROM articles").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error as exc:
        return {"online": False, "error": f"cannot open {path}: {exc}"}
    return {"online": True, "index": str(path), "has_articles": bool(newest)}


def engine_problems(engine: dict) -> list[Problem]:
    if engine.get("online"):
        return []
    return [Problem("engine-unreachable", f"the {engine.get('name', '?')} index cannot be used: "
                    f"{engine.get('error') or 'unreachable'}")]


def spool_facts(spool) -> dict:
    """{spooled, oldest_parked_at, rejected, path, rejected_path} of a
    `cyz.index.spool.Spool`."""
    return {"spooled": len(spool), "oldest_parked_at": spool.oldest_parked_at(),
            "rejected": spool.rejected_count(), "path": str(spool.path),
            "rejected_path": str(spool.rejected)}


def spool_problems(spool: dict, last_crawl_end: str | None, now: datetime) -> list[Problem]:
    """Spooled records that the last crawl (which replays the spool at its start and
    end) could not index, or that have waited longer than a day: the spool grows."""
    problems = []
    spooled = int(spool.get("spooled") or 0)
    oldest = _parse(spool.get("oldest_parked_at"))
    if spooled and oldest is not None:
        ended = _parse(last_crawl_end)
        if (ended is not None and oldest < ended) or now - oldest > timedelta(days=1):
            problems.append(Problem(
                "spool-growing",
                f"{spooled} record(s) wait in the spool since {spool['oldest_parked_at']}: the "
                "engine did not take them at the last run (see engine); `cyz index init` "
                "indexes them once it is back"))
    rejected = int(spool.get("rejected") or 0)
    if rejected:
        problems.append(Problem("spool-rejected", f"{rejected} record(s) the engine kept "
                                f"rejecting are set aside in {spool.get('rejected_path')}",
                                "warning"))
    return problems


# -- disk -------------------------------------------------------------------------------


def disk_usage(data_dir: Path) -> dict:
    """{free_bytes, total_bytes, free_share} of the file system holding `data_dir`."""
    path = Path(data_dir)
    while not path.exists() and path != path.parent:  # not created yet: where it will be
        path = path.parent
    try:
        usage = shutil.disk_usage(path)
    except OSError as exc:
        return {"error": f"cannot read the free space of {path}: {exc.strerror or exc}"}
    return {"path": str(path), "free_bytes": usage.free, "total_bytes": usage.total,
            "free_share": round(usage.free / usage.total, 4) if usage.total else 0.0}


def disk_problems(disk: dict) -> list[Problem]:
    if "free_bytes" not in disk:
        return [Problem("disk-unknown", disk.get("error", "cannot read the free space"),
                        "warning")]
    free, share = disk["free_bytes"], disk["free_share"]
    if free >= DISK_MIN_FREE_BYTES and share >= DISK_MIN_FREE_SHARE:
        return []
    return [Problem("disk-low", f"the data dir {disk['path']} is nearly full: {_size(free)} "
                    f"free ({share:.1%}); crawls stop storing records when it is full")]


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n} B"


# -- reading ----------------------------------------------------------------------------


def crawl_runs(data_dir: Path) -> list[dict]:
    """The crawl runs of the history, newest first."""
    from cyz.runs import list_runs

    return [r for r in list_runs(data_dir, None) if r.get("kind") == "crawl"]


def _parse(stamp: str | None) -> datetime | None:
    if not stamp:
        return None
    try:
        return _aware(datetime.fromisoformat(stamp))
    except (TypeError, ValueError):
        return None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # the history writes UTC


def _line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def summary_lines(report: HealthReport) -> list[tuple[str, str]]:
    """(state, line) per check, then per problem: what `cyz health` prints."""
    checks = report.checks
    bad = {p.key.split(":")[0] for p in report.problems if p.severity == "error"}
    lines: list[tuple[str, str]] = []
    crawl = checks.get("crawl")
    if crawl is not None:
        last = crawl["last"]
        state = "error" if bad & {"crawl-failed", "crawl-overdue"} else "ok"
        lines.append((state, f"last crawl: {last['status']}, ended {last['ended_at']}" if last
                      else "last crawl: none recorded"))
    if "sources_checked" in checks:
        lines.append(("ok", f"sources: {checks['sources_checked']} checked"))
    engine = checks.get("engine", {})
    if engine:
        lines.append(("ok" if engine.get("online") else "error",
                      f"engine {engine.get('name')}: "
                      + ("online" if engine.get("online") else "unreachable")))
    spool = checks.get("spool")
    if spool is not None:
        lines.append(("error" if "spool-growing" in bad else "ok",
                      f"spool: {spool['spooled']} record(s)"
                      + (f", oldest {spool['oldest_parked_at']}" if spool["spooled"] else "")))
    disk = checks.get("disk", {})
    if "free_bytes" in disk:
        lines.append(("error" if "disk-low" in bad else "ok",
                      f"disk: {_size(disk['free_bytes'])} free ({disk['free_share']:.1%})"))
    lines += [(p.severity, p.message) for p in report.problems]
    return lines


__all__ = [
    "DISK_MIN_FREE_BYTES", "DISK_MIN_FREE_SHARE", "FAILING_MIN_REQUESTS", "FAILING_SHARE",
    "GRACE_EXTRA", "SILENT_RUNS", "HealthReport", "Problem", "check_health", "crawl_problems",
    "crawl_runs", "disk_problems", "disk_usage", "engine_problems", "last_due",
    "last_success_by_source", "probe_engine", "source_problems", "spool_problems",
    "summary_lines",
]
