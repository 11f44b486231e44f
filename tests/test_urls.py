import pytest

from cyz.record import article_id
from cyz.urls import canonical_url


@pytest.mark.parametrize(
    "variant",
    [
        "http://www.cq.gov.cn/ywdt/jrcq/202606/t20260626_15778151.html",
        "https://www.cq.gov.cn/ywdt/jrcq/202606/t20260626_15778151.html#top",
        "https://WWW.CQ.GOV.CN/ywdt/jrcq/202606/t20260626_15778151.html?utm_source=wx&from=timeline",
        "https://www.cq.gov.cn/ywdt/jrcq/202606/t20260626_15778151_app.html",
        "https://www.cq.gov.cn/ywdt/jrcq/202606/t20260626_15778151_wap.html",
        "https://www.cq.gov.cn:443/ywdt//jrcq/202606/t20260626_15778151.html",
    ],
)
def test_copies_of_one_article_share_a_canonical_url(variant):
    assert canonical_url(variant) == "https://www.cq.gov.cn/ywdt/jrcq/202606/t20260626_15778151.html"
    assert article_id(canonical_url(variant)) == article_id(
        "https://www.cq.gov.cn/ywdt/jrcq/202606/t20260626_15778151.html")


def test_pc_copy_is_the_article():
    assert canonical_url("https://www.cqcb.com/shixiang/2026-05-20/6143485_pc.html") == \
        "https://www.cqcb.com/shixiang/2026-05-20/6143485.html"


def test_trailing_index_page_is_the_directory():
    assert canonical_url("http://a.cn/xwdt/zyyw/index.html") == "https://a.cn/xwdt/zyyw/"


def test_identifying_parameters_are_kept_and_sorted():
    url = "https://mp.weixin.qq.com/s?sn=ab12&mid=2&__biz=MzA=&idx=1&chksm=zz&scene=21"
    assert canonical_url(url) == "https://mp.weixin.qq.com/s?__biz=MzA%3D&idx=1&mid=2&sn=ab12"


def test_different_articles_stay_different():
    a = canonical_url("https://x.cn/202412/t20241205_1.html")
    b = canonical_url("https://x.cn/202412/t20241205_2.html")
    assert a != b
    assert canonical_url("https://x.cn/a?id=1") != canonical_url("https://x.cn/a?id=2")
    assert canonical_url("http://x.cn:8080/a") == "https://x.cn:8080/a"


# -- only known tracking parameters go (issue 10) ------------------------------------

def test_parameters_that_may_identify_a_page_are_kept():
    # `source`, `ref`, `from`, `for`, `timestamp`, `_t` name real pages on some sites.
    assert canonical_url("https://x.cn/a/5.html?source=101") != \
        canonical_url("https://x.cn/a/5.html?source=102")
    for query in ("ref=2", "from=xyz", "for=3", "timestamp=1700000000", "_t=9", "refer=a"):
        assert canonical_url(f"https://x.cn/a?{query}") == f"https://x.cn/a?{query}", query


@pytest.mark.parametrize("query", [
    "utm_source=wx", "utm_medium=social&utm_campaign=x", "spm=a2c4.1", "isappinstalled=0",
    "from=singlemessage", "from=timeline", "from=groupmessage", "scene=21", "fbclid=x",
    "gclid=y", "share_token=1", "sharer_sharetime=1", "mpshare=1", "clicktime=1",
    "enterid=1", "wfr=spider", "chksm=zz", "srcid=1", "sessionid=1",
])
def test_known_tracking_parameters_go(query):
    assert canonical_url(f"https://x.cn/a/5.html?id=7&{query}") == "https://x.cn/a/5.html?id=7"


def test_a_source_can_name_more_tracking_parameters():
    url = "https://x.cn/a/5.html?ref=home&Source=feed&id=7"
    assert canonical_url(url) == "https://x.cn/a/5.html?Source=feed&id=7&ref=home"
    assert canonical_url(url, ["ref", "source"]) == "https://x.cn/a/5.html?id=7"


def test_clean_url_drops_tracking_and_fragment_and_keeps_the_rest():
    from cyz.urls import clean_url

    url = "http://X.cn/a/t1_wap.html?b=%E4%B8%AD&utm_source=atom&a=1&from=timeline#c"
    assert clean_url(url) == "http://X.cn/a/t1_wap.html?b=%E4%B8%AD&a=1"
    assert clean_url("https://x.cn/a.html?ref=1", ["ref"]) == "https://x.cn/a.html"
    assert clean_url("https://x.cn/a.html") == "https://x.cn/a.html"
