"""``align.av``: how far each video's audio lags or leads its picture; optionally correct the audio."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field

from mmprep.sample import Audio, Sample, fields_of, meta
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.align.subtitles import merge_align_json, replay_records


@register
class AlignAV(Stage):
    """Estimate the A/V offset from sound onsets against visual change (flashes, cuts), with a confidence."""

    name = "align.av"
    version = "1"
    reads = ("video",)
    summarizes = True
    writes = ("audio", "align.json")
    cacheable = False

    class Config(StageConfig):
        max_offset: float = Field(1.0, gt=0, le=10, description="Largest offset searched, seconds (+-).")
        min_confidence: float = Field(0.5, ge=0, le=1, description="Below this the status is low_confidence.")
        correct: bool = Field(False, description="Shift the sample's decoded audio (from audio.decode or "
                              "video.audio_track) by the offset when the status is ok, so clips cut later line up.")

    def begin_shard(self) -> None:
        self.records: list[dict[str, Any]] = []

    def end_shard(self) -> dict[str, Any]:
        return {"records": getattr(self, "records", [])}

    def replay(self, sample: Sample) -> None:
        self.__dict__.setdefault("records", []).extend(replay_records(sample, "av"))

    def reports(self) -> tuple[str, ...]:
        from mmprep.align.report import REPORT_HTML, REPORT_JSON

        return REPORT_JSON, REPORT_HTML, f".align/{self.name}.json"

    def finalize(self, summaries: list[dict[str, Any]], out_dir: Any) -> None:
        from mmprep.align.report import publish

        publish(out_dir, self.name, summaries)

    def process(self, sample: Sample) -> Sample:
        from mmprep.align.api import av_sync

        for field in fields_of(sample, "video"):
            value = sample[field]
            if not isinstance(value, bytes):
                continue
            rec = av_sync(value, max_offset=self.config.max_offset)
            if rec["status"] == "ok" and rec["confidence"] < self.config.min_confidence:
                rec["status"], rec["reasons"] = "low_confidence", [*rec["reasons"], "av.low_confidence"]
            if rec["status"] == "ok" and self.config.correct and rec["offset"]:
                rec["corrected"] = self._correct(sample, rec["offset"])
            self.__dict__.setdefault("records", []).append({"key": sample["__key__"], "field": field, "kind": "av",
                                                            **rec})
            merge_align_json(sample, "av", field, rec)
            meta(sample).setdefault("align", {})[field] = {"status": rec["status"], "av_offset": rec["offset"]}
        return sample

    @staticmethod
    def _correct(sample: Sample, offset: float) -> list[str]:
        """Audio late by ``offset`` s (> 0): drop its first ``offset`` s; early (< 0): pad silence in front."""
        done = []
        for name in fields_of(sample, "audio"):
            audio = sample[name]
            if not isinstance(audio, Audio):
                continue
            n = int(round(abs(offset) * audio.rate))
            x = audio.samples
            if offset > 0:
                y = x[..., n:]
            else:
                y = np.concatenate([np.zeros(x.shape[:-1] + (n,), x.dtype), x], axis=-1)
            sample[name] = audio.replace(y)
            seconds = round(y.shape[-1] / audio.rate, 6)  # as audio.trim does: the metadata tells the new length
            info = meta(sample).setdefault("audio", {}).setdefault(name, {})
            info["seconds"], info["av_shift"] = seconds, -offset
            meta(sample)["duration"] = seconds
            done.append(name)
        return done
