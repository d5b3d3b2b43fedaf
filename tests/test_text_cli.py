"""Configurations that need a resource that is not installed fail before any work, exit 2, naming it."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from mmprep.cli import load_commands
from mmprep.testing.text import text_corpus
from tests.conftest import run_cli, write_pipeline


def cli(*args: str):
    """The real CLI in this process (the subprocess route is covered once below: it costs seconds per call)."""
    return CliRunner().invoke(load_commands(), list(args))


@pytest.mark.parametrize(("stage", "key", "resource"), [
    ({"stage": "text.tokenize", "spacy_model": "en_core_web_sm"}, "stages[1].spacy_model", "en_core_web_sm"),
    ({"stage": "text.tokenize", "en_tokenizer": "nltk_word"}, "stages[1].en_tokenizer", "punkt_tab"),
    ({"stage": "text.stopwords", "nltk": ["english"]}, "stages[1].nltk", "stopwords"),
    ({"stage": "text.sentences", "splitter": "nltk_punkt"}, "stages[1].splitter", "punkt_tab"),
    ({"stage": "text.tokenize", "spacy_lang": "xx_nope"}, "stages[1].spacy_lang", "xx_nope"),
])
def test_missing_resource_fails_before_work_with_exit_2(tmp_path, stage, key, resource):
    text_corpus(tmp_path / "in", 2)
    pipe = write_pipeline(tmp_path / "p.yaml", {"stages": [{"stage": "text.decode"}, stage]})
    out = tmp_path / "out"
    res = cli("build", str(pipe), "-i", str(tmp_path / "in"), "-o", str(out), "-q")
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mmprep: config error: {key}:") and resource in lines[0]
    assert not out.exists()  # nothing written


def test_missing_spacy_pipeline_as_a_real_process(tmp_path):
    doc = {"stages": [{"stage": "text.tokenize", "spacy_model": "en_core_web_sm"}]}
    pipe = write_pipeline(tmp_path / "p.yaml", doc)
    proc = run_cli("validate", str(pipe))
    assert proc.returncode == 2
    assert proc.stderr.strip() == ("mmprep: config error: stages[0].spacy_model: needs the spaCy pipeline "
                                   "'en_core_web_sm', which is not installed (pip install en_core_web_sm or python "
                                   "-m spacy download en_core_web_sm; nothing is downloaded at run time)")


def test_shipped_pipeline_validates():
    res = cli("validate", "pipelines/text_zh_en.yaml")
    assert res.exit_code == 0, res.output
    assert "text.tokenize" in res.stdout
