"""``mmprep embed`` sidecars: keys/order, values equal to the model run directly, reruns, second model,
float16 image embeddings from a TorchScript file, and the loader's joined view."""

from __future__ import annotations

import io
import json
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest

from mmprep.embed.check import recall_at
from mmprep.embed.models import ModelSpec, load_encoder
from mmprep.embed.shards import split_member
from mmprep.embed.sidecar import EmbedOptions, SidecarJob
from mmprep.errors import ConfigError
from mmprep.testing.embed import caption_corpus, raw_build, save_torchscript_cnn


def members(path: Path) -> list[tuple[str, str, bytes]]:
    with tarfile.open(path) as tar:
        return [(*split_member(m.name), tar.extractfile(m).read()) for m in tar if m.isfile()]


def keys_in_order(path: Path) -> list[str]:
    return list(dict.fromkeys(k for k, _, _ in members(path)))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("embed")
    caption_corpus(root / "corpus", 9, bad=True)  # 12 samples -> 3 shards of 4
    raw_build(root / "corpus", root / "out", per_shard=4)
    return root / "out"


@pytest.fixture(scope="module")
def enc():
    return load_encoder(ModelSpec("text", device="cpu", batch_size=16))


@pytest.fixture(scope="module")
def first_run(built, enc):
    return SidecarJob(built, enc, EmbedOptions(field="txt", progress=False)).run()


def test_sidecar_keys_order_and_values(built, enc, first_run):
    from sentence_transformers import SentenceTransformer

    res = first_run
    assert (res.name, res.samples, res.embedded, res.computed, res.dropped, res.truncated) == (
        "txt_emb", 12, 11, 11, 1, 1)
    mains = sorted((built / "shards").glob("*.tar"))
    cars = sorted((built / "embeddings" / "txt_emb").glob("*.tar"))
    assert [p.name for p in cars] == [p.name for p in mains] and len(mains) == 3
    texts, vecs = [], []
    for main, car in zip(mains, cars, strict=True):
        assert keys_in_order(car) == keys_in_order(main)
        txt = {k: data.decode() for k, ext, data in members(main) if ext == "txt"}
        for key, ext, data in members(car):
            if key == "bad_blank":
                assert ext == "txt_emb.drop.json"
                assert json.loads(data)["reason"] == "embed.empty_text"
                continue
            assert ext == "txt_emb.npy"
            texts.append(txt[key])
            vecs.append(np.load(io.BytesIO(data), allow_pickle=False))
    ref = SentenceTransformer(enc.model, device="cpu").encode(texts, convert_to_numpy=True)
    assert np.stack(vecs).dtype == np.float32
    assert np.abs(np.stack(vecs) - ref).max() < 1e-5

    meta = json.loads((built / "embeddings" / "txt_emb" / "meta.json").read_text())
    assert (meta["dim"], meta["dtype"], meta["normalized"], meta["count"], meta["samples"]) == (
        384, "float32", True, 11, 12)
    assert meta["complete"] is True and sorted(meta["shards"]) == [p.name for p in mains]
    assert meta["model"]["model_hash"] == enc.model_hash and meta["seconds"] >= 0
    lines = [json.loads(x) for x in (built / "embeddings" / "txt_emb" / "errors.jsonl").read_text().splitlines()]
    assert sorted((x["key"], x["reason"]) for x in lines) == [("bad_blank", "embed.empty_text"),
                                                            ("bad_long", "embed.truncated")]


def test_rerun_computes_nothing(built, enc, first_run):
    car = built / "embeddings" / "txt_emb"
    before = {p.name: p.read_bytes() for p in car.glob("*.tar")}
    again = SidecarJob(built, enc, EmbedOptions(field="txt", progress=False)).run()
    assert (again.computed, again.cached, again.shards_skipped, again.shards_done) == (0, 0, 3, 0)
    assert (again.samples, again.embedded) == (12, 11)
    # Sidecars gone, content cache kept: every embedding comes from the cache, byte-identical shards.
    shutil.rmtree(car)
    third = SidecarJob(built, enc, EmbedOptions(field="txt", progress=False)).run()
    assert (third.computed, third.cached, third.shards_done) == (0, 11, 3)
    assert {p.name: p.read_bytes() for p in car.glob("*.tar")} == before


def test_second_model_adds_second_field(built, first_run):
    other = load_encoder(ModelSpec("text", device="cpu", max_tokens=16))  # other preprocessing = other identity
    res = SidecarJob(built, other, EmbedOptions(field="txt", progress=False)).run()
    assert res.name.startswith("txt_emb_") and len(res.name) == len("txt_emb_") + 8
    texts = [d.decode() for m in sorted((built / "shards").glob("*.tar")) for _, e, d in members(m) if e == "txt"]
    longer = sum(len(other.tokenizer(t)["input_ids"]) > 16 for t in texts if t.strip())
    assert res.computed == 11 and res.truncated == longer and 2 <= longer < 11
    assert (built / "embeddings" / "txt_emb" / "meta.json").is_file()
    assert json.loads((built / "embeddings" / res.name / "meta.json").read_text())["identity"] != json.loads(
        (built / "embeddings" / "txt_emb" / "meta.json").read_text())["identity"]
    with pytest.raises(ConfigError, match="--name"):
        SidecarJob(built, other, EmbedOptions(field="txt", name="txt_emb", progress=False))


