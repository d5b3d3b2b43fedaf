"""Fusion review: config mistakes are one config-error line naming the key (exit 2) before any training;
training survives what real shards hold (unlabelled samples, NaN arrays, missing modalities, padding)."""

from __future__ import annotations

import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from mmprep.codecs import npy_bytes
from mmprep.data import PadCollate
from mmprep.errors import ConfigError
from mmprep.fusion import STRATEGIES, FusionModel, parse_config
from mmprep.fusion.encoders import ConvSeqEncoder
from mmprep.fusion.trainer import Run
from mmprep.shardwriter import ShardWriter
from mmprep.testing.fusion import write_fusion_shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("fusion_review")
    write_fusion_shards(d, n=24, per_shard=10, drop_audio_every=4)
    return d


def _doc(source: Path, out: Path, modalities: dict, **over) -> dict:
    doc = {"data": {"source": str(source), "batch_size": 8, "val_fraction": 0.0, "shuffle_buffer": 8},
           "modalities": modalities, "model": {"fusion": "concat", "dim": 16},
           "train": {"epochs": 1, "out": str(out), "progress": False}}
    for section, values in over.items():
        doc[section] = {**doc.get(section, {}), **values}
    return doc


def _cli(tmp_path: Path, doc: dict) -> subprocess.CompletedProcess:
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return subprocess.run([sys.executable, "-m", "mmprep", "train", str(path), "-q"], capture_output=True, text=True,
                          timeout=300)


@pytest.mark.parametrize("size", [[0, 32], [32, -4]])
def test_cli_image_size_zero_or_negative(shards, tmp_path, size):
    """It reached cv2.resize: every image a decode error, a traceback and exit 1."""
    proc = _cli(tmp_path, _doc(shards, tmp_path / "run", {"image": {"field": "jpg", "encoder": "cnn",
                                                                    "image_size": size}}))
    assert proc.returncode == 2, proc.stderr
    index = 0 if size[0] <= 0 else 1
    assert proc.stderr.strip() == (f"mmprep: config error: modalities.image.image_size.{index}: "
                                   "Input should be greater than 0")
    assert not (tmp_path / "run").exists()


def test_cli_field_in_no_sample(shards, tmp_path):
    """It was a ValueError traceback from FusionModel (exit 1)."""
    proc = _cli(tmp_path, _doc(shards, tmp_path / "run", {"image": {"field": "png", "encoder": "cnn"},
                                                          "text": {"field": "tok.npy", "encoder": "bag"}}))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == ("mmprep: config error: modalities.image.field: 'png' is in no sample of the "
                                   "shards (fields there: cls, jpg, meta.json, tok.npy)")
    assert not (tmp_path / "run").exists()


def test_cli_image_encoder_on_a_sequence_field(shards, tmp_path):
    """cnn on MFCC was a conv2d RuntimeError traceback in the first training step."""
    proc = _cli(tmp_path, _doc(shards, tmp_path / "run", {"audio": {"field": "mfcc.npy", "encoder": "cnn"}}))
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip()
    assert len(line.splitlines()) == 1
    assert line.startswith("mmprep: config error: modalities.audio.encoder: cnn needs an image per sample "
                           "(channels, height, width)")
    assert re.search(r"field 'mfcc\.npy' holds float32 arrays of shape \(13, \d+\)$", line)  # T: the batch's
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("spec,message", [
    ({"field": "jpg", "encoder": "conv1d"}, "conv1d needs a (features, time) sequence per sample, e.g. mfcc.npy or "
                                            "logmel.npy; field 'jpg' holds uint8 arrays of shape (3, 32, 32)"),
    ({"field": "jpg", "encoder": "bag"}, "bag needs integer token ids (length,) per sample, e.g. tok.npy; field "
                                         "'jpg' holds uint8 arrays of shape (3, 32, 32)"),
    ({"field": "mfcc.npy", "encoder": "transformer"}, "transformer needs integer token ids (length,) per sample, "
                                                      "e.g. tok.npy; field 'mfcc.npy' holds float32 arrays of shape "
                                                      "(13, T)"),
    ({"field": "tok.npy", "encoder": "gru"}, "gru needs a (features, time) sequence per sample, e.g. mfcc.npy or "
                                             "logmel.npy; field 'tok.npy' holds int64 arrays of shape (11,)"),
    ({"field": "meta.json", "encoder": "mlp"}, "mlp needs a numeric vector (or array) per sample, e.g. "
                                               "txt_emb.npy; field 'meta.json' holds dict values"),
    ({"field": "cls", "encoder": "mlp"}, "mlp needs a numeric vector (or array) per sample, e.g. txt_emb.npy; "
                                         "field 'cls' holds one torch.int64 number per sample"),
])
def test_encoder_that_cannot_take_the_field(shards, tmp_path, spec, message):
    cfg = parse_config(_doc(shards, tmp_path / "run", {"x": spec}, model={"num_classes": 4}))
    with pytest.raises(ConfigError) as err:
        Run(cfg, tmp_path / "run")
    got = re.sub(r"\(13, \d+\)", "(13, T)", err.value.message)  # T: the longest MFCC of the batch
    assert (err.value.key, got) == ("modalities.x.encoder", message)


