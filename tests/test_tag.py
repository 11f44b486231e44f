from cyz.pipelines.tag import default_tagger


def names(regions):
    return {r["name"]: r["count"] for r in regions}


def test_districts_count_toward_their_city():
    tagger = default_tagger()
    found = names(tagger.regions("汇川区与两江新区签约，播州区参加。"))
    assert found["遵义"] == 2 and found["汇川区"] == 1 and found["播州区"] == 1
    assert found["重庆"] == 1 and found["两江新区"] == 1
    assert "成都" not in found


def test_each_mention_counts_once_longest_name_wins():
    found = names(default_tagger().regions("遵义市"))
    assert found == {"遵义": 1}


def test_compounds_name_both_places():
    found = names(default_tagger().regions("推动成渝地区双城经济圈建设，深化川渝合作"))
    assert found["成都"] == 1 and found["重庆"] == 2 and found["四川"] == 1


def test_lone_single_character_abbreviations_do_not_count():
    assert default_tagger().regions("川流不息，黔驴技穷") == []


def test_relevance_orders_cooperation_above_unrelated():
    tagger = default_tagger()
    coop = tagger.tag({"title_zh": "遵义与重庆签署合作协议", "text_zh": "成渝地区双城经济圈 协同 签约 项目 投资"})
    weather = tagger.tag({"title_zh": "明日多云", "text_zh": "全市气温回升，请注意防晒。"})
    local = tagger.tag({"title_zh": "遵义茶文化节开幕", "text_zh": "湄潭县举办茶文化节。"})
    assert coop["relevance"] > local["relevance"] > weather["relevance"] == 0
    assert {"agreement", "cooperation", "chengyu-circle"} <= set(coop["topics"])
    assert coop["relevance"] >= 0.8
