"""Crawl throughput: raw Scrapy fetch rate, the full cyz pipeline, a re-crawl, memory.

    python bench/crawl.py [--pages 2000] [--workdir DIR] [--seed N]
    python bench/crawl.py --profile [--pages 200]      # pyinstrument top costs instead
    python bench/crawl.py --memory 2000 10000          # row (e) alone, at each size
    python bench/crawl.py --dense-events ...           # ~10 events a page, not ~1.5

Generates a loopback site of N article pages of 100–200 KB each (heavy gov/news chrome
around a 600–3,000-character Chinese article telling about 1.5 cooperation events, as
the demo's articles do), serves it with `cyz.demo.server.SiteServer` and measures, in one
run: a crawl that discards every item (Scrapy's own fetch rate), the full cyz crawl into a
fresh SQLite index, `build_record` alone on one core and on all cores (a process pool), a
second crawl over the unchanged site the day after (the crawl's clock set one day on:
`now`), the same with `full` (every known article asked, conditionally), the peak memory
of the crawl processes, and news-please over the same article URLs when it is installed
(see `NEWS_PLEASE_VENV`). Prints one markdown table.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import resource
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

BENCH_SETTINGS: dict[str, Any] = {
    # Loopback only: no politeness, as much concurrency as the crawler will use.
    "CONCURRENT_REQUESTS": 32,
    "CONCURRENT_REQUESTS_PER_DOMAIN": 32,
    "DOWNLOAD_DELAY": 0,
    "DOWNLOAD_DELAY_JITTER": 0,
    "AUTOTHROTTLE_ENABLED": False,
    "LOG_LEVEL": "ERROR",
}
# The share of sentences that may tell a cooperation event. At 0.06 a page carries about
# 1.5 events, as the demo's articles do (1.47; the 31 real pages under ../shared, general
# news, 0.1); at 1.0 (`--dense-events`, the bench before 2026-11-26) about 10.5, all
# between the same few places: the happening merge's worst case.
EVENT_SHARE = 0.06
EXTRACT_SAMPLE = 200  # pages for the one-core extraction rate
ALL_CORES_SAMPLE = 1000  # pages for the extraction rate on all cores
PROFILE_SAMPLE = 50  # pages for the build_record profile
NEWS_PLEASE_VENV = Path(os.environ.get("CYZ_NEWS_PLEASE_VENV", "/tmp/np-venv"))
NEWS_PLEASE_SAMPLE = 300  # article URLs news-please fetches (it is much slower)

# -- our own vocabulary for the generated prose ---------------------------------------------
PLACES = ["遵义市", "汇川区", "红花岗区", "播州区", "仁怀市", "赤水市", "湄潭县", "习水县",
          "重庆市", "两江新区", "綦江区", "永川区", "江北区", "成都市", "天府新区", "双流区",
          "郫都区", "龙泉驿区"]
FIELDS = ["白酒产业", "茶产业", "装备制造", "电子信息", "现代物流", "文化旅游", "数字经济",
          "新能源汽车", "生物医药", "农产品加工", "职业教育", "医疗卫生", "生态环保", "内陆开放"]
ORGS = ["市发展改革委", "市商务局", "市投资促进局", "市文化和旅游局", "市交通运输局",
        "市农业农村局", "经开区管委会", "市工商联", "市科技局", "市教育局"]
THINGS = ["物流园", "产业园", "合作示范区", "飞地园区", "数据中心", "冷链基地", "职教中心",
          "检测中心", "孵化基地", "货运班列"]
SENTENCES = [
    "{date}，{place}{org}组织企业代表赴{place2}开展{field}对接活动，双方围绕{thing}建设深入交流。",
    "会上，{place}与{place2}签署了{field}合作框架协议，总投资约{n}亿元。",
    "据介绍，{thing}项目一期已于今年投入使用，预计带动就业{m}余人。",
    "{org}负责人表示，将进一步发挥{place}区位优势，主动融入成渝地区双城经济圈建设。",
    "近年来，{place}持续推进{field}提质增效，与{place2}的协作不断走深走实。",
    "下一步，双方将建立常态化联络机制，定期会商{field}领域重点事项。",
    "活动期间，参会人员实地考察了{place2}{thing}，详细了解运营模式和管理经验。",
    "{place}{org}相关负责人介绍了本地{field}发展情况及招商引资优惠政策。",
    "今年以来，{place}累计引进{field}项目{k}个，到位资金{n}亿元，同比增长{p}%。",
    "与会代表一致认为，加强{field}协作对推动区域协调发展具有重要意义。",
    "{place2}方面表示，愿与{place}在{thing}共建、人才交流等方面开展更多合作。",
    "此次活动由{place}{org}主办，共有{k}家企业参加，现场达成合作意向{m}项。",
    "按照计划，{thing}二期工程将于明年{month}月开工建设。",
    "{place}将以此次合作为契机，推动{field}向高端化、智能化、绿色化方向发展。",
]
# Sentences that tell no cooperation event (what most of an article says): mixed in
# (EVENT_SHARE) so that a page carries about as many events as the demo's articles.
FILLER = [
    "会议指出，要坚持以人民为中心的发展思想，扎实做好{field}各项基础工作。",
    "{org}要求各单位压实工作责任，确保各项任务按时保质完成。",
    "据统计，全年共接待群众来访{m}人次，办结率达到{p}%。",
    "目前，{thing}主体结构已基本完工，正在开展内部装修和设备安装。",
    "与会人员围绕优化营商环境、提升服务效能等议题进行了交流发言。",
    "下一步，{org}将持续加强日常监管，及时回应群众关切。",
    "今年前三季度，全市规模以上工业增加值同比增长{p}%，增速高于全省平均水平。",
    "活动现场还设置了政策咨询台，工作人员为前来咨询的市民答疑解惑。",
    "该负责人强调，要把安全生产摆在更加突出的位置，坚决守住底线。",
    "近期，{org}组织开展了{field}专题培训，共有{m}名干部职工参加。",
    "据了解，{thing}建成后将进一步完善城市功能，方便周边居民生活。",
    "各地要结合实际细化工作方案，形成一批可复制可推广的经验做法。",
    "截至目前，已累计发放补贴资金{n}万元，惠及群众{m}户。",
    "会议还研究部署了近期{field}重点工作，并对有关事项作了安排。",
]
TITLES = [
    "{place}与{place2}签署{field}合作协议",
    "{place}{org}赴{place2}考察{thing}建设",
    "{place2}代表团来{place}洽谈{field}合作",
    "{place}{field}协作项目落地{place2}",
    "{place}召开{field}对接会 推动融入双城经济圈",
    "{place}{thing}一期建成投用",
]
NAMES = ["张明", "李华", "王芳", "刘洋", "陈静", "杨帆", "赵磊", "黄婷", "周强", "吴丹"]
OUTLETS = ["遵义日报", "遵义市人民政府网", "重庆日报", "成都日报", "黔北新闻网", "新华网",
           "本网", "汇川区融媒体中心"]
MENU = ["首页", "政务公开", "新闻动态", "政务服务", "互动交流", "走进遵义", "专题专栏",
        "政策文件", "数据开放", "公共服务", "营商环境", "办事指南"]
SUBMENU = ["工作动态", "通知公告", "部门动态", "区县动态", "图片新闻", "视频新闻", "政策解读",
           "规划计划", "财政信息", "人事信息", "统计信息", "应急管理", "重点领域", "建议提案",
           "政府会议", "领导信息", "机构职能", "法规文件"]


# -- the generated sites --------------------------------------------------------------------
@dataclass
class SiteSpec:
    host: str
    kind: str  # government (TRS body) | news
    name: str
    section: str  # path of the list pages
    source_id: str


SITES = [
    SiteSpec("www.zunyi-bench.gov.cn", "government", "遵义市人民政府（基准）", "/xwdt/zyyw/",
             "bench-gov"),
    SiteSpec("news.qianbei-bench.com.cn", "news", "黔北新闻网（基准）", "/cyjj/", "bench-news"),
]


@dataclass
class Page:
    site: SiteSpec
    path: str
    published: datetime


@dataclass
class Generated:
    sites_dir: Path
    pages: list[Page]
    list_pages: int
    bytes: int
    seconds: float

    def article_files(self) -> list[Path]:
        return [self.sites_dir / p.site.host / p.path.lstrip("/") for p in self.pages]

    def url(self, page: Page) -> str:
        return f"http://{page.site.host}{page.path}"


class Writer:
    """Fills templates from the vocabulary with one seeded RNG."""

    def __init__(self, rng: random.Random, event_share: float = 1.0) -> None:
        self.rng = rng
        self.event_share = event_share  # the share of sentences drawn from SENTENCES

    def fill(self, template: str, when: datetime) -> str:
        r = self.rng
        place, place2 = r.sample(PLACES, 2)
        return template.format(
            place=place, place2=place2, org=r.choice(ORGS), field=r.choice(FIELDS),
            thing=r.choice(THINGS), n=round(r.uniform(0.5, 80), 1), m=r.randint(20, 900),
            k=r.randint(3, 60), p=r.randint(2, 45), month=r.randint(1, 12),
            date=f"{when.month}月{when.day}日")

    def title(self, when: datetime) -> str:
        return self.fill(self.rng.choice(TITLES), when)

    def sentence(self) -> str:
        if self.event_share >= 1 or self.rng.random() < self.event_share:
            return self.rng.choice(SENTENCES)
        return self.rng.choice(FILLER)

    def body(self, when: datetime) -> list[str]:
        """Paragraphs totalling 600–3,000 characters."""
        target = self.rng.randint(600, 3000)
        paragraphs: list[str] = []
        size = 0
        while size < target:
            para = "".join(self.fill(self.sentence(), when)
                           for _ in range(self.rng.randint(2, 5)))
            paragraphs.append(para)
            size += len(para)
        return paragraphs


def _css(rng: random.Random, rules: int) -> str:
    props = ["margin:0 auto", "padding:4px 8px", "color:#333", "font-size:14px",
             "line-height:1.8", "background:#f5f5f5", "border-bottom:1px solid #ddd",
             "float:left", "overflow:hidden", "text-align:center", "display:block",
             "width:1200px", "height:36px", "position:relative", "font-family:微软雅黑"]
    out = []
    for i in range(rules):
        sel = rng.choice([".nav", ".header", ".footer", ".list", ".side", ".main", ".box"])
        sel += f" .{rng.choice(['item', 'con', 'tit', 'more', 'pic', 'txt'])}{i}"
        out.append(f"{sel}{{{';'.join(rng.sample(props, rng.randint(3, 7)))}}}")
    return "\n".join(out)


def _js(rng: random.Random, functions: int) -> str:
    out = []
    for i in range(functions):
        out.append(
            f"function fn_{i}(el,opt){{var o=opt||{{}};if(!el){{return false;}}"
            f"for(var k=0;k<{rng.randint(3, 30)};k++){{el.style.top=(k*{rng.randint(2, 9)})+'px';}}"
            f"if(o.cb){{o.cb(el,'{rng.choice(SUBMENU)}');}}return true;}}")
    return "\n".join(out)


@dataclass
class Chrome:
    """One site's shared page furniture, built once; pages vary the lists around it."""

    head: str
    nav: str
    footer: str
    padding: list[str] = field(default_factory=list)  # inline JS data entries


