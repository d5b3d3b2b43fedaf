"""``video.frames``: sample frames (target fps, a fixed count, or keyframes), resize, store as JPEGs or .npy.

Times count from the video stream's first timestamp (an MPEG-TS that starts at 10 s has its first frame
at 0). A frame is chosen for target time ``t`` when it is the frame on screen at ``t``: the last frame whose
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
    decoded_frames,
    first_video_field,
    open_video,
    stream_duration,
    stream_start,
    upright_rgb,
    video_span,
    video_stream,
)

EPS = 1e-3  # seconds: timestamps are rounded to the stream's time base
MAX_SIZE = 8192  # pixels: above 8K video; a larger frame would need gigabytes per frame


class FramesConfig(VideoConfig):
    mode: Literal["fps", "count", "keyframes"] = Field(
        "fps", description="fps: one frame every 1/fps s from 0; count: `count` frames at the centres of equal "
                           "spans; keyframes: only frames the codec marks as keyframes.")
    fps: float = Field(1.0, gt=0, description="mode=fps: frames per second to keep.")
    count: int = Field(8, ge=1, description="mode=count: how many frames.")
    max_frames: int = Field(100, ge=1, description="Never keep more than this many frames per video.")
    size: int | None = Field(None, ge=1, le=MAX_SIZE,
                             description="Resize each frame (by `resize_mode`) to this many pixels; none keeps "
                                         "the size.")
    resize_mode: ResizeMode = Field("keep_ratio", description="keep_ratio (shorter side), center_crop or pad.")
    output: Literal["jpg", "npy"] = Field(
        "jpg", description="jpg: fields frame000.jpg, frame001.jpg...; npy: one frames.npy, shape (n, h, w, 3) "
                           "uint8 RGB.")
    quality: int = Field(90, ge=1, le=100, description="JPEG quality.")
    keep_video: bool = Field(True, description="Keep the video field next to the frames.")


def targets(mode: str, duration: float | None, *, fps: float, count: int, limit: int) -> list[float] | None:
    """Target times in seconds, ascending; None for keyframes (every keyframe is a target).

    When more than ``limit`` frames are asked for, the ``limit`` targets are spread over the whole
    video (fps: a lower rate, ``limit / duration``; count: ``limit`` equal spans) rather than cut off
    after the first ``limit``: a model trained on the frames should see the whole video.
    """
    if mode == "keyframes":
        return None
    if not duration or duration <= 0:
        raise Drop("video.no_duration", "the video does not say how long it is; use mode=keyframes")
    if mode == "fps":
        n = wanted(mode, duration, fps=fps, count=count)
        if n > limit:
            return [k * duration / limit for k in range(limit)]
        return [k / fps for k in range(n)]
    n = min(count, limit)
    return [(i + 0.5) * duration / n for i in range(n)]


def wanted(mode: str, duration: float, *, fps: float, count: int) -> int:
    """How many frames the mode asks for before ``max_frames`` applies."""
    if mode == "fps":
        return int(np.floor(duration * fps - EPS)) + 1
    return count


def keyframe_count(data: bytes, *, field: str) -> int:
    """Keyframes in the video stream, from packet flags (demux only, nothing decoded)."""
    with open_video(data, field=field) as container:
        stream = video_stream(container, field=field)
        return sum(1 for packet in container.demux(stream) if packet.is_keyframe and packet.pts is not None)


def sample_frames(data: bytes, c: FramesConfig, *, field: str) -> tuple[list[np.ndarray], list[float], dict]:
    """Upright RGB uint8 frames ``shape=(h, w, 3)``, their timestamps in seconds, and facts for metadata."""
    deadline = Deadline(c.time_limit, field)
    chosen: list[tuple[float, Any]] = []
    keep_keys: set[int] | None = None
    facts: dict[str, Any] = {"capped": False}
    if c.mode == "keyframes":
        n_keys = keyframe_count(data, field=field)
        facts["requested"] = n_keys
        if n_keys > c.max_frames:  # every k-th keyframe, spread over the whole video
            keep_keys = {int(i) for i in np.linspace(0, n_keys - 1, c.max_frames).round()}
            facts["capped"] = True
    else:
        with open_video(data, field=field) as container:
            stream = video_stream(container, field=field)
            # a header can stop before the last frame; times count from the stream's first timestamp
            duration = video_span(container, stream, stream_duration(container, stream))[1] or None
    with open_video(data, field=field) as container:
        stream = video_stream(container, field=field)
        start = stream_start(stream)
        if c.mode == "keyframes":
            duration = stream_duration(container, stream)
        want = targets(c.mode, duration, fps=c.fps, count=c.count, limit=c.max_frames)
        if want is not None:
            asked = wanted(c.mode, duration, fps=c.fps, count=c.count)
            facts.update(requested=asked, capped=asked > c.max_frames)
            if c.mode == "fps":
                facts["fps"] = round(c.max_frames / duration, 6) if facts["capped"] else c.fps
        if want is None:
            stream.codec_context.skip_frame = "NONKEY"
        k, prev, n_key = 0, None, -1
        for frame in decoded_frames(container, stream, facts):  # a corrupt tail: facts["truncated"]
            deadline.check()
            t = float(frame.time) - start if frame.time is not None else 0.0
            if want is None:
                n_key += 1
                if keep_keys is None or n_key in keep_keys:
                    chosen.append((t, _sized(frame, c, facts)))
                if len(chosen) >= c.max_frames:
                    break
                continue
            while k < len(want) and want[k] < t - EPS:  # targets before this frame: the previous one was on
                if prev is not None and (not chosen or chosen[-1][0] != prev[0]):
                    chosen.append((prev[0], _sized(prev[1], c, facts)))
                k += 1
            if k >= len(want):
                break
            prev = (t, frame)
        if want is not None and prev is not None and k < len(want) and (not chosen or chosen[-1][0] != prev[0]):
            chosen.append((prev[0], _sized(prev[1], c, facts)))
    if not chosen:
        raise Drop("video.no_frames", f".{field}: no frame decoded", field=field)
    return [f for _, f in chosen], [round(t, 6) for t, _ in chosen], {"duration": duration, **facts}


def _sized(frame: Any, c: FramesConfig, facts: dict[str, Any]) -> np.ndarray:
    """The frame upright, resized as it is chosen: up to ``max_frames`` full 4K frames held until the end cost
    25 MB each. With ``keep_ratio``, a sliver (4000x2 at 64 would be 64x128000) is capped at MAX_SIZE instead."""
    rgb = upright_rgb(frame)
    if not c.size:
        return rgb
    h, w = rgb.shape[:2]
    if c.resize_mode == "keep_ratio" and max(h, w) * c.size > MAX_SIZE * min(h, w):
        facts["size_capped"] = True
        return resize(rgb, MAX_SIZE, "keep_ratio", side="longer")
    return resize(rgb, c.size, c.resize_mode)


def same_size(frames: list[np.ndarray], facts: dict[str, Any]) -> list[np.ndarray]:
    """The frames at the first one's size, so they stack into one array: a stream can change size mid-way
    (broadcast TS does, at ad breaks). How many were rescaled goes to ``facts["rescaled"]``."""
    import cv2

    h, w = frames[0].shape[:2]
    odd = [i for i, f in enumerate(frames) if f.shape[:2] != (h, w)]
    if odd:
        frames = [cv2.resize(f, (w, h), interpolation=cv2.INTER_AREA) if i in odd else f for i, f in enumerate(frames)]
        facts["rescaled"] = len(odd)
    return frames


@register
class VideoFrames(Stage):
    """Sample frames from the video at a target fps, a fixed count or keyframes; JPEG sequence or .npy."""

    name = "video.frames"
    version = "6"  # MKV/WebM length from the last frame; 5: slivers, size changes; 4: corrupt tails; 3: start
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
            sample["frames.npy"] = np.stack(same_size(frames, facts))
        else:
            for i, f in enumerate(frames):
                sample[f"frame{i:03d}.jpg"] = encode_image(f, "jpg", jpeg_quality=c.quality)
        meta(sample).setdefault("frames", {}).update({"times": times, "mode": c.mode, "count": len(frames),
                                                      "source": ext, **facts})
        if not c.keep_video:
            del sample[ext]
        return sample
