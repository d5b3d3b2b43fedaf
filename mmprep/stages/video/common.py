"""Opening videos held in memory, under a per-sample time limit, for every video stage."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
from pydantic import Field

from mmprep.errors import Drop
from mmprep.sample import Sample, fields_of
from mmprep.stage import StageConfig


class VideoConfig(StageConfig):
    time_limit: float = Field(120.0, gt=0, description="Seconds of decoding allowed per sample before it is "
                                                       "dropped (video.timeout), so one file cannot stall a worker.")


class Deadline:
    """Cooperative time limit: ``check()`` between frames raises ``Drop('video.timeout')`` once it has passed.

    A single frame that never returns from the decoder is not interrupted; frames are short in practice.
    """

    def __init__(self, seconds: float, field: str):
        self.end = time.monotonic() + seconds
        self.seconds = seconds
        self.field = field

    def check(self) -> None:
        if time.monotonic() > self.end:
            raise Drop("video.timeout", f".{self.field}: decoding took longer than {self.seconds:g} s",
                       field=self.field)


@contextmanager
def open_video(data: Any, *, field: str) -> Iterator[Any]:
    """A PyAV input container; FFmpeg errors (truncated, unsupported codec) become ``video.corrupt``."""
    import av

    if not isinstance(data, (bytes, bytearray)):
        raise Drop("video.not_bytes", f".{field} holds {type(data).__name__}, expected encoded bytes", field=field)
    try:
        with av.open(io.BytesIO(data)) as container:
            yield container
    except av.error.FFmpegError as exc:
        raise Drop("video.corrupt", f".{field}: PyAV: {exc}", field=field) from None


def video_stream(container: Any, *, field: str) -> Any:
    if not container.streams.video:
        raise Drop("video.no_stream", f".{field} has no video stream", field=field)
    stream = container.streams.video[0]
    if stream.codec_context is None:  # FFmpeg knows no decoder for this codec tag
        tag = getattr(stream, "codec_tag", None) or "unknown"
        raise Drop("video.unsupported_codec", f".{field}: no decoder for video codec {tag!r}", field=field)
    stream.thread_type = "AUTO"
    return stream


def stream_duration(container: Any, stream: Any) -> float | None:
    """Seconds of the video stream (container duration when the stream does not say)."""
    if stream.duration and stream.time_base:
        return float(stream.duration * stream.time_base)
    if container.duration:
        return container.duration / 1_000_000
    return None


def stream_start(stream: Any) -> float:
    """Seconds of the stream's first timestamp. MPEG-TS and recordings cut with their timestamps kept start
    anywhere (1.4 s, 10 h); every time a video stage takes or reports counts from here, as a player's does."""
    if stream.start_time is not None and stream.time_base:
        return float(stream.start_time * stream.time_base)
    return 0.0


def last_frame_end(container: Any, stream: Any) -> float | None:
    """Seconds at which the last frame stops showing (its timestamp plus its duration), from the packets.

    Read by demuxing only (no decoding). A header duration can be shorter than this (variable frame rate,
    edit lists, a muxer that wrote the last frame's start), and windows cut from it would lose the tail.
    Seconds on the stream's own clock (``frame.time``: :func:`stream_start` not subtracted). Consumes the
    container.
    """
    end = None
    tb = stream.time_base
    if not tb:
        return None
    for packet in container.demux(stream):
        if packet.pts is not None:
            t = float((packet.pts + (packet.duration or 0)) * tb)
            end = t if end is None else max(end, t)
    return end


def video_span(container: Any, stream: Any, header: float | None) -> tuple[float, float]:
    """``(start, duration)`` in seconds: :func:`stream_start`, and the later of ``header`` (a duration) and
    the last frame's end counted from the start. Consumes the container.

    When the video stream records no duration of its own (Matroska, WebM), ``header`` is the container's:
    the longest stream's (Opus audio outlasting the picture by 8 ms gave a target past the last frame), or
    even an end time (Matroska muxers that keep the source's timestamps: a 2 s video at 10-12 s says 12 s).
    The last frame's end is used alone then.
    """
    start = stream_start(stream)
    end = last_frame_end(container, stream)
    if end is None:
        return start, header or 0.0
    if not stream.duration:
        return start, end - start
    return start, max(header or 0.0, end - start)


def decoded_frames(container: Any, stream: Any, notes: dict[str, Any]) -> Iterator[Any]:
    """``container.decode(stream)``, ending at the first FFmpeg error once a frame has come out: a truncated or
    corrupt tail (a recording cut off, a partial download) keeps what decoded before it, and
    ``notes["truncated"]`` says where it stopped. An error before the first frame is raised (``video.corrupt``).
    """
    import av

    frames = container.decode(stream)
    n = 0
    while True:
        try:
            frame = next(frames)
        except StopIteration:
            return
        except av.error.FFmpegError as exc:
            if not n:
                raise
            notes["truncated"] = f"decoding stopped after {n} {stream.type} frames: {exc}"
            return
        n += 1
        yield frame


def upright_rgb(frame: Any) -> np.ndarray:
    """RGB uint8 ``shape=(h, w, 3)`` as a player shows it: the frame's display-matrix rotation applied.

    Phones store portrait video as landscape pixels plus a rotation (``frame.rotation``, degrees
    counter-clockwise, e.g. -90 = turn 90 degrees clockwise to display). Flips in the matrix are not applied.
    """
    rgb = frame.to_ndarray(format="rgb24")
    quarter_turns = round((getattr(frame, "rotation", 0) or 0) / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, quarter_turns)) if quarter_turns else rgb


def first_video_field(sample: Sample) -> str | None:
    names = fields_of(sample, "video")
    return names[0] if names else None