def test_image_sizes_must_agree_and_matching_needs_two_modalities(shards, tmp_path):
    two = {"a": {"field": "jpg", "encoder": "cnn", "image_size": [16, 16]},
           "b": {"field": "jpg", "encoder": "cnn", "image_size": [32, 16]}}
    with pytest.raises(ConfigError) as err:
        parse_config(_doc(shards, tmp_path, two))
    assert str(err.value) == ("modalities.b.image_size: is [32, 16] but modalities.a uses [16, 16]; every cnn "
                              "modality must use the same image_size")
    same = {"a": {"field": "jpg", "encoder": "cnn"}, "b": {"field": "tok.npy", "encoder": "bag"}}
    with pytest.raises(ConfigError) as err:
        parse_config(_doc(shards, tmp_path, same, loss={"matching": {"between": ["a", "a"]}}))
    assert str(err.value) == "loss.matching.between: names 'a' twice; matching needs two different modalities"


# -- training on what real shards hold: unlabelled samples, NaN arrays, missing modalities, padding ----------
def _vectors(directory: Path, labels: list[int | None], *, nan: set[int] = frozenset()) -> Path:
    """One shard of ``emb.npy`` (8 floats, class-dependent) + ``tok.npy`` samples, ``cls`` where the label is
    not None; ``emb.npy`` of the samples in ``nan`` holds a NaN."""
    rng = np.random.default_rng(0)
    directory.mkdir(parents=True)
    writer = ShardWriter(directory, "v-000000")
    for i, label in enumerate(labels):
        emb = rng.standard_normal(8).astype(np.float32) + (2.0 * (label or 0))
        if i in nan:
            emb[3] = np.nan
        members = [("emb.npy", npy_bytes(emb)), ("tok.npy", npy_bytes(np.array([i % 5, 7], dtype=np.int64)))]
        if label is not None:
            members.insert(0, ("cls", str(label).encode()))
        writer.write(f"k{i:02d}", members)
    writer.close()
    return directory


def _weights_finite(run: Run) -> bool:
    return all(bool(torch.isfinite(t).all()) for t in run.model.state_dict().values() if t.is_floating_point())


@pytest.mark.parametrize("batch_size", [1, 2])
def test_batches_without_a_label_train_through_matching(tmp_path, batch_size):
    """A batch where no sample holds the label was a KeyError (the field is absent from the batch) or,
    with some -1 labels only, a NaN loss that AdamW spread into every weight."""
    labels = [None, None, 0, None, None, 1, None, None, None, 1, None, 0]
    d = _vectors(tmp_path / "shards", labels)
    cfg = parse_config(_doc(d, tmp_path / "run", {"e": {"field": "emb.npy", "encoder": "mlp"},
                                                  "t": {"field": "tok.npy", "encoder": "bag", "vocab_size": 16}},
                            data={"batch_size": batch_size},
                            loss={"matching": {"between": ["e", "t"], "kind": "infonce", "weight": 0.5}},
                            train={"epochs": 2}))
    run = Run(cfg, tmp_path / "run")
    result = run.fit()
    assert _weights_finite(run)
    assert all(h["loss"] is not None and np.isfinite(h["loss"]) and h["skipped_nonfinite"] == 0
               for h in result["history"])
    assert result["metrics"]["samples"] == 4  # evaluation counts the labelled samples only


