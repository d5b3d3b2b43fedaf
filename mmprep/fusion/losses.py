"""Training losses: cross-entropy on the label plus an optional cross-modal matching term.

Matching pulls the projections of two modalities of the *same* sample together:

- ``infonce``: symmetric contrastive loss over the batch, cosine similarity / temperature, the
  matching sample is the positive and every other sample a negative (CLIP-style);
- ``l2``: mean squared distance between the unit-normalized projections (the seeds' L2 matching).

Only samples holding both modalities take part; with fewer than two such samples the term is 0.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """``a, b (N, D)``; row i of each is the same sample."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = a @ b.T / temperature
    target = torch.arange(a.shape[0], device=a.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def l2_matching(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (F.normalize(a, dim=-1) - F.normalize(b, dim=-1)).pow(2).sum(-1).mean()


def matching_loss(a: torch.Tensor, b: torch.Tensor, both: torch.Tensor, *, kind: str,
                  temperature: float) -> torch.Tensor:
    """The matching term over the samples where ``both (B,)`` is True."""
    if int(both.sum()) < 2:
        return a.sum() * 0.0
    a, b = a[both], b[both]
    return info_nce(a, b, temperature) if kind == "infonce" else l2_matching(a, b)
