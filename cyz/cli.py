"""The `cyz` command. Each command is a thin layer over the library; see `cyz --help`."""

from __future__ import annotations

import json
import sqlite3
import sys
from datetime import date
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cyz import paths
from cyz.config import Config, ConfigError, Source, load_config
from cyz.settings import load_settings

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False)


def _print_json(data: object) -> None:
    click.echo(json.dumps(data, ensure_ascii=False, indent=2))


def _warn(message: str) -> None:
    err.print(f"[yellow]warning:[/yellow] {escape(message)}", markup=True, soft_wrap=True)


def _fail(message: str, code: int = 2) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", markup=True, soft_wrap=True)
    sys.exit(code)


def _load(sources_file: Path | None) -> list[Source]:
    """The sources, once every config file was validated (exit 2 naming the file if not)."""
    return _config(sources_file).sources


def _config(sources_file: Path | None = None) -> Config:
    # Every config file, checked here in the main process before any request, then
    # pinned so the crawl child and its extraction workers read the files checked.
    try:
        config = load_config(paths.config_dir(), sources_file=sources_file)
    except ConfigError as exc:
        _fail(str(exc))
    paths.pin_config_dir(config.dir)
    return config


def _select(sources: list[Source], ids: tuple[str, ...], *,
            include_disabled: bool = False) -> list[Source]:
    """The sources named by `ids` (all enabled ones when none is named); a disabled one
    is refused, or with `include_disabled` taken as if enabled (to check it first)."""
    if not ids:
        return [s for s in sources if s.enabled]
    by_id = {s.id: s for s in sources}
    chosen = []
    for source_id in ids:
        if source_id not in by_id:
            _fail(f"no source {source_id!r}; known: {', '.join(sorted(by_id))}")
        source = by_id[source_id]
        if not source.enabled:
            if not include_disabled:
                _fail(f"source {source_id!r} is disabled: "
                      f"{source.disabled_reason or 'no reason given'} "
                      "(--include-disabled checks it anyway)")
            if not source.entry_urls:
                _fail(f"source {source_id!r} has no start_urls, feeds, sitemaps or search "
                      "to check")
            source = source.model_copy(update={"enabled": True})
        chosen.append(source)
    return chosen


