"""``FusionModel``: one encoder per modality, a fusion strategy, optional matching projections."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from mmprep.errors import ConfigError
from mmprep.fusion.config import TrainConfig
from mmprep.fusion.encoders import make_encoder
from mmprep.fusion.strategies import STRATEGIES

log = logging.getLogger("mmprep.train")


def presence(batch: dict[str, Any], field: str, n: int, device: torch.device) -> torch.Tensor:
    """``(B,)`` bool: which samples hold ``field`` (PadCollate adds ``F.present`` only when some lack it)."""
    if field not in batch:
        return torch.zeros(n, dtype=torch.bool, device=device)
    flag = batch.get(f"{field}.present")
    return flag.to(device) if flag is not None else torch.ones(n, dtype=torch.bool, device=device)


# what each encoder takes per sample: (batch dims, needs integer ids, wording)
_INPUTS = {"cnn": ((4,), None, "an image per sample (channels, height, width): jpg/png... or a (3, H, W) .npy"),
           "conv1d": ((3,), None, "a (features, time) sequence per sample, e.g. mfcc.npy or logmel.npy"),
           "gru": ((3,), None, "a (features, time) sequence per sample, e.g. mfcc.npy or logmel.npy"),
           "bag": ((2,), True, "integer token ids (length,) per sample, e.g. tok.npy"),
           "transformer": ((2,), True, "integer token ids (length,) per sample, e.g. tok.npy"),
           "mlp": ((2, 3, 4, 5), None, "a numeric vector (or array) per sample, e.g. txt_emb.npy")}


def _holds(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        if value.dim() == 1:
            return f"one {value.dtype} number per sample"
        return f"{str(value.dtype).removeprefix('torch.')} arrays of shape {tuple(value.shape[1:])}"
    first = next((v for v in value if v is not None), None) if isinstance(value, list) else value
    return f"{type(first).__name__} values" + (" (text)" if isinstance(first, str) else "")


def check_inputs(cfg: TrainConfig, example: dict[str, Any], fields_seen: list[str] | None = None) -> None:
    """ConfigError naming the key when a modality's field is in no sample, or holds what its encoder
    cannot take (an image for conv1d, MFCC for cnn, float vectors for bag...). ``example``: a padded
    batch value per field; ``fields_seen``: field names to list in the message."""
    for name, spec in cfg.modalities.items():
        if spec.field not in example:
            there = f" (fields there: {', '.join(fields_seen)})" if fields_seen else ""
            raise ConfigError(f"modalities.{name}.field", f"{spec.field!r} is in no sample of the shards{there}")
        value = example[spec.field]
        dims, integer, wants = _INPUTS[spec.encoder]
        ok = isinstance(value, torch.Tensor) and value.dim() in dims and not value.dtype == torch.bool
        if ok and integer is not None:
            ok = value.dtype.is_floating_point != integer
        if not ok:
            raise ConfigError(f"modalities.{name}.encoder", f"{spec.encoder} needs {wants}; field "
                              f"{spec.field!r} holds {_holds(value)}")


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
        check_inputs(cfg, example)
        encoders = {}
        for name in self.names:
            spec = cfg.modalities[name]
            encoders[name] = make_encoder(spec.encoder, example[spec.field], dim, spec.vocab_size)
        self.encoders = nn.ModuleDict(encoders)
        self.fusion = STRATEGIES[cfg.model.fusion](len(self.names), dim, num_classes)
        match = cfg.matching()
        self.match_names = tuple(match.between) if match else ()
        self.proj = nn.ModuleDict({n: nn.Linear(dim, dim) for n in self.match_names})

    def encode(self, batch: dict[str, Any], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """``z (B, M, D)`` and ``present (B, M)``.

        Each encoder sees only the samples that hold its field with finite values and at least one step:
        a missing field's zero-filled slot (or a NaN/inf array, logged with its keys) would otherwise
        enter the batch-norm statistics of the samples that do hold it, a NaN would reach the loss and
        every weight, and an empty sequence fails a convolution. Such a sample's modality counts as
        missing; its ``z`` row is zero.
        """
        n = len(batch["__key__"])
        zs, ps = [], []
        for name, field in zip(self.names, self.fields, strict=True):
            present = presence(batch, field, n, device)
            z = torch.zeros(n, self.dim, device=device)
            if field in batch:
                x = batch[field].to(device)
                lengths = batch.get(f"{field}.lengths")
                if x.reshape(n, -1).shape[1] == 0:  # every sample's array is empty: (B, F, 0), (B, 0)
                    present = torch.zeros_like(present)
                elif lengths is not None:  # an empty sequence among others: nothing to encode either
                    present = present & (lengths.to(device) > 0)
                if x.is_floating_point():
                    finite = torch.isfinite(x.reshape(n, -1)).all(1)
                    bad = present & ~finite
                    if bool(bad.any()):
                        keys = [k for k, b in zip(batch["__key__"], bad.tolist(), strict=True) if b]
                        log.warning("field %r holds NaN or inf in %d sample(s), taken as missing: %s", field,
                                    len(keys), ", ".join(keys[:8]))
                        present = present & finite
                mask = batch.get(f"{field}.mask")
                mask = mask.to(device) if mask is not None else None
                if bool(present.all()):
                    z = self.encoders[name](x, mask)
                elif bool(present.any()):
                    idx = present.nonzero(as_tuple=True)[0]
                    rows = self.encoders[name](x[idx], mask[idx] if mask is not None else None)
                    z = torch.zeros(n, rows.shape[1], dtype=rows.dtype, device=device).index_copy(0, idx, rows)
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
