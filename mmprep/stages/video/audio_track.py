"""``video.audio_track``: the video's audio stream as PCM (:class:`~mmprep.sample.Audio`) for the audio stages."""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator

from mmprep.codecs import SOUNDFILE_EXTS
from mmprep.errors import Drop
from mmprep.sample import Audio, Sample, meta
from mmprep.stage import Stage, register
from mmprep.stages.audio.io import header_samples
from mmprep.stages.video.common import (
    Deadline,
    VideoConfig,
    decoded_frames,
    first_video_field,
    open_video,
    stream_start,
)

AUDIO_EXTS = SOUNDFILE_EXTS  # what mmprep.codecs.encode_audio writes with soundfile


def _planar(frame: Any) -> np.ndarray:
    """``shape=(channels, n)`` from an interleaved PyAV audio frame."""
    return frame.to_ndarray().reshape(-1, frame.layout.nb_channels).T


def decode_track(container: Any, *, field: str, rate: int | None, mono: bool, deadline: Deadline | None = None,
                 out_field: str = "wav", notes: dict[str, Any] | None = None) -> tuple[np.ndarray, int, float]:
    """float32 ``shape=(n,)`` mono or ``(channels, n)``, in [-1, 1], its rate (resampled by FFmpeg's swr), and
    the time of its first sample in seconds on the container's clock (``frame.time``, not shifted). A corrupt
    tail ends the track where it starts (``notes["truncated"]``)."""
    import av

    if not container.streams.audio:
        raise Drop("video.no_audio", f".{field} has no audio stream", field=out_field)
    stream = container.streams.audio[0]
    out_rate = int(rate or stream.codec_context.sample_rate or stream.rate or 0)
    layout: Any = "mono" if mono else None
    # Interleaved output: PyAV's to_ndarray crashes the process on planar frames of 8+ channels (7.1). A new
    # resampler whenever the input changes rate or layout (broadcast TS does at ad breaks): one refuses them.
    resampler, key = None, None
    chunks: list[np.ndarray] = []
    first: float | None = None
    for frame in decoded_frames(container, stream, notes if notes is not None else {}):
        if deadline is not None:
            deadline.check()
        if first is None:
            first = float(frame.time) if frame.time is not None else None
            out_rate, layout = int(rate or frame.sample_rate), layout or frame.layout
        if key != (frame.sample_rate, frame.layout.name, frame.format.name):
            chunks += [_planar(out) for out in resampler.resample(None)] if resampler else []
            key = (frame.sample_rate, frame.layout.name, frame.format.name)
            resampler = av.AudioResampler(format="flt", layout=layout, rate=out_rate)
        chunks += [_planar(out) for out in resampler.resample(frame)]
    chunks += [_planar(out) for out in resampler.resample(None)] if resampler else []
    if not chunks:
        raise Drop("video.no_audio", f".{field}: the audio stream holds no samples", field=out_field)
    channels = chunks[0].shape[0]
    length = header_samples(container, stream, out_rate)  # AAC end padding cut off (MP4 records the length)
    samples = np.concatenate(chunks, axis=1).astype(np.float32)[:channels, :length]
    return (samples[0] if mono else samples), out_rate, (first if first is not None else stream_start(stream))


def decode_audio(container: Any, *, field: str, rate: int | None, mono: bool, deadline: Deadline | None = None,
                 out_field: str = "wav") -> tuple[np.ndarray, int]:
    """:func:`decode_track` without the start time."""
    samples, out_rate, _ = decode_track(container, field=field, rate=rate, mono=mono, deadline=deadline,
                                        out_field=out_field)
    return samples, out_rate


MAX_OFFSET = 60.0  # seconds: an audio stream further from the picture has broken timestamps (a PTS wrap)


