"""Cooperation events from text: the hard cases of issue 11 through the public API
(`extract_events`, `EventExtractor`, `tag_record`), `cyz extract --json`, and the
validation of the `events:` rules of topic.yaml."""

from __future__ import annotations

import copy
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import cyz.config
from cyz.config import ConfigError, load_topic
from cyz.pipelines.events import EventExtractor, extract_events, split_sentences
from cyz.pipelines.page import tag_record
from cyz.record import Event

REPO = Path(__file__).resolve().parents[1]
TOPIC = Path(cyz.config.__file__).parent / "topic.yaml"


def events(text: str, published: str | None = "2024-11-27T10:00:00+08:00", title: str = ""):
    return extract_events(title, text, published)


def one(text: str, published: str | None = "2024-11-27T10:00:00+08:00", type_: str | None = None):
    found = [e for e in events(text, published) if type_ is None or e["type"] == type_]
    assert len(found) == 1, found
    return found[0]


# -- shape ----------------------------------------------------------------------------


def test_events_are_record_events_with_rule_and_trigger():
    event = one("12月4日，遵义市与重庆市江北区在重庆签署全面深化合作框架协议。",
                "2024-12-05T09:30:00+08:00")
    assert set(event) == set(Event.model_fields)
    Event.model_validate(event)
    assert event["type"] == "agreement"
    assert event["rule"] == "agreement" and event["trigger"] == "签署"
    assert event["key"] == "全面深化合作框架协议"
    assert event["sentence"] == "12月4日，遵义市与重庆市江北区在重庆签署全面深化合作框架协议。"
    assert (event["date"], event["date_precision"]) == ("2024-12-04", "day")


def test_parties_are_the_actors_not_the_venue():
    event = one("12月4日，遵义市与重庆市江北区在重庆召开座谈会，双方签署全面深化合作框架协议。",
                "2024-12-05T09:30:00+08:00")
    assert event["parties"] == ["遵义市", "重庆市江北区"]  # 在重庆: where, not who
    assert event["places"] == ["遵义", "重庆", "江北区"]
    assert set(event["regions"]) == {"遵义", "重庆", "江北区"}


def test_organisations_are_parties():
    event = one("7月，遵义市党政代表团赴渝考察，与重庆市人民政府共同签订了战略合作框架协议。",
                type_="agreement")
    assert event["parties"] == ["遵义市党政代表团", "重庆市人民政府"]
    company = one("不久前，纳雍县人民政府与北京吉能新能源科技有限公司签订投资框架协议。",
                  type_="agreement")
    assert company["parties"] == ["纳雍县人民政府", "北京吉能新能源科技有限公司"]


def test_a_district_rolls_up_to_its_city():
    event = one("11月22日，播州区举行成渝产业转移项目集中开工仪式，3个工业项目同时破土动工。",
                type_="project")
    assert event["places"] == ["播州区"]
    assert "遵义" in event["regions"] and "播州区" in event["regions"]


