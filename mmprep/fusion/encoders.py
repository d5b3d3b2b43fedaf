"""Per-modality encoders: each maps one field of a padded batch to ``(B, dim)``.

Inputs (as :class:`mmprep.data.PadCollate` makes them):

- ``mlp``: a vector ``(B, F)`` (precomputed embedding);
- ``conv1d`` / ``gru``: a sequence ``(B, F, T)`` (MFCC, log-mel) with ``mask (B, T)``; padded steps are
  ignored (masked mean pooling for conv1d, packed sequences for the GRU);
- ``cnn``: an image ``(B, 3, H, W)`` uint8 or float;
- ``bag`` / ``transformer``: int token ids ``(B, L)`` with ``mask (B, L)``.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def _masked_mean(x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean over the last axis of ``x (B, D, T)``, counting only steps where ``mask (B, T)`` is True."""
    if mask is None:
        return x.mean(-1)
    m = mask[:, None, :].to(x.dtype)
    return (x * m).sum(-1) / m.sum(-1).clamp_min(1.0)


class MLPEncoder(nn.Module):
    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, dim), nn.GELU(), nn.Linear(dim, dim))

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.net(x.float().flatten(1))


class MaskedBatchNorm1d(nn.BatchNorm1d):
    """``BatchNorm1d`` over ``(B, F, T)`` whose training statistics count only the steps where
    ``mask (B, T)`` is True: padding (zeros) would otherwise pull every feature's batch mean and variance
    toward 0, by an amount that depends on how long the batch's longest sample is, and the running
    statistics used at evaluation with them. Same parameters and buffers as ``BatchNorm1d``."""

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if not self.training:
            return super().forward(x)
        # with one step in all (a batch of one single-frame sample) this gives 0 where BatchNorm1d raises
        m = mask[:, None, :].to(x.dtype) if mask is not None else torch.ones_like(x[:, :1])
        n = m.sum().clamp_min(1.0)
        mean = (x * m).sum((0, 2)) / n
        var = ((x - mean[None, :, None]).pow(2) * m).sum((0, 2)) / n
        with torch.no_grad():
            self.num_batches_tracked += 1
            unbiased = var * n / (n - 1).clamp_min(1.0)
            self.running_mean.lerp_(mean.detach(), self.momentum)
            self.running_var.lerp_(unbiased.detach(), self.momentum)
        h = (x - mean[None, :, None]) / torch.sqrt(var[None, :, None] + self.eps)
        return h * self.weight[None, :, None] + self.bias[None, :, None]


class ConvSeqEncoder(nn.Module):
    """Two 1-D convolutions over time, then a masked mean.

    Padded steps are left out of the batch-norm statistics and zeroed before each convolution, so a
    sample's output does not depend on how much padding the batch gave it (convolutions see zeros past
    its end, as at an unpadded edge), in training as in evaluation.
    """

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.norm = MaskedBatchNorm1d(in_dim)
        self.conv1 = nn.Conv1d(in_dim, dim, 5, padding=2)
        self.conv2 = nn.Conv1d(dim, dim, 3, padding=1)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        m = mask[:, None, :].to(torch.float32) if mask is not None else None
        h = self.norm(x.float(), mask)
        for conv in (self.conv1, self.conv2):
            h = self.act(conv(h * m if m is not None else h))
        return _masked_mean(h, mask)


class GRUSeqEncoder(nn.Module):
    """A GRU over time on packed sequences (padding never enters the state); the last state."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.norm = nn.LayerNorm(in_dim)
        self.gru = nn.GRU(in_dim, dim, batch_first=True)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        seq = self.norm(x.float().transpose(1, 2))  # (B, T, F)
        lengths = mask.sum(1) if mask is not None else torch.full((x.shape[0],), x.shape[-1])
        packed = nn.utils.rnn.pack_padded_sequence(seq, lengths.clamp_min(1).cpu(), batch_first=True,
                                                   enforce_sorted=False)
        _, h = self.gru(packed)
        return h[-1]


class LoneBatchNorm2d(nn.BatchNorm2d):
    """``BatchNorm2d`` that also trains on a batch holding one value per channel (one image whose feature
    map is down to 1x1: ``image_size`` <= 4, in the last, short batch of an epoch), where ``BatchNorm2d``
    raises: one value has no variance, so that batch is normalized with the running statistics, which it
    leaves as they are. Same parameters and buffers as ``BatchNorm2d``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training and x.shape[0] * x.shape[2] * x.shape[3] == 1:
            return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias, False, 0.0, self.eps)
        return super().forward(x)


class ImageEncoder(nn.Module):
    """Three strided 3x3 convolutions and a global average pool."""

    def __init__(self, in_dim: int, dim: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(in_dim, 16, 3, stride=2, padding=1), LoneBatchNorm2d(16), nn.GELU(),
            nn.Conv2d(16, 32, 3, stride=2, padding=1), LoneBatchNorm2d(32), nn.GELU(),
            nn.Conv2d(32, dim, 3, stride=2, padding=1), nn.GELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x.float() / 255.0 if x.dtype == torch.uint8 else x.float()
        return self.net(x)


class BagEncoder(nn.Module):
    """Mean of token embeddings (``nn.EmbeddingBag``), padded positions excluded."""

    def __init__(self, vocab_size: int, dim: int):
        super().__init__()
        self.vocab_size = vocab_size
        self.bag = nn.EmbeddingBag(vocab_size, dim, mode="mean")

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        ids = x.long() % self.vocab_size
        weights = mask.float() if mask is not None else torch.ones_like(ids, dtype=torch.float)
        bag = nn.functional.embedding_bag(ids, self.bag.weight, per_sample_weights=weights, mode="sum")
        return bag / weights.sum(1, keepdim=True).clamp_min(1.0)


class TokenTransformerEncoder(nn.Module):
    """Token + position embeddings, one transformer layer with a padding mask, masked mean."""

    def __init__(self, vocab_size: int, dim: int, max_len: int = 512):
        super().__init__()
        self.vocab_size = vocab_size
        self.max_len = max_len
        self.tok = nn.Embedding(vocab_size, dim)
        self.pos = nn.Embedding(max_len, dim)
        self.layer = nn.TransformerEncoderLayer(dim, nhead=4 if dim % 4 == 0 else 1, dim_feedforward=2 * dim,
                                                batch_first=True, dropout=0.0)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        ids = x.long()[:, : self.max_len] % self.vocab_size
        mask = mask[:, : self.max_len] if mask is not None else torch.ones_like(ids, dtype=torch.bool)
        mask = mask.clone()
        mask[:, 0] = True  # an all-padding row would give NaN attention
        h = self.tok(ids) + self.pos(torch.arange(ids.shape[1], device=ids.device))[None]
        h = self.layer(h, src_key_padding_mask=~mask)
        return _masked_mean(h.transpose(1, 2), mask)


def make_encoder(kind: str, example: torch.Tensor, dim: int, vocab_size: int) -> nn.Module:
    """An encoder for ``kind``, sized from one example batch tensor of its field."""
    if kind == "mlp":
        return MLPEncoder(int(example[0].numel()), dim)
    if kind == "conv1d":
        return ConvSeqEncoder(int(example.shape[1]), dim)
    if kind == "gru":
        return GRUSeqEncoder(int(example.shape[1]), dim)
    if kind == "cnn":
        return ImageEncoder(int(example.shape[1]), dim)
    if kind == "bag":
        return BagEncoder(vocab_size, dim)
    if kind == "transformer":
        return TokenTransformerEncoder(vocab_size, dim)
    raise ValueError(f"unknown encoder {kind!r}")
