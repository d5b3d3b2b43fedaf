"""``audio.denoise``: spectral subtraction and spectral gating, with the noise profile taken from the
quietest frames of the clip itself (no separate noise recording needed).

Both work on an STFT (Hann, ``n_fft`` / ``hop`` samples), change only magnitudes, keep the phase,
and return a signal of exactly the input length.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from mmprep.errors import ConfigError
from mmprep.sample import Sample, meta
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.audio.common import decoded


class DenoiseParams(StageConfig):
    method: Literal["subtract", "gate"] = Field("subtract", description="Spectral subtraction or spectral gating.")
    n_fft: int = Field(512, ge=16, le=65_536, description="STFT size in samples.")
    hop: int = Field(128, ge=1, description="STFT hop in samples (<= n_fft, or samples between frames are lost).")
    noise_quantile: float = Field(
        0.1, gt=0, le=1, description="Fraction of quietest frames (by energy) that make the noise profile.")
    alpha: float = Field(2.0, ge=0, description="subtract: over-subtraction factor on the noise power.")
    beta: float = Field(0.01, ge=0, le=1, description="subtract: spectral floor, as a fraction of the noise power.")
    n_std: float = Field(1.5, ge=0, description="gate: threshold = noise mean + n_std * noise std (dB, per bin).")
    reduction_db: float = Field(30.0, ge=0, description="gate: attenuation of bins under the threshold.")
    smooth_frames: int = Field(
        5, ge=1, le=1024, description="gate: mask smoothing over time (frames) to avoid musical noise.")


def denoise(x: np.ndarray, p: DenoiseParams) -> np.ndarray:
    """Denoised copy of mono ``x``, ``shape=(n,)`` float32. Clips shorter than ``n_fft`` come back unchanged."""
    import torch

    if x.shape[-1] < p.n_fft:
        return x.astype(np.float32, copy=True)
    sig = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    window = torch.hann_window(p.n_fft)
    spec = torch.stft(sig, p.n_fft, p.hop, window=window, center=True, return_complex=True)
    power = spec.real.square() + spec.imag.square()  # (freq, frames)
    energy = power.sum(0)
    k = max(1, int(round(p.noise_quantile * energy.numel())))
    quiet = torch.topk(energy, k, largest=False).indices
    if p.method == "subtract":
        noise = power[:, quiet].mean(1, keepdim=True)
        cleaned = torch.maximum(power - p.alpha * noise, p.beta * noise)
        gain = torch.sqrt(cleaned / torch.clamp(power, min=1e-20)).clamp(max=1.0)
    else:
        db = 10 * torch.log10(torch.clamp(power, min=1e-20))
        noise_db = db[:, quiet]
        thresh = noise_db.mean(1, keepdim=True) + p.n_std * noise_db.std(1, keepdim=True, unbiased=False)
        mask = (db > thresh).float()
        if p.smooth_frames > 1:
            kernel = torch.ones(1, 1, 3, p.smooth_frames) / (3 * p.smooth_frames)
            mask = torch.nn.functional.conv2d(mask[None, None], kernel, padding="same")[0, 0]
        floor = 10 ** (-p.reduction_db / 20)
        gain = floor + (1 - floor) * mask
    out = torch.istft(spec * gain, p.n_fft, p.hop, window=window, center=True, length=x.shape[-1])
    return out.numpy().astype(np.float32)


@register
class AudioDenoise(Stage):
    """Reduce stationary noise by spectral subtraction or spectral gating (noise from the quietest frames)."""

    name = "audio.denoise"
    version = "1"
    reads = ("audio",)
    writes = ("audio",)

    class Config(DenoiseParams):
        pass

    def check(self) -> None:
        if self.config.hop > self.config.n_fft:
            raise ConfigError("hop", f"must be <= n_fft ({self.config.n_fft}), got {self.config.hop}")

    def process(self, sample: Sample) -> Sample:
        for ext, audio in decoded(sample, self.name):
            x = audio.samples
            y = np.stack([denoise(c, self.config) for c in x]) if x.ndim == 2 else denoise(x, self.config)
            sample[ext] = audio.replace(y)
            meta(sample).setdefault("audio", {}).setdefault(ext, {})["denoise"] = self.config.method
        return sample