# -- dates ----------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "published", "date", "end", "precision"), [
    # a month without a year: the latest such month not after the article's
    ("7月，赤水市与合江县签署生态联防合作协议。", "2024-11-27", "2024-07", None, "month"),
    ("12月，遵义市与重庆市綦江区签署合作协议。", "2025-01-03", "2024-12", None, "month"),
    # a day alone: the article's month, or the one before when the day is still to come
    ("4日，遵义市与重庆市江北区签署合作协议。", "2024-12-05", "2024-12-04", None, "day"),
    ("28日，遵义市与重庆市江北区签署合作协议。", "2024-12-05", "2024-11-28", None, "day"),
    # ranges, 上旬/中旬/下旬
    ("4月20日至22日，遵义市代表团赴成都考察。", "2024-05-18", "2024-04-20", "2024-04-22", "day"),
    ("12月2日至3日，遵义市党政代表团赴成都市双流区考察学习。", "2024-12-04", "2024-12-02",
     "2024-12-03", "day"),
    ("11月下旬，遵义市与成都市签署人才合作协议。", "2024-12-10", "2024-11-21", "2024-11-30", "day"),
    ("2月上旬，遵义市与成都市签署人才合作协议。", "2024-03-10", "2024-02-01", "2024-02-10", "day"),
    # 去年/今年/明年 from the article's year; an explicit year wins
    ("去年，遵义市与重庆市签署战略合作协议。", "2024-06-01", "2023", None, "year"),
    ("今年4月，汇川区与两江新区签署合作协议。", "2024-11-27", "2024-04", None, "month"),
    ("2019年签署的《赤水河流域跨界水污染联防联控协议》为两地合作打下基础。", "2024-11-27",
     "2019", None, "year"),
    ("2021年10月，国务院印发《成渝地区双城经济圈建设规划纲要》。", "2024-11-27", "2021-10",
     None, "month"),
    # relative days and Chinese numerals
    ("昨日，遵义市与重庆市江北区签署全面深化合作框架协议。", "2024-12-05", "2024-12-04", None, "day"),
    ("十一月十三日，遵义市与成都市签署合作协议。", "2024-12-14", "2024-11-13", None, "day"),
    # an edition year in a name gives way to the day
    ("11月26日，2024年遵义市（重庆）投资推介会在重庆举行。", "2024-11-27", "2024-11-26", None, "day"),
])
def test_dates_resolve_against_the_article(text, published, date, end, precision):
    found = events(text, f"{published}T10:00:00+08:00")
    assert found, text
    event = found[0]
    assert (event["date"], event["date_end"], event["date_precision"]) == (date, end, precision)


def test_no_date_in_the_sentence_stays_none():
    event = one("遵义市与重庆市永川区签署了战略合作协议。")
    assert event["date"] is None and event["date_precision"] is None and event["date_end"] is None


def test_a_month_needs_the_article_date():
    event = one("7月，遵义市与重庆市签署战略合作协议。", published=None)
    assert event["date"] is None
    assert one("2023年7月，遵义市与重庆市签署战略合作协议。", published=None)["date"] == "2023-07"


def test_a_planned_month_is_the_next_one():
    event = one("成渝遵消费季活动将于11月上旬启动，由成都、重庆、遵义三地联合主办。",
                "2024-10-30T10:00:00+08:00")
    assert event["planned"] is True
    assert (event["date"], event["date_end"]) == ("2024-11-01", "2024-11-10")


# -- amounts and counts ---------------------------------------------------------------


def test_amounts_in_yuan_and_counts_apart():
    event = one("遵义市组团参会，现场签约项目23个，签约金额136.8亿元。", type_="project")
    assert event["amount_yuan"] == 13680000000.0 and event["amount_approx"] is False
    assert event["count"] == 23


@pytest.mark.parametrize(("text", "amount"), [
    ("贵州宇强粮油有限公司今年4月在遵义投产，截至10月底实现产值近4000万元。", 40000000.0),
    ("会上，遵义与江北两地6家企业现场签订合作项目，总投资约18.6亿元。", 1860000000.0),
    ("遵义市与重庆市签约项目总投资超过50亿元。", 5000000000.0),
    ("汇川区与渝北区签约项目总投资200余亿元。", 20000000000.0),
])
def test_approximate_amounts_keep_the_number(text, amount):
    event = one(text, type_="project")
    assert event["amount_yuan"] == amount and event["amount_approx"] is True


# -- planned, done, negated -----------------------------------------------------------


def test_planned_done_and_negated():
    planned = one("双方初步商定，遵义与成都计划于明年3月正式签署合作协议。")
    assert planned["planned"] is True and planned["date"] == "2025-03"
    done = one("遵义市与成都市已正式签署合作协议。")
    assert done["planned"] is False
    assert events("遵义市与重庆市尚未签署合作协议。") == []
    assert events("遵义市与成都市暂未签订合作协议。") == []
    # 未来 is no negation
    assert one("未来两地签署的合作协议将覆盖产业协作，遵义市与成都市已签署合作协议。")


