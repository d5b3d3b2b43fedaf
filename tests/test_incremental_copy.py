"""Incremental rebuilds on the fast path: runs of unchanged records copied in one piece, and when the
worker pool of a rerun starts. Every rebuild is compared with a fresh build, byte for byte."""

from __future__ import annotations

import json

import pyarrow.parquet as pq

from mmprep import build as build_module
from mmprep import warmup as warmup_module
from tests.conftest import build
from tests.test_core_reuse import text_corpus as plain_corpus


def text_doc(**output) -> dict:
    return {"stages": [{"stage": "text.decode"}, {"stage": "text.normalize"}],
            "output": {"name": "t", "max_samples": 40, "required": ["txt"], **output}}


def text_corpus(root, n: int = 100):
    plain_corpus(root, n)
    (root / "d0" / "s010.txt").write_text("")  # dropped (input.empty): a record with no row, and an error
    return root


def outputs(out) -> tuple[dict[str, bytes], list[dict], str]:
    tars = {p.name: p.read_bytes() for p in sorted((out / "shards").glob("*.tar"))}
    return tars, pq.read_table(out / "index.parquet").to_pylist(), (out / "errors.jsonl").read_text()


def test_copied_runs_move_when_a_sample_before_them_grows_and_match_a_fresh_build(tmp_path):
    corpus = text_corpus(tmp_path / "corpus")
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    first = build(text_doc(), corpus, out, workers=1)
    assert first["errors_by_reason"] == {"input.empty": 1}
    # s005 grows by several 512-byte blocks: every copied sample after it in shard 0 moves; s050 shrinks
    (corpus / "d0" / "s005.txt").write_text("longer " * 400)
    (corpus / "d1" / "s050.txt").write_text("short")
    (corpus / "d2" / "s071.txt").unlink()  # shard 1 loses a record: s080 moves into it
    (corpus / "d0" / "s010b.txt").write_text("a new record beside the dropped one")
    again = build(text_doc(), corpus, out, workers=1)
    # shard 0 (s000-s038 and s010b) copies 38: not s005, nor s010b (new); shard 1 (s039-s079 less s071)
    # copies 38: not s050, nor s039 (it was in shard 0); shard 2 (s080-s099) is complete, not rebuilt
    assert again["records_reused"] == 38 + 38 and again["shards_built"] == 2
    assert again["errors_by_reason"] == {"input.empty": 1}  # the dropped record's error was copied
    build(text_doc(), corpus, fresh, workers=1)
    assert outputs(out) == outputs(fresh)
    shard0 = [r for r in pq.read_table(out / "index.parquet").to_pylist() if r["shard"] == "t-000000.tar"]
    assert shard0[6]["key"] == "d0/s006" and shard0[6]["offset"] > 6 * 2048  # moved past the grown s005


def test_copied_runs_cross_rolled_over_tars_as_a_fresh_build_cuts_them(tmp_path):
    corpus = text_corpus(tmp_path / "corpus")
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    build(text_doc(max_bytes=6000), corpus, out, workers=1)
    (corpus / "d0" / "s002.txt").write_text("longer " * 400)  # the cuts of shard 0's tars move
    again = build(text_doc(max_bytes=6000), corpus, out, workers=1)
    assert again["records_reused"] == 39  # shard 0 less s002; s010 (dropped: no row, one error) is copied
    build(text_doc(max_bytes=6000), corpus, fresh, workers=1)
    assert outputs(out) == outputs(fresh)
    assert len(outputs(out)[0]) > 6


def _start_times(monkeypatch, cores: int) -> list[bool]:
    """Whether the listing had ended when each worker pool started, on a machine of ``cores`` cores."""
    listed = [False]
    starts: list[bool] = []
    real_list, real_start = build_module.list_folder, warmup_module.start_pool

    def list_folder(*args, **kwargs):
        got = real_list(*args, **kwargs)
        listed[0] = True
        return got

    def start_pool(*args, **kwargs):
        starts.append(listed[0])
        return real_start(*args, **kwargs)

    monkeypatch.setattr(build_module, "list_folder", list_folder)
    monkeypatch.setattr(warmup_module, "start_pool", start_pool)
    monkeypatch.setattr(build_module, "default_workers", lambda: cores)
    return starts


def test_on_two_cores_a_rerun_starts_its_pool_after_the_listing_not_beside_it(tmp_path, monkeypatch):
    corpus = text_corpus(tmp_path / "corpus")
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    build(text_doc(), corpus, out, workers=2)
    (corpus / "d0" / "s000.txt").write_text("changed: the first half of d0 differs")
    starts = _start_times(monkeypatch, cores=2)
    assert build(text_doc(), corpus, out, workers=2)["shards_built"] == 1
    assert starts == [True]
    # the folders' first halves are still noted: a machine with cores to spare reading this .scan.json
    # starts no pool for a folder that did not change
    scan = json.loads((out / ".scan.json").read_text())
    assert sorted(scan["heads"]) == sorted(scan["folders"]) == ["", "d0/", "d1/", "d2/", "d3/"]
    build(text_doc(), corpus, fresh, workers=2)
    assert outputs(out) == outputs(fresh)


def test_with_cores_to_spare_a_rerun_starts_its_pool_as_soon_as_a_folder_differs(tmp_path, monkeypatch):
    corpus = text_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    build(text_doc(), corpus, out, workers=2)
    (corpus / "d0" / "s000.txt").write_text("changed: the first half of d0 differs")
    starts = _start_times(monkeypatch, cores=4)
    assert build(text_doc(), corpus, out, workers=2)["shards_built"] == 1
    assert starts == [False]


def test_a_moved_input_folder_reuses_every_shard_and_errors_name_files_where_they_are_now(tmp_path):
    old = text_corpus(tmp_path / "a")
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    build(text_doc(), old, out, workers=1)
    assert str(old / "d0" / "s010.txt") in (out / "errors.jsonl").read_text()
    new = old.rename(tmp_path / "b")  # mv a b
    moved = build(text_doc(), new, out, workers=1)
    assert moved["shards_built"] == 0
    build(text_doc(), new, fresh, workers=1)
    assert outputs(out) == outputs(fresh)  # errors.jsonl names b/d0/s010.txt, as a fresh build of b does
    (new / "d0" / "s011.txt").write_text("an edit in the shard that holds the error, which it copies")
    build(text_doc(), new, out, workers=1)
    build(text_doc(), new, fresh, workers=1)
    assert outputs(out) == outputs(fresh)
