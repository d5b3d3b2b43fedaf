"""Getting the audio signal and video frame rate out of a sample or a file, for alignment."""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Any

import numpy as np

from mmprep.errors import Drop
from mmprep.sample import Audio, Sample, fields_of


def decode_audio(data: bytes, *, field: str = "media") -> tuple[np.ndarray, int]:
    """Mono float32 samples and rate of audio bytes or of a video's first audio track.

    Raises Drop (``audio.no_stream``, ``audio.corrupt``, ``audio.empty``) for bad media."""
    from mmprep.stages.audio.io import read_audio

    samples, rate = read_audio(data, field=field)
    if samples.ndim == 2:
        samples = samples.mean(axis=0)
    if samples.size == 0:
        raise Drop("audio.empty", "zero samples", field=field)
    return samples.astype(np.float32), rate


def video_info(data: bytes) -> dict[str, Any] | None:
    """``{"fps": "num/den", "frames": n or None}`` of a video's first stream, or None."""
    import av

    try:
        with av.open(io.BytesIO(data)) as c:
            if not c.streams.video:
                return None
            vs = c.streams.video[0]
            rate = vs.average_rate or vs.guessed_rate
            if not rate:
                return None
            return {"fps": str(Fraction(rate)), "frames": int(vs.frames) or None}
    except av.error.FFmpegError:
        return None


def sample_audio(sample: Sample, prefer: str | None = None) -> tuple[str, np.ndarray, int]:
    """(field, mono samples, rate) from the sample's audio (decoded or bytes), else its video's track.

    Raises Drop(``align.no_media``) when the sample has neither."""
    names = [prefer] if prefer else fields_of(sample, "audio") + fields_of(sample, "video")
    for name in names:
        value = sample.get(name)
        if isinstance(value, Audio):
            x = value.samples.mean(axis=0) if value.samples.ndim == 2 else value.samples
            return name, x, value.rate
        if isinstance(value, bytes):
            x, rate = decode_audio(value, field=name)
            return name, x, rate
    raise Drop("align.no_media", "the sample has no audio or video field to align against")
