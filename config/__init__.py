"""The operator's configuration: models and loaders for sources.yaml and topic.yaml.

The YAML files beside this module are the packaged defaults (see `cyz.paths.config_dir`).
Every loader raises `ConfigError` naming the file, the entry and the field, so a bad
edit fails before any request is made.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import time
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from cyz.record import EventType
from cyz.urls import host_allowed, url_pattern


class ConfigError(ValueError):
    """A configuration file is unreadable or invalid; the message names file, entry and field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _compile_all(patterns: list[str]) -> list[str]:
    # RE2, as the crawl matches them (linear time); Python's `re` would accept patterns
    # the crawl cannot run (backreferences, lookarounds).
    for pattern in patterns:
        url_pattern(pattern)  # raises ValueError naming the pattern and RE2's reason
    return patterns


def _check_urls(urls: list[str]) -> list[str]:
    for url in urls:
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
    return urls


class Revisit(_Strict):
    """`revisit:` of a source: when a known article is asked again.

    `{first_days: 1, max_days: 30}` (the default, adaptive): after as long as it has
    stayed unchanged, at least `first_days`, at most `max_days`; `always`: every run (as
    before issue 15); `never`: only by `cyz crawl --full` (list pages, feeds and sitemaps
    are fetched every run whatever this says)."""

    mode: Literal["adaptive", "always", "never"] = "adaptive"
    first_days: float = Field(default=1.0, gt=0, le=365)
    max_days: float = Field(default=30.0, gt=0, le=3650)

    @model_validator(mode="before")
    @classmethod
    def _word(cls, value: object) -> object:
        if isinstance(value, str):
            if value not in ("always", "never", "adaptive"):
                raise ValueError(f"expected always, never or a mapping such as "
                                 f"{{first_days: 1, max_days: 30}} (got {value!r})")
            return {"mode": value}
        if value is None or isinstance(value, dict):
            return value or {}
        raise ValueError(f"expected always, never or a mapping such as "
                         f"{{first_days: 1, max_days: 30}} (got {value!r})")

    @model_validator(mode="after")
    def _ordered(self) -> Revisit:
        if self.max_days < self.first_days:
            raise ValueError(f"max_days ({self.max_days:g}) must be at least first_days "
                             f"({self.first_days:g})")
        return self


def _not_blank(value: str) -> str:
    # The tagger matches these names as regex alternatives: an empty one would match at
    # every position, a blank one at every space.
    if not value.strip():
        raise ValueError(f"must not be empty or blank (got {value!r})")
    return value


NonBlank = Annotated[str, AfterValidator(_not_blank)]


_PLACEHOLDERS = ("{keyword}", "{page}")


def _strings(value: object) -> Iterable[str]:
    """Every string inside a JSON-like value (keys and values)."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield str(key)
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def _dotted(value: str) -> str:
    if not value.strip() or any(not part.strip() for part in value.split(".")):
        raise ValueError(f"expected a dotted path such as data.middle.list (got {value!r})")
    return value.strip()


DottedPath = Annotated[str, AfterValidator(_dotted)]


class Search(_Strict):
    """`search:` of a source: a site's own search API as the entry point (issue 17).

    One request per keyword and page (`{keyword}` and `{page}` are replaced in `url`,
    `params`, `json` and `form`; a value that is exactly "{page}" becomes a number in
    `json`); a keyword's pages stop at the first page without items. The result URLs
    (`url_field` of each entry of the `items` list) become article requests like a
    feed's links: same canonical de-duplication, revisit policy and domain rule, and
    the source's `article_patterns` when it has any. `session_url` is fetched first and
    its cookies are sent with this source's search requests only."""

    url: str
    method: Literal["GET", "POST"] = "GET"
    params: dict[str, object] = Field(default_factory=dict)  # query string
    json_body: dict[str, object] | None = Field(default=None, alias="json")
    form: dict[str, object] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    keywords: list[NonBlank] = Field(min_length=1)
    pages: int = Field(default=1, ge=1, le=50)  # pages per keyword
    first_page: int = Field(default=1, ge=0)  # what {page} is on the first page
    items: DottedPath  # path to the result list in the JSON answer
    url_field: DottedPath = "url"  # in each item
    # Accepted and checked, not used yet: the page's own title and date are extracted.
    title_field: DottedPath | None = None
    date_field: DottedPath | None = None
    session_url: str | None = None

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url", "session_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None:
            _check_urls([value])
        return value

    @model_validator(mode="after")
    def _complete(self) -> Search:
        if self.json_body is not None and self.form is not None:
            raise ValueError("json: give either json or form, not both")
        if self.method == "GET" and (self.json_body is not None or self.form is not None):
            raise ValueError("method: a json or form body needs method: POST "
                             "(a GET search takes params)")
        everywhere = " ".join(_strings([self.url, self.params, self.json_body or {},
                                        self.form or {}]))
        for placeholder in _PLACEHOLDERS:
            if placeholder not in everywhere:
                raise ValueError(f"{placeholder} must appear in url, params, json or form "
                                 "(each request differs by keyword and page)")
        return self

    @property
    def hosts(self) -> set[str]:
        return {h for h in (urlsplit(u).hostname for u in (self.url, self.session_url or ""))
                if h}


