"""``video.frames``: sample frames (target fps, a fixed count, or keyframes), resize, store as JPEGs or .npy.

A frame is chosen for target time ``t`` when it is the frame on screen at ``t``: the last frame whose
timestamp is <= ``t`` (with a 1 ms tolerance). So at a constant source rate ``r``, a chosen frame's
timestamp is within ``1 / r`` of its target. A frame chosen for two targets is stored once.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from mmprep.errors import Drop
from mmprep.sample import Sample, meta
from mmprep.stage import Stage, register
from mmprep.stages.image.geometry import ResizeMode, resize
from mmprep.stages.video.common import (
    Deadline,
    VideoConfig,
    first_video_field,
    open_video,
    stream_duration,
    video_stream,
)

EPS = 1e-3  # seconds: timestamps are rounded to the stream's time base


class FramesConfig(VideoConfig):
    mode: Literal["fps", "count", "keyframes"] = Field(
        "fps", description="fps: one frame every 1/fps s from 0; count: `count` frames at the centres of equal "
                           "spans; keyframes: only frames the codec marks as keyframes.")
    fps: float = Field(1.0, gt=0, description="mode=fps: frames per second to keep.")
    count: int = Field(8, ge=1, description="mode=count: how many frames.")
    max_frames: int = Field(100, ge=1, description="Never keep more than this many frames per video.")
    size: int | None = Field(None, ge=1, description="Resize each frame (by `resize_mode`); none keeps the size.")
    resize_mode: ResizeMode = Field("keep_ratio", description="keep_ratio (shorter side), center_crop or pad.")
    output: Literal["jpg", "npy"] = Field(
        "jpg", description="jpg: fields frame000.jpg, frame001.jpg...; npy: one frames.npy, shape (n, h, w, 3) "
                           "uint8 RGB.")
    quality: int = Field(90, ge=1, le=100, description="JPEG quality.")
    keep_video: bool = Field(True, description="Keep the video field next to the frames.")


def targets(mode: str, duration: float | None, *, fps: float, count: int, limit: int) -> list[float] | None:
    """Target times in seconds, ascending; None for keyframes (every keyframe is a target)."""
    if mode == "keyframes":
        return None
    if not duration or duration <= 0:
        raise Drop("video.no_duration", "the video does not say how long it is; use mode=keyframes")
    if mode == "fps":
        n = int(np.floor(duration * fps - EPS)) + 1
        return [k / fps for k in range(min(n, limit))]
    return [(i + 0.5) * duration / count for i in range(min(count, limit))]


def sample_frames(data: bytes, c: FramesConfig, *, field: str) -> tuple[list[np.ndarray], list[float], dict]:
    """RGB uint8 frames ``shape=(h, w, 3)``, their timestamps in seconds, and probe facts."""
    deadline = Deadline(c.time_limit, field)
    chosen: list[tuple[float, Any]] = []
    with open_video(data, field=field) as container:
        stream = video_stream(container, field=field)
        duration = stream_duration(container, stream)
        want = targets(c.mode, duration, fps=c.fps, count=c.count, limit=c.max_frames)
        if want is None:
            stream.codec_context.skip_frame = "NONKEY"
        k, prev = 0, None
        for frame in container.decode(stream):
            deadline.check()
            t = float(frame.time) if frame.time is not None else 0.0
            if want is None:
                chosen.append((t, frame.to_ndarray(format="rgb24")))
                if len(chosen) >= c.max_frames:
                    break
                continue
            while k < len(want) and want[k] < t - EPS:  # targets before this frame: the previous one was on
                if prev is not None and (not chosen or chosen[-1][0] != prev[0]):
                    chosen.append((prev[0], prev[1].to_ndarray(format="rgb24")))
                k += 1
            if k >= len(want):
                break
            prev = (t, frame)
        if want is not None and prev is not None and k < len(want) and (not chosen or chosen[-1][0] != prev[0]):
            chosen.append((prev[0], prev[1].to_ndarray(format="rgb24")))
    if not chosen:
        raise Drop("video.no_frames", f".{field}: no frame decoded", field=field)
    frames = [f for _, f in chosen]
    if c.size:
        frames = [resize(f, c.size, c.resize_mode) for f in frames]
    return frames, [round(t, 6) for t, _ in chosen], {"duration": duration}


@register
class VideoFrames(Stage):
    """Sample frames from the video at a target fps, a fixed count or keyframes; JPEG sequence or .npy."""

    name = "video.frames"
    reads = ("video",)
    writes = ("image", "npy")
    cacheable = True
    Config = FramesConfig

    def process(self, sample: Sample) -> Sample:
        from mmprep.codecs import encode_image

        c = self.config
        ext = first_video_field(sample)
        frames, times, facts = sample_frames(sample[ext], c, field=ext)
        if c.output == "npy":
            sample["frames.npy"] = np.stack(frames)
        else:
            for i, f in enumerate(frames):
                sample[f"frame{i:03d}.jpg"] = encode_image(f, "jpg", jpeg_quality=c.quality)
        meta(sample).setdefault("frames", {}).update(
            {"times": times, "mode": c.mode, "count": len(frames), "source": ext, "duration": facts["duration"]})
        if not c.keep_video:
            del sample[ext]
        return sample
