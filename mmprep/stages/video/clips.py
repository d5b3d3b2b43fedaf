"""``video.clips``: cut a video into clips, by fixed windows or by subtitle cues, exact to the frame.

Every clip is re-encoded from decoded frames (not cut at keyframes), so clip ``[start, end)`` holds
exactly the frames whose timestamps fall in it: its first frame is the first at or after ``start``
(1 ms tolerance), and its reported ``end`` is its last frame's timestamp plus that frame's duration: up
to the next frame's timestamp (so the clips of a variable-frame-rate video meet, audio included), or one
frame at the average rate for the video's last frame.
Each clip becomes its own sample ``KEY/_clip0003`` with ``mp4`` (+ ``txt`` for a cue's text).

Times count from the video stream's first timestamp (an MPEG-TS starting at 10 s has its first frame
at 0; windows and cues are on that clock, and each clip's audio is cut on the same clock, wherever the
audio stream itself starts). Frames keep their source timestamps (shifted so the clip starts at 0, in
the source stream's time base), so a variable-frame-rate video stays in sync with its audio. A rotated source (a display
matrix, as phones write) keeps its rotation: the pixels are re-encoded as stored and the same
display matrix is written on the clip's stream, so players and ``video.frames`` turn it upright.
"""

from __future__ import annotations

import io
from fractions import Fraction
from typing import Any, Literal

import numpy as np
from pydantic import Field

from mmprep.codecs import held_rate
from mmprep.errors import ConfigError, Drop
from mmprep.keys import child_key
from mmprep.sample import KEY, META, SOURCE, Sample, fields_of
from mmprep.stage import Stage, register
from mmprep.stages.video.audio_track import decode_track, plausible_offset, shift
from mmprep.stages.video.common import (
    Deadline,
    VideoConfig,
    decoded_frames,
    first_video_field,
    open_video,
    stream_duration,
    stream_start,
    video_span,
    video_stream,
)

EPS = 1e-3
MIN_WINDOW = 0.1  # seconds: a shorter window or stride holds at most a couple of frames
MAX_OVERLAP = 32  # clips open at once (length / stride); each is a live encoder holding frames
# encoder threads per clip: x264 and MPEG-4 Part 2 cut a picture into one slice per thread (PyAV asks for slice
# threads), and the default count follows the process's CPUs; one gives the same bytes on every machine (and build
# workers already use every core)
ENCODER_THREADS = 1
# x264's presets: any other value makes the encoder refuse to open, which drops every video as video.corrupt
X264Preset = Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow",
                     "placebo"]


class ClipsConfig(VideoConfig):
    mode: Literal["windows", "cues"] = Field("windows", description="windows: fixed length every `stride` s; "
                                                                   "cues: one clip per subtitle cue.")
    length: float = Field(10.0, ge=MIN_WINDOW, description="windows: clip length in seconds.")
    stride: float | None = Field(None, ge=MIN_WINDOW,
                                 description="windows: seconds between clip starts (default: length); at least "
                                             f"length / {MAX_OVERLAP}.")
    min_length: float = Field(0.5, ge=0, description="Shorter clips (the tail, a short cue) are skipped.")
    cue_field: str = Field("srt", description="cues: the subtitle field (run subtitle.decode first or pass SRT).")
    audio: bool = Field(True, description="Carry the matching audio (AAC) into each clip.")
    crf: int = Field(20, ge=0, le=51, description="H.264 quality of re-encoded clips (lower = better, bigger).")
    preset: X264Preset = Field("veryfast", description="x264 preset (speed vs size).")
    keep_fields: list[str] = Field(default_factory=list, description="Parent fields copied into every clip.")



def windows(duration: float, length: float, stride: float, min_length: float) -> list[tuple[float, float, str]]:
    out, start = [], 0.0
    while start < duration - EPS:
        end = min(start + length, duration)
        if end - start >= min_length - EPS:
            out.append((start, end, ""))
        start += stride
    return out