def test_nan_in_an_array_is_a_missing_modality_not_nan_weights(tmp_path, caplog):
    labels = [0, 1] * 6
    d = _vectors(tmp_path / "shards", labels, nan={4})
    cfg = parse_config(_doc(d, tmp_path / "run", {"e": {"field": "emb.npy", "encoder": "mlp"},
                                                  "t": {"field": "tok.npy", "encoder": "bag", "vocab_size": 16}},
                            data={"batch_size": 4}, train={"epochs": 2}))
    run = Run(cfg, tmp_path / "run")
    with caplog.at_level(logging.WARNING, logger="mmprep.train"):
        result = run.fit()
    assert _weights_finite(run)
    assert all(np.isfinite(h["loss"]) for h in result["history"])
    lines = [r.getMessage() for r in caplog.records if "NaN or inf" in r.getMessage()]
    assert lines and all(line == "field 'emb.npy' holds NaN or inf in 1 sample(s), taken as missing: k04"
                         for line in lines)


def _image_model(fusion: str) -> FusionModel:
    cfg = parse_config({"data": {"source": "x"}, "model": {"fusion": fusion, "dim": 8},
                        "modalities": {"image": {"field": "jpg", "encoder": "cnn"},
                                       "audio": {"field": "mfcc.npy", "encoder": "conv1d"}}})
    torch.manual_seed(0)
    example = {"jpg": torch.zeros(2, 3, 8, 8, dtype=torch.uint8), "mfcc.npy": torch.zeros(2, 4, 5)}
    return FusionModel(cfg, example, 3)


@pytest.mark.parametrize("fusion", ["concat", "late", "attention"])
def test_missing_modality_does_not_change_the_others_in_training(fusion):
    """The zero-filled slot of a missing image went through the image encoder's BatchNorm with the real
    ones, so in training a sample's embedding depended on which other samples lacked an image."""
    g = torch.Generator().manual_seed(1)
    samples = [{"__key__": f"k{i}", "jpg": torch.randint(0, 256, (3, 8, 8), generator=g, dtype=torch.uint8),
                "mfcc.npy": torch.randn(4, 5, generator=g)} for i in range(4)]
    for s in samples[2:]:
        del s["jpg"]
    model = _image_model(fusion).train()
    full = PadCollate()(samples)
    assert full["jpg.present"].tolist() == [True, True, False, False]
    z, present = model.encode(full, torch.device("cpu"))
    alone, _ = model.encode(PadCollate()(samples[:2]), torch.device("cpu"))
    assert torch.allclose(z[:2, 0], alone[:, 0], atol=1e-5)  # the present images: as if the others were not there
    assert torch.equal(z[2:, 0], torch.zeros(2, 8)) and present[:, 0].tolist() == [True, True, False, False]


def test_conv1d_ignores_padding_in_training_too():
    """BatchNorm1d counted padded steps in its batch statistics: in training (and in the running statistics
    that evaluation then uses) a sample's output depended on the batch's longest sample."""
    torch.manual_seed(0)
    enc = ConvSeqEncoder(4, 8).train()
    x = torch.randn(2, 4, 6) * 3 + 5
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    x[1, :, 3:] = 0.0
    base = enc(x, mask)
    longer = torch.cat([x, torch.zeros(2, 4, 9)], dim=2)  # the same samples in a batch padded to 15 steps
    assert torch.allclose(enc(longer, torch.cat([mask, torch.zeros(2, 9, dtype=torch.bool)], 1)), base, atol=1e-5)
    real = torch.cat([x[0], x[1, :, :3]], dim=1)  # (4, 9): the 9 real steps
    fresh = ConvSeqEncoder(4, 8).train()
    fresh(x, mask)
    assert torch.allclose(fresh.norm.running_mean, 0.1 * real.mean(1), atol=1e-5)


@pytest.mark.parametrize("stop", [3, 4])
def test_resumed_epoch_reports_the_loss_of_the_whole_epoch(tmp_path, stop):
    """The history's loss of an epoch resumed mid-way was the mean over the batches after the restart
    (stop 3: after epoch 1's last step, before its evaluation; stop 4: inside epoch 2)."""
    d = tmp_path / "shards"
    write_fusion_shards(d, n=24, per_shard=10)
    doc = _doc(d, tmp_path / "a", {"image": {"field": "jpg", "encoder": "cnn", "image_size": [16, 16]},
                                   "text": {"field": "tok.npy", "encoder": "bag", "vocab_size": 128}},
               train={"epochs": 2, "lr": 0.01})
    full = Run(parse_config(doc), tmp_path / "a")
    full.fit()
    doc["train"]["out"] = str(tmp_path / "b")
    assert Run(parse_config(doc), tmp_path / "b").fit(stop_after=stop) == {"stopped_at_step": stop}  # 3 an epoch
    again = Run(parse_config(doc), tmp_path / "b")
    again.fit()
    assert [h["epoch"] for h in again.history] == [1, 2] and again.step == full.step == 6
    for a, b in zip(full.history, again.history, strict=True):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-5) and a["val_accuracy"] == b["val_accuracy"]


