"""Train a fusion classifier on shards: split by key hash, checkpoint/resume, metrics, ablation.

Checkpoints (``OUT/checkpoint.pt``) hold only tensors and plain data and are read back with
``torch.load(weights_only=True)``, so resuming never runs pickled code. They carry the loader
state, so a run stopped mid-epoch continues with exactly the batches it had not yet seen.
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from mmprep.data import Decoder, PadCollate, ShardStream, StreamLoader, resolve
from mmprep.errors import ConfigError
from mmprep.fusion.config import TrainConfig
from mmprep.fusion.losses import matching_loss
from mmprep.fusion.metrics import classification_metrics
from mmprep.fusion.model import FusionModel, check_inputs

log = logging.getLogger("mmprep.train")


def in_val(key: str, fraction: float) -> bool:
    """Held-out keys: a key's blake2b hash in the lowest ``fraction`` of the range (stable across runs)."""
    h = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")
    return h < fraction * 2**64


def pick_device(name: str) -> torch.device:
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("train.device", "cuda was asked for but torch sees no CUDA device")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


class Run:
    """One training run (fused, or one modality for ``--ablate``)."""

    def __init__(self, cfg: TrainConfig, out: Path):
        self.cfg = cfg
        self.out = out
        self.device = pick_device(cfg.train.device)
        d = cfg.data
        try:
            keys = [s.key for shard in resolve(d.source) for s in shard.spans]
        except ConfigError as exc:  # the loader names its own argument, `source`
            raise ConfigError("data.source", exc.message) from None
        val = {k for k in keys if in_val(k, d.val_fraction)}
        train = set(keys) - val
        if not train:
            raise ConfigError("data.val_fraction", "leaves no training samples")
        self.fields = [d.label, *(m.field for m in cfg.modalities.values())]
        sizes = [m.image_size for m in cfg.modalities.values() if m.encoder == "cnn"]
        self.decoder = decoder = Decoder(fields=tuple(self.fields), resize=tuple(sizes[0]) if sizes else None)
        self.collate = PadCollate()
        # one process trains on all of it: WORLD_SIZE/RANK left in the environment (a torchrun or SLURM job
        # script) would otherwise give this single-process trainer 1/world of the data, silently
        stream = ShardStream(d.source, keys=train, decoder=decoder, shuffle=True, buffer=d.shuffle_buffer, seed=d.seed,
                             world=1, rank=0)
        self.loader = StreamLoader(stream, batch_size=d.batch_size, num_workers=d.num_workers, collate_fn=self.collate)
        eval_keys = val or train
        self.val_split = "val" if val else "train"
        self.val_loader = StreamLoader(
            ShardStream(d.source, keys=eval_keys, decoder=decoder, shuffle=False, world=1, rank=0, even="drop"),
            batch_size=d.batch_size, num_workers=0, collate_fn=self.collate)
        self.n_train, self.n_val = len(train), len(eval_keys)
        example, max_label = self._survey()
        torch.manual_seed(cfg.train.seed)  # the model's initial weights depend on the seed alone
        self.num_classes = cfg.model.num_classes or max_label + 1
        if self.num_classes < 2:
            raise ConfigError("data.label", f"field {d.label!r} holds fewer than two classes")
        self.model = FusionModel(cfg, example, self.num_classes).to(self.device)
        self.optim = torch.optim.AdamW(self.model.parameters(), lr=cfg.train.lr, weight_decay=cfg.train.weight_decay)
        self.step = 0
        self.running = [0.0, 0, 0]  # this epoch so far: loss sum, batches in it, batches skipped (non-finite loss)
        self.history: list[dict[str, Any]] = []

    def _survey(self) -> tuple[dict[str, Any], int]:
        """An example batch per field (to size the encoders and check them) and the largest label.

        One pass over the undecoded samples: a sample is decoded whole only while one of the fields has
        no example yet, otherwise only its label is, so every label is checked (against
        ``model.num_classes`` too) before training starts, not when a rare one turns up epochs later.
        """
        label = self.cfg.data.label
        stream = ShardStream(self.cfg.data.source, shuffle=False, world=1, rank=0, decoder=self.decoder)
        only_label = Decoder(fields=(label,))
        found: dict[str, Any] = {}
        first: list[str] = []
        low, high = 0, -1
        # mlp sizes its input from one example: every sample's .npy must have that shape (header only)
        fixed = {m.field: name for name, m in self.cfg.modalities.items() if m.encoder == "mlp" and
                 m.field.endswith(".npy")}
        shapes: dict[str, tuple[tuple[int, ...], str]] = {}
        for shard, key, raw in stream.located():
            first = first or sorted(raw)
            if any(f in raw and f not in found for f in self.fields):
                batch = self.collate([self.decoder(key, raw, shard=shard.url, sidecars=shard.sidecars)])
                found.update({f: batch[f] for f in self.fields if f in batch and f not in found})
            for field in fixed.keys() & raw.keys():
                shape = _npy_shape(raw[field])
                seen = shapes.setdefault(field, (shape, key))
                if shape is not None and seen[0] is not None and shape != seen[0]:
                    raise ConfigError(f"modalities.{fixed[field]}.encoder", f"mlp needs one shape in every sample, "
                                      f"but field {field!r} holds {seen[0]} in {seen[1]!r} and {shape} in {key!r}: "
                                      "sequences take conv1d or gru (features, time), token ids bag or transformer")
            if label in raw:
                value = _label_value(only_label(key, raw, shard=shard.url, sidecars=shard.sidecars)[label], label)
                low, high = min(low, value), max(high, value)
        if label not in found:
            raise ConfigError("data.label", f"no sample holds the label field {label!r}")
        if low < -1:
            raise ConfigError("data.label", f"field {label!r} holds label {low}; class ids are 0 and up (-1: no label)")
        classes = self.cfg.model.num_classes
        if classes is not None and high >= classes:
            raise ConfigError("model.num_classes", f"is {classes}, but field {label!r} holds label {high}: set "
                              "num_classes above the largest label, or leave it out")
        check_inputs(self.cfg, found, first)
        return found, high

    # -- checkpoints ---------------------------------------------------------------------------
    @property
    def ckpt(self) -> Path:
        return self.out / "checkpoint.pt"

    def save(self) -> None:
        self.out.mkdir(parents=True, exist_ok=True)
        tmp = self.ckpt.with_suffix(".tmp")
        torch.save({"model": self.model.state_dict(), "optim": self.optim.state_dict(),
                    "loader": self.loader.state_dict(), "step": self.step,
                    "history": json.dumps(self.history), "running": json.dumps(self.running)}, tmp)
        tmp.replace(self.ckpt)

    def restore(self) -> bool:
        if not (self.cfg.train.resume and self.ckpt.exists()):
            return False
        state = torch.load(self.ckpt, map_location=self.device, weights_only=True)
        try:
            self.model.load_state_dict(state["model"])
            self.optim.load_state_dict(state["optim"])
        except (RuntimeError, ValueError) as exc:  # torch's text spans lines: keep its first one
            raise ConfigError("train.resume", f"{self.ckpt} holds another model than this config makes "
                              f"({str(exc).strip().splitlines()[0].rstrip(':.')}); set another train.out, "
                              "or train.resume: false to start over there") from None
        try:
            self.loader.load_state_dict(state["loader"])
        except ConfigError as exc:
            raise ConfigError("train.resume", f"{self.ckpt} does not fit this config: {exc.message} (or set "
                              "train.resume: false)") from None
        self.step = int(state["step"])
        self.history = json.loads(state["history"])
        self.running = json.loads(state.get("running", "[0.0, 0, 0]"))  # older checkpoints: the epoch restarts its mean
        log.info("resumed %s at epoch %d, batch %d", self.ckpt, self.loader.epoch, self.loader.position)
        return True

    # -- loop ----------------------------------------------------------------------------------
    def labels(self, batch: dict[str, Any]) -> torch.Tensor:
        """``(B,)`` int64 class ids, -1 where a sample has no label (PadCollate leaves the field out of a
        batch in which no sample holds it)."""
        name = self.cfg.data.label
        if name not in batch:
            return torch.full((len(batch["__key__"]),), -1, dtype=torch.long)
        labels = batch[name]
        if int(labels.max()) >= self.num_classes:  # cross_entropy's IndexError names no field
            raise ConfigError("model.num_classes", f"is {self.num_classes}, but field {name!r} holds "
                              f"label {int(labels.max())}: set num_classes above the largest label, or leave it out")
        if int(labels.min()) < -1:
            raise ConfigError("data.label", f"field {name!r} holds label {int(labels.min())}; class ids are 0 and "
                              "up (-1: no label)")
        return labels

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        out = self.model(batch, self.device)
        labels = self.labels(batch).to(self.device)
        labeled = labels >= 0
        # a batch without one labelled sample: cross_entropy's mean over nothing is NaN, which AdamW spreads
        # into every weight; such a batch only trains through the matching term
        loss = (F.cross_entropy(out["logits"][labeled], labels[labeled]) if bool(labeled.any())
                else out["logits"].sum() * 0.0)
        match = self.cfg.matching()
        if match is not None and match.weight > 0:
            a, b = match.between
            i, j = self.model.names.index(a), self.model.names.index(b)
            both = out["present"][:, i] & out["present"][:, j]
            loss = loss + match.weight * matching_loss(out[f"proj.{a}"], out[f"proj.{b}"], both, kind=match.kind,
                                                       temperature=match.temperature)
        return loss

    def fit(self, stop_after: int | None = None) -> dict[str, Any]:
        """Train to ``train.epochs``; ``stop_after`` steps (tests) stops early after a checkpoint."""
        self.restore()
        from rich.progress import Progress

        quiet = not (self.cfg.train.progress and sys.stderr.isatty())
        every = self.cfg.train.checkpoint_every
        t0 = time.perf_counter()
        with Progress(disable=quiet, transient=True) as bar:
            for epoch in range(self.loader.epoch, self.cfg.train.epochs):
                self.loader.set_epoch(epoch)
                task = bar.add_task(f"epoch {epoch + 1}/{self.cfg.train.epochs}", total=len(self.loader),
                                    completed=self.loader.position)
                self.model.train()
                if self.loader.position == 0:
                    self.running = [0.0, 0, 0]
                for batch in self.loader:
                    self.optim.zero_grad()
                    loss = self.loss(batch)
                    self.step += 1
                    if not bool(torch.isfinite(loss)):  # one step would make every weight NaN
                        self.running[2] += 1
                        log.warning("step %d: loss is %s; batch skipped (no update); its keys: %s", self.step,
                                    float(loss), ", ".join(batch["__key__"][:8]))
                    else:
                        loss.backward()
                        self.optim.step()
                        self.running[0] += float(loss.detach())
                        self.running[1] += 1
                    bar.advance(task)
                    if every and self.step % every == 0:
                        self.save()
                    if stop_after is not None and self.step >= stop_after:
                        self.save()
                        return {"stopped_at_step": self.step}
                metrics = self.evaluate()
                loss_sum, batches, nonfinite = self.running
                self.history.append({"epoch": epoch + 1, "loss": loss_sum / batches if batches else None,
                                     "skipped_nonfinite": nonfinite,
                                     "val_accuracy": metrics["accuracy"], "val_macro_f1": metrics["macro_f1"]})
                log.info("epoch %d: loss %.4f, %s accuracy %.3f, macro-F1 %.3f", epoch + 1,
                         self.history[-1]["loss"] or 0.0, self.val_split, metrics["accuracy"], metrics["macro_f1"])
                self.save()
        result = {"modalities": list(self.cfg.modalities), "fusion": self.cfg.model.fusion,
                  "epochs": self.cfg.train.epochs, "train_samples": self.n_train, "eval_split": self.val_split,
                  "eval_samples": self.n_val, "num_classes": self.num_classes,
                  "seconds": round(time.perf_counter() - t0, 2),
                  "metrics": self.evaluate(), "history": self.history}
        (self.out / "metrics.json").write_text(json.dumps(result, indent=2))
        return result

    @torch.no_grad()
    def evaluate(self, drop: tuple[str, ...] = ()) -> dict[str, Any]:
        """Metrics on the held-out split; ``drop`` names modalities to hide (missing-modality check)."""
        self.model.eval()
        hidden = {self.cfg.modalities[n].field for n in drop}
        preds, labels = [], []
        self.val_loader.set_epoch(0)
        for batch in self.val_loader:
            batch = {k: v for k, v in batch.items() if not any(k == h or k.startswith(h + ".") for h in hidden)}
            logits = self.model(batch, self.device)["logits"]
            y = self.labels(batch)
            keep = y >= 0
            preds.append(logits.argmax(1).cpu()[keep])
            labels.append(y[keep])
        pred = torch.cat(preds).numpy() if preds else np.zeros(0, dtype=np.int64)
        label = torch.cat(labels).numpy() if labels else np.zeros(0, dtype=np.int64)
        return classification_metrics(pred, label, self.num_classes)


