"""Configuration errors found by the session-13 audit: each exits 2 with one line naming the key, before
any work (``mmprep validate`` and ``mmprep build`` alike)."""

from __future__ import annotations

import subprocess
import sys

import pytest

CASES = {
    "text.ids vocab empty": ("- stage: text.ids\n    vocab: ''\n",  # was a TypeError traceback
                             "stages[0].vocab: String should have at least 1 character"),
    "text.ids tokenizer empty": ("- stage: text.ids\n    tokenizer: ''\n    input: text\n",  # was ":  not found"
                                 "stages[0].tokenizer: String should have at least 1 character"),
    "face cascade empty": ("- stage: image.decode\n  - stage: image.face_crop\n    cascade: ''\n",
                           "stages[1].cascade: '' is not a cascade OpenCV ships; one of: haarcascade_eye.xml"),
    "face cascade not xml": ("- stage: image.decode\n  - stage: image.face_crop\n    cascade: __init__.py\n",
                             "stages[1].cascade: '__init__.py' is not a cascade OpenCV ships"),
    "decode background": ("- stage: image.decode\n    background: [300, -20, 0]\n",
                          "stages[0].background[0]: Input should be less than or equal to 255"),
    "resize colour": ("- stage: image.decode\n  - stage: image.resize\n    color: [0, 0, -1]\n",
                      "stages[1].color[2]: Input should be greater than or equal to 0"),
    "infinite number": ("- stage: audio.denoise\n    alpha: .inf\n",
                        "stages[0].alpha: Input should be a finite number"),
    "not a number": ("- stage: image.decode\n  - stage: image.enhance\n    beta: .nan\n",
                     "stages[1].beta: Input should be a finite number"),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("command", ["validate", "build"])
def test_bad_stage_values_are_config_errors(tmp_path, case, command):
    stages, line = CASES[case]
    pipe = tmp_path / "p.yaml"
    pipe.write_text(f"stages:\n  {stages}")
    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.txt").write_text("hello")
    args = [str(pipe)] if command == "validate" else [str(pipe), "-i", str(corpus), "-o", str(tmp_path / "out")]
    res = subprocess.run([sys.executable, "-m", "mmprep", command, *args], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mmprep: config error: {line}"), res.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("doc, line", [
    ("execution:\n  scheduler: nowhere\n", "execution.scheduler: 'nowhere' is no Dask scheduler address"),
    ("cache:\n  dir: /dev/null/x\n", "cache.dir: /dev/null is a file, not a folder"),
])
def test_validate_refuses_what_the_build_refuses(tmp_path, doc, line):
    pipe = tmp_path / "p.yaml"
    pipe.write_text(doc)
    for args in (["validate", str(pipe)], ["build", str(pipe), "-i", str(tmp_path), "-o", str(tmp_path / "out")]):
        res = subprocess.run([sys.executable, "-m", "mmprep", *args], capture_output=True, text=True, timeout=120)
        assert res.returncode == 2 and res.stderr.startswith(f"mmprep: config error: {line}"), (args, res.stderr)


def test_executor_local_builds_locally_with_a_scheduler_set(tmp_path):
    """MMPREP_SCHEDULER set for other builds (here a dead address): --executor local builds here, and
    stats.json says local (it said the scheduler's address)."""
    import json
    import os

    corpus = tmp_path / "c"
    corpus.mkdir()
    (corpus / "a.txt").write_text("hello")
    pipe = tmp_path / "p.yaml"
    pipe.write_text("stages:\n  - stage: text.decode\n")
    env = {**os.environ, "MMPREP_SCHEDULER": "tcp://127.0.0.1:1"}
    res = subprocess.run([sys.executable, "-m", "mmprep", "build", str(pipe), "-i", str(corpus), "-o",
                          str(tmp_path / "out"), "--executor", "local", "--json", "-q"], capture_output=True,
                         text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["samples_out"] == 1
    assert json.loads((tmp_path / "out" / "stats.json").read_text())["run"]["executor"] == "local"


def test_validate_names_the_stages_or_says_there_are_none(tmp_path):
    pipe = tmp_path / "p.yaml"
    for doc, said in (("name: t\n", "ok (no stages)"),  # was "ok (0 stages: )"
                      ("stages:\n  - stage: text.decode\n  - stage: text.normalize\n",
                       "ok (2 stages: text.decode, text.normalize)")):
        pipe.write_text(doc)
        res = subprocess.run([sys.executable, "-m", "mmprep", "validate", str(pipe)], capture_output=True, text=True,
                             timeout=120)
        assert res.returncode == 0 and res.stdout == f"{pipe}: {said}\n", res.stdout + res.stderr
