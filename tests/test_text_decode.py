"""text.decode: encodings, BOMs, control characters and bad inputs, each with its reason code."""

from __future__ import annotations

import json
import tarfile

import pytest

from mmprep.errors import Drop
from mmprep.stage import make_stage
from mmprep.stages.text.encoding import decode_text
from mmprep.testing.text import ENCODED, MIXED, text_corpus
from tests.conftest import build


@pytest.mark.parametrize("name", sorted(ENCODED))
def test_legacy_encodings_decode_to_the_right_text(name):
    data, expected = ENCODED[name]
    stage = make_stage("text.decode")
    sample = stage.process({"__key__": "k", "__meta__": {}, "txt": data})
    assert sample["txt"] == expected
    encoding = sample["__meta__"]["encoding"]["txt"]
    assert encoding == {"gbk": "gb18030", "gbk_short": "gb18030", "gb18030": "gb18030", "big5": "big5",
                        "latin1": "cp1252", "latin1_short": "cp1252", "utf8bom": "utf-8-sig",
                        "shift_jis": "cp932", "euc_kr": "euc_kr"}[name]


WESTERN = ["Ça va?", "Ça va bien, merci.", "Äpfel und Birnen", "¡Hola!", "Œuvre", "ÇA VA", "Às vezes",
           "Ålesund", "Œil", "Šta", "Žena", "Übung macht den Meister", "«Bonjour»", "Ça coûte 5 €"]


@pytest.mark.parametrize("text", WESTERN)
def test_short_western_captions_are_not_read_as_big5_or_shift_jis(text):
    # an accented capital and the ASCII letter after it are one Big5 or cp932 character: 'ド va?', '蛍vre'
    got, encoding = decode_text(text.encode("cp1252"), field="txt")
    assert (got, encoding) == (text, "cp1252")


@pytest.mark.parametrize(("text", "encoding"), [
    ("瞧瞧", "big5"), ("默默", "big5"), ("台灣 Taiwan", "big5"), ("香港 Hong Kong", "big5"),
    ("中文 Big5 text", "big5"), ("中文", "big5"),  # read as GB: 'いゅ', kana where Big5 has 中文
    ("手机 iPhone 壳", "gb18030"), ("テスト test", "cp932"), ("iPhone ケース", "cp932"), ("カメラ Canon EOS", "cp932"),
])
def test_double_byte_text_beside_ascii_words_stays_double_byte(text, encoding):
    assert decode_text(text.encode(encoding), field="txt") == (text, encoding)


def test_utf8_without_bom_and_utf16_with_bom():
    assert decode_text(MIXED[0].encode("utf-8"), field="txt") == (MIXED[0], "utf-8")
    assert decode_text(MIXED[0].encode("utf-16"), field="txt") == (MIXED[0], "utf-16")


def test_random_bytes_are_undecodable():
    with pytest.raises(Drop) as err:
        decode_text(bytes((i * 7919 + 13) % 256 for i in range(4096)), field="txt")
    assert err.value.reason == "text.undecodable" and err.value.field == "txt"


def test_undecodable_can_be_replaced_instead():
    data = b"ok " + bytes((i * 7919 + 13) % 256 for i in range(64))
    sample = make_stage("text.decode", on_undecodable="replace", on_control="keep").process({"__key__": "k",
                                                                                             "txt": data})
    assert sample["txt"] == data.decode("utf-8", errors="replace")
    assert sample["__meta__"]["encoding"]["txt"] == "utf-8-replace"


def test_control_characters_strip_drop_or_keep():
    raw = b"hello\x00world \x1b[31mred\x1b[0m\tok\n"
    stripped = make_stage("text.decode").process({"__key__": "k", "txt": raw})
    assert stripped["txt"] == "helloworld [31mred[0m\tok\n" and stripped["__meta__"]["controls"] == {"txt": 3}
    with pytest.raises(Drop) as err:
        make_stage("text.decode", on_control="drop").process({"__key__": "k", "txt": raw})
    assert err.value.reason == "text.control"
    kept = make_stage("text.decode", on_control="keep").process({"__key__": "k", "txt": raw})
    assert kept["txt"] == raw.decode()


def test_huge_single_line_is_dropped_before_decoding():
    data = b"a" * (50 * 2**20)  # a 50 MB single line
    with pytest.raises(Drop) as err:
        make_stage("text.decode").process({"__key__": "k", "txt": data})
    assert err.value.reason == "text.too_large"


def test_emoji_pass_through():
    text = "夜景 😀👍🏽 ok"
    assert make_stage("text.decode").process({"__key__": "k", "txt": text.encode()})["txt"] == text


def test_bad_files_in_a_build_get_reason_codes(tmp_path):
    reasons = text_corpus(tmp_path / "in", 6, bad=True)
    doc = {"stages": [{"stage": "text.decode"}, {"stage": "text.normalize"}, {"stage": "text.tokenize"}],
           "output": {"required": ["txt"], "max_samples": 100}}
    summary = build(doc, tmp_path / "in", tmp_path / "out", workers=1)
    assert summary["ok"] and summary["samples_out"] == 6 + 2  # good ones + bad_gbk + bad_nul
    errors = [json.loads(line) for line in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert {e["key"]: e["reason"] for e in errors} == reasons
    with tarfile.open(tmp_path / "out" / "shards" / "shard-000000.tar") as tar:
        assert tar.extractfile("bad_gbk.txt").read().decode() == ENCODED["gbk"][1]
        assert tar.extractfile("bad_nul.txt").read().decode() == "helloworld [31mred[0m"


def test_utf8_with_a_stray_bad_byte_or_a_cut_character_stays_utf8():
    """One bad byte made strict UTF-8 fail, and the legacy fallback turned the whole text into mojibake
    (recorded as cp1251). Now the bad bytes become U+FFFD and the rest is kept; legacy texts are still
    read as before."""
    from mmprep.stages.text.encoding import decode_text

    zh = "我们今天去北京天安门广场参观，天气很好。"
    assert decode_text(zh.encode() + b"\xe4", field="txt") == (zh + "\ufffd", "utf-8-replace")
    assert decode_text(zh[:5].encode() + b"\xff" + zh[5:].encode(), field="txt") == (
        zh[:5] + "\ufffd" + zh[5:], "utf-8-replace")
    assert decode_text(zh.encode("gbk"), field="txt") == (zh, "gb18030")
    assert decode_text("café crème brûlée".encode("latin-1"), field="txt") == ("café crème brûlée", "cp1252")
