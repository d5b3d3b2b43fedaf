"""Review fixes for the CLI and the pipeline config, each pinned to the behaviour it restores."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mmprep.stages import MODULES
from tests.conftest import run_cli, write_pipeline


def test_stage_module_table_names_every_stage_and_its_module():
    from mmprep.stage import registry

    assert MODULES == {name: cls.__module__ for name, cls in registry().items()}, (
        "add the stage to mmprep.stages.MODULES")


def test_reading_a_pipeline_builds_only_its_own_stages():
    """Every command built the validators of all forty stages (importing every stage module and a
    union over them: ~0.15 s of each `mmprep` start); a pipeline now costs only its own stages."""
    code = ("import sys; from mmprep.config import instantiate, parse_pipeline; from mmprep.stage import registered; "
            "instantiate(parse_pipeline({'stages': [{'stage': 'text.decode'}, {'stage': 'text.normalize'}]})); "
            "print(sorted(registered())); print(sorted(m for m in sys.modules if m.startswith('mmprep.stages.')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["['text.decode', 'text.normalize']",
                                "['mmprep.stages.text', 'mmprep.stages.text.basic', 'mmprep.stages.text.encoding']"]


def test_listing_stages_does_not_build_their_pipeline_models():
    """`mmprep stages` describes each stage's Config; the forty Spec models (Config + ``stage:``) that
    only validation needs are no longer built on import."""
    code = ("from mmprep.schema import describe_stages; from mmprep.stage import registry; "
            "d = describe_stages(); print(d['text.decode']['params']['max_implausibility']['default'], "
            "sum(cls.Spec.__pydantic_complete__ for cls in registry().values()))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["0.2", "0"]


@pytest.mark.parametrize(("stage", "line"), [
    ({"stage": "text.vocab", "unk_token": "x"}, "stages[1].unk_token: 'x' must be one of special_tokens"),
    ({"stage": "text.ids", "vocab": "no/such/vocab.json"},
     "stages[1].vocab: no/such/vocab.json not found (build the vocabulary first: text.vocab writes OUT/vocab.json)"),
])
def test_validate_runs_each_stages_check_and_says_what_build_says(tmp_path, stage, line):
    pipe = write_pipeline(tmp_path / "p.yaml", {"stages": [{"stage": "text.decode"}, stage]})
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text("hi")
    validate = run_cli("validate", str(pipe))
    build = run_cli("build", str(pipe), "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"))
    assert validate.returncode == build.returncode == 2
    assert validate.stderr == build.stderr == f"mmprep: config error: {line}\n"
    assert validate.stdout == "" and not (tmp_path / "out").exists()


def test_quiet_dask_build_prints_no_cluster_log(tmp_path, corpus):
    """`-q` promises warnings and errors only, but a Dask build printed ~30 INFO lines of the cluster's
    start and stop (distributed sets its loggers back to INFO when imported)."""
    pipe = write_pipeline(tmp_path / "p.yaml", {"stages": [{"stage": "text.decode"}], "output": {"max_samples": 4}})
    res = run_cli("build", str(pipe), "-i", str(corpus), "-o", str(tmp_path / "out"), "--executor", "dask", "-w", "1",
                  "-q")
    assert res.returncode == 0, res.stderr
    assert res.stderr == ""
    assert res.stdout.startswith("8/8 samples in 2 shards (0 already complete), 0 dropped, ")


def test_shipped_pipelines_read_an_input_the_repository_makes():
    """pipelines/audio.yaml read examples/audio, which nothing makes: `mmprep build pipelines/audio.yaml -o OUT`
    exited 2 (input.path does not exist)."""
    import yaml

    from tests.conftest import ROOT

    made = {"examples/corpus"}  # examples/make_corpus.py's default output
    for path in sorted((ROOT / "pipelines").glob("*.yaml")):
        inp = (yaml.safe_load(path.read_text()).get("input") or {}).get("path")
        assert inp is None or inp in made or (ROOT / inp).exists(), (path.name, inp)


def test_probe_describes_audio_and_refuses_text_plainly(tmp_path):
    """README: `mmprep probe FILE...` tells what a media file holds; a .wav came back as the error
    video.no_stream, and a .txt as video.corrupt with a PyAV message."""
    import json

    from mmprep.testing.corpus import multimodal_corpus

    multimodal_corpus(tmp_path / "c", 1)
    wav = next((tmp_path / "c").rglob("*.wav"))
    txt = next((tmp_path / "c").rglob("*.txt"))
    res = run_cli("probe", str(wav))
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert {k: doc[k] for k in ("kind", "channels", "subtype")} == {"kind": "audio", "channels": 1,
                                                                    "subtype": "PCM_16"}
    assert doc["duration"] == round(doc["samples"] / doc["rate"], 6) and doc["samples"] > 0
    res = run_cli("probe", str(txt))
    assert res.returncode == 1
    assert json.loads(res.stdout) == {"file": str(txt), "kind": "text", "error": "probe.unsupported",
                                      "message": f"{txt.name}: a text file; probe reads images, audio and video"}


def test_an_unknown_language_in_keep_fails_before_work(tmp_path):
    """text.language keep: [english] was accepted, and then every sample was dropped as text.language."""
    pipe = write_pipeline(tmp_path / "p.yaml", {"stages": [{"stage": "text.decode"},
                                                           {"stage": "text.language", "keep": ["zh", "english"]}]})
    res = run_cli("validate", str(pipe))
    assert res.returncode == 2
    assert res.stderr == ("mmprep: config error: stages[1].keep[1]: Input should be 'zh', 'en', 'mixed', 'ja', 'ko', "
                          "'other' or 'und'\n")
