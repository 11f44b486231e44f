"""WeChat official accounts as a feed source (issue 17, docs/wechat.md).

WeChat has no public list API: a self-hosted RSS bridge (WeWe RSS, Wechat2RSS, RSSHub)
publishes one Atom or RSS feed per account, whose items link to mp.weixin.qq.com
article pages. A WeChat source is therefore plain configuration: `feeds:` on the
bridge, the WeChat in-app `user_agent`, `allowed_domains` naming the bridge and
mp.weixin.qq.com, the article patterns of config/sources.yaml's `wechat-accounts`.

Real crawls (`cyz.crawl.crawl`, both engines) of a loopback bridge and a loopback
mp.weixin.qq.com (over https, through the site server's CONNECT tunnel) whose article
pages are written here in WeChat's markup (`#activity-name`, `#js_name`,
`#js_content` with `visibility: hidden`, `var ct`, `var nickname`, the QR-code and
阅读原文 tail) and answer the article only to a MicroMessenger User-Agent, as the
real site does for many pages. What the site server saw is what was asked.
"""

from __future__ import annotations

import html as htmlmod
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import parse_qs

import pytest
import yaml
from sites import FAST  # tests/ is on sys.path

from cyz.config import ConfigError, Source, load_sources
from cyz.crawl import crawl
from cyz.index.base import Filters, SearchRequest
from cyz.index.query import parse
from cyz.pipelines.dates import CST
from cyz.pipelines.extract import extract_html
from cyz.urls import canonical_url

REPO = Path(__file__).resolve().parents[1]
REALPAGES = REPO / ".." / "shared" / "realpages"
MP = "mp.weixin.qq.com"
OFFSITE = "www.cq.gov.cn"  # a feed item's 阅读原文 target: not the source's domains
HTML = {"Content-Type": "text/html; charset=utf-8"}
T0 = datetime.now(UTC).replace(microsecond=0)
# What a reader sees around every article: none of it belongs in the body.
TAIL = ("预览时标签不可点", "微信扫一扫", "关注该公众号", "阅读原文", "继续滑动看下一个",
        "向上滑动看下一个", "知道了", "使用小程序", "轻点两下取消赞", "在看", "留言", "收藏",
        "长按识别二维码", "请在微信客户端打开链接")


# -- the articles ---------------------------------------------------------------------

@dataclass(frozen=True)
class Article:
    account: str          # the official account (var nickname, #js_name)
    title: str
    ct: int               # var ct: publish time, unix seconds
    paragraphs: tuple[str, ...]
    long_form: bool       # linked as s?__biz=…&mid=…&idx=…&sn=… rather than /s/<id>
    heading: str = "h1"   # pages before 2022 used <h2 class="rich_media_title">
    author: str = ""      # the writer named in the meta bar, if any

    @property
    def published(self) -> str:
        return datetime.fromtimestamp(self.ct, CST).isoformat()


ACCOUNT_A = "黔川渝协作观察"
ACCOUNT_B = "双城圈快报"

ARTICLES = (
    Article(ACCOUNT_A, "遵义与成都签署文旅协作协议 共推红色旅游精品线路", 1732674660, (
        "11月26日，遵义市与成都市在成都签署文化旅游协作协议，双方将围绕长征文化、"
        "酒文化和生态康养，共同打造跨区域红色旅游精品线路。",
        "根据协议，两地将互设旅游推介窗口，联合开发“蓉遵红色研学”产品，推动景区门票、"
        "交通和住宿“一卡通”，力争明年两地互送游客突破三百万人次。",
        "遵义市文体旅游局负责人表示，成渝地区双城经济圈是遵义最大的客源市场，"
        "协议签署后，遵义将把旅游产品设计、营销推广全面对接成都。",
    ), long_form=False, author="刘川"),
    Article(ACCOUNT_A, "川黔渝三地共建赤水河流域横向生态保护补偿机制", 1732520400, (
        "近日，四川、贵州、重庆三地生态环境部门在遵义市赤水市召开联席会议，"
        "商定共同建立赤水河流域横向生态保护补偿机制。",
        "三地将统一监测断面和考核标准，按照水质达标情况互相补偿，并共享流域执法信息，"
        "联合查处跨界环境违法行为。",
        "与会人员认为，赤水河是长江上游重要生态屏障，三地携手治水，"
        "是落实成渝地区双城经济圈建设部署、推动川渝黔协同发展的具体行动。",
    ), long_form=True, heading="h2"),
    Article(ACCOUNT_B, "成渝地区双城经济圈产业协作项目集中签约 遵义十二个项目落地", 1732759200, (
        "11月28日，成渝地区双城经济圈产业协作项目集中签约活动在重庆举行，"
        "遵义市共有十二个项目现场签约，总投资八十六亿元。",
        "签约项目涵盖汽车零部件、电子信息、白酒包材和现代物流等领域，"
        "其中六个项目由重庆、成都企业投资建设，将在遵义经开区和新蒲新区落地。",
        "遵义市投资促进局负责人介绍，今年以来遵义已累计引进成渝地区项目一百二十余个，"
        "承接产业转移的势头持续向好。",
    ), long_form=True),
    Article(ACCOUNT_B, "渝遵班列加密开行 黔北特色农产品两天直达重庆", 1732842000, (
        "记者从相关部门获悉，自12月起，重庆至遵义货运班列由每周三列加密至每周五列，"
        "黔北辣椒、茶叶、竹笋等特色农产品可在两天内直达重庆果园港。",
        "班列开行以来，已累计运送货物两万余吨，带动沿线企业物流成本下降约一成，"
        "成为遵义融入成渝地区双城经济圈的又一条快速通道。",
        "下一步，渝遵两地还将探索“一单制”多式联运，推动班列向成都方向延伸。",
    ), long_form=False),
)


