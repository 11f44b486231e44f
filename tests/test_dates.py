from datetime import datetime

from cyz.pipelines.dates import CST, find_published, parse_date, state_date, url_date


def test_meta_tag_with_zone():
    meta = {"article:published_time": "2019-09-07T13:43:45+08:00"}
    assert find_published(meta, "", None) == "2019-09-07T13:43:45+08:00"


def test_meta_keys_are_case_insensitive():
    assert find_published({"PubDate": "2024-12-05 10:31"}, "", None) == "2024-12-05T10:31:00+08:00"


def test_date_line_with_time():
    assert find_published({}, "政务   2024-11-27 10:31   贵州", None) == "2024-11-27T10:31:00+08:00"


def test_chinese_date_only():
    assert find_published({}, "发布时间：2024年12月5日", None) == "2024-12-05T00:00:00+08:00"


def test_yearless_date_takes_year_from_image_name():
    text = "12-14 06:22:48 来源:重庆日报\n2020-12-14-003-275626-1.jpg"
    assert find_published({}, text, None, datetime(2024, 1, 1)) == "2020-12-14T06:22:48+08:00"


def test_yearless_date_is_most_recent_not_in_future():
    text = "12-14 06:22 来源:重庆日报"
    assert find_published({}, text, None, datetime(2021, 3, 1, tzinfo=CST)).startswith("2020-12-14")
    assert find_published({}, text, None, datetime(2021, 12, 20, tzinfo=CST)).startswith("2021-12-14")


def test_yearless_date_takes_year_from_url():
    url = "http://example.gov.cn/2019/xw/a.html"
    assert find_published({}, "09-30 22:46", url, datetime(2024, 1, 1)).startswith("2019-09-30")


def test_url_patterns():
    expected = datetime(2024, 12, 5, tzinfo=CST)
    for url in (
        "http://www.example.gov.cn/xwdt/202412/t20241205_86.html",
        "http://www.example.com/2024-12/05/c_1130.htm",
        "http://www.example.com/news/20241205/a.html",
        "http://www.example.com/2024/12/5/a.html",
        "http://cq.example.com/n2/2024/1205/c365403-1.html",
    ):
        assert url_date(url) == expected, url
    assert find_published({}, "", "http://x.cn/a/t20241205_1.html") == "2024-12-05T00:00:00+08:00"


def test_text_date_on_url_day_wins_for_time():
    url = "http://x.cn/a/t20241205_1.html"
    text = "今天是2024年12月9日\n2024-12-05 09:00 来源：遵义日报"
    assert find_published({}, text, url) == "2024-12-05T09:00:00+08:00"


def test_unix_timestamp_and_future_dates_ignored():
    assert find_published({"unix:ct": "1732674660"}, "", None) == "2024-11-27T10:31:00+08:00"
    reference = datetime(2020, 1, 1, tzinfo=CST)
    assert find_published({}, "2030-01-01 10:00", None, reference) is None


def test_parse_date_does_not_mistake_time_for_zone():
    when, has_time = parse_date("2007-08-20-23:59:59")
    assert when.utcoffset().total_seconds() == 8 * 3600 and when.day == 20


# ---------------------------------------------------------------- embedded state and relative labels

STATE = """
window.__STATE__ = {"related": [{"title": "另一条消息", "publishDate": "2019-09-05T02:00:00.000Z"}],
  "item": {"createdAt": "2019-09-07T08:29:41.278Z", "publishDate": "2019-09-07T00:31:40.109Z",
           "title": "遵义与重庆签订合作协议", "summary": "……"},
  "more": [{"title": "第三条", "publish_time": 1567000000}]}
"""


def test_state_date_nearest_to_title_converted_to_beijing_time():
    # Only a relative label is visible: the state's date beside the title wins.
    got = find_published({}, "遵义与重庆签订合作协议\n昨天", None, state=STATE,
                         title="遵义与重庆 签订合作协议", fetched=datetime(2026, 1, 1, tzinfo=CST))
    assert got == "2019-09-07T08:31:40+08:00"


def test_state_date_loses_to_a_visible_date_and_needs_an_anchor():
    assert find_published({}, "2024-12-05 10:31 来源：遵义日报", None, state=STATE,
                          title="遵义与重庆签订合作协议").startswith("2024-12-05")
    # No title in the state and dates on several days: no evidence which is ours.
    assert state_date(STATE, "完全不同的标题文字") is None
    assert state_date('{"pubDate": 1733365860}', "")[0] == datetime(2024, 12, 5, 10, 31, tzinfo=CST)
    assert state_date('var data = {ctime: "2024-12-05 10:31:00"};', "")[0].day == 5


def test_relative_labels_count_back_from_fetch_time():
    fetched = datetime(2024, 12, 5, 10, 30, tzinfo=CST)
    assert find_published({}, "贵州日报 刚刚", None, fetched=fetched) == "2024-12-05T10:30:00+08:00"
    assert find_published({}, "15分钟前", None, fetched=fetched) == "2024-12-05T10:15:00+08:00"
    assert find_published({}, "来源：遵义日报 3小时前", None, fetched=fetched) == "2024-12-05T07:30:00+08:00"
    assert find_published({}, "昨天 08:15", None, fetched=fetched) == "2024-12-04T08:15:00+08:00"
    assert find_published({}, "前天", None, fetched=fetched).startswith("2024-12-03")
    # A sentence in the body is not a label.
    assert find_published({}, "三天前，2天前遵义与重庆签订了合作协议。", None, fetched=fetched) is None
    # An absolute date anywhere beats a relative label.
    assert find_published({}, "昨天 08:15\n2024-12-01 09:00", None, fetched=fetched).startswith("2024-12-01")


def test_the_byline_date_beats_a_meta_tag_of_another_day_and_says_so():
    from cyz.pipelines.dates import decide_published

    meta = {"publishdate": "2024-09-30"}
    got = decide_published(meta, "", None, byline="汇川区召开对接会\n发布时间：2024-09-26 16:40 来源：汇川区")
    assert (got.iso, got.evidence) == ("2024-09-26T16:40:00+08:00", "byline")
    same_day = decide_published(meta, "", None, byline="标题\n2024-09-30 08:00")
    assert (same_day.iso, same_day.evidence) == ("2024-09-30T08:00:00+08:00", "byline")
    # An update stamp under the headline is not the publication date.
    updated = decide_published(meta, "", None, byline="标题\n更新时间：2024-10-02 09:00")
    assert updated.evidence == "meta:publishdate"


def test_state_keys_are_matched_by_their_words():
    assert state_date('{"createTime":"2024-07-02 18:05:11"}', "")[0].day == 2
    assert state_date('{"addtime":1719914711}', "")[0].month == 7
    assert state_date('{"updateTime":"2024-07-09 10:00:00"}', "") is None


def test_htmldate_votes_only_when_our_rules_find_nothing():
    from cyz.pipelines.dates import decide_published

    html = ('<html><head><script type="application/ld+json">{"@graph":[{"@type":"NewsArticle",'
            '"datePublished":"2023-05-04T10:00:00+08:00"}]}</script></head><body><p>正文</p></body></html>')
    got = decide_published({}, "", None, html=html)
    assert got.iso.startswith("2023-05-04") and got.evidence == "htmldate"
    assert decide_published({}, "2024-01-02 09:00", None, html=html).evidence == "text"
