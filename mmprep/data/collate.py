"""Batching: stack what has one shape, pad what varies along one axis, mark what is missing.

For a batch of decoded samples, :class:`PadCollate` returns a dict with, per field ``F``:

- ``F``: a tensor ``(B, ...)``; variable-length fields are padded with ``pad_value`` along their
  varying axis (e.g. MFCC ``(n_mfcc, T)`` -> ``(B, n_mfcc, T_max)``, token ids ``(L,)`` -> ``(B, L_max)``);
- ``F.lengths``: int64 ``(B,)`` true lengths along that axis (only for padded fields);
- ``F.mask``: bool ``(B, T_max)``, True on real steps (only for padded fields);
- ``F.present``: bool ``(B,)``, False where a sample lacks the field (its slot is filled with
  ``pad_value``), present only when some sample lacks it;
- ints (and bools) become an int64 tensor (missing = -1), numbers of which any is a float a float32
  tensor (missing = NaN); strings, dicts, bytes and mixtures stay lists; ``__key__`` is the list of keys.

A field that no sample of the batch holds (absent, or ``None``: a ``.json`` member holding ``null``) is
left out of the batch, as when every sample lacks its member.
"""

from __future__ import annotations

import functools
from typing import Any

import torch


class PadCollate:
    """``collate_fn`` for :class:`~torch.utils.data.DataLoader` over :class:`ShardStream` samples.

    ``axes`` names the padded axis per field (default: the last axis when shapes differ).
    """

    def __init__(self, *, axes: dict[str, int] | None = None, pad_value: float = 0.0,
                 token_pad: int = 0):
        self.axes = dict(axes or {})
        self.pad_value = pad_value
        self.token_pad = token_pad

    def __call__(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {"__key__": [s.get("__key__") for s in samples]}
        names = sorted({k for s in samples for k in s if k != "__key__"})
        for name in names:
            values = [s.get(name) for s in samples]
            present = [v is not None for v in values]
            real = [v for v in values if v is not None]
            if not real:  # a .json holding null in every sample: the field is missing from this batch
                continue
            if all(isinstance(v, torch.Tensor) for v in real):
                out.update(self._tensors(name, values))
            elif all(isinstance(v, (int, float)) for v in real):  # bool is an int
                if any(isinstance(v, float) for v in real):  # 1 and 0.75 -> float, whatever the order
                    out[name] = torch.tensor([float(v) if v is not None else float("nan") for v in values])
                else:
                    out[name] = torch.tensor([v if v is not None else -1 for v in values], dtype=torch.long)
            else:
                out[name] = values
            if not all(present):
                out[f"{name}.present"] = torch.tensor(present, dtype=torch.bool)
        return out

    def _tensors(self, name: str, values: list[torch.Tensor | None]) -> dict[str, torch.Tensor]:
        real = [v for v in values if v is not None]
        dtype = functools.reduce(torch.promote_types, (v.dtype for v in real))  # as torch.stack promotes
        shapes = {tuple(v.shape) for v in real}
        ndims = {v.dim() for v in real}
        if len(ndims) != 1:
            raise ValueError(f"field {name!r}: samples disagree on the number of dimensions {sorted(ndims)}")
        if len(shapes) == 1 and name not in self.axes:
            shape = real[0].shape
            fill = self._fill(dtype)
            return {name: torch.stack([v if v is not None else torch.full(shape, fill, dtype=dtype)
                                       for v in values])}
        ndim = ndims.pop()
        axis = self.axes.get(name, -1) % max(ndim, 1)
        for other in range(ndim):
            if other != axis and len({s[other] for s in shapes}) > 1:
                raise ValueError(f"field {name!r}: shapes {sorted(shapes)} vary along more than axis {axis}")
        lengths = [v.shape[axis] if v is not None else 0 for v in values]
        longest = max(lengths)
        shape = list(real[0].shape)
        shape[axis] = longest
        batch = torch.full((len(values), *shape), self._fill(dtype), dtype=dtype)
        for i, v in enumerate(values):
            if v is not None:
                index = [slice(None)] * ndim
                index[axis] = slice(0, v.shape[axis])
                batch[(i, *index)] = v
        lens = torch.tensor(lengths, dtype=torch.long)
        mask = torch.arange(longest)[None, :] < lens[:, None]
        return {name: batch, f"{name}.lengths": lens, f"{name}.mask": mask}

    def _fill(self, dtype: torch.dtype) -> float | int:
        return self.pad_value if dtype.is_floating_point else self.token_pad
