"""The loopback site server: virtual hosts, proxy-style requests, charsets, validators."""

from __future__ import annotations

import gzip
import http.client
import ssl
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from cyz.demo.server import SiteServer

HOST = "www.sample.gov.cn"
GBK_HOST = "www.gbk-sample.gov.cn"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    root: Path = tmp_path_factory.mktemp("sites")
    site = root / HOST
    (site / "news").mkdir(parents=True)
    (site / "index.html").write_text("<html><body>首页</body></html>", encoding="utf-8")
    (site / "news" / "index.html").write_text("<html>新闻列表</html>", encoding="utf-8")
    (site / "news" / "a.html").write_text("<html>遵义</html>", encoding="utf-8")
    (site / "news" / "removed.html").write_text("<html>old</html>", encoding="utf-8")
    (site / "rss.xml").write_text("<?xml version='1.0'?><rss version='2.0'></rss>",
                                  encoding="utf-8")
    (site / "robots.txt").write_text("User-agent: *\nDisallow: /private/\n", encoding="utf-8")
    (site / "_site.yaml").write_text("files:\n  news/removed.html: {status: 410}\n",
                                     encoding="utf-8")
    gbk = root / GBK_HOST
    gbk.mkdir()
    (gbk / "index.html").write_text("<html><meta charset='gbk'>遵义会议</html>", encoding="utf-8")
    (gbk / "_site.yaml").write_text("charset: gbk\n", encoding="utf-8")
    with SiteServer(root) as srv:
        yield srv


def _get(server: SiteServer, host: str, path: str, headers: dict | None = None):
    """A plain request with a Host header, as a browser behind no proxy sends it."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request("GET", path, headers={"Host": host, **(headers or {})})
    resp = conn.getresponse()
    body = resp.read()
    conn.close()
    return resp.status, dict(resp.getheaders()), body


def test_routes_by_host_header_and_serves_directory_index(server: SiteServer) -> None:
    status, headers, body = _get(server, HOST, "/news/")
    assert status == 200
    assert body.decode("utf-8") == "<html>新闻列表</html>"
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert _get(server, HOST, "/news/nothing.html")[0] == 404
    assert _get(server, "unknown.example.com", "/")[0] == 404
    assert _get(server, HOST, "/../" + GBK_HOST + "/index.html")[0] == 404


def test_absolute_uri_request_line_as_sent_to_a_proxy(server: SiteServer) -> None:
    proxy = urllib.request.ProxyHandler({"http": f"http://{server.address}"})
    opener = urllib.request.build_opener(proxy)
    with opener.open(f"http://{HOST}/news/a.html", timeout=10) as resp:
        assert resp.read().decode() == "<html>遵义</html>"
    assert server.count(host=HOST, path="/news/a.html", status=200) >= 1


def test_https_through_connect_tunnel(server: SiteServer) -> None:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({"https": f"http://{server.address}"}),
        urllib.request.HTTPSHandler(context=ctx),
    )
    with opener.open(f"https://{HOST}/robots.txt", timeout=10) as resp:
        assert resp.headers["Content-Type"].startswith("text/plain")
        assert b"Disallow: /private/" in resp.read()


def test_gbk_site_is_transcoded_and_labelled(server: SiteServer) -> None:
    status, headers, body = _get(server, GBK_HOST, "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=GBK"
    assert body == "<html><meta charset='gbk'>遵义会议</html>".encode("gbk")


def test_status_override_and_content_types(server: SiteServer) -> None:
    assert _get(server, HOST, "/news/removed.html")[0] == 410
    assert _get(server, HOST, "/_site.yaml")[0] == 404
    status, headers, _ = _get(server, HOST, "/rss.xml")
    assert headers["Content-Type"].startswith("application/rss+xml")


def test_conditional_requests_get_304(server: SiteServer) -> None:
    status, headers, body = _get(server, HOST, "/news/a.html")
    etag, modified = headers["ETag"], headers["Last-Modified"]
    assert _get(server, HOST, "/news/a.html", {"If-None-Match": etag})[0] == 304
    assert _get(server, HOST, "/news/a.html", {"If-Modified-Since": modified})[0] == 304
    assert _get(server, HOST, "/news/a.html", {"If-None-Match": '"other"'})[0] == 200
    # The validators are stable for unchanged content.
    assert _get(server, HOST, "/news/a.html")[1]["ETag"] == etag
    assert server.count(host=HOST, path="/news/a.html", status=304) == 2


def test_dynamic_routes_and_direct_url(server: SiteServer) -> None:
    server.add_route("api.sample.cn", "/data/*", lambda req: (
        200, {"Content-Type": "text/plain"}, f"{req.path}?{req.query}".encode()))
    server.add_route("api.sample.cn", "/fixed", (418, {}, b"teapot"))
    status, _, body = _get(server, "api.sample.cn", "/data/x/y?z=1")
    assert (status, body) == (200, b"/data/x/y?z=1")
    assert _get(server, "api.sample.cn", "/fixed")[:3:2] == (418, b"teapot")
    assert server.count(host="api.sample.cn", path="/data/x/y?z=1") == 1
    # A browser can reach a site on the loopback address by naming it in the path.
    with urllib.request.urlopen(server.url_for(HOST, "/news/a.html"), timeout=10) as resp:
        assert resp.read().decode() == "<html>遵义</html>"
    assert "api.sample.cn" in server.hosts and HOST in server.hosts
    assert server.host_map([HOST]) == {HOST: f"127.0.0.1:{server.port}"}


def test_a_broken_route_answers_500(server: SiteServer) -> None:
    def broken(req):
        raise RuntimeError("boom")

    server.add_route("api.sample.cn", "/broken", broken)
    assert _get(server, "api.sample.cn", "/broken")[0] == 500


def test_gzip_files_are_served_as_bytes(server: SiteServer, tmp_path: Path) -> None:
    data = gzip.compress(b"<urlset/>")
    server.add_route(HOST, "/sitemap.xml.gz", (200, {"Content-Type": "application/x-gzip"}, data))
    assert _get(server, HOST, "/sitemap.xml.gz")[2] == data


def test_stop_frees_the_port(tmp_path: Path) -> None:
    srv = SiteServer(tmp_path).start()
    port = srv.port
    srv.stop()
    with pytest.raises((urllib.error.URLError, ConnectionError, OSError)):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
