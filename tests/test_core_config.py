"""Bad configuration fails before any work: exit 2, one line naming the key, nothing written."""

from __future__ import annotations

import json

import pytest
import yaml

from mmprep.config import instantiate, load_pipeline
from mmprep.schema import SCHEMA_PATH, pipeline_schema_text
from tests.conftest import ROOT, run_cli, write_pipeline


@pytest.mark.parametrize(("doc", "key"), [
    ({"stages": [{"stage": "image.decod"}]}, "stages[0]: unknown stage 'image.decod'"),
    ({"stages": [{"stage": "text.normalize", "lowercase": True, "lowercas": True}]}, "stages[0].lowercas: unknown key"),
    ({"stages": [{"stage": "audio.normalize", "peak_dbfs": 3}]}, "stages[0].peak_dbfs:"),
    ({"output": {"max_samples": 0}}, "output.max_samples:"),
    ({"output": {"max_bytes": 0}}, "output.max_bytes: must be at least 1 byte"),  # 0 meant no limit
    ({"output": {"max_bytes": "0B"}}, "output.max_bytes: must be at least 1 byte"),
    ({"output": {"fields": ["../evil"]}}, "output.fields[0]:"),
    ({"execution": {"executor": "spark"}}, "execution.executor:"),
    ({"inptu": {}}, "inptu: unknown key"),
    ({"stages": [{"stage": "text.decode", "encodings": ["gbk2312"]}]}, "stages[0].encodings: unknown"),
    ({"stages": [{"stage": "text.decode", "encodings": ["base64"]}]}, "stages[0].encodings: 'base64'"),
    ({"stages": [{"stage": "image.decode"}, {"stage": "image.normalize", "std": [0.2, 0, 0.2]}]}, "stages[1].std[1]:"),
    ({"stages": [{"stage": "embed", "field": "jpg", "std": [0, 1, 1]}]}, "stages[0].std[0]:"),
    ({"stages": [{"stage": "text.normalize", "min_chars": 10, "max_chars": 5}]}, "stages[0]: min_chars"),
    ({"stages": [{"stage": "text.tokenize", "en_tokenizer": "nltk_regexp", "regexp": "(["}]}, "stages[0].regexp:"),
    ({"stages": [{"stage": "embed", "field": "jpg", "model": "builtin:nosuch"}]}, "stages[0].model: no built-in"),
    ({"output": {"fields": ["jpg"], "required": ["txt"]}}, "output: required field 'txt' is not in"),
    ({"output": {"required": ["txt"], "optional": ["txt"]}}, "output: 'txt' is both required and"),
])
def test_config_errors_exit_2_and_write_nothing(tmp_path, corpus, doc, key):
    pipe = write_pipeline(tmp_path / "p.yaml", doc)
    out = tmp_path / "out"
    res = run_cli("build", str(pipe), "-i", str(corpus), "-o", str(out))
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mmprep: config error: ") and key in lines[0], res.stderr
    assert not out.exists()
    assert run_cli("validate", str(pipe)).returncode == 2


def test_missing_input_and_bad_yaml_exit_2(tmp_path):
    pipe = write_pipeline(tmp_path / "p.yaml", {"stages": [{"stage": "text.decode"}]})
    res = run_cli("build", str(pipe), "-i", str(tmp_path / "missing"), "-o", str(tmp_path / "out"))
    assert res.returncode == 2 and "input.path" in res.stderr and not (tmp_path / "out").exists()
    (tmp_path / "bad.yaml").write_text("stages: [\n")
    res = run_cli("validate", str(tmp_path / "bad.yaml"))
    assert res.returncode == 2 and "not valid YAML" in res.stderr


@pytest.mark.parametrize(("text", "message"), [
    ("stages: [{stage: text.decode}]\noutput: {name: first}\noutput: {name: second}\n",
     ("output: is given twice in ", "p.yaml (lines 2 and 3)")),
    ("stages:\n  - stage: text.normalize\n    lowercase: true\n    lowercase: false\n",
     ("lowercase: is given twice in ", "p.yaml (lines 3 and 4)")),
    ("stages: [{stage: text.decode, stage: text.normalize}]\n",
     ("stage: is given twice in ", "p.yaml (lines 1 and 1)")),
])
def test_a_key_given_twice_is_a_config_error(tmp_path, corpus, text, message):
    """PyYAML keeps the last of two equal keys: a second output block silently replaced the first."""
    (tmp_path / "p.yaml").write_text(text)
    res = run_cli("build", str(tmp_path / "p.yaml"), "-i", str(corpus), "-o", str(tmp_path / "out"))
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert all(part in res.stderr for part in message), res.stderr
    assert not (tmp_path / "out").exists()


