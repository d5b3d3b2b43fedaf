"""``text.sentences``: split text into sentences (Chinese and English) -> ``sentences.json``."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field

from mmprep.sample import Sample
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.text.fields import SENTENCES, derived, text_fields, text_of
from mmprep.text.tokenizers import nltk_resource

# A sentence ends at 。！？!?… (and ；; with ``semicolons``), plus closing quotes/brackets after it;
# a '.' ends one when followed by space and not preceded by a known abbreviation or single initial.
_ZH_END = "。！？!?…"
_CLOSE = "\"'”’」』）)】》"
_ABBREV = {"mr", "mrs", "ms", "dr", "prof", "sr", "jr", "st", "vs", "etc", "e.g", "i.e", "no", "fig", "inc", "ltd",
           "co", "u.s", "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec"}


_WORD_END = re.compile(r"[\w.]+$")


def split_rule(text: str, *, semicolons: bool = False) -> list[str]:
    """Rule-based splitter for zh + en; each sentence stripped, empty ones left out.

    Linear in the text: the word before a '.' is looked up in the last 8 characters of the sentence so
    far (a longer word is no abbreviation or initial either); searching the whole growing sentence
    took minutes on a long run of "Mr. Mr. ..."."""
    ends = _ZH_END + ("；;" if semicolons else "")
    pattern = re.compile(f"([{re.escape(ends)}]+[{re.escape(_CLOSE)}]*|\\.+[{re.escape(_CLOSE)}]*(?=\\s|$)|\\n+)")
    out: list[str] = []
    buf: list[str] = []
    tail = ""  # the last 8 characters of the sentence so far
    for i, part in enumerate(pattern.split(text)):
        if i % 2 == 1 and part.startswith(".") and not part.startswith(".."):
            prev = _WORD_END.search(tail)
            word = prev.group(0).lower() if prev else ""
            if word in _ABBREV or (len(word) == 1 and word.isalpha()):
                buf.append(part)
                tail = (tail + part)[-8:]
                continue
        buf.append(part)
        tail = (tail + part)[-8:]
        if i % 2 == 0:
            continue
        sentence = "".join(buf).strip()
        if sentence:
            out.append(sentence)
        buf, tail = [], ""
    sentence = "".join(buf).strip()
    if sentence:
        out.append(sentence)
    return out


@register
class TextSentences(Stage):
    """Sentences of each text field as ``sentences.json`` (a list of strings, in order).

    ``rule`` handles Chinese (。！？…) and English (.!? with common abbreviations) with no data;
    ``nltk_punkt`` uses NLTK's Punkt for English and needs the punkt_tab data package.
    """

    name = "text.sentences"
    reads = ("text",)
    writes = (SENTENCES,)

    class Config(StageConfig):
        splitter: Literal["rule", "nltk_punkt"] = "rule"
        semicolons: bool = Field(False, description="Also end sentences at ；and ;.")
        fields: list[str] | None = Field(None, description="Text fields to split; all text fields when not set.")

    def check(self) -> None:
        if self.config.splitter == "nltk_punkt":
            nltk_resource("tokenizers/punkt_tab/english/", "punkt_tab", key="splitter")

    def process(self, sample: Sample) -> Sample:
        for ext in text_fields(sample, self.config.fields):
            text = text_of(sample, ext)
            if self.config.splitter == "nltk_punkt":
                from nltk.tokenize import sent_tokenize

                sentences = [s for chunk in split_rule(text, semicolons=self.config.semicolons)
                             for s in sent_tokenize(chunk)]
            else:
                sentences = split_rule(text, semicolons=self.config.semicolons)
            sample[derived(ext, SENTENCES)] = sentences
        return sample
