"""Named extraction rules that can be switched off, for the leave-one-site-out check.

Rules written while reading real pages can fit those pages and nothing else.
`bench/extract.py` measures that: for each site of ../shared/realpages it switches off
every rule that helps no page of the *other* sites, and scores the site's pages without
them, as if the site had never been seen. The extractor itself always runs with every
rule on; `without()` exists for that check and for tests.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

RULES: dict[str, str] = {
    "document.jsonld": "JSON-LD datePublished, @graph included",
    "document.drop_hidden": "hidden (display:none) elements dropped before scoring",
    "body.cms_hints": "a generic CMS container that agrees with the scorer",
    "body.sibling_container": "the parent of an article split over sibling blocks",
    "body.wrappers": "one-child wrappers share a paragraph's vote undiminished",
    "body.short_block_guard": "a short link-free block does not beat the article",
    "body.prune": "share bars and related lists inside the body dropped by class name",
    "title.headline_in_title": "an on-page headline the <title> contains",
    "title.above_date": "the headline element above the date line beats a site-name <title>",
    "title.site_name": "og:site_name cut from the end of the <title>",
    "lines.closing_credit": "a bracketed credit closing a paragraph is metadata",
    "lines.widgets": "like-button counters dropped",
    "lines.tail": "share/related/copyright lines end the article",
    "lines.editor_ends": "the editor credit past mid-article ends it",
    "lines.link_lines": "lines mostly of links dropped",
    "byline.source_element": "an info-bar element named source names the outlet",
    "byline.near_date": "a plausible outlet beside the date line",
    "byline.footer": "来源/责任编辑 lines after the body",
    "dates.byline_over_meta": "the byline date beats a meta tag of another day",
    "dates.url_over_text": "the URL's day beats a differing text date",
    "dates.state": "dates in embedded script state",
    "dates.htmldate": "htmldate when our rules find nothing",
    "extract.fallback": "trafilatura when our body block is thin",
}

_OFF: ContextVar[frozenset[str]] = ContextVar("cyz_rules_off", default=frozenset())


def on(name: str) -> bool:
    """Whether rule `name` applies (always, outside `without`)."""
    return name not in _OFF.get()


@contextmanager
def without(names: Iterable[str]) -> Iterator[None]:
    """Extraction inside the block runs with the named rules switched off."""
    names = frozenset(names)
    unknown = names - RULES.keys()
    if unknown:
        raise KeyError(f"no such extraction rule: {', '.join(sorted(unknown))}")
    token = _OFF.set(_OFF.get() | names)
    try:
        yield
    finally:
        _OFF.reset(token)
