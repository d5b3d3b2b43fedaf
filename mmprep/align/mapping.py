"""Cue -> audio sample, feature frame and video frame ranges. Integer arithmetic, half-open ranges.

Conventions (all ranges ``[first, stop)``):

- audio samples: ``first = round(start_ms * rate / 1000)``, ``stop = round(end_ms * rate / 1000)``,
  clipped to ``[0, n_samples]``;
- feature frames with hop ``hop`` and window ``win`` (samples): frame ``j`` is centred on sample
  ``j * hop`` when ``center`` (librosa / torch.stft default) else on ``j * hop + win // 2``; a frame
  belongs to the cue when its centre lies in the cue's sample range;
- video frames at ``fps`` (a fraction, e.g. ``30000/1001``): frame ``k`` is shown during
  ``[k / fps, (k + 1) / fps)``; a frame belongs to the cue when it is shown during the cue at all:
  ``first = floor(start * fps)``, ``stop = ceil(end * fps)``.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def sample_range(start_ms: int, end_ms: int, rate: int, n_samples: int | None = None) -> tuple[int, int]:
    a = (2 * start_ms * rate + 1000) // 2000  # round half up, integers only
    b = (2 * end_ms * rate + 1000) // 2000
    if n_samples is not None:
        a, b = min(max(a, 0), n_samples), min(max(b, 0), n_samples)
    return max(a, 0), max(b, a)


def feature_range(first: int, stop: int, *, hop: int, win: int = 0, center: bool = True,
                  n_frames: int | None = None, offset: int | None = None) -> tuple[int, int]:
    """Frames whose centre sample ``c`` satisfies ``first <= c < stop``; the centre of frame ``j`` is
    ``offset + j * hop``, with ``offset`` 0 (centred) or ``win // 2`` unless given."""
    shift = offset if offset is not None else (0 if center else win // 2)
    a = max(0, _ceil_div(first - shift, hop))
    b = max(a, _ceil_div(stop - shift, hop))
    if n_frames is not None:
        a, b = min(a, n_frames), min(b, n_frames)
    return a, b


def video_range(start_ms: int, end_ms: int, fps: Fraction | float | str,
                n_frames: int | None = None) -> tuple[int, int]:
    f = Fraction(fps).limit_denominator(100000) if not isinstance(fps, Fraction) else fps
    a = (start_ms * f.numerator) // (1000 * f.denominator)
    b = _ceil_div(end_ms * f.numerator, 1000 * f.denominator)
    a, b = max(a, 0), max(b, a)
    if n_frames is not None:
        a, b = min(a, n_frames), min(b, n_frames)
    return a, b


def map_cues(times: list[tuple[int, int]], texts: list[str], *, rate: int | None = None, n_samples: int | None = None,
             hop: int | None = None, win: int | None = None, center: bool = True, fps: Any = None,
             n_video_frames: int | None = None, features: dict[str, dict[str, Any]] | None = None,
             ) -> list[dict[str, Any]]:
    """One dict per cue: times (s), and the sample / feature / video frame ranges that apply.

    ``features``: the ``__meta__["features"]`` docs of the audio feature stages (``rate``, ``hop``,
    ``frame_offset_samples``, ``frames``); each gets its own range under ``cue["features"][name]``."""
    out = []
    for (a, b), text in zip(times, texts, strict=True):
        cue: dict[str, Any] = {"start": a / 1000, "end": b / 1000, "text": text}
        if rate:
            s = sample_range(a, b, rate, n_samples)
            cue["samples"] = list(s)
            if hop and win:
                cue["feature_frames"] = list(feature_range(*s, hop=hop, win=win, center=center))
        for name, fp in (features or {}).items():
            try:
                first, stop = sample_range(a, b, int(fp["rate"]))
                rng = feature_range(first, stop, hop=int(fp["hop"]), offset=int(fp.get("frame_offset_samples", 0)),
                                    n_frames=fp.get("frames"))
            except (KeyError, TypeError, ValueError):
                continue
            cue.setdefault("features", {})[name] = list(rng)
        if fps:
            cue["video_frames"] = list(video_range(a, b, fps, n_video_frames))
        out.append(cue)
    return out
