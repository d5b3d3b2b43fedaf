"""A build end to end: shards any WebDataset reader opens, an index that points at the bytes, reports."""

from __future__ import annotations

import io
import json

import numpy as np
import pyarrow.parquet as pq
import pytest
import webdataset as wds

from mmprep.testing.corpus import add_bad_samples
from tests.conftest import build
from tests.conftest import shard_members as tar_members


def test_demo_build_writes_webdataset_shards(corpus, tmp_path, demo_doc):
    out = tmp_path / "out"
    summary = build(demo_doc, corpus, out, workers=2)
    assert summary["ok"] and summary["samples_out"] == 8 and summary["samples_dropped"] == 0
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["demo-000000.tar", "demo-000001.tar"]

    samples = list(wds.WebDataset(sorted(str(p) for p in (out / "shards").glob("*.tar")), shardshuffle=False))
    keys = [s["__key__"] for s in samples]
    assert keys == sorted(keys) and len(keys) == 8 and keys[0] == "part0/item0000"
    first = samples[0]
    assert set(first) >= {"jpg", "txt", "wav", "srt", "mp4", "meta.json"}
    assert first["txt"].decode() == "a red square on a gradient #0"
    assert first["jpg"] == (corpus / "part0/item0000.jpg").read_bytes()  # untouched pixels: original bytes
    meta = json.loads(first["meta.json"])
    assert meta["source"] == "part0/item0000" and meta["status"] == "ok"
    assert meta["video"]["mp4"]["width"] == 64 and meta["audio"]["wav"]["rate"] == 16000
    assert "mp4" not in samples[1]  # only every 4th sample has a video

    import soundfile as sf
    audio, rate = sf.read(io.BytesIO(first["wav"]))
    assert rate == 16000 and abs(np.max(np.abs(audio)) - 10 ** (-1 / 20)) < 1e-3  # audio.normalize peak -1 dBFS


def test_index_points_at_member_bytes(corpus, tmp_path, demo_doc):
    out = tmp_path / "out"
    build(demo_doc, corpus, out, workers=1)
    table = pq.read_table(out / "index.parquet").to_pylist()
    assert len(table) == 8
    for row in table:
        raw = (out / "shards" / row["shard"]).read_bytes()
        for fld, off, size in zip(row["fields"], row["member_offsets"], row["member_sizes"], strict=True):
            if fld == "txt":
                assert raw[off : off + size] == (corpus / f"{row['source']}.txt").read_bytes()
        assert row["status"] == "ok" and row["duration"] > 0
        header = raw[row["offset"] : row["offset"] + 512]
        assert header.startswith(row["key"].encode())


def test_huggingface_datasets_reads_the_shards(corpus, tmp_path, demo_doc):
    from datasets import load_dataset

    out = tmp_path / "out"
    # datasets decodes .wav members with torchcodec, which pins its own torch: images and text here
    doc = {**demo_doc, "output": {**demo_doc["output"], "fields": ["jpg", "txt"]}}
    build(doc, corpus, out, workers=1)
    ds = load_dataset("webdataset", data_files={"train": sorted(str(p) for p in (out / "shards").glob("*.tar"))},
                      split="train", cache_dir=str(tmp_path / "hf"))
    assert len(ds) == 8
    assert sorted(ds["__key__"]) == [f"part{i % 2}/item{i:04d}" for i in sorted(range(8), key=lambda i: (i % 2, i))]
    row = ds[0]
    assert row["txt"] == "a red square on a gradient #0"
    assert row["jpg"].size == (64, 48)
    assert row["meta.json"]["status"] == "ok"


def test_bad_inputs_are_reported_and_good_samples_all_land(corpus, tmp_path, demo_doc):
    expected = add_bad_samples(corpus)
    out = tmp_path / "out"
    summary = build(demo_doc, corpus, out, workers=2)
    assert summary["ok"]
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    got = {e["key"]: e["reason"] for e in errors}
    assert got == expected
    by_key = {e["key"]: e for e in errors}
    assert by_key["bad/notanimage"]["action"] == "dropped"  # png is not an optional field
    assert by_key["bad/truncated"]["action"] == "omitted" and by_key["bad/truncated"]["field"] == "jpg"
    assert by_key["bad/truncated"]["path"] == str(corpus / "bad" / "truncated.jpg")
    assert by_key["bad/badaudio"]["stage"] == "audio.decode"
    members = tar_members(out)
    keys = {name.split(".", 1)[0] for name in members}
    assert {f"part{i % 2}/item{i:04d}" for i in range(8)} <= keys
    assert "bad/notanimage" not in keys and "bad/truncated" in keys and "bad/truncated.jpg" not in members
    assert json.loads(members["bad/truncated.meta.json"])["status"] == "partial"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["samples_in"] == 13 and stats["samples_out"] == 12 and stats["samples_dropped"] == 1
    assert stats["errors_by_reason"] == {"audio.corrupt": 1, "image.corrupt": 2, "input.empty": 1,
                                         "video.corrupt": 1}
    assert stats["stages"]["image.decode"]["dropped"] == {"image.corrupt": 1}
    assert stats["stages"]["image.decode"]["omitted"] == {"image.corrupt": 1}
    assert stats["stages"]["input"]["omitted"] == {"input.empty": 1}


def test_missing_companion_drops_with_reason(tmp_path, corpus, demo_doc):
    (corpus / "part0" / "item0000.txt").unlink()
    out = tmp_path / "out"
    build(demo_doc, corpus, out, workers=1)
    errors = [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]
    assert errors == [{"key": "part0/item0000", "source": "part0/item0000", "stage": "output",
                       "reason": "field.missing", "message": "required field(s) missing: txt", "action": "dropped",
                       "field": "txt"}]


def test_max_bytes_rolls_over_to_numbered_parts(corpus, tmp_path, demo_doc):
    out = tmp_path / "out"
    doc = {**demo_doc, "output": {**demo_doc["output"], "max_samples": 8, "max_bytes": "20KB"}}
    build(doc, corpus, out, workers=1)
    names = sorted(p.name for p in (out / "shards").iterdir())
    assert names[0] == "demo-000000.tar" and names[1] == "demo-000000_01.tar" and len(names) > 2
    assert len(tar_members(out)) == 8 * 5 + 2 * 1  # jpg txt wav srt meta, + mp4 for 2 samples


@pytest.mark.parametrize("value", [np.array([object()], dtype=object)])
def test_writer_refuses_object_arrays(value):
    from mmprep.codecs import encode_field
    from mmprep.errors import Drop

    with pytest.raises(Drop, match="pickle"):
        encode_field("x.npy", value)
