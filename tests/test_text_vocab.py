"""The corpus-wide vocabulary (local and through a Dask LocalCluster), ids, and the `mmprep vocab` command."""

from __future__ import annotations

import io
import json
from collections import Counter

import numpy as np
import pytest

from mmprep.errors import ConfigError
from mmprep.stage import make_stage
from mmprep.testing.text import text_corpus
from mmprep.text import vocab as vocablib
from tests.conftest import build, run_cli
from tests.conftest import shard_members as members

STAGES = [{"stage": "text.decode"}, {"stage": "text.normalize", "lowercase": True},
          {"stage": "text.tokenize", "cache": True}, {"stage": "text.stopwords", "punctuation": True}]


def pipeline(*extra: dict, max_samples: int = 5) -> dict:
    return {"stages": STAGES + list(extra), "output": {"max_samples": max_samples, "required": ["txt"]}}




@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("text") / "in"
    text_corpus(root, 23)
    return root


@pytest.fixture(scope="module")
def local_build(corpus, tmp_path_factory):
    out = tmp_path_factory.mktemp("local") / "out"
    summary = build(pipeline({"stage": "text.vocab", "min_count": 2}), corpus, out, workers=1)
    assert summary["ok"] and summary["samples_out"] == 23 and summary["shards"] == 5
    return out


def test_vocab_counts_every_token_once(local_build):
    doc = json.loads((local_build / "vocab.json").read_text(encoding="utf-8"))
    counts = Counter()
    for name, data in members(local_build).items():
        if name.endswith(".tokens.json"):
            counts.update(json.loads(data)["tokens"])
    assert doc["documents"] == 23 and doc["total_tokens"] == sum(counts.values())
    assert doc["vocab"][:4] == [["<pad>", 0], ["<unk>", 0], ["<bos>", 0], ["<eos>", 0]]
    expected = sorted((t for t, n in counts.items() if n >= 2), key=lambda t: (-counts[t], t))
    assert [t for t, _ in doc["vocab"][4:]] == expected
    assert all(n == counts[t] for t, n in doc["vocab"][4:])


def test_vocab_through_dask_equals_local(corpus, local_build, tmp_path):
    out = tmp_path / "dask"
    summary = build(pipeline({"stage": "text.vocab", "min_count": 2}), corpus, out, workers=2, executor="dask")
    assert summary["ok"] and summary["samples_out"] == 23
    assert json.loads((out / "vocab.json").read_text()) == json.loads((local_build / "vocab.json").read_text())


def test_resumed_shards_still_count(corpus, local_build, tmp_path):
    out = tmp_path / "resume"
    doc = pipeline({"stage": "text.vocab", "min_count": 2})
    build(doc, corpus, out, workers=1)
    (out / "shards" / "shard-000002.tar").unlink()  # as if the build had died: only this shard is redone
    summary = build(doc, corpus, out, workers=1)
    assert summary["shards_built"] == 1 and summary["shards_skipped"] == 4
    assert json.loads((out / "vocab.json").read_text()) == json.loads((local_build / "vocab.json").read_text())


def test_rerun_writes_a_deleted_vocabulary_again_and_keeps_a_recut_one(corpus, local_build, tmp_path):
    """vocab.json is written after the shards: a rerun with every shard and input unchanged must still
    notice it is gone (it used to stop at 'nothing changed'), and must leave alone one that
    `mmprep vocab` re-cut with other limits."""
    out = tmp_path / "again"
    doc = pipeline({"stage": "text.vocab", "min_count": 2})
    build(doc, corpus, out, workers=1)
    (out / "vocab.json").unlink()
    summary = build(doc, corpus, out, workers=1)
    assert summary["shards_built"] == 0 and summary["shards_skipped"] == 5
    assert json.loads((out / "vocab.json").read_text()) == json.loads((local_build / "vocab.json").read_text())
    assert json.loads((out / "stats.json").read_text())["run"]["phases_seconds"].keys() >= {"merge"}
    assert run_cli("vocab", str(out), "--max-size", "6").returncode == 0
    recut = (out / "vocab.json").read_bytes()
    assert len(json.loads(recut)["vocab"]) == 6
    for _ in range(2):  # the first rerun sees the re-cut file and notes it; the second stops at the listing
        summary = build(doc, corpus, out, workers=1)
        assert summary["shards_built"] == 0 and (out / "vocab.json").read_bytes() == recut
    assert set(json.loads((out / "stats.json").read_text())["run"]["phases_seconds"]) == {"scan"}