def test_yaml_merge_keys_may_still_override_what_they_merge(tmp_path):
    (tmp_path / "p.yaml").write_text("stages: [{stage: text.decode}]\noutput:\n  <<: {name: base, max_samples: 3}\n"
                                     "  name: mine\n")
    spec = load_pipeline(tmp_path / "p.yaml")
    assert (spec.output.name, spec.output.max_samples) == ("mine", 3)


@pytest.mark.parametrize("path", sorted((ROOT / "pipelines").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_pipelines_validate(path):
    spec = load_pipeline(path)  # what `mmprep validate` runs, in process
    names = [s["stage"] for s in yaml.safe_load(path.read_text())["stages"]]
    assert [type(s).name for s in instantiate(spec)] == names


def test_checked_in_schema_matches_the_stage_models():
    assert SCHEMA_PATH.read_text(encoding="utf-8") == pipeline_schema_text(), (
        "schemas/pipeline.schema.json is stale: run `mmprep schema --write`")


def test_schema_validates_the_demo_pipeline():
    import jsonschema

    schema = json.loads(SCHEMA_PATH.read_text())
    jsonschema.validate(yaml.safe_load((ROOT / "pipelines" / "demo.yaml").read_text()), schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"stages": [{"stage": "text.normalize", "form": "bogus"}]}, schema)


def test_stages_lists_parameters_and_defaults():
    res = run_cli("stages", "--json")
    assert res.returncode == 0
    stages = json.loads(res.stdout)
    assert stages["text.normalize"]["params"]["form"]["default"] == "NFKC"
    assert stages["audio.normalize"]["params"]["peak_dbfs"]["default"] == -1.0
    assert {"image.decode", "text.decode", "audio.decode", "video.decode", "subtitle.decode"} <= set(stages)


def test_an_unknown_start_method_is_a_config_error(tmp_path, corpus):
    pipe = write_pipeline(tmp_path / "p.yaml", {"stages": [{"stage": "text.decode"}]})
    res = run_cli("build", str(pipe), "-i", str(corpus), "-o", str(tmp_path / "out"),
                  env_extra={"MMPREP_START_METHOD": "forkk"})
    assert res.returncode == 2 and res.stderr.startswith("mmprep: config error: MMPREP_START_METHOD: must be one of")
    assert not (tmp_path / "out").exists()


def test_pipeline_file_that_is_not_utf8_is_a_config_error(tmp_path):
    (tmp_path / "p.yaml").write_bytes(b"\xff\xfe stages: []")
    res = run_cli("validate", str(tmp_path / "p.yaml"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [f"mmprep: config error: pipeline: {tmp_path / 'p.yaml'} is not UTF-8 "
                                               "text (byte 0): save it as UTF-8"]


def test_validator_messages_carry_no_pydantic_prefix():
    from mmprep.config import parse_pipeline
    from mmprep.errors import ConfigError

    with pytest.raises(ConfigError) as err:
        parse_pipeline({"stages": [{"stage": "video.audio_track", "field": "mp3"}]})
    assert str(err.value).startswith("stages[0].field: 'mp3' must end in one of wav, flac")


def test_schema_write_outside_a_checkout_is_one_line(tmp_path, monkeypatch):
    """Installed from a wheel, ``mmprep schema --write`` had no schemas/ folder beside the package and
    ended in a FileNotFoundError traceback."""
    from typer.testing import CliRunner

    import mmprep.schema
    from mmprep.cli import load_commands

    app = load_commands("schema")
    monkeypatch.setattr(mmprep.schema, "SCHEMA_PATH", tmp_path / "site-packages" / "schemas" / "pipeline.schema.json")
    res = CliRunner().invoke(app, ["schema", "--write"])
    assert res.exit_code == 2 and res.output.startswith(
        f"mmprep: config error: --write: {tmp_path / 'site-packages' / 'schemas'} does not exist"), res.output
    assert not (tmp_path / "site-packages").exists()