def _chrome(site: SiteSpec, rng: random.Random) -> Chrome:
    head = (f"<style type=\"text/css\">\n{_css(rng, 260)}\n</style>\n"
            f"<script type=\"text/javascript\">\n{_js(rng, 120)}\n</script>\n")
    items = []
    for i, top in enumerate(MENU):
        subs = "".join(f'<li><a href="/col{i}/sub{j}/" target="_blank">{s}</a></li>'
                       for j, s in enumerate(rng.sample(SUBMENU, rng.randint(8, 16))))
        items.append(f'<li class="nav-item"><a href="/col{i}/">{top}</a>'
                     f'<div class="subnav"><ul>{subs}</ul></div></li>')
    nav = ('<div class="top-bar"><span>欢迎访问' + site.name + '</span><a href="/wza/">无障碍</a>'
           '<a href="/lzb/">长者模式</a><a href="/en/">English</a></div>'
           f'<div class="header"><div class="logo"><a href="/">{site.name}</a></div>'
           '<form class="search" action="/search/"><input name="q" placeholder="请输入关键词">'
           '<button>搜索</button></form></div>'
           f'<div class="nav"><ul>{"".join(items)}</ul></div>')
    groups = []
    for g in ["国务院部门网站", "省级政府网站", "市州政府网站", "区县政府网站", "市直部门网站"]:
        links = "".join(f'<li><a href="http://www.dept{k}.example.gov.cn/">{rng.choice(PLACES)}'
                        f'{rng.choice(ORGS)}</a></li>' for k in range(rng.randint(20, 35)))
        groups.append(f'<div class="links-group"><h4>{g}</h4><ul>{links}</ul></div>')
    footer = ('<div class="footer"><div class="links">' + "".join(groups) + "</div>"
              f"<p>主办单位：{site.name}办公室　承办单位：市大数据发展管理局</p>"
              "<p>网站标识码：5203000001　黔ICP备00000000号　黔公网安备 52030202000000号</p>"
              '<p><a href="/sitemap/">网站地图</a> | <a href="/contact/">联系我们</a> | '
              '<a href="/privacy/">隐私声明</a></p></div>'
              '<script type="text/javascript">var _stat=_stat||[];(function(){var s='
              'document.createElement("script");s.src="/stat.js";document.body.appendChild(s);'
              "})();</script>")
    padding = [json.dumps({"id": k, "name": f"{rng.choice(PLACES)}{rng.choice(SUBMENU)}",
                           "url": f"/zt/{k}/index.html", "icon": f"/images/zt{k % 40}.png",
                           "desc": f"{rng.choice(FIELDS)}{rng.choice(THINGS)}专题"},
                          ensure_ascii=False) for k in range(1400)]
    return Chrome(head, nav, footer, padding)


