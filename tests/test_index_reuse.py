"""The merge takes a shard's index rows from the last index.parquet when its rows file is the same bytes
(``report._LastIndex``): a rerun that rebuilt one shard of many does not parse every shard's rows again.
Every index so made is compared with a fresh build's, row for row and byte for byte."""

from __future__ import annotations

import json
import os

import pyarrow.parquet as pq
import pytest

from mmprep.report import ROWS_KEY
from tests.conftest import build
from tests.test_incremental_copy import outputs, text_corpus, text_doc


def stats(out) -> dict:
    return json.loads((out / "stats.json").read_text())


def footer(out) -> list:
    return json.loads(pq.ParquetFile(out / "index.parquet").metadata.metadata[ROWS_KEY.encode()])


def test_unchanged_shards_rows_come_from_the_last_index_and_equal_a_fresh_build(tmp_path):
    corpus = text_corpus(tmp_path / "corpus")  # 100 records, 40 per shard: 3 shards
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    build(text_doc(), corpus, out, workers=1)
    assert stats(out)["run"]["index_shards_reused"] == 0  # nothing to reuse on a first build
    assert [(name, rows) for name, _, rows in footer(out)] == [("t-000000", 39), ("t-000001", 40),
                                                              ("t-000002", 20)]
    (corpus / "d1" / "s050.txt").write_text("a new caption for s050")  # shard 1 only
    again = build(text_doc(), corpus, out, workers=1)
    assert again["shards_built"] == 1
    assert stats(out)["run"]["index_shards_reused"] == 2  # shards 0 and 2: read back, not parsed
    # shard 1 is parsed whole: in 40 rows, copying 2 runs back costs more than parsing them (see below)
    assert stats(out)["run"]["index_rows_parsed"] == 40
    build(text_doc(), corpus, fresh, workers=1)
    assert outputs(out) == outputs(fresh)
    assert (out / "index.parquet").read_bytes() == (fresh / "index.parquet").read_bytes()


@pytest.mark.parametrize("output", [{}, {"max_bytes": 6000}], ids=["one tar per shard", "rolling over"])
def test_a_rebuilt_shards_copied_rows_come_from_the_last_index_moved_and_only_new_rows_are_parsed(tmp_path, output):
    corpus = text_corpus(tmp_path / "corpus", 300)
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    doc = text_doc(max_samples=150, **output)  # shards of 150 (149 rows in the first): few runs in each
    build(doc, corpus, out, workers=1)
    for i in (1, 160, 298):  # a sample grows by a block or more in every shard: the rows after it move
        (corpus / f"d{i // 30}" / f"s{i:03d}.txt").write_text(f"grown {i} " * 200)
    (corpus / "d1" / "s050.txt").unlink()  # one goes, one comes: rows shift within shard 0
    (corpus / "d1" / "s050b.txt").write_text("a new sample")
    again = build(doc, corpus, out, workers=1)
    run = stats(out)["run"]
    assert again["shards_built"] == 2 and run["index_shards_reused"] == 0
    # one tar per shard: only the 4 new or changed rows are parsed; rolling over, copies go one by one
    assert run["index_rows_parsed"] == (4 if not output else again["samples_out"])
    build(doc, corpus, fresh, workers=1)
    assert outputs(out) == outputs(fresh)
    assert (out / "index.parquet").read_bytes() == (fresh / "index.parquet").read_bytes()
    parts = [json.loads(p.read_text()) for p in sorted((out / ".parts").glob("*.json"))]
    if not output:  # each part says which rows file its runs are of: one rewritten since is parsed whole
        assert [bool(p["rows_from"]) and p["rows_from"]["rows"] for p in parts] == [d for _, d, _ in footer(out)]