def cues(text: Any, *, field: str, min_length: float) -> list[tuple[float, float, str]]:
    """``(start, end, text)`` of the subtitle cues at least ``min_length`` long, parsed as alignment parses
    them (:func:`mmprep.align.subs.parse`: WebVTT identifiers and notes are not cue text, CRLF is read)."""
    from mmprep.align.subs import SubtitleError, parse

    try:  # bytes are decoded as subtitle.decode does (BOM, UTF-8, GBK, UTF-16...)
        doc = parse(text, hint=field)
    except SubtitleError as exc:
        if exc.reason == "subtitle.empty":  # an empty file, or a WebVTT header alone: no cue to cut at
            return []
        raise Drop("video.bad_cues", f".{field}: {exc}", field=field) from None
    return [(c.start / 1000, c.end / 1000, c.text) for c in doc.cues if (c.end - c.start) / 1000 >= min_length - EPS]


def x264_options(c: ClipsConfig) -> dict[str, str]:
    """libx264's options: the config's quality and speed, and ``mbtree=0``.

    x264's macroblock-tree rate control (on with B-frames in every preset but ultrafast) reads uninitialised
    memory in its AVX-512 code: on a CPU that has AVX-512 the same frames gave other clip bytes (and pixels) from
    call to call and build to build, while shards must be the same bytes for the same input (the content cache,
    incremental builds). Without it a clip depends on its frames alone, at any ``preset``; at the same ``crf``
    clips come out somewhat larger and sharper."""
    return {"crf": str(c.crf), "preset": c.preset, "mbtree": "0"}


