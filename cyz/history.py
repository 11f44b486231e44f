"""`cyz history`: the versions of one article and what changed between them.

The text of each version comes from running the current per-page pipeline on that
version's archived raw page, rather than from text stored at crawl time: the diff then
shows what the site changed, never what a pipeline upgrade between two crawls changed,
and pages archived before versions existed (raw bytes only) are shown the same way. It
costs one extraction per version of one article, well under a second each.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

from cyz.config import Source
from cyz.pipelines.archive import ARCHIVE_FILE, RawArchive
from cyz.pipelines.page import build_record
from cyz.record import article_id
from cyz.urls import canonical_url

DIFF_CONTEXT = 1  # unchanged sentences shown around each change
DIFF_MAX_LINES = 40
LINE_MAX_CHARS = 200

# Chinese text has few newlines, so a line diff would show whole paragraphs: split into
# sentences after 。！？ (keeping closing quotes with their sentence) and at newlines.
_SENTENCE = re.compile(r"[^。！？!?\n]*[。！？!?]+[”’\"'」』）)]*|[^。！？!?\n]+")


class UnknownArticle(LookupError):
    """No archived article has that id or URL."""


def article_id_of(target: str) -> str:
    """An article id, or the id of an article URL (any spelling of it)."""
    return article_id(canonical_url(target)) if "://" in target else target


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.findall(text) if s.strip()]


def text_diff(old: str, new: str) -> str:
    """A short unified diff of two texts, sentence by sentence, capped in length."""
    lines = list(difflib.unified_diff(sentences(old), sentences(new), lineterm="",
                                      n=DIFF_CONTEXT))[2:]  # without the ---/+++ header
    lines = [line if len(line) <= LINE_MAX_CHARS else line[:LINE_MAX_CHARS] + "…" for line in lines]
    if len(lines) > DIFF_MAX_LINES:
        lines = lines[:DIFF_MAX_LINES] + [f"… {len(lines) - DIFF_MAX_LINES} more lines"]
    return "\n".join(lines)


def history(data_dir: Path, target: str, sources: list[Source]) -> dict:
    """`{"id", "url", "versions": [{"version", "fetched_at", "title", "chars", "diff"}]}`,
    oldest version first; `diff` is None for the first version. `sources` give the
    encoding and body hints of each page's source, as in the crawl.

    Raises UnknownArticle when the archive holds no version of `target`."""
    record_id = article_id_of(target)
    if not (Path(data_dir) / ARCHIVE_FILE).exists():  # a look-up must not create an archive
        raise UnknownArticle(f"no archived article {target!r}: nothing has been crawled into "
                             f"{data_dir} yet")
    archive = RawArchive(data_dir)
    try:
        pages = archive.versions(record_id)
    finally:
        archive.close()
    if not pages:
        raise UnknownArticle(f"no archived article {target!r} (give an article id or URL "
                             "from `cyz search --json`)")
    configured = {s.id: s for s in sources}
    versions: list[dict] = []
    previous: str | None = None
    for page in pages:
        entry: dict = {"version": page.version, "fetched_at": page.fetched_at}
        try:
            record = build_record(page.body, page.url, source=configured.get(page.source_id),
                                  http_charset=page.http_charset, fetched_at=page.fetched_at)
        except Exception as exc:  # noqa: BLE001 - one unreadable version must not hide the others
            entry.update(title="", chars=0, diff=None, error=f"{type(exc).__name__}: {exc}")
            previous = None
        else:
            entry.update(title=record["title"], chars=len(record["text"]),
                         diff=None if previous is None else text_diff(previous, record["text"]))
            previous = record["text"]
        versions.append(entry)
    return {"id": record_id, "url": pages[-1].url, "versions": versions}
