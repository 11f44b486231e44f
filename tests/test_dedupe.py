from cyz.pipelines.dedupe import ReprintIndex

STORY = ("遵义市与重庆市江北区在渝签署战略合作协议。根据协议，双方将在产业协作、交通互联、文旅融合、"
         "人才交流等领域深化合作，共同推动成渝地区双城经济圈建设。会上，两地还签约了一批合作项目，"
         "总投资约二十六亿元，涉及装备制造、电子信息和现代物流。")
OTHER = ("今年以来，全市气象部门加强灾害性天气监测预警，累计发布预警信息一百余条，"
         "及时提醒群众做好防范。气象专家表示，下周全市以多云天气为主，气温逐步回升，"
         "早晚温差较大，请市民注意添减衣物。")


def test_reprint_joins_cluster_and_earliest_copy_is_first(tmp_path):
    index = ReprintIndex(tmp_path / "r.sqlite3")
    first = index.place("a", STORY, "2024-12-05T10:00:00+08:00")
    assert (first.cluster_id, first.is_first, first.is_reprint) == ("a", True, False)
    # an earlier-published reprint with a different lead-in and ending takes over "first"
    reprint = index.place("b", "新华社贵阳12月5日电 " + STORY + "（记者 王某）", "2024-12-04T18:00:00+08:00")
    assert reprint.cluster_id == "a" and reprint.is_first and reprint.is_reprint
    assert reprint.changed == {"a": False}
    unrelated = index.place("c", OTHER, "2024-12-06T08:00:00+08:00")
    assert unrelated.cluster_id == "c" and not unrelated.is_reprint


def test_clusters_survive_reopening_and_reprocessing_is_stable(tmp_path):
    path = tmp_path / "r.sqlite3"
    index = ReprintIndex(path)
    index.place("a", STORY, "2024-12-05T10:00:00+08:00")
    index.close()
    index = ReprintIndex(path)
    again = index.place("a", STORY, "2024-12-05T10:00:00+08:00")
    assert again.cluster_id == "a" and again.is_first and not again.is_reprint
    later = index.place("b", STORY + "完", "2024-12-06T10:00:00+08:00")
    assert later.cluster_id == "a" and not later.is_first and later.changed == {}


def test_a_changed_text_leaves_its_old_cluster(tmp_path):
    index = ReprintIndex(tmp_path / "r.sqlite3")
    index.place("a", STORY, "2024-12-05T10:00:00+08:00")
    index.place("b", STORY, "2024-12-04T10:00:00+08:00")
    moved = index.place("b", OTHER, "2024-12-04T10:00:00+08:00")
    assert moved.cluster_id == "b"
    assert moved.changed == {"a": True}  # a is alone again, so first again


def test_short_texts_are_never_clustered(tmp_path):
    index = ReprintIndex(tmp_path / "r.sqlite3")
    assert index.place("a", "短讯", None).cluster_id == "a"
    assert index.place("b", "短讯", None).cluster_id == "b"