def _date(ctx, param, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date like 2024-12-05") from None


class _Cyz(click.Group):
    """Known failures end with one clear line and their exit code (cyz/exit_codes.py),
    not a traceback."""

    def invoke(self, ctx: click.Context):
        from cyz.exit_codes import ExitCode
        from cyz.index.search_engine import ApiError, EngineMisconfigured, EngineUnavailable
        from cyz.lock import DataDirLocked
        from cyz.storage import StorageError

        try:
            if not set(ctx.help_option_names) & set(ctx.args):  # --help needs no settings
                load_settings(warn=_warn)  # every CYZ_* variable, before anything runs
            return super().invoke(ctx)
        except (ConfigError, EngineMisconfigured) as exc:
            _fail(str(exc))
        except (ApiError, EngineUnavailable) as exc:
            _fail(str(exc), ExitCode.ERROR)
        except DataDirLocked as exc:
            _fail(str(exc), ExitCode.LOCKED)
        except StorageError as exc:
            _fail(str(exc), ExitCode.ERROR)
        except OSError as exc:  # an unusable data or config dir, most often
            _fail(_os_error(exc), ExitCode.ERROR)
        except KeyboardInterrupt:
            _fail("interrupted", ExitCode.INTERRUPTED)
        except Exception as exc:
            # The crawl process died (killed, or a bug: the message carries its traceback).
            # Checked by module, so that commands which never crawl never import Scrapy.
            run = sys.modules.get("cyz.crawler.run")
            if run is not None and isinstance(exc, run.CrawlError):
                _fail(str(exc), ExitCode.ERROR)
            raise


def _os_error(exc: OSError) -> str:
    where = exc.filename if exc.filename is not None else ""
    if isinstance(exc, FileExistsError | NotADirectoryError):
        reason = "not a directory"  # e.g. CYZ_DATA_DIR names a file
    else:
        reason = exc.strerror or str(exc)
    return f"cannot use {where}: {reason}" if where else reason


def _finish_run(summary) -> None:
    """After a crawl's summary: one line per problem, then its exit code."""
    for line in summary.problems():
        err.print(f"[red]error:[/red] {escape(line)}", markup=True, soft_wrap=True)
    sys.exit(summary.exit_code)


_WAIT_HELP = "If another crawl, re-extraction or migration holds the data dir, wait for it."


@click.group(cls=_Cyz, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cyz")
def main() -> None:
    """cyz monitors Chinese government and news sites for cooperation between
    Chengdu (成都), Chongqing (重庆) and Zunyi (遵义).

    \b
    Start here:
      cyz demo                 crawl the bundled sample sites, offline
      cyz search 遵义 合作      search what was crawled
      cyz crawl                crawl the configured sources once

    Configuration lives in CYZ_CONFIG_DIR (default ./config, else the packaged
    defaults); the index and crawl state in CYZ_DATA_DIR (default the user data
    dir). CYZ_ENGINE picks the index (sqlite, the default).
    """


@main.command()
@click.option("--source", "source_ids", multiple=True, metavar="ID",
              help="Crawl only this source (repeatable). Default: every enabled source.")
@click.option("--sources", "sources_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Sources file to use instead of CYZ_CONFIG_DIR/sources.yaml.")
@click.option("--max-pages", type=click.IntRange(min=1), help="Stop after this many article pages.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
@click.option("--wait", is_flag=True, help=_WAIT_HELP)
@click.option("--full", is_flag=True,
              help="Ask again for every known article, due or not (conditional requests: "
                   "unchanged pages answer 304). The nightly scheduler never does.")
def crawl(source_ids, sources_file, max_pages, as_json, wait, full) -> None:
    """Crawl the configured sources once and index what changed.

    Prints a summary: pages fetched, new, updated and unchanged articles, known
    articles not due (not asked), URL duplicates, reprints, and failures by reason.
    List pages, feeds and sitemaps are fetched every run; a known article is asked
    again when its source's revisit policy says it is due (after as long as it has
    stayed unchanged: 1, 2, 4 … days, at most 30; see README "Adding a source"),
    with a conditional request, and is not extracted again when unchanged.

    \b
    Exit status: 0 done (some sources may have failed: counted), 3 nothing could
    be fetched, 4 records could not be stored, 5 another crawl holds the data
    dir, 130 interrupted or past CYZ_CRAWL_TIMEOUT (what was fetched is stored).
    See README "Exit codes".
    """
    from cyz.crawl import clock_start
    from cyz.crawl import crawl as run
    from cyz.exit_codes import ExitCode
    from cyz.lock import print_waiting
    from cyz.storage import StorageError

    try:
        now = clock_start(None)  # CYZ_NOW (tests and benchmarks), else the real time
    except ValueError as exc:
        _fail(str(exc), ExitCode.CONFIG)
    sources = _select(_load(sources_file), source_ids)
    data_dir = paths.data_dir()
    _check_search_engine(data_dir)
    try:
        summary = run(sources, data_dir=data_dir, max_pages=max_pages,
                      progress=_progress_printer(), wait=wait, on_wait=print_waiting,
                      timeout=load_settings().crawl_timeout,  # CYZ_CRAWL_TIMEOUT
                      full=full, now=now)
    except StorageError as exc:
        _fail(f"cannot store records in {exc.path}: {exc.reason}", ExitCode.NOT_STORED)
    if as_json:
        _print_json(summary.as_dict())
    else:
        out.print(summary.table())
    _finish_run(summary)


def _check_search_engine(data_dir: Path) -> None:
    """`cyz crawl` on Elasticsearch/OpenSearch: credentials the engine refuses, or that
    may not write its indices, stop the crawl before it fetches (exit 2, one line naming
    the setting). An unreachable engine does not: the crawl spools what it fetches and
    the next run indexes it."""
    from cyz.index.search_engine import EngineUnavailable
    from cyz.scheduling import check_engine

    if load_settings().engine == "sqlite":
        return
    try:
        check_engine(data_dir)
    except EngineUnavailable:
        pass


def _progress_printer():
    """A live progress line on a terminal; plain heartbeat lines in logs (cron, systemd)."""
    from cyz.crawler.run import stderr_progress

    if not err.is_terminal:
        return stderr_progress

    def show(snapshot: dict) -> None:
        line = (f"crawling: {snapshot['responses']} responses · {snapshot['list_pages']} list pages"
                f" · {snapshot['fetched']} articles fetched · {snapshot['not_modified']} unchanged"
                f" · {snapshot['failed']} failed")
        err.print(line, end="\n" if snapshot["done"] else "\r", markup=False)

    return show


class _SearchCommand(click.Command):
    """`cyz search 遵义 -重庆`: a word may start with '-' (an exclusion), while the real
    options keep working; an unknown `--long-option` is still a usage error (a typo of
    an option must not silently become a search word)."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        rest = super().parse_args(ctx, args)
        longs = [o for p in self.params for o in p.opts if o.startswith("--")]
        for word in ctx.params.get("words") or ():
            name = word.split("=", 1)[0]
            if name.startswith("--") and len(name) > 2 and name[2:3].isascii():
                import difflib

                raise click.NoSuchOption(name, possibilities=difflib.get_close_matches(name, longs),
                                         ctx=ctx)
        return rest


_SEARCH_HELP_SORT = ("best: text score blended with the article's relevance and recency; "
                     "relevance: the article's relevance first; date: newest first.")


@main.command(cls=_SearchCommand, context_settings={"ignore_unknown_options": True})
@click.argument("words", nargs=-1, type=click.UNPROCESSED)
@click.option("--region", "regions", multiple=True, metavar="PLACE",
              help="Articles that mention this place (repeatable: any of them). A city finds "
                   "its districts and counties; 汇川 finds 汇川区.")
@click.option("--all-regions", is_flag=True,
              help="With several --region: articles that mention every one of them "
                   "(cooperation between the places), not any.")
@click.option("--topic", "topics", multiple=True, metavar="T",
              help="Only this topic (repeatable: any of them), by id or Chinese name, e.g. "
                   "agreement or 签约协议.")
@click.option("--source", "sources", multiple=True, metavar="ID", help="Only this source (repeatable).")
@click.option("--since", callback=_date, metavar="YYYY-MM-DD", help="Published on or after (Beijing day).")
@click.option("--until", callback=_date, metavar="YYYY-MM-DD", help="Published on or before.")
@click.option("--sort", type=click.Choice(["best", "relevance", "date"]), default="best",
              show_default=True, help=_SEARCH_HELP_SORT)
@click.option("--all-copies", is_flag=True,
              help="Under each story, list every stored copy (reprints) with its site and URL.")
@click.option("--limit", default=10, show_default=True, type=click.IntRange(min=1, max=10_000),
              help="At most this many articles (the terminal, --json and --csv alike).")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"total", "results": [record + score, snippet, cluster_size]}: one '
                   "result per article, reprints not grouped.")
@click.option("--csv", "csv_file", type=click.Path(path_type=Path, dir_okay=False), metavar="FILE",
              help="Also write the articles found (one row each, at most --limit) as CSV for "
                   "Excel: Beijing date, title, site, 来源, author, regions, topics, reprints, "
                   "snippet, URL.")
def search(words, regions, all_regions, topics, sources, since, until, sort, all_copies, limit,
           as_json, csv_file) -> None:
    """Search the index: WORDS are the query.

    \b
    Query syntax (the same on every engine and in alert rules):
      cyz search 遵义 合作                 every word (words are ANDed)
      cyz search '"成渝地区双城经济圈"' 签约  "..." is an exact phrase
      cyz search 赤水 OR 仁怀              either (OR in any case: or, Or)
      cyz search 遵义 -重庆                exclude: -word, NOT word, -"a phrase"
      cyz search 渝 黔                     one-character words work like any other
    Simplified and traditional match each other (遵义 finds 遵義). A query
    that can mean nothing (only quotes, only OR) or is over 256 characters is
    an error (exit 2). A query may start with an exclusion: cyz search -重庆 遵义.

    \b
    Filters:
      --region 遵义 --region 重庆           mentions any of them
      --region 遵义 --region 重庆 --all-regions   mentions both: cooperation between them
      --topic 签约协议, --source ID, --since 2024-11-01 --until 2024-11-30

    \b
    The terminal shows one entry per story: reprints of it (the same text on
    other sites) are named on its 转载 line, --all-copies lists each copy.
    --json keeps one result per article with its cluster_id and cluster_size.
    --csv FILE writes the same articles as --json (at most --limit; the count
    line says when more matched) for a weekly report in Excel.
    """
    from cyz.exit_codes import ExitCode
    from cyz.index import open_engine
    from cyz.index.query import parse
    from cyz.search import QueryError, resolve_regions, resolve_topics, stored_source_ids
    from cyz.search import search as run

    query = " ".join(words)  # `cyz search 遵义 合作` means the query "遵义 合作"
    try:
        parse(query)  # before anything opens: a query that means nothing is a usage error
    except QueryError as exc:
        _fail(f"query: {exc}", ExitCode.CONFIG)
    if since and until and since > until:
        raise click.BadParameter(f"--since {since} is after --until {until}",
                                 param_hint="--since/--until")
    config = _config()
    try:
        topic_ids = resolve_topics(topics, config.topic)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--topic") from None
    region_names, unknown = resolve_regions(regions, config.topic)
    for value, near in unknown.items():
        hint = f"closest: {', '.join(near)}" if near else "no similar name"
        _warn(f"--region {value!r} is not a place of the gazetteer ({config.topic_file}); {hint}")
    engine = open_engine()
    try:
        engine.init()
        if sources:
            known = {s.id for s in config.sources} | stored_source_ids(engine)
            for source_id in sources:
                if source_id not in known:
                    _fail(f"no source {source_id!r}; known: {', '.join(sorted(known))}")
        try:
            found = run(query, regions=region_names, regions_all=all_regions, topics=topic_ids,
                        sources=list(sources), since=since, until=until, limit=limit, sort=sort,
                        reprints=True, engine=engine)
        except QueryError as exc:
            _fail(f"query: {exc}", ExitCode.CONFIG)
        empty = found.total == 0 and engine.count() == 0
    finally:
        engine.close()
    labels = {t.id: t.name for t in config.topic.topics}
    if csv_file is not None:
        _search_csv(csv_file, found, labels)
    if as_json:
        _print_json({"total": found.total,
                     "results": [{**h.record, "score": h.score, "snippet": h.snippet,
                                  "cluster_size": found.cluster_size(h.record)}
                                 for h in found.hits]})
        return
    _print_stories(query, found, labels, all_copies=all_copies, empty=empty)


def _search_csv(path: Path, found, labels: dict[str, str]) -> None:
    from functools import partial

    from cyz.exit_codes import ExitCode
    from cyz.export import SEARCH_CSV_COLUMNS, search_rows, write_csv, write_file

    rows = search_rows(found.hits, found.cluster_size, labels)
    try:
        n = write_file(path, partial(write_csv, columns=SEARCH_CSV_COLUMNS), rows)
    except OSError as exc:
        _fail(f"{path}: cannot write the CSV: {_os_error(exc)}", ExitCode.ERROR)
    more = f" (of {found.total}: raise --limit for the rest)" if found.total > n else ""
    err.print(f"wrote {n} article(s) to {path}{more}", markup=False)


def _day(record: dict) -> str:
    return (record.get("published_at") or "")[:10] or "????-??-??"


def _where(record: dict) -> str:
    """`2024-12-05 · 遵义市人民政府 · 来源 遵义日报`: date, site and the outlet named by 来源."""
    site = record.get("source_name") or record.get("source_id") or "?"
    parts = [_day(record), site]
    if record.get("origin") and record["origin"] != site:
        parts.append(f"来源 {record['origin']}")
    return " · ".join(parts)


def _print_stories(query: str, found, labels: dict[str, str], *, all_copies: bool,
                   empty: bool) -> None:
    stories = found.stories()
    line = f"{found.total} result(s) for {query!r}"
    if found.total > len(found.hits):
        line += f", showing {len(found.hits)} of {found.total} (--limit)"
    if len(stories) < len(found.hits):
        line += f"; {len(stories)} stories, reprints grouped"
    out.print(line, markup=False)
    if empty:
        out.print("the index is empty: run `cyz demo` (sample sites) or `cyz crawl` first")
    for rank, story in enumerate(stories, 1):
        hit = story.lead
        rec = hit.record
        topics = "、".join(labels.get(t, t) for t in rec.get("topics") or [])
        out.print(f"\n[bold]{rank}. {escape(rec.get('title') or '(no title)')}[/bold]  "
                  f"[dim]{escape(_where(rec))}[/dim]")
        out.print(f"   {rec['url']}", style="cyan", markup=False)
        if hit.snippet:
            out.print(f"   {hit.snippet}", markup=False)
        if topics:
            out.print(f"   主题: {topics}", style="dim", markup=False)
        if story.reprints:
            out.print(f"   转载 {len(story.reprints)}: {', '.join(story.reprint_names())}",
                      markup=False)
        if all_copies:
            for copy in story.reprints:
                out.print(f"     ↳ {_where(copy)}  {copy.get('title') or ''}", markup=False)
                out.print(f"       {copy['url']}", style="cyan", markup=False)


def _index_is_empty() -> bool:
    from cyz.index import open_engine

    engine = open_engine()
    try:
        engine.init()
        return engine.count() == 0
    finally:
        engine.close()


def _event_types(ctx, param, values: tuple[str, ...]) -> list[str]:
    from cyz.timeline import event_type

    try:
        return [event_type(v) for v in values]
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


def _event_filters(since, until, types, regions, party=None, planned=None):
    from cyz.index.base import EventFilters

    if since and until and since > until:
        raise click.BadParameter(f"--since {since} is after --until {until}")
    return EventFilters(since=since, until=until, types=list(types), regions=list(regions),
                        party=party or None, planned=planned)


@main.command()
@click.option("--since", callback=_date, metavar="YYYY-MM-DD",
              help="Events on or after this day (by the event's own date).")
@click.option("--until", callback=_date, metavar="YYYY-MM-DD", help="Events on or before this day.")
@click.option("--type", "types", multiple=True, callback=_event_types, metavar="T",
              help="Only this type (repeatable): agreement 签约, visit 考察, project 项目, "
                   "conference 会议, policy 政策, transport 交通, other 其他.")
@click.option("--region", "regions", multiple=True, help="Events naming this place (repeatable: any).")
@click.option("--party", metavar="TEXT", help="A party's name contains TEXT (e.g. 江北区).")
@click.option("--planned/--done", "planned", default=None,
              help="Only announced or intended events (--planned), or only done ones (--done).")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(min=1, max=10_000))
@click.option("--json", "as_json", is_flag=True,
              help='Print {"total", "events": [...]}, each event with its reports.')
def events(since, until, types, regions, party, planned, limit, as_json) -> None:
    """The timeline of cooperation events, newest first, grouped by month.

    One event is one happening: every article that reported it (reprints, other
    outlets' own reports) is listed under it, with the outlets and their count.

    \b
    Examples:
      cyz events --since 2024-01-01 --type 签约
      cyz events --region 遵义 --party 江北区 --json
    """
    from cyz.timeline import find_events, print_timeline

    filters = _event_filters(since, until, types, regions, party, planned)
    result = find_events(filters, limit=limit)
    if as_json:
        _print_json({"total": result.total, "events": result.events})
        return
    out.print(f"{result.total} cooperation event(s)")
    if result.total == 0 and _index_is_empty():
        out.print("the index is empty: run `cyz demo` (sample sites) or `cyz crawl` first")
    print_timeline(result, out)


@main.command()
@click.argument("target", metavar="PATH_OR_URL")
@click.option("--json", "as_json", is_flag=True, help="Print the record as JSON.")
@click.option("--allow-private", is_flag=True,
              help="Fetch a URL on a private, loopback or link-local address (refused otherwise).")
def extract(target, as_json, allow_private) -> None:
    """Run the per-page pipeline on one saved page or URL and print the record.

    \b
    A file is read by what it holds, whatever its name:
      HTML markup          the page goes through the whole pipeline
      plain text, .txt     taken as already-extracted text (title on the first line)
      Markdown, binary     refused (exit 2): save the page as .html, its text as .txt
    """
    from cyz.pipelines.page import build_record, record_from_file

    _config()  # the tagger's topic.yaml is checked (with every config file) before a fetch
    path = Path(target)
    if "://" in target:
        from cyz.fetch import PrivateAddress, fetch_url

        try:
            body, final_url, charset = fetch_url(target, allow_private=allow_private)
        except PrivateAddress as exc:
            _fail(f"{target}: refused: {exc} (--allow-private fetches it)", 1)
        except OSError as exc:
            _fail(f"{target}: cannot fetch: {exc}", 1)
        record = build_record(body, final_url, http_charset=charset)
    elif path.is_file():
        from cyz.exit_codes import ExitCode
        from cyz.pipelines.sniff import NotAPage

        try:
            record = record_from_file(path.read_bytes(), path.resolve().as_uri(), path.name)
        except NotAPage as exc:
            _fail(f"{target}: {exc}", ExitCode.CONFIG)
        except OSError as exc:
            _fail(f"{target}: cannot read: {exc.strerror or exc}", ExitCode.ERROR)
    else:
        _fail(f"{target}: no such file (give a saved page or an http(s) URL)")
    if as_json:
        _print_json(record)
        return
    if record.get("is_article") is False:
        out.print(f"[bold]{'not article':>12}[/bold]: {escape(record['not_article_reason'])} "
                  "(a crawl counts it and does not index it)")
    for key in ("title", "published_at", "origin", "author", "editor", "language", "script"):
        value = record.get(key)
        if key == "published_at" and value and record.get("published_from"):
            value = f"{value}   (from {record['published_from']})"
        out.print(f"[bold]{key:>12}[/bold]: {escape(str(value))}")
    regions = ", ".join(f"{r['name']}×{r['count']}" for r in record["regions"]) or "-"
    out.print(f"[bold]{'regions':>12}[/bold]: {regions}")
    out.print(f"[bold]{'topics':>12}[/bold]: {', '.join(record['topics']) or '-'}"
              f"   relevance {record['relevance']}")
    from cyz.timeline import TYPE_LABELS, amount, when

    for n, event in enumerate(record["events"]):
        planned = " (计划)" if event["planned"] else ""
        money = amount(event)
        label = f"{'events':>12}:" if n == 0 else " " * 13
        out.print(f"[bold]{label}[/bold] "
                  f"{escape(when(event))} {TYPE_LABELS[event['type']]}{planned} "
                  f"{escape('、'.join(event['parties']) or '-')}"
                  f"{' ' + escape(money) if money else ''}  "
                  f"[dim]rule {escape(event['rule'])}: {escape(event['trigger'])}[/dim]")
        out.print(f"{'':>14}{escape(event['sentence'])}", style="dim")
    out.print()
    out.print(record["text"], markup=False)


@main.group()
def sources() -> None:
    """Inspect the configured sources."""


@sources.command("list")
@click.option("--sources", "sources_file", type=click.Path(path_type=Path, dir_okay=False))
def sources_list(sources_file) -> None:
    """List sources with their kind, region and state."""
    table = Table("id", "name", "kind", "region", "enabled")
    for s in _load(sources_file):
        table.add_row(s.id, s.name, s.kind, s.region,
                      "yes" if s.enabled else f"no: {s.disabled_reason or ''}")
    out.print(table)


@sources.command("check")
@click.argument("source_id", metavar="ID")
@click.option("--sources", "sources_file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--max-pages", default=5, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True)
@click.option("--include-disabled", is_flag=True,
              help="Check a source that is disabled (before enabling it).")
def sources_check(source_id, sources_file, max_pages, as_json, include_disabled) -> None:
    """Fetch one source now and show what it would index (nothing is stored)."""
    from cyz.sources_check import check

    source = _select(_load(sources_file), (source_id,), include_disabled=include_disabled)[0]
    summary, records = check(source, max_pages=max_pages)
    if as_json:
        _print_json({"summary": summary.as_dict(), "records": records})
    else:
        out.print(summary.table(f"{source.id}: first {max_pages} article page(s)"))
        for rec in records:
            day = (rec.get("published_at") or "")[:10]
            regions = ",".join(r["name"] for r in rec["regions"][:4])
            out.print(f"• {day} {rec['title']}  [dim]{rec['url']}  {len(rec['text'])} chars  "
                      f"来源={rec.get('origin')}  regions={regions}[/dim]")
    _finish_run(summary)  # a source that answered nothing is a failed check, not exit 0


@main.command()
@click.option("--clean", is_flag=True, help="Remove the demo records (source ids demo-*) and stop.")
def demo(clean) -> None:
    """Crawl the bundled sample sites (served on loopback) and search them. Offline."""
    from cyz.demo.run import clean_demo, run_demo
    from cyz.exit_codes import ExitCode
    from cyz.storage import StorageError

    if clean:
        removed = clean_demo(paths.data_dir())
        out.print(f"removed {removed} demo record(s)")
        return
    try:
        summary = run_demo(paths.data_dir(), out)
    except StorageError as exc:
        _fail(f"cannot store records in {exc.path}: {exc.reason}", ExitCode.NOT_STORED)
    _finish_run(summary)


@main.group("index")
def index_group() -> None:
    """Manage the index (CYZ_ENGINE; sqlite by default)."""


@index_group.command("init")
def index_init() -> None:
    """Create the index if missing (idempotent).

    On Elasticsearch/OpenSearch it puts the templates, creates the indices and adds new
    fields to their mappings, with the admin credentials when set (CYZ_ES_ADMIN_API_KEY,
    CYZ_OPENSEARCH_ADMIN_USER; docs/roles.md).
    """
    from cyz.index import open_engine

    engine = open_engine(admin=True)  # CYZ_ES_ADMIN_API_KEY & co. when set (docs/roles.md)
    try:
        engine.admin_init()  # an unreachable engine is an error here, not a spool
    finally:
        engine.close()
    out.print(f"{engine.name} index ready")


@index_group.command("status")
@click.option("--json", "as_json", is_flag=True)
def index_status(as_json) -> None:
    """Show the engine, index versions and document counts, spool size, last flush, and
    how many records an older pipeline made (`stale`)."""
    from cyz.index import open_engine
    from cyz.index.base import stale_filter
    from cyz.record import PIPELINE_VERSION

    engine = open_engine()
    try:
        engine.init()
        status = {**engine.status(), "data_dir": str(paths.data_dir())}
        by_source = None
        if status.get("online", True):
            status["pipeline_version"] = PIPELINE_VERSION
            status["stale"] = engine.count(stale_filter())
            by_source = engine.newest_by_source()
    finally:
        engine.close()
    from cyz.runs import last_run

    try:
        run = last_run(paths.data_dir())
    except Exception as exc:  # noqa: BLE001 - an unreadable history must not hide the index
        _warn(f"cannot read the run history: {type(exc).__name__}: {exc}")
        run = None
    if run is not None:
        status["last_run"] = {"ended_at": run["ended_at"], "status": run["status"]}
    status["sources"] = _sources_status(by_source)
    if as_json:
        _print_json(status)
        return
    for key, value in status.items():
        if key in ("sources", "mapping_drift"):
            continue  # a table of its own, and a warning, below
        if key == "last_run":
            out.print(f"{key:>12}: {value['status']} (ended {value['ended_at']})")
        elif isinstance(value, dict):
            out.print(f"{key:>12}: current {', '.join(value.get('current', [])) or '-'}")
            for index, count in value.get("versions", {}).items():
                out.print(f"{'':>14}{index}: {count} documents")
        else:
            out.print(f"{key:>12}: {value}")
    if status.get("mapping_drift"):
        _warn(status["mapping_drift"])
    if status.get("stale"):
        out.print(f"{status['stale']} record(s) were made by an older pipeline: each crawl "
                  "re-extracts up to CYZ_REEXTRACT_PER_RUN of them; `cyz reextract --stale` "
                  "does them all now")
    if status["sources"]:
        table = Table("source", "articles", "newest article", "last successful fetch (UTC)")
        for source_id, row in status["sources"].items():
            articles = "?" if row["articles"] is None else str(row["articles"])
            table.add_row(escape(source_id), articles,
                          (row["newest_published_at"] or "-")[:16].replace("T", " "),
                          (row["last_success"] or "never")[:16].replace("T", " "))
        out.print(table)


def _sources_status(by_source: dict[str, dict] | None) -> dict[str, dict]:
    """Per source indexed or crawled: its articles and newest one (from the index; None
    when the engine is away) and its last successful fetch (from the run history)."""
    from cyz.health import crawl_runs, last_success_by_source

    try:
        runs = crawl_runs(paths.data_dir())
    except Exception:  # noqa: BLE001 - the warning about the history is printed above
        runs = []
    success = last_success_by_source(runs)
    crawled = {source_id for run in runs for source_id in run["sources"]}
    ids = sorted(set(by_source or {}) | crawled)
    empty = {"articles": None if by_source is None else 0, "newest_published_at": None}
    return {sid: {**(by_source or {}).get(sid, empty), "last_success": success.get(sid)}
            for sid in ids}


@index_group.command("migrate")
@click.option("--drop-old", is_flag=True, help="Delete the previous index version after the swap.")
@click.option("--wait", is_flag=True, help=_WAIT_HELP)
@click.option("--batch-size", default=1000, show_default=True, type=click.IntRange(min=1),
              help="Documents per reindex batch (Elasticsearch/OpenSearch).")
@click.option("--poll", "poll_seconds", default=2.0, show_default=True,
              type=click.FloatRange(min=0.05), help="Seconds between progress lines.")
def index_migrate(drop_old, wait, batch_size, poll_seconds) -> None:
    """Reindex into the next index version and swap the alias atomically.

    Run it after an upgrade that changed the mapping, while no crawl is running. The
    old version is kept (for a rollback) unless --drop-old.

    On Elasticsearch/OpenSearch the copy runs as a task on the engine, with progress
    lines (documents copied / total). If migrate is interrupted the task goes on; run
    it again: it waits for that task (or continues the copy into the same new index)
    and finishes, without making another version.
    """
    from cyz.index import open_engine
    from cyz.lock import data_dir_lock, print_waiting

    # No crawl may write while the index moves (the same lock as crawls).
    with data_dir_lock(paths.data_dir(), "migrate", wait=wait, on_wait=print_waiting):
        engine = open_engine(admin=True)  # the admin credentials when set (docs/roles.md)
        try:
            options = {}
            if engine.name in ("elasticsearch", "opensearch"):
                options = {"batch_size": batch_size, "poll_seconds": poll_seconds}
            moved = engine.migrate(drop_old=drop_old,
                                   progress=lambda line: err.print(line, markup=False),
                                   **options)
        finally:
            engine.close()
    if not moved:
        out.print(f"{engine.name}: nothing to migrate (the schema is upgraded in place)")


@main.command()
@click.option("--limit", default=20, show_default=True, type=click.IntRange(min=1))
@click.option("--json", "as_json", is_flag=True,
              help="Print a list of runs: {kind, started_at, ended_at, status, sources: "
                   "{ID: {fetched, new, updated, unchanged, not_due, failed: {reason: n}}}, "
                   "alerts_sent, errors}.")
def runs(limit, as_json) -> None:
    """The recorded runs of every job, newest first: status (ok, partial, failed,
    skipped), counts summed over the sources, and errors."""
    from cyz.runs import list_runs, totals

    try:
        history = list_runs(paths.data_dir(), limit)
    except Exception as exc:  # noqa: BLE001 - sqlite3 or OS errors, one line
        _fail(f"cannot read the run history in {paths.data_dir()}: {type(exc).__name__}: {exc}")
    if as_json:
        _print_json(history)
        return
    if not history:
        out.print(f"no runs recorded yet in {paths.data_dir()}")
        return
    table = Table("kind", "started (UTC)", "took", "status", "new", "updated", "failed",
                  "mails")
    problems = []
    for run in history:
        sums = totals(run)
        started = run["started_at"][:16].replace("T", " ")
        table.add_row(run["kind"], started, _duration(run), run["status"], str(sums["new"]),
                      str(sums["updated"]), str(sums["failed"]), str(run["alerts_sent"]))
        if run["errors"]:
            problems.append(f"{started} {run['kind']}: {'; '.join(run['errors'])}")
    out.print(table)
    for line in problems:  # below the table: readable at any terminal width
        out.print(escape(line if len(line) <= 300 else line[:299] + "…"))


def _duration(run: dict) -> str:
    from datetime import datetime

    try:
        seconds = int((datetime.fromisoformat(run["ended_at"])
                       - datetime.fromisoformat(run["started_at"])).total_seconds())
    except (TypeError, ValueError):
        return "?"
    minutes, seconds = divmod(max(seconds, 0), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


@main.command()
@click.option("--json", "as_json", is_flag=True,
              help='Print {"ok", "problems": [{key, severity, message}], "checks": {...}}.')
def health(as_json) -> None:
    """Is the nightly job healthy? For the docker healthcheck and monitoring probes.

    \b
    Errors: the last crawl failed, or none started since the nightly one was due
    (CYZ_CRAWL_AT, Asia/Shanghai, plus CYZ_CRAWL_TIMEOUT and an hour), the spool
    grows, the engine is unreachable, the data dir is nearly full.
    Warnings: a source that yielded articles fetched none in its last 3 crawls, or
    most of its requests failed in its last crawl.

    \b
    Exit status: 0 healthy (warnings allowed), 1 any error.
    """
    from cyz.health import check_health, summary_lines

    try:
        report = check_health(paths.data_dir(), load_settings(), config_dir=paths.config_dir())
    except Exception as exc:  # noqa: BLE001 - a probe gets one line and exit 1, never a traceback
        _fail(f"cannot check health: {type(exc).__name__}: {exc}", 1)
    if as_json:
        _print_json(report.as_dict())
    else:
        styles = {"ok": "green", "warning": "yellow", "error": "red"}
        for state, line in summary_lines(report):
            out.print(f"[{styles[state]}]{state:<7}[/{styles[state]}] {escape(line)}")
        errors = sum(p.severity == "error" for p in report.problems)
        out.print("healthy" if report.ok else f"unhealthy: {errors} error(s)")
    sys.exit(0 if report.ok else 1)


@main.command()
@click.option("--source", "source_ids", multiple=True, metavar="ID",
              help="Only pages of this source (repeatable).")
@click.option("--stale", is_flag=True,
              help="Only records an older pipeline made (see `cyz index status`).")
@click.option("--wait", is_flag=True, help=_WAIT_HELP)
def reextract(source_ids, stale, wait) -> None:
    """Re-run the per-page pipeline over the raw HTML archive, without fetching.

    Use it after the pipeline improved: every stored page is extracted again and its
    record updated in place (same id, crawl dates kept; `updated_at` moves when the
    record changed). Each crawl also re-extracts up to CYZ_REEXTRACT_PER_RUN (1000)
    stale records of the sources it crawled; --stale finishes the job at once.
    """
    from cyz.exit_codes import ExitCode
    from cyz.lock import print_waiting
    from cyz.reextract import reextract as run
    from cyz.storage import StorageError

    sources = _load(None)
    try:
        counts = run(paths.data_dir(), sources, source_ids=list(source_ids) or None,
                     stale_only=stale, progress=_count_printer("re-extracting"), wait=wait,
                     on_wait=print_waiting)
    except StorageError as exc:
        _fail(str(exc), ExitCode.NOT_STORED)
    removed = (f", {counts['not_article']} no longer articles (list pages; removed from the "
               "index)" if counts["not_article"] else "")
    out.print(f"re-extracted {counts['reextracted']} page(s), {counts['failed']} failed{removed}")
    if counts.get("storage_error"):
        _fail(counts["storage_error"], ExitCode.NOT_STORED)


def _count_printer(what: str):
    """`progress(done, total)`: a live line on a terminal, a line per 500 in logs."""
    def show(done: int, total: int) -> None:
        if err.is_terminal:
            err.print(f"{what}: {done}/{total}", end="\n" if done >= total else "\r",
                      markup=False)
        elif done % 500 == 0 or done >= total:
            err.print(f"{what}: {done}/{total}", markup=False)

    return show


@main.group()
def alerts() -> None:
    """Keyword alerts by email (rules in config/alerts.yaml)."""


@alerts.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print the rules and their state as JSON.")
def alerts_list(as_json) -> None:
    """The alert rules, their mode and recipients, and when each last ran."""
    from cyz.alerts.outbox import Outbox

    config = _config()
    with Outbox(paths.data_dir()) as outbox:
        rows = [{**rule.model_dump(), **vars(outbox.rule_state(rule.id))} for rule in config.alerts]
        counts = outbox.counts()
    if as_json:
        _print_json({"file": str(config.alerts_file), "rules": rows, "mails": counts})
        return
    if not rows:
        out.print(f"no alert rules in {config.alerts_file}")
        return
    table = Table("id", "name", "mode", "recipients", "seen until", title=str(config.alerts_file),
                  title_justify="left")
    for row in rows:
        mode = f"digest {row['digest_at']}" if row["mode"] == "digest" else row["mode"]
        table.add_row(escape(row["id"]) + ("" if row["enabled"] else " [dim](disabled)[/dim]"),
                      escape(row["name"]), mode, escape(", ".join(row["recipients"])),
                      (row["seen_until"] or "never run")[:19])
    out.print(table)
    out.print(f"mails: {counts['sent']} sent, {counts['queued']} queued")


@alerts.command("run")
@click.option("--dry-run", is_flag=True, help="Show what each rule would send; write and send nothing.")
@click.option("--json", "as_json", is_flag=True,
              help="Print {status, hits, sent, queued, subjects, errors, matches} as JSON.")
def alerts_run(dry_run, as_json) -> None:
    """Match every enabled rule against the articles new to it and send the mails due.

    Immediate rules mail now; digest rules collect until their digest_at (Asia/Shanghai).
    Mails wait in the outbox while the mail server is down and go at the next run; each
    (rule, article) is mailed once. Exit 1 when mails stay queued or the index is down."""
    from cyz.alerts import check_ready, run_alerts

    config = _config()
    if not dry_run:
        try:
            check_ready(config, load_settings())
        except ConfigError as exc:
            _fail(str(exc))
    result = run_alerts(config, paths.data_dir(), dry_run=dry_run)
    if as_json:
        _print_json(result.as_dict())
    else:
        if not any(r.enabled for r in config.alerts):
            out.print(f"no enabled alert rules in {config.alerts_file}")
        for rule_id, hits in result.matches.items():
            out.print(f"[bold]{escape(rule_id)}[/bold]: {len(hits)} new article(s)")
            for hit in hits[:20]:
                out.print(f"  • {(hit['published_at'] or '')[:10]} {escape(hit['title'])} "
                          f"[dim]({escape(hit['source_id'])})[/dim]")
        for subject in result.subjects:
            out.print(f"queued: {escape(subject)}")
        if not dry_run:
            out.print(f"sent {result.sent} mail(s) via {result.transport or '-'}; "
                      f"{result.queued} queued")
        for line in result.errors:
            _warn(line)
    if result.status == "failed" or (result.queued and not dry_run):
        sys.exit(1)


@alerts.command("test")
@click.argument("rule_id", metavar="RULE_ID")
@click.option("--since", callback=_date, metavar="YYYY-MM-DD",
              help="Every matching article published since this day (default: the articles "
                   "new to the rule, as its next run would see them).")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write the rendered mail to this .eml file.")
def alerts_test(rule_id, since, output) -> None:
    """Show what RULE_ID would match and the mail it would send (disabled rules too).

    Writes nothing to the outbox and sends nothing."""
    from email import policy

    from cyz.alerts.run import preview_rule
    from cyz.index.search_engine import EngineUnavailable
    from cyz.storage import StorageError

    config = _config()
    rules = {r.id: r for r in config.alerts}
    if rule_id not in rules:
        _fail(f"no alert rule {rule_id!r} in {config.alerts_file}; known: "
              f"{', '.join(sorted(rules)) or '(none)'}")
    sender = load_settings().mail_from or "cyz <cyz@localhost>"
    try:
        hits, mail = preview_rule(config, paths.data_dir(), rules[rule_id], since=since,
                                  sender=sender)
    except (EngineUnavailable, StorageError) as exc:
        _fail(str(exc), 1)
    out.print(f"{len(hits)} matching article(s)")
    if mail is None:
        return
    out.print(f"\nSubject: {mail['Subject']}\nTo: {mail['To']}\n", markup=False)
    out.print(mail.get_body(("plain",)).get_content(), markup=False)
    if output:
        try:
            output.write_bytes(mail.as_bytes(policy=policy.SMTP))
        except OSError as exc:
            _fail(f"{output}: cannot write the mail: {exc.strerror or exc}", 1)
        out.print(f"wrote {output}")


@main.command()
@click.argument("target", metavar="ID_OR_URL")
@click.option("--json", "as_json", is_flag=True,
              help="Print {id, url, versions: [{version, fetched_at, title, chars, diff}]} as JSON.")
def history(target, as_json) -> None:
    """The versions of one article: when each was fetched, its title and length, and
    what changed in the text (sentence by sentence).

    A new version is kept when a re-crawl finds the article's title or text changed;
    page chrome (links to other articles) and `cyz reextract` do not make one.
    ID_OR_URL is the record's `id` or the article's URL.
    """
    from rich.text import Text

    from cyz.history import UnknownArticle
    from cyz.history import history as versions_of

    try:
        report = versions_of(paths.data_dir(), target, _load(None))
    except UnknownArticle as exc:
        _fail(str(exc))
    if as_json:
        _print_json(report)
        return
    out.print(f"{report['url']}  [dim]id {report['id']}[/dim]")
    styles = {"-": "red", "+": "green", "@": "dim"}
    for v in report["versions"]:
        line = Text(f"v{v['version']}  {v['fetched_at']}  ", style="bold")
        line.append(f"{v['title']}  ({v['chars']} characters)", style="")
        out.print(line)
        if v.get("error"):
            out.print(Text(f"    cannot extract: {v['error']}", style="red"))
        elif v["diff"] == "":
            out.print(Text("    text unchanged", style="dim"))
        for diff_line in (v["diff"] or "").splitlines():
            out.print(Text(f"    {diff_line}", style=styles.get(diff_line[:1], "")))


@main.command()
@click.option("--since", callback=_date, metavar="YYYY-MM-DD", help="Published on or after.")
@click.option("--until", callback=_date, metavar="YYYY-MM-DD", help="Published on or before.")
@click.option("--region", "regions", multiple=True, help="Articles that mention this place.")
@click.option("--source", "sources", multiple=True, metavar="ID", help="Only this source.")
@click.option("--format", "fmt", type=click.Choice(["jsonl", "csv"]), default="jsonl",
              show_default=True, help="csv opens in Excel (UTF-8 with BOM).")
@click.option("-o", "--output", type=click.Path(path_type=Path, dir_okay=False),
              help="Write to this file instead of stdout.")
@click.option("--events", "events_only", is_flag=True,
              help="Export cooperation events (one per happening, with its reports) instead "
                   "of articles; --since/--until/--region then apply to the events.")
def export(since, until, regions, sources, fmt, output, events_only) -> None:
    """Export records (newest first) as JSON lines or CSV.

    CSV cells that a spreadsheet would run as a formula (=, +, -, @, tab, CR first)
    start with a ' and cells stop at Excel's 32,767 characters, ending with "…".
    """
    import errno
    import os
    from functools import partial

    from cyz.exit_codes import ExitCode
    from cyz.export import write_csv, write_file, write_jsonl
    from cyz.index import open_engine
    from cyz.index.base import Filters

    if events_only and sources:
        raise click.BadParameter("--source applies to articles; events are exported by "
                                 "--since/--until/--region")
    labels = {t.id: t.name for t in _config().topic.topics}
    engine = open_engine()
    engine.init()
    if events_only:
        from cyz.timeline import EXPORT_COLUMNS, export_rows

        filters = _event_filters(since, until, (), regions)
        records = list(engine.iter_events(filters))  # newest first, as `cyz events`
        if fmt == "csv":
            records = list(export_rows(records))
        csv_writer = partial(write_csv, columns=EXPORT_COLUMNS)
    else:
        records = sorted(engine.iter_records(Filters(regions=list(regions), sources=list(sources),
                                                     since=since, until=until)),
                         key=lambda r: r.get("published_at") or "", reverse=True)
        # The spreadsheet shows topics as the office names them; JSON lines keep the ids.
        csv_writer = partial(write_csv, topic_labels=labels)
    engine.close()
    writer = csv_writer if fmt == "csv" else write_jsonl
    try:
        if output:
            n = write_file(output, writer, records)
        else:
            writer(records, sys.stdout)
            sys.stdout.flush()
    except OSError as exc:
        if not output:
            # What is still buffered would fail again, with a traceback, at exit.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            if exc.errno == errno.EPIPE:  # `cyz export | head`: the reader had enough
                sys.exit(ExitCode.ERROR)
        full = exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
        _fail(f"{output or 'stdout'}: cannot write the export: {exc.strerror or exc}",
              ExitCode.NOT_STORED if full else ExitCode.ERROR)
    if output:
        err.print(f"wrote {n} {'event' if events_only else 'record'}(s) to {output}")


@main.group()
def kibana() -> None:
    """Kibana saved objects: data views, saved searches, charts, dashboard."""


@kibana.command("import")
@click.argument("files", nargs=-1, type=click.Path(path_type=Path, dir_okay=False, exists=True))
@click.option("--url", help="Kibana base URL (default: CYZ_KIBANA_URL).")
@click.option("--space", help="Kibana space id (default space if omitted).")
@click.option("--json", "as_json", is_flag=True, help="Print Kibana's summary as JSON.")
def kibana_import(files, url, space, as_json) -> None:
    """Import the bundled saved objects (or FILES) into Kibana, overwriting by id.

    Auth comes from CYZ_KIBANA_API_KEY or CYZ_KIBANA_USER/CYZ_KIBANA_PASSWORD;
    CYZ_KIBANA_CA_CERTS and CYZ_KIBANA_VERIFY control TLS.
    """
    from cyz.kibana import KibanaError, default_files, env_settings, import_saved_objects

    settings = env_settings()
    if not (settings["api_key"] or settings["username"]):
        # No Kibana login of its own: the operator's admin API key (docs/roles.md).
        import os

        settings["api_key"] = os.environ.get("CYZ_ES_ADMIN_API_KEY") or None
    url = url or settings.pop("kibana_url", None)
    settings.pop("kibana_url", None)
    if not url:
        _fail("set CYZ_KIBANA_URL or pass --url")
    try:
        summary = import_saved_objects(url, list(files) or default_files(), space=space, **settings)
    except KibanaError as exc:
        hint = ""
        if ": HTTP 401:" in str(exc) or ": HTTP 403:" in str(exc):
            hint = ("; `cyz kibana import` needs Kibana write rights: set CYZ_KIBANA_API_KEY, "
                    "CYZ_KIBANA_USER/CYZ_KIBANA_PASSWORD or CYZ_ES_ADMIN_API_KEY for it "
                    "(docs/roles.md)")
        _fail(str(exc) + hint, 1)
    if as_json:
        _print_json(summary)
    else:
        out.print(f"imported {summary['successCount']} saved object(s) into {url}")


@main.command()
def schedule() -> None:
    """Run the long-lived scheduler. Same as `python scheduler.py`.

    \b
    Nightly crawl at CYZ_CRAWL_AT (Asia/Shanghai), limited to CYZ_CRAWL_TIMEOUT,
    then alerts; digests at their times; maintenance every 6 hours. A crawl
    missed while it was down (run history) is caught up once at start.
    SIGTERM/SIGINT: a running crawl stores what it fetched, then exit 0.

    \b
    At start it checks the settings, the config files, the mail server of
    enabled alert rules, and that the index can be reached and written with
    the configured credentials: exit 2 naming what to fix, 1 when the engine
    does not answer, 4 when the SQLite index cannot be written.
    """
    from cyz.exit_codes import ExitCode
    from cyz.scheduling import run_forever
    from cyz.storage import StorageError

    try:
        run_forever()
    except StorageError as exc:  # the SQLite index cannot be written (start-up check)
        _fail(str(exc), ExitCode.NOT_STORED)


# -- backups (docs/backup.md) ----------------------------------------------------------

@main.command()
@click.argument("backup_dir", metavar="DIR", type=click.Path(path_type=Path, file_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the backup's manifest as JSON.")
def backup(backup_dir, as_json) -> None:
    """Back up the data dir into DIR, consistently, even while a crawl runs.

    Copies the search index, crawl state, reprint index, run history and alerts
    outbox with SQLite's online backup API, the spool and other files, and the raw
    page archive incrementally: a backup into a DIR that holds an earlier one adds
    only the new page versions. Writes DIR/manifest.json (versions, counts, sizes,
    checksums). `cyz restore DIR` brings it back. See docs/backup.md.

    \b
    Exit status: 0 done, 1 the backup could not be written (e.g. an unwritable
    DIR), 2 DIR is inside the data dir or is a non-empty directory that is not a
    cyz backup, 5 another backup into DIR is running.
    """
    from cyz.backup import BackupError, human_bytes
    from cyz.backup import backup as run
    from cyz.exit_codes import ExitCode

    data_dir = paths.data_dir()
    engine = load_settings().engine
    try:
        result = run(data_dir, backup_dir, engine=engine,
                     progress=lambda line: err.print(line, markup=False, soft_wrap=True))
    except BackupError as exc:
        _fail(str(exc), exc.code)
    except (OSError, sqlite3.Error) as exc:
        where = exc.filename if isinstance(exc, OSError) and exc.filename else backup_dir
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        _fail(f"cannot back up {data_dir} to {where}: {reason}", ExitCode.ERROR)
    manifest = result.manifest
    if as_json:
        _print_json(manifest)
        return
    table = Table("file", "what", "rows", "size", "this backup",
                  title=f"backup of {data_dir} in {Path(backup_dir).resolve()}")
    others = {"count": 0, "bytes": 0, "copied": 0}
    for name, facts in manifest["files"].items():
        if facts["kind"] == "file":
            others["count"] += 1
            others["bytes"] += facts["bytes"]
            others["copied"] += facts["copied"]
            continue
        if facts["kind"] == "spool":
            rows, what, done = f"{facts.get('lines', '-')}", "spool", \
                ("copied" if facts["copied"] else "unchanged")
        elif "added" in facts:
            rows = f"{facts['tables'].get('versions', 0)} versions of {facts['articles']} articles"
            what, done = facts["what"], f"+{facts['added']} new, -{facts['removed']} pruned"
        else:
            rows = ", ".join(f"{n} {t}" for t, n in facts["tables"].items())
            what, done = facts["what"], "copied"
        table.add_row(escape(name), what, rows, human_bytes(facts["bytes"]), done)
    if others["count"]:
        table.add_row("other files", "", str(others["count"]), human_bytes(others["bytes"]),
                      f"{others['copied']} copied")
    out.print(table)
    if engine != "sqlite":
        _warn(f"CYZ_ENGINE is {engine}: the records in {engine} are not in this backup; "
              "snapshot the engine too (docs/production.md)")
    out.print(f"backup complete: {manifest['totals']['files']} file(s), "
              f"{human_bytes(manifest['totals']['bytes'])}; restore with `cyz restore {backup_dir}`")


@main.command()
@click.argument("backup_dir", metavar="DIR", type=click.Path(path_type=Path, file_okay=False))
@click.option("--force", is_flag=True,
              help="Replace the contents of a data dir that is not empty.")
@click.option("--check", "check_only", is_flag=True,
              help="Only verify the backup (manifest, checksums, integrity); copy nothing.")
def restore(backup_dir, force, check_only) -> None:
    """Bring the data dir (CYZ_DATA_DIR) back from a backup made by `cyz backup`.

    Verifies DIR's manifest, every file's checksum and each database's
    `PRAGMA integrity_check` before copying anything. Refuses a data dir that a
    crawl, re-extraction, migration or prune is using, and one that is not empty
    unless --force. Stop the scheduler first.

    \b
    Exit status: 0 restored (or verified), 1 the backup is damaged or could not be
    copied, 2 no backup in DIR or the data dir is not empty (without --force),
    5 the data dir is in use.
    """
    from cyz.backup import BackupError, human_bytes, verify
    from cyz.backup import restore as run
    from cyz.exit_codes import ExitCode

    def say(line: str) -> None:
        err.print(line, markup=False, soft_wrap=True)

    try:
        if check_only:
            manifest = verify(backup_dir, say)
            out.print(f"backup {backup_dir} is intact: taken {manifest['created_at']} of "
                      f"{manifest['source_data_dir']}, {len(manifest['files'])} file(s)")
            return
        data_dir = paths.data_dir()
        manifest = run(backup_dir, data_dir, force=force, progress=say)
    except BackupError as exc:
        _fail(str(exc), exc.code)
    except (OSError, sqlite3.Error) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        _fail(f"cannot restore {backup_dir}: {reason}", ExitCode.ERROR)
    table = Table("file", "rows", "size", title=f"restored into {data_dir}")
    plain = [facts for facts in manifest["files"].values() if facts["kind"] == "file"]
    for name, facts in manifest["files"].items():
        if facts["kind"] != "file":
            rows = ", ".join(f"{n} {t}" for t, n in facts.get("tables", {}).items())
            table.add_row(escape(name), rows or str(facts.get("lines", "")),
                          human_bytes(facts["bytes"]))
    if plain:
        table.add_row("other files", str(len(plain)), human_bytes(sum(f["bytes"] for f in plain)))
    out.print(table)
    out.print(f"restored the backup of {manifest['source_data_dir']} taken "
              f"{manifest['created_at']} (cyz {manifest['cyz_version']}) into {data_dir}")


@main.command()
@click.option("--older-than", "days", required=True, type=click.IntRange(min=0), metavar="DAYS",
              help="Delete raw page versions fetched more than DAYS days ago.")
@click.option("--keep-latest", is_flag=True,
              help="Keep the newest version of every article (prune only superseded ones).")
@click.option("--dry-run", is_flag=True, help="Show what would be deleted; delete nothing.")
@click.option("--json", "as_json", is_flag=True,
              help="Print {dry_run, cutoff, versions, articles, raw_gone, bytes, by_source, "
                   "sample}.")
@click.option("--wait", is_flag=True, help=_WAIT_HELP)
def prune(days, keep_latest, dry_run, as_json, wait) -> None:
    """Delete old raw HTML from the archive; the records stay searchable.

    Raw page versions fetched more than DAYS days ago go (with --keep-latest only
    those a newer version superseded). The index is not touched. `cyz reextract`
    skips records whose raw page is gone; `cyz history` shows the versions left.
    Holds the data dir's lock like a crawl (exit 5 while one runs).
    """
    from cyz.backup import human_bytes
    from cyz.backup import prune as run
    from cyz.lock import print_waiting

    report = run(paths.data_dir(), days, dry_run=dry_run, keep_latest=keep_latest, wait=wait,
                 on_wait=print_waiting)
    if as_json:
        _print_json(report)
        return
    verb = "would delete" if dry_run else "deleted"
    out.print(f"{verb} {report['versions']} raw page version(s) of {report['articles']} "
              f"article(s) fetched before {report['cutoff'][:10]}: "
              f"{human_bytes(report['bytes'])} compressed")
    if report["by_source"]:
        table = Table("source", "versions", "articles", "bytes")
        for source_id, row in report["by_source"].items():
            table.add_row(escape(source_id), str(row["versions"]), str(row["articles"]),
                          human_bytes(row["bytes"]))
        out.print(table)
        for page in report["sample"]:
            out.print(f"  v{page['version']}  {page['fetched_at'][:10]}  {escape(page['url'])}",
                      markup=True)
        if report["versions"] > len(report["sample"]):
            out.print(f"  … and {report['versions'] - len(report['sample'])} more")
    if report["raw_gone"]:
        out.print(f"{report['raw_gone']} article(s) {'would have' if dry_run else 'have'} no raw "
                  "page left: their records stay; `cyz reextract` skips them")
    if not dry_run and report["versions"]:
        out.print(f"raw archive: {human_bytes(report['file_bytes_before'])} → "
                  f"{human_bytes(report['file_bytes_after'])}")


if __name__ == "__main__":
    main()