def _related(writer: Writer, pages: list[Page], when: datetime, n: int) -> str:
    rng = writer.rng
    picks = rng.sample(pages, min(n, len(pages)))
    return "".join(f'<li><a href="{p.path}" title="{writer.title(when)}">{writer.title(when)}'
                   f'</a><span>{p.published:%Y-%m-%d}</span></li>' for p in picks)


def article_html(page: Page, siblings: list[Page], chrome: Chrome, writer: Writer) -> str:
    rng = writer.rng
    when = page.published
    title = writer.title(when)
    paragraphs = writer.body(when)
    origin = rng.choice(OUTLETS)
    editor = rng.choice(NAMES)
    stamp = f"{when:%Y-%m-%d %H:%M}"
    site = page.site
    if site.kind == "government":
        body = ('<div class="TRS_Editor"><div class="trs_paper_default">'
                + "".join(f'<p style="text-indent:2em;">{p}</p>' for p in paragraphs)
                + "</div></div>")
        article = (f'<div class="article-con"><h1 class="title">{title}</h1>'
                   f'<div class="info"><span>发布时间：{stamp}</span><span>来源：{origin}</span>'
                   '<span class="font">字号：<a>大</a> <a>中</a> <a>小</a></span></div>'
                   f'{body}<div class="editor">责任编辑：{editor}</div>')
    else:
        body = ('<div class="article">'
                + "".join(f"<p>{p}</p>" for p in paragraphs) + "</div>")
        article = (f'<div class="article-con"><h1>{title}</h1><div class="meta">'
                   f'<span class="date">{stamp}</span><span class="source">来源：{origin}</span>'
                   f'<span class="author">记者 {rng.choice(NAMES)}</span></div>{body}'
                   f'<div class="editor">【责任编辑：{editor}】</div>')
    share = ('<div class="share">分享到：<a class="wx">微信</a><a class="wb">微博</a>'
             '<a class="qq">QQ空间</a><a href="javascript:window.print()">打印本页</a>'
             '<a href="javascript:window.close()">关闭窗口</a></div>')
    related = (f'<div class="related"><h3>相关阅读</h3><ul>{_related(writer, siblings, when, 15)}'
               "</ul></div>")
    side = "".join(f'<div class="side-box"><h3>{h}</h3><ul>{_related(writer, siblings, when, 10)}'
                   "</ul></div>" for h in ("热点新闻", "专题专栏", "图片新闻"))
    head = (f"<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
            f"<title>{title}_{site.name}</title>"
            f'<meta name="ArticleTitle" content="{title}">'
            f'<meta name="PubDate" content="{stamp}">'
            f'<meta name="ContentSource" content="{origin}">'
            f'<meta name="keywords" content="{rng.choice(FIELDS)},{rng.choice(PLACES)}">'
            f'<meta name="description" content="{paragraphs[0][:80]}">')
    html = [head, chrome.head, "</head><body>", chrome.nav,
            f'<div class="location">当前位置：<a href="/">首页</a> &gt; '
            f'<a href="{site.section}">新闻动态</a> &gt; 正文</div>',
            f'<div class="main"><div class="left">{article}{share}{related}</div>'
            f'<div class="side">{side}</div></div>', chrome.footer]
    # Pad with the site's inline topic data to a size drawn from 100–200 KB, as real
    # pages carry such JSON blobs for menus and carousels.
    target = rng.randint(100_000, 200_000)
    size = sum(len(s.encode("utf-8")) for s in html) + 60
    entries: list[str] = []
    k = rng.randrange(len(chrome.padding))
    while size < target:
        entry = chrome.padding[k % len(chrome.padding)]
        entries.append(entry)
        size += len(entry.encode("utf-8")) + 1
        k += 1
    html.append("<script>var ztData=[" + ",".join(entries) + "];</script></body></html>")
    return "".join(html)


def list_html(site: SiteSpec, pages: list[Page], index: int, total: int, chrome: Chrome) -> str:
    def name(i: int) -> str:
        return "index.html" if i == 0 else f"index_{i}.html"

    items = "".join(f'<li><a href="{p.path}" target="_blank">{p.path.rsplit("/", 1)[1]}</a>'
                    f"<span>{p.published:%Y-%m-%d}</span></li>" for p in pages)
    # Every page number is a link, so all list pages are one hop from the first.
    pager = "".join(f'<a href="{site.section}{name(i)}">{i + 1}</a>' for i in range(total))
    return ("<!DOCTYPE html><html lang=\"zh-CN\"><head><meta charset=\"utf-8\">"
            f"<title>新闻动态_{site.name}</title>{chrome.head}</head><body>{chrome.nav}"
            f'<div class="list"><ul>{items}</ul></div><div class="page">{pager}</div>'
            f"{chrome.footer}</body></html>")


def article_path(site: SiteSpec, when: datetime, n: int) -> str:
    if site.kind == "government":
        return f"{site.section}{when:%Y%m}/t{when:%Y%m%d}_{8_800_000 + n}.html"
    return f"{site.section}{when:%Y-%m}/{when:%d}/content_{5_000 + n}.htm"


