"""``text.tokenize``: words for Chinese (jieba) and English (spaCy / NLTK), routed by language."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field

from mmprep.errors import ConfigError, Drop
from mmprep.sample import Sample, meta
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.text.fields import TOKENS, derived, has_text, text_fields, text_of
from mmprep.text.tokenizers import (
    NLTK_NEEDS,
    English,
    Jieba,
    Router,
    nltk_resource,
    spacy_lang_check,
    spacy_pipeline_check,
)


@register
class TextTokenize(Stage):
    """Tokenize text fields into ``tokens.json`` = ``{"tokens": [...], "pos": [...]}`` (``pos`` when asked).

    ``language: auto`` uses ``meta.lang`` from ``text.language`` when present, else detects by script;
    Chinese text goes to jieba, English to the English tokenizer, mixed text run by run (Han runs to
    jieba, the rest to the English tokenizer). Whitespace tokens are dropped. POS: jieba.posseg for
    Chinese (precise mode), a spaCy pipeline (``spacy_model``) for English, else ``null`` tags.
    Reason codes: ``text.too_long`` (over ``max_chars``), ``text.no_tokens``.
    """

    name = "text.tokenize"
    reads = ("text",)
    writes = (TOKENS,)

    class Config(StageConfig):
        language: Literal["auto", "zh", "en"] = Field("auto", description="auto routes by detected script.")
        fields: list[str] | None = Field(None, description="Text fields to tokenize; all text fields when not set.")
        jieba_mode: Literal["precise", "full", "search"] = Field("precise", description="jieba lcut / cut_all / "
                                                                                       "lcut_for_search.")
        jieba_hmm: bool = Field(True, description="jieba's HMM for words not in its dictionary.")
        user_dict: str | None = Field(None, description="jieba user dictionary file (word [freq] [tag] per line).")
        en_tokenizer: Literal["spacy", "nltk_treebank", "nltk_wordpunct", "nltk_regexp", "nltk_word"] = Field(
            "spacy", description="nltk_word needs the NLTK punkt_tab data package.")
        spacy_lang: str = Field("en", description="Language of the blank spaCy tokenizer.")
        spacy_model: str | None = Field(None, description="An installed spaCy pipeline (e.g. en_core_web_sm) "
                                                          "instead of the blank tokenizer.")
        regexp: str = Field(r"\w+|[^\w\s]+", description="Pattern for nltk_regexp.")
        stemmer: Literal["porter", "snowball"] | None = Field(None, description="NLTK stemmer for English tokens.")
        lowercase: bool = Field(False, description="Lowercase tokens.")
        pos: bool = Field(False, description="Add POS tags.")
        max_chars: int = Field(1_000_000, ge=1, description="Longer texts are not tokenized (text.too_long).")
        cache: bool = Field(False, description="Store the output in the content cache (pays off for a two-pass "
                                               "vocabulary flow).")

    def __init__(self, config: StageConfig):
        super().__init__(config)
        self.cacheable = config.cache
        self.router: Router | None = None

    def check(self) -> None:
        cfg = self.config
        if cfg.user_dict and not Path(cfg.user_dict).is_file():
            raise ConfigError("user_dict", f"jieba user dictionary {cfg.user_dict} not found")
        if cfg.user_dict:
            try:  # jieba reads it as UTF-8 in every worker: a shard failed (rc 1) for each
                Path(cfg.user_dict).read_bytes().decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ConfigError("user_dict", f"{cfg.user_dict} is not UTF-8 (byte {exc.start}); "
                                  "jieba needs UTF-8") from None
        if cfg.en_tokenizer == "nltk_regexp":
            import re

            try:
                re.compile(cfg.regexp)
            except re.error as exc:  # else every sample was dropped as text.tokenize.error
                raise ConfigError("regexp", f"{cfg.regexp!r} is not a regular expression: {exc}") from None
        if cfg.pos and cfg.jieba_mode != "precise":
            raise ConfigError("pos", "jieba POS tags exist for jieba_mode: precise only")
        if cfg.en_tokenizer in NLTK_NEEDS:
            nltk_resource(*NLTK_NEEDS[cfg.en_tokenizer], key="en_tokenizer")
        if cfg.spacy_model:
            spacy_pipeline_check(cfg.spacy_model, "spacy_model")
        elif cfg.en_tokenizer == "spacy":
            spacy_lang_check(cfg.spacy_lang, "spacy_lang")

    def make_router(self) -> Router:
        cfg = self.config
        zh = Jieba(mode=cfg.jieba_mode, hmm=cfg.jieba_hmm, user_dict=cfg.user_dict, pos=cfg.pos)
        en = English(backend=cfg.en_tokenizer, lang=cfg.spacy_lang, model=cfg.spacy_model, pattern=cfg.regexp,
                     stemmer=cfg.stemmer, pos=cfg.pos)
        return Router(zh=zh, en=en, language=cfg.language)

    def imports(self) -> tuple[str, ...]:
        cfg = self.config
        zh = ("jieba",) if cfg.language != "en" else ()
        return zh + (("spacy",) if cfg.language != "zh" and cfg.en_tokenizer == "spacy" else ())

    def setup(self) -> None:
        self.router = self.make_router()
        self.router.load()

    def applies(self, sample: Sample) -> bool:
        return has_text(sample)

    def process(self, sample: Sample) -> Sample:
        router = self.router
        if router is None:
            self.setup()
            router = self.router
        cfg = self.config
        info = meta(sample)
        langs = info.get("lang")
        for ext in text_fields(sample, cfg.fields):
            out = derived(ext, TOKENS)
            text = text_of(sample, ext)
            if len(text) > cfg.max_chars:
                raise Drop("text.too_long", f"{len(text)} chars > max_chars {cfg.max_chars}", field=out)
            lang = langs[ext].get("lang") if langs and ext in langs else None
            route = router.route(text, lang)
            tokens, tags = router.split(text, route)
            if cfg.lowercase:
                tokens = [t.lower() for t in tokens]
            if not tokens:
                raise Drop("text.no_tokens", "the tokenizer found no tokens", field=out)
            doc: dict = {"tokens": tokens}
            if tags is not None:
                doc["pos"] = tags
            sample[out] = doc
            info.setdefault("tokenized", {})[ext] = {"route": route, "tokens": len(tokens)}
        return sample