def _short_id(art: Article) -> str:
    # WeChat's /s/<id>: 22 characters of URL-safe base64, derived here from the title.
    import base64
    import hashlib

    return base64.urlsafe_b64encode(hashlib.sha1(art.title.encode()).digest())[:22].decode()


BIZ = {ACCOUNT_A: "MzI0NjYxNTQwMQ==", ACCOUNT_B: "MzA5ODc2NTQzMg=="}


def _long_params(art: Article) -> dict[str, str]:
    import hashlib

    digest = hashlib.md5(art.title.encode()).hexdigest()
    return {"__biz": BIZ[art.account], "mid": str(2650000000 + art.ct % 1000000),
            "idx": "1", "sn": digest}


def article_url(art: Article, *, tracking: str = "") -> str:
    """The article's URL as a feed gives it (`tracking`: `&chksm=…&scene=…#rd` and such)."""
    if art.long_form:
        p = _long_params(art)
        base = f"https://{MP}/s?__biz={p['__biz']}&mid={p['mid']}&idx={p['idx']}&sn={p['sn']}"
        return base + tracking
    return f"https://{MP}/s/{_short_id(art)}" + tracking


def clean_article_url(art: Article) -> str:
    return article_url(art)


def article_page(art: Article) -> str:
    """The page mp.weixin.qq.com answers a WeChat client, in its real markup shape."""
    p = _long_params(art)
    e = htmlmod.escape
    body = "\n".join(
        f'<section style="margin: 0px 8px;"><p style="text-indent: 2em;line-height: 1.75em;">'
        f'<span style="font-size: 16px;letter-spacing: 1px;" leaf="">{e(text)}</span></p></section>'
        for text in art.paragraphs)
    author = (f'<span class="rich_media_meta rich_media_meta_text">{e(art.author)}</span>'
              if art.author else "")
    msg_link = (f"http://mp.weixin.qq.com/s?__biz={p['__biz']}&amp;mid={p['mid']}&amp;idx=1"
                f"&amp;sn={p['sn']}&amp;chksm=ea3c{p['sn'][:12]}#rd")
    return f"""<!DOCTYPE html>
<html>
<head>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<meta http-equiv="X-UA-Compatible" content="IE=edge">
<meta name="viewport" content="width=device-width,initial-scale=1.0,maximum-scale=1.0,user-scalable=0,viewport-fit=cover">
<meta name="description" content="{e(art.paragraphs[0][:54])}">
<meta name="author" content="{e(art.author)}">
<meta property="og:title" content="{e(art.title)}">
<meta property="og:url" content="{msg_link}">
<meta property="og:image" content="https://mmbiz.qpic.cn/mmbiz_jpg/{p['sn']}/0?wx_fmt=jpeg">
<meta property="og:description" content="{e(art.paragraphs[0][:54])}">
<meta property="og:site_name" content="微信公众平台">
<meta property="og:type" content="article">
<meta property="og:article:author" content="{e(art.account)}">
<meta property="twitter:card" content="summary">
<title>{e(art.title)}</title>
<style>.rich_media_title{{font-size:22px;line-height:1.4;margin-bottom:14px}}.rich_media_content{{overflow:hidden;color:#333;font-size:17px}}</style>
<script nonce="1793054922" type="text/javascript">window.logs = {{pagetime: {{}}}}; window.logs.pagetime['html_begin'] = (+new Date());</script>
</head>
<body id="activity-detail" class="zh_CN wx_wap_page mm_appmsg comment_feature appmsg_skin_default appmsg_style_default">
<div id="js_article" class="rich_media">
  <div id="js_top_ad_area" class="top_banner"></div>
  <div class="rich_media_inner">
    <div id="page-content" class="rich_media_area_primary">
      <div class="rich_media_area_primary_inner">
        <div id="img-content" class="rich_media_wrp">
          <{art.heading} class="rich_media_title " id="activity-name">
            {e(art.title)}
          </{art.heading}>
          <div id="meta_content" class="rich_media_meta_list">
            {author}
            <span class="rich_media_meta rich_media_meta_nickname" id="profileBt">
              <a href="javascript:void(0);" class="wx_tap_link js_wx_tap_highlight weui-wa-hotarea" id="js_name">
                {e(art.account)}
              </a>
              <div id="js_profile_qrcode" class="profile_container" style="display:none;">
                <div class="profile_inner"><strong class="profile_nickname">{e(art.account)}</strong>
                  <p class="profile_meta"><label class="profile_meta_label">功能介绍</label>
                  <span class="profile_meta_value">关注川黔渝协作动态</span></p></div>
              </div>
            </span>
            <em id="publish_time" class="rich_media_meta rich_media_meta_text"></em>
            <em id="js_ip_wording_wrp" class="rich_media_meta rich_media_meta_text" style="display: none;">发表于<span id="js_ip_wording"></span></em>
          </div>
          <div class="rich_media_content js_underline_content autoTypeSetting24psection" id="js_content" style="visibility: hidden;">
{body}
<section style="text-align: center;"><img class="rich_pages wxw-img" data-src="https://mmbiz.qpic.cn/mmbiz_png/{p['sn']}/640?wx_fmt=png" data-type="png" style="width: 40%;"></section>
<p style="text-align: center;"><span style="font-size: 12px;color: rgb(136, 136, 136);">长按识别二维码 关注{e(art.account)}</span></p>
<p style="display: none;"><mp-style-type data-value="3"></mp-style-type></p>
          </div>
          <script type="text/javascript" nonce="1793054922">var first_sceen__time = (+new Date());</script>
          <div class="article-tag__error-tips" id="js_tags_preview_toast">预览时标签不可点</div>
          <div id="content_bottom_area" class="rich_media_area_extra">
            <div class="rich_media_extra">
              <a id="js_view_source" class="wx_tap_link js_wx_tap_highlight media_tool_meta meta_primary" href="https://{OFFSITE}/ywdt/">阅读原文</a>
            </div>
            <div class="rich_media_tool" id="js_toobar3">
              <div id="js_read_area3" class="media_tool_meta tips_global_primary meta_primary"><span id="readTxt">阅读</span><span id="readNum3"></span></div>
              <span class="media_tool_meta meta_extra meta_like" id="like3"><span id="js_like_wording">在看</span></span>
            </div>
          </div>
        </div>
      </div>
    </div>
  </div>
</div>
<div id="js_pc_qr_code" class="qr_code_pc_outer">
  <div class="qr_code_pc_inner"><div class="qr_code_pc">
    <img id="js_pc_qr_code_img" class="qr_code_pc_img" src="/mp/qrcode?scene=10000004&amp;size=102&amp;__biz={p['__biz']}&amp;mid={p['mid']}&amp;idx=1&amp;sn={p['sn']}&amp;send_time=">
    <p>微信扫一扫<br>关注该公众号</p>
  </div></div>
</div>
<div class="wx_stream_article_slide_tip">继续滑动看下一个</div>
<div class="weui-dialog" id="js_read_source_guide">
  <div class="weui-dialog__bd">轻触阅读原文</div>
  <div class="weui-dialog__bd"><strong>{e(art.account)}</strong></div>
  <div class="weui-dialog__bd">向上滑动看下一个</div>
  <div class="weui-dialog__ft"><a href="javascript:;" class="weui-dialog__btn">知道了</a></div>
</div>
<div id="js_minipro_dialog" class="weui-desktop-popover">
  <p>微信扫一扫<br>使用小程序</p>
  <div class="weui-dialog__ft"><a href="javascript:;">取消</a> <a href="javascript:;">允许</a></div>
</div>
<div id="unlogin_bottom_bar" class="interaction_bar">
  <span>视频</span> <span>小程序</span> <span>赞，轻点两下取消赞</span> <span>在看，轻点两下取消在看</span>
  <span>分享</span> <span>留言</span> <span>收藏</span>
</div>
<script nonce="1793054922" type="text/javascript">
    var biz = "{p['__biz']}" || "";
    var sn = "{p['sn']}" || "";
    var mid = "{p['mid']}" || "" || "";
    var idx = "1" || "" || "";
    var _copyright_stat = "1";
    var is_follow = "";
    var nickname = htmlDecode("{e(art.account)}");
    var appmsg_type = "9";
    var ct = "{art.ct}";
    var publish_time = "{datetime.fromtimestamp(art.ct, CST):%Y-%m-%d}" || "";
    var user_name = "gh_{p['sn'][:12]}";
    var msg_title = '{e(art.title)}'.html(false);
    var msg_desc = htmlDecode("{e(art.paragraphs[0][:54])}");
    var msg_link = "{msg_link}";
    var msg_source_url = 'https://{OFFSITE}/ywdt/';
    var networkType;
    window.__appmsgCgiData = {{ user_name: "gh_{p['sn'][:12]}", nick_name: "{e(art.account)}" }};
</script>
</body>
</html>
"""


