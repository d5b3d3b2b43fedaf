"""Word tokenizers for Chinese (jieba) and English (spaCy blank or installed pipeline, NLTK), and routing.

:class:`Router` holds one Chinese and one English tokenizer and sends each text (or, for mixed text,
each run) to the right one. Every tokenizer returns ``(tokens, tags)``: ``tags`` is a list of POS
tags aligned with ``tokens`` (``None`` entries where no tagger ran) or ``None`` when POS was not
asked. Whitespace-only tokens are always dropped (jieba and spaCy both emit them for runs of spaces).
An emoji sequence that the tokenizers split (a family joined by ZWJ, a skin tone, a flag with its
variation selector) is joined back into one token, and tokens of invisible characters alone are dropped
(:func:`join_emoji`).

Nothing here downloads: a named spaCy pipeline must be installed, NLTK tokenizers are the ones that
need no data package unless :func:`nltk_resource` says which one is missing.
"""

from __future__ import annotations

import importlib.util
import logging
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmprep.errors import ConfigError, MissingDependency
from mmprep.text.script import han_runs, lang_of

Tagged = tuple[list[str], list[str | None] | None]

# What continues an emoji sequence: zero width joiner, variation selectors, skin tones, keycap, tags
_GLUE = "\u200d\ufe00-\ufe0f\U0001f3fb-\U0001f3ff\u20e3\U000e0020-\U000e007f"
_GLUED = re.compile(f"[{_GLUE}]")
_INVISIBLE = re.compile(f"[{_GLUE}\u200b\u200c\u2060\ufeff]+")

# NLTK tokenizers that need a data package, and which one (nltk.data.find path, downloader id).
NLTK_NEEDS = {"nltk_word": ("tokenizers/punkt_tab/english/", "punkt_tab")}


def nltk_resource(path: str, package: str, key: str) -> None:
    """Raise MissingDependency (exit 2 in the CLI) unless the NLTK data ``path`` is installed."""
    import nltk

    try:
        nltk.data.find(path)
    except LookupError:
        raise MissingDependency(key, f"the NLTK data package {package!r}",
                                f"python -m nltk.downloader {package}, on a machine with internet") from None


def spacy_pipeline_check(name: str, key: str) -> None:
    import spacy.util

    if Path(name).exists() or spacy.util.is_package(name):
        return
    raise MissingDependency(key, f"the spaCy pipeline {name!r}",
                            f"pip install {name} or python -m spacy download {name}; nothing is downloaded at run time")


def spacy_lang_check(lang: str, key: str) -> None:
    """Raise ConfigError unless spaCy has the blank language ``lang``.

    Runs in the driver before a build, whose workers import spaCy themselves: so a language that
    spaCy ships (``spacy/lang/<lang>/``) is found without importing spaCy, which costs ~1.5 s of one
    core (it imports thinc and torch) before the workers can start. Anything else (a language that a
    package registers) goes through ``spacy.util.get_lang_class``.
    """
    spec = importlib.util.find_spec("spacy")
    if spec is None:
        raise MissingDependency(key, "spaCy", "pip install spacy")
    if lang.isalpha() and lang.isascii() and lang.islower():  # a language code, never a path
        for root in spec.submodule_search_locations or ():
            if (Path(root) / "lang" / lang / "__init__.py").is_file():
                return
    import spacy.util

    try:
        spacy.util.get_lang_class(lang)
    except ImportError:
        raise ConfigError(key, f"spaCy has no language {lang!r}") from None


def no_space_tokens(text: str) -> bool:
    """True when spaCy's tokenizer cannot give a whitespace token for ``text``, so none need filtering.

    spaCy splits on whitespace runs and folds a run that is exactly one ``" "`` after a word into that
    word (``Token.whitespace_``); every other run (leading, two or more characters, or a tab, newline,
    no-break space...) becomes a whitespace token. ``str.isprintable()`` is False for every whitespace
    character but ``" "`` (they are all in the Unicode categories Z* or Cc), so printable text without
    ``"  "`` that does not start with ``" "`` has only single spaces after words. Costs well under a
    microsecond for a caption, against ~1 us per 10 tokens for checking ``Token.is_space``.
    """
    return text.isprintable() and "  " not in text and not text.startswith(" ")


