"""Classification metrics from integer predictions and labels (no sklearn needed)."""

from __future__ import annotations

from typing import Any

import numpy as np


def classification_metrics(pred: np.ndarray, label: np.ndarray, num_classes: int) -> dict[str, Any]:
    """``accuracy``, ``macro_f1`` (mean F1 over classes that occur in labels or predictions) and
    ``confusion`` (``[true][pred]`` counts, ``num_classes x num_classes``)."""
    pred = np.asarray(pred, dtype=np.int64)
    label = np.asarray(label, dtype=np.int64)
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (label, pred), 1)
    tp = np.diag(confusion).astype(float)
    fp = confusion.sum(0) - tp
    fn = confusion.sum(1) - tp
    seen = (confusion.sum(0) + confusion.sum(1)) > 0
    denom = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
    return {
        "samples": int(label.size),
        "accuracy": float((pred == label).mean()) if label.size else 0.0,
        "macro_f1": float(f1[seen].mean()) if seen.any() else 0.0,
        "confusion": confusion.tolist(),
    }