def generate_site(root: Path, n_pages: int, seed: int,
                  event_share: float = EVENT_SHARE) -> Generated:
    """Write `root/<host>/...` for N article pages split over the sites; deterministic."""
    started = time.perf_counter()
    rng = random.Random(seed)
    writer = Writer(rng, event_share)
    start = datetime(2024, 1, 1, 8, 0, tzinfo=UTC)
    pages: list[Page] = []
    per_site = {s.host: [] for s in SITES}
    for n in range(n_pages):
        site = SITES[n % len(SITES)]
        when = start + timedelta(minutes=rng.randint(0, 700 * 24 * 60))
        page = Page(site, article_path(site, when, n), when)
        pages.append(page)
        per_site[site.host].append(page)
    total_bytes = 0
    n_lists = 0
    for site in SITES:
        chrome = _chrome(site, rng)
        site_dir = root / site.host
        site_dir.mkdir(parents=True, exist_ok=True)
        (site_dir / "robots.txt").write_text("User-agent: *\nAllow: /\n", encoding="utf-8")
        own = sorted(per_site[site.host], key=lambda p: p.published, reverse=True)
        for page in own:
            target = site_dir / page.path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            data = article_html(page, own, chrome, writer).encode("utf-8")
            target.write_bytes(data)
            total_bytes += len(data)
        chunks = [own[i:i + 20] for i in range(0, len(own), 20)] or [[]]
        for i, chunk in enumerate(chunks):
            name = "index.html" if i == 0 else f"index_{i}.html"
            target = site_dir / site.section.lstrip("/") / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(list_html(site, chunk, i, len(chunks), chrome), encoding="utf-8")
        n_lists += len(chunks)
    return Generated(root, pages, n_lists, total_bytes, time.perf_counter() - started)


def sources_for() -> list[Any]:
    from cyz.config import Source

    out = []
    for site in SITES:
        pattern = (r"/\d{6}/t\d{8}_\d+\.html$" if site.kind == "government"
                   else r"/\d{4}-\d{2}/\d{2}/content_\d+\.htm$")
        out.append(Source(
            id=site.source_id, name=site.name, kind=site.kind, region="遵义",
            start_urls=[f"http://{site.host}{site.section}index.html"],
            article_patterns=[pattern], follow_patterns=[r"/index(_\d+)?\.html$"],
            # no list-page cap: 10,000 pages are 250 list pages per source
            max_depth=4, download_delay=0, max_list_pages=0))
    return out


# -- the crawls -----------------------------------------------------------------------------
class DiscardPipeline:
    """Item pipeline for the raw fetch rate: takes each page item and keeps nothing.
    Imported by dotted path in the crawl child (`<this file's stem>.DiscardPipeline`)."""

    def process_item(self, item: Any) -> None:
        from scrapy.exceptions import DropItem

        raise DropItem("bench: discarded")


def _role(proc: Any) -> str:
    """reactor (the crawl child), worker (an extraction process) or other."""
    try:
        cmd = " ".join(proc.cmdline())
    except Exception:
        return "other"
    if "cyz.crawler.run" in cmd:
        return "reactor"
    if "spawn_main" in cmd and "resource_tracker" not in cmd:
        return "worker"
    return "other"


class RssSampler:
    """Samples the summed RSS of this process's descendants (crawl child, pool workers),
    and per process its peak RSS and CPU time, by role (`_role`)."""

    def __init__(self, every: float = 0.1) -> None:
        try:
            import psutil
        except ImportError:  # the (e) row then says so
            psutil = None
        self._psutil = psutil
        self.every = every
        self.peak = 0 if psutil else -1
        self.peak_procs = 0
        # pid → [role, peak rss, last seen CPU seconds]
        self.procs: dict[int, list[Any]] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="rss-sampler")

    def _run(self) -> None:
        me = self._psutil.Process()
        while not self._stop.is_set():
            total = 0
            procs = 0
            try:
                children = me.children(recursive=True)
            except self._psutil.Error:
                children = []
            for child in children:
                try:
                    with child.oneshot():
                        rss = child.memory_info().rss
                        times = child.cpu_times()
                    total += rss
                    procs += 1
                    seen = self.procs.get(child.pid)
                    if seen is None:
                        seen = self.procs[child.pid] = [_role(child), 0, 0.0]
                    elif seen[0] == "other":
                        # first seen between fork and exec, with our own command line
                        seen[0] = _role(child)
                    seen[1] = max(seen[1], rss)
                    seen[2] = times.user + times.system
                except self._psutil.Error:
                    pass
            if total > self.peak:
                self.peak, self.peak_procs = total, procs
            self._stop.wait(self.every)

    def by_role(self) -> dict[str, tuple[int, int, float]]:
        """role → (processes, largest peak RSS of one of them, CPU seconds of all)."""
        out: dict[str, tuple[int, int, float]] = {}
        for role, rss, cpu in self.procs.values():
            n, peak, total = out.get(role, (0, 0, 0.0))
            out[role] = (n + 1, max(peak, rss), total + cpu)
        return out

    def __enter__(self) -> RssSampler:
        if self._psutil is not None:
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


@dataclass
class Timed:
    seconds: float
    server_cpu: float  # CPU of this process (the site server's threads) during the run
    crawl_cpu: float  # CPU of the reaped children (crawl child and its workers)
    peak_rss: int
    peak_procs: int
    result: Any = None
    # role → (processes, largest peak RSS of one, CPU seconds), from psutil samples
    roles: dict[str, tuple[int, int, float]] = field(default_factory=dict)


def timed(fn: Callable[[], Any]) -> Timed:
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    kids_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with RssSampler() as rss:
        started = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - started
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    kids_after = resource.getrusage(resource.RUSAGE_CHILDREN)

    def cpu(a: Any, b: Any) -> float:
        return (b.ru_utime - a.ru_utime) + (b.ru_stime - a.ru_stime)

    return Timed(seconds, cpu(self_before, self_after), cpu(kids_before, kids_after),
                 rss.peak, rss.peak_procs, result, rss.by_role())


def roles_note(t: Timed, pages: int) -> str:
    """Peak RSS and CPU per page of the crawl child and of the extraction workers."""
    parts = []
    for role in ("reactor", "worker"):
        if role in t.roles:
            n, peak, cpu = t.roles[role]
            each = "" if n == 1 else " each, at most"
            parts.append(f"{role}{'s' if n > 1 else ''} ×{n}: {_mb(peak)}{each}, "
                         f"{cpu / pages * 1e3:,.1f} ms CPU/page")
    return "; ".join(parts) or "per-process figures need psutil"