def test_a_title_plan_is_not_a_plan():
    # 计划 inside a 《title》 plans nothing
    event = one("10月下旬，重庆市江北区印发《江北区—遵义市全面深化合作三年行动计划》。")
    assert event["type"] == "policy" and event["planned"] is False
    assert event["key"] == "江北区—遵义市全面深化合作三年行动计划"
    assert event["date"] == "2024-10-21"


# -- several events, one event --------------------------------------------------------


def test_one_sentence_can_hold_a_visit_and_an_agreement():
    found = events("10月，遵义市党政代表团赴四川省成都市考察，与成都市签署了深化战略合作协议。")
    assert sorted(e["type"] for e in found) == ["agreement", "visit"]
    assert all(e["date"] == "2024-10" for e in found)


def test_the_same_happening_told_twice_is_one_event():
    found = extract_events(
        "遵义市与重庆市江北区签署全面深化合作框架协议",
        "12月4日，遵义市与重庆市江北区在重庆召开深化合作交流座谈会，双方签署全面深化合作框架协议。\n"
        "此次签约是遵义主动融入成渝地区双城经济圈建设的具体行动，希望双方以协议为纽带。\n"
        "会上，两地6家企业现场签订合作项目，总投资约18.6亿元。",
        "2024-12-05T09:30:00+08:00")
    agreements = [e for e in found if e["type"] == "agreement"]
    assert len(agreements) == 1
    assert agreements[0]["date"] == "2024-12-04"  # the dated mention is kept
    projects = [e for e in found if e["type"] == "project"]
    assert len(projects) == 1 and projects[0]["date"] == "2024-12-04"  # 会上: the scene's day


def test_two_agreements_with_different_dates_stay_two():
    found = extract_events("", "7月，遵义市党政代表团赴渝考察，与重庆市人民政府签订了战略合作框架协议。\n"
                               "10月，遵义市党政代表团赴成都市考察，与成都市签署了深化战略合作协议。",
                           "2024-11-27T10:00:00+08:00")
    assert [e["date"] for e in found if e["type"] == "agreement"] == ["2024-07", "2024-10"]


def test_different_sums_are_different_projects():
    found = extract_events("", "贵州毕节磷煤化工一体化项目总投资730亿元。\n"
                               "4月26日，贵州铝产业招商对接会在杭州举行，现场签约项目总投资约14.5亿元。",
                           "2024-05-18T09:00:00+08:00")
    amounts = sorted(e["amount_yuan"] for e in found if e["type"] == "project")
    assert amounts == [1450000000.0, 73000000000.0]


# -- off topic ------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "11月10日清晨，2024遵义马拉松鸣枪开跑，赛事设全程马拉松、半程马拉松和欢乐跑三个项目。",
    "遵义市气象台发布寒潮蓝色预警信号，预计全市将出现大风降温天气。",
    "遵义市2024年公开招聘事业单位工作人员，拟聘用人员将与单位签订聘用合同并签署协议。",
    "1月14日，重庆铜梁龙足球俱乐部宣布正式签约巴西籍前锋，双方签署了为期两年的协议。",
    "市委书记到湄潭县考察茶产业发展情况。",  # a visit within one city is not cooperation
])
def test_off_topic_sentences_give_no_events(text):
    assert events(text) == []


def test_a_signing_needs_an_agreement_word():
    assert events("成都蓉城队昨日正式签约一名外援。") == []


# -- sentences ------------------------------------------------------------------------


def test_sentences_split_at_chinese_ends_not_inside_quotes():
    text = "他说：“两地要合作。要共赢”，随后签约。《规划。纲要》印发；第二句\n第三句"
    assert [s for _o, s in split_sentences(text)] == [
        "他说：“两地要合作。要共赢”，随后签约。", "《规划。纲要》印发；", "第二句", "第三句"]


def test_closing_quotes_stay_with_their_sentence():
    assert [s for _o, s in split_sentences("“签约了。”下一句。")] == ["“签约了。”", "下一句。"]


# -- rules are data -------------------------------------------------------------------