class _ClipWriter:
    """One output mp4 being written; frames keep their source timestamps, shifted to start at 0."""

    def __init__(self, rate: Fraction, time_base: Fraction, first: Any, c: ClipsConfig, audio_rate: int):
        import av

        self.buf = io.BytesIO()
        self.out = av.open(self.buf, mode="w", format="mp4")
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        self.vs = self.out.add_stream(codec, rate=rate)
        # x264's 4:2:0 needs even sizes: an odd one loses its last row / column (a 1-pixel one gains a copy)
        self.source_size = (first.width, first.height)
        self.size = (max(2, first.width // 2 * 2), max(2, first.height // 2 * 2))
        self.vs.width, self.vs.height, self.vs.pix_fmt = *self.size, "yuv420p"
        self.src_time_base = time_base
        # MPEG-4 Part 2 (the fallback without libx264) refuses time base denominators above 65535 (MPEG-TS's 1/90000)
        self.time_base = time_base if time_base.denominator <= 65535 else Fraction(1, 60000)
        self.vs.codec_context.time_base = self.time_base
        self.vs.codec_context.thread_count = ENCODER_THREADS
        self.rotation = int(round(getattr(first, "rotation", 0) or 0))
        if self.rotation:
            self.vs.set_display_rotation(self.rotation)
        if codec == "libx264":
            self.vs.options = x264_options(c)
        self.astream = None
        if audio_rate:  # every stream must exist before the first packet is muxed
            self.astream = self.out.add_stream("aac", rate=audio_rate)
            self.astream.layout = "mono"
        self.rate = rate
        self.n = 0
        self.first: float | None = None
        self.last: float | None = None
        self.pts0: int | None = None
        self.last_pts = -1

    def add(self, frame: Any, t: float) -> None:
        src_pts = frame.pts if frame.pts is not None else int(round(t / self.src_time_base))
        frame = self._fit(frame).reformat(format="yuv420p")
        self.pts0 = src_pts if self.pts0 is None else self.pts0
        shifted = round((src_pts - self.pts0) * self.src_time_base / self.time_base)
        pts = max(shifted, self.last_pts + 1)  # strictly increasing, as the encoder requires
        frame.pts, frame.time_base = pts, self.time_base
        self.last_pts = pts
        for packet in self.vs.encode(frame):
            self.out.mux(packet)
        self.n += 1
        self.first = t if self.first is None else self.first
        self.last = t

    def _fit(self, frame: Any) -> Any:
        """The frame at the clip's size: cut (or edge-padded) to even from the source's size, scaled when the
        stream changed size mid-way (broadcast TS does, at ad breaks)."""
        import av

        if (frame.width, frame.height) == self.size:
            return frame
        if (frame.width, frame.height) != self.source_size:
            return frame.reformat(width=self.size[0], height=self.size[1])
        w, h = self.size
        rgb = frame.to_ndarray(format="rgb24")[:h, :w]
        rgb = np.pad(rgb, ((0, h - rgb.shape[0]), (0, w - rgb.shape[1]), (0, 0)), mode="edge")
        return av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")

    def close(self, audio: np.ndarray | None, rate: int) -> bytes:
        import av

        for packet in self.vs.encode():
            self.out.mux(packet)
        a = self.astream
        if a is not None and audio is not None:
            for start in range(0, audio.size, 1024):
                chunk = np.ascontiguousarray(audio[start : start + 1024], np.float32)
                fr = av.AudioFrame.from_ndarray(chunk[None, :], format="fltp", layout="mono")
                fr.sample_rate, fr.pts = rate, start
                for packet in a.encode(fr):
                    self.out.mux(packet)
            for packet in a.encode():
                self.out.mux(packet)
        self.out.close()
        return self.buf.getvalue()


def cut(data: bytes, spans: list[tuple[float, float, str]], c: ClipsConfig, *, field: str) -> list[dict[str, Any]]:
    """Clips in span order: ``{"mp4", "start", "end", "frames", "text"}``; spans with no frame are left out."""
    deadline = Deadline(c.time_limit, field)
    audio, arate, audio_start = None, 0, 0.0
    source_rate, lost = 0, None
    if c.audio:
        try:
            with open_video(data, field=field) as container:
                if container.streams.audio:
                    a = container.streams.audio[0]
                    source_rate = a.codec_context.sample_rate or a.rate or 0
                    # AAC holds 7.35-96 kHz at set rates: a 192 kHz or 12,345 Hz track is resampled to one it holds
                    audio, arate, audio_start = decode_track(
                        container, field=field, mono=True, deadline=deadline,
                        rate=held_rate("m4a", source_rate) if source_rate else None)
        except Drop as drop:  # an audio stream with no samples, or one that does not decode: clips without audio
            if drop.reason not in ("video.no_audio", "video.corrupt"):
                raise
            lost = f"{drop.reason}: {drop.message}"  # (a container that does not open fails again below)
    bad = None
    if audio is not None and not np.isfinite(audio).all():  # float PCM can hold NaN; AAC refuses it
        bad = ~np.isfinite(audio)
        audio = np.where(bad, np.float32(0.0), audio)
    writers: dict[int, _ClipWriter] = {}
    done: dict[int, _ClipWriter] = {}
    following: dict[int, float] = {}  # the time of the first frame after a closed clip's last one
    with open_video(data, field=field) as container:
        stream = video_stream(container, field=field)
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        time_base = stream.time_base or 1 / Fraction(rate)
        video_start = stream_start(stream)
        last_end = max(e for _, e, _ in spans)
        notes: dict[str, Any] = {}
        for frame in decoded_frames(container, stream, notes):
            deadline.check()
            t = float(frame.time) - video_start if frame.time is not None else 0.0
            if t >= last_end - EPS:
                break
            for i, (s, e, _) in enumerate(spans):
                if i in done or not (s - EPS <= t < e - EPS):
                    continue
                if i not in writers:
                    writers[i] = _ClipWriter(Fraction(rate), Fraction(time_base), frame, c, arate)
                writers[i].add(frame, t)
            for i in [i for i in writers if spans[i][1] - EPS <= t]:
                done[i] = writers.pop(i)
                following[i] = t
    cut_short = set(writers) if "truncated" in notes else set()  # open when a corrupt tail stopped decoding
    done.update(writers)
    if audio is not None:  # on the video's clock, once: sample 0 at its first frame, wherever the audio started
        offset = int(round(plausible_offset(audio_start - video_start, notes) * arate))
        audio = shift(audio, offset)
        bad = shift(bad, offset) if bad is not None else None
    clips = []
    step = float(1 / Fraction(rate))
    for i in sorted(done):
        w = done[i]
        # the last frame lasts until the next one (a variable-frame-rate video's clips then meet, and so
        # does their audio), at most past the window by one frame at the average rate
        end = w.last + step
        if i in following:
            end = min(following[i], max(spans[i][1], end))
        start = w.first
        extra: dict[str, Any] = {}
        piece = None
        if audio is not None:
            span = slice(int(round(start * arate)), int(round(end * arate)))
            piece = audio[span]
            if bad is not None and bad[span].any():
                extra["audio_nonfinite_zeroed"] = int(bad[span].sum())
            if arate != source_rate:
                extra["audio_resampled"] = [source_rate, arate]
        if lost:
            extra["audio_lost"] = lost
        if i in cut_short:
            extra["truncated"] = notes["truncated"]
        if "offset_ignored" in notes:
            extra["audio_offset_ignored"] = notes["offset_ignored"]
        if w.size != w.source_size:
            extra["resized"] = {"from": list(w.source_size), "to": list(w.size)}
        clips.append({"index": i, "mp4": w.close(piece, arate), "start": round(start, 6), "end": round(end, 6),
                      "frames": w.n, "rotation": w.rotation, "text": spans[i][2], **extra})
    return clips


@register
class VideoClips(Stage):
    """Cut each video into clips (fixed windows or subtitle cues), one sample per clip: KEY/_clip0003."""

    name = "video.clips"
    # 14: a clip ends where the next frame starts (variable frame rate: the clips and their audio meet)
    # 13: the same bytes every time (x264 without mbtree, one encoder thread); 12: child keys KEY/_clip0003
    # (KEY/clip0003 could be a real file's key); 11: cues parsed as align parses them; 10: offsets over 60 s
    # ignored; 9: silent stream; 8: rate changes
    version = "14"
    reads = ("video",)
    writes = ("video", "text")
    cacheable = True
    Config = ClipsConfig

    def check(self) -> None:
        c = self.config
        if c.mode != "windows":
            return
        if c.stride and c.length / c.stride > MAX_OVERLAP:
            raise ConfigError("stride", f"{c.stride:g} s would keep {c.length / c.stride:.0f} clips of length "
                                        f"{c.length:g} s open at once; use stride >= length / {MAX_OVERLAP}")
        if c.min_length > c.length + EPS:
            raise ConfigError("min_length", f"{c.min_length:g} s exceeds length {c.length:g} s: every window "
                                            "would be skipped")

    def process(self, sample: Sample) -> list[Sample]:
        c = self.config
        ext = first_video_field(sample)
        if c.mode == "cues":
            if c.cue_field not in sample:
                have = ", ".join(fields_of(sample, "subtitle")) or "none"
                raise Drop("video.no_cues", f"no .{c.cue_field} field for mode=cues (subtitle fields: {have})")
            spans = cues(sample[c.cue_field], field=c.cue_field, min_length=c.min_length)
            if not spans:
                raise Drop("video.clips.empty", f"no cue in .{c.cue_field} lasts min_length {c.min_length:g} s",
                           field=c.cue_field)
        else:
            with open_video(sample[ext], field=ext) as container:
                stream = video_stream(container, field=ext)
                # a header can stop before the last frame (VFR); windows count from the stream's start
                duration = video_span(container, stream, stream_duration(container, stream))[1]
            if not duration:
                raise Drop("video.no_duration", f".{ext} does not say how long it is", field=ext)
            spans = windows(duration, c.length, c.stride or c.length, c.min_length)
            if not spans:
                raise Drop("video.clips.empty", f"the video is {duration:.3f} s, shorter than min_length "
                                                f"{c.min_length:g} s", field=ext)
        parent_meta = {k: v for k, v in sample.get(META, {}).items() if k not in ("duration", "video")}
        children = []
        for clip in cut(sample[ext], spans, c, field=ext):
            child: Sample = {KEY: child_key(sample[KEY], "clip", clip["index"]), SOURCE: sample.get(SOURCE, {}),
                             "mp4": clip["mp4"]}
            child[META] = {**parent_meta, "duration": round(clip["end"] - clip["start"], 6),
                           "clip": {k: v for k, v in clip.items() if k not in ("mp4", "text")}
                           | {"parent": sample[KEY]}}
            if clip["text"]:
                child["txt"] = clip["text"]
            for name in c.keep_fields:
                if name in sample:
                    child[name] = sample[name]
            children.append(child)
        return children
