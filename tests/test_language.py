from cyz.pipelines.language import detect_language
from cyz.pipelines.script import detect_script, to_simplified


def test_to_simplified():
    assert to_simplified("深化區域合作 服務國家戰略") == "深化区域合作 服务国家战略"
    assert to_simplified("遵义") == "遵义"
    assert to_simplified("") == ""


def test_detect_script_short_titles():
    assert detect_script("遵義市") == "hant"
    assert detect_script("遵义市") == "hans"
    assert detect_script("川渝共建先進裝備制造產業集群") == "hant"
    assert detect_script("川渝共建先进装备制造产业集群") == "hans"


def test_detect_script_none_without_han():
    assert detect_script("") is None
    assert detect_script("Hello world 2024") is None
    assert detect_script("中") is None


def test_detect_language_chinese_scripts():
    assert detect_language("贵州省遵义市与重庆市签订战略合作协议。") == "zh-cn"
    assert detect_language("貴州省遵義市與重慶市簽訂戰略合作協議。") == "zh-tw"
    # Short traditional text that langdetect alone tends to call zh-cn.
    assert detect_language("遵義會議") == "zh-tw"


def test_detect_language_other_and_empty():
    assert detect_language("The delegation signed a cooperation agreement in Chengdu.") == "en"
    assert detect_language("") is None
    assert detect_language("   \n ") is None


def test_detect_language_deterministic_on_long_text():
    text = "The Chengdu-Chongqing economic circle links two large cities in western China. " * 60
    assert len({detect_language(text) for _ in range(3)}) == 1
