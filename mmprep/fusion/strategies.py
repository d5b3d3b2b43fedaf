"""Fusion strategies over modality embeddings ``z (B, M, D)`` with presence ``present (B, M)``.

Every strategy returns class logits ``(B, C)`` and never lets a missing modality (``present`` False)
contribute: its embedding is zeroed, masked out of attention, or left out of the average.

- ``concat`` (early fusion): ``[z_1, ..., z_M]`` -> MLP head.
- ``weighted``: ``sum_m softmax(w)_m z_m`` with learned modality weights ``w (M,)``, renormalized
  over the present modalities -> head.
- ``attention``: a [CLS] token plus one token per modality (+ a learned modality-type embedding)
  through a transformer layer with a key padding mask; the [CLS] output -> head.
- ``gated``: per-modality gates ``sigmoid(W [z_1..z_M])`` (B, M), ``sum_m g_m z_m / sum_m g_m`` -> head.
- ``late``: one head per modality, logits averaged over the present modalities.
"""

from __future__ import annotations

import torch
from torch import nn


def _head(in_dim: int, dim: int, classes: int) -> nn.Module:
    return nn.Sequential(nn.Linear(in_dim, dim), nn.GELU(), nn.Linear(dim, classes))


def _masked(z: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
    return z * present[..., None].to(z.dtype)


class ConcatFusion(nn.Module):
    def __init__(self, m: int, dim: int, classes: int):
        super().__init__()
        self.head = _head(m * dim, dim, classes)

    def forward(self, z: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        return self.head(_masked(z, present).flatten(1))


class WeightedSumFusion(nn.Module):
    def __init__(self, m: int, dim: int, classes: int):
        super().__init__()
        self.weights = nn.Parameter(torch.zeros(m))
        self.head = _head(dim, dim, classes)

    def modality_weights(self, present: torch.Tensor) -> torch.Tensor:
        """``(B, M)`` weights summing to one over each sample's present modalities (all 0 for a sample
        with none: a softmax over nothing but ``-inf`` is NaN, in the output and in the gradient)."""
        w = torch.softmax(self.weights, dim=0)[None, :] * present.to(self.weights.dtype)
        return w / w.sum(1, keepdim=True).clamp_min(1e-12)

    def forward(self, z: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        w = self.modality_weights(present)
        return self.head((w[..., None] * _masked(z, present)).sum(1))


class AttentionFusion(nn.Module):
    def __init__(self, m: int, dim: int, classes: int):
        super().__init__()
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.modality_type = nn.Parameter(torch.randn(1, m, dim) * 0.02)
        self.layer = nn.TransformerEncoderLayer(dim, nhead=4 if dim % 4 == 0 else 1, dim_feedforward=2 * dim,
                                                batch_first=True, dropout=0.0)
        self.head = _head(dim, dim, classes)

    def forward(self, z: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        b = z.shape[0]
        tokens = torch.cat([self.cls.expand(b, -1, -1), z + self.modality_type], dim=1)
        keep = torch.cat([torch.ones(b, 1, dtype=torch.bool, device=z.device), present], dim=1)
        return self.head(self.layer(tokens, src_key_padding_mask=~keep)[:, 0])


class GatedFusion(nn.Module):
    def __init__(self, m: int, dim: int, classes: int):
        super().__init__()
        self.gate = nn.Linear(m * dim, m)
        self.head = _head(dim, dim, classes)

    def forward(self, z: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        zm = _masked(z, present)
        g = torch.sigmoid(self.gate(zm.flatten(1))) * present.to(z.dtype)
        fused = (g[..., None] * zm).sum(1) / g.sum(1, keepdim=True).clamp_min(1e-6)
        return self.head(fused)


class LateFusion(nn.Module):
    def __init__(self, m: int, dim: int, classes: int):
        super().__init__()
        self.heads = nn.ModuleList(_head(dim, dim, classes) for _ in range(m))

    def forward(self, z: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        logits = torch.stack([head(z[:, i]) for i, head in enumerate(self.heads)], dim=1)  # (B, M, C)
        p = present.to(z.dtype)[..., None]
        return (logits * p).sum(1) / p.sum(1).clamp_min(1.0)


STRATEGIES: dict[str, type[nn.Module]] = {
    "concat": ConcatFusion, "weighted": WeightedSumFusion, "attention": AttentionFusion, "gated": GatedFusion,
    "late": LateFusion,
}