class Source(_Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str
    kind: Literal["government", "news", "wechat"]
    region: str
    start_urls: list[str] = Field(default_factory=list)
    article_patterns: list[str] = Field(default_factory=list)
    follow_patterns: list[str] = Field(default_factory=list)
    feeds: list[str] = Field(default_factory=list)
    sitemaps: list[str] = Field(default_factory=list)
    max_depth: int = Field(default=2, ge=0, le=20)
    enabled: bool = True
    disabled_reason: str | None = None
    allowed_domains: list[str] = Field(default_factory=list)
    encoding: str | None = None
    user_agent: str | None = None
    download_delay: float | None = Field(default=None, ge=0)
    body_selector: str | None = None
    notes: str | list[str] | None = None
    # Intranet sites only: let the crawl reach hosts that resolve to private, loopback or
    # link-local addresses (refused otherwise, unless an entry URL names the address).
    allow_private_addresses: bool = False
    # Query parameters that only track on this site, beyond the built-in list
    # (cyz.urls.TRACKING_PARAMS): dropped from the canonical URL and the stored URL.
    tracking_params: list[str] = Field(default_factory=list)
    # List/follow/pager pages per run; None: the crawl's CYZ_MAX_LIST_PAGES; 0: no cap.
    max_list_pages: int | None = Field(default=None, ge=0)
    # When a known article is asked again (list pages, feeds, sitemaps: every run).
    revisit: Revisit = Field(default_factory=Revisit)
    # A site search API as entry point (see `Search`).
    search: Search | None = None
    # How its pages are fetched: `http` (Scrapy) or `browser` (Chromium, for sites behind
    # a JavaScript challenge or whose lists scripts build; crawler/browser.py).
    render: Literal["http", "browser"] = "http"

    _patterns = field_validator("article_patterns", "follow_patterns")(_compile_all)
    _urls = field_validator("start_urls", "feeds", "sitemaps")(_check_urls)

    @field_validator("encoding")
    @classmethod
    def _known_encoding(cls, value: str | None) -> str | None:
        if value is not None:
            import codecs

            try:
                codecs.lookup(value)
            except LookupError:
                raise ValueError(f"unknown encoding {value!r}") from None
        return value

    @model_validator(mode="after")
    def _has_entry_points(self) -> Source:
        if self.enabled and not (self.start_urls or self.feeds or self.sitemaps or self.search):
            raise ValueError("start_urls: an enabled source needs start_urls, feeds, sitemaps "
                             "or search")
        if self.enabled and not self.article_patterns and not self.feeds \
                and not self.sitemaps and not self.search:
            raise ValueError("article_patterns: an enabled source needs at least one")
        if self.allowed_domains:
            # An entry URL off the domains would be dropped without a trace.
            allowed = [d.lower() for d in self.allowed_domains]
            entry = {urlsplit(u).hostname for u in self.start_urls + self.feeds
                     + self.sitemaps} - {None}
            search = self.search.hosts if self.search is not None else set()
            needed = [(h, f"{h!r}, the host of an entry URL (start_urls, feeds or sitemaps)")
                      for h in sorted(entry)]
            needed += [(h, f"the search host {h!r}") for h in sorted(search)]
            for host, what in needed:
                if not host_allowed(host, allowed):
                    raise ValueError(f"allowed_domains: must admit {what}")
        return self

    @property
    def domains(self) -> list[str]:
        """Hosts the crawl may visit (lower-case): `allowed_domains`, else the hosts of its
        entry URLs."""
        if self.allowed_domains:
            return [d.lower() for d in self.allowed_domains]
        hosts = {urlsplit(u).hostname for u in self.entry_urls}
        return sorted(h.lower() for h in hosts if h)

    @property
    def entry_urls(self) -> list[str]:
        """Every URL the crawl starts from: start URLs, feeds, sitemaps and the search
        API with its session page."""
        urls = self.start_urls + self.feeds + self.sitemaps
        if self.search is not None:
            urls += [self.search.url] + ([self.search.session_url]
                                         if self.search.session_url else [])
        return urls


class SourcesFile(_Strict):
    sources: list[Source]


class _ConfigLoader(yaml.SafeLoader):
    """Safe YAML, stricter in two ways. Anchors and aliases are refused: nine levels of
    `&a`/`*a` expand to gigabytes (an alias bomb), and no config file needs them. A key
    given twice in one mapping is refused: PyYAML would silently keep the last one."""

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.composer.ComposerError(
                None, None, "anchors and aliases (&name, *name) are not allowed in cyz config "
                "files; write the value out", event.start_mark)
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            first: dict[object, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    earlier = first.setdefault(key, key_node)
                except TypeError:
                    continue  # an unhashable key: the base constructor reports it
                if earlier is not key_node:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"key {key!r} given twice in one mapping "
                        f"(first on line {earlier.start_mark.line + 1})", key_node.start_mark)
        return super().construct_mapping(node, deep=deep)


def _read_yaml(path: Path) -> object:
    """Every config file is read here (see `_ConfigLoader` for what it refuses)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8: {exc}") from None
    try:
        return yaml.load(text, Loader=_ConfigLoader)  # safe: _ConfigLoader is a SafeLoader
    except RecursionError:
        raise ConfigError(f"{path}: bad YAML: nested too deeply") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError(f"{path}:{where}: bad YAML: {problem}") from None


# Error types whose offending value is short and worth echoing back to the operator.
_ECHO_INPUT = {"literal_error", "string_pattern_mismatch", "int_parsing", "float_parsing",
               "bool_parsing", "greater_than_equal", "less_than_equal", "list_type",
               "string_type"}


def _describe(err: dict, known: Iterable[str]) -> str:
    """One pydantic error in the operator's words: a typo'd key gets a suggestion."""
    msg = err["msg"].removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        key = str(err["loc"][-1])
        close = difflib.get_close_matches(key, list(known), n=1)
        return "unknown key" + (f" (did you mean {close[0]!r}?)" if close else "")
    if err["type"] in _ECHO_INPUT and len(repr(err.get("input"))) <= 80:
        msg += f" (got {err['input']!r})"
    return msg


def _nested_keys(model: type[BaseModel] | None, loc: list) -> list[str]:
    """The keys (aliases where given) of the model nested at `loc` in `model`, for a
    typo's suggestion (`search.sesion_url`)."""
    for part in loc:
        field = model.model_fields.get(part) if model and isinstance(part, str) else None
        if field is None:
            field = next((f for f in (model.model_fields.values() if model else [])
                          if f.alias == part), None)
        if field is None:
            return []
        kinds = [field.annotation, *getattr(field.annotation, "__args__", ())]
        model = next((k for k in kinds if isinstance(k, type) and issubclass(k, BaseModel)),
                     None)
    if model is None:
        return []
    return [f.alias or name for name, f in model.model_fields.items()]


def _explain(path: Path, data: object, exc: ValidationError, list_key: str,
             entry_model: type[BaseModel] | None = None,
             file_model: type[BaseModel] | None = None, id_key: str = "id") -> ConfigError:
    entry_keys = list(entry_model.model_fields) if entry_model else []
    file_keys = list(file_model.model_fields) if file_model else []
    lines = []
    for err in exc.errors():
        loc = list(err["loc"])
        where = ".".join(str(p) for p in loc)
        if len(loc) >= 2 and loc[0] == list_key and isinstance(loc[1], int):
            entries = data.get(list_key) if isinstance(data, dict) else None
            entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else None
            entry_id = entry.get(id_key) if isinstance(entry, dict) else None
            field = ".".join(str(p) for p in loc[2:]) or "(entry)"
            msg = _describe(err, entry_keys if len(loc) == 3
                            else _nested_keys(entry_model, loc[2:-1]))
            if field == "(entry)" and ":" in msg:
                field, msg = (s.strip() for s in msg.split(":", 1))
            elif isinstance(err.get("input"), dict) and re.match(r"\w+: ", msg):
                # A nested model's own check (`search:`) names its field first too.
                sub, msg = (s.strip() for s in msg.split(":", 1))
                field = f"{field}.{sub}"
            label = f"entry {entry_id!r}" if entry_id else f"entry #{loc[1] + 1}"
            lines.append(f"{path}: {label}, field {field!r}: {msg}")
        else:
            msg = _describe(err, file_keys)
            if not where and ":" in msg:  # a whole-file check names its field first
                where, msg = (s.strip() for s in msg.split(":", 1))
            lines.append(f"{path}: field {where!r}: {msg}")
    return ConfigError("\n".join(lines))


def load_sources(path: Path) -> list[Source]:
    """Read and validate a sources file; raise ConfigError naming file, entry and field."""
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'sources' list")
    try:
        parsed = SourcesFile.model_validate(data)
    except ValidationError as exc:
        raise _explain(path, data, exc, "sources", Source, SourcesFile) from None
    seen: dict[str, int] = {}
    for number, src in enumerate(parsed.sources, 1):
        if src.id in seen:
            raise ConfigError(f"{path}: entry {src.id!r}, field 'id': duplicate id "
                              f"(entries #{seen[src.id]} and #{number})")
        seen[src.id] = number
    return parsed.sources




class Place(_Strict):
    name: NonBlank
    aliases: list[NonBlank] = Field(default_factory=list)


class Region(_Strict):
    name: NonBlank
    parent: NonBlank | None = None
    aliases: list[NonBlank] = Field(default_factory=list)
    places: list[Place] = Field(default_factory=list)


class Topic(_Strict):
    id: NonBlank
    name: NonBlank
    keywords: list[NonBlank]


def _regex(value: str | None) -> str | None:
    # Event rules run in this process with Python's `re` (not the crawl's RE2), so `re`
    # decides what compiles; an analyst's typo fails here, not on the first page.
    if value is not None:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"bad regex {value!r}: {exc}") from None
    return value


