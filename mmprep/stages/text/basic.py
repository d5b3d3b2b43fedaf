"""``text.decode`` and ``text.normalize``: the minimal text stages every pipeline starts with."""

from __future__ import annotations

import re
import unicodedata

from pydantic import Field

from mmprep.errors import Drop
from mmprep.sample import Sample, fields_of, meta
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.text.encoding import decode_text


@register
class TextDecode(Stage):
    """Decode text bytes to str, recording the detected encoding in metadata."""

    name = "text.decode"
    reads = ("text",)
    writes = ("text",)

    class Config(StageConfig):
        pass

    def process(self, sample: Sample) -> Sample:
        for ext in fields_of(sample, "text"):
            if isinstance(sample[ext], bytes):
                sample[ext], encoding = decode_text(sample[ext], field=ext)
                meta(sample).setdefault("encoding", {})[ext] = encoding
        return sample


@register
class TextNormalize(Stage):
    """Unicode NFKC, whitespace collapsed, optional lowercasing; empty results are dropped."""

    name = "text.normalize"
    reads = ("text",)
    writes = ("text",)

    class Config(StageConfig):
        form: str = Field("NFKC", pattern="^(NFC|NFKC|NFD|NFKD)$")
        lowercase: bool = False
        max_chars: int | None = Field(None, ge=1, description="Cut longer texts (recorded in metadata).")

    def process(self, sample: Sample) -> Sample:
        cfg = self.config
        for ext in fields_of(sample, "text"):
            text = sample[ext]
            if not isinstance(text, str):
                raise Drop("text.not_decoded", "run text.decode first", field=ext)
            text = re.sub(r"\s+", " ", unicodedata.normalize(cfg.form, text)).strip()
            if cfg.lowercase:
                text = text.lower()
            if cfg.max_chars and len(text) > cfg.max_chars:
                text = text[: cfg.max_chars]
                meta(sample).setdefault("truncated", []).append(ext)
            if not text:
                raise Drop("text.empty", "nothing left after normalization", field=ext)
            sample[ext] = text
        return sample
