"""``text.language``: route zh / en / mixed (and ja / ko / other / und) by script, recorded in metadata."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from mmprep.errors import Drop
from mmprep.sample import Sample, fields_of, meta
from mmprep.stage import Stage, StageConfig, register
from mmprep.text.script import detect


@register
class TextLanguage(Stage):
    """Detect each text field's language by script; ``meta.lang[field]`` = ``{"lang": ..., "scripts": {...}}``.

    ``keep`` limits the languages let through (others: reason ``text.language``). ``en`` means Latin
    script; see :mod:`mmprep.text.script` for the rules.
    """

    name = "text.language"
    reads = ("text",)
    writes = ()

    class Config(StageConfig):
        mixed_share: float = Field(0.1, gt=0, lt=0.5, description="Han and Latin each >= this share of letters "
                                                                  "-> mixed.")
        keep: list[Literal["zh", "en", "mixed", "ja", "ko", "other", "und"]] | None = Field(
            None, description="Languages to keep; all when not set.")

    def process(self, sample: Sample) -> Sample:
        for ext in fields_of(sample, "text"):
            text = sample[ext]
            if not isinstance(text, str):
                raise Drop("text.not_decoded", "run text.decode first", field=ext)
            found = detect(text, mixed_share=self.config.mixed_share)
            meta(sample).setdefault("lang", {})[ext] = found
            if self.config.keep is not None and found["lang"] not in self.config.keep:
                raise Drop("text.language", f"language {found['lang']} not in keep", field=ext)
        return sample