def test_image_torchscript_float16(built, tmp_path):
    model = save_torchscript_cnn(tmp_path / "cnn.pt")
    enc = load_encoder(ModelSpec("image", model=str(model), device="cpu", size=32, batch_size=5))
    res = SidecarJob(built, enc, EmbedOptions(field="jpg", dtype="float16", progress=False)).run()
    assert (res.name, res.embedded, res.dropped, res.errors_by_reason) == ("jpg_emb", 11, 1, {"embed.bad_image": 1})
    import torch

    net = torch.jit.load(str(model))
    for main in sorted((built / "shards").glob("*.tar")):
        jpg = {k: d for k, e, d in members(main) if e == "jpg"}
        for key, ext, data in members(built / "embeddings" / "jpg_emb" / main.name):
            if key == "bad_image":
                assert ext == "jpg_emb.drop.json" and json.loads(data)["reason"] == "embed.bad_image"
                continue
            vec = np.load(io.BytesIO(data), allow_pickle=False)
            assert vec.dtype == np.float16 and vec.shape == (64,)
            direct = net(torch.from_numpy(enc.prepare(jpg[key])[None])).detach().numpy()[0]
            direct /= np.linalg.norm(direct)
            assert np.abs(vec.astype(np.float32) - direct).max() < 2e-3  # float16 storage


def test_loader_returns_embeddings_next_to_fields(built, first_run):
    from mmprep.data import ShardStream

    got = {s["__key__"]: s for s in ShardStream(str(built), fields=["txt", "txt_emb.npy"], shuffle=False)}
    assert len(got) == 12
    car = {k: np.load(io.BytesIO(d), allow_pickle=False) for p in (built / "embeddings" / "txt_emb").glob("*.tar")
           for k, e, d in members(p) if e == "txt_emb.npy"}
    assert len(car) == 11
    for key, vec in car.items():
        sample = got[key]
        assert isinstance(sample["txt"], str)
        assert np.array_equal(np.asarray(sample["txt_emb.npy"]), vec)
    assert "txt_emb.npy" not in got["bad_blank"]


def test_recall_at_numbers():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(20, 8)).astype(np.float32)
    assert recall_at(x, x) == {"recall@1": 1.0, "recall@5": 1.0}
    swapped = x.copy()
    swapped[[0, 1]] = swapped[[1, 0]]  # two captions exchanged: those two miss at 1
    r = recall_at(x, swapped)
    assert r["recall@1"] == pytest.approx(18 / 20)


def test_sidecars_of_a_shard_rebuilt_since_are_left_out_with_a_warning(tmp_path, enc, caplog):
    """A shard rebuilt after `mmprep embed` (one caption changed) kept getting the old sidecar joined by
    key: the changed caption came with its old caption's vector, silently."""
    import logging

    from mmprep.data import ShardStream

    caption_corpus(tmp_path / "corpus", 8)
    out = tmp_path / "out"
    raw_build(tmp_path / "corpus", out, per_shard=4)
    SidecarJob(out, enc, EmbedOptions(field="txt", progress=False)).run()
    (tmp_path / "corpus" / "item0001.txt").write_text("a changed caption")  # in the first shard
    raw_build(tmp_path / "corpus", out, per_shard=4)
    with caplog.at_level(logging.WARNING, logger="mmprep.data.sources"):
        got = {s["__key__"]: s for s in ShardStream(str(out), shuffle=False)}
    assert sorted(k for k, s in got.items() if "txt_emb.npy" in s) == [f"item{i:04d}" for i in range(4, 8)]
    assert "txt_emb.npy" not in got["item0001"] and got["item0001"]["txt"] == "a changed caption"
    assert "embeddings txt_emb of 1 shard(s) (emb-000000.tar...) were made from an earlier build" in caplog.text
    SidecarJob(out, enc, EmbedOptions(field="txt", progress=False)).run()  # embed again: all joined
    assert all("txt_emb.npy" in s for s in ShardStream(str(out), shuffle=False))


def test_a_truncated_text_is_still_noted_when_its_vector_comes_from_the_cache(tmp_path, enc):
    """A shard re-embedded after another caption changed took the long text's vector from the cache and
    lost its embed.truncated note (errors.jsonl and meta.json)."""
    caption_corpus(tmp_path / "corpus", 3, bad=True)  # 6 samples, one shard: bad_long is over the limit
    out = tmp_path / "out"
    raw_build(tmp_path / "corpus", out, per_shard=8)
    first = SidecarJob(out, enc, EmbedOptions(field="txt", progress=False)).run()
    errors = (out / "embeddings" / "txt_emb" / "errors.jsonl").read_text()
    assert '"key": "bad_long", "reason": "embed.truncated"' in errors
    (tmp_path / "corpus" / "item0001.txt").write_text("a changed caption")
    raw_build(tmp_path / "corpus", out, per_shard=8)
    again = SidecarJob(out, enc, EmbedOptions(field="txt", progress=False)).run()
    assert again.computed == 1 and again.cached == first.computed - 1
    assert (out / "embeddings" / "txt_emb" / "errors.jsonl").read_text() == errors


def test_a_cache_that_cannot_be_written_is_counted_and_said(built, enc, tmp_path, caplog):
    """The cache no longer raises on a failed write (a build must not lose samples for it); embed then
    recomputed the model on every rerun without a word. It counts and warns, as the build does."""
    out = tmp_path / "out"
    shutil.copytree(built, out, ignore=shutil.ignore_patterns("embeddings", ".cache"))
    cache = tmp_path / "cache"
    cache.mkdir()
    for d in range(256):
        (cache / f"{d:02x}").write_text("not a folder")
    with caplog.at_level("WARNING", logger="mmprep.embed"):
        res = SidecarJob(out, enc, EmbedOptions(field="txt", progress=False, cache_dir=str(cache))).run()
    assert res.computed == res.embedded > 0 and res.cache_writes_failed == res.computed
    assert f"could not write {res.computed} cache entries" in caplog.text