# The page mp.weixin.qq.com answers a client it does not take for WeChat.
OPEN_IN_WECHAT = """<!DOCTYPE html>
<html><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width,initial-scale=1,user-scalable=0">
<title></title>
<link rel="stylesheet" href="//res.wx.qq.com/open/libs/weui/0.4.1/weui.css">
</head><body>
<div class="weui_msg">
  <div class="weui_icon_area"><i class="weui_icon_info weui_icon_msg"></i></div>
  <div class="weui_text_area"><h4 class="weui_msg_title">请在微信客户端打开链接</h4></div>
</div>
</body></html>
""".encode()

# Published the day after the first crawl: the bridge adds it to account B's feed.
LATER = Article(ACCOUNT_B, "川渝黔三地医保异地结算再扩围 遵义新增四十家定点医院", 1732928400, (
    "即日起，遵义市新增四十家定点医疗机构接入川渝黔跨省异地就医直接结算平台，"
    "成都、重庆参保群众在遵义就医可直接刷卡结算。",
    "至此，遵义全市已有二百余家医疗机构实现与成渝地区门诊和住院费用直接结算，"
    "群众跨省就医不再需要先垫付、再回参保地报销。",
    "遵义市医疗保障局表示，将继续推动三地医保经办服务“同城化”，"
    "让成渝地区双城经济圈建设成果更多惠及群众。",
), long_form=False)


