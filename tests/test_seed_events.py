"""The cooperation events a reader finds in realistic pages: the five seed pages of
`../shared/seeds` (skipped when absent) and the demo sites' pages, through the whole
per-page pipeline."""

from __future__ import annotations

from pathlib import Path

import pytest

from cyz.pipelines.page import record_from_file, record_from_text

SEEDS = Path(__file__).resolve().parents[2] / "shared" / "seeds"
DEMO = Path(__file__).resolve().parents[1] / "demo" / "sites"


def seed(prefix: str) -> dict:
    if not SEEDS.is_dir():
        pytest.skip(f"no seed pages at {SEEDS}")
    path = next(SEEDS.glob(f"{prefix}_*.txt"), None)
    if path is None:
        pytest.skip(f"seed page {prefix} missing from {SEEDS}")
    return record_from_text(path.read_text(encoding="utf-8"), f"https://seed.example/{path.stem}")


def demo(relative: str) -> dict:
    path = DEMO / relative
    return record_from_file(path.read_bytes(), path.resolve().as_uri(), path.name)


def find(record: dict, type_: str, **fields) -> dict:
    """The one event of `type_` whose fields equal `fields` (a callable tests the value)."""
    hits = [e for e in record["events"] if e["type"] == type_ and all(
        value(e[key]) if callable(value) else e[key] == value for key, value in fields.items())]
    assert len(hits) == 1, (type_, fields, [(e["type"], e["date"], e["key"]) for e in record["events"]])
    return hits[0]


# -- seeds ----------------------------------------------------------------------------


def test_seed_000_zunyi_bridgehead():
    record = seed("000")
    assert record["published_at"].startswith("2024-11-27")
    # the 航太紧固件 project: 总投资1.3亿元, started 今年4月
    project = find(record, "project", amount_yuan=130000000.0)
    assert project["date"] == "2024-04" and "汇川区" in project["parties"]
    # a rice-oil company in production, 产值近4000万元 (approximate)
    rice = find(record, "project", amount_yuan=40000000.0)
    assert rice["amount_approx"] is True and rice["parties"] == ["贵州宇强粮油有限公司"]
    # delegations: to Luzhou/Yibin in April, to Chongqing in July, to Chengdu in October
    assert sorted(e["date"] for e in record["events"] if e["type"] == "visit") == [
        "2024-04", "2024-07", "2024-10"]
    # agreements: with 重庆市人民政府 (7月), with chambers of commerce (9月), with 成都市 (10月)
    july = find(record, "agreement", date="2024-07")
    assert july["key"] == "战略合作框架协议" and "重庆市人民政府" in july["parties"]
    assert "重庆市科技装备业商会" in find(record, "agreement", date="2024-09")["parties"]
    assert "成都市" in find(record, "agreement", date="2024-10")["parties"]
    # the matchmaking fair of September
    fair = find(record, "conference", date="2024-09")
    assert fair["key"] == "2024渝遵工业产业供需对接会"
    # the 2021 plan stays in 2021
    assert find(record, "policy")["date"] == "2021-10"
    # 今年以来…累计…新签约引进投资项目100多个: a tally of the year, no happening (nor does
    # it lend its 33个 or its key to the 1.3亿元 project told before)
    assert not any(e["count"] in (33, 100) for e in record["events"])
    assert not any("今年以来" in e["sentence"] for e in record["events"])
    assert not any(e["planned"] for e in record["events"])
    assert record["relevance"] >= 0.9


def test_seed_001_work_plan():
    record = seed("001")
    plan = find(record, "policy")
    assert plan["key"] == "遵义市特色优势制造业主动融入成渝地区双城经济圈工作方案"
    assert plan["date"] == "2024-12-05" and plan["planned"] is False
    # the plan's targets (到2025年, 力争…) are planned, never done
    targets = [e for e in record["events"] if e["date"] in ("2025", "2027")]
    assert targets and all(e["planned"] for e in targets)
    assert record["event_types"] == sorted({e["type"] for e in record["events"]})