# -- resume after changing the job -----------------------------------------------------------------------------
def test_resume_after_an_epoch_with_more_workers(tmp_path):
    """The epoch-end checkpoint was refused when the job came back with another data.num_workers
    ('state: saved with num_workers=0', exit 2), although an epoch boundary depends on no worker count."""
    d = _vectors(tmp_path / "shards", [0, 1] * 8)
    doc = _doc(d, tmp_path / "run", {"e": {"field": "emb.npy", "encoder": "mlp"}}, data={"batch_size": 4},
               train={"epochs": 1})
    first = Run(parse_config(doc), tmp_path / "run")
    first.fit()
    doc["data"]["num_workers"] = 2
    doc["train"]["epochs"] = 2
    again = Run(parse_config(doc), tmp_path / "run")
    again.fit()
    assert again.step == 8 and [h["epoch"] for h in again.history] == [1, 2]


def test_resume_into_another_model_is_a_config_error(tmp_path):
    d = _vectors(tmp_path / "shards", [0, 1] * 8)
    doc = _doc(d, tmp_path / "run", {"e": {"field": "emb.npy", "encoder": "mlp"}}, data={"batch_size": 4})
    Run(parse_config(doc), tmp_path / "run").fit(stop_after=1)
    doc["data"]["num_workers"] = 1
    with pytest.raises(ConfigError) as err:
        Run(parse_config(doc), tmp_path / "run").fit()
    assert str(err.value) == (f"train.resume: {tmp_path / 'run' / 'checkpoint.pt'} does not fit this config: saved "
                              "mid-epoch with num_workers=0, this loader has 1; resume mid-epoch with the saved "
                              "value (or set train.resume: false)")
    doc["data"]["num_workers"] = 0
    doc["modalities"]["t"] = {"field": "tok.npy", "encoder": "bag", "vocab_size": 16}
    with pytest.raises(ConfigError) as err:
        Run(parse_config(doc), tmp_path / "run").fit()
    assert err.value.key == "train.resume"
    assert str(err.value).startswith(f"train.resume: {tmp_path / 'run' / 'checkpoint.pt'} holds another model than "
                                     "this config makes (Error(s) in loading state_dict for FusionModel")
    assert str(err.value).endswith("; set another train.out, or train.resume: false to start over there")


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_a_sample_with_no_modality_left_gives_finite_logits_and_gradients(name):
    """weighted fusion renormalized a softmax over all -inf for such a sample (one that lacks the only
    modality of an --ablate run, or whose arrays all hold NaN): NaN logits, NaN loss, NaN weights."""
    torch.manual_seed(0)
    fusion = STRATEGIES[name](2, 8, 3).train()
    z = torch.randn(3, 2, 8)
    present = torch.tensor([[1, 1], [0, 0], [1, 0]], dtype=torch.bool)
    logits = fusion(z, present)
    logits.sum().backward()
    assert torch.isfinite(logits).all()
    assert all(torch.isfinite(p.grad).all() for p in fusion.parameters() if p.grad is not None)
    noisy = z.clone()
    noisy[1] = 1e3  # the empty sample's logits do not depend on what sits in its slots
    assert torch.allclose(fusion(noisy, present)[1], logits[1], atol=1e-5)
    if name == "weighted":
        w = fusion.modality_weights(present)
        assert torch.allclose(w.sum(1), torch.tensor([1.0, 0.0, 1.0])) and w[2, 1] == 0


def test_cli_source_without_shards_names_data_source(tmp_path):
    """The line named the loader's argument ('source: no shards match ...'), not the config key."""
    doc = _doc(tmp_path / "nothing" / "x-*.tar", tmp_path / "run", {"e": {"field": "emb.npy", "encoder": "mlp"}})
    proc = _cli(tmp_path, doc)
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"mmprep: config error: data.source: no shards match "
                                   f"{str(tmp_path / 'nothing' / 'x-*.tar')!r}")


def test_label_below_minus_one_is_a_config_error(tmp_path):
    d = _vectors(tmp_path / "shards", [0, 1, -3, 1, 0, 1])
    cfg = parse_config(_doc(d, tmp_path / "run", {"e": {"field": "emb.npy", "encoder": "mlp"}},
                            data={"batch_size": 6}))
    with pytest.raises(ConfigError) as err:
        Run(cfg, tmp_path / "run").fit()
    assert str(err.value) == "data.label: field 'cls' holds label -3; class ids are 0 and up (-1: no label)"


