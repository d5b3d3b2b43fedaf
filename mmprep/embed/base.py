"""The encoder contract shared by text, image and audio models.

An encoder has two halves so the CPU work and the model call can be batched separately:

* ``prepare(value)`` turns one field value (bytes, ``str``, :class:`~mmprep.sample.Image`,
  :class:`~mmprep.sample.Audio`) into the model's input, or raises ``Drop("embed.<problem>")``;
* ``encode(prepared)`` runs the model over a list of prepared inputs and returns
  ``(embeddings, notes)``: ``float32`` array ``shape=(n, dim)`` in input order, and one dict of
  per-item notes (e.g. ``{"truncated": True}``) or ``None`` per input. A note ``{"drop": Drop}`` means
  the model failed on that one input (its row is meaningless): it is dropped like a bad input.

``identity`` is the cache-relevant identity: the model's file hash plus the preprocessing
parameters, so changing either gives different cache keys. ``computed`` counts inputs that really went
through the model: the counter tests use to prove that a rerun computed nothing.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from mmprep.cache import digest
from mmprep.errors import ConfigError, Drop, MissingDependency


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when torch sees a GPU, else ``cpu``; ``cuda`` without one is a ConfigError."""
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError("device", "cuda requested but torch sees no GPU (use --device cpu or auto)")
    if device != "cpu" and not device.startswith("cuda"):
        raise ConfigError("device", f"must be auto, cpu or cuda[:N], not {device!r}")
    return device


def to_device(tensor: Any, device: str) -> Any:
    """Host tensor -> device; pinned memory and a non-blocking copy on CUDA, a no-op on CPU."""
    if device == "cpu":
        return tensor
    return tensor.pin_memory().to(device, non_blocking=True)


def l2_normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def unstorable(vec: np.ndarray, dtype: str) -> Drop | None:
    """``embed.nonfinite`` when the model gave NaN / inf, or values float16 cannot hold (they would be
    stored as inf), else None: a training job must never read such a vector as an embedding."""
    if not np.isfinite(vec).all():
        return Drop("embed.nonfinite", "the model returned NaN or infinite values")
    if dtype == "float16" and vec.size and float(np.abs(vec).max()) > 65504.0:
        return Drop("embed.nonfinite", f"values up to {float(np.abs(vec).max()):.4g} do not fit float16 (65504): "
                    "use float32 or normalize")
    return None


def need(module: str, package: str, key: str = "model") -> None:
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingDependency(key, f"the {package} package", f"pip install {package}")


class Encoder:
    modality: str = ""
    kind: str = ""  # sentence-transformers, torchscript, onnx, torch-module, builtin

    def __init__(self, *, model: str, model_hash: str, device: str, batch_size: int, normalize: bool,
                 preprocessing: dict[str, Any]):
        self.model = model
        self.model_hash = model_hash
        self.device = device
        self.batch_size = batch_size
        self.normalize = normalize
        self.preprocessing = preprocessing
        self.dim = 0
        self.computed = 0

    @property
    def identity(self) -> str:
        """Model file hash + preprocessing + normalization: what decides whether an embedding is reusable."""
        doc = json.dumps({"kind": self.kind, "pre": self.preprocessing, "norm": self.normalize}, sort_keys=True)
        return digest(self.model_hash, doc)

    def describe(self) -> dict[str, Any]:
        return {"modality": self.modality, "kind": self.kind, "model": self.model, "model_hash": self.model_hash,
                "identity": self.identity, "dim": self.dim, "normalize": self.normalize,
                "preprocessing": self.preprocessing, "device": self.device}

    def prepare(self, value: Any) -> Any:
        raise NotImplementedError

    def encode(self, prepared: list[Any]) -> tuple[np.ndarray, list[dict[str, Any] | None]]:
        raise NotImplementedError

    def finish(self, out: np.ndarray) -> np.ndarray:
        out = np.asarray(out, dtype=np.float32).reshape(len(out), -1)
        return l2_normalize(out) if self.normalize else out
