"""``audio.decode`` and ``audio.normalize``: the minimal audio stages."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from mmprep.errors import Drop
from mmprep.sample import Audio, Sample, fields_of, meta
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.audio.io import read_audio


@register
class AudioDecode(Stage):
    """Decode audio to float32 samples; multichannel is mixed down to mono unless told otherwise."""

    name = "audio.decode"
    reads = ("audio",)
    writes = ("audio",)

    class Config(StageConfig):
        mono: bool = True

    def process(self, sample: Sample) -> Sample:
        for ext in fields_of(sample, "audio"):
            data = sample[ext]
            if isinstance(data, Audio):
                continue
            samples, rate = read_audio(data, field=ext)
            if samples.shape[-1] == 0:
                raise Drop("audio.empty", "zero samples", field=ext)
            if not 100 <= rate <= 768_000:
                raise Drop("audio.bad_rate", f"sample rate {rate} Hz", field=ext)
            if not np.isfinite(samples).all():
                raise Drop("audio.nan", "NaN or infinite samples", field=ext)
            if self.config.mono:
                samples = samples.mean(axis=0)
            audio = Audio(samples=samples.astype(np.float32), rate=rate, source=data, format=ext)
            sample[ext] = audio
            meta(sample).setdefault("audio", {})[ext] = {"rate": rate, "seconds": round(audio.seconds, 6)}
            meta(sample).setdefault("duration", round(audio.seconds, 6))
        return sample


@register
class AudioNormalize(Stage):
    """Peak normalisation to ``peak_dbfs``; silence is left as it is."""

    name = "audio.normalize"
    reads = ("audio",)
    writes = ("audio",)

    class Config(StageConfig):
        peak_dbfs: float = Field(-1.0, le=0.0)

    def process(self, sample: Sample) -> Sample:
        for ext in fields_of(sample, "audio"):
            audio = sample[ext]
            if not isinstance(audio, Audio):
                raise Drop("audio.not_decoded", "run audio.decode first", field=ext)
            peak = float(np.max(np.abs(audio.samples))) if audio.samples.size else 0.0
            if peak > 0:
                gain = 10 ** (self.config.peak_dbfs / 20) / peak
                sample[ext] = audio.replace((audio.samples * gain).astype(np.float32))
        return sample