def single_modality(cfg: TrainConfig, name: str) -> TrainConfig:
    """The same config with only modality ``name`` (same budget: epochs, batch size, lr)."""
    doc = cfg.model_dump(mode="python")
    doc["modalities"] = {name: doc["modalities"][name]}
    doc["model"]["modality_dropout"] = 0.0
    match = cfg.matching()
    if match is not None:
        doc["loss"] = {}
    return TrainConfig.model_validate(doc)


def train(cfg: TrainConfig, *, ablate: bool = False) -> dict[str, Any]:
    """Train the fused model (and with ``ablate`` each single modality); returns the report."""
    out = Path(cfg.train.out)
    report: dict[str, Any] = {"fused": Run(cfg, out).fit()}
    if ablate:
        report["single"] = {}
        for name in cfg.modalities:
            sub = single_modality(cfg, name)
            report["single"][name] = Run(sub, out / "ablate" / name).fit()
        report["summary"] = {"fused": report["fused"]["metrics"]["accuracy"],
                             **{n: r["metrics"]["accuracy"] for n, r in report["single"].items()}}
        (out / "ablation.json").write_text(json.dumps(report, indent=2))
    return report


def _npy_shape(data: bytes) -> tuple[int, ...] | None:
    """The shape in a ``.npy`` member's header, or None when it has no valid header (decoding says why)."""
    import io

    buf = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(buf)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        return tuple(read(buf)[0])
    except ValueError:
        return None


def _label_value(value: Any, field: str) -> int:
    """One sample's class id; a config error when the label field holds no integer class id."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, torch.Tensor):
        if value.dtype.is_floating_point or value.dtype == torch.bool:
            raise ConfigError("data.label", f"field {field!r} must hold integer class ids (.cls), not {value.dtype}")
        if value.dim() == 0:
            return int(value)
        raise ConfigError("data.label", f"field {field!r} must hold integer class ids (.cls), one per sample, "
                          f"not arrays of shape {tuple(value.shape)}")
    raise ConfigError("data.label", f"field {field!r} must hold integer class ids (.cls), not "
                      f"{type(value).__name__}")