def test_second_pass_writes_ids_from_vocab_json(corpus, local_build, tmp_path):
    out = tmp_path / "ids"
    vocab_path = local_build / "vocab.json"
    doc = pipeline({"stage": "text.ids", "vocab": str(vocab_path), "add_special_tokens": True})
    summary = build(doc, corpus, out, workers=1, cache_dir=str(local_build / ".cache"))
    assert summary["ok"] and summary["samples_out"] == 23
    stats = json.loads((out / "stats.json").read_text())
    assert stats["stages"]["text.tokenize"]["cached"] == 23  # tokenization reused from the first pass
    ids_of = vocablib.token_to_id(vocablib.load(vocab_path))
    got = members(out)
    for key in ("t0000", "t0007", "t0022"):
        tokens = json.loads(got[f"{key}.tokens.json"])["tokens"]
        ids = np.load(io.BytesIO(got[f"{key}.ids.npy"]))
        assert ids.dtype == np.int32
        assert ids.tolist() == [ids_of["<bos>"], *[ids_of.get(t, ids_of["<unk>"]) for t in tokens], ids_of["<eos>"]]


def test_hf_tokenizer_json_gives_the_same_ids(local_build, tmp_path):
    doc = vocablib.load(local_build / "vocab.json")
    path = tmp_path / "tokenizer.json"
    vocablib.to_hf_tokenizer(doc).save(str(path))
    ours = make_stage("text.ids", vocab=str(local_build / "vocab.json"))
    hf = make_stage("text.ids", tokenizer=str(path))
    hf_text = make_stage("text.ids", tokenizer=str(path), input="text")
    samples = [{"__key__": "a", "txt": "北京 大学 cat unknownword", "tokens.json": {"tokens": ["北京", "cat", "zzz"]}},
               {"__key__": "b", "txt": "dog", "tokens.json": {"tokens": ["dog", "北京"]}}]
    a = ours.process_batch([dict(s) for s in samples])
    b = hf.process_batch([dict(s) for s in samples])
    for x, y in zip(a, b, strict=True):
        assert x["ids.npy"].tolist() == y["ids.npy"].tolist()
    unk = doc["vocab"].index(["<unk>", 0])
    assert a[0]["ids.npy"][-1] == unk
    by_text = hf_text.process_batch([dict(samples[0])])[0]["ids.npy"].tolist()
    assert len(by_text) == 4 and by_text[-1] == unk  # whitespace-split words, the unknown one -> <unk>


def test_ids_config_errors(tmp_path):
    with pytest.raises(ConfigError) as err:
        make_stage("text.ids", vocab=str(tmp_path / "none.json"))
    assert err.value.key == "vocab" and "text.vocab" in err.value.message
    with pytest.raises(ConfigError):
        make_stage("text.ids")
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ConfigError) as err:
        make_stage("text.ids", vocab=str(bad))
    assert "not an mmprep vocab.json" in err.value.message


def test_vocab_command_recuts_without_rebuilding(local_build, tmp_path):
    target = tmp_path / "small.json"
    proc = run_cli("vocab", str(local_build), "--max-size", "10", "--special", "<pad>", "--special", "<unk>",
                   "-o", str(target), "--tokenizer-json", str(tmp_path / "tok.json"))
    assert proc.returncode == 0, proc.stderr
    small = json.loads(target.read_text())
    full = json.loads((local_build / "vocab.json").read_text())
    assert len(small["vocab"]) == 10 and small["vocab"][:2] == [["<pad>", 0], ["<unk>", 0]]
    assert small["vocab"][2:] == full["vocab"][4:12]  # same ranking, min_count 1 here but the top is the same
    assert (tmp_path / "tok.json").exists()
    proc = run_cli("vocab", str(tmp_path))
    assert proc.returncode == 2 and "text.vocab" in proc.stderr


def test_an_empty_corpus_with_a_vocabulary_stage_still_stops_early_on_a_rerun(tmp_path):
    """With no record, finalize writes no vocab.json: the output signature failed on every run, so no
    rerun ever stopped at the listing."""
    (tmp_path / "empty").mkdir()
    doc = pipeline({"stage": "text.vocab"})
    for _ in range(2):
        build(doc, tmp_path / "empty", tmp_path / "out", workers=1)
    assert set(json.loads((tmp_path / "out" / "stats.json").read_text())["run"]["phases_seconds"]) == {"scan"}