def test_an_analyst_extends_the_rules_without_code(tmp_path):
    data = yaml.safe_load(TOPIC.read_text(encoding="utf-8"))
    data["events"]["rules"].append({"id": "other-sister", "type": "other",
                                    "triggers": [
                                        "结成姊妹城市"], "key": "(姊妹城市)"})
    path = tmp_path / "topic.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    extractor = EventExtractor(load_topic(path))
    found = extractor.extract("", "5月，遵义市与成都市结成姊妹城市。", "2024-06-20T10:00:00+08:00")
    assert [(e["type"], e["rule"], e["trigger"], e["key"]) for e in found] == [
        ("other", "other-sister", "结成姊妹城市", "姊妹城市")]
    assert extract_events("", "5月，遵义市与成都市结成姊妹城市。", "2024-06-20") == []


def test_a_topic_without_events_extracts_none(tmp_path):
    path = tmp_path / "topic.yaml"
    path.write_text("regions:\n  - name: 遵义\n", encoding="utf-8")
    assert EventExtractor(load_topic(path)).extract("", "遵义与重庆签署合作协议。", None) == []


def _topic_with(tmp_path: Path, change) -> Path:
    data = yaml.safe_load(TOPIC.read_text(encoding="utf-8"))
    change(data["events"])
    path = tmp_path / "topic.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    return path


def test_a_bad_regex_names_file_rule_and_field(tmp_path):
    path = _topic_with(tmp_path, lambda ev: ev["rules"][1].update(key="(unclosed"))
    with pytest.raises(ConfigError) as info:
        load_topic(path)
    message = str(info.value)
    assert str(path) in message and "events rule 'visit-delegation'" in message
    assert "field 'key'" in message and "bad regex" in message


@pytest.mark.parametrize(("change", "expected"), [
    (lambda ev: ev["rules"][0].update(trigger=["签约"]), "field 'trigger': unknown key"),
    (lambda ev: ev["rules"][0].update(type="meeting"), "field 'type'"),
    (lambda ev: ev["rules"].append(copy.deepcopy(ev["rules"][0])), "'agreement' is given twice"),
    (lambda ev: ev["rules"][0].update(triggers=[], pattern=None), "field 'triggers'"),
    (lambda ev: ev["markers"].update(plans=["拟"]), "field 'events.markers.plans': unknown key"),
])
def test_event_rules_are_strict(tmp_path, change, expected):
    with pytest.raises(ConfigError, match=expected):
        load_topic(_topic_with(tmp_path, change))


