"""Incremental rebuilds that copy unchanged samples from the previous tars: same bytes as a fresh build."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest

from mmprep import shardwriter
from tests.conftest import build


def text_doc(**output) -> dict:
    return {"stages": [{"stage": "text.decode"}, {"stage": "text.normalize"}],
            "output": {"name": "t", "max_samples": 40, "fields": ["txt"], **output}}


def text_corpus(root, n: int = 100):
    for i in range(n):
        folder = root / f"d{i // 30}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"s{i:03d}.txt").write_text(f"caption {i} " + "word " * (i % 7))
    return root


def tars(out) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "shards").glob("*.tar"))}


def index(out) -> list[dict]:
    return pq.read_table(out / "index.parquet").to_pylist()


@pytest.mark.parametrize("output", [{}, {"max_bytes": 6000}], ids=["one tar per shard", "rolling over"])
def test_a_rebuild_with_changes_equals_a_fresh_build_byte_for_byte(tmp_path, output):
    corpus = text_corpus(tmp_path / "corpus")
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    build(text_doc(**output), corpus, out, workers=1)
    for i in (0, 1, 41, 77, 99):  # first, neighbours, middle, last: runs of copies start and end everywhere
        (corpus / f"d{i // 30}" / f"s{i:03d}.txt").write_text(f"changed {i} " * (i % 5 + 1))
    (corpus / "d1" / "s045.txt").unlink()
    again = build(text_doc(**output), corpus, out, workers=1)
    # 99 records, 5 changed, and s080 moved into shard 1 when s045 went: it is rebuilt, not copied
    assert again["records_reused"] == 99 - 5 - 1
    build(text_doc(**output), corpus, fresh, workers=1)
    assert tars(out) == tars(fresh)
    assert index(out) == index(fresh)
    if output:
        assert len(tars(out)) > 3  # the copies crossed tar boundaries


def test_changed_records_between_copied_ones_reach_a_batched_stage_together(tmp_path):
    """1% changed must not mean batches of one: the records to compute are gathered past the copied."""
    trace = tmp_path / "trace.log"
    doc = {"stages": [{"stage": "text.decode"},
                      {"stage": "debug.trace", "path": str(trace), "batch": True}],
           "output": {"name": "t", "max_samples": 100}, "execution": {"batch_size": 4},
           "cache": {"enabled": False}}
    corpus = text_corpus(tmp_path / "corpus")
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    build(doc, corpus, out, workers=1)
    assert [line.split()[2] for line in trace.read_text().splitlines()] == ["4"] * 100
    trace.unlink()
    changed = (3, 17, 30, 52, 66, 98)  # far apart: 6 batches of one, were they cut at every 4 records
    for i in changed:
        (corpus / f"d{i // 30}" / f"s{i:03d}.txt").write_text(f"changed {i}")
    again = build(doc, corpus, out, workers=1)
    assert again["records_reused"] == 94
    lines = [line.split() for line in trace.read_text().splitlines()]
    assert [key for _, key, _ in lines] == [f"d{i // 30}/s{i:03d}" for i in changed]
    assert [n for _, _, n in lines] == ["4"] * 4 + ["2"] * 2
    build(doc, corpus, fresh, workers=1)
    assert tars(out) == tars(fresh)
    assert index(out) == index(fresh)


def test_a_summarizing_stage_counts_copied_samples_as_a_fresh_build_does(tmp_path):
    doc = {"stages": [{"stage": "text.decode"},
                      {"stage": "text.tokenize", "language": "en", "en_tokenizer": "nltk_wordpunct"},
                      {"stage": "text.vocab", "min_count": 1},
                      {"stage": "debug.trace", "path": str(tmp_path / "trace.log"), "count": True}],
           "output": {"name": "t", "max_samples": 40}, "cache": {"enabled": False}}
    corpus = text_corpus(tmp_path / "corpus")
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    build(doc, corpus, out, workers=1)
    (corpus / "d0" / "s003.txt").write_text("a brand new vocabulary entry")
    again = build(doc, corpus, out, workers=1)
    assert again["records_reused"] == 39 and again["shards_built"] == 1  # shard 0: 40 records, 1 changed
    # the trace stage saw one sample and had the 39 copied ones replayed to it, from the old tar's bytes
    parts = sorted((out / ".parts").glob("*.json"))
    counts = [json.loads(p.read_text())["summaries"]["debug.trace"]["samples"] for p in parts]
    assert counts == [40, 40, 20]
    build(doc, corpus, fresh, workers=1)
    vocab = json.loads((out / "vocab.json").read_text())
    assert vocab == json.loads((fresh / "vocab.json").read_text()) and ["brand", 1] in vocab["vocab"]
    assert tars(out) == tars(fresh)


def test_a_record_a_stage_crashed_on_is_computed_again_not_copied(tmp_path, monkeypatch):
    from mmprep.stages.text.basic import TextNormalize

    corpus = text_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    process = TextNormalize.process

    def crash_on_s003(self, sample):
        if sample["__key__"] == "d0/s003":
            raise RuntimeError("a bug in this version")
        return process(self, sample)

    monkeypatch.setattr(TextNormalize, "process", crash_on_s003)
    first = build(text_doc(), corpus, out, workers=1)
    assert first["errors_by_reason"] == {"text.normalize.error": 1} and first["samples_out"] == 99
    monkeypatch.setattr(TextNormalize, "process", process)  # the bug fixed
    (corpus / "d0" / "s005.txt").write_text("changed")  # shard 0 is rebuilt; s003's file did not change
    again = build(text_doc(), corpus, out, workers=1)
    assert again["samples_out"] == 100 and again["errors_by_reason"] == {}
    assert again["records_reused"] == 38  # 40 in shard 0, less s005 (changed) and s003 (computed again)


def test_copies_fall_back_to_reads_where_the_kernel_cannot_copy(tmp_path, monkeypatch):
    corpus = text_corpus(tmp_path / "corpus")
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    build(text_doc(), corpus, out, workers=1)
    (corpus / "d0" / "s005.txt").write_text("changed")

    def refuse(*args, **kwargs):
        raise OSError(18, "Invalid cross-device link")

    monkeypatch.setattr(shardwriter.os, "copy_file_range", refuse)
    assert build(text_doc(), corpus, out, workers=1)["records_reused"] == 39
    build(text_doc(), corpus, fresh, workers=1)
    assert tars(out) == tars(fresh)


def test_part_files_from_an_older_version_are_rebuilt_not_trusted(tmp_path):
    corpus = text_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    build(text_doc(), corpus, out, workers=1)
    part = out / ".parts" / "t-000001.json"
    doc = json.loads(part.read_text())
    del doc["format"]  # as an earlier version wrote it
    part.write_text(json.dumps(doc))
    (out / ".parts" / "t-000001.rows").write_text("[]")  # and its rows in the old shape
    again = build(text_doc(), corpus, out, workers=1)
    assert again["shards_built"] == 1 and again["records_reused"] == 0 and again["samples_out"] == 100


@pytest.mark.skipif(os.uname().sysname == "Darwin", reason="macOS file systems require UTF-8 names")
def test_a_file_name_that_is_not_utf8_is_kept_and_reported_readably(tmp_path):
    corpus = text_corpus(tmp_path / "corpus", 3)
    bad = os.fsencode(corpus / "d0") + b"/caf\xe9.txt"  # latin-1 bytes in a name
    with open(bad, "wb") as fh:
        fh.write(b"a caption from a latin-1 named file")
    with open(os.fsencode(corpus / "d0") + b"/vide\xe9.txt", "wb"):
        pass  # empty: an error whose path cannot be written as UTF-8 as it is
    summary = build(text_doc(), corpus, tmp_path / "out", workers=1)
    assert summary["samples_out"] == 4 and summary["errors_by_reason"] == {"input.empty": 1}
    sources = {row["source"] for row in index(tmp_path / "out")}
    assert "d0/caf\\udce9" in sources
    errors = [json.loads(line) for line in (tmp_path / "out" / "errors.jsonl").read_text("utf-8").splitlines()]
    assert errors[0]["reason"] == "input.empty" and errors[0]["source"] == "d0/vide\\udce9"
    assert errors[0]["path"].endswith("/d0/vide\udce9.txt")  # the real name, as os.fsdecode gives it


def test_an_extension_that_is_not_utf8_is_left_out_not_the_sample(tmp_path):
    corpus = text_corpus(tmp_path / "corpus", 3)
    with open(os.fsencode(corpus / "d0") + b"/s001.t\xe9t", "wb") as fh:
        fh.write(b"a companion file with a latin-1 extension")
    summary = build(text_doc(), corpus, tmp_path / "out", workers=1)
    assert summary["samples_out"] == 3 and summary["errors_by_reason"] == {}
    run = json.loads((tmp_path / "out" / "stats.json").read_text())["run"]
    assert run["inputs_skipped"] == {"input.bad_field_name": 1}


def test_a_rerun_with_nothing_changed_reports_the_names_left_out_as_the_build_did(tmp_path, monkeypatch, caplog):
    """Read back from .scan.json, not found again (the names are as they were); without it, found again."""
    from mmprep import corpus as corpus_module

    corpus = text_corpus(tmp_path / "corpus", 3)
    with open(os.fsencode(corpus / "d0") + b"/s001.t\xe9t", "wb") as fh:
        fh.write(b"not a field name, nor UTF-8")
    (corpus / "d0" / "s002.TXT").write_text("clashes with s002.txt")
    out = tmp_path / "out"
    build(text_doc(), corpus, out, workers=1)
    first = json.loads((out / "stats.json").read_text())["run"]
    assert first["inputs_skipped"] == {"input.bad_field_name": 1, "input.field_clash": 1}
    real = corpus_module._records
    monkeypatch.setattr(corpus_module, "_records", lambda *a, **k: pytest.fail("names looked at again"))
    caplog.clear()
    caplog.set_level("INFO", logger="mmprep")
    again = build(text_doc(), corpus, out, workers=1)
    run = json.loads((out / "stats.json").read_text())["run"]
    assert again["shards_built"] == 0 and "nothing changed" in caplog.text and "s001.t\\udce9t left out" in caplog.text
    assert [run[k] for k in ("inputs_skipped", "inputs_skipped_first")] == [
        first[k] for k in ("inputs_skipped", "inputs_skipped_first")]
    scan = json.loads((out / ".scan.json").read_text())
    del scan["left_out"]  # as a build with more left out than .scan.json keeps writes it
    (out / ".scan.json").write_text(json.dumps(scan))
    monkeypatch.setattr(corpus_module, "_records", real)
    build(text_doc(), corpus, out, workers=1)
    assert json.loads((out / "stats.json").read_text())["run"]["inputs_skipped_first"] == first["inputs_skipped_first"]


def test_stats_say_where_the_time_went(tmp_path):
    corpus = text_corpus(tmp_path / "corpus", 5)
    build(text_doc(), corpus, tmp_path / "out", workers=1)
    run = json.loads((tmp_path / "out" / "stats.json").read_text())["run"]
    assert set(run["phases_seconds"]) == {"scan", "plan", "shards", "merge"}
    assert all(v >= 0 for v in run["phases_seconds"].values())
    assert run["phases_seconds"]["shards"] <= run["seconds"]


@pytest.mark.parametrize("cache", [{"stages": "all"}, {"final": True}], ids=["stage cache", "final cache"])
def test_undecodable_names_go_through_the_cache_and_collide_safely(tmp_path, cache):
    corpus = text_corpus(tmp_path / "corpus", 3)
    folder = os.fsencode(corpus / "d0")
    files = ((b"/caf\xe9.txt", b"latin-1 name"), (b"/caf\xe8.txt", b"its neighbour"), (b"/vide\xe9.txt", b""))
    for name, data in files:
        with open(folder + name, "wb") as fh:
            fh.write(data)
    doc = {**text_doc(), "cache": cache}
    first = build(doc, corpus, tmp_path / "out", workers=1)
    assert first["ok"] and first["samples_out"] == 5 and first["errors_by_reason"] == {"input.empty": 1}
    keys = {row["key"] for row in index(tmp_path / "out")}
    assert "d0/caf" in keys and len([k for k in keys if k.startswith("d0/caf-")]) == 1  # sanitized, then told apart
    again = build(doc, corpus, tmp_path / "fresh", workers=1)  # everything from the cache this time
    assert again["ok"] and tars(tmp_path / "fresh") == tars(tmp_path / "out")


def test_names_with_line_separators_keep_their_source_through_a_rebuild(tmp_path):
    corpus = text_corpus(tmp_path / "corpus", 3)
    (corpus / "d0" / "a\u2028b.txt").write_text("one")
    (corpus / "d0" / "c\x85d.txt").write_text("two")
    out = tmp_path / "out"
    build(text_doc(), corpus, out, workers=1)
    (corpus / "d0" / "s000.txt").write_text("changed")
    assert build(text_doc(), corpus, out, workers=1)["records_reused"] == 4
    assert {"d0/a\u2028b", "d0/c\x85d"} <= {row["source"] for row in index(out)}


def test_a_row_longer_than_the_json_reader_block_merges(tmp_path):
    manifest = tmp_path / "m.jsonl"
    long_key = "k" * 1_200_000  # key, record and source: a 3.6 MB index row
    manifest.write_text(json.dumps({"key": long_key, "txt": "inline caption"}) + "\n"
                        + json.dumps({"key": "short", "txt": "another"}) + "\n")
    summary = build(text_doc(), manifest, tmp_path / "out", workers=1)
    assert summary["ok"] and summary["samples_out"] == 2
    assert sorted(len(row["key"]) for row in index(tmp_path / "out")) == [5, 1_200_000]


@pytest.mark.parametrize("name, size", [("a.txt", 0), ("d0/s001.jpg", 2005), ("x" * 96 + ".txt", 513),
                                        ("k/" + "y" * 98, 8**11 - 1)])
def test_member_headers_are_the_bytes_tarfile_writes(name, size):
    import tarfile

    from mmprep.shardwriter import ustar_header

    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode, info.uname, info.gname = size, 0, 0o644, "", ""
    assert ustar_header(name, size) == info.tobuf(tarfile.PAX_FORMAT)


def test_long_and_non_ascii_names_go_through_tarfile_and_read_back(tmp_path):
    import tarfile

    from mmprep.shardwriter import ShardWriter, ustar_header

    names = ["plain/key", "caf\u00e9/cl\u00e9", "long/" + "n" * 120]
    assert ustar_header(names[1] + ".txt", 1) is None and ustar_header(names[2] + ".txt", 1) is None
    writer = ShardWriter(tmp_path, "t-000000")
    for i, key in enumerate(names):
        writer.write(key, [("txt", f"text {i}".encode()), ("json", b"{}")])
    writer.close()
    with tarfile.open(tmp_path / "t-000000.tar") as tar:
        got = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}
    assert got == {f"{k}.{e}": (f"text {i}".encode() if e == "txt" else b"{}")
                   for i, k in enumerate(names) for e in ("txt", "json")}


@pytest.mark.parametrize("cache", [{}, {"final": True}])
def test_a_deleted_empty_file_does_not_bring_its_cached_error_back(tmp_path, cache):
    """The content key hashed only the files that loaded: after an empty caption was deleted, the
    sample's cached state came back with the old ``input.empty`` error and ``partial`` status, so the
    rebuild differed from a fresh build (shards, index, errors.jsonl)."""
    root = tmp_path / "c"
    root.mkdir()
    (root / "p.txt").write_bytes(b"")
    (root / "p.jpg").write_bytes(b"x")
    (root / "q.txt").write_text("ok")
    doc = {"stages": [{"stage": "text.decode"},
                      {"stage": "debug.trace", "path": str(tmp_path / "t.log"), "cacheable": True}],
           "output": {"name": "t", "optional": ["txt"]}, "cache": cache}
    build(doc, root, tmp_path / "o", workers=1)
    assert (tmp_path / "o" / "errors.jsonl").read_text().count("input.empty") == 1
    (root / "p.txt").unlink()
    build(doc, root, tmp_path / "o", workers=1)
    build(doc, root, tmp_path / "fresh", workers=1)
    assert tars(tmp_path / "o") == tars(tmp_path / "fresh")
    assert (tmp_path / "o" / "errors.jsonl").read_text() == (tmp_path / "fresh" / "errors.jsonl").read_text() == ""


def test_a_truncated_rows_file_rebuilds_its_shard_instead_of_indexing_part_of_it(tmp_path):
    """The merge indexed whatever a shard's rows file held: cut short, the index lost samples that the
    tars still had, and the summary still counted them."""
    root = text_corpus(tmp_path / "c", 100)
    out = tmp_path / "o"
    build(text_doc(), root, out, workers=1)
    rows = out / ".parts" / "t-000001.rows"
    rows.write_bytes(rows.read_bytes()[: rows.stat().st_size // 2])
    summary = build(text_doc(), root, out, workers=1)
    assert summary["shards_built"] == 1
    stats = json.loads((out / "stats.json").read_text())
    assert stats["run"]["rebuilt_because"] == {"its index rows changed": 1}
    assert pq.read_table(out / "index.parquet").num_rows == 100


def test_errors_from_the_cache_are_written_as_a_fresh_build_writes_them(tmp_path):
    """errors.jsonl lines that came back from the content cache had their keys sorted (as stored), so
    a rebuild's errors.jsonl differed from a fresh build's."""
    root = tmp_path / "c"
    root.mkdir()
    (root / "a.txt").write_bytes(b"")  # input.empty, field txt: an error with field and path
    (root / "a.jpg").write_bytes(b"not a jpeg")
    (root / "b.txt").write_text("fine")
    doc = {"stages": [{"stage": "text.decode"}, {"stage": "image.decode"}],
           "output": {"name": "t", "optional": ["txt", "jpg"]}, "cache": {"final": True}}
    build(doc, root, tmp_path / "o", workers=1)
    os.utime(root / "a.jpg")  # touched, same bytes: its outcome comes from the cache
    assert build(doc, root, tmp_path / "o", workers=1)["records_from_cache"] == 1
    build(doc, root, tmp_path / "fresh", workers=1)
    got = (tmp_path / "o" / "errors.jsonl").read_text()
    assert got == (tmp_path / "fresh" / "errors.jsonl").read_text() and got.count("\n") == 3
    assert list(json.loads(got.splitlines()[0]))[:6] == ["key", "source", "stage", "reason", "message", "action"]


def test_parts_written_before_the_rows_size_was_kept_are_still_trusted(tmp_path):
    """The rows-size check rebuilt every shard of a build made by the version before it."""
    root = text_corpus(tmp_path / "c", 100)
    out = tmp_path / "o"
    build(text_doc(), root, out, workers=1)
    for part in (out / ".parts").glob("*.json"):
        doc = json.loads(part.read_text())
        del doc["rows_bytes"]
        part.write_text(json.dumps(doc))
    (root / "d0" / "s000.txt").write_text("changed")
    summary = build(text_doc(), root, out, workers=1)
    assert summary["shards_built"] == 1 and summary["shards_skipped"] == 2