def _jieba_tokenizer(user_dict: str | None) -> Any:
    """jieba's shared default tokenizer, or one private tokenizer per user dictionary (per process)."""
    import jieba

    key = None if user_dict is None else str(Path(user_dict).resolve())
    if key is None:
        jieba.dt.initialize()
        return jieba.dt
    stamp = (key, Path(key).stat().st_mtime_ns)
    tok = _JIEBA.get(stamp)
    if tok is None:
        tok = jieba.Tokenizer()
        tok.initialize()
        tok.load_userdict(key)
        _JIEBA[stamp] = tok
    return tok


_JIEBA: dict[tuple[str, int], Any] = {}


@dataclass
class Jieba:
    """jieba in ``precise`` (``lcut``), ``full`` (``lcut(cut_all=True)``) or ``search`` (``lcut_for_search``) mode.

    With a user dictionary, a private ``jieba.Tokenizer`` so the words never leak into other stages.
    POS (``jieba.posseg``) exists for the precise mode only.
    """

    mode: str = "precise"
    hmm: bool = True
    user_dict: str | None = None
    pos: bool = False
    _tok: Any = field(default=None, repr=False)
    _pos: Any = field(default=None, repr=False)

    def load(self) -> None:
        import jieba

        jieba.setLogLevel(logging.WARNING)
        self._tok = _jieba_tokenizer(self.user_dict)
        if self.pos:
            import jieba.posseg

            self._pos = jieba.posseg.POSTokenizer(self._tok)

    def __call__(self, text: str) -> Tagged:
        if self._tok is None:
            self.load()
        if self._pos is not None:
            pairs = [(p.word, p.flag) for p in self._pos.lcut(text, HMM=self.hmm) if not p.word.isspace()]
            return [w for w, _ in pairs], [t for _, t in pairs]
        if self.mode == "full":
            words = self._tok.lcut(text, cut_all=True, HMM=self.hmm)
        elif self.mode == "search":
            words = self._tok.lcut_for_search(text, HMM=self.hmm)
        else:
            words = self._tok.lcut(text, HMM=self.hmm)
        return [w for w in words if w and not w.isspace()], None


@dataclass
class English:
    """spaCy (blank ``lang`` tokenizer, or an installed pipeline ``model``) or an NLTK tokenizer.

    ``backend``: ``spacy``, ``nltk_treebank``, ``nltk_wordpunct``, ``nltk_regexp`` (``pattern``) or
    ``nltk_word`` (needs the punkt_tab data). ``stemmer``: ``porter`` or ``snowball`` (NLTK, no data).
    POS tags come only from a spaCy pipeline that has a tagger; otherwise they are ``None``.
    """

    backend: str = "spacy"
    lang: str = "en"
    model: str | None = None
    pattern: str = r"\w+|[^\w\s]+"
    stemmer: str | None = None
    pos: bool = False
    _nlp: Any = field(default=None, repr=False)
    _fn: Any = field(default=None, repr=False)
    _stem: Any = field(default=None, repr=False)
    _blank: Any = field(default=None, repr=False)  # spaCy's blank tokenizer when nothing else is asked

    def load(self) -> None:
        if self.backend == "spacy":
            import spacy

            self._nlp = spacy.load(self.model) if self.model else spacy.blank(self.lang)
            if not (self.model or self.stemmer or self.pos):
                self._blank = self._nlp.tokenizer
        elif self.backend == "nltk_treebank":
            from nltk.tokenize import TreebankWordTokenizer

            self._fn = TreebankWordTokenizer().tokenize
        elif self.backend == "nltk_wordpunct":
            from nltk.tokenize import WordPunctTokenizer

            self._fn = WordPunctTokenizer().tokenize
        elif self.backend == "nltk_regexp":
            from nltk.tokenize import RegexpTokenizer

            self._fn = RegexpTokenizer(self.pattern).tokenize
        elif self.backend == "nltk_word":
            from nltk.tokenize import word_tokenize

            self._fn = word_tokenize
        else:
            raise ConfigError("en", f"unknown English tokenizer {self.backend!r}")
        if self.stemmer == "porter":
            from nltk.stem import PorterStemmer

            self._stem = PorterStemmer().stem
        elif self.stemmer == "snowball":
            from nltk.stem import SnowballStemmer

            self._stem = SnowballStemmer("english").stem

    def __call__(self, text: str) -> Tagged:
        blank = self._blank
        if blank is not None and no_space_tokens(text):  # the common case, kept short: ~25 us of spaCy per caption
            return [t.orth_ for t in blank(text)], None  # orth_ is what Token.text returns, one call less
        if self._nlp is None and self._fn is None:
            self.load()
        tags: list[str | None] | None = None
        if self._nlp is not None:
            if self.model:
                kept = [t for t in self._nlp(text) if not t.is_space]
                tags = [t.pos_ or t.tag_ or None for t in kept] if self.pos else None
                words = [t.text for t in kept]
            else:
                words = [t.orth_ for t in self._nlp.tokenizer(text) if not t.is_space]
        else:
            words = [w for w in self._fn(text) if not w.isspace()]
        if self._stem is not None:
            words = [self._stem(w) for w in words]
        if self.pos and tags is None:
            tags = [None] * len(words)
        return words, tags