def test_a_rows_file_that_changed_since_the_last_merge_is_parsed_again(tmp_path):
    """The footer's digest is of the rows file's bytes: a rows file rewritten since (here by hand, one
    row's status, with the part's byte count kept true) is not served from the last index."""
    corpus = text_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    build(text_doc(), corpus, out, workers=1)
    part, rows = out / ".parts" / "t-000002.json", out / ".parts" / "t-000002.rows"
    text = rows.read_text()
    first = text.split("\n", 1)[0]
    edited = first.replace('"status":"ok"', '"status":"OK"')
    assert edited != first
    rows.write_text(text.replace(first, edited, 1))
    doc = json.loads(part.read_text())
    doc["rows_bytes"] = rows.stat().st_size
    part.write_text(json.dumps(doc))
    os.remove(out / "stats.json")  # the reports are merged again
    build(text_doc(), corpus, out, workers=1)
    assert stats(out)["run"]["index_shards_reused"] == 2  # t-000002's digest no longer matches
    statuses = {r["key"]: r["status"] for r in pq.read_table(out / "index.parquet").to_pylist()}
    assert statuses["d2/s080"] == "OK"  # parsed from the rows file as it is now


def test_an_index_without_the_footer_or_with_another_schema_is_not_read(tmp_path):
    corpus = text_corpus(tmp_path / "corpus")
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    build(text_doc(), corpus, out, workers=1)
    table = pq.read_table(out / "index.parquet")
    pq.write_table(table.drop_columns(["duration"]).replace_schema_metadata(
        {**(table.schema.metadata or {}), ROWS_KEY.encode(): json.dumps(footer(out)).encode()}),
        out / "index.parquet")  # the footer kept, a column gone
    (corpus / "d1" / "s050.txt").write_text("a new caption for s050")
    build(text_doc(), corpus, out, workers=1)
    assert stats(out)["run"]["index_shards_reused"] == 0
    build(text_doc(), corpus, fresh, workers=1)
    assert outputs(out) == outputs(fresh)


def test_a_footer_of_another_shape_means_the_rows_are_parsed(tmp_path):
    """A footer whose second entry is no [shard, digest, rows]: nothing is taken from it, its first and
    well-formed entry included (it once was, with the index closed: the build failed), and the build
    goes on, parsing the rows files."""
    corpus = text_corpus(tmp_path / "corpus")
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    build(text_doc(), corpus, out, workers=1)
    entries = footer(out)
    table = pq.read_table(out / "index.parquet")
    schema = table.schema.with_metadata({**(table.schema.metadata or {}),
                                         ROWS_KEY.encode(): json.dumps([entries[0], "garbage"]).encode()})
    with pq.ParquetWriter(out / "index.parquet", schema) as writer:  # row groups where they were: 39, 40, 20
        start = 0
        for _, _, n in entries:
            writer.write_table(table.slice(start, n).cast(schema))
            start += n
    (corpus / "d1" / "s050.txt").write_text("a new caption for s050")
    build(text_doc(), corpus, out, workers=1)
    assert stats(out)["run"]["index_shards_reused"] == 0
    build(text_doc(), corpus, fresh, workers=1)
    assert outputs(out) == outputs(fresh)


def test_runs_of_a_rows_file_rewritten_since_are_not_used(tmp_path):
    """A crash between a shard's rebuild and the merge leaves the index of the build before; a rows file
    rewritten after that (by hand, as above) no longer is what its part's runs describe: parsed whole."""
    corpus = text_corpus(tmp_path / "corpus", 300)
    out = tmp_path / "out"
    doc = text_doc(max_samples=150)
    build(doc, corpus, out, workers=1)
    before = (out / "index.parquet").read_bytes()
    (corpus / "d0" / "s001.txt").write_text("grown " * 200)
    build(doc, corpus, out, workers=1)
    (out / "index.parquet").write_bytes(before)  # as if the merge had not run
    part, rows = out / ".parts" / "t-000000.json", out / ".parts" / "t-000000.rows"
    text = rows.read_text()
    last = text.rstrip("\n").rsplit("\n", 1)[1]  # a copied row, moved
    rows.write_text(text.replace(last, last.replace('"status":"ok"', '"status":"OK"'), 1))
    meta = json.loads(part.read_text())
    assert meta["rows_from"]["runs"] and meta["rows_bytes"] == rows.stat().st_size
    os.remove(out / "stats.json")
    build(doc, corpus, out, workers=1)
    assert stats(out)["run"]["index_rows_parsed"] >= 149  # shard 0 parsed whole
    statuses = {r["key"]: r["status"] for r in pq.read_table(out / "index.parquet").to_pylist()}
    assert statuses[json.loads(last)["key"]] == "OK"
