"""``audio.resample``: change the sample rate with soxr (the SoX resampler), quality selectable."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from mmprep.errors import Drop, MissingDependency
from mmprep.sample import Audio, Sample, meta
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.audio.common import decoded, keep_writable

QUALITY = {"quick": "QQ", "low": "LQ", "medium": "MQ", "high": "HQ", "very_high": "VHQ"}


def resample(x: np.ndarray, rate: int, target: int, *, quality: str = "high") -> np.ndarray:
    """``x`` (``(n,)`` or ``(channels, n)``) at ``rate`` Hz -> float32 at ``target`` Hz, ``~n * target / rate`` long."""
    import soxr

    if rate == target:
        return x.astype(np.float32, copy=False)
    y = soxr.resample(np.ascontiguousarray(x.T if x.ndim == 2 else x), rate, target, quality=QUALITY[quality])
    return np.ascontiguousarray(y.T if x.ndim == 2 else y, dtype=np.float32)


@register
class AudioResample(Stage):
    """Resample every audio field to ``rate`` Hz with soxr; fields already at that rate are untouched."""

    name = "audio.resample"
    version = "3"  # nothing left is audio.empty; 2: a lossy field its format cannot hold moves to flac
    reads = ("audio",)
    writes = ("audio",)

    class Config(StageConfig):
        rate: int = Field(16000, ge=1000, le=384_000, description="Target sample rate in Hz.")
        quality: Literal["quick", "low", "medium", "high", "very_high"] = Field(
            "high", description="soxr quality preset (QQ, LQ, MQ, HQ, VHQ); 'high' keeps ~-100 dB aliasing.")

    def check(self) -> None:
        try:
            import soxr  # noqa: F401
        except ImportError:
            raise MissingDependency("stage", "soxr", "pip install soxr") from None

    def process(self, sample: Sample) -> Sample:
        for ext, audio in decoded(sample, self.name):
            if audio.rate == self.config.rate:
                continue
            y = resample(audio.samples, audio.rate, self.config.rate, quality=self.config.quality)
            if not y.shape[-1]:  # 100 samples at 384 kHz are 0.26 of one at 1 kHz: no sample for the next stages
                raise Drop("audio.empty", f"{audio.samples.shape[-1]} samples at {audio.rate} Hz leave none at "
                                          f"{self.config.rate} Hz", field=ext)
            sample[ext] = Audio(samples=y, rate=self.config.rate, source=None, format=audio.format, info=audio.info)
            info = meta(sample).setdefault("audio", {}).setdefault(ext, {})
            info.update(original_rate=audio.rate, rate=self.config.rate)
            keep_writable(sample, ext)  # Opus at 44.1 kHz goes to flac rather than losing the sample
        return sample
