"""Calibrated confidence that a subtitle alignment is right.

Three features of the final placement, each cheap and scale-free:

- ``fit``: net overlap, ``(cue frames over speech - cue frames over silence) / cue frames``, in [-1, 1];
- ``prominence``: how far the correlation peak stands above the other offsets, in robust standard
  deviations (median / MAD of the scores more than 1 s away from the peak), capped at 30;
- ``onset_match``: fraction of cues whose start has a speech onset within 100 ms, in [0, 1].

A fourth, ``margin`` (:func:`margin`), is kept out of the model: it is a veto, not evidence. When another
placement more than 1 s away scores about as well as the peak, the features above describe both placements
equally, so they cannot say which one is right (``prominence`` compares the peak with the median offset, which
a single rival peak does not move).

The confidence is a logistic model of these, fitted on the generated benchmark set
(``benchmarks/align/calibrate.py``: positives = >= 90 % of cue starts within 100 ms of the truth,
negatives = mismatched subtitles and failed placements), so that it reads as a probability.
"""

from __future__ import annotations

import math

import numpy as np

from mmprep.align.stats import median

# Fitted by benchmarks/align/calibrate.py (L2 0.1) on 130 generated records (espeak-ng and synthetic
# speech, SNR 4-20 dB, 55 mismatched), seeds 11-13, never the scored set (seed 0). Once fit and
# onset_match are known, a sharp peak adds nothing (its weight comes out slightly negative: repetitive
# speech gives sharp peaks at wrong offsets too).
COEF = {"bias": -7.6066, "fit": 6.9773, "prominence": -0.0791, "onset_match": 7.1904}


def prominence(scores: np.ndarray, k: int, exclude: int = 100) -> float:
    """Peak height above the rest of ``scores`` in robust SDs; offsets within ``exclude`` frames left out."""
    rest = np.concatenate([scores[: max(k - exclude, 0)], scores[k + exclude + 1 :]])
    if rest.size < 10:
        return 0.0
    med = median(rest)
    mad = median(np.abs(rest - med)) * 1.4826
    return float(min(30.0, (scores[k] - med) / max(mad, 1e-6)))


def margin(scores: np.ndarray, k: int, total: float, exclude: int = 100) -> float:
    """How far the peak ``scores[k]`` beats the best offset more than ``exclude`` frames (1 s) away, as a share
    of ``total`` (the cue frames: the score of a perfect placement), in [0, 2]; 2.0 when no offset lies that far.

    Near 0 means another placement explains the speech as well, so the peak is a guess between the two: a lone
    cue fits any utterance at least as long as it, repeated speech fits several offsets."""
    rest = np.concatenate([scores[: max(k - exclude, 0)], scores[k + exclude + 1 :]])
    if rest.size == 0:
        return 2.0
    return float(np.clip((scores[k] - rest.max()) / max(total, 1.0), 0.0, 2.0))


def confidence(features: dict[str, float]) -> float:
    z = COEF["bias"] + sum(COEF[name] * float(features[name]) for name in ("fit", "prominence", "onset_match"))
    return 1.0 / (1.0 + math.exp(-max(-50.0, min(50.0, z))))
