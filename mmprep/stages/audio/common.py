"""Helpers shared by the audio stages: find decoded audio fields, keep them writable, and energy per frame."""

from __future__ import annotations

import numpy as np

from mmprep.codecs import FLAC_MAX_CHANNELS, misfit
from mmprep.errors import Drop
from mmprep.sample import Audio, Sample, fields_of, meta


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


def keep_writable(sample: Sample, ext: str) -> str:
    """The field that now holds ``ext``'s audio: ``ext`` itself, or a lossless field it was moved to because its
    format cannot hold the audio any more (Opus resampled to 44.1 kHz, MP3 to 96 kHz, MP3 in 6 channels, FLAC
    in 16 channels from a microphone array).

    The writer would refuse the field (``encode.unsupported``) and drop the whole sample unless the field is
    optional; moved to ``flac`` (``wav`` above 8 channels, or when ``flac`` is taken) it is kept, losslessly,
    and ``__meta__["audio"][new]`` says ``fallback: {reason: encode.unsupported, field: ext, message}`` (and
    ``from``: the input field, as ``audio.decode output:`` records it).
    Left where it is when both names are taken (the writer then reports it)."""
    audio = sample[ext]
    channels = audio.samples.shape[0] if audio.samples.ndim == 2 else 1
    why = misfit(ext, audio.rate, channels)
    if why is None:
        return ext
    names = ("flac", "wav") if channels <= FLAC_MAX_CHANNELS else ("wav",)
    new = next((name for name in names if name not in sample and name != ext), None)
    if new is None:
        return ext
    sample[new] = Audio(samples=sample.pop(ext).samples, rate=audio.rate, format=new, info=dict(audio.info))
    info = meta(sample).setdefault("audio", {})
    was = info.pop(ext, {})
    info[new] = {**was, "from": was.get("from", ext), "fallback": {"reason": "encode.unsupported", "field": ext,
                                                                   "message": why}}
    return new


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
