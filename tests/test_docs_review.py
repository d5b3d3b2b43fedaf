"""Docs review: what README.md and docs/*.md promise, checked where the code did not keep the promise."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from mmprep.testing.fusion import write_fusion_shards
from tests.conftest import run_cli


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


def test_build_line_and_show_count_shards_not_tars_past_max_bytes(tmp_path, corpus, demo_doc):
    """README: output.max_bytes rolls a shard over into NAME-000000_01.tar... The closing line and
    `mmprep show` said '8/8 samples in 6 shards (2 already complete)' for 2 shards of 3 tars each."""
    doc = {**demo_doc, "output": {**demo_doc["output"], "max_bytes": "20KB"}}
    (tmp_path / "p.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    out = tmp_path / "out"
    first = run_cli("build", str(tmp_path / "p.yaml"), "-i", str(corpus), "-o", str(out), "-w", "1", "-q")
    assert first.returncode == 0, first.stderr
    tars = len(list((out / "shards").glob("*.tar")))
    assert tars > 2
    assert first.stdout.startswith(f"8/8 samples in 2 shards ({tars} tars; 0 already complete), 0 dropped, ")
    again = run_cli("build", str(tmp_path / "p.yaml"), "-i", str(corpus), "-o", str(out), "-w", "1", "-q")
    assert again.stdout.startswith(f"8/8 samples in 2 shards ({tars} tars; 2 already complete), 0 dropped, ")
    show = run_cli("show", str(out))
    assert show.stdout.splitlines()[0].startswith(f"{out}: 8/8 samples in 2 shards ({tars} tars, ")
    plain = run_cli("build", "pipelines/demo.yaml", "-i", str(corpus), "-o", str(tmp_path / "plain"), "-w", "1", "-q")
    assert plain.stdout.startswith("8/8 samples in 2 shards (0 already complete), 0 dropped, ")


def test_make_corpus_help_prints_usage_and_writes_nothing(tmp_path):
    """README quick start names examples/make_corpus.py; `--help` wrote the demo corpus into a folder
    named '--help' (and would have replaced one of that name)."""
    script = Path(__file__).resolve().parents[1] / "examples" / "make_corpus.py"
    proc = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: make_corpus.py [-h] [root]")
    assert list(tmp_path.iterdir()) == []
    made = subprocess.run([sys.executable, str(script), "c"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert made.returncode == 0, made.stderr
    assert sorted(p.name for p in (tmp_path / "c").iterdir()) == ["broken", "part0", "part1"]


def test_vocab_on_a_folder_that_is_no_build_says_so(tmp_path):
    """`mmprep vocab OUT` on a missing or unbuilt folder said it had 'no text.vocab shard counts'."""
    for out in (tmp_path / "missing", tmp_path):
        res = run_cli("vocab", str(out))
        assert res.returncode == 2
        assert res.stderr.strip() == (f"mmprep: config error: OUT: {out} is no build's output folder (no .parts/): "
                                      "no text.vocab counts to read")
