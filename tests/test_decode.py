from pathlib import Path

from cyz.pipelines.decode import decode_html, meta_charset, normalize_charset

PAGES = Path(__file__).parent / "pages"
TEXT = "遵义市与重庆市签订战略合作框架协议"


def test_gbk_page_declared_gbk():
    text, encoding = decode_html((PAGES / "gbk.html").read_bytes())
    assert encoding == "gb18030"
    assert "成渝两地共建汽车产业集群" in text


def test_declared_gb2312_but_utf8_bytes_decodes_as_utf8():
    body = (PAGES / "gb2312_utf8.html").read_bytes()
    assert meta_charset(body) == "gb2312"
    text, encoding = decode_html(body)
    assert encoding == "utf-8"
    assert "成渝两地共建汽车产业集群" in text


def test_big5_page():
    text, encoding = decode_html((PAGES / "big5.html").read_bytes())
    assert encoding == "cp950"
    assert "深化區域合作" in text


def test_http_header_beats_meta_when_bytes_agree():
    body = ("<meta charset=big5>" + TEXT).encode("gb18030")
    text, encoding = decode_html(body, http_charset="GBK")
    assert encoding == "gb18030" and TEXT in text


def test_gbk_characters_beyond_gb2312_under_gb2312_label():
    # 镕 is in GBK but not GB2312; a gb2312 label must still decode it.
    body = ("<meta charset=gb2312>朱镕基" + TEXT).encode("gbk")
    text, encoding = decode_html(body)
    assert "朱镕基" in text and encoding == "gb18030"


def test_override_wins_even_over_valid_utf8():
    body = TEXT.encode("utf-8")
    text, encoding = decode_html(body, http_charset="utf-8", override="latin-1")
    assert encoding == "cp1252"
    assert TEXT not in text


def test_bom():
    text, encoding = decode_html(b"\xef\xbb\xbf<meta charset=gbk>" + TEXT.encode("utf-8"))
    assert encoding == "utf-8-sig" and TEXT in text


def test_undeclared_gbk_detected():
    body = (TEXT * 5 + "，成渝地区双城经济圈建设。").encode("gb18030")
    text, encoding = decode_html(body)
    assert TEXT in text
    assert encoding == "gb18030"


def test_never_raises_on_garbage():
    for body in (b"", b"\xff\xfe\xfd\x80\x81", bytes(range(256)) * 3):
        text, encoding = decode_html(body, http_charset="no-such-charset", override="bogus")
        assert isinstance(text, str) and encoding


def test_normalize_charset():
    assert normalize_charset("GB2312") == "gb18030"
    assert normalize_charset('"utf8"') == "utf-8"
    assert normalize_charset("x-unknown") is None
