"""``subtitle.decode``: subtitle bytes (SRT, WebVTT, ASS) -> validated SRT text (pysubs2)."""

from __future__ import annotations

from mmprep.align.subs import Cue, validate
from mmprep.errors import Drop
from mmprep.sample import Sample, fields_of, meta
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.text.encoding import decode_text


@register
class SubtitleDecode(Stage):
    """Decode and parse subtitles; cue count, span and problems go to metadata; unparseable files are dropped.

    ``problems`` counts overlapping, negative, backwards and empty cues (see mmprep.align.subs.validate).
    """

    name = "subtitle.decode"
    reads = ("subtitle",)
    writes = ("subtitle",)

    class Config(StageConfig):
        pass

    def process(self, sample: Sample) -> Sample:
        import pysubs2

        for ext in fields_of(sample, "subtitle"):
            value = sample[ext]
            text = value if isinstance(value, str) else decode_text(value, field=ext)[0]
            try:
                subs = pysubs2.SSAFile.from_string(text)
            except Exception as exc:  # noqa: BLE001 - pysubs2 raises several types on bad files
                raise Drop("subtitle.unparseable", f"{type(exc).__name__}: {exc}", field=ext) from None
            if not subs.events:
                raise Drop("subtitle.empty", "no cues", field=ext)
            cues = [Cue(int(e.start), int(e.end), e.plaintext) for e in subs.events if not e.is_comment]
            meta(sample).setdefault("subtitle", {})[ext] = {
                "cues": len(subs.events), "start": subs.events[0].start / 1000, "end": subs.events[-1].end / 1000,
                "problems": validate(cues)["counts"]}
            sample[ext] = text
        return sample
