"""Fit the confidence model (mmprep.align.confidence.COEF) on generated sets; print the coefficients.

    python benchmarks/align/calibrate.py SET_DIR [SET_DIR...]

Use sets made with a different ``--seed`` than the one you score on. A record is a positive when
the subtitles belong to the audio and >= 90 % of its cue starts land within 100 ms of the truth;
everything else (mismatched subtitles, wrong placements) is a negative. Logistic regression by
Newton's method with an L2 penalty of 0.1 (the sets are nearly separable; the penalty keeps it from
claiming certainty); reports the log loss and the calibration table.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mmprep.align.api import align_subtitles  # noqa: E402
from mmprep.align.media import decode_audio  # noqa: E402

NAMES = ("fit", "prominence", "onset_match")


def rows(set_dir: Path) -> tuple[list[list[float]], list[int]]:
    meta = json.loads((set_dir / "truth.json").read_text())
    X, y = [], []
    for it in meta["items"]:
        x, rate = decode_audio((set_dir / it["wav"]).read_bytes())
        rec, _, _, times = align_subtitles(x, rate, (set_dir / it["srt"]).read_bytes(), hint="srt", plot="none")
        if "features" not in rec:
            continue
        good = 0
        if not it["mismatched"] and times:
            err = np.abs([t[0] - c[0] for t, c in zip(times, it["truth"], strict=True)])
            good = int((err <= 100).mean() >= 0.9)
        X.append([rec["features"][n] for n in NAMES])
        y.append(good)
    return X, y


def fit(X: np.ndarray, y: np.ndarray, l2: float = 0.1) -> np.ndarray:
    A = np.hstack([np.ones((X.shape[0], 1)), X])
    w = np.zeros(A.shape[1])
    for _ in range(50):
        p = 1 / (1 + np.exp(-A @ w))
        g = A.T @ (p - y) + l2 * w
        H = (A * (p * (1 - p))[:, None]).T @ A + l2 * np.eye(A.shape[1])
        w -= np.linalg.solve(H, g)
    return w


def main(argv: list[str]) -> int:
    X, y = [], []
    for d in argv:
        a, b = rows(Path(d))
        X += a
        y += b
    X, y = np.array(X, float), np.array(y, float)
    w = fit(X, y)
    p = 1 / (1 + np.exp(-(np.hstack([np.ones((len(X), 1)), X]) @ w)))
    loss = -np.mean(y * np.log(p + 1e-12) + (1 - y) * np.log(1 - p + 1e-12))
    print(f"{len(y)} records, {int(y.sum())} positives; log loss {loss:.4f}")
    print("COEF = {" + ", ".join(f'"{k}": {v:.4f}' for k, v in zip(("bias", *NAMES), w, strict=True)) + "}")
    for lo in np.arange(0, 1, 0.2):
        m = (p >= lo) & (p < lo + 0.2 + (lo >= 0.8) * 1e-9)
        if m.any():
            print(f"  predicted {lo:.1f}-{lo + 0.2:.1f}: n={int(m.sum())}, observed positive rate {y[m].mean():.3f}")
    neg, pos = p[y == 0], p[y == 1]
    print(f"  negatives >= 0.5: {(neg >= 0.5).mean():.3f}; positives < 0.5: {(pos < 0.5).mean():.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
