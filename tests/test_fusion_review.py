"""Fusion review: config mistakes are one config-error line naming the key (exit 2) before any training."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mmprep.errors import ConfigError
from mmprep.fusion import parse_config
from mmprep.fusion.trainer import Run
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
