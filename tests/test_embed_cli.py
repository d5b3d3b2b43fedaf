"""``mmprep embed`` as users run it: exit codes, a rerun shown by counters, a second model, --check."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mmprep.testing.embed import broken_model_file, caption_corpus, raw_build, save_torchscript_cnn
from tests.conftest import run_cli


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("embedcli")
    caption_corpus(root / "corpus", 10)
    raw_build(root / "corpus", root / "out", per_shard=4)
    return root / "out"


def test_model_that_does_not_load_exits_2_before_any_work(out, tmp_path):
    bad = broken_model_file(tmp_path / "weights.pt")
    proc = run_cli("embed", str(out), "--field", "jpg", "--model", str(bad))
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "config error: model:" in lines[0] and str(bad) in lines[0]
    assert not (out / "embeddings").exists()
    missing = run_cli("embed", str(tmp_path / "nothing"), "--field", "txt")
    assert missing.returncode == 2 and "OUT:" in missing.stderr
    # a zero std wrote NaN vectors; ../evil wrote outside embeddings/; a file as a text model was a traceback
    for args, key in ((("--field", "jpg", "--std", "0,0,0"), "--std"),
                      (("--field", "txt", "--name", "../evil"), "--name"),
                      (("--field", "txt", "--model", str(bad)), "model")):
        proc = run_cli("embed", str(out), *args)
        assert proc.returncode == 2 and proc.stderr.startswith(f"mmprep: config error: {key}:"), proc.stderr
    assert not (out / "embeddings").exists() and not (out / "evil").exists()


def test_embed_rerun_second_model_and_check(out, tmp_path):
    first = run_cli("embed", str(out), "--field", "jpg", "--size", "32", "--json", "-q")
    assert first.returncode == 0, first.stderr
    s = json.loads(first.stdout)["embed"]
    assert (s["name"], s["samples"], s["embedded"], s["computed"], s["shards_done"]) == ("jpg_emb", 10, 10, 10, 3)

    again = json.loads(run_cli("embed", str(out), "--field", "jpg", "--size", "32", "--json", "-q").stdout)["embed"]
    assert (again["computed"], again["cached"], again["shards_skipped"], again["embedded"]) == (0, 0, 3, 10)

    # The same weights as a TorchScript file: another model identity, so another field next to the first.
    model = save_torchscript_cnn(tmp_path / "cnn.pt")
    second = run_cli("embed", str(out), "--field", "jpg", "--size", "32", "--model", str(model), "--json", "-q")
    s2 = json.loads(second.stdout)["embed"]
    assert s2["name"].startswith("jpg_emb_") and s2["computed"] == 10
    assert sorted(p.name for p in (out / "embeddings").iterdir()) == sorted(["jpg_emb", s2["name"]])

    check = run_cli("embed", str(out), "--check", "--check-pair", f"jpg_emb,{s2['name']}")
    assert check.returncode == 0, check.stderr
    assert f"jpg_emb -> {s2['name']} over 10 pairs: recall@1 1.000, recall@5 1.000" in check.stdout
    nopair = run_cli("embed", str(out), "--check")
    assert nopair.returncode == 2 and "--check" in nopair.stderr
