"""``mmprep train`` configuration: YAML in, a validated :class:`TrainConfig` out (unknown keys fail)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, ValidationError

from mmprep.errors import ConfigError

_NAME = re.compile(r"[A-Za-z0-9_-]+")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModalitySpec(_Section):
    field: str = Field(..., description="Shard field holding this modality, e.g. jpg, mfcc.npy, txt_emb.npy.")
    encoder: Literal["mlp", "conv1d", "gru", "cnn", "bag", "transformer"] = Field(
        ..., description="mlp: a vector (embedding); conv1d/gru: a (features, time) sequence such as MFCC or "
                         "log-mel, masked; cnn: an image; bag/transformer: int token ids.")
    image_size: tuple[PositiveInt, PositiveInt] = Field(
        (32, 32), description="Images are resized to (width, height) pixels (one size for every cnn modality).")
    vocab_size: int = Field(30522, ge=2, description="Token ids are taken modulo this.")


class DataSpec(_Section):
    source: str | list[str] = Field(..., description="Shards: a build's OUT directory, a glob, a brace pattern.")
    label: str = Field("cls", description="Field holding the integer class label.")
    val_fraction: float = Field(0.2, ge=0.0, lt=1.0, description="Share of keys (by key hash) held out.")
    batch_size: int = Field(32, ge=1)
    num_workers: int = Field(0, ge=0)
    shuffle_buffer: int = Field(256, ge=0, description="Shuffle buffer, in samples.")
    seed: int = 0


class MatchingSpec(_Section):
    between: tuple[str, str] = Field(..., description="The two modality names whose projections are matched.")
    kind: Literal["infonce", "l2"] = Field("infonce", description="Contrastive InfoNCE, or L2 between unit vectors.")
    weight: float = Field(0.1, ge=0.0)
    temperature: float = Field(0.07, gt=0.0)


class ModelSpec(_Section):
    dim: int = Field(64, ge=4, description="Width of every modality embedding.")
    fusion: Literal["concat", "weighted", "attention", "gated", "late"] = "concat"
    modality_dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Training-time chance to hide a modality "
                                    "of a sample (at least one is always kept).")
    num_classes: int | None = Field(None, ge=2, description="Default: 1 + the largest label seen.")


class TrainSpec(_Section):
    epochs: int = Field(10, ge=1)
    lr: float = Field(3e-3, gt=0.0)
    weight_decay: float = Field(0.0, ge=0.0)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    out: str = Field("runs/train", description="Checkpoints, metrics.json and ablation.json go here.")
    resume: bool = Field(True, description="Continue from OUT/checkpoint.pt when it exists.")
    checkpoint_every: int = Field(0, ge=0, description="Also checkpoint every N steps (0: only at epoch ends).")
    seed: int = 0
    progress: bool = True


class TrainConfig(_Section):
    data: DataSpec
    modalities: dict[str, ModalitySpec]
    model: ModelSpec = ModelSpec()
    loss: dict[str, MatchingSpec | None] = Field(default_factory=dict, description="{matching: {...}} (optional)")
    train: TrainSpec = TrainSpec()

    def matching(self) -> MatchingSpec | None:
        return self.loss.get("matching")


def parse_config(doc: dict) -> TrainConfig:
    try:
        cfg = TrainConfig.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(".".join(str(p) for p in err["loc"]), err["msg"]) from None
    if not cfg.modalities:
        raise ConfigError("modalities", "name at least one modality")
    for name in cfg.modalities:
        if not _NAME.fullmatch(name):  # torch refuses '.' in module names; '/' would leave RUN/ablate/
            raise ConfigError(f"modalities.{name}", "a modality name is letters, digits, '_' and '-' (it names "
                              "model parameters and RUN/ablate/<name>); the field goes in its `field` key")
    unknown = set(cfg.loss) - {"matching"}
    if unknown:
        raise ConfigError(f"loss.{sorted(unknown)[0]}", "unknown loss; only 'matching' can be added")
    match = cfg.matching()
    if match is not None:
        for name in match.between:
            if name not in cfg.modalities:
                raise ConfigError("loss.matching.between", f"{name!r} is not a modality of this config")
        if match.between[0] == match.between[1]:
            raise ConfigError("loss.matching.between", f"names {match.between[0]!r} twice; matching needs two "
                              "different modalities")
    images = [(name, m.image_size) for name, m in cfg.modalities.items() if m.encoder == "cnn"]
    for name, size in images[1:]:
        if size != images[0][1]:  # the decoder resizes every image of a sample to one size
            raise ConfigError(f"modalities.{name}.image_size", f"is {list(size)} but modalities.{images[0][0]} "
                              f"uses {list(images[0][1])}; every cnn modality must use the same image_size")
    return cfg


def load_config(path: str | Path) -> TrainConfig:
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text())
    except OSError as exc:
        raise ConfigError("config", f"cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError("config", f"{path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict):
        raise ConfigError("config", f"{path} must hold a mapping")
    return parse_config(doc)
