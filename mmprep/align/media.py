"""Getting the audio signal and video frame rate out of a sample or a file, for alignment."""

from __future__ import annotations

import io
import struct
from fractions import Fraction
from typing import Any

import numpy as np

from mmprep.errors import Drop
from mmprep.sample import Audio, Sample, fields_of

_PCM_GUID_TAIL = bytes.fromhex("000000001000800000aa00389b71")  # KSDATAFORMAT_SUBTYPE_* after the format tag


def read_wav(data: bytes) -> tuple[np.ndarray, int] | None:
    """``shape=(channels, n)`` float32 and the rate of a 16-bit PCM or 32-bit float WAV, the values
    soundfile gives (int16 / 32768), or None for anything else (then soundfile / PyAV read it).

    Plain WAV is what ``mmprep align`` meets most; reading it here spares each process importing
    soundfile and loading libsndfile (~15 ms)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    fmt, pos = None, 12
    while pos + 8 <= len(data):
        cid, size = data[pos : pos + 4], struct.unpack_from("<I", data, pos + 4)[0]
        body = pos + 8
        if cid == b"fmt " and size >= 16:
            fmt = struct.unpack_from("<HHIIHH", data, body)
            if fmt[0] == 0xFFFE and size >= 40 and data[body + 26 : body + 40] == _PCM_GUID_TAIL:
                fmt = (struct.unpack_from("<H", data, body + 24)[0], *fmt[1:])  # WAVE_FORMAT_EXTENSIBLE
        elif cid == b"data":
            if fmt is None or body + size > len(data):
                return None
            tag, channels, rate, _, align, bits = fmt
            if channels < 1 or rate < 1 or align != channels * bits // 8 or size % align:
                return None
            if (tag, bits) == (1, 16):
                x = np.frombuffer(data, "<i2", size // 2, body).astype(np.float32) * np.float32(1 / 32768)
            elif (tag, bits) == (3, 32):
                x = np.frombuffer(data, "<f4", size // 4, body).astype(np.float32)
            else:
                return None
            return x.reshape(-1, channels).T.copy(), int(rate)
        pos = body + size + (size & 1)
    return None


def decode_audio(data: bytes, *, field: str = "media") -> tuple[np.ndarray, int]:
    """Mono float32 samples and rate of audio bytes or of a video's first audio track.

    Raises Drop (``audio.no_stream``, ``audio.corrupt``, ``audio.empty``) for bad media."""
    got = read_wav(data)
    if got is None:
        from mmprep.stages.audio.io import read_audio

        got = read_audio(data, field=field)
    samples, rate = got
    if samples.ndim == 2:  # one channel: itself (its mean), without a pass over the samples
        samples = samples[0] if samples.shape[0] == 1 else samples.mean(axis=0)
    if samples.size == 0:
        raise Drop("audio.empty", "zero samples", field=field)
    return samples.astype(np.float32, copy=False), rate


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
