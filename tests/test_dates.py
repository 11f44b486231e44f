from datetime import datetime

from cyz.pipelines.dates import CST, find_published, parse_date, url_date


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
