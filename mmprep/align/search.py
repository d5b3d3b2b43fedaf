"""Offset, framerate ratio and split search: subtitle cues against a speech mask.

The model maps subtitle time to media time as ``t_media = ratio * t_sub + offset`` (per segment
after a split). Both signals live on the 10 ms grid of :mod:`mmprep.align.speech`. The score of a
placement is ``sum(cue_mask * (2 * speech - 1))``: frames of cue over speech count +1, cue over
silence -1, and frames past either end of the media count as silence. All offsets within
``+-max_offset`` are scored at once by FFT cross-correlation (``O(n log n)``); the peak is refined
to a sub-frame offset by parabolic interpolation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

HOP_MS = 10
GAP_WEIGHT = 1.0
STANDARD_RATIOS = (1.0, 24 / 23.976, 25 / 23.976, 25 / 24, 23.976 / 24, 23.976 / 25, 24 / 25)


@dataclass
class Fit:
    """Best placement for one ratio: ``offset_ms`` (float, sub-frame), ``score`` (frames),
    ``scores`` (``shape=(2*B+1,)``, frames, index ``k`` = offset ``(k - B) * 10`` ms)."""

    ratio: float
    offset_ms: float
    score: float
    scores: np.ndarray


def cue_mask(cues: list[tuple[int, int]], ratio: float, gap: float = GAP_WEIGHT) -> np.ndarray:
    """Cues (ms) scaled by ``ratio`` on the 10 ms grid: 1 on a cue, ``-gap`` between the first cue's
    start and the last cue's end where no cue is, 0 before; index 0 = frame 0, float64.

    The negative gaps make uncovered speech inside the subtitles' span cost as much as a cue over
    silence, so a few cues cannot hide inside one long stretch of speech."""
    if not cues:
        return np.zeros(1)
    frames = [(int(round(a * ratio / HOP_MS)), int(round(b * ratio / HOP_MS))) for a, b in cues]
    first, end = min(a for a, _ in frames), max(b for _, b in frames)
    m = np.zeros(max(end, 1) + 1)
    m[max(first, 0) : max(end, 0)] = -gap
    for fa, fb in frames:
        m[max(fa, 0) : max(fb, 0)] = 1.0
    return m


def padded_speech(mask: np.ndarray, pad: int, length: int) -> np.ndarray:
    """``2*speech - 1`` with ``pad`` frames of -1 before it and -1 up to ``length`` after it."""
    x = -np.ones(max(length, pad + mask.size))
    x[pad : pad + mask.size] = 2.0 * mask.astype(np.float64) - 1.0
    return x


def fast_len(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n (sizes numpy's FFT handles fast; scipy.fft costs 0.6 s to import)."""
    best = 1 << max(0, (n - 1).bit_length())
    p5 = 1
    while p5 < best:
        p35 = p5
        while p35 < best:
            m = p35
            while m < n:
                m *= 2
            best = min(best, m)
            p35 *= 3
        p5 *= 5
    return best


class Correlator:
    """Scores of cue masks at every offset in ``+-max_offset_ms`` against one speech mask.

    The speech is transformed once per file (padded with ``max_offset`` frames of silence before it
    and silence after it) at an FFT size that fits every cue mask up to ``longest`` frames; a longer
    mask makes it grow. Scores are integers (+-1 speech frames times cue frames of 1 or
    ``-GAP_WEIGHT`` = -1), so they are rounded: no FFT rounding noise decides between equal scores,
    whatever the FFT size."""

    def __init__(self, speech: np.ndarray, max_offset_ms: int, longest: int = 0):
        self.speech = speech
        self.max_frames = max_offset_ms // HOP_MS
        self._size(longest)

    def _size(self, longest: int) -> None:
        self.n = fast_len(2 * self.max_frames + max(longest, 1))
        x = padded_speech(self.speech, self.max_frames, self.n)[: self.n]
        self.spectrum = np.fft.rfft(x)

    def scores(self, cues: np.ndarray) -> np.ndarray:
        """``score[k] = sum_t cues[t] * x[t + k]`` for offsets ``k - max_frames``, ``k in [0, 2*max_frames]``."""
        if 2 * self.max_frames + cues.size > self.n:
            self._size(cues.size + cues.size // 16)
        corr = np.fft.irfft(self.spectrum * np.conj(np.fft.rfft(cues, self.n)), self.n)
        return np.rint(corr[: 2 * self.max_frames + 1])


def peak(scores: np.ndarray) -> tuple[int, float]:
    """Index of the best score and its sub-frame refinement (parabolic through 3 points)."""
    k = int(np.argmax(scores))
    if 0 < k < scores.size - 1:
        a, b, c = scores[k - 1], scores[k], scores[k + 1]
        den = a - 2 * b + c
        if den < 0:
            return k, k + float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))
    return k, float(k)


