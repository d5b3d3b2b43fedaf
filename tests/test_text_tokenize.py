"""text.tokenize against the libraries it wraps (same text, same tokens), stop words and sentences."""

from __future__ import annotations

import random
import subprocess
import sys

import jieba
import jieba.posseg
import pytest
import spacy
from nltk.stem import PorterStemmer, SnowballStemmer
from nltk.tokenize import RegexpTokenizer, TreebankWordTokenizer, WordPunctTokenizer

from mmprep.errors import ConfigError, Drop
from mmprep.stage import make_stage
from mmprep.testing.text import EN, MIXED, ZH, run_stages


def tokens(text: str, **params) -> dict:
    return make_stage("text.tokenize", **params).process({"__key__": "k", "txt": text})["tokens.json"]


@pytest.fixture(scope="module")
def blank_en():
    return spacy.blank("en")


def test_chinese_equals_jieba_lcut_in_every_mode():
    text = "".join(ZH)
    assert tokens(text)["tokens"] == jieba.lcut(text)
    assert tokens(text, language="zh")["tokens"] == jieba.lcut(text)
    assert tokens(text, jieba_mode="full")["tokens"] == jieba.lcut(text, cut_all=True)
    assert tokens(text, jieba_mode="search")["tokens"] == jieba.lcut_for_search(text)
    assert tokens(text, jieba_hmm=False)["tokens"] == jieba.lcut(text, HMM=False)


def test_jieba_user_dictionary(tmp_path):
    text = "蓝鲸数据平台发布了新版本"
    assert "蓝鲸数据平台" not in jieba.lcut(text)
    user = tmp_path / "user.dict"
    user.write_text("蓝鲸数据平台 10 nz\n", encoding="utf-8")
    got = tokens(text, user_dict=str(user))["tokens"]
    assert got[0] == "蓝鲸数据平台" and "".join(got) == text
    tk = jieba.Tokenizer()
    tk.load_userdict(str(user))
    assert got == tk.lcut(text)
    assert "蓝鲸数据平台" not in jieba.lcut(text)  # the global jieba is untouched
    with pytest.raises(ConfigError) as err:
        make_stage("text.tokenize", user_dict=str(tmp_path / "missing.dict"))
    assert err.value.key == "user_dict"


def test_english_equals_spacy_blank_tokenizer(blank_en):
    for text in EN:
        assert tokens(text)["tokens"] == [t.text for t in blank_en.tokenizer(text)]
    text = " ".join(EN)
    assert tokens(text, language="en")["tokens"] == [t.text for t in blank_en.tokenizer(text)]


# whitespace that spaCy turns into tokens (leading, doubled, tab, newline, no-break, ideographic, line
# separator) and what it does not (one space after a word, a trailing space), plus non-space invisibles
WHITESPACE_CASES = [" The cat.", "The  cat.", "The cat. ", "The\tcat", "The\ncat", "The\u00a0cat", "The\u3000cat",
                    "The\u2028cat", "The\x1ccat", "a \u200bb", "x \x00y", "emoji 😀 ok", "  ", "\n", "tail  "]


def test_english_whitespace_equals_spacy_without_space_tokens(blank_en):
    """The fast path (no filtering when no whitespace token can occur) gives spaCy's tokens minus the
    whitespace ones, whatever the whitespace; and never skips a whitespace token that spaCy makes."""
    from mmprep.text.tokenizers import English, no_space_tokens

    eng = English()
    eng.load()  # else the first text takes the loading (slow) path
    rng = random.Random(5)
    alphabet = ["a", "b", "I", ".", "'", "-", " ", " ", "\t", "\n", "\r", "\u00a0", "\u3000", "\x1f", "😀", "é"]
    fuzz = ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 12))) for _ in range(3000)]
    fast = 0
    for text in WHITESPACE_CASES + fuzz + EN:
        doc = blank_en.tokenizer(text)
        assert eng(text) == ([t.text for t in doc if not t.is_space], None), repr(text)
        if no_space_tokens(text):
            fast += 1
            assert not any(t.is_space for t in doc), repr(text)
    assert fast > 200  # the fuzz reaches the fast path too (286 of 3,000 with this seed)
    assert no_space_tokens(EN[1]) and not no_space_tokens("The  cat") and not no_space_tokens(" The")


def test_text_fields_are_the_samples_text_fields():
    from mmprep.sample import fields_of
    from mmprep.stage import make_stage as make
    from mmprep.stages.text.fields import has_text, text_fields

    samples = [{"__key__": "k", "txt": "a"}, {"__key__": "k", "jpg": b"", "caption": "a", "txt": "b"},
               {"__key__": "k", "en.TXT": "a", "text": "b", "txt.json": {}}, {"__key__": "k", "jpg": b""},
               {"__key__": "k", "__meta__": {}, "wav": b"", "de.caption": "x"}]
    base = make("text.sentences")  # the generic Stage.applies
    for sample in samples:
        assert text_fields(sample, None) == fields_of(sample, "text")
        assert has_text(sample) == base.applies(sample) == make("text.tokenize").applies(sample)
    assert text_fields(samples[1], ["txt", "srt"]) == ["txt"]
    assert text_fields(samples[2], None) == ["en.TXT", "text"]


