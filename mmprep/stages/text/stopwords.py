"""``text.stopwords``: remove stop words (and optionally punctuation) from ``tokens.json``."""

from __future__ import annotations

import unicodedata

from pydantic import Field

from mmprep.errors import Drop
from mmprep.sample import Sample
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.text.fields import TOKENS, token_fields, tokens_of
from mmprep.text.stopwords import file_list, nltk_list, spacy_list


def is_punct(token: str) -> bool:
    """Every character is punctuation or a symbol (``,``, ``。``, ``——``, ``$``); emoji count as symbols,
    and so does a sequence of them (the joiners and variation selectors in ``👨‍👩‍👧`` or ``🏳️‍🌈`` are
    format and mark characters)."""
    cats = [unicodedata.category(ch) for ch in token]
    return any(c[0] in "PS" for c in cats) and all(c[0] in "PS" or c in ("Cf", "Mn", "Me") for c in cats)


@register
class TextStopwords(Stage):
    """Drop stop words from every tokens field, keeping POS tags aligned.

    Matching is case-insensitive (tokens and lists are compared lowercased). Reason code
    ``text.no_tokens`` when nothing is left (with ``drop_empty``).
    """

    name = "text.stopwords"
    reads = (TOKENS,)
    writes = (TOKENS,)

    class Config(StageConfig):
        lists: list[str] = Field(["en", "zh"], description="spaCy stop-word lists by language code.")
        nltk: list[str] = Field([], description="NLTK stopwords corpus languages (needs the 'stopwords' data).")
        file: str | None = Field(None, description="Extra stop words, one per line (UTF-8).")
        punctuation: bool = Field(False, description="Also drop tokens made only of punctuation/symbols.")
        drop_empty: bool = Field(False, description="Drop the tokens field (text.no_tokens) when none is left.")

    def __init__(self, config: StageConfig):
        super().__init__(config)
        self.words: frozenset[str] | None = None

    def load(self) -> frozenset[str]:
        cfg = self.config
        words: set[str] = set()
        for lang in cfg.lists:
            words |= spacy_list(lang)
        for language in cfg.nltk:
            words |= nltk_list(language)
        if cfg.file:
            words |= file_list(cfg.file)
        return frozenset(w.lower() for w in words)

    def check(self) -> None:
        self.load()

    def setup(self) -> None:
        self.words = self.load()

    def applies(self, sample: Sample) -> bool:
        return bool(token_fields(sample))

    def process(self, sample: Sample) -> Sample:
        if self.words is None:
            self.setup()
        for name in token_fields(sample):
            doc = tokens_of(sample, name)
            keep = [i for i, t in enumerate(doc["tokens"])
                    if t.lower() not in self.words and not (self.config.punctuation and is_punct(t))]
            new = {"tokens": [doc["tokens"][i] for i in keep]}
            if "pos" in doc:
                new["pos"] = [doc["pos"][i] for i in keep]
            if not keep and self.config.drop_empty:
                raise Drop("text.no_tokens", "only stop words", field=name)
            sample[name] = new
        return sample
