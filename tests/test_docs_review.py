"""Docs review: what README.md and docs/*.md promise, checked where the code did not keep the promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mmprep.testing.fusion import write_fusion_shards


@pytest.fixture(scope="module")
def fusion_shards(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("docs_review_fusion")
    write_fusion_shards(d, n=24, per_shard=10)
    return d


def _train(tmp_path: Path, source: Path, modalities: dict) -> subprocess.CompletedProcess:
    doc = {"data": {"source": str(source), "batch_size": 8, "val_fraction": 0.0, "shuffle_buffer": 8},
           "modalities": modalities, "model": {"fusion": "concat", "dim": 16},
           "train": {"epochs": 1, "out": str(tmp_path / "run"), "progress": False}}
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return subprocess.run([sys.executable, "-m", "mmprep", "train", str(path), "-q"], capture_output=True, text=True,
                          timeout=300)


def test_train_mlp_on_arrays_of_varying_shape_is_a_config_error(fusion_shards, tmp_path):
    """docs/fusion.md: an encoder that cannot take what its field holds is a config error before training.
    mlp on token ids of varying length was a LayerNorm RuntimeError traceback (exit 1) in the first step."""
    proc = _train(tmp_path, fusion_shards, {"image": {"field": "jpg", "encoder": "cnn"},
                                            "text": {"field": "tok.npy", "encoder": "mlp"}})
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.strip() == (
        "mmprep: config error: modalities.text.encoder: mlp needs one shape in every sample, but field 'tok.npy' "
        "holds (11,) in 's00000' and (7,) in 's00001': sequences take conv1d or gru (features, time), token ids "
        "bag or transformer")
    assert not (tmp_path / "run").exists()