def raw_crawl(sources: list[Any], data_dir: Path, host_map: dict[str, str]) -> dict:
    from cyz.crawler.run import run_crawl

    here = Path(__file__).resolve()
    if str(here.parent) not in sys.path:
        sys.path.insert(0, str(here.parent))
    return run_crawl(sources, data_dir=data_dir, host_map=host_map,
                     item_pipelines={f"{here.stem}.DiscardPipeline": 100},
                     settings_overrides=BENCH_SETTINGS)


def full_crawl(sources: list[Any], data_dir: Path, host_map: dict[str, str],
               now: datetime | None = None, full: bool = False) -> Any:
    from cyz.crawl import crawl

    return crawl(sources, data_dir=data_dir, engine="sqlite", host_map=host_map,
                 settings_overrides=BENCH_SETTINGS, now=now, full=full)


def extraction_alone(gen: Generated, sample: int) -> tuple[float, int]:
    """Seconds for `build_record` over `sample` pages, one thread, after one warm-up."""
    from cyz.pipelines.page import build_record

    sources = {s.id: s for s in sources_for()}
    pages = gen.pages[:sample]
    bodies = [(f.read_bytes(), gen.url(p), sources[p.site.source_id])
              for f, p in zip(gen.article_files()[:sample], pages, strict=True)]
    build_record(bodies[0][0], bodies[0][1], source=bodies[0][2],
                 http_charset="utf-8")  # imports, jieba/opencc dictionaries
    started = time.perf_counter()
    for body, url, source in bodies:
        build_record(body, url, source=source, http_charset="utf-8",
                     fetched_at="2026-01-01T00:00:00+00:00")
    return time.perf_counter() - started, len(bodies)


def extraction_all_cores(gen: Generated, sample: int, cores: int) -> tuple[float, int]:
    """Seconds for `build_record` over `sample` pages on a pool of `cores` processes (each
    warmed up first, the clock started once all are), records handed back as the crawl's
    workers hand them: cyz's own extraction on all cores, the ceiling of row (b)."""
    import multiprocessing

    jobs = [(str(f), gen.url(p), p.site.source_id)
            for f, p in zip(gen.article_files()[:sample], gen.pages[:sample], strict=True)]
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(cores)
    with context.Pool(cores, initializer=_pool_warm, initargs=(barrier, jobs[0])) as pool:
        pool.map(_pool_meet, range(cores), chunksize=1)  # every worker warm
        started = time.perf_counter()
        done = sum(1 for _ in pool.imap_unordered(_pool_extract, jobs, chunksize=4))
        seconds = time.perf_counter() - started
    return seconds, done


_POOL_BARRIER: Any = None


@functools.cache
def _bench_source(source_id: str) -> Any:
    return next(s for s in sources_for() if s.id == source_id)


def _pool_warm(barrier: Any, job: tuple[str, str, str]) -> None:
    global _POOL_BARRIER
    _POOL_BARRIER = barrier
    _pool_extract(job)  # imports, jieba/opencc dictionaries


def _pool_meet(_: int) -> None:
    _POOL_BARRIER.wait(timeout=120)  # one task per worker: all of them are warm


def _pool_extract(job: tuple[str, str, str]) -> dict:
    from cyz.pipelines.page import build_record

    path, url, source_id = job
    return build_record(Path(path).read_bytes(), url, source=_bench_source(source_id),
                        http_charset="utf-8",
                        fetched_at="2026-01-01T00:00:00+00:00")


EVENTS_ROUNDS = 3  # interleaved on/off rounds for the cost of event extraction


@dataclass
class EventsCost:
    on_ms: float  # build_record, ms/page, the fastest round with events
    off_ms: float  # the same with `EventExtractor.extract` returning no events
    rounds: int
    pages: int


def events_cost(gen: Generated, sample: int, rounds: int = EVENTS_ROUNDS) -> EventsCost:
    """What event extraction adds to `build_record`: `extraction_alone` with events on and
    off (`EventExtractor.extract` monkeypatched, in this process, to return []), in
    interleaved rounds over the same pages, the fastest round of each."""
    from cyz.pipelines.events import EventExtractor

    extract = EventExtractor.extract
    times: dict[str, list[float]] = {"on": [], "off": []}
    try:
        for _ in range(rounds):
            for mode in ("on", "off"):
                EventExtractor.extract = extract if mode == "on" else _no_events
                seconds, n = extraction_alone(gen, sample)
                times[mode].append(seconds / n * 1e3)
    finally:
        EventExtractor.extract = extract
    return EventsCost(min(times["on"]), min(times["off"]), rounds, min(sample, len(gen.pages)))


def _no_events(self: Any, title_zh: str, text_zh: str, published_at: str | None) -> list:
    return []


# -- news-please ----------------------------------------------------------------------------
_NP_SCRIPT = r"""
import json, sys, time
from newsplease import NewsPlease
urls = json.loads(sys.stdin.read())
started = time.perf_counter()
# No image downloads: there is no internet here, and cyz fetches no images either.
got = NewsPlease.from_urls(urls, request_args={"timeout": 30}, fetch_images=False)
seconds = time.perf_counter() - started
def has(name):
    return sum(1 for a in got.values() if getattr(a, name, None))
print(json.dumps({"seconds": seconds, "urls": len(urls), "with_text": has("maintext"),
                  "with_date": has("date_publish"), "with_title": has("title")}))
"""


def news_please(gen: Generated, proxy: str, sample: int) -> tuple[dict | None, str]:
    """news-please's `from_urls` over article URLs through the loopback proxy, in its
    own venv; (result, note). None with a reason when it is not installed or fails."""
    python = NEWS_PLEASE_VENV / "bin" / "python"
    if not python.exists():
        return None, f"news-please not installed ({python} missing)"
    # A fixed random sample: both sites, both templates.
    picked = random.Random(7).sample(gen.pages, min(sample, len(gen.pages)))
    urls = [gen.url(p) for p in picked]
    env = {**os.environ, "http_proxy": f"http://{proxy}", "HTTP_PROXY": f"http://{proxy}",
           "no_proxy": "", "NO_PROXY": ""}
    try:
        done = subprocess.run([str(python), "-c", _NP_SCRIPT], input=json.dumps(urls),
                              capture_output=True, text=True, env=env, timeout=900)
    except subprocess.TimeoutExpired:
        return None, "news-please timed out"
    if done.returncode != 0:
        tail = done.stderr.strip().splitlines()[-1:] or ["?"]
        return None, f"news-please failed: {tail[0]}"
    return json.loads(done.stdout.strip().splitlines()[-1]), ""