def plausible_offset(seconds: float, notes: dict[str, Any]) -> float:
    """``seconds`` (the audio's first sample after the video's first frame), or 0 when it is further than
    :data:`MAX_OFFSET` either way: that many seconds of zeros (or cut audio) would be a broken timestamp's
    doing, and hours of padding would fill the memory. ``notes["offset_ignored"]`` keeps the value."""
    if abs(seconds) <= MAX_OFFSET:
        return seconds
    notes["offset_ignored"] = round(seconds, 6)
    return 0.0


def shift(samples: np.ndarray, offset: int) -> np.ndarray:
    """``samples`` moved ``offset`` samples later on the clock (zeros in front), or ``-offset`` earlier (cut)."""
    if offset >= 0:
        return np.pad(samples, [(0, 0)] * (samples.ndim - 1) + [(offset, 0)]) if offset else samples
    return samples[..., -offset:]


class AudioTrackConfig(VideoConfig):
    # Only extensions the shard writer has an audio encoder for (mmprep.codecs.encode_audio): any other
    # name validated, then failed every sample with encode.unsupported.
    field: str = Field("wav", pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*$",
                       description="Output field; its extension (wav, flac or ogg) is how the writer stores it.")
    rate: int | None = Field(None, ge=1000, le=384_000,
                             description="Resample to this many Hz (at most 384000, as audio.resample); none keeps "
                                         "the stream's rate.")
    mono: bool = Field(True, description="Mix down to one channel.")
    nonfinite: Literal["drop", "zero"] = Field(
        "drop", description="NaN/inf samples (float PCM tracks): lose the field (audio.nonfinite) or replace them "
                            "with 0, as audio.decode does.")

    @field_validator("field")
    @classmethod
    def _encodable(cls, value: str) -> str:
        if value.rsplit(".", 1)[-1] not in AUDIO_EXTS:
            raise ValueError(f"{value!r} must end in one of {', '.join(AUDIO_EXTS)} (the audio formats the shard "
                             "writer encodes)")
        return value


@register
class VideoAudioTrack(Stage):
    """Extract the first audio stream as PCM; a video without one loses only this field (video.no_audio)."""

    name = "video.audio_track"
    version = "7"  # offsets over 60 s ignored; 6: rate changes; 5: NaN/inf; 4: corrupt tails; 3: aligned
    reads = ("video",)
    writes = ("audio",)
    Config = AudioTrackConfig

    def process(self, sample: Sample) -> Sample:
        c = self.config
        ext = first_video_field(sample)
        try:
            with open_video(sample[ext], field=ext) as container:
                notes: dict[str, Any] = {}
                samples, rate, first = decode_track(container, field=ext, rate=c.rate, mono=c.mono,
                                                    deadline=Deadline(c.time_limit, ext), out_field=c.field,
                                                    notes=notes)
                # sample 0 at the video's first frame (time 0 of video.frames and video.clips): MPEG-TS
                # streams start anywhere, and AAC priming before the picture is not audio
                video = container.streams.video
                offset = plausible_offset(first - stream_start(video[0]) if video else 0.0, notes)
        except Drop as drop:
            if drop.reason != "video.corrupt":
                raise
            # a broken audio stream costs the audio field, not the video
            raise Drop("video.audio_corrupt", drop.message, field=c.field) from None
        samples = shift(samples, int(round(offset * rate)))
        bad = ~np.isfinite(samples)
        n_bad = int(bad.sum())
        if n_bad and c.nonfinite == "drop":
            raise Drop("audio.nonfinite", f".{ext}: {n_bad} NaN or infinite samples in the audio track", field=c.field)
        if n_bad:
            samples = np.where(bad, np.float32(0.0), samples)
            notes["nonfinite_zeroed"] = n_bad
        if not samples.shape[-1]:
            raise Drop("video.no_audio", f".{ext}: the audio stream ends before the video starts", field=c.field)
        sample[c.field] = Audio(samples=samples, rate=rate, info={"from": ext})
        meta(sample).setdefault("audio_track", {})[c.field] = {"rate": rate, "seconds": samples.shape[-1] / rate,
                                                               "source": ext, "offset": round(offset, 6), **notes}
        return sample
