"""Medians and percentiles for alignment, equal bit for bit to ``np.median`` and ``np.percentile``
(method ``linear``) on arrays without NaN.

Why not numpy's own: both import ``numpy.ma`` on first use (~8 ms, paid by every ``mmprep align``
process), and ``nanpercentile`` per row runs a Python function per row. Here: order statistics by
``np.partition``, the median's mean of the two middle values, and numpy's interpolation step,
``a + (b - a) * g``, or ``b - (b - a) * (1 - g)`` when ``g >= 0.5``. A test compares them.
"""

from __future__ import annotations

import math

import numpy as np


def _lerp(a: np.ndarray | float, b: np.ndarray | float, g: float) -> np.ndarray | float:
    d = b - a
    return b - d * (1 - g) if g >= 0.5 else a + d * g


def median(a: np.ndarray) -> float:
    """``float(np.median(a))`` for a non-empty array without NaN (float32 stays float32, as there)."""
    x = np.asarray(a).ravel()
    if x.dtype.kind != "f":
        x = x.astype(np.float64)
    h = x.size // 2
    if x.size % 2:
        return float(np.partition(x, h)[h])
    part = np.partition(x, [h - 1, h])
    return float((part[h - 1] + part[h]) / 2)


def percentile(a: np.ndarray, q: float) -> float:
    """``float(np.percentile(a, q))`` for a non-empty float64 array without NaN (other dtypes are
    converted to float64 first, where numpy keeps float32); ``q`` in [0, 100]."""
    x = np.asarray(a, dtype=np.float64).ravel()
    n = x.size
    v = (n - 1) * (q / 100)  # the virtual index of the ``q``-th percentile in the sorted values
    if v >= n - 1:
        return float(x.max())
    i = math.floor(v)
    part = np.partition(x, [i, i + 1])
    return float(_lerp(part[i], part[i + 1], v - i))


def block_percentile(x: np.ndarray, block: int, q: float) -> np.ndarray:
    """The ``q``-th percentile of each run of ``block`` values of ``x`` (the last run may be shorter):
    ``np.nanpercentile`` of ``x`` padded with NaN to whole blocks and reshaped, ``shape=(ceil(n/block),)``."""
    x = np.asarray(x, dtype=np.float64)
    full = x.size // block
    out = np.empty(-(-x.size // block))
    if full:
        rows = x[: full * block].reshape(full, block)
        v = (block - 1) * (q / 100)
        if v >= block - 1:
            out[:full] = rows.max(axis=1)
        else:
            i = math.floor(v)
            part = np.partition(rows, [i, i + 1], axis=1)
            out[:full] = _lerp(part[:, i], part[:, i + 1], v - i)
    if out.size > full:
        out[full] = percentile(x[full * block :], q)
    return out
