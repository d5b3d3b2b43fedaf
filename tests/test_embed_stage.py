"""The ``embed`` pipeline stage: members in the main shards, reason codes, the content cache; audio stats."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest

from mmprep.embed.models import ModelSpec, load_encoder
from mmprep.errors import Drop
from mmprep.testing.embed import caption_corpus, raw_build
from mmprep.testing.media import tone, wav_bytes


def npy_members(out: Path, ext: str) -> dict[str, np.ndarray]:
    got = {}
    for shard in sorted((out / "shards").glob("*.tar")):
        with tarfile.open(shard) as tar:
            for m in tar:
                if m.name.endswith(f".{ext}"):
                    got[m.name[: -len(ext) - 1]] = np.load(io.BytesIO(tar.extractfile(m).read()), allow_pickle=False)
    return got


def test_embed_stage_in_a_build_and_cached_rerun(tmp_path):
    from sentence_transformers import SentenceTransformer

    texts = caption_corpus(tmp_path / "corpus", 6, bad=True)
    stages = [{"stage": "text.decode"}, {"stage": "embed", "field": "txt", "batch_size": 4},
              {"stage": "embed", "field": "jpg", "size": 32, "dtype": "float16"}]
    optional = ["txt_emb.npy", "jpg_emb.npy"]
    summary = raw_build(tmp_path / "corpus", tmp_path / "out", stages=stages, optional=optional,
                        cache=tmp_path / "cache")
    assert summary["samples_out"] == 9 and summary["errors_by_reason"] == {"embed.bad_image": 1,
                                                                         "embed.empty_text": 1}
    txt = npy_members(tmp_path / "out", "txt_emb.npy")
    jpg = npy_members(tmp_path / "out", "jpg_emb.npy")
    assert sorted(txt) == sorted([f"item{i:04d}" for i in range(6)] + ["bad_image", "bad_long"])
    assert sorted(jpg) == sorted([f"item{i:04d}" for i in range(6)] + ["bad_blank", "bad_long"])
    assert all(v.dtype == np.float16 and v.shape == (64,) for v in jpg.values())
    ref = SentenceTransformer(str(load_encoder(ModelSpec("text", device="cpu")).model), device="cpu").encode(texts)
    ours = np.stack([txt[f"item{i:04d}"] for i in range(6)])
    assert np.abs(ours - ref).max() < 1e-5
    errors = [json.loads(x) for x in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    blank = next(e for e in errors if e["key"] == "bad_blank")
    assert (blank["reason"], blank["action"], blank["field"]) == ("embed.empty_text", "omitted", "txt_emb.npy")
    metas = {}
    for shard in (tmp_path / "out" / "shards").glob("*.tar"):
        with tarfile.open(shard) as tar:
            metas.update({m.name: json.load(tar.extractfile(m)) for m in tar if m.name.endswith("meta.json")})
    assert metas["bad_long.meta.json"]["embed_truncated"] == {"txt": 602}

    again = raw_build(tmp_path / "corpus", tmp_path / "out2", stages=stages, optional=optional,
                      cache=tmp_path / "cache")
    stats = json.loads((tmp_path / "out2" / "stats.json").read_text())
    assert again["samples_out"] == 9
    assert stats["stages"]["embed"]["in"] == 0 and stats["stages"]["embed#2"]["in"] == 0  # all from the cache
    assert stats["stages"]["embed"]["cached"] + stats["stages"]["embed#2"]["cached"] == 9


def test_audio_logmel_statistics():
    enc = load_encoder(ModelSpec("audio", device="cpu", batch_size=3))
    clips = [wav_bytes(tone(s, freq=f)) for s, f in ((0.5, 220.0), (1.2, 880.0), (0.3, 220.0))]
    both, _ = enc.encode([enc.prepare(c) for c in clips])
    alone, _ = enc.encode([enc.prepare(clips[0])])
    assert both.shape == (3, 128) and enc.dim == 128
    assert np.abs(both[0] - alone[0]).max() < 1e-4  # padding in a batch is masked out
    # the same tone at another length has nearly the same statistics; another pitch does not
    assert np.abs(both[0, :64] - both[2, :64]).max() < 0.5 < np.abs(both[0, :64] - both[1, :64]).max()
    with pytest.raises(Drop) as err:
        enc.prepare(b"RIFF\x00\x00\x00\x00WAVEjunk")
    assert err.value.reason == "embed.bad_audio"