Regex = Annotated[str, AfterValidator(_regex)]


class EventRule(_Strict):
    """One way a sentence tells a cooperation event (see the `events:` section of
    topic.yaml for what each field means)."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    type: EventType
    triggers: list[NonBlank] = Field(default_factory=list)
    pattern: Regex | None = None
    needs: list[NonBlank] = Field(default_factory=list)
    unless: list[NonBlank] = Field(default_factory=list)
    scope: Literal["clause", "sentence"] = "clause"
    cross_region: bool = False
    key: Regex | None = None

    @model_validator(mode="after")
    def _fires_on_something(self) -> EventRule:
        if not self.triggers and not self.pattern:
            raise ValueError("triggers: a rule needs triggers or a pattern")
        return self


class EventMarkers(_Strict):
    planned: list[NonBlank] = Field(default_factory=list)
    done: list[NonBlank] = Field(default_factory=list)
    negation: list[NonBlank] = Field(default_factory=list)
    ignore: list[NonBlank] = Field(default_factory=list)
    approx: list[NonBlank] = Field(default_factory=list)
    scene: list[NonBlank] = Field(default_factory=list)
    tally: list[NonBlank] = Field(default_factory=list)
    tally_pattern: Regex | None = None
    content: Regex | None = None


class PartyRules(_Strict):
    suffixes: list[NonBlank] = Field(default_factory=list)
    words: list[NonBlank] = Field(default_factory=list)
    location_markers: list[NonBlank] = Field(default_factory=list)
    generic: list[NonBlank] = Field(default_factory=list)
    not_organisations: list[NonBlank] = Field(default_factory=list)
    prepositions: list[NonBlank] = Field(default_factory=list)
    source_verbs: list[NonBlank] = Field(default_factory=list)


class EventRules(_Strict):
    rules: list[EventRule] = Field(default_factory=list)
    markers: EventMarkers = Field(default_factory=EventMarkers)
    parties: PartyRules = Field(default_factory=PartyRules)
    key_cut: list[NonBlank] = Field(default_factory=list)
    joint: list[NonBlank] = Field(default_factory=list)
    evidence: list[NonBlank] = Field(default_factory=list)
    exclude: list[NonBlank] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> EventRules:
        ids = [r.id for r in self.rules]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"rules: {twice[0]!r} is given twice")
        return self


class TopicFile(_Strict):
    regions: list[Region]
    compounds: dict[NonBlank, list[NonBlank]] = Field(default_factory=dict)
    topics: list[Topic] = Field(default_factory=list)
    focus_regions: list[NonBlank] = Field(default_factory=list)
    # Without an `events:` section no events are extracted (an older topic.yaml).
    events: EventRules = Field(default_factory=EventRules)

    @model_validator(mode="after")
    def _known_regions(self) -> TopicFile:
        # A name given twice would silently merge two entries in the tagger.
        for label, values in (("regions", [r.name for r in self.regions]),
                              ("topics", [t.id for t in self.topics])):
            twice = sorted({v for v in values if values.count(v) > 1})
            if twice:
                raise ValueError(f"{label}: {twice[0]!r} is given twice")
        names = {r.name for r in self.regions}
        for compound, parts in self.compounds.items():
            for part in parts:
                if part not in names:
                    raise ValueError(f"compounds: {compound!r} names unknown region {part!r}")
        for name in self.focus_regions:
            if name not in names:
                raise ValueError(f"focus_regions: unknown region {name!r}")
        return self


def load_topic(path: Path) -> TopicFile:
    data = _read_yaml(path)
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'regions' list")
    try:
        return TopicFile.model_validate(data)
    except ValidationError as exc:
        # An event rule's error names the rule by id; the rest as for regions.
        lines = []
        rest = []
        for err in exc.errors():
            loc = err["loc"]
            if loc[:2] == ("events", "rules") and len(loc) > 2 and isinstance(loc[2], int):
                lines.append(_explain_rule(path, data, err))
            else:
                rest.append(err)
        if rest:
            lines.insert(0, str(_explain(path, data, _Errors(rest), "regions", Region, TopicFile,
                                         id_key="name")))
        raise ConfigError("\n".join(lines)) from None


class _Errors:
    """Some of a ValidationError's errors, for `_explain`."""

    def __init__(self, errors: list[dict]):
        self._errors = errors

    def errors(self) -> list[dict]:
        return self._errors


