"""Voice activity per 10 ms frame: a reusable function (``speech_mask``) and the ``audio.vad`` stage.

Frame ``i`` covers samples ``[i * rate * frame_ms // 1000, (i + 1) * rate * frame_ms // 1000)`` -- integer
boundaries computed from ``i``, so frame times never drift, whatever the rate. Two detectors:

- ``energy``: frame RMS level against an adaptive threshold, ``max(noise_floor + margin_db,
  loudest - range_db, min_db)``, where the noise floor is the lower of the 10th percentile of frame
  levels and the level of the quietest 150 ms stretch (its loudest frame). A clip with no pause --
  no 150 ms stretch ``margin_db`` under its loudest frame, as after ``audio.trim`` on continuous
  speech -- has no noise floor to measure: if its level moves as speech does (10th to 90th
  percentile at least ``STEADY_DB`` apart) it is speech throughout, and the first term becomes
  ``10th percentile - margin_db``; a steady sound (tone, hum, noise) stays non-speech.
  Fast, model-free, good on clean or stationary-noise audio; it cannot tell music from speech.
- ``webrtc``: Google's WebRTC GMM VAD (``webrtcvad-wheels``; its model ships in the wheel). Audio
  at rates WebRTC lacks is resampled to 16 kHz first.

Both are smoothed the same way: speech runs shorter than ``min_speech_ms`` are removed, then
gaps shorter than ``min_silence_ms`` are filled.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from mmprep.errors import ConfigError, MissingDependency
from mmprep.sample import Sample, meta
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.audio.common import decoded, mono

WEBRTC_RATES = (8000, 16000, 32000, 48000)
PAUSE_MS = 150  # energy: the shortest stretch that can show the noise floor (the default min_silence_ms)
STEADY_DB = 6.0  # energy: speech frame levels spread wider than this (10th-90th percentile); noise, tones < 2 dB


def frame_bounds(n_samples: int, rate: int, frame_ms: int = 10) -> np.ndarray:
    """Integer sample boundaries of the frames, ``shape=(n_frames + 1,)``; the last frame may be partial."""
    n_frames = -(-n_samples * 1000 // (rate * frame_ms))
    bounds = np.arange(n_frames + 1, dtype=np.int64) * rate * frame_ms // 1000
    bounds[-1] = min(bounds[-1], n_samples)
    return bounds


def _energy_db(x: np.ndarray, bounds: np.ndarray) -> np.ndarray:
    sq = np.concatenate([[0.0], np.cumsum(np.square(x, dtype=np.float64))])
    counts = np.maximum(np.diff(bounds), 1)
    return 10.0 * np.log10((sq[bounds[1:]] - sq[bounds[:-1]]) / counts + 1e-12)


def _energy_threshold(db: np.ndarray, pause: int, margin_db: float) -> float:
    """The noise-floor term of the energy threshold (see the module docstring); ``pause`` in frames."""
    low, high = np.percentile(db, [10, 90])
    windows = np.lib.stride_tricks.sliding_window_view(db, min(pause, len(db)))
    quietest = float(windows.max(axis=1).min())
    if db.max() - quietest < margin_db and high - low >= STEADY_DB:
        return float(low) - margin_db
    return min(float(low), quietest) + margin_db


def _webrtc(x: np.ndarray, rate: int, n_frames: int, frame_ms: int, aggressiveness: int) -> np.ndarray:
    import webrtcvad

    if rate not in WEBRTC_RATES:
        from mmprep.stages.audio.resample import resample

        x, rate = resample(x, rate, 16000), 16000
    vad = webrtcvad.Vad(aggressiveness)
    step = rate * frame_ms // 1000
    pcm = (np.clip(x, -1.0, 1.0) * 32767).astype("<i2")
    pcm = np.concatenate([pcm, np.zeros(n_frames * step - len(pcm) if n_frames * step > len(pcm) else 0, "<i2")])
    return np.array([vad.is_speech(pcm[i * step : (i + 1) * step].tobytes(), rate) for i in range(n_frames)],
                    dtype=bool)


def smooth(mask: np.ndarray, *, min_speech: int, min_silence: int) -> np.ndarray:
    """Drop speech runs shorter than ``min_speech`` frames, then fill inner gaps shorter than ``min_silence``."""
    out = mask.copy()
    for value, shortest in ((True, min_speech), (False, min_silence)):
        if shortest <= 1:
            continue
        runs = _runs(out)
        for start, end, v in runs:
            inner = start > 0 and end < len(out)
            if v == value and end - start < shortest and (value or inner):
                out[start:end] = not value
    return out


def _runs(mask: np.ndarray) -> list[tuple[int, int, bool]]:
    if len(mask) == 0:
        return []
    edges = np.flatnonzero(np.diff(mask.astype(np.int8))) + 1
    starts = np.concatenate([[0], edges])
    ends = np.concatenate([edges, [len(mask)]])
    return [(int(s), int(e), bool(mask[s])) for s, e in zip(starts, ends, strict=True)]


def speech_mask(samples: np.ndarray, rate: int, *, method: str = "energy", frame_ms: int = 10,
                aggressiveness: int = 2, margin_db: float = 12.0, range_db: float = 45.0, min_db: float = -60.0,
                min_speech_ms: int = 50, min_silence_ms: int = 150) -> np.ndarray:
    """Speech (True) or not per ``frame_ms`` frame, ``shape=(ceil(n * 1000 / (rate * frame_ms)),)``, bool.

    ``samples`` is mono float in [-1, 1] (``(channels, n)`` is averaged). See the module docstring.
    """
    x = samples.mean(axis=0) if samples.ndim == 2 else samples
    bounds = frame_bounds(x.shape[-1], rate, frame_ms)
    n_frames = len(bounds) - 1
    if n_frames == 0:
        return np.zeros(0, dtype=bool)
    if method == "energy":
        db = _energy_db(x, bounds)
        level = _energy_threshold(db, -(-PAUSE_MS // frame_ms), margin_db)
        raw = db > max(level, db.max() - range_db, min_db)
    elif method == "webrtc":
        raw = _webrtc(x, rate, n_frames, frame_ms, aggressiveness)
    else:
        raise ValueError(f"unknown VAD method {method!r}")
    return smooth(raw, min_speech=-(-min_speech_ms // frame_ms), min_silence=-(-min_silence_ms // frame_ms))


def intervals(mask: np.ndarray, *, frame_ms: int = 10) -> list[tuple[float, float]]:
    """Speech runs as ``(start, end)`` seconds; ``start = first_frame * frame_ms / 1000`` exactly."""
    return [(s * frame_ms / 1000, e * frame_ms / 1000) for s, e, v in _runs(mask) if v]


def sample_intervals(mask: np.ndarray, rate: int, n_samples: int, *, frame_ms: int = 10) -> list[tuple[int, int]]:
    """Speech runs as ``(start, end)`` sample indices (end exclusive, clipped to ``n_samples``)."""
    bounds = frame_bounds(n_samples, rate, frame_ms)
    return [(int(bounds[s]), int(bounds[e])) for s, e, v in _runs(mask) if v]


class VadParams(StageConfig):
    method: Literal["energy", "webrtc"] = Field("energy", description="Detector (see docs/audio.md).")
    aggressiveness: int = Field(2, ge=0, le=3, description="webrtc only: 0 (permissive) .. 3 (strict).")
    margin_db: float = Field(12.0, ge=0, description="energy: speech is this far above the noise floor...")
    range_db: float = Field(45.0, gt=0, description="energy: ...and within this of the loudest frame...")
    min_db: float = Field(-60.0, le=0, description="energy: ...and above this level in dBFS.")
    min_speech_ms: int = Field(50, ge=0, description="Speech runs shorter than this are dropped.")
    min_silence_ms: int = Field(150, ge=0, description="Pauses shorter than this are bridged.")

    def mask(self, samples: np.ndarray, rate: int) -> np.ndarray:
        return speech_mask(samples, rate, method=self.method, aggressiveness=self.aggressiveness,
                           margin_db=self.margin_db, range_db=self.range_db, min_db=self.min_db,
                           min_speech_ms=self.min_speech_ms, min_silence_ms=self.min_silence_ms)


def check_vad(params: VadParams) -> None:
    if params.method == "webrtc":
        try:
            import webrtcvad  # noqa: F401
        except ImportError:
            raise MissingDependency("method", "webrtcvad", "pip install webrtcvad-wheels") from None


@register
class AudioVad(Stage):
    """Speech activity per 10 ms frame; intervals (seconds) go to metadata and, if set, a JSON field."""

    name = "audio.vad"
    version = "2"  # energy: a clip with no pause (continuous speech) is speech, not silence
    reads = ("audio",)
    writes = ("vad.json",)

    class Config(VadParams):
        source: str | None = Field(None, description="Audio field to read; the first audio field when not set.")
        output: str | None = Field("vad.json", description="Field for the intervals; none: metadata only.")

    def check(self) -> None:
        check_vad(self.config)
        if self.config.output is not None and not self.config.output.endswith(".json"):
            raise ConfigError("output", f"must end in .json, got {self.config.output!r}")

    def process(self, sample: Sample) -> Sample:
        fields = decoded(sample, self.name, self.config.source)
        if not fields:
            return sample
        ext, audio = fields[0]
        mask = self.config.mask(mono(audio), audio.rate)
        spans = [[round(a, 3), round(b, 3)] for a, b in intervals(mask)]
        doc = {"field": ext, "frame_ms": 10, "intervals": spans,
               "speech_seconds": round(float(mask.sum()) / 100, 3), "speech_ratio": round(float(mask.mean()), 4)
               if len(mask) else 0.0}
        meta(sample)["vad"] = {k: v for k, v in doc.items() if k != "intervals"} | {"segments": len(spans)}
        if self.config.output:
            sample[self.config.output] = doc
        return sample
