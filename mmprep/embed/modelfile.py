"""Load a model from a local file into a ``forward(batch) -> array`` callable.

Accepted, for images and audio:

* a TorchScript file (``torch.jit.save``; any extension other than ``.onnx``); on CPU it is frozen and
  passed through ``torch.jit.optimize_for_inference`` (batch norm folded into the convolutions,
  oneDNN kernels with prepacked weights): about 1.3-1.5x on a ResNet-18-shaped network, outputs equal to
  the plain module within float rounding (~1e-6). A module that cannot be frozen runs as loaded;
* an ONNX file (``.onnx``; needs ``onnxruntime``), first input fed, first output read;
* a torch module by import path, ``package.module:Class``, plus ``checkpoint`` (a ``state_dict`` file
  loaded with ``weights_only=True``); the class is built with no arguments;
* ``builtin:tiny-cnn``: a small deterministic CNN for tests and smoke runs (no file).

A file that does not load raises ``ConfigError("model", ...)`` naming it, before any work starts.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmprep.cache import digest
from mmprep.embed.base import need, to_device
from mmprep.embed.identity import model_hash
from mmprep.errors import ConfigError

BUILTIN_CNN = "builtin:tiny-cnn"


@dataclass
class Loaded:
    forward: Callable[[np.ndarray], np.ndarray]
    kind: str
    identity: str  # content hash of the weights
    module: Any = None  # the torch module that runs (frozen and optimized for a TorchScript file on CPU)


def tiny_cnn(dim: int = 64) -> Any:
    """Three strided conv blocks + global average pool -> ``(n, dim)``; weights fixed by seed 0."""
    import torch
    from torch import nn

    gen = torch.Generator().manual_seed(0)
    net = nn.Sequential(
        nn.Conv2d(3, 16, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(16, 32, 3, stride=2, padding=1), nn.ReLU(),
        nn.Conv2d(32, dim, 3, stride=2, padding=1), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return net.eval()


def _torch_forward(net: Any, device: str) -> Callable[[np.ndarray], np.ndarray]:
    import torch

    def forward(batch: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            out = net(to_device(torch.from_numpy(np.ascontiguousarray(batch)), device))
            if isinstance(out, (tuple, list)):
                out = out[0]
            return out.float().reshape(out.shape[0], -1).cpu().numpy()

    return forward


def _optimized(net: Any, device: str) -> Any:
    """Frozen + inference-optimized copy of a loaded TorchScript module on CPU; the module itself when
    freezing fails (e.g. it mutates attributes in ``forward``) or on CUDA (left as the file has it)."""
    import torch

    if device != "cpu":
        return net
    try:
        return torch.jit.optimize_for_inference(torch.jit.freeze(net.eval()))
    except Exception:  # noqa: BLE001 - freezing is an optimization; any failure keeps the module as loaded
        return net


def load_model_file(model: str, *, device: str, checkpoint: str | None = None) -> Loaded:
    import torch

    if model == BUILTIN_CNN:
        net = tiny_cnn().to(device)
        return Loaded(_torch_forward(net, device), "builtin", digest(BUILTIN_CNN, "v1"))
    path = Path(model)
    if path.is_file() and path.suffix.lower() == ".onnx":
        need("onnxruntime", "onnxruntime")
        import onnxruntime as ort

        try:
            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if device.startswith("cuda") else [
                "CPUExecutionProvider"]
            sess = ort.InferenceSession(str(path), providers=providers)
        except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own unrelated types
            raise ConfigError("model", f"{path} does not load as ONNX: {exc}") from None
        name = sess.get_inputs()[0].name

        def forward(batch: np.ndarray) -> np.ndarray:
            out = sess.run(None, {name: np.ascontiguousarray(batch, dtype=np.float32)})[0]
            return np.asarray(out, dtype=np.float32).reshape(len(batch), -1)

        return Loaded(forward, "onnx", model_hash(path))
    if path.is_file():
        try:
            net = torch.jit.load(str(path), map_location=device).eval()
        except Exception as exc:  # noqa: BLE001 - torch raises RuntimeError, ValueError, pickle errors...
            reason = str(exc).splitlines()[0].split(". ")[0]
            raise ConfigError("model", f"{path} does not load as TorchScript: {reason}") from None
        net = _optimized(net, device)
        return Loaded(_torch_forward(net, device), "torchscript", model_hash(path), net)
    if ":" in model and not path.exists():
        module, _, attr = model.partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
            net = cls()
        except (ImportError, AttributeError, TypeError) as exc:
            raise ConfigError("model", f"cannot build {model}: {exc}") from None
        ident = digest(model)
        if checkpoint:
            try:
                state = torch.load(checkpoint, map_location="cpu", weights_only=True)
                net.load_state_dict(state.get("state_dict", state) if isinstance(state, dict) else state)
            except Exception as exc:  # noqa: BLE001 - missing file, bad pickle, mismatched keys
                raise ConfigError("checkpoint", f"{checkpoint} does not load into {model}: {exc}") from None
            ident = digest(model, model_hash(checkpoint))
        return Loaded(_torch_forward(net.eval().to(device), device), "torch-module", ident)
    raise ConfigError("model", f"model file {model} does not exist")