def _explain_rule(path: Path, data: dict, err: dict) -> str:
    loc = err["loc"]
    rules = (data.get("events") or {}).get("rules") if isinstance(data.get("events"), dict) else None
    rule = rules[loc[2]] if isinstance(rules, list) and loc[2] < len(rules) else None
    rule_id = rule.get("id") if isinstance(rule, dict) else None
    label = f"events rule {rule_id!r}" if rule_id else f"events rule #{loc[2] + 1}"
    field = ".".join(str(p) for p in loc[3:]) or "(entry)"
    msg = _describe(err, list(EventRule.model_fields) if len(loc) == 4 else [])
    if field == "(entry)" and ":" in msg:
        field, msg = (s.strip() for s in msg.split(":", 1))
    return f"{path}: {label}, field {field!r}: {msg}"


def parse_clock(text: str, example: str = "08:00") -> time:
    """A 24-hour `HH:MM` (CYZ_CRAWL_AT, an alert rule's digest_at); ValueError otherwise."""
    match = re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if not match or int(match[1]) > 23 or int(match[2]) > 59:
        raise ValueError(f"expected a 24-hour time HH:MM, e.g. {example}")
    return time(int(match[1]), int(match[2]))


def _clock(value: object) -> object:
    if isinstance(value, str):
        try:
            parse_clock(value)
        except ValueError as exc:
            raise ValueError(f"{exc} (got {value!r})") from None
    return value


