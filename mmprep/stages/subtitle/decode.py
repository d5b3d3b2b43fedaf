"""``subtitle.decode``: subtitle bytes (SRT, WebVTT, ASS) -> text, with the cues counted and validated."""

from __future__ import annotations

from mmprep.align.subs import SubtitleError, parse, validate
from mmprep.errors import Drop
from mmprep.sample import Sample, fields_of, meta
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.text.encoding import decode_text


@register
class SubtitleDecode(Stage):
    """Decode and parse subtitles; cue count, span and problems go to metadata; unparseable files are dropped.

    Parsed as ``align.subtitles`` parses them (:func:`mmprep.align.subs.parse`): comments and WebVTT
    NOTE/STYLE blocks are not cues. ``start`` / ``end`` are the earliest start and the latest end in
    seconds, whatever the cue order; ``problems`` counts overlapping, negative, backwards and empty cues
    (see :func:`mmprep.align.subs.validate`).
    """

    name = "subtitle.decode"
    version = "2"  # 2: span from the earliest/latest cue (was first/last in file order), comments not counted
    reads = ("subtitle",)
    writes = ("subtitle",)

    class Config(StageConfig):
        pass

    def process(self, sample: Sample) -> Sample:
        for ext in fields_of(sample, "subtitle"):
            value = sample[ext]
            text = value if isinstance(value, str) else decode_text(value, field=ext)[0]
            try:
                cues = parse(text, ext).cues
            except SubtitleError as exc:
                raise Drop(exc.reason, str(exc), field=ext) from None
            if not cues:
                raise Drop("subtitle.empty", "no cues", field=ext)
            meta(sample).setdefault("subtitle", {})[ext] = {
                "cues": len(cues), "start": min(c.start for c in cues) / 1000,
                "end": max(c.end for c in cues) / 1000, "problems": validate(cues)["counts"]}
            sample[ext] = text
        return sample
