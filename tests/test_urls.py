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