def _address(value: str) -> str:
    from email.utils import parseaddr

    _, address = parseaddr(value)
    if not re.fullmatch(r"[^@\s<>,]+@[^@\s<>,]+", address) or "\n" in value or "\r" in value:
        raise ValueError(f"not a mail address: {value!r}")
    return value.strip()


class AlertRule(_Strict):
    """One keyword alert (`config/alerts.yaml`); see DESIGN.md for an example."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: NonBlank
    all: list[NonBlank] = Field(default_factory=list)  # every one must occur
    any: list[NonBlank] = Field(default_factory=list)  # at least one must occur
    none: list[NonBlank] = Field(default_factory=list)  # none may occur
    regions: list[NonBlank] = Field(default_factory=list)  # mentions any of these places
    sources: list[str] = Field(default_factory=list)
    source_kinds: list[Literal["government", "news", "wechat"]] = Field(default_factory=list)
    topics: list[str] = Field(default_factory=list)  # any of these topic ids
    event_types: list[EventType] = Field(default_factory=list)  # has an event of these
    planned: bool | None = None  # with event_types: only planned (true) or done (false)
    min_relevance: float = Field(0.0, ge=0, le=1)
    recipients: list[Annotated[str, AfterValidator(_address)]] = Field(min_length=1)
    mode: Literal["immediate", "digest"] = "immediate"
    digest_at: Annotated[str, AfterValidator(_clock)] = "08:00"  # Asia/Shanghai
    enabled: bool = True

    @model_validator(mode="after")
    def _says_something(self) -> AlertRule:
        if not (self.all or self.any or self.event_types or self.regions or self.topics):
            raise ValueError("all: a rule needs keywords (all or any), event_types, regions "
                             "or topics: it would match every article")
        if self.mode != "digest" and "digest_at" in self.model_fields_set:
            raise ValueError("digest_at: only a digest rule has one (mode: digest)")
        return self

    @property
    def digest_time(self) -> time:
        """`digest_at` as a time of day (Asia/Shanghai)."""
        return parse_clock(self.digest_at)


class AlertsFile(_Strict):
    rules: list[AlertRule] = Field(default_factory=list)


def load_alerts(path: Path, sources: list[Source], topic: TopicFile) -> list[AlertRule]:
    """Read and validate an alerts file against the sources and the topic; a missing
    file means no rules."""
    if not path.exists():
        return []
    data = _read_yaml(path)
    if data is None:
        return []
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping with a 'rules' list")
    try:
        rules = AlertsFile.model_validate(data).rules
    except ValidationError as exc:
        raise _explain(path, data, exc, "rules", AlertRule, AlertsFile) from None
    # A region may be given by a gazetteer alias; records carry the names.
    region_names = {r.name: r.name for r in topic.regions}
    region_names |= {a: r.name for r in topic.regions for a in r.aliases}
    known = {"sources": {s.id for s in sources}, "topics": {t.id for t in topic.topics},
             "regions": set(region_names)}
    seen: set[str] = set()
    for number, rule in enumerate(rules):
        if rule.id in seen:
            raise ConfigError(f"{path}: entry {rule.id!r}, field 'id': duplicate id")
        seen.add(rule.id)
        for field, names in known.items():
            for value in getattr(rule, field):
                if value not in names:
                    close = difflib.get_close_matches(value, sorted(names), n=1)
                    hint = f" (did you mean {close[0]!r}?)" if close else ""
                    raise ConfigError(f"{path}: entry {rule.id!r}, field {field!r}: unknown "
                                      f"{field[:-1]} {value!r}{hint}")
        if rule.regions:
            named = list(dict.fromkeys(region_names[r] for r in rule.regions))
            rules[number] = rule.model_copy(update={"regions": named})
    return rules


@dataclass(frozen=True)
class Config:
    """Every file of a config dir, validated together (`load_config`)."""

    dir: Path
    sources: list[Source]
    topic: TopicFile
    alerts: list[AlertRule] = ()

    @property
    def alerts_file(self) -> Path:
        return self.dir / "alerts.yaml"

    @property
    def topic_file(self) -> Path:
        return self.dir / "topic.yaml"


def load_config(config_dir: Path, *, sources_file: Path | None = None) -> Config:
    """Read and validate every config file of `config_dir` (`sources_file` instead of its
    sources.yaml when given); raise ConfigError naming the file, entry and field.

    The one way to load the configuration: every command and the scheduler call it in
    the main process before any request, so a worker never is the first to find a bad
    file."""
    config_dir = Path(config_dir).resolve()
    sources = load_sources(sources_file or config_dir / "sources.yaml")
    topic = load_topic(config_dir / "topic.yaml")
    # Rules name sources of the config dir's own sources.yaml, whatever `sources_file` is.
    known = sources if sources_file is None else load_sources(config_dir / "sources.yaml")
    alerts = load_alerts(config_dir / "alerts.yaml", known, topic)
    return Config(dir=config_dir, sources=sources, topic=topic, alerts=alerts)
