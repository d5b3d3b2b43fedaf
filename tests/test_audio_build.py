"""Audio pipelines end to end: shards hold the features, bad files get reason codes, the cache is reused."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from mmprep.build import BuildOptions, run_build
from mmprep.config import parse_pipeline
from mmprep.testing.audio import burst_signal, speech_like
from mmprep.testing.media import srt_text, wav_bytes, write
from tests.conftest import shard_members as members


def pipeline(n_mfcc: int = 13) -> dict:
    return {
        "name": "a",
        "stages": [
            {"stage": "audio.decode"},
            {"stage": "audio.resample", "rate": 16000},
            {"stage": "audio.vad"},
            {"stage": "audio.logmel", "device": "cpu", "n_mels": 40},
            {"stage": "audio.mfcc", "device": "cpu", "n_mels": 40, "n_mfcc": n_mfcc, "deltas": 1},
        ],
        "output": {"name": "a", "max_samples": 50, "required": ["wav"], "optional": ["vad.json"]},
        "execution": {"batch_size": 8},
    }


def corpus(root: Path) -> dict[str, str]:
    for i in range(6):
        rate = 16000 if i % 2 else 22050
        write(root / f"ok{i}.wav", wav_bytes(speech_like(0.5 + 0.7 * i, rate=rate, seed=i), rate))
    bad = {"bad_header": b"RIFF\x00\x00\x00\x00WAVEjunk", "zero": wav_bytes(np.zeros(0, np.float32)),
           "tiny": wav_bytes(np.array([0.3], np.float32))}
    for stem, data in bad.items():
        write(root / f"{stem}.wav", data)
    return {"bad_header": "audio.corrupt", "zero": "audio.empty"}


def build(doc: dict, inp: Path, out: Path, **opts) -> dict:
    return run_build(parse_pipeline(doc), BuildOptions(input=str(inp), output=str(out), progress=False, workers=1,
                                                       **opts))




def test_features_in_shards_and_bad_files_dropped(tmp_path):
    bad = corpus(tmp_path / "in")
    build(pipeline(), tmp_path / "in", tmp_path / "out")
    got = members(tmp_path / "out")
    mfcc = np.load(io.BytesIO(got["ok3.mfcc.npy"]))
    meta = json.loads(got["ok3.meta.json"])
    assert mfcc.shape == (26, 1 + int(round(2.6 * 16000)) // 160) and mfcc.dtype == np.float32
    feat = meta["features"]["mfcc.npy"]
    assert (feat["rate"], feat["hop"], feat["center"], feat["frames"]) == (16000, 160, True, mfcc.shape[1])
    assert np.load(io.BytesIO(got["tiny.logmel.npy"])).shape == (40, 1)  # one sample long: one frame
    assert "original_rate" not in meta["audio"]["wav"]  # ok3 was already at 16 kHz; ok2 was resampled
    assert json.loads(got["ok2.meta.json"])["audio"]["wav"]["original_rate"] == 22050
    errors = [json.loads(line) for line in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert {e["key"]: e["reason"] for e in errors} == bad
    stats = json.loads((tmp_path / "out" / "stats.json").read_text())
    assert stats["samples_out"] == 7 and stats["errors_by_reason"] == {"audio.corrupt": 1, "audio.empty": 1}


def test_feature_cache_reused_and_only_changed_features_recomputed(tmp_path):
    corpus(tmp_path / "in")
    cache = tmp_path / "cache"
    build(pipeline(), tmp_path / "in", tmp_path / "o1", cache_dir=str(cache))
    first = members(tmp_path / "o1")
    # a different output folder sharing the cache, with only the MFCC parameters changed
    build(pipeline(n_mfcc=20), tmp_path / "in", tmp_path / "o2", cache_dir=str(cache))
    stats = json.loads((tmp_path / "o2" / "stats.json").read_text())["stages"]
    assert stats["audio.logmel"]["cached"] == 7 and stats["audio.logmel"]["in"] == 0
    assert stats["audio.mfcc"]["in"] == 7 and stats["audio.mfcc"]["cached"] == 0
    second = members(tmp_path / "o2")
    assert second["ok4.logmel.npy"] == first["ok4.logmel.npy"]
    assert np.load(io.BytesIO(second["ok4.mfcc.npy"])).shape[0] == 40
    # a re-shard (other shard size) recomputes no feature: every sample resumes after audio.mfcc
    doc = pipeline(n_mfcc=20)
    doc["output"]["max_samples"] = 3
    build(doc, tmp_path / "in", tmp_path / "o3", cache_dir=str(cache))
    stats = json.loads((tmp_path / "o3" / "stats.json").read_text())["stages"]
    assert stats["audio.mfcc"]["cached"] == 7 and stats["audio.mfcc"]["in"] == 0 and stats["audio.logmel"]["in"] == 0
    assert members(tmp_path / "o3")["ok4.mfcc.npy"] == second["ok4.mfcc.npy"]


def test_subtitle_segments_become_samples(tmp_path):
    inp = tmp_path / "in"
    write(inp / "talk.wav", wav_bytes(burst_signal([(0.5, 1.5), (2.0, 3.0)], 4.0)))
    write(inp / "talk.srt", srt_text([(0.5, 1.5, "first line"), (2.0, 3.0, "second line")]))
    doc = {"stages": [{"stage": "audio.decode"}, {"stage": "subtitle.decode"},
                      {"stage": "audio.segment", "mode": "subtitle", "pad_ms": 0},
                      {"stage": "audio.logmel", "device": "cpu"}],
           "output": {"name": "seg", "required": ["wav", "txt", "logmel.npy"]}}
    build(doc, inp, tmp_path / "out")
    got = members(tmp_path / "out")
    assert got["talk/_seg0001.txt"] == b"second line"
    meta = json.loads(got["talk/_seg0001.meta.json"])
    assert meta["segment"]["start"] == 2.0 and meta["segment"]["end"] == 3.0
    assert np.load(io.BytesIO(got["talk/_seg0001.logmel.npy"])).shape == (80, 101)


def test_fan_out_children_never_take_a_real_files_key(tmp_path):
    """``talk/seg0001.txt`` is a real sample beside ``talk.wav``; the segments of ``talk.wav`` are
    ``talk/_seg0000``... (a part starting with ``_`` is never a corpus key), so both land."""
    inp = tmp_path / "in"
    write(inp / "talk.wav", wav_bytes(burst_signal([(0.2, 1.8)], 2.0)))
    write(inp / "talk" / "seg0001.txt", "a real caption")
    write(inp / "talk" / "_seg0000.txt", "another real caption")  # sanitized: talk/seg0000
    doc = {"stages": [{"stage": "audio.decode"}, {"stage": "text.decode"},
                      {"stage": "audio.segment", "mode": "fixed", "window": 1.0, "step": 1.0, "pad_ms": 0}],
           "output": {"name": "seg"}}
    build(doc, inp, tmp_path / "out")
    got = members(tmp_path / "out")
    keys = sorted({name.split(".", 1)[0] for name in got})
    assert keys == ["talk/_seg0000", "talk/_seg0001", "talk/seg0000", "talk/seg0001"]
    assert got["talk/seg0001.txt"] == b"a real caption" and got["talk/seg0000.txt"] == b"another real caption"
    assert "talk/_seg0001.wav" in got
    index = pq.read_table(tmp_path / "out" / "index.parquet").column("key").to_pylist()
    assert sorted(index) == keys