def test_spacy_language_checked_without_importing_spacy():
    """The driver checks the config before a build; importing spaCy there (with thinc and torch) would
    delay the workers, which import it anyway."""
    code = ("import sys; from mmprep.config import instantiate, parse_pipeline; "
            "instantiate(parse_pipeline({'stages': [{'stage': 'text.tokenize', 'spacy_lang': 'de'}]})); "
            "print(sorted(m for m in ('spacy', 'thinc', 'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
    # a Chinese-only config sets up jieba alone: no spaCy in its workers either
    code = ("import sys; from mmprep.stage import make_stage; "
            "doc = make_stage('text.tokenize', language='zh').process({'__key__': 'k', 'txt': '我们 go'}); "
            "print(doc['tokens.json']['tokens'], 'spacy' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['我们', 'go'] False"
    for lang in ("../en", "EN", "zz"):
        with pytest.raises(ConfigError) as err:
            make_stage("text.tokenize", spacy_lang=lang)
        assert err.value.key == "spacy_lang"
    assert make_stage("text.tokenize", spacy_lang="de").process({"__key__": "k", "txt": "Wir gehen."})[
        "tokens.json"] == {"tokens": ["Wir", "gehen", "."]}


def test_nltk_tokenizers_and_stemmers():
    text = EN[1]
    assert tokens(text, en_tokenizer="nltk_treebank")["tokens"] == TreebankWordTokenizer().tokenize(text)
    assert tokens(text, en_tokenizer="nltk_wordpunct")["tokens"] == WordPunctTokenizer().tokenize(text)
    assert tokens(text, en_tokenizer="nltk_regexp", regexp=r"[A-Za-z]+")["tokens"] \
        == RegexpTokenizer(r"[A-Za-z]+").tokenize(text)
    words = "Running runners easily fairly generously".split()
    assert tokens(" ".join(words), en_tokenizer="nltk_treebank", stemmer="porter")["tokens"] \
        == [PorterStemmer().stem(w) for w in words]
    assert tokens(" ".join(words), en_tokenizer="nltk_treebank", stemmer="snowball")["tokens"] \
        == [SnowballStemmer("english").stem(w) for w in words]


def test_mixed_text_runs_go_to_their_tokenizer(blank_en):
    text = MIXED[0]  # 我用Python写代码，and it runs fast 😀
    got = tokens(text)["tokens"]
    expected = (jieba.lcut("我用") + [t.text for t in blank_en.tokenizer("Python")] + jieba.lcut("写代码，")
                + [t.text for t in blank_en.tokenizer("and it runs fast 😀") if not t.is_space])
    assert got == expected
    assert got[-1] == "😀" and "runs" in got


def test_pos_tags_from_jieba_posseg():
    text = ZH[2]
    doc = tokens(text, pos=True)
    pairs = [(p.word, p.flag) for p in jieba.posseg.lcut(text)]
    assert list(zip(doc["tokens"], doc["pos"], strict=True)) == pairs
    mixed = tokens("我爱Python", pos=True)
    assert mixed == {"tokens": ["我", "爱", "Python"], "pos": ["r", "v", None]}  # no English tagger installed
    with pytest.raises(ConfigError) as err:
        make_stage("text.tokenize", pos=True, jieba_mode="full")
    assert err.value.key == "pos"


def test_installed_spacy_pipeline_gives_english_pos(tmp_path):
    nlp = spacy.blank("en")  # a pipeline made here and saved: spaCy loads it by path like an installed package
    ruler = nlp.add_pipe("attribute_ruler")
    ruler.add([[{"LOWER": "cat"}]], {"POS": "NOUN"})
    ruler.add([[{"LOWER": "sits"}]], {"POS": "VERB"})
    nlp.to_disk(tmp_path / "tiny_en")
    doc = tokens("The cat sits 在窗台上", pos=True, spacy_model=str(tmp_path / "tiny_en"))
    assert doc["tokens"] == ["The", "cat", "sits"] + jieba.lcut("在窗台上")
    assert doc["pos"][:3] == [None, "NOUN", "VERB"]
    assert doc["pos"][3:] == [p.flag for p in jieba.posseg.lcut("在窗台上")]


def test_derived_field_names_and_limits():
    stage = make_stage("text.tokenize", max_chars=20)
    sample = stage.process({"__key__": "k", "txt": "北京", "caption": "hello there"})
    assert sample["tokens.json"] == {"tokens": ["北京"]} and sample["caption.tokens.json"] == {"tokens": ["hello",
                                                                                                         "there"]}
    assert sample["__meta__"]["tokenized"]["txt"] == {"route": "zh", "tokens": 1}
    with pytest.raises(Drop) as err:
        stage.process({"__key__": "k", "txt": "x" * 21})
    assert (err.value.reason, err.value.field) == ("text.too_long", "tokens.json")
    with pytest.raises(Drop) as err:
        stage.process({"__key__": "k", "txt": " "})
    assert err.value.reason == "text.no_tokens"


def test_stopwords_from_spacy_lists_and_a_file(tmp_path):
    from spacy.lang.en.stop_words import STOP_WORDS as EN_STOP
    from spacy.lang.zh.stop_words import STOP_WORDS as ZH_STOP

    tok = make_stage("text.tokenize", pos=True)
    text = "我们的猫在窗台上。The cat is on the window!"
    before = tok.process({"__key__": "k", "txt": text})["tokens.json"]
    after = make_stage("text.stopwords").process({"__key__": "k", "tokens.json": before})["tokens.json"]
    expected = [(t, p) for t, p in zip(before["tokens"], before["pos"], strict=True)
                if t.lower() not in EN_STOP and t.lower() not in ZH_STOP]
    assert list(zip(after["tokens"], after["pos"], strict=True)) == expected
    assert "的" not in after["tokens"] and "The" not in after["tokens"] and "cat" in after["tokens"]

    words = tmp_path / "stop.txt"
    words.write_text("# my list\n猫\nwindow\n", encoding="utf-8")
    custom = make_stage("text.stopwords", lists=[], file=str(words), punctuation=True)
    got = custom.process({"__key__": "k", "tokens.json": before})["tokens.json"]["tokens"]
    assert got == [t for t in before["tokens"] if t not in {"猫", "window", "。", "!"}]
    with pytest.raises(Drop) as err:
        make_stage("text.stopwords", drop_empty=True).process({"__key__": "k", "tokens.json": {"tokens": ["the"]}})
    assert err.value.reason == "text.no_tokens"


def test_sentences_in_both_languages():
    text = "我们去北京。你呢？“好的！”他说。Mr. Smith went to Washington. He said hi! OK"
    sample = make_stage("text.sentences").process({"__key__": "k", "txt": text})
    assert sample["sentences.json"] == ["我们去北京。", "你呢？", "“好的！”", "他说。", "Mr. Smith went to Washington.",
                                        "He said hi!", "OK"]


def test_pipeline_decode_to_tokens():
    stages = [make_stage(n) for n in ("text.decode", "text.normalize", "text.language", "text.tokenize")]
    sample = run_stages(stages, {"__key__": "k", "txt": "ＰＹＴＨＯＮ很好用。".encode("gbk")})
    assert sample["txt"] == "PYTHON很好用。" and sample["tokens.json"]["tokens"][0] == "PYTHON"
    assert sample["__meta__"]["lang"]["txt"]["lang"] == "mixed"


@pytest.mark.parametrize("en_tokenizer", ["spacy", "nltk_wordpunct", "nltk_treebank"])
def test_emoji_sequences_stay_one_token_and_no_invisible_token_is_left(en_tokenizer):
    """A ZWJ family, a skin tone, a flag with its variation selector, a keycap: one token each, in English,
    Chinese and mixed text; before, the joiners came out as tokens of their own (and into vocab.json)."""
    family, thumbs, flag, keycap = "👨\u200d👩\u200d👧", "👍🏽", "🏳\ufe0f\u200d🌈", "1\ufe0f\u20e3"
    got = tokens(f"family {family} likes {thumbs} and {flag} {keycap} ok", en_tokenizer=en_tokenizer)["tokens"]
    assert [family, thumbs, flag, keycap] == [t for t in got if t in (family, thumbs, flag, keycap)]
    assert not any(ch in "\u200d\ufe0f" for t in got if t not in (family, flag, keycap) for ch in t)
    assert tokens(f"北京烤鸭{family}好吃")["tokens"][-2:] == [family, "好吃"]
    assert tokens(f"\u200d{family} 我爱北京 hello\u200d")["tokens"] == [family, "我", "爱", "北京", "hello\u200d"]


def test_stopwords_take_emoji_sequences_as_symbols():
    stops = make_stage("text.stopwords", punctuation=True)
    stops.setup()
    text = "family 👨\u200d👩\u200d👧 flag 🏳\ufe0f\u200d🌈 ok 👍🏽"
    out = run_stages([_tokenizer(), stops], {"__key__": "k", "txt": text, "__meta__": {}})
    assert out["tokens.json"]["tokens"] == ["family", "flag", "ok"]


def _tokenizer():
    stage = make_stage("text.tokenize")
    stage.setup()
    return stage
