"""One entry point from (modality, model reference, options) to a ready :class:`Encoder`."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from mmprep.embed.base import Encoder, resolve_device
from mmprep.errors import ConfigError
from mmprep.sample import ext_modality

DEFAULT_BATCH = {"text": 64, "image": 32, "audio": 16}


@dataclass(frozen=True)
class ModelSpec:
    """What to load. ``model=None`` picks the modality's default (MiniLM-L6-v2, tiny CNN, log-mel stats)."""

    modality: str
    model: str | None = None
    device: str = "auto"
    batch_size: int | None = None
    normalize: bool | None = None  # None: text follows the model, image True, audio False
    checkpoint: str | None = None
    size: int = 224
    mean: tuple[float, ...] = (0.485, 0.456, 0.406)
    std: tuple[float, ...] = (0.229, 0.224, 0.225)
    max_tokens: int | None = None
    extra: dict = field(default_factory=dict)


def modality_of(field_name: str, modality: str | None = None) -> str:
    found = modality or ext_modality(field_name)
    if found not in ("text", "image", "audio"):
        raise ConfigError("field", f"cannot tell the modality of field {field_name!r}; pass --modality "
                          "text, image or audio")
    return found


def check_checkpoint(spec: ModelSpec) -> None:
    """A state_dict only has somewhere to go in a ``package.module:Class`` image or audio model; given with
    anything else it would be ignored without a word, and the embeddings made with the wrong weights."""
    if not spec.checkpoint:
        return
    model = spec.model or ""
    if spec.modality == "text" or ":" not in model or model.startswith("builtin:") or os.path.exists(model):
        what = f"the {spec.modality} model {model or '(default)'}"
        raise ConfigError("checkpoint", f"{spec.checkpoint} cannot be loaded into {what}: a checkpoint is for a "
                          "package.module:Class image or audio model (a model file or directory holds its weights)")


def load_encoder(spec: ModelSpec) -> Encoder:
    """Load the model now (raises ConfigError naming the file if it does not load)."""
    check_checkpoint(spec)
    device = resolve_device(spec.device)
    batch = spec.batch_size or DEFAULT_BATCH[spec.modality]
    if spec.modality == "text":
        from mmprep.embed.text import TextEncoder

        return TextEncoder(model=spec.model, device=device, batch_size=batch, normalize=spec.normalize,
                           max_tokens=spec.max_tokens)
    if spec.modality == "image":
        from mmprep.embed.image import ImageEncoder
        from mmprep.embed.modelfile import BUILTIN_CNN

        return ImageEncoder(model=spec.model or BUILTIN_CNN, device=device, batch_size=batch,
                            normalize=True if spec.normalize is None else spec.normalize, size=spec.size,
                            mean=spec.mean, std=spec.std, checkpoint=spec.checkpoint)
    if spec.modality == "audio":
        from mmprep.embed.audio import AudioEncoder

        return AudioEncoder(model=spec.model, device=device, batch_size=batch,
                            normalize=bool(spec.normalize), checkpoint=spec.checkpoint)
    raise ConfigError("modality", f"no encoder for modality {spec.modality!r}")
