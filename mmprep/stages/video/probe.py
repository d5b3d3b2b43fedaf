"""``video.probe`` (and ``video.decode``, its validating alias): what a video holds, in metadata."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from mmprep.errors import Drop
from mmprep.sample import Sample, fields_of, meta
from mmprep.stage import Stage, register
from mmprep.stages.video.common import (
    Deadline,
    VideoConfig,
    open_video,
    stream_duration,
    stream_start,
    video_span,
    video_stream,
)


def _stream_info(s: Any) -> dict[str, Any]:
    cc = s.codec_context
    info: dict[str, Any] = {"index": s.index, "type": s.type, "codec": cc.name if cc else None}
    if s.type == "video":
        info.update(width=cc.width, height=cc.height, pix_fmt=cc.pix_fmt,
                    fps=float(s.average_rate) if s.average_rate else None, frames=s.frames or None)
    elif s.type == "audio":
        info.update(rate=cc.sample_rate, channels=cc.channels, layout=cc.layout.name if cc.layout else None)
    if s.language:
        info["language"] = s.language
    return info


def probe(data: bytes, *, field: str, decode: bool = True, time_limit: float = 120.0) -> dict[str, Any]:
    """Duration, fps, frame count, size, codecs, rotation and every stream; Drop if it does not decode.

    ``rotation`` is the display rotation in degrees from the first frame's display matrix (0 when none);
    ``start`` the video stream's first timestamp in seconds (MPEG-TS: anywhere), from which ``duration`` and
    every other video stage's times count.
    """
    deadline = Deadline(time_limit, field)
    with open_video(data, field=field) as container:
        v = video_stream(container, field=field)
        cc = v.codec_context
        info: dict[str, Any] = {
            "container": container.format.name,
            "codec": cc.name,
            "width": cc.width,
            "height": cc.height,
            "fps": float(v.average_rate) if v.average_rate else None,
            "frames": v.frames or None,
            "duration": stream_duration(container, v),
            "start": round(stream_start(v), 6),
            "rotation": 0,
            "audio": [a.codec_context.name for a in container.streams.audio],
            "streams": [_stream_info(s) for s in container.streams],
        }
        if decode:
            try:
                frame = next(container.decode(v))
            except StopIteration:
                raise Drop("video.no_frames", f".{field}: no frame could be decoded", field=field) from None
            info["rotation"] = int(getattr(frame, "rotation", 0) or 0)
            deadline.check()
    if info["start"] and not v.duration:  # only the container's duration: an end time in some Matroska files
        with open_video(data, field=field) as container:
            stream = container.streams.video[0]
            info["duration"] = video_span(container, stream, stream_duration(container, stream))[1] or None
    return info


class ProbeConfig(VideoConfig):
    decode_first: bool = Field(True, description="Decode the first frame too, so a file whose header parses but "
                                                 "whose frames do not is dropped here.")


@register
class VideoProbe(Stage):
    """Probe each video (PyAV): duration, fps, frame count, streams, codecs, rotation -> metadata."""

    name = "video.probe"
    version = "3"  # start reported; a Matroska end time no longer read as the duration
    reads = ("video",)
    writes = ("video",)
    Config = ProbeConfig

    def process(self, sample: Sample) -> Sample:
        for ext in fields_of(sample, "video"):
            info = probe(sample[ext], field=ext, decode=self.config.decode_first, time_limit=self.config.time_limit)
            meta(sample).setdefault("video", {})[ext] = info
            if info["duration"]:
                meta(sample).setdefault("duration", info["duration"])
        return sample


@register
class VideoDecode(VideoProbe):
    """Check that each video opens and decodes; keep its bytes; store its probe in metadata."""

    name = "video.decode"
