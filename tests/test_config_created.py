"""Two stages that would write the same field or file of their own are a config error before any work."""

from __future__ import annotations

import pytest

from mmprep.config import instantiate, parse_pipeline
from mmprep.errors import ConfigError
from tests.conftest import ROOT, run_cli, write_pipeline


def stages_of(*stages: dict) -> list:
    return instantiate(parse_pipeline({"stages": list(stages)}))


def test_two_embeddings_of_one_field_without_a_name_are_refused(tmp_path):
    pipe = write_pipeline(tmp_path / "p.yaml", {"stages": [
        {"stage": "image.decode"},
        {"stage": "embed", "field": "jpg", "model": "builtin:tiny-cnn"},
        {"stage": "embed", "field": "jpg", "model": "builtin:tiny-cnn", "size": 64}]})
    res = run_cli("validate", str(pipe))
    assert res.returncode == 2
    assert res.stderr.strip() == ("mmprep: config error: stages[2].name: writes jpg_emb.npy as stages[1] does: one "
                                  "would overwrite the other; change name on one of them")
    named = stages_of({"stage": "embed", "field": "jpg", "model": "builtin:tiny-cnn"},
                      {"stage": "embed", "field": "jpg", "model": "builtin:tiny-cnn", "size": 64, "name": "jpg_64"})
    assert [s.out_field for s in named] == ["jpg_emb.npy", "jpg_64.npy"]


def test_two_vocabularies_into_one_file_are_refused():
    with pytest.raises(ConfigError) as err:
        stages_of({"stage": "text.vocab"}, {"stage": "text.vocab", "min_count": 3})
    assert err.value.key == "stages[1].output"
    assert len(stages_of({"stage": "text.vocab"}, {"stage": "text.vocab", "output": "vocab_big.json"})) == 2


def test_two_vocabularies_with_tokenizer_json_name_that_option():
    with pytest.raises(ConfigError) as err:
        stages_of({"stage": "text.vocab", "tokenizer_json": True},
                  {"stage": "text.vocab", "output": "vocab_big.json", "tokenizer_json": True})
    assert err.value.key == "stages[1].tokenizer_json" and "change tokenizer_json on one of them" in err.value.message


def test_alignment_stages_of_one_kind_on_different_fields_are_allowed():
    """Two align.subtitles (English subtitles on the wav, Chinese on the mp4) have no name to tell them apart;
    they align their own fields, so they are not refused (and align.av shares the report by design)."""
    assert len(stages_of({"stage": "align.subtitles", "fields": ["srt"], "media_field": "wav"},
                         {"stage": "align.subtitles", "fields": ["vtt"], "media_field": "mp4"},
                         {"stage": "align.av"})) == 3


def test_the_shipped_pipelines_pass():
    for path in sorted((ROOT / "pipelines").glob("*.yaml")):
        assert run_cli("validate", str(path)).returncode == 0, path