def test_seed_002_general_guizhou_cooperation_in_traditional_script():
    record = seed("002")
    assert record["script"] == "hant"
    fair = find(record, "conference", date="2024-04-20")
    assert fair["date_end"] == "2024-04-22"
    assert find(record, "project", amount_yuan=73000000000.0)["amount_approx"] is False
    hangzhou = find(record, "project", amount_yuan=1450000000.0)
    assert hangzhou["amount_approx"] is True and hangzhou["date"] == "2024-04-26"
    nayong = find(record, "agreement")
    assert nayong["parties"] == ["纳雍县人民政府", "北京吉能新能源科技有限公司"]
    assert nayong["amount_yuan"] == 10000000000.0 and nayong["amount_approx"] is True
    assert find(record, "transport", date="2024-01")["key"] == "G7611都香高速"
    # Guizhou's cooperation at large: Zunyi takes part in none of it
    assert not any("遵义" in e["regions"] for e in record["events"])
    # every sentence is simplified text
    assert all("與" not in e["sentence"] and "簽" not in e["sentence"] for e in record["events"])


def test_seed_003_sichuan_chongqing_auto_and_electronics():
    record = seed("003")
    assert record["published_at"].startswith("2020-12-14")
    assert find(record, "conference", date="2020-06-29")["places"] == ["成都"]
    find(record, "conference", date="2020-10-29")
    find(record, "agreement", date="2020-10-29")
    assert find(record, "project", date="2020-04-29")["key"] == "一揽子合作项目"
    fund = find(record, "other", amount_yuan=30000000000.0)
    assert "基金" in fund["key"]


def test_seed_004_equipment_cluster():
    record = seed("004")
    fair = find(record, "conference")
    assert fair["date"] == "2021-06-04" and fair["key"].endswith("推介会")
    signing = find(record, "agreement")
    assert signing["date"] == "2021-06-04"  # 会上: the fair's day
    assert {"江津区", "永川区"} <= set(signing["places"])
    # the county-name spam at the end makes no event
    assert not any("阿城市" in e["sentence"] for e in record["events"])


# -- demo pages -----------------------------------------------------------------------

GOV = "www.zunyi-demo.gov.cn/xwdt/zyyw/"
HUAXIA = "www.huaxia-news-demo.cn/local/"


def test_demo_zunyi_jiangbei_framework_agreement():
    record = demo(GOV + "202412/t20241205_8812345.html")
    agreement = find(record, "agreement")
    assert agreement["date"] == "2024-12-04" and agreement["planned"] is False
    assert agreement["parties"] == ["遵义市", "重庆市江北区"]
    assert "重庆" in agreement["places"] and "全面深化合作框架协议" in agreement["key"]
    visit = find(record, "visit")
    assert "遵义市代表团" in visit["parties"]
    projects = find(record, "project")
    assert projects["amount_yuan"] == 1860000000.0 and projects["amount_approx"] is True
    assert projects["count"] == 6
    assert len(record["events"]) == 3  # the title and 此次签约 join the agreement


def test_demo_reports_of_the_same_agreement_agree():
    gov = find(demo(GOV + "202412/t20241205_8812345.html"), "agreement")
    huaxia_page = demo(HUAXIA + "20241205/78e8b4d9b9034fc9d4ca78bd05601a76/c.html")
    huaxia = find(huaxia_page, "agreement", date="2024-12-04")
    # 今年以来遵义已与川渝两地多个区县签署合作协议: a tally of the year, no event
    assert [e["date"] for e in huaxia_page["events"] if e["type"] == "agreement"] == ["2024-12-04"]
    # the same place written twice (贵州省遵义市 … 遵义) is one party
    assert huaxia["parties"] == ["贵州省遵义市", "重庆市江北区"]
    assert gov["date"] == huaxia["date"] and gov["type"] == huaxia["type"]
    assert set(huaxia["regions"]) >= {"遵义", "重庆", "江北区"}
    assert huaxia["key"] == "全面深化合作框架协议"


