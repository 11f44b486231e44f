"""Indexing rate and search latency of the embedded SQLite engine and OpenSearch.

    python bench/index.py [--articles 50000] [--opensearch-url http://127.0.0.1:9201]

Generates N synthetic Chinese articles (deterministic for a seed), bulk-writes them into
each engine through `Engine.write()` in batches, then times a fixed set of typical
searches. Prints one markdown table; both engines are measured in the same run so that
the OpenSearch/SQLite ratios mean something on a shared, noisy machine.

The OpenSearch indices get a unique prefix and are deleted at the end, also on Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

from cyz.index.base import Engine, Filters, SearchRequest
from cyz.index.query import parse
from cyz.index.sqlite import SqliteEngine
from cyz.pipelines.script import to_simplified, to_traditional
from cyz.record import Article, Event, article_id

# Python puts bench/ first on sys.path, where bench/events.py would shadow the `events`
# package opensearch-py imports; nothing here imports from bench/.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

BATCH = 500
TARGET_RATE = 2000.0  # articles/s into OpenSearch
ROUNDS = 5  # timed rounds per query, after one warm-up round
SHANGHAI = timezone(timedelta(hours=8))

# -- vocabulary ------------------------------------------------------------------------
# Places by the region (gazetteer name) a mention counts for.
PLACES = {
    "遵义": ["遵义", "遵义市", "汇川区", "红花岗区", "播州区", "新蒲新区", "仁怀市", "赤水市",
           "湄潭县", "凤冈县", "习水县", "绥阳县", "正安县", "务川县"],
    "重庆": ["重庆", "重庆市", "两江新区", "渝中区", "江北区", "綦江区", "万盛经开区", "永川区",
           "九龙坡区", "渝北区", "沙坪坝区", "涪陵区"],
    "成都": ["成都", "成都市", "双流区", "天府新区", "高新区", "郫都区", "龙泉驿区", "温江区",
           "新都区", "青白江区", "锦江区", "武侯区"],
}
RARE_PLACE = ("遵义", "娄山关")  # appears in about one article in 500
FIELDS = ["白酒产业", "茶产业", "装备制造", "电子信息", "现代物流", "文化旅游", "数字经济",
          "新能源汽车", "生物医药", "农产品加工", "职业教育", "医疗卫生", "生态环保", "口岸开放"]
ORGS = ["市发展改革委", "市商务局", "市投资促进局", "市文化和旅游局", "市交通运输局",
        "市农业农村局", "经开区管委会", "市工商联", "市人民政府", "市科技局"]
PROJECTS = ["物流园", "产业园", "合作示范区", "飞地园区", "数据中心", "冷链基地", "职教中心",
            "康养基地", "高铁站综合枢纽", "茶旅融合示范带"]

TITLES = [
    "{a}与{b}签署{field}合作协议",
    "{a}代表团赴{b}考察{field}",
    "成渝地区双城经济圈建设：{a}{field}项目加快推进",
    "{a}{org}与{b}{org2}举行工作座谈",
    "{a}至{b}{project}正式开工",
    "{b}企业落户{a}{project}",
    "{a}推动{field}融入成渝地区双城经济圈",
    "{a}召开{field}高质量发展推进会",
    "聚焦{field}：{a}与{b}共建{project}",
    "{a}举办{field}招商推介会",
]
COOPERATION = [
    "{a}与{b}签署{field}战略合作协议，双方将在{field2}等领域深化合作。",
    "{a}{org}与{b}{org2}举行座谈，就共建{project}进行深入交流。",
    "会上，{a}与{b}现场签约{n}个项目，总投资{amount}亿元。",
    "{a}主动融入成渝地区双城经济圈建设，加快打造{field}协作平台。",
    "双方表示，将以{project}为抓手，推动{field}产业协作走深走实。",
    "{b}考察团一行先后来到{a}{project}、{a2}等地，实地了解{field}发展情况。",
    "据介绍，{a}至{b}的{project}建成后，两地通行时间将缩短{n}分钟。",
    "{a}与{b}签订框架协议，明确在{field}、{field2}方面开展全方位合作。",
    "{a}{org}负责人表示，将进一步加强与{b}的对接，共同争取国家政策支持。",
    "今年以来，{a}累计引进{b}企业{n}家，到位资金{amount}亿元。",
    "此次合作是{a}与{b}落实区域协调发展战略的具体举措。",
    "{a}与{b}围绕{field}建立联席会议制度，定期协商解决合作中的问题。",
]
FILLER = [
    "活动现场气氛热烈，参会人员纷纷表示收获颇丰。",
    "近年来，当地坚持以人民为中心的发展思想，不断提升公共服务水平。",
    "与会人员围绕议题进行了深入讨论，提出了许多有针对性的意见建议。",
    "下一步，有关部门将进一步细化工作方案，明确时间节点和责任分工。",
    "据统计，{a}全年接待游客{n}万人次，实现旅游综合收入{amount}亿元。",
    "{a}{org}相关负责人介绍了近期重点工作的推进情况。",
    "会议要求，各级各部门要提高政治站位，压实工作责任，确保各项任务落地见效。",
    "该项目占地约{n}亩，主要建设标准化厂房、仓储设施及配套服务用房。",
    "当天，{a}还组织召开了安全生产工作专题会议。",
    "项目建成投产后，预计可实现年产值{amount}亿元，带动就业{n}余人。",
    "记者在现场看到，施工人员正在有序作业，各类机械设备来回穿梭。",
    "近期，{a}持续优化营商环境，推行企业开办全程网上办理。",
    "他强调，要坚持问题导向，补短板、强弱项，推动经济社会高质量发展。",
    "截至目前，{a}已建成高标准农田{n}万亩，粮食产量保持稳定。",
    "天气转凉，气象部门提醒市民注意早晚温差，及时增添衣物。",
    "{a}{org}将继续做好服务保障，为企业发展营造良好环境。",
    "座谈会上，企业代表结合自身实际，就融资、用地、人才等问题发言。",
    "{a}的茶园里一片繁忙景象，茶农们正抢抓时节采摘春茶。",
    "通过开展专项行动，{a}共排查整治各类隐患{n}处。",
    "此外，{a}还将加大对中小企业的帮扶力度，落实各项减税降费政策。",
    "参加活动的还有市直有关部门和部分企业负责人。",
    "该负责人表示，将以此次活动为契机，进一步扩大对外开放。",
    "各级干部深入基层一线，倾听群众呼声，帮助解决实际困难。",
    "据了解，{a}今年计划实施重点项目{n}个，年度计划投资{amount}亿元。",
]
EVENT_TYPES = ["agreement", "visit", "project", "conference", "policy", "transport"]


@dataclass(frozen=True)
class Source:
    id: str
    name: str
    kind: str
    region: str
    host: str


SOURCES = [
    Source("zunyi-gov", "遵义市人民政府", "gov", "遵义", "www.zunyi.gov.cn"),
    Source("zunyi-daily", "遵义日报", "news", "遵义", "www.zyrb.com.cn"),
    Source("huichuan-gov", "汇川区人民政府", "gov", "遵义", "www.zyhc.gov.cn"),
    Source("renhuai-gov", "仁怀市人民政府", "gov", "遵义", "www.rh.gov.cn"),
    Source("cq-gov", "重庆市人民政府", "gov", "重庆", "www.cq.gov.cn"),
    Source("cq-daily", "重庆日报", "news", "重庆", "www.cqrb.cn"),
    Source("liangjiang", "两江新区", "gov", "重庆", "www.liangjiang.gov.cn"),
    Source("qijiang-gov", "綦江区人民政府", "gov", "重庆", "www.cqqj.gov.cn"),
    Source("cd-gov", "成都市人民政府", "gov", "成都", "www.chengdu.gov.cn"),
    Source("cd-daily", "成都日报", "news", "成都", "www.cdrb.com.cn"),
    Source("shuangliu-gov", "双流区人民政府", "gov", "成都", "www.shuangliu.gov.cn"),
    Source("tw-news", "台灣新聞網", "news", "", "news.example.tw"),  # writes traditional
]
START = datetime(2024, 1, 1, tzinfo=SHANGHAI)
SPAN_S = 2 * 365 * 86400  # published_at spread over two years


class Vocabulary:
    """Every template and slot value in both scripts, converted once up front."""

    def __init__(self) -> None:
        def both(items: list[str]) -> tuple[list[str], list[str]]:
            # One OpenCC call for a whole list: join on a separator no rule touches.
            return items, to_traditional("\n".join(items)).split("\n")

        self.titles = both(TITLES)
        self.coop = both(COOPERATION)
        self.filler = both(FILLER)
        self.fields = both(FIELDS)
        self.orgs = both(ORGS)
        self.projects = both(PROJECTS)
        self.places: list[tuple[str, str]] = []  # (region, place) in simplified script
        for region, names in PLACES.items():
            self.places += [(region, n) for n in names]
        self.place_t = dict(zip([p for _, p in self.places],
                                both([p for _, p in self.places])[1], strict=True))
        self.place_t[RARE_PLACE[1]] = to_traditional(RARE_PLACE[1])


@dataclass
class Corpus:
    """Figures about the generated articles (filled while generating)."""

    articles: int = 0
    chars: int = 0
    hant: int = 0
    seconds: float = 0.0
    events: int = 0


class _Draft:
    """One article being written: its script, home places and the places it mentions."""

    def __init__(self, rng: random.Random, vocab: Vocabulary, source: Source, hant: bool) -> None:
        self.rng, self.vocab, self.hant = rng, vocab, hant
        self.s = 1 if hant else 0  # index into the (simplified, traditional) pairs
        self.home = [p for p in vocab.places if p[0] == source.region] or vocab.places
        self.mentions: Counter = Counter()
        self.partners: list[tuple[str, str]] = []  # set for cooperation stories

    def place(self, local: bool) -> str:
        rng = self.rng
        # Most mentions are of the source's own city; cooperation stories name a partner.
        away = self.partners if not local and self.partners else self.vocab.places
        region, name = rng.choice(self.home) if local or not self.partners else rng.choice(away)
        self.mentions[region] += 1
        return self.vocab.place_t[name] if self.hant else name

    def slot(self, key: str) -> str | int | float:
        rng, vocab, s = self.rng, self.vocab, self.s
        if key in ("a", "a2", "b"):
            return self.place(local=key != "b")
        if key == "n":
            return rng.randint(2, 300)
        if key == "amount":
            return round(rng.random() * 200, 1)
        pool = {"field": vocab.fields, "field2": vocab.fields, "org": vocab.orgs,
                "org2": vocab.orgs, "project": vocab.projects}[key]
        return rng.choice(pool[s])

    def fill(self, template: str) -> str:
        return template.format_map(_Slots(self))


class _Slots(dict):
    """Slots filled on first use: only the places a sentence names count as mentions."""

    def __init__(self, draft: _Draft) -> None:
        super().__init__()
        self.draft = draft

    def __missing__(self, key: str) -> str | int | float:
        value = self[key] = self.draft.slot(key)
        return value


def generate(n: int, seed: int, corpus: Corpus | None = None) -> Iterator[dict]:
    """N article records (the `Article.model_dump()` shape), the same for the same seed."""
    rng = random.Random(seed)
    vocab = Vocabulary()
    choice, randint, random_ = rng.choice, rng.randint, rng.random
    for i in range(n):
        started = time.perf_counter()
        source = SOURCES[i % len(SOURCES)] if i % 7 else choice(SOURCES)
        hant = source.id == "tw-news" or random_() < 0.02  # ≈ 10% traditional in all
        draft = _Draft(rng, vocab, source, hant)
        s = draft.s
        cooperative = random_() < 0.4  # the rest are local news
        if cooperative:
            draft.partners = [p for p in vocab.places if p[0] != source.region]
        title = draft.fill(choice((vocab.titles if cooperative else vocab.filler)[s]))
        target = randint(1500, 3000)
        rare_at = randint(0, 3) if random_() < 0.002 else -1
        paragraphs, size, events = [], 0, []
        while size < target:
            paragraph = []
            for _ in range(randint(3, 6)):
                pool = vocab.coop if cooperative and random_() < 0.15 else vocab.filler
                sentence = draft.fill(choice(pool[s]))
                if pool is vocab.coop and len(events) < 3 and random_() < 0.2:
                    events.append(sentence)
                paragraph.append(sentence)
            if len(paragraphs) == rare_at:
                draft.mentions[RARE_PLACE[0]] += 1
                name = RARE_PLACE[1]
                paragraph.append(f"{vocab.place_t[name] if hant else name}红色文化旅游区游人如织。")
            text = "".join(paragraph)
            paragraphs.append(text)
            size += len(text)
        text = "\n".join(paragraphs)
        when = START + timedelta(seconds=rng.randrange(SPAN_S))
        url = f"https://{source.host}/art/{when:%Y/%m/%d}/art_{i}.html"
        title_zh, text_zh = (to_simplified(title), to_simplified(text)) if hant else (title, text)
        record = Article(
            id=article_id(url), url=url, source_id=source.id, source_name=source.name,
            source_kind=source.kind, source_region=source.region,
            title=title, text=text, title_zh=title_zh, text_zh=text_zh,
            published_at=when.isoformat(timespec="seconds"),
            crawled_at=(when + timedelta(hours=randint(1, 48))).isoformat(timespec="seconds"),
            language="zh-tw" if hant else "zh-cn", script="hant" if hant else "hans",
            origin=source.name, content_hash=f"{rng.getrandbits(64):016x}",
            regions=[{"name": r, "count": c} for r, c in draft.mentions.most_common()],
            topics=["cooperation"] if cooperative else [],
            relevance=round(random_(), 3) if cooperative else 0.0,
            events=(mentions := [Event(
                type=choice(EVENT_TYPES), date=when.date().isoformat(), date_precision="day",
                # the cities the story names: what happenings are merged on
                parties=list(draft.mentions)[:2], places=list(draft.mentions)[:2],
                regions=list(draft.mentions), sentence=to_simplified(e) if hant else e,
            ).model_dump() for e in events]),
            event_types=sorted({e["type"] for e in mentions}),
        ).model_dump()
        if corpus is not None:
            corpus.articles += 1
            corpus.chars += len(text)
            corpus.hant += hant
            corpus.events += len(events)
            corpus.seconds += time.perf_counter() - started
        yield record


def batches(records: Iterator[dict], size: int = BATCH) -> Iterator[list[dict]]:
    batch: list[dict] = []
    for record in records:
        batch.append(record)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# -- measuring ---------------------------------------------------------------------------


@dataclass
class Case:
    label: str
    query: str
    filters: Filters = field(default_factory=Filters)
    sort: str = "best"


CASES = [
    Case("遵义", "遵义"),
    Case("成渝", "成渝"),
    Case("遵義 (traditional)", "遵義"),
    Case('"成渝地区双城经济圈"', '"成渝地区双城经济圈"'),
    Case("遵义 合作", "遵义 合作"),
    Case("签约 OR 协议", "签约 OR 协议"),
    Case("重庆 项目 --region 遵义", "重庆 项目", Filters(regions=["遵义"])),
    Case("成都 --since 2025-07-01", "成都", Filters(since=date(2025, 7, 1))),
    Case("合作 --since/--until Q2 2024", "合作", Filters(since=date(2024, 4, 1), until=date(2024, 6, 30))),
    Case("(empty) --region 遵义", "", Filters(regions=["遵义"])),
    Case("(empty) --region 成都 --since 2025-12-01", "", Filters(regions=["成都"], since=date(2025, 12, 1))),
    Case("娄山关 (rare)", "娄山关"),
    Case('"产业协作" (4-char phrase)', '"产业协作"'),
    Case("两江新区", "两江新区"),
    Case("双流区 OR 天府新区", "双流区 OR 天府新区"),
    Case("汇川区 重庆", "汇川区 重庆"),
    Case("重慶 兩江新區 (traditional)", "重慶 兩江新區"),
    Case("签署 --source cq-daily", "签署", Filters(sources=["cq-daily"])),
    Case('遵义 "成渝地区双城经济圈" 签约 OR 协议', '遵义 "成渝地区双城经济圈" 签约 OR 协议'),
    Case("哈尔滨 (no hits)", "哈尔滨"),
]
# The query kinds of the search issue (exclusions, one-character words, sorts): timed
# apart, so the p50/p95 rows above compare with earlier runs of the first list.
ORIGINAL = len(CASES)
CASES += [
    Case("遵义 -重庆", "遵义 -重庆"),
    Case("合作 NOT 签约", "合作 NOT 签约"),
    Case('遵义 -"成渝地区双城经济圈"', '遵义 -"成渝地区双城经济圈"'),
    Case("渝 (one character)", "渝"),
    Case("黔 OR 蓉 (one character)", "黔 OR 蓉"),
    Case("遵义 --sort date", "遵义", sort="date"),
    Case("合作 --sort relevance", "合作", sort="relevance"),
    Case("重庆 --region 遵义 --region 成都 --all-regions", "重庆",
         Filters(regions=["遵义", "成都"], regions_all=True)),
]


@dataclass
class Result:
    engine: str
    seconds: float = 0.0  # in write() and refresh() only
    articles: int = 0
    latencies: list[float] = field(default_factory=list)  # ms, every timed search
    totals: dict[str, int] = field(default_factory=dict)  # case label → hits
    disk_bytes: int | None = None
    node_cpu: float | None = None  # OpenSearch: the node's CPU seconds while indexing
    node_cores: int | None = None

    @property
    def rate(self) -> float:
        return self.articles / self.seconds if self.seconds else 0.0

    def percentile(self, p: float, cases: range | None = None) -> float:
        """Nearest-rank percentile of the timings (of the cases in `cases`: all if None)."""
        picked = range(len(CASES)) if cases is None else cases
        ordered = sorted(t for i in picked for t in self.latencies[i::len(CASES)])
        return ordered[min(len(ordered) - 1, max(0, round(p / 100 * len(ordered) + 0.5) - 1))]


def index_into(engine: Engine, result: Result, n: int, seed: int, corpus: Corpus | None) -> None:
    engine.init()
    done = 0
    for batch in batches(generate(n, seed, corpus)):
        started = time.perf_counter()
        result.articles += engine.write(batch)
        result.seconds += time.perf_counter() - started
        done += len(batch)
        if done % 10000 == 0:
            print(f"  {engine.name}: {done}/{n} written ({result.rate:.0f} articles/s)", file=sys.stderr)
    started = time.perf_counter()
    engine.refresh()
    result.seconds += time.perf_counter() - started


def time_searches(engine: Engine, result: Result) -> None:
    requests = [(c.label, SearchRequest(parse(c.query), c.filters, sort=c.sort)) for c in CASES]
    for label, request in requests:  # warm-up: caches, OpenCC dictionaries, JIT
        result.totals[label] = engine.search(request).total
    for _ in range(ROUNDS):
        for _label, request in requests:
            started = time.perf_counter()
            engine.search(request)
            result.latencies.append((time.perf_counter() - started) * 1000)


# -- OpenSearch housekeeping ------------------------------------------------------------


def _http(method: str, url: str, timeout: float = 30) -> dict | None:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=timeout) as response:
        body = response.read()
    return json.loads(body) if body else None


def reachable(url: str) -> str | None:
    """None when OpenSearch answers at `url`, else why not."""
    try:
        info = _http("GET", url, timeout=5) or {}
    except (OSError, ValueError) as exc:
        return f"{url} is unreachable ({exc})"
    return None if "version" in info else f"{url} does not look like OpenSearch"


def drop_prefix(url: str, prefix: str) -> None:
    for path in (f"/{prefix}-*", f"/_index_template/{prefix}-articles",
                 f"/_index_template/{prefix}-events"):
        try:
            _http("DELETE", url + path)
        except (OSError, ValueError):
            pass  # already gone, or the node went away: nothing more we can do


def node_cpu(url: str) -> tuple[float, int] | None:
    """(CPU seconds the node's process has used, its cores), from `_nodes/stats`."""
    try:
        stats = _http("GET", f"{url}/_nodes/stats/process,os") or {}
        (node,) = stats["nodes"].values()
        cores = int((_http("GET", f"{url}/_nodes/os") or {})["nodes"][next(iter(stats["nodes"]))]
                    ["os"]["available_processors"])
        return node["process"]["cpu"]["total_in_millis"] / 1000, cores
    except (OSError, ValueError, KeyError):
        return None


def store_bytes(url: str, prefix: str) -> int | None:
    try:
        stats = _http("GET", f"{url}/{prefix}-*/_stats/store") or {}
        return int(stats["_all"]["primaries"]["store"]["size_in_bytes"])
    except (OSError, ValueError, KeyError):
        return None


def sqlite_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


# -- report ------------------------------------------------------------------------------


def _mb(value: int | None) -> str:
    return "–" if value is None else f"{value / 1e6:,.0f} MB"


def _kb(value: int | None, articles: int) -> str:
    return "–" if value is None or not articles else f"{value / 1024 / articles:,.1f}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"{a / b:.2f}×" if a and b else "–"


FIRST, NEW = range(ORIGINAL), range(ORIGINAL, len(CASES))


def report(n: int, corpus: Corpus, sqlite: Result, opensearch: Result | None, why_not: str | None,
           wall: float) -> str:
    o = opensearch
    rows = [
        ("indexing rate (articles/s)", o and f"{o.rate:,.0f}", f"{sqlite.rate:,.0f}",
         o and _ratio(o.rate, sqlite.rate)),
        ("time in write()+refresh() (s)", o and f"{o.seconds:.1f}", f"{sqlite.seconds:.1f}",
         o and _ratio(o.seconds, sqlite.seconds)),
        (f"search p50 (ms, the first {ORIGINAL} queries × {ROUNDS})",
         o and f"{o.percentile(50, FIRST):.1f}", f"{sqlite.percentile(50, FIRST):.1f}",
         o and _ratio(o.percentile(50, FIRST), sqlite.percentile(50, FIRST))),
        ("search p95 (ms, the same)", o and f"{o.percentile(95, FIRST):.1f}",
         f"{sqlite.percentile(95, FIRST):.1f}",
         o and _ratio(o.percentile(95, FIRST), sqlite.percentile(95, FIRST))),
        (f"search p95 (ms, {len(CASES) - ORIGINAL} new kinds: NOT, one character, sorts)",
         o and f"{o.percentile(95, NEW):.1f}", f"{sqlite.percentile(95, NEW):.1f}",
         o and _ratio(o.percentile(95, NEW), sqlite.percentile(95, NEW))),
        ("search mean (ms)", o and f"{statistics.fmean(o.latencies):.1f}",
         f"{statistics.fmean(sqlite.latencies):.1f}",
         o and _ratio(statistics.fmean(o.latencies), statistics.fmean(sqlite.latencies))),
        ("index size on disk", o and _mb(o.disk_bytes), _mb(sqlite.disk_bytes),
         o and _ratio(o.disk_bytes, sqlite.disk_bytes)),
        ("index size per article (KB)", o and _kb(o.disk_bytes, o.articles),
         _kb(sqlite.disk_bytes, sqlite.articles),
         o and _ratio(o.disk_bytes, sqlite.disk_bytes)),
    ]
    lines = [
        f"{n:,} articles, avg {corpus.chars / max(1, corpus.articles):,.0f} chars, "
        f"{corpus.hant / max(1, corpus.articles):.0%} traditional, {corpus.events:,} events; "
        f"batches of {BATCH}",
        "",
        "| | OpenSearch | SQLite | OpenSearch/SQLite |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {label} | {a or '–'} | {b} | {c or '–'} |" for label, a, b, c in rows]
    lines.append("")
    if o is not None:
        met = "met" if o.rate >= TARGET_RATE else "NOT met"
        lines.append(f"OpenSearch target ≥ {TARGET_RATE:,.0f} articles/s: **{met}** ({o.rate:,.0f}).")
        if o.node_cpu is not None:
            # Generating the corpus runs between the batches: the share is a lower bound.
            lines.append(f"OpenSearch node CPU while indexing: {o.node_cpu:.1f} s, "
                         f"{o.node_cpu / (o.seconds + corpus.seconds):.0%} of one core over the "
                         f"indexing run ({o.node_cores} cores), {o.node_cpu / o.articles * 1000:.2f} "
                         "ms per article.")
    else:
        lines.append(f"OpenSearch rows missing: {why_not}.")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    lines.append(f"Peak RSS of the bench process: {peak:,.0f} MB. Generating the corpus took "
                 f"{corpus.seconds:.1f} s (not counted above); whole run {wall:.0f} s.")
    lines += ["", "| query | hits OpenSearch | hits SQLite | p50 ms OpenSearch | p50 ms SQLite "
              "| p95 ms SQLite |", "|---|---:|---:|---:|---:|---:|"]
    def p50(r: Result, i: int) -> str:
        return f"{statistics.median(r.latencies[i::len(CASES)]):.1f}"

    def p95(r: Result, i: int) -> str:  # nearest rank of the query's ROUNDS timings
        ordered = sorted(r.latencies[i::len(CASES)])
        return f"{ordered[min(len(ordered) - 1, max(0, round(0.95 * len(ordered) + 0.5) - 1))]:.1f}"

    for i, case in enumerate(CASES):
        lines.append(f"| {case.label} | {o.totals[case.label] if o else '–'} | "
                     f"{sqlite.totals[case.label]} | {p50(o, i) if o else '–'} | {p50(sqlite, i)} "
                     f"| {p95(sqlite, i)} |")
    return "\n".join(lines)


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=50000)
    parser.add_argument("--opensearch-url", default="http://127.0.0.1:9201")
    parser.add_argument("--seed", type=int, default=20241205)
    parser.add_argument("--sqlite-only", action="store_true",
                        help="measure the embedded SQLite engine alone (no OpenSearch rows)")
    args = parser.parse_args(argv)
    # SIGTERM (and SIGINT, even where the shell started us ignoring it) cleans up like Ctrl-C.
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)

    began = time.perf_counter()
    url = args.opensearch_url.rstrip("/")
    tmp = Path(tempfile.mkdtemp(prefix="cyz-bench-index-"))
    prefix = f"cyzbench{secrets.token_hex(4)}"
    why_not = "--sqlite-only" if args.sqlite_only else reachable(url)
    corpus = Corpus()
    opensearch: Result | None = None
    try:
        if why_not is None:
            from cyz.index.opensearch import OpenSearchClient
            from cyz.index.search_engine import SearchEngine

            engine = SearchEngine(OpenSearchClient.from_env({"CYZ_OPENSEARCH_URL": url}),
                                  tmp / "os-data", prefix)
            engine.init()
            if not engine.online:
                why_not = f"{url} went away before indexing"
            else:
                opensearch = Result("opensearch")
                print(f"indexing {args.articles} articles into OpenSearch ({prefix}-*)", file=sys.stderr)
                cpu_before = node_cpu(url)
                index_into(engine, opensearch, args.articles, args.seed, corpus)
                cpu_after = node_cpu(url)
                if cpu_before and cpu_after:
                    opensearch.node_cpu, opensearch.node_cores = cpu_after[0] - cpu_before[0], cpu_after[1]
                if len(engine.spool):
                    print(f"warning: {len(engine.spool)} records were spooled, not indexed",
                          file=sys.stderr)
                time_searches(engine, opensearch)
                opensearch.disk_bytes = store_bytes(url, prefix)
            engine.close()

        sqlite = Result("sqlite")
        path = tmp / "index.sqlite3"
        engine = SqliteEngine(path)
        print(f"indexing {args.articles} articles into SQLite ({path})", file=sys.stderr)
        index_into(engine, sqlite, args.articles, args.seed, None if opensearch else corpus)
        time_searches(engine, sqlite)
        engine.close()  # folds the WAL into the main file
        sqlite.disk_bytes = sqlite_bytes(path)
    except KeyboardInterrupt:
        print("interrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        if why_not is None:
            drop_prefix(url, prefix)
        shutil.rmtree(tmp, ignore_errors=True)
    print(report(args.articles, corpus, sqlite, opensearch, why_not, time.perf_counter() - began))
    return 0


if __name__ == "__main__":
    sys.exit(main())
