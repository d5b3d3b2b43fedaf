"""Device choice and batching: pad variable-length clips into one tensor, in length buckets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np

from mmprep.errors import ConfigError

DeviceName = Literal["auto", "cpu", "cuda"]


def resolve_device(device: str = "auto"):
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``. Asking for ``cuda`` without one is an error."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device", "cuda requested but torch sees no GPU (use device: auto or cpu)")
    if device not in ("cpu", "cuda"):
        raise ConfigError("device", f"expected auto, cpu or cuda, got {device!r}")
    return torch.device(device)


def buckets(lengths: Sequence[int], *, max_samples: int = 16_000_000, max_ratio: float = 1.5) -> list[list[int]]:
    """Group clip indices so that each group pads to its longest clip cheaply.

    Clips are sorted by length; a group closes when ``longest * count`` would pass ``max_samples``
    (memory bound) or when the longest clip is more than ``max_ratio`` times the shortest (padding
    waste bound). Every index appears in exactly one group.
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    groups: list[list[int]] = []
    cur: list[int] = []
    for i in order:
        n = max(int(lengths[i]), 1)
        if cur:
            first = max(int(lengths[cur[0]]), 1)
            if n * (len(cur) + 1) > max_samples or n > max_ratio * first:
                groups.append(cur)
                cur = []
        cur.append(i)
    if cur:
        groups.append(cur)
    return groups


def pad_batch(clips: Sequence[np.ndarray], *, device=None, dtype=None):
    """Right-pad 1-D clips with zeros: a ``(batch, max_len)`` tensor and the ``(batch,)`` int64 lengths."""
    import torch

    dtype = dtype or torch.float32
    lengths = [int(c.shape[-1]) for c in clips]
    if len(clips) == 1 and clips[0].dtype == np.float32 and clips[0].flags.c_contiguous:  # no padding: no copy
        batch = torch.from_numpy(clips[0]).reshape(1, -1).to(device=device, dtype=dtype)
        return batch, torch.tensor(lengths, dtype=torch.int64, device=device)
    out = np.zeros((len(clips), max(lengths, default=0)), dtype=np.float32)
    for row, clip in zip(out, clips, strict=True):
        row[: clip.shape[-1]] = clip
    batch = torch.from_numpy(out).to(device=device, dtype=dtype)
    return batch, torch.tensor(lengths, dtype=torch.int64, device=device)
