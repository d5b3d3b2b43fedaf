"""``audio.loudness`` (peak / RMS / EBU R128 integrated loudness normalisation) and ``audio.preemphasis``."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from mmprep.errors import Drop, MissingDependency
from mmprep.sample import Sample, meta
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.audio.common import decoded

ABSOLUTE_GATE = -70.0  # LUFS: BS.1770 blocks quieter than this never count
_BS1770_GAINS = (1.0, 1.0, 1.0, 1.41, 1.41)  # L, R, C, Ls, Rs


def integrated_lufs(x: np.ndarray, rate: int) -> float:
    """ITU-R BS.1770-4 integrated loudness in LUFS; ``-inf`` when no 400 ms block reaches the absolute
    gate (-70 LUFS): silence, and near-silence too; NaN when the K-weighting filter is unstable at ``rate``.

    ``x`` is ``(n,)`` or ``(channels, n)``; needs at least one 400 ms gating block. pyloudnorm's
    K-weighting filters and gating, vectorised, for any channel count: up to 5 channels weighted as
    pyloudnorm does (L, R, C, Ls, Rs: surrounds 1.41), more channels (layout unknown) all 1.0.
    pyloudnorm itself refuses more than 5 channels.
    """
    import pyloudnorm
    import scipy.signal

    data = np.atleast_2d(x).astype(np.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        for stage in pyloudnorm.Meter(rate)._filters.values():  # high shelf, then high pass (K-weighting)
            data = stage.passband_gain * scipy.signal.lfilter(stage.b, stage.a, data, axis=-1)
    if not np.isfinite(data).all():  # the 1.7 kHz shelf is unstable near Nyquist (2 kHz audio): no measure
        return float("nan")
    channels, n = data.shape
    gains = np.array(_BS1770_GAINS[:channels] if channels <= len(_BS1770_GAINS) else (1.0,) * channels)
    block, step = 0.4, 0.25  # seconds, fraction of a block (75 % overlap); block bounds as pyloudnorm's
    j = np.arange(int(np.round((n / rate - block) / (block * step))) + 1)
    lo = np.minimum((block * (j * step) * rate).astype(np.int64), n)
    hi = np.minimum((block * (j * step + 1) * rate).astype(np.int64), n)
    power = np.concatenate([np.zeros((channels, 1)), np.cumsum(np.square(data), axis=1)], axis=1)
    z = (power[:, hi] - power[:, lo]) / (block * rate)  # mean square per channel and block
    with np.errstate(divide="ignore"):
        loud = -0.691 + 10 * np.log10(gains @ z)
        above = loud >= ABSOLUTE_GATE
        if not above.any():
            return -np.inf
        relative = -0.691 + 10 * np.log10(gains @ z[:, above].mean(axis=1)) - 10
        kept = (loud > relative) & above
        return float(-0.691 + 10 * np.log10(gains @ z[:, kept].mean(axis=1))) if kept.any() else -np.inf


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
    version = "2"  # any channel count in lufs mode; a missed target always says reached: false and why
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
            missed = {"mode": cfg.mode, "measured": None, "gain_db": 0.0, "target": cfg.target, "reached": False}
            if cfg.mode == "lufs" and audio.samples.shape[-1] < int(0.4 * audio.rate):
                if cfg.on_short == "drop":
                    raise Drop("audio.too_short", "under 0.4 s: integrated loudness is undefined", field=ext)
                info["loudness"] = {**missed, "reason": "too_short"}
                continue
            measured = level(audio.samples, audio.rate, cfg.mode)
            peak = float(np.max(np.abs(audio.samples))) if audio.samples.size else 0.0
            if not np.isfinite(measured):  # nothing to measure: left as it is, and said so
                below = cfg.mode == "lufs" and peak > 0  # every block under the absolute gate
                reason = "bad_rate" if np.isnan(measured) else "below_gate" if below else "silent"
                info["loudness"] = {**missed, "reason": reason}
                continue
            gain_db = min(cfg.target - measured, cfg.max_gain_db)
            reason = "max_gain" if gain_db < cfg.target - measured else None
            if cfg.limit_peak and peak * 10 ** (gain_db / 20) > 1.0:
                gain_db, reason = -20 * np.log10(peak), "limit_peak"
            y = (audio.samples * np.float32(10 ** (gain_db / 20))).astype(np.float32)
            sample[ext] = audio.replace(y)
            reached = bool(abs(measured + gain_db - cfg.target) < 0.05)
            info["loudness"] = {"mode": cfg.mode, "measured": round(measured, 3), "gain_db": round(float(gain_db), 3),
                                "target": cfg.target, "reached": reached}
            if not reached and reason:
                info["loudness"]["reason"] = reason
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