# -- mp.weixin.qq.com and the bridge on the site server ---------------------------------

def _key(path: str, query: str = "") -> str:
    """What identifies an article on mp.weixin.qq.com: the /s/<id> path, or the
    __biz, mid, idx and sn parameters of /s (tracking parameters do not matter)."""
    if path.startswith("/s/"):
        return path
    q = parse_qs(query)
    return "&".join(f"{k}={q.get(k, [''])[0]}" for k in ("__biz", "mid", "idx", "sn"))


def _url_key(url: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return _key(parts.path, parts.query)


class WeChatSite:
    """mp.weixin.qq.com: the article for a MicroMessenger User-Agent, the short
    "open it in WeChat" page for any other client; what it was asked is in `asked`."""

    def __init__(self, server) -> None:
        self.server = server
        self.pages: dict[str, bytes] = {}
        server.add_route(MP, "/robots.txt", (200, {"Content-Type": "text/plain"},
                                             b"User-agent: *\nDisallow: /mp/\n"))
        server.add_route(MP, "/s", self._answer)
        server.add_route(MP, "/s/*", self._answer)

    def publish(self, art: Article) -> None:
        self.pages[_url_key(article_url(art))] = article_page(art).encode()

    def _answer(self, req):
        page = self.pages.get(_key(req.path, req.query))
        if page is None:
            return 404, HTML, b"<html><body>404</body></html>"
        if "MicroMessenger" not in (req.header("user-agent") or ""):
            return 200, HTML, OPEN_IN_WECHAT
        return 200, HTML, page

    def asked(self) -> list:
        return [s for s in self.server.requests_for(MP) if s.path != "/robots.txt"]


def _atom(account: str, feed_id: str, base: str, entries: list[tuple[Article | None, str]]) -> bytes:
    """A WeWe RSS-style Atom feed."""
    e = htmlmod.escape
    updated = datetime.fromtimestamp(max(a.ct for a, _ in entries if a), UTC)
    items = []
    for art, link in entries:
        title = art.title if art else "市政府召开常务会议 研究部署川渝黔合作重点工作"
        ct = art.ct if art else 1732600000
        items.append(f"""  <entry>
    <title type="html"><![CDATA[{title}]]></title>
    <id>{e(link)}</id>
    <link href="{e(link)}"/>
    <updated>{datetime.fromtimestamp(ct, UTC):%Y-%m-%dT%H:%M:%S.000Z}</updated>
    <author><name>{e(art.account if art else account)}</name></author>
    <summary type="html"><![CDATA[{(art.paragraphs[0] if art else title)[:40]}]]></summary>
  </entry>""")
    return f"""<?xml version="1.0" encoding="utf-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <id>{base}/feeds/{feed_id}.atom</id>
  <title>{e(account)}</title>
  <updated>{updated:%Y-%m-%dT%H:%M:%S.000Z}</updated>
  <generator>WeWe RSS</generator>
  <link rel="alternate" href="https://{MP}/mp/profile_ext?action=home&amp;__biz={BIZ.get(account, '')}"/>
  <link rel="self" href="{base}/feeds/{feed_id}.atom"/>
  <subtitle>{e(account)}</subtitle>
  <icon>https://mmbiz.qpic.cn/mmbiz_png/{feed_id}/0?wx_fmt=png</icon>
{chr(10).join(items)}
</feed>
""".encode()


def _rss(account: str, feed_id: str, base: str, entries: list[tuple[Article, str]]) -> bytes:
    """An RSS 2.0 feed as Wechat2RSS and RSSHub write them."""
    e = htmlmod.escape
    items = "\n".join(f"""    <item>
      <title><![CDATA[{art.title}]]></title>
      <link>{e(link)}</link>
      <guid isPermaLink="false">{feed_id}-{art.ct}</guid>
      <pubDate>{datetime.fromtimestamp(art.ct, UTC):%a, %d %b %Y %H:%M:%S GMT}</pubDate>
      <author><![CDATA[{art.account}]]></author>
      <description><![CDATA[<p>{art.paragraphs[0]}</p>]]></description>
    </item>""" for art, link in entries)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom">
  <channel>
    <title><![CDATA[{account}]]></title>
    <link>https://{MP}/mp/profile_ext?action=home&amp;__biz={BIZ[account]}</link>
    <atom:link href="{base}/feeds/{feed_id}.rss" rel="self" type="application/rss+xml"/>
    <description><![CDATA[{account} - 微信公众号]]></description>
    <language>zh-cn</language>
    <ttl>60</ttl>
{items}
  </channel>
</rss>
""".encode()


A1, A2, B1, B2 = ARTICLES
FEED_A = "MP_WXS_3941633310"
FEED_B = "MP_WXS_3077514268"
OFFSITE_URL = f"https://{OFFSITE}/ywdt/jrcq/202411/t20241126_30512345.html"


class Bridge:
    """A self-hosted WeWe RSS on a host of its own (port 4000, as its docker image
    serves): an Atom feed for account A, an RSS 2.0 feed for account B, and the
    all-accounts feed that repeats both under other spellings."""

    def __init__(self, server) -> None:
        self.server = server
        self.host = f"wewe-rss-{secrets.token_hex(3)}.cyztest.lan"
        self.base = f"http://{self.host}:4000"
        self.b_items: list[tuple[Article, str]] = [
            (B2, article_url(B2)),
            (B1, article_url(B1, tracking="&chksm=ea3c1f2bdd4b963d5e6f&scene=126"
                                          "&sessionid=1732760000#rd")),
        ]
        server.add_route(self.host, "/robots.txt", (200, {"Content-Type": "text/plain"}, b""))
        server.add_route(self.host, f"/feeds/{FEED_A}.atom", lambda req: (
            200, {"Content-Type": "application/atom+xml; charset=utf-8"}, _atom(
                ACCOUNT_A, FEED_A, self.base, [
                    (A1, article_url(A1)),
                    # 阅读原文-style item on another site: not the source's domains.
                    (None, OFFSITE_URL),
                    (A2, article_url(A2, tracking="&chksm=c2f0a1b2e3d4&scene=27#rd")),
                ])))
        server.add_route(self.host, f"/feeds/{FEED_B}.rss", lambda req: (
            200, {"Content-Type": "application/rss+xml; charset=utf-8"},
            _rss(ACCOUNT_B, FEED_B, self.base, self.b_items)))
        server.add_route(self.host, "/feeds/all.atom", lambda req: (
            200, {"Content-Type": "application/atom+xml; charset=utf-8"}, _atom(
                "WeWe RSS All", "all", self.base, [
                    # The bridge's own page: on the domains, but no article (patterns).
                    (None, f"{self.base}/dash/feeds"),
                    (B1, article_url(B1, tracking="&scene=21#wechat_redirect")),
                    (A1, article_url(A1, tracking="?scene=1&clicktime=1732675000"
                                                  "&enterid=1732675000&from=timeline")),
                ])))

    @property
    def feeds(self) -> list[str]:
        return [f"{self.base}/feeds/{FEED_A}.atom", f"{self.base}/feeds/{FEED_B}.rss",
                f"{self.base}/feeds/all.atom"]

    def asked(self) -> list:
        return [s for s in self.server.requests_for(self.host) if s.path != "/robots.txt"]


def wechat_entry() -> dict:
    """config/sources.yaml's `wechat-accounts` entry, as shipped."""
    raw = yaml.safe_load((REPO / "config" / "sources.yaml").read_text(encoding="utf-8"))
    return next(s for s in raw["sources"] if s["id"] == "wechat-accounts")


def wechat_source(bridge: Bridge, **changes) -> Source:
    """The source an operator writes after docs/wechat.md: the shipped entry's article
    patterns and user agent, the bridge's feeds, both hosts allowed, enabled."""
    shipped = wechat_entry()
    return Source.model_validate({
        "id": "wechat-test", "name": "微信公众号（测试）", "kind": "wechat", "region": "全国",
        "feeds": bridge.feeds,
        "user_agent": shipped["user_agent"],
        "allowed_domains": [bridge.host, MP],
        "article_patterns": shipped["article_patterns"],
        "max_depth": 1,
        "revisit": shipped.get("revisit", {}),
    } | changes)


@pytest.fixture(scope="module")
def wechat(site_server) -> WeChatSite:
    site = WeChatSite(site_server)
    for art in (*ARTICLES, LATER):
        site.publish(art)
    return site


@pytest.fixture
def engine_name(engine, request, monkeypatch) -> str:
    """The `engine` fixture's engine as the crawl opens it (the crawl runs in a child
    process, which reads the engine settings from the environment)."""
    if engine.name == "sqlite":
        return "sqlite"
    monkeypatch.setenv("CYZ_OPENSEARCH_URL", request.getfixturevalue("opensearch_url"))
    monkeypatch.setenv("CYZ_INDEX_PREFIX", engine.articles.removesuffix("-articles"))
    return "opensearch"


def _records(engine, words: str = "") -> dict[str, dict]:
    engine.refresh()
    result = engine.search(SearchRequest(parse(words), Filters(sources=["wechat-test"]),
                                         limit=50))
    return {h.record["url"]: h.record for h in result.hits}


# -- end to end -------------------------------------------------------------------------

def _crawl(bridge: Bridge, data_dir: Path, engine: str, source: Source, now: datetime,
           full: bool = False):
    hosts = [bridge.host, MP, OFFSITE]
    return crawl([source], data_dir=data_dir, engine=engine, full=full,
                 host_map=bridge.server.host_map(hosts), settings_overrides=FAST, now=now)


DELETED = ("<!DOCTYPE html><html><head><meta charset='utf-8'><title></title></head><body>"
           "<div class='weui-msg'><h2 class='weui-msg__title'>该内容已被发布者删除</h2>"
           "</div></body></html>").encode()


def test_wechat_accounts_through_a_bridge_end_to_end(site_server, wechat, engine, engine_name,
                                                     tmp_path):
    bridge = Bridge(site_server)
    source = wechat_source(bridge)
    site_server.reset_counts()
    first = _crawl(bridge, tmp_path, engine_name, source, T0)

    assert not first.failed, first.failed
    assert first.sources["wechat-test"]["new"] == 4 and first.new == 4
    # Each feed once; each article once, by its clean URL, although the all-accounts
    # feed repeats two of them under tracking spellings (chksm, scene, clicktime, #rd).
    assert sorted(s.path for s in bridge.asked()) == sorted(
        f"/feeds/{f}" for f in (f"{FEED_A}.atom", f"{FEED_B}.rss", "all.atom"))
    asked = wechat.asked()
    assert sorted(f"https://{MP}{s.path}" for s in asked) == sorted(
        clean_article_url(a) for a in ARTICLES)
    assert first.url_duplicates == 2
    # The source's WeChat user agent reached mp.weixin.qq.com with every request.
    assert {s.headers.get("user-agent") for s in asked} == {source.user_agent}
    assert "MicroMessenger/" in source.user_agent
    # The 阅读原文-style item on another host was not fetched (nor its robots.txt).
    assert site_server.count(OFFSITE) == 0
    # It and the bridge's own page are no articles by the source's patterns.
    assert first.stats.get("cyz/source/wechat-test/feed_not_articles") == 2

    records = _records(engine)
    assert sorted(records) == sorted(clean_article_url(a) for a in ARTICLES)
    for art in ARTICLES:
        rec = records[clean_article_url(art)]
        assert rec["title"] == art.title
        assert rec["origin"] == art.account  # var nickname / #js_name
        assert rec["published_at"] == art.published  # var ct, to the minute
        assert rec["source_kind"] == "wechat"
        assert rec["text"].splitlines() == list(art.paragraphs), rec["text"]
        for junk in TAIL:
            assert junk not in rec["text"], (junk, art.title)
    assert records[clean_article_url(A1)]["author"] == "刘川"
    assert list(_records(engine, "赤水河 补偿")) == [clean_article_url(A2)]

    # The next night: the feeds are read again, no known article is asked (revisit),
    # and nothing is new.
    site_server.reset_counts()
    second = _crawl(bridge, tmp_path, engine_name, source, T0 + timedelta(days=1))
    assert len(bridge.asked()) == 3
    assert wechat.asked() == []
    assert (second.new, second.updated, second.fetched) == (0, 0, 0)
    assert second.not_due == 4 and second.exit_code == 0

    # The night after, the bridge has one more item: that one, and only it, is asked.
    bridge.b_items.insert(0, (LATER, article_url(LATER, tracking="?scene=126#rd")))
    site_server.reset_counts()
    third = _crawl(bridge, tmp_path, engine_name, source, T0 + timedelta(days=2))
    assert [f"https://{MP}{s.path}" for s in wechat.asked()] == [clean_article_url(LATER)]
    assert third.new == 1 and third.not_due == 4
    rec = _records(engine)[clean_article_url(LATER)]
    assert (rec["title"], rec["origin"], rec["published_at"]) == (
        LATER.title, ACCOUNT_B, LATER.published)
    # The bridge's own page, listed in a feed, was never asked (article_patterns).
    assert all(not s.path.startswith("/dash/") for s in bridge.asked())

    # The author deletes A1: WeChat answers 200 with a notice. A full re-crawl marks the
    # record gone and keeps what was indexed.
    wechat.pages[_url_key(article_url(A1))] = DELETED
    try:
        fourth = _crawl(bridge, tmp_path, engine_name, source, T0 + timedelta(days=3),
                        full=True)
    finally:
        wechat.publish(A1)  # the site is shared with the other engine's run
    assert fourth.gone == 1 and fourth.updated == 0
    rec = _records(engine)[clean_article_url(A1)]
    assert rec["title"] == A1.title and rec["text"].splitlines() == list(A1.paragraphs)
    assert rec["gone_at"]


# -- extraction (library API) -----------------------------------------------------------

def test_js_content_pages_extract_cleanly():
    for art in (*ARTICLES, LATER):
        page = article_page(art)
        # As mp.weixin.qq.com sends it: its script reveals the body after loading.
        assert 'id="js_content" style="visibility: hidden;"' in page
        ex = extract_html(page, url=article_url(art))
        assert ex.title == art.title
        assert ex.origin == art.account
        assert ex.published_at == art.published and ex.published_from == "meta:unix:ct"
        assert ex.text.splitlines() == list(art.paragraphs), ex.text
        assert not any(junk in ex.text for junk in TAIL), ex.text
        assert ex.not_article is None
    # visibility: hidden is not display: none. Hidden that way the body would be lost,
    # and the page's tail taken for the article.
    page = article_page(A1)
    gone = extract_html(page.replace('style="visibility: hidden;"', 'style="display: none;"'))
    assert A1.paragraphs[0] not in gone.text and "轻点两下取消赞" in gone.text
    shown = extract_html(page.replace('style="visibility: hidden;"', 'style="visibility: visible;"'))
    assert shown == extract_html(page)


# The landmarks cyz reads on a WeChat article page; the synthetic pages must have the
# real pages' shape, which realpages/html/wechat__2.html (saved from a browser) shows.
LANDMARKS = ('class="rich_media_title', 'id="activity-name"', 'id="js_name"',
             'id="js_content"', 'class="rich_media_content', 'id="meta_content"',
             'id="publish_time"', 'id="js_pc_qr_code"', "var nickname = ", "var ct = ",
             "var user_name = ", "var msg_title = ", "var msg_link = ",
             "var msg_source_url = ", 'property="og:title"', 'id="js_article"',
             'id="img-content"', 'id="page-content"')


@pytest.mark.skipif(not (REALPAGES / "meta.json").exists(), reason="../shared/realpages absent")
def test_a_real_wechat_page_extracts_cleanly_as_served():
    import json

    real = (REALPAGES / "html" / "wechat__2.html").read_text(encoding="utf-8")
    meta = json.loads((REALPAGES / "meta.json").read_text(encoding="utf-8"))["wechat__2.html"]
    gold = (REALPAGES / "gold" / "wechat__2.txt").read_text(encoding="utf-8").splitlines()
    for mark in LANDMARKS:
        assert mark in real, mark
        assert mark in article_page(A1), mark
    # Saved after its script ran (visible); the server sends it hidden: same extraction.
    visible = 'id="js_content" style="visibility: visible;"'
    assert real.count(visible) == 1
    served = real.replace(visible, 'id="js_content" style="visibility: hidden;"')
    ex = extract_html(served)
    assert ex == extract_html(real)
    assert ex.title == meta["title"]
    assert ex.origin == meta["source"]  # the account
    # The writer of the meta tag, not the photo credit under a picture (摄影：产品经理).
    assert ex.author == "kingname"
    assert ex.published_at[:16] == meta["published"]  # var ct, +08:00
    lines = ex.text.splitlines()
    assert all(line in lines for line in gold), [g for g in gold if g not in lines]
    assert not any(junk in ex.text for junk in TAIL)


# -- configuration ----------------------------------------------------------------------

def test_the_shipped_wechat_entry():
    from cyz.config import load_sources
    from cyz.urls import url_pattern

    [entry] = [s for s in load_sources(REPO / "config" / "sources.yaml")
               if s.id == "wechat-accounts"]
    assert entry.kind == "wechat" and not entry.enabled
    assert "docs/wechat.md" in entry.disabled_reason
    assert "MicroMessenger/" in entry.user_agent and "\n" not in entry.user_agent
    assert entry.revisit.mode == "never"
    patterns = [url_pattern(p) for p in entry.article_patterns]

    def article(url: str) -> bool:
        return any(p.search(url) for p in patterns)

    for art in (*ARTICLES, LATER):
        assert article(article_url(art)), art.title
        assert article(article_url(art, tracking="&chksm=ea3c1f2b&scene=126#rd"
                                   if art.long_form else "?scene=21#wechat_redirect"))
        assert canonical_url(article_url(art, tracking="&scene=27#rd" if art.long_form
                                         else "?scene=27#rd")) == canonical_url(article_url(art))
    for url in (f"https://{MP}/mp/profile_ext?action=home&__biz={BIZ[ACCOUNT_A]}",
                f"https://{MP}/mp/appmsgalbum?__biz={BIZ[ACCOUNT_A]}&action=getalbum",
                f"https://{MP}/s?__biz={BIZ[ACCOUNT_A]}&action=showall", OFFSITE_URL,
                "http://wewe-rss.example.lan:4000/feeds/MP_WXS_1234567890.atom"):
        assert not article(url), url


def test_allowed_domains_must_admit_the_bridge(tmp_path):
    """A feed host left out of allowed_domains would drop the feeds without a trace: a
    config error naming the host instead."""
    entry = {**wechat_entry(), "enabled": True, "feeds": ["http://10.0.0.5:4000/feeds/all.atom"],
             "allowed_domains": ["mp.weixin.qq.com"]}
    path = tmp_path / "sources.yaml"
    path.write_text(yaml.safe_dump({"sources": [entry]}, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError, match="allowed_domains.*'10.0.0.5'"):
        load_sources(path)
    entry["allowed_domains"].append("10.0.0.5")
    path.write_text(yaml.safe_dump({"sources": [entry]}, allow_unicode=True), encoding="utf-8")
    assert load_sources(path)[0].feeds == entry["feeds"]
