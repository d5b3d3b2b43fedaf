"""``audio.loudness`` (peak / RMS / EBU R128 integrated loudness normalisation) and ``audio.preemphasis``."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from mmprep.errors import Drop, MissingDependency
from mmprep.sample import Sample, meta
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.audio.common import decoded


def integrated_lufs(x: np.ndarray, rate: int) -> float:
    """ITU-R BS.1770-4 integrated loudness in LUFS (pyloudnorm); ``-inf`` for silence.

    ``x`` is ``(n,)`` or ``(channels, n)``; needs at least one 400 ms gating block.
    """
    import pyloudnorm

    data = x.T if x.ndim == 2 else x
    return float(pyloudnorm.Meter(rate).integrated_loudness(data.astype(np.float64)))


def level(x: np.ndarray, rate: int, mode: str) -> float:
    """The measured level in the unit of ``mode``: dBFS (peak, rms) or LUFS (lufs)."""
    if mode == "lufs":
        return integrated_lufs(x, rate)
    with np.errstate(divide="ignore"):
        if mode == "peak":
            return float(20 * np.log10(np.max(np.abs(x)))) if x.size else -np.inf
        return float(10 * np.log10(np.mean(np.square(x, dtype=np.float64)))) if x.size else -np.inf


@register
class AudioLoudness(Stage):
    """Gain every audio field so its peak (dBFS), RMS (dBFS) or integrated loudness (LUFS) hits ``target``."""

    name = "audio.loudness"
    reads = ("audio",)
    writes = ("audio",)

    class Config(StageConfig):
        mode: Literal["peak", "rms", "lufs"] = Field("lufs", description="What to normalise.")
        target: float = Field(-23.0, le=0.0, description="Target in dBFS (peak, rms) or LUFS (lufs; R128 is -23).")
        max_gain_db: float = Field(40.0, ge=0.0, description="Never amplify more than this (protects near-silence).")
        limit_peak: bool = Field(
            True, description="Lower the gain so no sample passes 0 dBFS; the miss is written to metadata.")
        on_short: Literal["keep", "drop"] = Field(
            "keep", description="lufs on clips under 0.4 s (no gating block): keep unchanged or drop.")

    def check(self) -> None:
        if self.config.mode == "lufs":
            try:
                import pyloudnorm  # noqa: F401
            except ImportError:
                raise MissingDependency("mode", "pyloudnorm", "pip install pyloudnorm") from None

    def process(self, sample: Sample) -> Sample:
        cfg = self.config
        for ext, audio in decoded(sample, self.name):
            info = meta(sample).setdefault("audio", {}).setdefault(ext, {})
            if cfg.mode == "lufs" and audio.samples.shape[-1] < int(0.4 * audio.rate):
                if cfg.on_short == "drop":
                    raise Drop("audio.too_short", "under 0.4 s: integrated loudness is undefined", field=ext)
                info["loudness"] = {"mode": cfg.mode, "measured": None, "gain_db": 0.0}
                continue
            measured = level(audio.samples, audio.rate, cfg.mode)
            if not np.isfinite(measured):  # silence: nothing to normalise
                info["loudness"] = {"mode": cfg.mode, "measured": None, "gain_db": 0.0}
                continue
            gain_db = min(cfg.target - measured, cfg.max_gain_db)
            peak = float(np.max(np.abs(audio.samples)))
            if cfg.limit_peak and peak * 10 ** (gain_db / 20) > 1.0:
                gain_db = -20 * np.log10(peak)
            y = (audio.samples * np.float32(10 ** (gain_db / 20))).astype(np.float32)
            sample[ext] = audio.replace(y)
            info["loudness"] = {"mode": cfg.mode, "measured": round(measured, 3), "gain_db": round(float(gain_db), 3),
                                "target": cfg.target, "reached": bool(abs(measured + gain_db - cfg.target) < 0.05)}
        return sample


@register
class AudioPreemphasis(Stage):
    """First-order pre-emphasis ``y[n] = x[n] - coef * x[n-1]`` (boosts highs before features)."""

    name = "audio.preemphasis"
    reads = ("audio",)
    writes = ("audio",)

    class Config(StageConfig):
        coef: float = Field(0.97, ge=0.0, lt=1.0, description="Filter coefficient.")

    def process(self, sample: Sample) -> Sample:
        for ext, audio in decoded(sample, self.name):
            x = audio.samples
            y = np.concatenate([x[..., :1], x[..., 1:] - self.config.coef * x[..., :-1]], axis=-1)
            sample[ext] = audio.replace(y.astype(np.float32))
        return sample
