"""What a build does after crashes, stale state and odd names: never wrong bytes, never stale shards."""

from __future__ import annotations

import json
import shutil
import tarfile

import pytest

from mmprep.corpus import read_corpus
from mmprep.errors import ConfigError
from mmprep.keys import unique_keys
from mmprep.testing.media import image_bytes
from tests.conftest import build
from tests.test_core_incremental import members, trace, traced


def test_new_tars_with_an_old_part_file_are_not_trusted(tmp_path, corpus):
    """A crash between publishing a tar and writing its part file: the rerun must not copy old offsets."""
    out = tmp_path / "out"
    doc = {"stages": [{"stage": "text.decode"}], "output": {"name": "p", "max_samples": 8, "fields": ["txt"]}}
    build(doc, corpus, out, workers=1)
    old_part = (out / ".parts" / "p-000000.json").read_text()
    (corpus / "part0" / "item0000.txt").write_text("a much much longer caption " * 40)
    build(doc, corpus, out, workers=1)
    (out / ".parts" / "p-000000.json").write_text(old_part)  # the state such a crash leaves
    summary = build(doc, corpus, out, workers=1)
    assert summary["records_reused"] == 0 and summary["shards_built"] == 1
    clean = tmp_path / "clean"
    build(doc, corpus, clean, workers=1)
    assert members(out) == members(clean)


def test_no_stale_tars_after_fewer_parts_all_dropped_or_a_new_name(tmp_path, corpus):
    out = tmp_path / "out"
    base = {"stages": [{"stage": "text.decode"}], "output": {"name": "r", "max_samples": 8, "max_bytes": "1KB"}}
    build(base, corpus, out, workers=1)
    assert len(list((out / "shards").glob("r-000000_*.tar"))) >= 3
    build({**base, "output": {"name": "r", "max_samples": 8}}, corpus, out, workers=1)
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["r-000000.tar"]
    dropping = {**base, "output": {"name": "r", "max_samples": 8, "required": ["nothing"]}}
    summary = build(dropping, corpus, out, workers=1)
    assert summary["samples_out"] == 0 and list((out / "shards").iterdir()) == []
    build({**base, "output": {"name": "other_name", "max_samples": 8}}, corpus, out, workers=1)
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["other_name-000000.tar"]
    again = build({**base, "output": {"name": "other_name", "max_samples": 8}}, corpus, out, workers=1)
    assert again["shards_skipped"] == 1 and again["shards_built"] == 0  # an underscore in the name is fine


def test_stage_cache_resume_keeps_earlier_errors_and_partial_status(tmp_path, corpus):
    (corpus / "part0" / "item0000.jpg").write_bytes(image_bytes(64, 48)[:300])  # truncated: omitted
    log = str(tmp_path / "trace.log")

    def doc(lowercase: bool) -> dict:
        return {"stages": [{"stage": "image.decode"}, {"stage": "text.decode"},
                           {"stage": "debug.trace", "path": log, "cacheable": True},
                           {"stage": "text.normalize", "lowercase": lowercase}],
                "output": {"name": "c", "max_samples": 8, "optional": ["jpg"]}}

    out, fresh = tmp_path / "out", tmp_path / "fresh"
    build(doc(False), corpus, out, workers=1)
    summary = build(doc(True), corpus, out, workers=1)
    assert summary["shards_built"] == 1
    build(doc(True), corpus, fresh, workers=1)
    assert members(out) == members(fresh)
    def errors(o):
        return [json.loads(line) for line in (o / "errors.jsonl").read_text().splitlines()]

    assert errors(out) == errors(fresh) and len(errors(out)) == 1
    assert json.loads(members(out)["part0/item0000.meta.json"])["status"] == "partial"


def test_a_summarizer_mid_pipeline_counts_every_sample_after_a_later_change(tmp_path, corpus):
    log = str(tmp_path / "t.log")

    def doc(lowercase: bool) -> dict:
        return {"stages": [{"stage": "text.decode"}, {"stage": "debug.trace", "path": log, "count": True},
                           {"stage": "debug.trace", "path": log, "cacheable": True},
                           {"stage": "text.normalize", "lowercase": lowercase}],
                "output": {"name": "m", "max_samples": 8}}

    out = tmp_path / "out"
    build(doc(False), corpus, out, workers=1)
    build(doc(True), corpus, out, workers=1)
    part = json.loads((out / ".parts" / "m-000000.json").read_text())
    assert part["summaries"] == {"debug.trace": {"samples": 8}}


def test_corrupt_cache_entries_are_misses(tmp_path, corpus):
    out = tmp_path / "out"
    build(traced(tmp_path), corpus, out, workers=1)
    trace(tmp_path)
    for entry in (out / ".cache").rglob("*"):
        if entry.is_file():
            entry.write_bytes(entry.read_bytes()[:10])
    summary = build(traced(tmp_path), corpus, out, workers=1, force=True)
    assert summary["ok"] and summary["samples_out"] == 8 and len(trace(tmp_path)) == 24