def test_demo_investment_fair_with_23_projects():
    record = demo(GOV + "202411/t20241113_8806019.html")
    fair = find(record, "conference")
    assert fair["date"] == "2024-11-12" and fair["key"] == "2024成渝地区双城经济圈投资推介会"
    projects = find(record, "project", count=23)
    assert projects["amount_yuan"] == 13680000000.0 and projects["amount_approx"] is False
    agreement = find(record, "agreement")
    assert agreement["parties"] == ["遵义市", "重庆市永川区", "成都市青白江区"]


def test_demo_delegation_visit_with_a_memorandum_and_a_planned_route():
    record = demo(GOV + "202412/t20241204_8812298.html")
    visit = find(record, "visit")
    assert (visit["date"], visit["date_end"]) == ("2024-12-02", "2024-12-03")
    assert visit["parties"][0] == "遵义市党政代表团"
    memo = find(record, "agreement")
    assert memo["key"] == "航空物流合作备忘录" and memo["date"] == "2024-12-02"  # 考察期间
    route = find(record, "transport")
    assert route["planned"] is True and route["date"] == "2025"


def test_demo_planned_agreement_and_past_opening():
    planned = find(demo(GOV + "202411/t20241106_8804412.html"), "agreement")
    assert planned["planned"] is True and planned["date"] == "2025-03"
    rail = demo(GOV + "202412/t20241202_8811907.html")
    assert find(rail, "transport", date="2024-12-01")["key"] == "渝贵铁路"
    assert find(rail, "transport", date="2018")["planned"] is False


@pytest.mark.parametrize("page", [
    GOV + "202411/t20241110_8805377.html",  # marathon
    GOV + "202411/t20241115_8806642.html",  # cold wave warning
])
def test_demo_off_topic_pages_have_no_events(page):
    record = demo(page)
    assert record["events"] == [] and record["event_types"] == []
    assert record["relevance"] < 0.5


QIANXIN = "news.qianxin-demo.com.cn/cyjj/"


def test_demo_conference_scene_dates_what_happened_there():
    record = demo(QIANXIN + "2024-11/05/content_5460.htm")
    fair = find(record, "conference", key="2024赤水河流域酱香白酒产业发展大会")
    assert fair["date"] == "2024-11-04"
    # 大会发布了…, 大会期间…签订…, 现场签约项目16个: the day the 大会 opened
    assert find(record, "policy")["date"] == "2024-11-04"
    assert find(record, "agreement")["date"] == "2024-11-04"
    assert find(record, "project", count=16)["date"] == "2024-11-04"
    assert all(e["date"] for e in record["events"])


def test_demo_park_entry_agreement_is_not_the_framework_one():
    record = demo(HUAXIA + "20241218/4ead580792587090d39a1280520ea4b1/c.html")
    lead = find(record, "agreement", key="")
    assert lead["parties"] == ["重庆市永川区", "贵州省遵义市汇川区"] and lead["date"] == "2024-12-17"
    entry = find(record, "agreement", key="入园协议")
    assert entry["date"] == "2024-12-17" and entry["amount_yuan"] == 650000000.0


def test_demo_forum_initiative_is_one_event_and_the_yearly_forum_none():
    record = demo(GOV + "202411/t20241126_8809874.html")
    assert find(record, "policy")["date"] == "2024-11-26"
    assert not any(e["type"] == "other" for e in record["events"])
    # 自2022年起每年举办一届: a habit, not a 2022 conference
    assert [e["date"] for e in record["events"] if e["type"] == "conference"] == [
        "2024-11-26", "2025"]


def test_demo_tallies_and_document_content_make_no_events():
    for page in (GOV + "202411/t20241101_8803166.html", GOV + "202411/t20241122_8808702.html",
                 GOV + "202411/t20241128_8810231.html", QIANXIN + "2024-11/22/content_5509.htm",
                 HUAXIA + "20241211/c8a32f9b62b3d203af0c688d87fa51e2/c.html"):
        record = demo(page)
        assert not any(e["date_precision"] == "year" and not e["planned"]
                       for e in record["events"]), page
    for page in (GOV + "202411/t20241120_8807955.html", GOV + "202411/t20241129_8810566.html",
                 GOV + "202411/t20241106_8804412.html"):
        assert not any(e["type"] == "other" for e in demo(page)["events"]), page