# -- report ---------------------------------------------------------------------------------
def crawl_seconds(stats: dict) -> float:
    """Scrapy's own start→finish time: the wall time less the child's interpreter start,
    imports and shutdown."""
    try:
        start = datetime.fromisoformat(stats["start_time"])
        finish = datetime.fromisoformat(stats["finish_time"])
    except (KeyError, TypeError, ValueError):
        return 0.0
    return (finish - start).total_seconds()


def _rate(n: float, seconds: float) -> float:
    return n / seconds if seconds > 0 else 0.0


def _mb(n: int) -> str:
    return f"{n / 1e6:,.0f} MB" if n >= 0 else "n/a (pip install psutil)"


def report(gen: Generated, raw: Timed, first: Timed, second: Timed, again: Timed,
           extract: tuple[float, int], pooled: tuple[float, int], events: EventsCost,
           np: tuple[dict | None, str]) -> str:
    n = len(gen.pages)
    cores = os.cpu_count() or 1
    ext_rate = _rate(extract[1], extract[0])
    s1, s2 = first.result, second.result
    full_rate = _rate(n, first.seconds)
    s3 = again.result
    not_asked = s2.not_due / n if n else 0.0
    speedup = first.seconds / second.seconds if second.seconds else 0.0
    speedup_full = first.seconds / again.seconds if again.seconds else 0.0
    skipped_full = s3.unchanged / s3.fetched if s3.fetched else 0.0
    pool_rate = _rate(pooled[1], pooled[0])
    ratio = full_rate / pool_rate if pool_rate else 0.0
    ratio_cores = full_rate / (ext_rate * cores) if ext_rate else 0.0
    raw_in, first_in, second_in, again_in = (
        crawl_seconds(raw.result), crawl_seconds(s1.stats), crawl_seconds(s2.stats),
        crawl_seconds(s3.stats))
    speedup_in = first_in / second_in if second_in else 0.0
    ratio_in = _rate(n, first_in) / pool_rate if pool_rate else 0.0

    def inside(seconds: float) -> str:
        return f"; {_rate(n, seconds):,.1f} pages/s inside Scrapy ({seconds:.1f} s)"

    peak = max(raw.peak_rss, first.peak_rss, second.peak_rss, again.peak_rss)
    rows = [
        ("pages generated", f"{n:,} articles + {gen.list_pages} list pages, "
                            f"{gen.bytes / n / 1e3:,.0f} KB/article avg, "
                            f"{gen.bytes / 1e6:,.0f} MB ({gen.seconds:.0f} s to write)", ""),
        ("(a) raw Scrapy fetch, items discarded",
         f"**{_rate(n, raw.seconds):,.0f} pages/s** ({raw.seconds:.1f} s)",
         f"server CPU {raw.server_cpu / raw.seconds:.0%} of a core, "
         f"crawl CPU {raw.crawl_cpu / raw.seconds:.0%}{inside(raw_in)}"),
        ("(b) full cyz pipeline → SQLite, first run",
         f"**{full_rate:,.1f} pages/s** ({first.seconds:.1f} s)",
         f"new {s1.new}, no text {s1.stats.get('cyz/empty_text', 0)}, "
         f"failed {s1.failed_total}; server CPU "
         f"{first.server_cpu / first.seconds:.0%}, crawl CPU {first.crawl_cpu / first.seconds:.0%}"
         f"{inside(first_in)}"),
        ("(c) `build_record` alone, one core",
         f"**{ext_rate:,.1f} pages/s** ({extract[0] / extract[1] * 1e3:,.0f} ms/page)",
         f"{extract[1]} pages, in-process, one thread"),
        ("(c3) `build_record` alone, all cores",
         f"**{pool_rate:,.1f} pages/s** ({pool_rate / ext_rate if ext_rate else 0:.2f}× row c)",
         f"{pooled[1]} pages on a pool of {cores} processes (spawned, warmed up before the "
         "clock starts), records handed back"),
        ("(c2) `build_record` alone, events off",
         f"**{1e3 / events.off_ms:,.1f} pages/s** ({events.off_ms:,.1f} ms/page)",
         f"events cost **{events.on_ms / events.off_ms:.3f}×** ({events.on_ms:,.1f} ms/page "
         f"on; target ≤ 1.10); `EventExtractor.extract` monkeypatched in the bench process "
         f"to return no events; {events.pages} pages, fastest of {events.rounds} interleaved "
         "on/off rounds"),
        ("(d) second run the day after, site unchanged",
         f"**{second.seconds:.1f} s**, speed-up **{speedup:.1f}×**",
         f"not asked (not due) {not_asked:.1%} ({s2.not_due}/{n}); asked {s2.fetched} "
         f"(304s {s2.stats.get('cyz/not_modified', 0)}), list pages {s2.list_pages}; "
         f"target ≥ 10×, ≥ 95% not asked; inside Scrapy {second_in:.1f} s, speed-up "
         f"{speedup_in:.1f}×"),
        ("(d2) the same with `--full` (every article asked)",
         f"**{_rate(n, again.seconds):,.0f} pages/s** ({again.seconds:.1f} s)",
         f"skipped {skipped_full:.1%} ({s3.unchanged}/{s3.fetched}; 304s "
         f"{s3.stats.get('cyz/not_modified', 0)}); speed-up **{speedup_full:.1f}×**"
         f"{inside(again_in)}, speed-up {first_in / again_in if again_in else 0.0:.1f}×"),
        ("(e) peak RSS of the crawl processes",
         f"**{_mb(peak)}**",
         f"raw {_mb(raw.peak_rss)} ({raw.peak_procs} proc), first {_mb(first.peak_rss)} "
         f"({first.peak_procs} proc), second {_mb(second.peak_rss)}; target < 800 MB; "
         f"first run by process: {roles_note(first, n)}"),
        ("(f) full / extraction on all cores", f"**{ratio:.2f}**",
         f"(b) / (c3); target ≥ 0.8; {ratio_in:.2f} inside Scrapy; against row (c) × "
         f"{cores} cores {ratio_cores:.2f}"),
        ("(h) CPU per page, first run", cpu_budget(first, n, extract),
         "psutil CPU time of the crawl child (reactor) and of the workers, over the pages; "
         "on a saturated machine full rate ≈ cores / (reactor + worker ms), so (b) / "
         "((c) × cores) ≈ extraction / (reactor + worker)"),
    ]
    result, why = np
    if result:
        rows.append(("(g) news-please `from_urls` via the proxy",
                     f"**{_rate(result['urls'], result['seconds']):,.1f} pages/s** "
                     f"({result['seconds']:.1f} s)",
                     f"{result['urls']} article URLs (fixed random sample); "
                     f"with main text {result['with_text']}, title {result['with_title']}, "
                     f"date {result['with_date']}; a thread per URL, then a process "
                     "pool on all cores"))
    else:
        rows.append(("(g) news-please", "skipped", why))
    lines = ["| | result | notes |", "|---|---:|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return "\n".join(lines)


def cpu_budget(t: Timed, pages: int, extract: tuple[float, int]) -> str:
    alone = extract[0] / extract[1] * 1e3 if extract[1] else 0.0
    reactor = t.roles.get("reactor", (0, 0, 0.0))[2] / pages * 1e3
    worker = t.roles.get("worker", (0, 0, 0.0))[2] / pages * 1e3
    if not reactor and not worker:
        return "n/a (pip install psutil)"
    bound = alone / (reactor + worker) if reactor + worker else 0.0
    return (f"reactor **{reactor:,.1f} ms**, workers **{worker:,.1f} ms** "
            f"(`build_record` alone {alone:,.1f} ms); bound on (b) / ((c) × cores) {bound:.2f}")


def memory_table(runs: list[tuple[int, Timed]]) -> str:
    """`--memory`: the first run alone at several sizes, RSS and CPU per page."""
    lines = ["| pages | first run | peak RSS, all | by process |", "|---:|---:|---:|---|"]
    for n, t in runs:
        lines.append(f"| {n:,} | {_rate(n, t.seconds):,.1f} pages/s ({t.seconds:.0f} s) | "
                     f"**{_mb(t.peak_rss)}** ({t.peak_procs} proc) | {roles_note(t, n)} |")
    return "\n".join(lines)


# -- profiling ------------------------------------------------------------------------------
_REPO = str(Path(__file__).resolve().parent.parent) + os.sep
# site-packages first: it lies inside the standard library's folder.
_LIB_ROOTS = [sysconfig.get_paths()[k] + os.sep for k in ("purelib", "platlib", "stdlib")]


def _package(path: str | None, owner: str) -> str:
    """The package a frame's file belongs to; built-ins count for their caller's."""
    if not path or path.startswith("<"):
        return owner
    if path.startswith(_REPO):
        return "cyz." + path[len(_REPO):].split(os.sep, 1)[0].removesuffix(".py")
    for root in _LIB_ROOTS:
        if path.startswith(root):
            return path[len(root):].split(os.sep, 1)[0].removesuffix(".py") or owner
    return owner


Costs = list[tuple[str, float, float]]


def top_costs(session: Any, n: int = 10) -> tuple[Costs, Costs]:
    """Top functions and top packages by self time (seconds, share of the total) from a
    pyinstrument session."""
    funcs: dict[str, float] = {}
    packages: dict[str, float] = {}
    root = session.root_frame()
    if root is None:
        return [], []

    def walk(frame: Any, owner: str, owner_pkg: str) -> None:
        # pyinstrument's synthetic frames ([self], [await]) count for their parent.
        if frame.is_synthetic:
            name, pkg = owner, owner_pkg
        else:
            name = f"{frame.function} ({frame.file_path_short}:{frame.line_no})"
            pkg = _package(frame.file_path, owner_pkg)
        own = frame.time - sum(c.time for c in frame.children)
        if own > 0:
            funcs[name] = funcs.get(name, 0.0) + own
            packages[pkg] = packages.get(pkg, 0.0) + own
        for child in frame.children:
            walk(child, name, pkg)

    walk(root, "root", "other")
    whole = root.time or 1.0

    def ranked(totals: dict[str, float]) -> Costs:
        top = sorted(totals.items(), key=lambda kv: kv[1], reverse=True)[:n]
        return [(name, secs, secs / whole) for name, secs in top]

    return ranked(funcs), ranked(packages)


def _costs_table(costs: tuple[Costs, Costs], title: str) -> str:
    funcs, packages = costs
    lines = [f"**{title}**", "", "| function (self time) | s | share |", "|---|---:|---:|"]
    lines += [f"| `{name}` | {secs:.2f} | {share:.0%} |" for name, secs, share in funcs]
    lines += ["", "by package (self time; built-ins count for their caller): "
              + ", ".join(f"{name} {share:.0%}" for name, _, share in packages)]
    return "\n".join(lines)


_CHILD_PROFILE = r"""
import json, sys
from pyinstrument import Profiler
from cyz.crawler.run import crawl_here
from cyz.crawl import ITEM_PIPELINES
job = json.loads(sys.stdin.read())
profiler = Profiler(interval=0.002)
profiler.start()
crawl_here(job["sources"], data_dir=job["data_dir"], item_pipelines=ITEM_PIPELINES,
           host_map=job["host_map"], settings_overrides=job["overrides"])
profiler.stop()
sys.path.insert(0, job["bench_dir"])
from crawl import _costs_table, top_costs
print(_costs_table(top_costs(profiler.last_session), job["title"]))
"""


def profile(gen: Generated, work: Path, host_map: dict[str, str]) -> str:
    from pyinstrument import Profiler

    from cyz.index import open_engine
    from cyz.pipelines.page import build_record

    sources = {s.id: s for s in sources_for()}
    sample = list(zip(gen.article_files(), gen.pages, strict=True))[:PROFILE_SAMPLE]
    bodies = [(f.read_bytes(), gen.url(p), sources[p.site.source_id]) for f, p in sample]
    build_record(bodies[0][0], bodies[0][1], source=bodies[0][2], http_charset="utf-8")
    profiler = Profiler(interval=0.001)
    profiler.start()
    for body, url, source in bodies:
        build_record(body, url, source=source, http_charset="utf-8")
    profiler.stop()
    out = [_costs_table(top_costs(profiler.last_session),
                        f"`build_record` over {len(bodies)} pages, in-process")]
    data_dir = work / "data-profile"
    engine = open_engine("sqlite", data_dir)
    engine.init()
    engine.close()
    job = {"sources": [s.model_dump() for s in sources.values()], "data_dir": str(data_dir),
           "host_map": host_map, "bench_dir": str(Path(__file__).resolve().parent),
           "overrides": {"CYZ_ENGINE": "sqlite", "CYZ_DATA_DIR": str(data_dir),
                         **BENCH_SETTINGS}}
    # The same crawl twice: a fresh index, then the unchanged site with every article
    # asked (CYZ_REVISIT_FULL: the 304 path; not due, they would not be asked at all).
    for title in ("crawl child (reactor process), full pipeline, first run",
                  "crawl child, second run over the unchanged site, --full (304s)"):
        job["title"] = f"{title}, {len(gen.pages)} pages"
        job["overrides"]["CYZ_REVISIT_FULL"] = "second run" in title
        done = subprocess.run([sys.executable, "-c", _CHILD_PROFILE], input=json.dumps(job),
                              capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            out.append(f"crawl child profile failed: {done.stderr.strip()[-500:]}")
            break
        out.append(done.stdout.strip())
    return "\n\n".join(out)


def memory_run(work: Path, pages: int, seed: int, event_share: float) -> Timed:
    from cyz.demo.server import SiteServer

    sites = work / "sites"
    for stale in [sites, *work.glob("data-*")]:
        shutil.rmtree(stale, ignore_errors=True)
    gen = generate_site(sites, pages, seed, event_share)
    print(f"generated {len(gen.pages)} pages, {gen.bytes / 1e6:.0f} MB", file=sys.stderr)
    with SiteServer(sites) as server:
        first = timed(lambda: full_crawl(sources_for(), work / "data-full", server.host_map()))
    print(f"{pages} pages: {first.result.new} new in {first.seconds:.1f} s, peak RSS "
          f"{_mb(first.peak_rss)}", file=sys.stderr)
    shutil.rmtree(sites, ignore_errors=True)
    return first


# -- main -----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=2000)
    parser.add_argument("--workdir", type=Path, default=None,
                        help="keep the site and data dirs here (default: a temp dir, removed)")
    parser.add_argument("--seed", type=int, default=20241205)
    parser.add_argument("--profile", action="store_true",
                        help="print pyinstrument top costs instead of the throughput table")
    parser.add_argument("--no-news-please", action="store_true")
    parser.add_argument("--memory", type=int, nargs="+", metavar="PAGES",
                        help="only row (e): the first run at each of these sizes, e.g. "
                             "--memory 2000 10000 (RSS should stay flat as pages grow)")
    parser.add_argument("--dense-events", action="store_true",
                        help="every sentence may tell an event (about 10 a page, the "
                             "happening merge's worst case) instead of about 1.5")
    parser.add_argument("--set", action="append", default=[], metavar="NAME=VALUE",
                        help="extra Scrapy setting for every crawl (value parsed as JSON "
                             "when it can be), e.g. --set CONCURRENT_ITEMS=8")
    args = parser.parse_args(argv)
    share = 1.0 if args.dense_events else EVENT_SHARE
    for pair in args.set:
        name, _, value = pair.partition("=")
        try:
            BENCH_SETTINGS[name] = json.loads(value)
        except json.JSONDecodeError:
            BENCH_SETTINGS[name] = value

    from cyz.demo.server import SiteServer

    work = args.workdir or Path(tempfile.mkdtemp(prefix="cyz-bench-crawl-"))
    work.mkdir(parents=True, exist_ok=True)
    try:
        if args.memory:
            print(f"measured on {date.today().isoformat()}, {os.cpu_count()} cores, "
                  f"seed {args.seed}, event share {share}, load average at start "
                  f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}\n")
            print(memory_table([(n, memory_run(work, n, args.seed, share)) for n in args.memory]))
            return 0
        sites = work / "sites"
        if sites.exists():
            shutil.rmtree(sites)
        for stale in work.glob("data-*"):
            shutil.rmtree(stale)
        gen = generate_site(sites, args.pages, args.seed, share)
        print(f"generated {len(gen.pages)} pages, {gen.bytes / 1e6:.0f} MB in "
              f"{gen.seconds:.1f} s under {sites}", file=sys.stderr)
        sources = sources_for()
        with SiteServer(sites) as server:
            host_map = server.host_map()
            if args.profile:
                print(profile(gen, work, host_map))
                return 0
            raw = timed(lambda: raw_crawl(sources, work / "data-raw", host_map))
            got = raw.result.get("cyz/fetched", 0)
            print(f"raw crawl: {got} pages in {raw.seconds:.1f} s", file=sys.stderr)
            first = timed(lambda: full_crawl(sources, work / "data-full", host_map))
            print(f"first run: {first.result.as_dict()} in {first.seconds:.1f} s",
                  file=sys.stderr)
            # The day after: the crawl's clock one day on (no sleeping).
            after = datetime.now(UTC) + timedelta(days=1)
            second = timed(lambda: full_crawl(sources, work / "data-full", host_map,
                                              now=after))
            print(f"second run (the day after): {second.result.as_dict()} in "
                  f"{second.seconds:.1f} s", file=sys.stderr)
            again = timed(lambda: full_crawl(sources, work / "data-full", host_map,
                                             now=after + timedelta(hours=1), full=True))
            print(f"second run with full: {again.result.as_dict()} in {again.seconds:.1f} s",
                  file=sys.stderr)
            extract = extraction_alone(gen, min(EXTRACT_SAMPLE, len(gen.pages)))
            pooled = extraction_all_cores(gen, min(ALL_CORES_SAMPLE, len(gen.pages)),
                                          os.cpu_count() or 1)
            events = events_cost(gen, min(EXTRACT_SAMPLE, len(gen.pages)))
            np = ((None, "--no-news-please") if args.no_news_please
                  else news_please(gen, server.address, NEWS_PLEASE_SAMPLE))
        extra = f", settings {' '.join(args.set)}" if args.set else ""
        print(f"measured on {date.today().isoformat()}, {os.cpu_count()} cores, "
              f"{args.pages} pages, seed {args.seed}, event share {share}{extra}\n")
        print(report(gen, raw, first, second, again, extract, pooled, events, np))
    finally:
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
