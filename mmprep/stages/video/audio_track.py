"""``video.audio_track``: the video's audio stream as PCM (:class:`~mmprep.sample.Audio`) for the audio stages."""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, field_validator

from mmprep.codecs import SOUNDFILE_EXTS
from mmprep.errors import Drop
from mmprep.sample import Audio, Sample, meta
from mmprep.stage import Stage, register
from mmprep.stages.audio.io import header_samples
from mmprep.stages.video.common import Deadline, VideoConfig, first_video_field, open_video

AUDIO_EXTS = SOUNDFILE_EXTS  # what mmprep.codecs.encode_audio writes with soundfile


def decode_audio(container: Any, *, field: str, rate: int | None, mono: bool, deadline: Deadline | None = None,
                 out_field: str = "wav") -> tuple[np.ndarray, int]:
    """float32 ``shape=(n,)`` mono or ``(channels, n)``, in [-1, 1], and its rate (resampled by FFmpeg's swr)."""
    import av

    if not container.streams.audio:
        raise Drop("video.no_audio", f".{field} has no audio stream", field=out_field)
    stream = container.streams.audio[0]
    src_rate = stream.codec_context.sample_rate or stream.rate
    channels = 1 if mono else (stream.codec_context.channels or 1)
    resampler = av.AudioResampler(format="fltp", layout="mono" if mono else stream.codec_context.layout,
                                  rate=rate or src_rate)
    chunks: list[np.ndarray] = []
    for frame in container.decode(stream):
        if deadline is not None:
            deadline.check()
        for out in resampler.resample(frame):
            chunks.append(out.to_ndarray())
    for out in resampler.resample(None):
        chunks.append(out.to_ndarray())
    if not chunks:
        raise Drop("video.no_audio", f".{field}: the audio stream holds no samples", field=out_field)
    out_rate = int(rate or src_rate)
    length = header_samples(container, stream, out_rate)  # AAC end padding cut off (MP4 records the length)
    samples = np.concatenate(chunks, axis=1).astype(np.float32)[:channels, :length]
    return (samples[0] if mono else samples), out_rate


class AudioTrackConfig(VideoConfig):
    # Only extensions the shard writer has an audio encoder for (mmprep.codecs.encode_audio): any other
    # name validated, then failed every sample with encode.unsupported.
    field: str = Field("wav", pattern=r"^[a-z0-9_]+(\.[a-z0-9_]+)*$",
                       description="Output field; its extension (wav, flac or ogg) is how the writer stores it.")
    rate: int | None = Field(None, ge=1000, le=384_000,
                             description="Resample to this many Hz (at most 384000, as audio.resample); none keeps "
                                         "the stream's rate.")
    mono: bool = Field(True, description="Mix down to one channel.")

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
    version = "2"  # AAC end padding trimmed to the length the MP4 records
    reads = ("video",)
    writes = ("audio",)
    Config = AudioTrackConfig

    def process(self, sample: Sample) -> Sample:
        c = self.config
        ext = first_video_field(sample)
        try:
            with open_video(sample[ext], field=ext) as container:
                samples, rate = decode_audio(container, field=ext, rate=c.rate, mono=c.mono,
                                             deadline=Deadline(c.time_limit, ext), out_field=c.field)
        except Drop as drop:
            if drop.reason != "video.corrupt":
                raise
            # a broken audio stream costs the audio field, not the video
            raise Drop("video.audio_corrupt", drop.message, field=c.field) from None
        sample[c.field] = Audio(samples=samples, rate=rate, info={"from": ext})
        meta(sample).setdefault("audio_track", {})[c.field] = {"rate": rate, "seconds": samples.shape[-1] / rate,
                                                               "source": ext}
        return sample