def fit_ratio(corr: Correlator, cues: list[tuple[int, int]], ratio: float) -> Fit:
    B = corr.max_frames
    scores = corr.scores(cue_mask(cues, ratio))
    k, sub = peak(scores)
    return Fit(ratio, (sub - B) * HOP_MS, float(scores[k]), scores)


def best_fit(corr: Correlator, cues: list[tuple[int, int]], *, ratios: tuple[float, ...] = STANDARD_RATIOS,
             refine: bool = True, prefer_margin: float = 0.01) -> Fit:
    """The best (ratio, offset). A ratio other than 1 must beat ratio 1 by ``prefer_margin`` of the cue
    frames; ``refine`` then searches the ratio continuously (golden section, +-0.3 %) around the winner."""
    total = float(np.abs(cue_mask(cues, 1.0)).sum())
    fits = [fit_ratio(corr, cues, r) for r in ratios]
    base = fits[0]
    best = max(fits[1:], key=lambda f: f.score, default=base)
    if best.score <= base.score + prefer_margin * total:
        best = base
    if not refine:
        return best
    lo, hi = best.ratio * 0.997, best.ratio * 1.003
    g = (np.sqrt(5) - 1) / 2
    cache: dict[float, Fit] = {}

    def f(r: float) -> float:
        if r not in cache:
            cache[r] = fit_ratio(corr, cues, r)
        return cache[r].score

    a, b = hi - g * (hi - lo), lo + g * (hi - lo)
    for _ in range(18):
        if f(a) >= f(b):
            hi, b = b, a
            a = hi - g * (hi - lo)
        else:
            lo, a = a, b
            b = lo + g * (hi - lo)
    cand = max(cache.values(), key=lambda x: x.score)
    return cand if cand.score > best.score + prefer_margin * total else best


def cue_scores(speech: np.ndarray, cues: list[tuple[int, int]], ratio: float, max_offset_ms: int,
               step: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Per-cue score for every offset: ``shape=(n_cues, n_offsets)`` float32, and the offsets (frames).

    Uses prefix sums of the padded speech, so each entry costs O(1). Cue times must be >= 0."""
    B = max_offset_ms // HOP_MS
    offsets = np.arange(-B, B + 1, step)
    frames = np.array([(round(a * ratio / HOP_MS), round(b * ratio / HOP_MS)) for a, b in cues], np.int64)
    length = 2 * B + int(frames[:, 1].max(initial=0)) + 2
    x = padded_speech(speech, B, length)
    P = np.concatenate([[0.0], np.cumsum(x)])
    lo = np.clip(frames[:, :1] + offsets[None, :] + B, 0, x.size)
    hi = np.clip(frames[:, 1:] + offsets[None, :] + B, 0, x.size)
    cue = P[hi] - P[lo]
    # the silence up to the next cue counts against a placement that puts speech there
    nxt = np.clip(np.concatenate([frames[1:, 0], frames[-1:, 1]])[:, None] + offsets[None, :] + B, 0, x.size)
    gap = P[np.maximum(nxt, hi)] - P[hi]
    return (cue - GAP_WEIGHT * gap).astype(np.float32), offsets


def find_splits(matrix: np.ndarray, *, max_splits: int, penalty: float, min_cues: int = 3) -> list[int]:
    """Cue indices where a new offset starts (greedy binary splitting of the per-cue score matrix).

    A split is kept when it raises the best total score by more than ``penalty`` frames."""
    splits: list[int] = []
    segments = [(0, matrix.shape[0])]
    while len(splits) < max_splits:
        best = None
        for lo, hi in segments:
            if hi - lo < 2 * min_cues:
                continue
            cum = np.cumsum(matrix[lo:hi], axis=0, dtype=np.float64)
            total = cum[-1]
            whole = total.max()
            ks = np.arange(min_cues, hi - lo - min_cues + 1)
            left = cum[ks - 1].max(axis=1)
            right = (total[None, :] - cum[ks - 1]).max(axis=1)
            gains = left + right - whole
            j = int(np.argmax(gains))
            if best is None or gains[j] > best[0]:
                best = (float(gains[j]), lo + int(ks[j]), (lo, hi))
        if best is None or best[0] <= penalty:
            break
        splits.append(best[1])
        segments.remove(best[2])
        segments += [(best[2][0], best[1]), (best[1], best[2][1])]
    return sorted(splits)


def segment_offset(corr: Correlator, cues: list[tuple[int, int]], ratio: float) -> Fit:
    """Best offset for a subset of cues at a fixed ratio (used per segment after splitting)."""
    return fit_ratio(corr, cues, ratio)
