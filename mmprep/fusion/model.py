"""``FusionModel``: one encoder per modality, a fusion strategy, optional matching projections."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from mmprep.fusion.config import TrainConfig
from mmprep.fusion.encoders import make_encoder
from mmprep.fusion.strategies import STRATEGIES


def presence(batch: dict[str, Any], field: str, n: int, device: torch.device) -> torch.Tensor:
    """``(B,)`` bool: which samples hold ``field`` (PadCollate adds ``F.present`` only when some lack it)."""
    if field not in batch:
        return torch.zeros(n, dtype=torch.bool, device=device)
    flag = batch.get(f"{field}.present")
    return flag.to(device) if flag is not None else torch.ones(n, dtype=torch.bool, device=device)


class FusionModel(nn.Module):
    """Logits ``(B, C)`` from a padded batch; modalities in the config's order.

    Built from one example batch, which fixes the input width of every encoder.
    """

    def __init__(self, cfg: TrainConfig, example: dict[str, Any], num_classes: int):
        super().__init__()
        self.names = list(cfg.modalities)
        self.fields = [cfg.modalities[n].field for n in self.names]
        self.dropout = cfg.model.modality_dropout
        dim = self.dim = cfg.model.dim
        encoders = {}
        for name in self.names:
            spec = cfg.modalities[name]
            if spec.field not in example:
                raise ValueError(f"modality {name!r}: field {spec.field!r} is in no sample of the first batch")
            encoders[name] = make_encoder(spec.encoder, example[spec.field], dim, spec.vocab_size)
        self.encoders = nn.ModuleDict(encoders)
        self.fusion = STRATEGIES[cfg.model.fusion](len(self.names), dim, num_classes)
        match = cfg.matching()
        self.match_names = tuple(match.between) if match else ()
        self.proj = nn.ModuleDict({n: nn.Linear(dim, dim) for n in self.match_names})

    def encode(self, batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``z (B, M, D)`` and ``present (B, M)``."""
        n = len(batch["__key__"])
        zs, ps = [], []
        for name, field in zip(self.names, self.fields, strict=True):
            present = presence(batch, field, n, device)
            if field in batch:
                x = batch[field].to(device)
                mask = batch.get(f"{field}.mask")
                z = self.encoders[name](x, mask.to(device) if mask is not None else None)
            else:
                z = torch.zeros(n, self.dim, device=device)
            zs.append(z)
            ps.append(present)
        present = torch.stack(ps, 1)
        if self.training and self.dropout > 0 and len(self.names) > 1:
            drop = torch.rand(present.shape, device=device) < self.dropout
            keep = present & ~drop
            none_left = ~keep.any(1)
            keep[none_left] = present[none_left]  # never hide every modality of a sample
            present = keep
        return torch.stack(zs, 1), present

    def forward(self, batch: dict[str, Any], device: torch.device) -> dict[str, torch.Tensor]:
        z, present = self.encode(batch, device)
        out = {"logits": self.fusion(z, present), "present": present}
        for name in self.match_names:
            out[f"proj.{name}"] = self.proj[name](z[:, self.names.index(name)])
        return out
