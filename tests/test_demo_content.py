"""The bundled demo sites and their sources file hold together.

These tests read the files only (no server, no crawl): every page the demo sources can
reach exists where `demo/server.py` will look for it, and each site really contains the
case it is there to exercise (JS-only pager, GBK, robots, tracking duplicate, reprint,
traditional script, broken page, year-less date line).
"""

from __future__ import annotations

import re
import urllib.robotparser
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import lxml.etree
import lxml.html
import opencc
import pytest
import yaml

from cyz.config import Source, load_sources

DEMO = Path(__file__).resolve().parent.parent / "demo"
SITES = DEMO / "sites"
ZUNYI, QIANXIN, HUAXIA = "www.zunyi-demo.gov.cn", "news.qianxin-demo.com.cn", "www.huaxia-news-demo.cn"
BODY_XPATH = (
    "//div[contains(@class,'trs_paper_default')] | //div[@id='content'] | //div[@id='detail']"
)
_PAGE_SUFFIXES = (".html", ".htm", ".xml")


@pytest.fixture(scope="module")
def sources() -> dict[str, Source]:
    return {s.id: s for s in load_sources(DEMO / "sources.yaml")}


def site_conf(host: str) -> dict:
    path = SITES / host / "_site.yaml"
    return (yaml.safe_load(path.read_text(encoding="utf-8")) or {}) if path.exists() else {}


def file_for(url: str) -> Path:
    """The file the demo server answers `url` with (same rule as demo/server.py)."""
    parts = urlsplit(url)
    path = parts.path or "/"
    if path.endswith("/"):
        path += "index.html"
    return SITES / parts.hostname / path.lstrip("/")


def status_override(url: str) -> int:
    parts = urlsplit(url)
    rel = file_for(url).relative_to(SITES / parts.hostname).as_posix()
    return int(((site_conf(parts.hostname).get("files") or {}).get(rel) or {}).get("status", 200))


def url_for(path: Path) -> str:
    rel = path.relative_to(SITES)
    return f"http://{rel.parts[0]}/" + "/".join(rel.parts[1:])


def read_page(path: Path) -> str:
    # The broken demo page holds a binary run on purpose; everything else is UTF-8.
    return path.read_bytes().decode("utf-8", errors="replace")


def links(url: str) -> list[str]:
    doc = lxml.html.fromstring(file_for(url).read_bytes().decode("utf-8"))
    return [urljoin(url, href) for href in doc.xpath("//a/@href")
            if not href.startswith(("javascript:", "#"))]


def is_article(source: Source, url: str) -> bool:
    return any(re.search(p, url) for p in source.article_patterns)


def robots(host: str) -> urllib.robotparser.RobotFileParser:
    parser = urllib.robotparser.RobotFileParser()
    parser.parse((SITES / host / "robots.txt").read_text(encoding="utf-8").splitlines())
    return parser


def xml_locs(url: str, tag: str) -> list[str]:
    root = lxml.etree.fromstring(file_for(url).read_bytes())
    return [el.text.strip() for el in root.iter() if isinstance(el.tag, str)
            and lxml.etree.QName(el).localname == tag and el.text]


def listed_articles(source: Source) -> set[str]:
    """Article URLs a crawl of `source` is offered: from start pages, their pager,
    followed list pages, feeds and sitemaps (queries kept, as the links carry them)."""
    found: set[str] = set()
    todo = list(source.start_urls)
    seen: set[str] = set()
    while todo:
        url = todo.pop()
        if url in seen:
            continue
        seen.add(url)
        html = file_for(url).read_text(encoding="utf-8")
        pager = re.search(r"createPageHTML\(\s*(\d+)\s*,", html)
        if pager:
            todo += [urljoin(url, f"index_{n}.html") for n in range(1, int(pager.group(1)))]
        for link in links(url):
            if is_article(source, link):
                found.add(link)
            elif any(re.search(p, link.split("?")[0]) for p in source.follow_patterns):
                todo.append(link)
    for feed in source.feeds:
        found.update(xml_locs(feed, "link")[1:])  # the first <link> is the channel's
    for sitemap in source.sitemaps:
        for child in xml_locs(sitemap, "loc"):
            found.update(xml_locs(child, "loc"))
    return found


def article_files() -> list[Path]:
    return [p for p in SITES.rglob("*") if p.suffix in (".html", ".htm")
            and re.search(r"/(t\d{8}_\d+\.html|content_\d+\.htm|[0-9a-f]{32}/c\.html)$", p.as_posix())]