def _cyz(*args: str, config_dir: Path | None, data_dir: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CYZ_ENGINE", "CYZ_INDEX"))}
    env.update({"CYZ_DATA_DIR": str(data_dir), "COLUMNS": "200"})
    if config_dir:
        env["CYZ_CONFIG_DIR"] = str(config_dir)
    return subprocess.run([sys.executable, "-m", "cyz.cli", *args], capture_output=True,
                          text=True, env=env, cwd=REPO, timeout=300)


def test_cyz_extract_json_shows_events_with_rule_and_trigger(tmp_path):
    page = REPO / "demo/sites/www.zunyi-demo.gov.cn/xwdt/zyyw/202412/t20241205_8812345.html"
    proc = _cyz("extract", str(page), "--json", config_dir=None, data_dir=tmp_path)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    agreement = next(e for e in record["events"] if e["type"] == "agreement")
    assert agreement["rule"] == "agreement" and agreement["trigger"] == "签署"
    assert agreement["date"] == "2024-12-04"
    assert record["event_types"] == sorted({e["type"] for e in record["events"]})
    assert "Building prefix dict" not in proc.stderr  # jieba keeps quiet


def test_cyz_extract_refuses_a_bad_event_regex_with_exit_2(tmp_path):
    config = tmp_path / "config"
    config.mkdir()
    shutil.copy(TOPIC.parent / "sources.yaml", config / "sources.yaml")
    topic = _topic_with(tmp_path, lambda ev: ev["rules"][0].update(pattern="签(署"))
    shutil.move(topic, config / "topic.yaml")
    page = tmp_path / "page.txt"
    page.write_text("标题\n遵义与重庆签署合作协议。", encoding="utf-8")
    proc = _cyz("extract", str(page), "--json", config_dir=config, data_dir=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "topic.yaml" in proc.stderr and "events rule 'agreement'" in proc.stderr
    assert "field 'pattern'" in proc.stderr and "Traceback" not in proc.stderr


# -- records --------------------------------------------------------------------------


def test_tag_record_fills_events_and_relevance_counts_them():
    coop = tag_record({"title": "", "text": "", "title_zh": "遵义市与重庆市江北区签署合作协议",
                       "text_zh": "12月4日，遵义市与重庆市江北区签署全面深化合作框架协议。"
                                  "遵义市代表团赴江北区考察。",
                       "published_at": "2024-12-05T09:30:00+08:00"})
    assert coop["event_types"] == ["agreement", "visit"]
    assert {r["name"] for r in coop["regions"]} >= {"遵义", "重庆"}
    passing = tag_record({"title": "", "text": "", "title_zh": "2024遵义马拉松鸣枪开跑",
                          "text_zh": "来自重庆、成都的跑者超过3000人，赛事推动文旅合作。",
                          "published_at": "2024-03-18T08:00:00+08:00"})
    assert passing["events"] == [] and passing["event_types"] == []
    assert 0 <= passing["relevance"] < coop["relevance"] <= 1


# -- what an analyst would call wrong in a timeline ------------------------------------


@pytest.mark.parametrize(("title", "text", "parties"), [
    # the same gazetteer entry, with or without the province or city, or its alias: one
    # party, in its most complete written form
    ("遵义与江北区签署合作协议", "12月4日，贵州省遵义市与重庆市江北区签署全面深化合作框架协议。",
     ["贵州省遵义市", "重庆市江北区"]),
    ("湄潭与渝北签署茶产业合作协议",
     "今年8月，湄潭县与重庆市渝北区签署茶产业合作协议，渝北区将为湄潭茶企提供展销区。",
     ["湄潭县", "重庆市渝北区"]),
    ("", "11月20日，赤水市与重庆江津区签署文旅生态协作协议。"
         "签署的协议明确，赤水市与重庆市江津区将共同打造跨省旅游线路。",
     ["赤水市", "重庆市江津区"]),
    # a city and one of its districts are two parties
    ("", "12月4日，遵义市与汇川区、重庆市江北区签署三方合作协议。",
     ["遵义市", "汇川区", "重庆市江北区"]),
    ("遵义与江北区签署合作协议", "11月4日，遵义市、汇川区与重庆市江北区签署三方合作协议。",
     ["遵义市", "汇川区", "重庆市江北区"]),
])
def test_one_place_is_one_party(title, text, parties):
    found = [e for e in extract_events(title, text, "2024-11-27T10:00:00+08:00")
             if e["type"] == "agreement"]
    assert len(found) == 1, found
    assert found[0]["parties"] == parties


@pytest.mark.parametrize(("text", "parties"), [
    ("11月20日，遵义市商务局同重庆市商务委员会签署商贸合作备忘录。",
     ["遵义市商务局", "重庆市商务委员会"]),
    ("11月20日，市教育局与重庆市永川区教委签署职业教育合作协议。", ["市教育局", "重庆市永川区教委"]),
    # who told the news is no party (记者从…获悉, 据…介绍)
    ("据市商务局介绍，11月20日，遵义市与重庆市渝北区签署商贸合作协议。", ["遵义市", "重庆市渝北区"]),
    ("记者从市交通运输局了解到，11月20日，遵义市与重庆市綦江区签署交通合作协议。",
     ["遵义市", "重庆市綦江区"]),
])
def test_prepositions_and_sources_are_not_parties(text, parties):
    assert one(text, type_="agreement")["parties"] == parties


def test_a_glued_preposition_leaves_the_name():
    event = one("记者近日从市交通运输局了解到，遵义至重庆的城际公交已于11月20日开通。")
    assert not any(p.startswith(("从", "记者")) for p in event["parties"])


def test_mentions_under_a_lead_dated_scene_take_its_date():
    found = extract_events(
        "", "本报讯 11月4日，2024成渝遵农业协作大会在遵义市开幕。\n"
            "会议期间，遵义市与重庆市綦江区签署农产品供销协议。大会还发布了《成渝遵农业协作倡议》。\n"
            "大会还举办了产销对接活动，现场签约项目8个，签约金额12亿元。",
        "2024-11-05T10:00:00+08:00")
    assert {e["type"] for e in found} >= {"conference", "agreement", "policy", "project"}
    assert all(e["date"] == "2024-11-04" for e in found), [(e["type"], e["date"]) for e in found]
    conference = next(e for e in found if e["rule"] == "conference" and "大会" in e["key"])
    assert conference["key"] == "2024成渝遵农业协作大会"


@pytest.mark.parametrize("text", [
    "11月4日，成渝遵职工代表大会在遵义市开幕。",
    "11月4日，遵义市表彰大会在遵义举行。",
])
def test_a_daihui_of_no_cooperation_is_no_conference(text):
    assert events(text, "2024-11-05T10:00:00+08:00") == []


def test_a_date_found_after_the_clause_yields_to_the_scene():
    found = extract_events(
        "", "12月13日，2024川渝黔文化旅游推介会在重庆举行。\n"
            "推介会上，遵义市推出冬季旅游优惠政策：12月至次年2月免费游览。\n"
            "推介会现场，三地28家旅游企业签订了客源互送协议。",
        "2024-12-14T10:00:00+08:00")
    assert [(e["type"], e["date"]) for e in found] == [
        ("conference", "2024-12-13"), ("agreement", "2024-12-13")]


def test_a_plan_keeps_its_own_date_under_a_scene():
    found = extract_events(
        "", "11月26日，第三届成渝遵协同发展论坛在汇川区开幕。\n"
            "会上，三地商定将在明年联合举办川渝美食周，由成都、重庆、遵义轮流承办。",
        "2024-11-27T10:00:00+08:00")
    plan = next(e for e in found if e["type"] == "other")
    assert plan["planned"] is True and plan["date"] == "2025"


@pytest.mark.parametrize("text", [
    "今年以来，遵义市已与川渝两地12个区县签署合作协议。",
    "遵义市今年以来与川渝区县签订合作协议41份，渝贵铁路加密开行城际列车。",
    "截至目前，桐梓县已签约成渝地区项目19个，总投资56亿元。",
    "近年来，正安县与重庆多家企业签订长期供货协议。",
    "遵义市累计与成都签订合作协议15份。",
    "仁怀市先后与重庆市永川区、江津区签署合作协议。",
    "今年以来，播州区共赴成渝地区开展招商活动26批次，签约项目19个。",
    "双流区已开通多条至遵义的货运航线。",
    "成渝遵协同发展论坛自2022年起每年举办一届，由三地轮流承办。",
])
def test_a_tally_is_no_happening(text):
    assert events(text) == []


@pytest.mark.parametrize(("text", "type_", "date"), [
    # one trip, many stops
    ("11月4日，代表团一行先后考察了重庆市江北区的观音桥商圈和江北嘴金融城，遵义市代表团还赴渝北区考察。",
     "visit", "2024-11-04"),
    # a day of its own after the tally word
    ("今年以来，两地合作不断深化，11月4日，遵义市与重庆市签署全面合作协议。", "agreement",
     "2024-11-04"),
    # a plan after a tally
    ("兰海高速公路遵义至重庆段全线累计完成投资约62%，预计2026年底建成通车。", "transport", "2026"),
    # 以来 after the happening: the opening is told
    ("自4月16日首列遵义至重庆的铁海联运班列开行以来，遵义已陆续开行了13列班列。", "transport",
     "2024-04-16"),
])
def test_a_tally_word_beside_a_happening_keeps_it(text, type_, date):
    assert one(text, type_=type_)["date"] == date


def test_a_cutoff_dates_no_happening():
    found = extract_events("", "成渝汽车产业供需对接平台正式上线，"
                               "截至11月底，已有近50家企业在该平台上发布信息。",
                           "2020-12-14T10:00:00+08:00")
    assert [(e["type"], e["date"]) for e in found] == [("other", None)]


def test_an_other_event_repeating_a_typed_one_goes():
    found = extract_events(
        "", "11月26日，成渝遵商贸论坛在汇川区开幕。\n"
            "论坛期间，三地商务部门共同发布了《成渝遵商贸流通协作倡议》，将联合举办消费促进活动，"
            "推动商贸企业互设门店、互认会员。", "2024-11-27T10:00:00+08:00")
    assert sorted(e["type"] for e in found) == ["conference", "policy"]
    # a platform set up beside a signing is a happening of its own
    both = events("11月20日，遵义市与成都市签署合作协议，并共同成立成遵产业联盟。")
    assert sorted(e["type"] for e in both) == ["agreement", "other"]


@pytest.mark.parametrize("text", [
    "按照协议，两地将互认旅游景区优惠政策，持一地景区年卡可在另一地享受门票优惠。",
    "《方案》还明确，建立市级领导联系成渝重点区县制度，成立遵义融入成渝工作专班。",
    "根据初步方案，遵义与成都将在人才创新中心实现职称评审两地互认。",
])
def test_what_a_document_says_is_no_happening(text):
    assert events(text) == []


def test_a_later_different_agreement_is_not_absorbed():
    found = extract_events(
        "", "12月17日，重庆市永川区与贵州省遵义市汇川区签署协议，两地将共建数字经济产业园。\n"
            "签约现场，4家永川区企业与汇川区签订入园协议，计划总投资6.5亿元。",
        "2024-12-18T10:00:00+08:00")
    agreements = [e for e in found if e["type"] == "agreement"]
    assert [(e["key"], e["date"]) for e in agreements] == [
        ("", "2024-12-17"), ("入园协议", "2024-12-17")]
    assert agreements[0]["parties"] == ["重庆市永川区", "贵州省遵义市汇川区"]


def test_agreements_of_different_sides_stay_apart():
    found = extract_events("", "12月4日，遵义市与重庆市江北区签署合作协议。\n"
                               "同日，遵义市与重庆市渝北区签署合作协议。",
                           "2024-12-05T10:00:00+08:00")
    assert [e["parties"] for e in found if e["type"] == "agreement"] == [
        ["遵义市", "重庆市江北区"], ["遵义市", "重庆市渝北区"]]


def test_a_dateline_is_neither_date_nor_party():
    policy = one("新华社成都12月16日电 记者从四川省发展改革委获悉，川渝两省市发展改革部门近日联合印发"
                 "《川渝毗邻地区合作平台建设提质增效方案》。", "2024-12-16T18:00:00+08:00")
    assert policy["date"] is None and policy["parties"] == []
    signed = one("新华社重庆12月5日电 贵州省遵义市与重庆市江北区4日在重庆签署全面深化合作框架协议。",
                 "2024-12-05T18:00:00+08:00")
    assert signed["date"] == "2024-12-04"
    assert signed["parties"] == ["贵州省遵义市", "重庆市江北区"]


def test_a_breakdown_of_signed_projects_is_no_new_project():
    found = extract_events("", "11月12日，2024成渝地区双城经济圈投资推介会在重庆举行，遵义市现场签约项目23个，"
                               "签约金额136.8亿元。\n签约项目中，工业项目15个，服务业项目6个。",
                           "2024-11-13T10:00:00+08:00")
    assert [e["count"] for e in found if e["type"] == "project"] == [23]


def test_a_place_described_is_no_party():
    event = one("省发展改革委有关负责人表示，遵义是贵州对接成渝地区的桥头堡，"
                "出台《若干措施》旨在带动黔北地区高质量发展。")
    assert event["type"] == "policy" and "遵义" not in event["parties"]
