"""`render: browser` beside plain fetching: pages/s and peak memory on one loopback site.

    python bench/browser.py [--pages 200] [--pages-per-context 8] [--workdir DIR] [--seed N]

Generates bench/crawl.py's loopback site (N article pages of 100–200 KB, two sources),
serves it with `cyz.demo.server.SiteServer` and runs, in one process run, full cyz crawls
into fresh SQLite data dirs: (a) the sources as they are (plain Scrapy fetching), (b) the
same sources with `render: browser` (every request through scrapy-playwright and the
system Chromium, crawler/browser.py), (c) as (b) with more pages at a time per browser
context (`PLAYWRIGHT_MAX_PAGES_PER_CONTEXT`; `--pages-per-context 0` skips it). Samples
the RSS and CPU time of every descendant process by role (crawl child, extraction
workers, Chromium, the node Playwright driver) and prints one markdown table, then
checks that the runs indexed the same articles with the same text.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
# bench/ first on sys.path would let bench/events.py shadow opensearch-py's `events`, and
# the crawl child is given this process's sys.path; bench/crawl.py is loaded by file.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
_spec = importlib.util.spec_from_file_location("bench_crawl", HERE / "crawl.py")
bench_crawl = importlib.util.module_from_spec(_spec)
sys.modules["bench_crawl"] = bench_crawl  # its dataclasses look themselves up there
_spec.loader.exec_module(bench_crawl)

ROLES = ("crawl", "workers", "chromium", "driver", "other")
PSS_EVERY = 5  # samples between two PSS sums (PSS reads smaps_rollup: dearer than RSS)


def role(proc: Any) -> str:
    """crawl (the crawl child), workers (extraction processes), chromium (the browser and
    its renderer, GPU, utility and zygote processes), driver (Playwright's node driver)
    or other. Replaces bench/crawl.py's `_role`, which knows only the first two."""
    try:
        cmd = proc.cmdline()
    except Exception:
        return "other"
    line = " ".join(cmd)
    exe = Path(cmd[0]).name if cmd else ""
    if "cyz.crawler.run" in line:
        return "crawl"
    if "spawn_main" in line and "resource_tracker" not in line:
        return "workers"
    if exe in ("chromium", "chrome", "chrome_crashpad_handler", "headless_shell") or (
            cmd and "/chromium/" in cmd[0]):
        return "chromium"
    if "playwright" in line and ("run-driver" in line or exe == "node"):
        return "driver"
    return "other"


_RSS_SAMPLER = bench_crawl.RssSampler


class RoleSampler(_RSS_SAMPLER):
    """bench/crawl.py's sampler, with per role the peak of the role's *summed* RSS at
    one sample (Chromium is a dozen processes: the largest one alone says little) and
    the peak summed PSS of all processes (shared pages counted once, split among the
    processes that map them; Chromium's forks share much)."""

    def __init__(self, every: float = 0.1) -> None:
        super().__init__(every)
        self.role_peak: dict[str, int] = {}  # role → peak of its processes' summed RSS
        self.role_pss: dict[str, int] = {}  # the same for PSS (every PSS_EVERY samples)
        self.peak_pss = 0 if self._psutil else -1

    def _run(self) -> None:
        psutil = self._psutil
        me = psutil.Process()
        tick = 0
        while not self._stop.is_set():
            total = procs = pss = 0
            sums: dict[str, int] = {}
            pss_sums: dict[str, int] = {}
            try:
                children = me.children(recursive=True)
            except psutil.Error:
                children = []
            for child in children:
                try:
                    with child.oneshot():
                        rss = child.memory_info().rss
                        times = child.cpu_times()
                    own_pss = (getattr(child.memory_full_info(), "pss", 0)
                               if tick % PSS_EVERY == 0 else 0)
                except psutil.Error:
                    continue
                seen = self.procs.get(child.pid)
                if seen is None:
                    seen = self.procs[child.pid] = [role(child), 0, 0.0]
                elif seen[0] in ("crawl", "other"):
                    # Seen between fork and exec it still had its parent's command line
                    # (the crawl child's, before node or Chromium): look again. A zombie
                    # has none left ("other"): it keeps the role it had.
                    again = role(child)
                    seen[0] = again if again != "other" else seen[0]
                seen[1] = max(seen[1], rss)
                seen[2] = times.user + times.system
                total += rss
                pss += own_pss
                procs += 1
                sums[seen[0]] = sums.get(seen[0], 0) + rss
                pss_sums[seen[0]] = pss_sums.get(seen[0], 0) + own_pss
            if total > self.peak:
                self.peak, self.peak_procs = total, procs
            self.peak_pss = max(self.peak_pss, pss)
            for name, rss in sums.items():
                self.role_peak[name] = max(self.role_peak.get(name, 0), rss)
            for name, value in pss_sums.items():
                self.role_pss[name] = max(self.role_pss.get(name, 0), value)
            tick += 1
            self._stop.wait(self.every)

    def by_role(self) -> dict[str, tuple[int, int, float]]:
        """role → (processes seen, peak of their summed RSS, CPU seconds of all)."""
        return {name: (n, self.role_peak.get(name, 0), cpu)
                for name, (n, _, cpu) in super().by_role().items()}


@dataclass
class Run:
    mode: str
    data_dir: Path
    timed: Any  # bench_crawl.Timed; .result is the RunSummary
    sampler: RoleSampler | None  # for the PSS figures (None without psutil)
    records: dict[str, str]  # url → text, read back from the index


def timed(fn: Any) -> tuple[Any, RoleSampler | None]:
    """bench/crawl.py's `timed` with RoleSampler; (Timed, the sampler)."""
    samplers: list[RoleSampler] = []

    def sampler() -> RoleSampler:
        samplers.append(RoleSampler())
        return samplers[-1]

    # `timed` builds its sampler from bench_crawl's globals: this module's copy only.
    bench_crawl.RssSampler = sampler
    try:
        t = bench_crawl.timed(fn)
    finally:
        bench_crawl.RssSampler = _RSS_SAMPLER
    return t, samplers[0] if samplers and samplers[0].peak_pss >= 0 else None


def records_of(data_dir: Path) -> dict[str, str]:
    from cyz.index import open_engine

    index = open_engine("sqlite", data_dir)
    try:
        return {r["url"]: r.get("text") or "" for r in index.iter_records()}
    finally:
        index.close()


def run_mode(mode: str, sources: list[Any], data_dir: Path, host_map: dict[str, str],
             extra: dict[str, Any]) -> Run:
    from cyz.crawl import crawl

    settings = {**bench_crawl.BENCH_SETTINGS, **extra}
    t, sampler = timed(lambda: crawl(sources, data_dir=data_dir, engine="sqlite",
                                 host_map=host_map, settings_overrides=settings))
    s = t.result
    print(f"{mode}: new {s.new}, fetched {s.fetched}, list pages {s.list_pages}, failed "
          f"{s.failed or 0} in {t.seconds:.1f} s", file=sys.stderr)
    pw = {k.removeprefix("playwright/"): v for k, v in s.stats.items()
          if k.startswith("playwright/") and "/resource_type/" in k or k in (
              "playwright/page_count", "playwright/browser_count", "playwright/context_count")}
    if pw:
        print(f"  playwright stats: {pw}", file=sys.stderr)
    return Run(mode, data_dir, t, sampler, records_of(data_dir))


def _mb(n: int) -> str:
    return f"{n / 1e6:,.0f}" if n >= 0 else "n/a"


def table(runs: list[Run]) -> str:
    head = ["mode", "articles indexed", "wall s", "inside Scrapy s", "pages/s", "× plain",
            "peak MB, all: RSS / PSS", *(f"{name}: RSS / PSS" for name in ROLES[:4]),
            "CPU s: crawl / workers / chromium / driver", "CPU s, all (rusage)"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    plain = runs[0].timed
    base = bench_crawl._rate(plain.result.new, plain.seconds)
    for run in runs:
        t, sampler = run.timed, run.sampler
        rate = bench_crawl._rate(t.result.new, t.seconds)
        pss = sampler.peak_pss if sampler else -1

        def by(name: str, t: Any = t, sampler: Any = sampler) -> str:
            n, peak, _ = t.roles.get(name, (0, 0, 0.0))
            if not n:
                return "–"
            own = sampler.role_pss.get(name, 0) if sampler else -1
            return f"{_mb(peak)} / {_mb(own)} (×{n})"

        cpu = " / ".join(f"{t.roles.get(name, (0, 0, 0.0))[2]:.1f}" for name in ROLES[:4])
        lines.append(
            f"| {run.mode} | {t.result.new} | {t.seconds:.1f} | "
            f"{bench_crawl.crawl_seconds(t.result.stats):.1f} | {rate:.1f} | "
            f"{rate / base if base else 0:.2f} | **{_mb(t.peak_rss)}** / **{_mb(pss)}** "
            f"({t.peak_procs} proc) | {' | '.join(by(name) for name in ROLES[:4])} | "
            f"{cpu} | {t.crawl_cpu:.1f} |")
    return "\n".join(lines)


def checks(runs: list[Run], expected: int) -> list[str]:
    """Warnings: a run that indexed other articles than the plain one, or other text."""
    out = []
    plain = runs[0]
    if len(plain.records) != expected:
        out.append(f"warning: plain indexed {len(plain.records)} articles of {expected} "
                   "generated")
    for run in runs[1:]:
        if len(run.records) != len(plain.records):
            out.append(f"warning: {run.mode} indexed {len(run.records)} articles, plain "
                       f"{len(plain.records)}")
        missing = set(plain.records) - set(run.records)
        extra = set(run.records) - set(plain.records)
        if missing or extra:
            out.append(f"warning: {run.mode}: {len(missing)} of plain's articles missing, "
                       f"{len(extra)} not in plain's")
        differ = sum(1 for url, text in plain.records.items()
                     if url in run.records and run.records[url] != text)
        if differ:
            out.append(f"warning: {run.mode}: text differs from plain's on {differ} "
                       "articles")
        failed = run.timed.result.failed
        if failed:
            out.append(f"warning: {run.mode}: failed requests {failed}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--pages-per-context", type=int, default=8,
                        help="row (c): PLAYWRIGHT_MAX_PAGES_PER_CONTEXT for it (default 8; "
                             "0 skips the row)")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the site and data dirs here (default: a temp dir, removed)")
    parser.add_argument("--seed", type=int, default=20241205)
    args = parser.parse_args(argv)

    from cyz.crawler.browser import PAGES_PER_SOURCE, require_chromium
    from cyz.demo.server import SiteServer

    sources = bench_crawl.sources_for()
    browser = [s.model_copy(update={"render": "browser"}) for s in sources]
    chromium = require_chromium(browser, os.environ.get("CYZ_CHROMIUM") or None)
    work = args.workdir or Path(tempfile.mkdtemp(prefix="cyz-bench-browser-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        sites = work / "sites"
        for stale in [sites, *work.glob("data-*")]:
            shutil.rmtree(stale, ignore_errors=True)
        gen = bench_crawl.generate_site(sites, args.pages, args.seed)
        print(f"generated {len(gen.pages)} pages + {gen.list_pages} list pages, "
              f"{gen.bytes / 1e6:.0f} MB under {sites}; Chromium {chromium}", file=sys.stderr)
        load = " ".join(f"{x:.1f}" for x in os.getloadavg())
        modes = [("(a) plain (`render: http`)", sources, {}),
                 (f"(b) `render: browser`, {PAGES_PER_SOURCE} pages/context", browser, {})]
        if args.pages_per_context:
            modes.append((f"(c) `render: browser`, {args.pages_per_context} pages/context",
                          browser,
                          {"PLAYWRIGHT_MAX_PAGES_PER_CONTEXT": args.pages_per_context}))
        runs = []
        started = time.perf_counter()
        with SiteServer(sites) as server:
            host_map = server.host_map()
            for i, (mode, srcs, extra) in enumerate(modes):
                runs.append(run_mode(mode, srcs, work / f"data-{'abc'[i]}", host_map, extra))
        print(f"measured on {date.today().isoformat()}, {os.cpu_count()} cores, "
              f"{args.pages} pages ({len(sources)} sources), seed {args.seed}, load average "
              f"at start {load}, whole run {time.perf_counter() - started:.0f} s\n")
        print(table(runs))
        notes = checks(runs, len(gen.pages))
        print()
        print("\n".join(notes) if notes else
              f"check: every run indexed the same {len(runs[0].records)} articles with the "
              "same text")
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
