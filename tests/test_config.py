"""The shipped configuration loads, its URL patterns fit the real sites' URLs, and a bad
edit fails with a message that names the file, the entry and the field."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from urllib.parse import urlsplit

import pytest

import cyz.config
from cyz.config import ConfigError, Source, load_sources, load_topic
from cyz.urls import url_pattern

CONFIG_DIR = Path(cyz.config.__file__).parent
SOURCES_FILE = CONFIG_DIR / "sources.yaml"

# Article URLs as sources-research.md cites them. Where the research elides part of a
# URL ("d4ea87e6…", a column path given only as "…"), we filled the gap in the cited
# shape; those rows are marked "filled".
ARTICLE_EXAMPLES: list[tuple[str, str]] = [
    ("zunyi-gov", "https://www.zunyi.gov.cn/xwdt/zyyw/202607/t20260731_90680254.html"),
    ("zunyi-gov", "https://www.zunyi.gov.cn/zwgk/zdlygk/mzzj/mzwhbh/202501/t20250123_86670687.html"),
    ("zunyi-gov", "http://www.zunyi.gov.cn/zwgk/zfwj/zfr/202608/t20260831_90797819.html"),  # filled
    ("guizhou-gov", "https://www.guizhou.gov.cn/home/gzyw/202504/t20250417_87533552.html"),
    ("guizhou-gov", "https://www.guizhou.gov.cn/home/tt/202608/t20260801_90684455.html"),  # filled
    ("guizhou-gxt", "https://gxt.guizhou.gov.cn/gxdt/tzgg/202306/t20230615_80303405.html"),
    ("cq-gov", "https://www.cq.gov.cn/ywdt/jrcq/202606/t20260626_15778151.html"),
    ("cq-gov", "https://www.cq.gov.cn/zt/cyscjjq/xtfz/zjsystpz/202412/t20241205_13864768.html"),
    ("cq-gov", "https://www.cq.gov.cn/zwgk/zfxxgkml/szfwj/xzgfxwj/szfbgt/202606/t20260616_15758457.html"),
    ("cq-gov", "https://www.cq.gov.cn/ywdt/zwhd/qxdt/202605/t20260507_15655466.html"),  # filled
    ("cq-gov", "https://www.cq.gov.cn/ywdt/jrcq/202508/t20250819_14911996_app.html"),  # filled
    ("cq-gov", "https://www.cq.gov.cn/ywdt/jrcq/202504/t20250414_14519112_wap.html"),  # filled
    ("cq-jtj", "https://jtj.cq.gov.cn/ztzl/cydqscjjq/202401/t20240117_12828937.html"),  # filled
    ("cq-jtj", "https://jtj.cq.gov.cn/ztzl/cydqscjjq/202506/t20250626_14748304.html"),  # filled
    ("sc-gov", "https://www.sc.gov.cn/10462/10464/10797/2025/6/16/d4ea87e6a1b2c3d4e5f60718293a4b5c.shtml"),  # filled
    ("sc-gov", "https://www.sc.gov.cn/10462/zfwjts/2026/6/17/446ac7820f1e2d3c4b5a69788796a5b4.shtml"),  # filled
    ("sc-gov", "https://www.sc.gov.cn/10462/c105962s/2026/2/10/c30640291234567890abcdef12345678.shtml"),  # filled
    ("sc-gov", "http://www.sc.gov.cn/10462/10464/10797/2015/3/25/10330618.shtml"),  # filled
    ("chengdu-gov", "https://www.chengdu.gov.cn/cdsrmzf/c169549/2026-03/05/content_0123456789abcdef0123456789abcdef.shtml"),  # filled
    ("xinhua-gz", "http://gz.news.cn/20260911/410f2875c0d14e6f9a8b7c6d5e4f3a2b/c.html"),  # filled
    ("xinhua-gz", "https://www.gz.news.cn/20240723/dfb962c6a7b84c1d9e0f1a2b3c4d5e6f/c.html"),  # filled
    ("xinhua-gz", "http://www.gz.xinhuanet.com/20260910/3ad56ba3b4c54d6e8f7a9b0c1d2e3f4a/c.html"),  # filled
    ("xinhua-gz", "http://gz.news.cn/2022-12/05/c_1129184967.htm"),
    ("xinhua-gz", "http://www.gz.xinhuanet.com/2016-11/21/c_1119954709_2.htm"),
    ("xinhua-national", "https://www.news.cn/politics/20260617/3cfa4154be374d9581b6815a24278e31/c.html"),
    ("people-gz", "http://gz.people.com.cn/n2/2024/1205/c222152-41070123.html"),  # filled
    ("people-gz", "https://gz.people.com.cn/n2/2026/0301/c194849-41512345.html"),  # filled
    ("people-cq", "http://cq.people.com.cn/n2/2026/0315/c365401-41523456.html"),  # filled
    ("people-sc", "http://sc.people.com.cn/n2/2026/0612/c345167-41634567.html"),  # filled
    ("people-sc", "https://sc.people.com.cn/n2/2025/1103/c379471-41398765.html"),  # filled
    ("cqnews", "http://news.cqnews.net/html/2017-06/08/content_41874417.htm"),
    ("cqnews", "http://cq.cqnews.net/html/2019-06/20/content_50522561.html"),
    ("cqnews", "https://cq.cqnews.net/html/2021-05/08/content_51336527.html"),
    ("cqnews", "https://cq.cqnews.net/html/2022-04/28/content_969351981790801920.html"),
    ("cqnews", "https://cq.cqnews.net/cqqx/html/web/content_1507082492948443136.html"),
    ("cqcb", "https://www.cqcb.com/headline/2019-06-24/1703121_pc.html"),
    ("cqcb", "https://www.cqcb.com/shuzijingji/2023-03-17/5204026.html"),
    ("cqcb", "https://www.cqcb.com/shixiang/2026-05-20/6143485_pc.html"),
    ("cqcb", "https://www.cqcb.com/news/64/2026-10-08/6233035.html"),
    ("scol", "https://sichuan.scol.com.cn/ggxw/202609/83320358.html"),
    ("scol", "https://meishan.scol.com.cn/mzyhj/202606/83269113.html"),
    ("cbgc", "https://cbgc.scol.com.cn/news/7591927"),
    ("cbgc", "https://cbgc.scol.com.cn/news/7983795?from=androidapp"),
    ("gzrb-epaper", "https://szb.eyesnews.cn/pc/cont/202606/15/content_1234567.html"),  # filled
    ("tianyan", "https://share.eyesnews.cn/news/news-news_detail-news_id-11525123456789.html"),  # filled
    ("tianyan", "http://jgz.app.todayguizhou.com//news/news-news_detail-news_id-11515115722490.html"),  # filled
    ("wechat-accounts", "https://mp.weixin.qq.com/s/Xq3bT0pZk9LmN2vR7sYw1A"),  # filled
    ("wechat-accounts", "https://mp.weixin.qq.com/s?__biz=MzA5NjE2NjQ0MA==&mid=2650123456&idx=1&sn=0a1b2c3d4e5f60718293a4b5c6d7e8f9"),  # filled
]

# List and pagination pages (TRS index_N.html, people.com.cn indexN.html, sc.gov.cn
# list_ft_N.shtml …) that the follow patterns must recognise.
LIST_EXAMPLES: list[tuple[str, str]] = [
    ("zunyi-gov", "https://www.zunyi.gov.cn/xwdt/zyyw/index_1.html"),
    ("zunyi-gov", "http://www.zunyi.gov.cn/zwgk/zfwj/zfr/index.html"),
    ("guizhou-gov", "https://www.guizhou.gov.cn/home/sxdt/index_49.html"),
    ("guizhou-gxt", "http://gxt.guizhou.gov.cn/zwgk/xxgkml/zcwj/qtwj/index_8.html"),
    ("cq-gov", "https://www.cq.gov.cn/ywdt/jrcq/index.html"),
    ("cq-gov", "https://www.cq.gov.cn/zt/cyscjjq/xtfz/index_2.html"),
    ("cq-jtj", "https://jtj.cq.gov.cn/ztzl/cydqscjjq/index_1.html"),
    ("sc-gov", "https://www.sc.gov.cn/10462/10464/10797/jrsc_list_2.shtml"),
    ("sc-gov", "https://www.sc.gov.cn/10462/10464/10465/10595/list_ft_3.shtml"),
    ("people-gz", "http://gz.people.com.cn/GB/200190/388758/388766/index2.html"),
    ("people-cq", "http://cq.people.com.cn/GB/365402/index3.html"),
    ("people-sc", "http://sc.people.com.cn/GB/345452/379470/index2.html"),
    ("cqnews", "http://cq.cqnews.net/html/col35734.htm"),
    ("cqnews", "http://cq.cqnews.net/html/node_35734.htm"),
    ("cqcb", "https://www.cqcb.com/hot/"),
    ("scol", "https://sichuan.scol.com.cn/ggxw/index_2.html"),
    ("xinhua-gz", "https://gz.news.cn/"),
]


@pytest.fixture(scope="module")
def sources() -> dict[str, Source]:
    return {s.id: s for s in load_sources(SOURCES_FILE)}


def _host_allowed(host: str, domains: list[str]) -> bool:
    # The crawl's rule (see allowed_domains in sources.yaml): a domain admits its subdomains.
    return any(host == d or host.endswith("." + d) for d in domains)


# -- the shipped file ----------------------------------------------------------------

def test_shipped_sources_load_with_unique_ids(sources: dict[str, Source]) -> None:
    ids = [s.id for s in load_sources(SOURCES_FILE)]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 15
    enabled = [s for s in sources.values() if s.enabled]
    assert len(enabled) >= 10
    for src in enabled:
        assert src.start_urls or src.feeds or src.sitemaps, src.id
        assert src.article_patterns, src.id
        assert src.domains, src.id


def test_every_disabled_source_says_why(sources: dict[str, Source]) -> None:
    disabled = {s.id for s in sources.values() if not s.enabled}
    # The sites known to need a browser, an app or JSON API, or a dated entry URL.
    assert {"chengdu-gov", "cbgc", "wechat-accounts", "tianyan", "xinhua-national",
            "zunyi-daily", "gzrb-epaper"} <= disabled
    for sid in disabled:
        reason = sources[sid].disabled_reason
        assert reason and len(reason) > 30, sid


def test_feeds_are_feeds_not_json_or_search_apis(sources: dict[str, Source]) -> None:
    for src in sources.values():
        for url in src.feeds:
            path = urlsplit(url).path.lower()
            assert not path.endswith(".json"), (src.id, url)
            assert "search" not in url.lower() and "appapi" not in url.lower(), (src.id, url)


def test_every_source_with_patterns_has_an_example(sources: dict[str, Source]) -> None:
    with_examples = {sid for sid, _ in ARTICLE_EXAMPLES}
    assert with_examples <= set(sources), with_examples - set(sources)
    for src in sources.values():
        if src.enabled or src.article_patterns:
            assert src.id in with_examples, f"add an example article URL for {src.id}"


@pytest.mark.parametrize(("sid", "url"), ARTICLE_EXAMPLES)
def test_article_example_is_an_article_and_not_a_list(
        sources: dict[str, Source], sid: str, url: str) -> None:
    src = sources[sid]
    assert any(url_pattern(p).search(url) for p in src.article_patterns), f"{sid}: no article pattern fits {url}"
    assert not any(url_pattern(p).search(url) for p in src.follow_patterns), f"{sid}: follow pattern fits {url}"
    if src.enabled:
        assert _host_allowed(urlsplit(url).hostname or "", src.domains), f"{sid}: {url} is offsite"


def test_every_article_pattern_is_exercised(sources: dict[str, Source]) -> None:
    for src in sources.values():
        urls = [u for sid, u in ARTICLE_EXAMPLES if sid == src.id]
        for pattern in src.article_patterns:
            assert any(url_pattern(pattern).search(u) for u in urls), f"{src.id}: {pattern} fits no example"


def test_article_patterns_stay_on_their_site(sources: dict[str, Source]) -> None:
    # No source claims another source's articles (they would be indexed under the wrong name).
    for sid, url in ARTICLE_EXAMPLES:
        for other in sources.values():
            if other.id != sid:
                assert not any(url_pattern(p).search(url) for p in other.article_patterns), (other.id, url)


@pytest.mark.parametrize(("sid", "url"), LIST_EXAMPLES)
def test_list_and_pagination_pages_are_followed(
        sources: dict[str, Source], sid: str, url: str) -> None:
    src = sources[sid]
    assert any(url_pattern(p).search(url) for p in src.follow_patterns), f"{sid}: no follow pattern fits {url}"
    assert not any(url_pattern(p).search(url) for p in src.article_patterns), f"{sid}: {url} taken as article"


def test_start_urls_are_list_pages(sources: dict[str, Source]) -> None:
    for src in sources.values():
        for url in src.start_urls:
            assert not any(url_pattern(p).search(url) for p in src.article_patterns), (src.id, url)
            if src.enabled:
                assert any(url_pattern(p).search(url) for p in src.follow_patterns), (src.id, url)


def test_patterns_accept_both_schemes(sources: dict[str, Source]) -> None:
    for src in sources.values():
        for pattern in src.article_patterns + src.follow_patterns:
            assert pattern.startswith("^https?://"), (src.id, pattern)


def test_packaged_topic_loads() -> None:
    topic = load_topic(CONFIG_DIR / "topic.yaml")
    names = {r.name for r in topic.regions}
    assert {"成都", "重庆", "遵义"} <= names


# -- bad edits -----------------------------------------------------------------------

GOOD_ENTRY = """\
  - id: good-one
    name: 好
    kind: news
    region: 遵义
    start_urls: [https://a.example.cn/news/]
    article_patterns: ['/\\d+\\.html$']
"""


def _write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "sources.yaml"
    path.write_text("sources:\n" + GOOD_ENTRY + body, encoding="utf-8")
    return path


def _entry(fields: str, sid: str = "bad-one") -> str:
    return (f"  - id: {sid}\n    name: 坏\n    kind: news\n    region: 重庆\n"
            + textwrap.indent(textwrap.dedent(fields), "    "))


BAD_ENTRIES = [
    pytest.param(_entry("start_url: [https://b.example.cn/]\narticle_patterns: ['x']\n"),
                 "'start_url'", "did you mean 'start_urls'", id="unknown-key"),
    pytest.param(_entry("start_urls: [https://b.example.cn/]\narticle_patterns: ['(\\d+']\n"),
                 "'article_patterns'", "bad regex", id="bad-regex"),
    pytest.param(_entry("start_urls: [https://b.example.cn/]\nfollow_patterns: ['[a-']\n"
                        "article_patterns: ['x']\n"),
                 "'follow_patterns'", "bad regex", id="bad-follow-regex"),
    pytest.param(_entry("article_patterns: ['x']\n"),
                 "'start_urls'", "needs start_urls", id="no-start-urls"),
    pytest.param(_entry("start_urls: [https://b.example.cn/]\n"),
                 "'article_patterns'", "at least one", id="no-article-patterns"),
    pytest.param(_entry("start_urls: [https://b.example.cn/]\narticle_patterns: ['x']\n"
                        "encoding: gbk-ish\n"),
                 "'encoding'", "unknown encoding 'gbk-ish'", id="unknown-encoding"),
    pytest.param(_entry("start_urls: [ftp://b.example.cn/]\narticle_patterns: ['x']\n"),
                 "'start_urls'", "ftp://b.example.cn/", id="not-http"),
    pytest.param(_entry("start_urls: [https://b.example.cn/]\narticle_patterns: ['x']\n"
                        "max_depth: many\n"),
                 "'max_depth'", "'many'", id="bad-depth"),
]


@pytest.mark.parametrize(("entry", "field", "detail"), BAD_ENTRIES)
def test_bad_entry_names_file_entry_and_field(
        tmp_path: Path, entry: str, field: str, detail: str) -> None:
    path = _write(tmp_path, entry)
    with pytest.raises(ConfigError) as info:
        load_sources(path)
    message = str(info.value)
    assert str(path) in message
    assert "'bad-one'" in message
    assert f"field {field}" in message
    assert detail in message
    assert "good-one" not in message  # only the broken entry is blamed


def test_bad_kind_names_the_choices_and_the_value(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text("sources:\n" + GOOD_ENTRY.replace("kind: news", "kind: blog"), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_sources(path)
    message = str(info.value)
    assert str(path) in message and "'good-one'" in message and "field 'kind'" in message
    assert "'government'" in message and "'blog'" in message


def test_disabled_source_needs_no_entry_points(tmp_path: Path) -> None:
    path = _write(tmp_path, _entry("enabled: false\ndisabled_reason: domain unknown\n"))
    loaded = {s.id: s for s in load_sources(path)}
    assert loaded["bad-one"].enabled is False
    assert loaded["bad-one"].start_urls == []


def test_duplicate_id_is_named(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text("sources:\n" + GOOD_ENTRY + GOOD_ENTRY, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_sources(path)
    message = str(info.value)
    assert str(path) in message and "'good-one'" in message and "field 'id'" in message
    assert "duplicate" in message


def test_bad_id_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, _entry("start_urls: [https://b.example.cn/]\narticle_patterns: ['x']\n",
                                   sid="Bad_One"))
    with pytest.raises(ConfigError) as info:
        load_sources(path)
    assert "'Bad_One'" in str(info.value) and "field 'id'" in str(info.value)


def test_entry_without_id_is_named_by_position(tmp_path: Path) -> None:
    path = _write(tmp_path, "  - name: 无名\n    kind: news\n    region: 遵义\n")
    with pytest.raises(ConfigError) as info:
        load_sources(path)
    assert "entry #2" in str(info.value) and "field 'id'" in str(info.value)


def test_bad_yaml_gives_the_line(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text("sources:\n" + GOOD_ENTRY + "  - id: broken\n    name: [坏\n    kind: news\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_sources(path)
    message = str(info.value)
    assert str(path) in message and "bad YAML" in message
    # The unclosed flow list opens on line 9 and the parser notices on line 10.
    line = int(re.search(r"line (\d+)", message).group(1))
    assert line in (9, 10)


@pytest.mark.parametrize(("text", "detail"), [
    ("", "'sources' list"),
    ("- just a list\n", "'sources' list"),
    ("sources: []\nextra: 1\n", "'extra'"),
])
def test_wrong_file_shape_is_named(tmp_path: Path, text: str, detail: str) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_sources(path)
    assert str(path) in str(info.value) and detail in str(info.value)


def test_missing_and_non_utf8_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_sources(tmp_path / "absent.yaml")
    path = tmp_path / "gbk.yaml"
    path.write_bytes(("sources:\n" + GOOD_ENTRY).encode("gbk"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_sources(path)


def test_bad_topic_names_the_region_and_field(tmp_path: Path) -> None:
    path = tmp_path / "topic.yaml"
    path.write_text("regions:\n  - name: 遵义\n    alias: [遵义市]\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_topic(path)
    message = str(info.value)
    assert str(path) in message and "'遵义'" in message
    assert "field 'alias'" in message and "'aliases'" in message


# -- YAML cyz refuses: anchors/aliases (alias bombs) and keys given twice ---------------

def _alias_bomb(levels: int = 9) -> str:
    """The billion-laughs shape: each level lists the previous one nine times."""
    lines = ["    notes:", "      - &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for n in range(1, levels):
        lines.append(f"      - &l{n} [" + ", ".join([f"*l{n - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_naming_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text("sources:\n" + GOOD_ENTRY + _alias_bomb(), encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_sources(path)
    message = str(info.value)
    assert str(path) in message and "line 9" in message  # the first anchor
    assert "anchors and aliases" in message
    assert len(message) < 300  # one clear line, not the expanded value


@pytest.mark.parametrize("text", [
    "regions:\n  - &zy {name: 遵义}\n",  # an anchor alone
    "regions:\n  - name: 遵义\n    aliases: [遵义市]\ncompounds:\n  渝: [*x]\n",  # an unknown alias
    "base: &b {name: 遵义}\nregions:\n  - <<: *b\n",  # a merge key needs an alias
])
def test_anchors_and_aliases_are_refused_in_topic_yaml(tmp_path: Path, text: str) -> None:
    path = tmp_path / "topic.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_topic(path)
    assert str(path) in str(info.value) and "anchors and aliases" in str(info.value)


def test_anchors_and_aliases_are_refused_in_alerts_yaml(tmp_path: Path) -> None:
    """Every config file is read by the same loader: alerts.yaml too, exit 2 naming it."""
    import shutil

    config_dir = tmp_path / "config"
    shutil.copytree(REPO / "config", config_dir)
    alerts = config_dir / "alerts.yaml"
    alerts.write_text("words: &w [遵义, 重庆]\nrules:\n  - id: a\n    name: 甲\n    any: *w\n"
                      "    recipients: [a@b.cn]\n", encoding="utf-8")
    proc = subprocess.run([sys.executable, "-m", "cyz.cli", "alerts", "list"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, "CYZ_CONFIG_DIR": str(config_dir),
                               "CYZ_DATA_DIR": str(tmp_path / "data")})
    assert proc.returncode == 2, proc.stderr
    assert str(alerts) in proc.stderr and "anchors and aliases" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_key_given_twice_names_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "sources.yaml"
    path.write_text("sources:\n" + GOOD_ENTRY + "    region: 重庆\n", encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_sources(path)
    message = str(info.value)
    assert str(path) in message and "line 8" in message
    assert "'region' given twice" in message and "first on line 5" in message


def test_top_level_key_given_twice_in_topic_yaml(tmp_path: Path) -> None:
    path = tmp_path / "topic.yaml"
    path.write_text("regions:\n  - name: 遵义\nfocus_regions: [遵义]\nregions:\n  - name: 成都\n",
                    encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_topic(path)
    message = str(info.value)
    assert str(path) in message and "line 4" in message and "'regions' given twice" in message


def test_the_same_key_in_different_mappings_is_fine(tmp_path: Path) -> None:
    path = tmp_path / "topic.yaml"
    path.write_text("regions:\n  - name: 遵义\n  - name: 成都\n", encoding="utf-8")
    assert [r.name for r in load_topic(path).regions] == ["遵义", "成都"]


def test_deep_nesting_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "topic.yaml"
    path.write_text("regions: " + "[" * 50_000 + "]" * 50_000 + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="nested too deeply") as info:
        load_topic(path)
    assert str(path) in str(info.value)


# -- topic.yaml: blank names --------------------------------------------------------

@pytest.mark.parametrize(("text", "where"), [
    ("regions:\n  - name: ''\n", "field 'name'"),
    ("regions:\n  - name: 遵义\n    aliases: [遵义市, '  ']\n", "field 'aliases.1'"),
    ("regions:\n  - name: 遵义\n    places:\n      - {name: ' '}\n", "field 'places.0.name'"),
    ("regions:\n  - name: 遵义\n    places:\n      - {name: 汇川区, aliases: ['']}\n",
     "field 'places.0.aliases.0'"),
    ("regions:\n  - name: 遵义\ntopics:\n  - {id: coop, name: 合作, keywords: [合作, '']}\n",
     "field 'topics.0.keywords.1'"),
    ("regions:\n  - name: 遵义\ncompounds:\n  ' ': [遵义]\n", "field 'compounds"),
])
def test_blank_names_and_keywords_are_errors(tmp_path: Path, text: str, where: str) -> None:
    # A blank name would match everywhere (an empty regex alternative) or at every space.
    path = tmp_path / "topic.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_topic(path)
    message = str(info.value)
    assert str(path) in message and where in message and "blank" in message


# -- load_config: every file of a config dir, validated together ---------------------

def test_load_config_reads_sources_and_topic(tmp_path: Path) -> None:
    from cyz.config import load_config

    config = load_config(CONFIG_DIR)
    assert config.dir == CONFIG_DIR.resolve()
    assert {s.id for s in config.sources} == {s.id for s in load_sources(SOURCES_FILE)}
    assert {"成都", "重庆", "遵义"} <= {r.name for r in config.topic.regions}
    own = _write(tmp_path, "")
    assert [s.id for s in load_config(CONFIG_DIR, sources_file=own).sources] == ["good-one"]


def test_load_config_names_a_missing_or_broken_topic_file(tmp_path: Path) -> None:
    from cyz.config import load_config

    _write(tmp_path, "")
    with pytest.raises(ConfigError, match="topic.yaml: cannot read"):
        load_config(tmp_path)
    (tmp_path / "topic.yaml").write_text("regions:\n  - name: ''\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="topic.yaml"):
        load_config(tmp_path)


# -- every command validates every config file before any request --------------------

REPO = CONFIG_DIR.parent
DEMO_SOURCES = REPO / "demo" / "sources.yaml"
BROKEN_TOPIC = "regions:\n  - name: 遵义\n    alias: [遵义市]\n"


def _cyz(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CYZ_")}
    environ.update({"COLUMNS": "200", "no_proxy": "", "NO_PROXY": "", **env})
    return subprocess.run([sys.executable, "-m", "cyz.cli", *args], capture_output=True,
                          text=True, env=environ, cwd=REPO, timeout=600)


@pytest.fixture
def counting_sites():
    """The demo sites on their own loopback server, reached as an http proxy, so the
    test sees every request any command makes."""
    from cyz.demo.server import SiteServer

    with SiteServer(REPO / "demo" / "sites") as server:
        yield server


def _config_dir(tmp_path: Path, topic: str | None) -> Path:
    config = tmp_path / "config"
    config.mkdir()
    (config / "sources.yaml").write_bytes(DEMO_SOURCES.read_bytes())
    (config / "topic.yaml").write_text(
        topic if topic is not None else (CONFIG_DIR / "topic.yaml").read_text(encoding="utf-8"),
        encoding="utf-8")
    return config


COMMANDS = [
    pytest.param(["crawl", "--source", "demo-qianxin", "--max-pages", "2"], id="crawl"),
    pytest.param(["crawl", "--sources", str(DEMO_SOURCES), "--max-pages", "2"], id="crawl-sources"),
    pytest.param(["sources", "check", "demo-qianxin", "--max-pages", "2"], id="sources-check"),
    pytest.param(["extract", "http://news.qianxin-demo.com.cn/cyjj/"], id="extract-url"),
    pytest.param(["reextract"], id="reextract"),
    pytest.param(["demo"], id="demo"),
    pytest.param(["schedule"], id="schedule"),
]


@pytest.mark.parametrize("args", COMMANDS)
def test_broken_topic_stops_the_command_before_any_request(tmp_path, counting_sites, args):
    proxy = f"http://127.0.0.1:{counting_sites.port}"
    config = _config_dir(tmp_path, BROKEN_TOPIC)
    proc = _cyz(*args, env={"CYZ_CONFIG_DIR": str(config), "CYZ_DATA_DIR": str(tmp_path / "data"),
                            "http_proxy": proxy, "HTTP_PROXY": proxy})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert str(config / "topic.yaml") in proc.stderr and "field 'alias'" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert counting_sites.count() == 0
    assert "Serving" not in proc.stdout  # the demo did not even start its sites


def test_the_same_setup_with_a_good_topic_does_fetch(tmp_path, counting_sites):
    # The control for the test above: the proxy set-up really carries the requests.
    proxy = f"http://127.0.0.1:{counting_sites.port}"
    config = _config_dir(tmp_path, None)
    proc = _cyz("sources", "check", "demo-qianxin", "--max-pages", "1", "--json",
                env={"CYZ_CONFIG_DIR": str(config), "CYZ_DATA_DIR": str(tmp_path / "data"),
                     "http_proxy": proxy, "HTTP_PROXY": proxy})
    assert proc.returncode == 0, proc.stderr
    assert counting_sites.count() > 0


def test_the_nightly_job_checks_the_config_again_and_skips_a_bad_night(
        tmp_path, counting_sites, monkeypatch, caplog):
    # The operator broke topic.yaml after the scheduler started: that night is skipped
    # with one line in the log, and no request is made.
    from cyz.scheduling import nightly_crawl

    proxy = f"http://127.0.0.1:{counting_sites.port}"
    config = _config_dir(tmp_path, BROKEN_TOPIC)
    for name, value in {"CYZ_CONFIG_DIR": str(config), "CYZ_DATA_DIR": str(tmp_path / "data"),
                        "http_proxy": proxy, "HTTP_PROXY": proxy, "no_proxy": "",
                        "NO_PROXY": ""}.items():
        monkeypatch.setenv(name, value)
    with caplog.at_level("ERROR", logger="cyz.scheduler"):
        nightly_crawl()
    assert [r.getMessage() for r in caplog.records] == [
        f"nightly crawl skipped: {config / 'topic.yaml'}: entry '遵义', field 'alias': "
        "unknown key (did you mean 'aliases'?)"]
    assert counting_sites.count() == 0


@pytest.mark.parametrize(("text", "twice"), [
    ("regions:\n  - name: 遵义\n  - name: 成都\n  - name: 遵义\n", "field 'regions': '遵义' is given twice"),
    ("regions:\n  - name: 遵义\ntopics:\n  - {id: coop, name: 合作, keywords: [合作]}\n"
     "  - {id: coop, name: 协作, keywords: [协作]}\n", "field 'topics': 'coop' is given twice"),
])
def test_a_region_or_topic_given_twice_is_an_error(tmp_path: Path, text: str, twice: str) -> None:
    path = tmp_path / "topic.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as info:
        load_topic(path)
    assert str(path) in str(info.value) and twice in str(info.value)