def body_text(path: Path) -> str:
    doc = lxml.html.fromstring(read_page(path))
    return "".join("".join(node.itertext()) for node in doc.xpath(BODY_XPATH)).replace("\u3000", "").strip()


def paragraphs(path: Path) -> list[str]:
    doc = lxml.html.fromstring(read_page(path))
    return [p.text_content().strip() for node in doc.xpath(BODY_XPATH) for p in node.iter("p")]


# ---------------------------------------------------------------- convention


def test_every_site_folder_has_pages_and_robots() -> None:
    hosts = sorted(p.name for p in SITES.iterdir() if p.is_dir())
    assert hosts == sorted([ZUNYI, QIANXIN, HUAXIA])
    for host in hosts:
        assert (SITES / host / "robots.txt").is_file()
        assert (SITES / host / "index.html").is_file()
        assert len([p for p in (SITES / host).rglob("*") if p.suffix in _PAGE_SUFFIXES]) >= 10


def test_site_yaml_only_uses_keys_the_server_reads() -> None:
    for conf_path in SITES.glob("*/_site.yaml"):
        conf = yaml.safe_load(conf_path.read_text(encoding="utf-8"))
        assert set(conf) <= {"charset", "files"}, conf_path
        for rel, override in (conf.get("files") or {}).items():
            assert (conf_path.parent / rel).is_file(), f"override for a missing file: {rel}"
            assert set(override) <= {"status", "location", "content_type"}


def test_sources_load_and_point_at_bundled_sites(sources: dict[str, Source]) -> None:
    assert set(sources) == {"demo-zunyi-gov", "demo-qianxin", "demo-huaxia"}
    for src in sources.values():
        assert src.download_delay == 0
        for url in src.start_urls + src.feeds + src.sitemaps:
            assert file_for(url).is_file(), url


def test_every_listed_article_exists_or_is_meant_to_fail(sources: dict[str, Source]) -> None:
    intended_failures = 0
    for src in sources.values():
        listed = listed_articles(src)
        assert len(listed) >= 8, src.id
        host_robots = {h: robots(h) for h in src.domains}
        for url in listed:
            host = urlsplit(url).hostname
            assert host in src.domains, url
            if not host_robots[host].can_fetch("cyz", url):
                continue  # the crawler must not ask; tested below
            assert file_for(url).is_file(), url
            if status_override(url) != 200 or b"\x00" in file_for(url).read_bytes():
                intended_failures += 1
    assert intended_failures == 2  # the withdrawn TRS article (404) and the broken page


def test_trs_pager_is_javascript_only() -> None:
    html = (SITES / ZUNYI / "xwdt/zyyw/index.html").read_text(encoding="utf-8")
    total = int(re.search(r'createPageHTML\((\d+), 0, "index", "html"\)', html).group(1))
    assert total == 3
    assert not re.search(r"""href=["']?index_\d""", html)
    for n in range(1, total):
        assert (SITES / ZUNYI / f"xwdt/zyyw/index_{n}.html").is_file()
    first = links(f"http://{ZUNYI}/xwdt/zyyw/")
    assert f"http://{ZUNYI}/xwdt/zyyw/202412/t20241205_8812345.html" in first  # ./ links resolve


def test_robots_forbids_a_listed_article_like_page(sources: dict[str, Source]) -> None:
    src = sources["demo-zunyi-gov"]
    blocked = [u for u in listed_articles(src) if not robots(ZUNYI).can_fetch("cyz", u)]
    assert blocked and all(urlsplit(u).path.startswith("/search/") for u in blocked)
    assert all(file_for(u).is_file() for u in blocked)  # a crawl ignoring robots would get 200


def test_tracking_parameter_duplicates_a_plain_link(sources: dict[str, Source]) -> None:
    listed = listed_articles(sources["demo-zunyi-gov"])
    tracked = [u for u in listed if "?from=timeline" in u]
    assert len(tracked) == 1
    assert tracked[0].split("?")[0] in listed


# ---------------------------------------------------------------- content


def test_at_least_thirty_readable_articles_of_right_length() -> None:
    readable = []
    for path in article_files():
        url = url_for(path)
        if status_override(url) != 200 or not robots(urlsplit(url).hostname).can_fetch("cyz", url):
            continue
        if b"\x00" in path.read_bytes():
            continue  # the broken page
        text = body_text(path)
        assert 300 <= len(text) <= 1200, (path, len(text))
        readable.append(path)
    assert len(readable) >= 30


def test_article_pages_carry_chrome_to_strip() -> None:
    for path in article_files():
        if b"\x00" in path.read_bytes():
            continue  # the broken page stops before its footer
        page = read_page(path)
        assert "ICP" in page, path
        assert re.search(r"责任编辑|編輯|编辑", page), path
        assert re.search(r"来源|來源", page), path