@pytest.mark.parametrize("name", ["mfcc.npy", "../x", "", "a b"])
def test_modality_names_that_cannot_name_parameters_or_folders(tmp_path, name):
    """'mfcc.npy' as a modality name was torch's KeyError (module names cannot hold '.'); '/abs/path' would
    have put an --ablate run's checkpoint outside RUN."""
    with pytest.raises(ConfigError) as err:
        parse_config(_doc(tmp_path, tmp_path / "run", {name: {"field": "mfcc.npy", "encoder": "conv1d"}}))
    assert err.value.key == f"modalities.{name}"
    assert err.value.message.startswith("a modality name is letters, digits, '_' and '-'")


def test_a_rare_label_above_num_classes_fails_before_training(tmp_path):
    """The survey stopped once every field had an example when num_classes was set, so a larger label
    further on stopped the run when its batch came up, after steps and checkpoints."""
    d = _vectors(tmp_path / "shards", [0, 1] * 11 + [5])
    cfg = parse_config(_doc(d, tmp_path / "run", {"e": {"field": "emb.npy", "encoder": "mlp"}},
                            data={"batch_size": 2, "shuffle_buffer": 0}, model={"num_classes": 3},
                            train={"checkpoint_every": 1}))
    with pytest.raises(ConfigError) as err:
        Run(cfg, tmp_path / "run").fit()
    assert str(err.value) == ("model.num_classes: is 3, but field 'cls' holds label 5: set num_classes above the "
                              "largest label, or leave it out")
    assert not (tmp_path / "run").exists()


def test_trainer_reads_all_training_samples_whatever_the_environment(tmp_path, monkeypatch):
    """WORLD_SIZE/RANK in the environment (a torchrun or SLURM job script) made the single-process trainer's
    loader read 1/world of the training samples."""
    monkeypatch.setenv("WORLD_SIZE", "4")
    monkeypatch.setenv("RANK", "1")
    d = _vectors(tmp_path / "shards", [0, 1] * 10)
    run = Run(parse_config(_doc(d, tmp_path / "run", {"e": {"field": "emb.npy", "encoder": "mlp"}},
                                data={"batch_size": 4})), tmp_path / "run")
    assert run.n_train == len(run.loader.dataset) == 20 and len(run.loader) == 5


@pytest.mark.parametrize("encoder", ["conv1d", "gru", "transformer", "bag"])
def test_empty_sequences_count_as_missing(encoder):
    """A sample with no MFCC frame or no token (an empty text) failed the convolution (padded input smaller
    than the kernel), the GRU or the transformer (mask[:, 0] of a (B, 0) batch) when the batch held only
    such samples, and fed padding to the encoder otherwise."""
    tokens = encoder in ("transformer", "bag")
    field = "tok.npy" if tokens else "mfcc.npy"
    cfg = parse_config({"data": {"source": "x"}, "model": {"fusion": "concat", "dim": 8},
                        "modalities": {"s": {"field": field, "encoder": encoder, "vocab_size": 16},
                                       "e": {"field": "emb.npy", "encoder": "mlp"}}})
    torch.manual_seed(0)

    def value(length: int) -> torch.Tensor:
        return torch.arange(length) % 16 if tokens else torch.randn(4, length)

    example = {field: torch.stack([value(5), value(5)]), "emb.npy": torch.randn(2, 3)}
    model = FusionModel(cfg, example, 3).train()
    for lengths in ([0, 0], [0, 6, 3]):
        batch = PadCollate()([{"__key__": f"k{i}", field: value(t), "emb.npy": torch.randn(3)}
                              for i, t in enumerate(lengths)])
        out = model(batch, torch.device("cpu"))
        assert torch.isfinite(out["logits"]).all()
        assert out["present"][:, 0].tolist() == [t > 0 for t in lengths]
        z, _ = model.encode(batch, torch.device("cpu"))
        assert torch.equal(z[0, 0], torch.zeros(8))


def test_conv1d_trains_on_a_batch_with_one_step():
    """BatchNorm1d raised 'Expected more than 1 value per channel when training' for a batch holding one
    sample of one frame (batch_size 1, or the only sample with audio in its batch)."""
    enc = ConvSeqEncoder(4, 8).train()
    out = enc(torch.randn(1, 4, 1), None)
    assert out.shape == (1, 8) and torch.isfinite(out).all()
