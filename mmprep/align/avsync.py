"""A/V sync: how far the audio lags (+) or leads (-) the picture, from events seen and heard.

Visual events are frames whose mean absolute luma change from the previous frame spikes (flashes,
cuts, sudden motion), timed at the frame's presentation time. Audio events are sound onsets found
at 1 ms on a full-band energy envelope (hysteresis over the file's own floor and level). Every
(visual, audio) pair within ``+-max_offset`` votes for its time difference; the votes are
smoothed with a 20 ms box and the peak, refined by the median of the pairs within 40 ms of it,
is the offset. The confidence grows with the share of visual events that found a partner at that
offset and with how far the peak stands above the second-best one.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from typing import Any

import numpy as np

from mmprep.align.speech import RATE, close_gaps, hysteresis, ms_energy, to_analysis, window_db


class NoStream(ValueError):
    """The container has no stream of the kind needed (``reason``: ``av.no_audio`` / ``av.no_video``)."""

    def __init__(self, reason: str, message: str):
        self.reason = reason
        super().__init__(message)


@dataclass
class VideoSignals:
    frame_times: np.ndarray  # s, shape=(n_frames,)
    change: np.ndarray  # mean |luma change| vs previous frame, shape=(n_frames,), change[0] = 0
    fps: float
    audio: np.ndarray | None  # mono float at the analysis rate (16 kHz)
    audio_start: float  # s, presentation time of the first audio sample


def read_video(data: bytes, *, size: tuple[int, int] = (64, 36)) -> VideoSignals:
    """Decode frame-change energy and the audio track of a video with PyAV (raises NoStream, av errors)."""
    import av

    times, grays = [], []
    with av.open(io.BytesIO(data)) as c:
        if not c.streams.video:
            raise NoStream("av.no_video", "the file has no video stream")
        vs = c.streams.video[0]
        fps = float(vs.average_rate or vs.guessed_rate or 25)
        for f in c.decode(vs):
            times.append(float(f.time) if f.time is not None else len(times) / fps)
            grays.append(f.reformat(width=size[0], height=size[1], format="gray").to_ndarray())  # uint8: 2.3 KB
    audio, a_start = None, 0.0
    with av.open(io.BytesIO(data)) as c:
        if c.streams.audio:
            st = c.streams.audio[0]
            chunks, rate = [], st.rate or st.codec_context.sample_rate
            for f in c.decode(st):
                if not chunks and f.time is not None:
                    a_start = float(f.time)
                arr = f.to_ndarray().astype(np.float32)
                chunks.append(arr if f.format.is_planar else arr.reshape(-1, f.layout.nb_channels).T)
            if chunks:
                audio = to_analysis(np.concatenate(chunks, axis=1), int(rate))
    order = np.argsort(times, kind="stable")
    return VideoSignals(np.asarray(times)[order], _change([grays[i] for i in order]), fps, audio, a_start)


def _change(grays: list[np.ndarray], chunk: int = 4096) -> np.ndarray:
    """Mean absolute luma change of each frame from the one before (0 for the first), a chunk of frames
    at a time: an hour at 30 fps is 250 MB of 64x36 uint8 frames, not gigabytes of float copies."""
    change = np.zeros(len(grays))
    for lo in range(1, len(grays), chunk):
        block = np.stack(grays[lo - 1 : lo + chunk]).astype(np.int16)
        change[lo : lo + len(block) - 1] = np.abs(np.diff(block, axis=0)).mean(axis=(1, 2))
    return change


def visual_events(sig: VideoSignals) -> np.ndarray:
    """Times (s) of frames where a change far above the typical change starts."""
    c = sig.change
    if c.size < 3:
        return np.zeros(0)
    med = float(np.median(c))
    mad = float(np.median(np.abs(c - med))) * 1.4826
    thr = med + max(8 * mad, 0.25 * (c.max() - med), 2.0)
    above = c >= thr
    k = np.flatnonzero(above & ~np.concatenate([[False], above[:-1]]))  # first frame of each change run
    t = sig.frame_times[k]
    keep = np.concatenate([[True], np.diff(t) > 0.1]) if t.size else t.astype(bool)
    return t[keep]  # a flash changes two frames (on, off): only its first counts


def audio_onsets(x: np.ndarray) -> np.ndarray:
    """Onset times (s) of sound events: 1 ms envelope, hysteresis, runs closed over 40 ms gaps."""
    if x is None or x.size < RATE // 10:
        return np.zeros(0)
    c = ms_energy(x)
    env = window_db(c, np.arange(c.size - 1), 5)
    level = float(np.percentile(env, 99.5))
    floor = max(float(np.percentile(env, 20)), level - 60)
    if level - floor < 10:
        return np.zeros(0)
    m = close_gaps(hysteresis(env, floor + 0.3 * (level - floor), floor + 0.6 * (level - floor)), 40, 5)
    d = np.diff(np.concatenate([[0], m.astype(np.int8)]))
    return np.flatnonzero(d == 1) / 1000.0


def estimate(sig: VideoSignals, *, max_offset: float = 1.0) -> dict[str, Any]:
    """``{"status", "offset", "confidence", "visual_events", "audio_events", "matched", "reasons"}``.

    ``offset`` (s): audio time minus picture time of the same event; > 0 means the audio is late."""
    if sig.audio is None:
        return {"status": "failed", "offset": None, "confidence": 0.0, "reasons": ["av.no_audio"]}
    vis = visual_events(sig)
    aud = audio_onsets(sig.audio) + sig.audio_start
    base = {"visual_events": int(vis.size), "audio_events": int(aud.size), "fps": round(sig.fps, 4)}
    if vis.size < 2 or aud.size < 2:
        return {**base, "status": "failed", "offset": None, "confidence": 0.0, "reasons": ["av.too_few_events"]}
    diffs = (aud[None, :] - vis[:, None]).ravel()
    diffs = diffs[np.abs(diffs) <= max_offset]
    if diffs.size == 0:
        return {**base, "status": "failed", "offset": None, "confidence": 0.0, "reasons": ["av.no_pairs"]}
    grid = np.arange(-max_offset, max_offset + 1e-9, 0.001)
    votes = np.zeros(grid.size)
    idx = np.clip(np.round((diffs + max_offset) * 1000).astype(int), 0, grid.size - 1)
    np.add.at(votes, idx, 1.0)
    smooth = np.convolve(votes, np.ones(41), mode="same")  # +-20 ms
    k = int(np.argmax(smooth))
    near = diffs[np.abs(diffs - grid[k]) <= 0.04]
    offset = float(np.median(near))
    matched = int(sum(np.any(np.abs(aud - v - offset) <= 0.04) for v in vis))
    away = smooth.copy()
    away[max(0, k - 100) : k + 101] = 0
    second = float(away.max())
    share = matched / vis.size
    margin = 1 - second / max(float(smooth[k]), 1e-9)
    conf = float(np.clip(share * margin * min(1.0, matched / 3), 0, 1))
    reasons = [] if conf >= 0.5 else ["av.low_confidence"]
    return {**base, "status": "ok" if not reasons else "low_confidence", "offset": round(offset, 4),
            "confidence": round(conf, 4), "matched": matched, "reasons": reasons}
