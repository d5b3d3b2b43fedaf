"""Decoding by extension, never unpickling, padding collate, and OUT directories with sidecars."""

from __future__ import annotations

import io
import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from mmprep.codecs import encode_image, npy_bytes
from mmprep.data import Decoder, PadCollate, ShardStream
from mmprep.errors import ConfigError
from mmprep.shardwriter import ShardWriter
from mmprep.testing.media import tone, wav_bytes


class _Bomb:
    """Unpickling this writes a file: the proof that something unpickled."""

    def __init__(self, target: str):
        self.target = target

    def __reduce__(self):
        return (Path(self.target).write_text, ("unpickled!",))


def test_pickle_members_are_never_loaded(tmp_path):
    sentinel = tmp_path / "sentinel"
    payload = pickle.dumps(_Bomb(str(sentinel)))
    w = ShardWriter(tmp_path, "evil")
    w.write("a", [("pyd", payload), ("pickle", payload), ("txt", b"fine"), ("x.pkl", payload)])
    w.close()
    got = list(ShardStream(str(tmp_path / "evil.tar"), shuffle=False))
    assert got == [{"__key__": "a", "txt": "fine"}]
    assert not sentinel.exists()
    with pytest.raises(ConfigError, match="never unpickles"):
        ShardStream(str(tmp_path / "evil.tar"), fields=["pyd"])
    # an object-dtype .npy would need pickle: numpy refuses it
    buf = io.BytesIO()
    np.save(buf, np.array([_Bomb(str(sentinel))], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="allow_pickle"):
        Decoder().decode("obj.npy", buf.getvalue())
    assert not sentinel.exists()


def test_decode_by_extension():
    pixels = np.zeros((12, 20, 3), np.uint8)
    pixels[..., 0] = 255  # pure red
    raw = {"jpg": encode_image(pixels, "png"), "mfcc.npy": npy_bytes(np.ones((13, 7), np.float32)),
           "meta.json": b'{"a": 1}', "txt": "h\xe9".encode(), "cls": b"3\n",
           "wav": wav_bytes(tone(0.1, rate=8000), 8000), "bin": b"\x00\x01"}
    out = Decoder()("k", raw)
    assert out["jpg"].dtype == torch.uint8 and out["jpg"].shape == (3, 12, 20)
    assert out["jpg"][0].min() == 255 and out["jpg"][1].max() == 0  # RGB order
    assert out["mfcc.npy"].shape == (13, 7) and out["mfcc.npy"].dtype == torch.float32
    assert out["meta.json"] == {"a": 1} and out["txt"] == "h\xe9" and out["cls"] == 3
    assert out["wav"].dtype == torch.float32 and out["wav"].shape == (800,)
    assert abs(float(out["wav"].abs().max()) - 0.5) < 0.01
    assert out["bin"] == b"\x00\x01"
    small = Decoder(fields=("jpg",), image="float", resize=(10, 6))("k", raw)
    assert set(small) == {"__key__", "jpg"}
    assert small["jpg"].shape == (3, 6, 10) and abs(float(small["jpg"][0].mean()) - 1.0) < 1e-6


def test_pad_collate_lengths_masks_presence():
    samples = [
        {"__key__": "a", "mfcc.npy": torch.ones(13, 5), "tok.npy": torch.tensor([4, 5, 6]), "cls": 1, "txt": "x"},
        {"__key__": "b", "mfcc.npy": torch.ones(13, 2), "tok.npy": torch.tensor([7]), "cls": 0, "txt": "y"},
        {"__key__": "c", "tok.npy": torch.tensor([8, 9]), "cls": 2, "txt": "z"},
    ]
    batch = PadCollate()(samples)
    assert batch["__key__"] == ["a", "b", "c"]
    assert batch["mfcc.npy"].shape == (3, 13, 5)
    assert batch["mfcc.npy.lengths"].tolist() == [5, 2, 0]
    assert batch["mfcc.npy.mask"].tolist() == [[True] * 5, [True, True, False, False, False], [False] * 5]
    assert float(batch["mfcc.npy"][1, :, 2:].abs().sum()) == 0.0
    assert batch["mfcc.npy.present"].tolist() == [True, True, False]
    assert batch["tok.npy"].tolist() == [[4, 5, 6], [7, 0, 0], [8, 9, 0]]
    assert batch["tok.npy.lengths"].tolist() == [3, 1, 2]
    assert "tok.npy.present" not in batch
    assert batch["cls"].tolist() == [1, 0, 2] and batch["txt"] == ["x", "y", "z"]


def test_out_directory_reads_index_and_embedding_sidecars(tmp_path):
    from mmprep.build import BuildOptions, run_build
    from mmprep.config import parse_pipeline
    from mmprep.testing.corpus import multimodal_corpus

    corpus = tmp_path / "corpus"
    multimodal_corpus(corpus, n=6)
    spec = parse_pipeline({"name": "t", "stages": [{"stage": "text.decode"}],
                       "output": {"name": "t", "max_samples": 4, "required": ["txt"], "optional": ["jpg", "wav"]}})
    out = tmp_path / "out"
    run_build(spec, BuildOptions(input=str(corpus), output=str(out), workers=1, progress=False))
    import pyarrow.parquet as pq

    index = pq.read_table(out / "index.parquet").to_pylist()
    keys = [r["key"] for r in index]
    # an embedding sidecar per shard, same keys in the same order, one key missing
    car = out / "embeddings" / "txt_emb"
    car.mkdir(parents=True)
    (car / "meta.json").write_text(json.dumps({"field": "txt_emb", "dim": 4}))
    missing = keys[1]
    for shard in sorted({r["shard"] for r in index}):
        w = ShardWriter(car, shard.removesuffix(".tar"))
        for r in index:
            if r["shard"] == shard and r["key"] != missing:
                w.write(r["key"], [("txt_emb.npy", npy_bytes(np.full(4, keys.index(r["key"]), np.float32)))])
        w.close()
    got = {s["__key__"]: s for s in ShardStream(str(out), shuffle=False, fields=["txt", "txt_emb.npy"])}
    assert sorted(got) == sorted(keys)
    for i, key in enumerate(keys):
        if key == missing:
            assert "txt_emb.npy" not in got[key]
        else:
            assert got[key]["txt_emb.npy"].tolist() == [float(i)] * 4
        assert isinstance(got[key]["txt"], str)