def test_gbk_site_is_declared_and_encodable() -> None:
    assert site_conf(QIANXIN).get("charset") == "gbk"
    pages = [p for p in (SITES / QIANXIN).rglob("*") if p.suffix in _PAGE_SUFFIXES]
    for path in pages:
        text = path.read_text(encoding="utf-8")
        text.encode("gbk")  # strict: the server would otherwise write &#...; references
        assert 'charset="gbk"' in text.lower() or "charset=gbk" in text.lower(), path
    everything = "".join(p.read_text(encoding="utf-8") for p in pages)
    for rare in ("仡佬族", "湄潭", "镕"):
        assert rare in everything
    assert "2024年11月27日 10:31　来源：贵州日报" in everything


def test_trs_articles_have_head_metadata() -> None:
    for path in (SITES / ZUNYI / "xwdt/zyyw").rglob("t*.html"):
        doc = lxml.html.fromstring(path.read_text(encoding="utf-8"))
        meta = {m.get("name"): m.get("content") for m in doc.xpath("//meta[@name]")}
        assert meta["ArticleTitle"] and meta["ContentSource"], path
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", meta["PubDate"]), path
        assert path.name[1:9] == meta["PubDate"][:10].replace("-", "")


def test_traditional_reprints_match_simplified_articles() -> None:
    t2s = opencc.OpenCC("t2s")
    hant = sorted(p for p in (SITES / HUAXIA / "local").rglob("c.html")
                  if "遵義" in read_page(p) and "重慶" in read_page(p))
    assert len(hant) == 2  # the 成渝中线高铁 article and the 江北区 agreement
    for page in hant:
        text = body_text(page)
        assert "成渝" in text and "遵义" not in text
    # The high-speed rail copy is the simplified article converted, word for word.
    simplified = t2s.convert(body_text(hant[1]))
    twins = [p for p in article_files() if p != hant[1] and body_text(p) == simplified]
    assert len(twins) == 1
    # The agreement's copy keeps every paragraph of its simplified original but the lead.
    kept = [t2s.convert(par) for par in paragraphs(hant[0])[1:]]
    originals = [p for p in article_files() if p not in hant and paragraphs(p)[1:] == kept]
    assert len(originals) == 1


def test_reprint_of_a_government_article_on_the_national_site() -> None:
    gov = {p: paragraphs(p) for p in (SITES / ZUNYI / "xwdt/zyyw").rglob("t*.html")}
    matches = []
    for path in (SITES / HUAXIA / "local").rglob("c.html"):
        mine = paragraphs(path)
        for gov_path, theirs in gov.items():
            shared = set(mine) & set(theirs)
            if len(shared) >= 3:
                matches.append((path, gov_path, mine, theirs))
    assert len(matches) == 1
    _, _, mine, theirs = matches[0]
    assert mine[0] != theirs[0] and mine[-1] != theirs[-1]  # reworded lead and tail


def test_broken_page_is_linked_from_the_feed() -> None:
    feed_links = xml_locs(f"http://{HUAXIA}/rss.xml", "link")[1:]
    broken = [u for u in feed_links if b"\x00" in file_for(u).read_bytes()]
    assert len(broken) == 1
    raw = file_for(broken[0]).read_bytes()
    assert b"</html>" not in raw
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")


def test_one_page_gives_a_date_without_a_year() -> None:
    yearless = []
    for path in (SITES / HUAXIA / "local").rglob("c.html"):
        page = read_page(path)
        if re.search(r'<span class="time">\d{2}-\d{2} \d{2}:\d{2}</span>', page):
            yearless.append(page)
    assert len(yearless) == 1
    assert not re.search(r"20\d\d-\d\d-\d\d|20\d\d年\d{1,2}月", yearless[0])


def test_feed_and_sitemaps_are_well_formed() -> None:
    feed = lxml.etree.fromstring((SITES / HUAXIA / "rss.xml").read_bytes())
    assert feed.tag == "rss" and feed.get("version") == "2.0"
    assert len(feed.findall("channel/item")) >= 6
    children = xml_locs(f"http://{HUAXIA}/sitemap_index.xml", "loc")
    assert children == [f"http://{HUAXIA}/sitemap-2024.xml"]
    assert len(xml_locs(children[0], "loc")) >= 8
    assert f"Sitemap: http://{HUAXIA}/sitemap_index.xml" in (SITES / HUAXIA / "robots.txt").read_text()
