"""text.normalize (cleaning) and text.language (routing by script)."""

from __future__ import annotations

import pytest

from mmprep.errors import Drop
from mmprep.stage import make_stage


def norm(text: str, **params) -> str:
    return make_stage("text.normalize", **params).process({"__key__": "k", "txt": text})["txt"]


def test_nfkc_fullwidth_and_whitespace():
    assert norm("ＡＢＣ１２３　ｄｅｆ\u3000  x\n\ny") == "ABC123 def x y"
    assert norm("ﬁne ①") == "fine 1"  # NFKC compatibility forms
    assert norm("你好，世界！真的？（是）") == "你好，世界！真的？（是）"  # CJK punctuation kept by default
    assert norm("你好，世界！", cjk_punctuation="halfwidth") == "你好,世界!"
    assert norm("ＡＢＣ", form="NFC") == "ABC"  # halfwidth without NFKC
    assert norm("ＡＢＣ", form="NFC", halfwidth=False) == "ＡＢＣ"
    assert norm("a  b\n\n c", keep_newlines=True) == "a b\nc"


def test_markup_urls_and_case():
    html = '<p>Hello <b>World</b> &amp; 你好</p><script>var x = 1;</script><!-- c -->'
    assert norm(html, strip_html=True) == "Hello World & 你好"
    md = "# Title\n\n- item **bold** and *it*\n> quote [link text](http://x.y) ![alt](a.png) `code`"
    assert norm(md, strip_markdown=True) == "Title item bold and it quote link text alt code"
    assert norm("see https://example.com/a?b=1，或者 www.x.cn 和 a.b@c.org end", strip_urls=True) \
        == "see ，或者 和 end"
    assert norm("Hello WORLD", lowercase=True) == "hello world"


def test_length_limits_and_empty():
    assert norm("abcdef", max_chars=3) == "abc"
    with pytest.raises(Drop) as err:
        norm("abcdef", max_chars=3, on_too_long="drop")
    assert err.value.reason == "text.too_long"
    with pytest.raises(Drop) as err:
        norm(" \t\n ")
    assert err.value.reason == "text.empty"
    with pytest.raises(Drop) as err:
        norm("ab", min_chars=3)
    assert err.value.reason == "text.too_short"
    with pytest.raises(Drop) as err:
        norm(b"bytes")  # type: ignore[arg-type]
    assert err.value.reason == "text.not_decoded"


@pytest.mark.parametrize(("text", "lang"), [
    ("我们今天去北京大学。", "zh"), ("The quick brown fox.", "en"), ("我用Python写代码，and it runs fast", "mixed"),
    ("今日は東京大学で会議に参加しました", "ja"), ("오늘은 서울에서", "ko"), ("😀 123 !!", "und"),
    ("Сегодня мы были", "other"), ("一只猫 cat", "mixed"), ("一只猫坐在窗台上看着外面的雨 a", "zh"),
])
def test_language_routes_by_script(text, lang):
    sample = make_stage("text.language").process({"__key__": "k", "txt": text})
    assert sample["__meta__"]["lang"]["txt"]["lang"] == lang


def test_language_keep_drops_others():
    stage = make_stage("text.language", keep=["zh", "mixed"])
    assert stage.process({"__key__": "k", "txt": "中文"})["txt"] == "中文"
    with pytest.raises(Drop) as err:
        stage.process({"__key__": "k", "txt": "only english"})
    assert err.value.reason == "text.language"
