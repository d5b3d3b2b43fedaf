"""Helpers shared by the audio stages: find decoded audio fields, and energy per frame."""

from __future__ import annotations

import numpy as np

from mmprep.errors import Drop
from mmprep.sample import Audio, Sample, fields_of


def decoded(sample: Sample, stage: str, field: str | None = None) -> list[tuple[str, Audio]]:
    """The sample's audio fields (or just ``field``) as ``(name, Audio)``; undecoded audio is a Drop."""
    names = [field] if field else fields_of(sample, "audio")
    out = []
    for name in names:
        value = sample.get(name)
        if value is None:
            continue
        if not isinstance(value, Audio):
            raise Drop("audio.not_decoded", f"{stage} needs decoded audio: run audio.decode first", field=name)
        out.append((name, value))
    return out


def mono(audio: Audio) -> np.ndarray:
    """``shape=(n,)`` float32: the samples, channel-averaged when multichannel."""
    x = audio.samples
    return (x.mean(axis=0) if x.ndim == 2 else x).astype(np.float32, copy=False)


def frame_db(x: np.ndarray, frame: int, *, eps: float = 1e-10) -> np.ndarray:
    """RMS level in dBFS of consecutive non-overlapping frames of ``frame`` samples (last one partial)."""
    n = max(1, -(-x.shape[-1] // frame))
    padded = np.zeros(n * frame, dtype=np.float64)
    padded[: x.shape[-1]] = x
    sq = np.square(padded).reshape(n, frame)
    counts = np.full(n, frame, dtype=np.float64)
    counts[-1] = x.shape[-1] - (n - 1) * frame or frame
    return 10.0 * np.log10(sq.sum(axis=1) / counts + eps)