def test_a_cache_that_cannot_be_written_loses_no_sample(tmp_path, corpus, demo_doc, caplog):
    """A full cache disk, or fan-out folders another user left read-only, failed every shard that wrote
    an entry (the good samples lost, exit 1). Here every fan-out name is taken by a file."""
    plain = tmp_path / "plain"
    build({**demo_doc, "cache": {"enabled": False}}, corpus, plain, workers=1)
    cache = tmp_path / "cache"
    cache.mkdir()
    for name in (f"{kind}{digit:x}" for kind in "sf" for digit in range(16)):
        (cache / name).write_text("not a folder")
    out = tmp_path / "out"
    with caplog.at_level("WARNING", logger="mmprep.build"):
        summary = build({**demo_doc, "cache": {"final": True, "stages": "all"}}, corpus, out, workers=1,
                        cache_dir=str(cache))
    assert summary["ok"] and summary["samples_out"] == 8 and not summary["failed_shards"]
    run = json.loads((out / "stats.json").read_text())["run"]
    assert run["cache_writes_failed"] > 0 and str(cache) in run["cache_write_error"]
    assert f"could not write {run['cache_writes_failed']} cache entries" in caplog.text
    assert members(out) == members(plain)
    assert sorted(p.name for p in cache.iterdir()) == sorted(f"{k}{d:x}" for k in "sf" for d in range(16))


def test_a_damaged_report_is_merged_again_not_kept(tmp_path, corpus, demo_doc):
    """A truncated index.parquet or an emptied errors.jsonl was only checked for existence: the rerun kept
    it, saved its stamp as the build's, and every later run said 'nothing changed' over it."""
    import pyarrow.parquet as pq

    (corpus / "part0" / "zz.jpg").write_bytes(b"not a jpeg")
    (corpus / "part0" / "zz.txt").write_text("a caption")
    out = tmp_path / "out"
    first = build(demo_doc, corpus, out, workers=1)
    index, errors = (out / "index.parquet").read_bytes(), (out / "errors.jsonl").read_bytes()
    assert errors.count(b"\n") == 1 and b"image.corrupt" in errors
    (out / "index.parquet").write_bytes(index[:100])
    (out / "errors.jsonl").write_bytes(b"")
    for _ in range(2):
        summary = build(demo_doc, corpus, out, workers=1)
        assert summary["ok"] and summary["shards_built"] == 0 and summary["samples_out"] == first["samples_out"]
        assert (out / "index.parquet").read_bytes() == index and (out / "errors.jsonl").read_bytes() == errors
    assert pq.read_table(out / "index.parquet").num_rows == first["samples_out"]


def test_a_worker_crash_fails_only_its_shard(tmp_path, corpus):
    log = str(tmp_path / "t.log")
    doc = {"stages": [{"stage": "text.decode"}, {"stage": "debug.trace", "path": log, "exit_on": "part1/item0005"}],
           "output": {"name": "x", "max_samples": 2}}
    out = tmp_path / "out"
    summary = build(doc, corpus, out, workers=2)
    assert not summary["ok"] and [f["shard"] for f in summary["failed_shards"]] == ["x-000003"]
    assert summary["shards_built"] == 3 and summary["samples_out"] == 6
    # the failed shard's records are counted in, as failed (they were left out of samples_in)
    assert summary["samples_in"] == 8 and summary["samples_failed"] == 2
    with tarfile.open(out / "shards" / "x-000000.tar") as tar:
        assert {m.name.split(".")[0] for m in tar.getmembers()} == {"part0/item0000", "part0/item0002"}


def test_manifest_columns_must_be_field_names(tmp_path):
    (tmp_path / "m.jsonl").write_text(json.dumps({"key": "a", "__key__": "../../evil", "txt": "x"}) + "\n")
    with pytest.raises(ConfigError, match="not a field name"):
        read_corpus(tmp_path / "m.jsonl")
    (tmp_path / "m.jsonl").write_text(json.dumps({"key": "a", "a/../../x": "y"}) + "\n")
    with pytest.raises(ConfigError, match="not a field name"):
        read_corpus(tmp_path / "m.jsonl")
    (tmp_path / "m.jsonl").write_text('{"key": "a", "txt": "1"}\n{"key": "a", "txt": "2"}\n')
    with pytest.raises(ConfigError, match="appears twice"):
        read_corpus(tmp_path / "m.jsonl")


def test_a_clean_key_does_not_change_when_a_colliding_file_arrives():
    assert unique_keys(["a_b"])["a_b"] == "a_b"
    both = unique_keys(["a_b", "a.b"])
    assert both["a_b"] == "a_b" and both["a.b"].startswith("a_b-")


def test_relative_paths_are_resolved(tmp_path, corpus, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shutil.move(str(corpus), tmp_path / "rel")
    summary = build({"stages": [{"stage": "text.decode"}], "output": {"name": "q"}}, tmp_path / "rel", tmp_path / "o")
    assert summary["samples_out"] == 8
    part = json.loads(next((tmp_path / "o" / ".parts").glob("*.json")).read_text())
    assert part["errors"] == []


def test_index_offsets_hold_after_an_incremental_rebuild(tmp_path, corpus, demo_doc):
    import pyarrow.parquet as pq

    out = tmp_path / "out"
    build(demo_doc, corpus, out, workers=1)
    (corpus / "part0" / "item0004.txt").write_text("a caption that grew " * 30)  # shard 1 is rebuilt
    summary = build(demo_doc, corpus, out, workers=1)
    assert summary["records_reused"] == 3
    got = members(out)
    rows = pq.read_table(out / "index.parquet").to_pylist()
    assert len(rows) == 8
    for row in rows:
        raw = (out / "shards" / row["shard"]).read_bytes()
        for fld, off, size in zip(row["fields"], row["member_offsets"], row["member_sizes"], strict=True):
            assert raw[off : off + size] == got[f"{row['key']}.{fld}"]
