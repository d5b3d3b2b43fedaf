"""``align.subtitles``: re-time each subtitle field to the speech in the sample's audio (or video track)."""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import Field

from mmprep.errors import Drop
from mmprep.sample import Sample, fields_of, meta
from mmprep.stage import Stage, StageConfig, register


def replay_records(sample: Sample, kind: str) -> list[dict[str, Any]]:
    """Report records of a finished sample that came from the cache or an earlier build (no plot data)."""
    raw = sample.get("align.json")
    if not isinstance(raw, bytes):
        return []
    try:
        doc = json.loads(raw)
    except ValueError:
        return []
    return [{"key": sample["__key__"], "field": field, "kind": kind, **stored}
            for field, stored in doc.get(kind, {}).items()]


def merge_align_json(sample: Sample, key: str, field: str, value: dict[str, Any]) -> None:
    """Put ``value`` at ``align.json[key][field]``, keeping what other aligning stages wrote."""
    doc = sample.get("align.json")
    if not isinstance(doc, dict):
        doc = {}
    doc.setdefault(key, {})[field] = value
    sample["align.json"] = doc


@register
class AlignSubtitles(Stage):
    """Re-time subtitles to speech: offset, framerate ratio, splits, cue edges; a confidence and a status."""

    name = "align.subtitles"
    version = "2"  # 2: WebVTT written back with ids/notes/settings, CRLF read, non-speech cues move with their segment
    reads = ("subtitle",)
    summarizes = True
    writes = ("subtitle", "align.json")
    cacheable = False  # per-sample records must reach end_shard on every run

    class Config(StageConfig):
        max_offset: float = Field(60.0, gt=0, le=3600, description="Largest offset searched, seconds (+-).")
        ratios: bool = Field(True, description="Test the standard framerate ratios (24/23.976, 25/23.976, 25/24 "
                             "and inverses) besides 1.")
        refine_ratio: bool = Field(True, description="Refine the best ratio continuously (+-0.3 %).")
        max_splits: int = Field(1, ge=0, le=8, description="Offset changes allowed (ad breaks); 0 = one offset.")
        split_penalty: float = Field(2.0, ge=0, description="Seconds of net speech overlap a split must gain.")
        refine_window: float = Field(0.25, ge=0, le=2, description="Snap each cue edge to a speech edge within "
                                     "this many seconds; 0 turns boundary refinement off.")
        refine_min_scatter: float = Field(0.045, ge=0, le=1, description="Refine cue edges only when the cue "
                                          "starts scatter around the fitted offset/ratio by this much (s; early-side "
                                          "10th percentile): subtitles that follow the model keep it. 0 = always.")
        min_confidence: float = Field(0.5, ge=0, le=1, description="Below this the status is low_confidence.")
        vad: Literal["energy", "webrtc", "both"] = Field("energy", description="Speech activity detector.")
        fields: list[str] | None = Field(None, description="Subtitle fields to align (srt, vtt, ass, or a JSON "
                                         "segments field such as segments.json); default: every subtitle field.")
        media_field: str | None = Field(None, description="Audio or video field to align against; default: the "
                                        "first audio field, else the first video field.")
        on_low_confidence: Literal["original", "retimed", "drop"] = Field(
            "original", description="What the subtitle field holds when the status is not ok: the input times, "
            "the re-timed ones anyway, or nothing (the field is dropped with reason align.low_confidence).")
        feature_hop: int | None = Field(None, ge=1, description="Hop (samples at the audio rate) of the audio "
                                        "features, to map cues to feature frames.")
        feature_win: int = Field(400, ge=1, description="Window (samples) of the audio features.")
        feature_center: bool = Field(True, description="Feature frames centred on j*hop (librosa/torch default).")
        plot: Literal["flagged", "all", "none"] = Field("flagged", description="Which records keep plot data "
                                                        "(speech and cue spans) for the HTML report.")

    def begin_shard(self) -> None:
        self.records: list[dict[str, Any]] = []

    def end_shard(self) -> dict[str, Any]:
        return {"records": getattr(self, "records", [])}

    def replay(self, sample: Sample) -> None:
        self.__dict__.setdefault("records", []).extend(replay_records(sample, "subtitles"))

    def reports(self) -> tuple[str, ...]:
        from mmprep.align.report import REPORT_HTML, REPORT_JSON

        return REPORT_JSON, REPORT_HTML, f".align/{self.name}.json"

    def finalize(self, summaries: list[dict[str, Any]], out_dir: Any) -> None:
        from mmprep.align.report import publish

        publish(out_dir, self.name, summaries)

    def applies(self, sample: Sample) -> bool:
        return bool(self._targets(sample))

    def _targets(self, sample: Sample) -> list[str]:
        if self.config.fields is not None:
            return [f for f in self.config.fields if f in sample]
        return fields_of(sample, "subtitle")

    def _params(self) -> Any:
        from mmprep.align.retime import AlignParams

        c = self.config
        return AlignParams(max_offset=c.max_offset, ratios=c.ratios, refine_ratio=c.refine_ratio,
                           max_splits=c.max_splits, split_penalty=c.split_penalty, refine_window=c.refine_window,
                           refine_min_scatter=c.refine_min_scatter, min_confidence=c.min_confidence, vad=c.vad)

    def process(self, sample: Sample) -> Sample:
        from mmprep.align.api import align_subtitles
        from mmprep.align.mapping import map_cues
        from mmprep.align.media import sample_audio, video_info
        from mmprep.align.retime import failed

        try:
            media, samples, rate = sample_audio(sample, self.config.media_field)
            media_error = None
        except Drop as drop:
            media, samples, rate, media_error = self.config.media_field, None, 0, drop
        fps = frames = None
        for v in fields_of(sample, "video"):
            if isinstance(sample[v], bytes):
                info = video_info(sample[v]) or {}
                fps, frames = info.get("fps"), info.get("frames")  # frames: cues past the end map to none
                break
        drop_field = None
        for field in self._targets(sample):
            if media_error is not None:
                rec = failed(media_error.reason, media_error.message).record
                text, doc, times = None, None, []
            else:
                rec, text, doc, times = align_subtitles(samples, rate, sample[field], hint=field,
                                                        params=self._params(), plot=self.config.plot)
            rec = {"key": sample["__key__"], "field": field, "kind": "subtitles", "media": media, **rec}
            self.__dict__.setdefault("records", []).append(rec)
            keep = rec["status"] == "ok" or self.config.on_low_confidence == "retimed"
            if doc is not None and times:
                written = times if keep else [(c.start, c.end) for c in doc.cues]
                rec["cue_map"] = map_cues(written, [c.text for c in doc.cues], rate=rate,
                                          n_samples=None if samples is None else int(samples.size),
                                          hop=self.config.feature_hop, win=self.config.feature_win,
                                          center=self.config.feature_center, fps=fps, n_video_frames=frames,
                                          features=meta(sample).get("features"))
            if text is not None and keep:
                sample[field] = text
            elif self.config.on_low_confidence == "drop" and rec["status"] != "ok":
                drop_field = field
            stored = {k: v for k, v in rec.items() if k not in ("plot", "key")}
            merge_align_json(sample, "subtitles", field, stored)
            meta(sample).setdefault("align", {})[field] = {"status": rec["status"], "confidence": rec["confidence"],
                                                           "offset": rec.get("offset")}
        if drop_field is not None:
            raise Drop("align.low_confidence", f"{drop_field}: alignment not trusted", field=drop_field)
        return sample