@dataclass
class Router:
    """``language``: ``auto`` (by detected script; mixed text run by run), ``zh`` or ``en`` (whole text)."""

    zh: Jieba
    en: English
    language: str = "auto"

    def load(self) -> None:
        """Load what ``language`` can route to: a Chinese-only or English-only config does not pay for
        the other library in every worker (jieba's dictionary ~1 s, importing spaCy ~1.3 s)."""
        if self.language != "en":
            self.zh.load()
        if self.language != "zh":
            self.en.load()

    def route(self, text: str, lang: str | None = None) -> str:
        if self.language != "auto":
            return self.language
        return lang or lang_of(text)

    def __call__(self, text: str, lang: str | None = None) -> Tagged:
        return self.split(text, self.route(text, lang))

    def split(self, text: str, route: str) -> Tagged:
        """Tokens (and tags) of ``text`` by an already resolved ``route`` (:meth:`route`)."""
        tagged = self._split(text, route)
        return join_emoji(*tagged) if _GLUED.search(text) else tagged

    def _split(self, text: str, route: str) -> Tagged:
        if route == "zh":
            return self.zh(text)
        if route in ("mixed", "ja"):
            words: list[str] = []
            tags: list[str | None] = []
            for is_zh, run in han_runs(text):
                w, t = (self.zh if is_zh else self.en)(run)
                words += w
                tags += t if t is not None else [None] * len(w)
            return words, (tags if self.zh.pos or self.en.pos else None)
        return self.en(text)


def join_emoji(words: list[str], tags: list[str | None] | None) -> Tagged:
    """Join an emoji sequence the tokenizers split back into one token (tagged as its first part): a
    token that starts with a joiner, variation selector, skin tone, keycap or tag character continues
    the one before, and an emoji after an emoji with a zero width joiner does too. ``👨‍👩‍👧`` stays one
    token, not ``👨 ZWJ 👩 ZWJ 👧``. Invisible characters that start a token are dropped (a token of
    nothing else with them)."""
    out: list[str] = []
    out_tags: list[str | None] = []
    for i, word in enumerate(words):
        if out and (_GLUED.match(word) or (out[-1].endswith("\u200d") and _joins(out[-1], word))):
            out[-1] += word
            continue
        word = _INVISIBLE.sub("", word, count=1) if _INVISIBLE.match(word) else word
        if word:
            out.append(word)
            out_tags.append(tags[i] if tags is not None else None)
    return out, (out_tags if tags is not None else None)


def _joins(before: str, word: str) -> bool:
    """``before`` (ending with a zero width joiner) and ``word`` are both emoji there."""
    last = _INVISIBLE.sub("", before[-4:])[-1:]
    return bool(last) and unicodedata.category(last) == "So" and unicodedata.category(word[0]) == "So"
