"""Loader and fusion review 3 (audit 50): a batch of ``null`` .json members no longer ends the epoch, an OUT
without its index is refused instead of read with its sidecars as samples, a copied OUT keeps its
embeddings, ``ShardStream``'s end-of-epoch state resumes at the next epoch, non-tar and compressed
shards are config errors naming the file, mixed int/float values collate to float, samples sharing a
key are both delivered, and the cnn encoder trains on one tiny image."""

from __future__ import annotations

import gzip
import io
import json
import logging
import shutil
import tarfile
from pathlib import Path

import pytest
import torch

from mmprep.data import PadCollate, ShardStream, StreamLoader
from mmprep.embed.models import ModelSpec, load_encoder
from mmprep.embed.sidecar import EmbedOptions, SidecarJob
from mmprep.errors import ConfigError
from mmprep.fusion.config import parse_config
from mmprep.fusion.trainer import Run
from mmprep.shardwriter import ShardWriter
from mmprep.testing.embed import caption_corpus, raw_build
from mmprep.testing.fusion import write_fusion_shards, write_uneven_shards
from tests.conftest import run_cli


def _foreign_tar(path: Path, samples: list[tuple[str, list[tuple[str, bytes]]]]) -> Path:
    """A shard written with the stdlib (not mmprep): members in the given order, keys as given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for key, members in samples:
            for ext, data in members:
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


# -- 1: a .json field null throughout one batch --------------------------------------------------------

@pytest.mark.parametrize("workers", [0, 2])
def test_a_batch_of_null_json_members_does_not_end_the_epoch(tmp_path, workers):
    """PadCollate's next() over the batch's values raised StopIteration, which the DataLoader took for the end
    of the data: 4 (or 10 with 2 workers) of 12 samples, no error."""
    writer = ShardWriter(tmp_path, "n")
    for i in range(12):
        writer.write(f"k{i:03d}", [("cls", b"1"), ("extra.json", b"null" if 4 <= i < 6 else b'{"x": 1}')])
    writer.close()
    loader = StreamLoader(ShardStream(str(tmp_path), shuffle=False, world=1, rank=0), batch_size=2,
                          num_workers=workers, collate_fn=PadCollate())
    batches = list(loader)
    assert len(batches) == 6
    assert sorted(k for b in batches for k in b["__key__"]) == [f"k{i:03d}" for i in range(12)]
    nulls = [b for b in batches if b["__key__"] == ["k004", "k005"]]
    assert len(nulls) == 1 and "extra.json" not in nulls[0] and "extra.json.present" not in nulls[0]
    assert nulls[0]["cls"].tolist() == [1, 1]


def test_null_json_beside_values_is_marked_not_present():
    out = PadCollate()([{"__key__": "a", "x.json": None}, {"__key__": "b", "x.json": {"y": 1}}])
    assert out["x.json"] == [None, {"y": 1}] and out["x.json.present"].tolist() == [False, True]
    assert PadCollate()([{"__key__": "a", "x.json": None}, {"__key__": "b", "x.json": None}]) == {"__key__": ["a", "b"]}


def _stops(samples):
    return next(iter([]))  # a collate function with a bug: StopIteration


@pytest.mark.parametrize("workers", [0, 2])
def test_stop_iteration_from_a_collate_function_fails_the_epoch(tmp_path, workers):
    write_uneven_shards(tmp_path, (4,))
    loader = StreamLoader(ShardStream(str(tmp_path), shuffle=False, world=1, rank=0), batch_size=2,
                          num_workers=workers, collate_fn=_stops)
    with pytest.raises(RuntimeError, match=r"collate_fn raised StopIteration on the batch of samples "
                                           r"\['grp0/k0000', 'grp1/k0001'\]"):
        list(loader)


# -- 2: an OUT folder without index.parquet -------------------------------------------------------------

@pytest.fixture(scope="module")
def embedded(tmp_path_factory) -> Path:
    """A real build of 8 samples in 2 shards, with `jpg` embeddings (the built-in tiny CNN) as sidecars."""
    root = tmp_path_factory.mktemp("review3")
    caption_corpus(root / "corpus", 8, image_size=32)
    raw_build(root / "corpus", root / "out", per_shard=4)
    enc = load_encoder(ModelSpec("image", device="cpu", batch_size=8, size=32))
    SidecarJob(root / "out", enc, EmbedOptions(field="jpg", progress=False)).run()
    return root / "out"


def _copy(src: Path, dst: Path) -> Path:
    """As `cp -r` (contents, no mtimes)."""
    shutil.copytree(src, dst, copy_function=shutil.copyfile)
    return dst


def test_out_without_index_is_refused_not_read_with_its_sidecars(embedded, tmp_path):
    """Read as a plain folder, embeddings/jpg_emb/*.tar became samples of their own: 16 instead of 8."""
    out = _copy(embedded, tmp_path / "out")
    assert len(ShardStream(str(out), shuffle=False)) == 8
    (out / "index.parquet").unlink()
    with pytest.raises(ConfigError) as err:
        ShardStream(str(out), shuffle=False)
    assert str(err.value) == (
        f"source: {out} is not a finished build: it has .parts but no index.parquet (a build is running "
        f"there, or was stopped before its end); run `mmprep build` again, to its end, or give its tars as a "
        f"glob ('{out}/shards/*.tar')")
    assert len(ShardStream(f"{out}/shards/*.tar", shuffle=False)) == 8  # the way out the message names
    shutil.rmtree(out / ".parts")
    with pytest.raises(ConfigError, match="it has stats.json but no index.parquet"):
        ShardStream(str(out), shuffle=False)


def test_plain_folder_of_tars_is_still_read(tmp_path):
    """Also one that keeps its tars in shards/ (WebDataset data from elsewhere): only what a build alone
    makes (.parts, stats.json, embeddings/) marks an unfinished OUT."""
    (tmp_path / "plain" / "shards").mkdir(parents=True)
    keys = write_uneven_shards(tmp_path / "plain" / "shards", (3, 2))
    assert sorted(s["__key__"] for s in ShardStream(str(tmp_path / "plain"), shuffle=False)) == sorted(keys)


# -- 3: sidecars of a copied OUT ------------------------------------------------------------------------

def test_copied_out_keeps_its_embeddings(embedded, tmp_path, caplog):
    """`cp -r OUT COPY` gave new mtimes, and every sidecar was left out as "made from an earlier build"."""
    copy = _copy(embedded, tmp_path / "copy")
    assert (copy / "shards" / "emb-000000.tar").stat().st_mtime_ns != \
        (embedded / "shards" / "emb-000000.tar").stat().st_mtime_ns
    with caplog.at_level(logging.WARNING, logger="mmprep.data.sources"):
        got = list(ShardStream(str(copy), shuffle=False))
    assert len(got) == 8 and all(s["jpg_emb.npy"].shape == (64,) for s in got)
    assert "earlier build" not in caplog.text
    original = {s["__key__"]: s["jpg_emb.npy"] for s in ShardStream(str(embedded), shuffle=False)}
    assert all(torch.equal(original[s["__key__"]], s["jpg_emb.npy"]) for s in got)


def test_copied_out_without_build_records_checks_the_sidecar_keys(embedded, tmp_path, caplog):
    """Without .parts (copied without hidden files), size and the sidecar's keys decide: a sidecar whose keys
    are not the index's for its shard is left out."""
    copy = _copy(embedded, tmp_path / "copy")
    shutil.rmtree(copy / ".parts")
    assert all("jpg_emb.npy" in s for s in ShardStream(str(copy), shuffle=False))
    car = copy / "embeddings" / "jpg_emb" / "emb-000001.tar"
    with tarfile.open(car) as tar:
        members = [(m, tar.extractfile(m).read()) for m in tar.getmembers()]
    with tarfile.open(car, "w", format=tarfile.USTAR_FORMAT) as tar:  # same size, two keys swapped
        for m, data in [members[1], members[0], *members[2:]]:
            tar.addfile(m, io.BytesIO(data))
    with caplog.at_level(logging.WARNING, logger="mmprep.data.sources"):
        got = {s["__key__"]: s for s in ShardStream(str(copy), shuffle=False)}
    assert sorted(k for k, s in got.items() if "jpg_emb.npy" in s) == [f"item{i:04d}" for i in range(4)]
    assert "embeddings jpg_emb of 1 shard(s) (emb-000001.tar...) were made from an earlier build" in caplog.text


def test_rebuild_that_keeps_size_and_keys_still_leaves_old_sidecars_out(tmp_path, caplog):
    """The copy's check must not take a rebuilt shard for a copy: one caption changed to one of the same
    length keeps the tar's size and keys, and the build's part file tells the rebuild."""
    caption_corpus(tmp_path / "corpus", 8, image_size=32)
    out = tmp_path / "out"
    raw_build(tmp_path / "corpus", out, per_shard=4)
    SidecarJob(out, load_encoder(ModelSpec("image", device="cpu", batch_size=8, size=32)),
               EmbedOptions(field="jpg", progress=False)).run()
    size = (out / "shards" / "emb-000000.tar").stat().st_size
    text = (tmp_path / "corpus" / "item0001.txt").read_text()
    (tmp_path / "corpus" / "item0001.txt").write_text("x" * len(text))
    raw_build(tmp_path / "corpus", out, per_shard=4)
    assert (out / "shards" / "emb-000000.tar").stat().st_size == size
    with caplog.at_level(logging.WARNING, logger="mmprep.data.sources"):
        got = {s["__key__"]: s for s in ShardStream(str(out), shuffle=False)}
    assert sorted(k for k, s in got.items() if "jpg_emb.npy" in s) == [f"item{i:04d}" for i in range(4, 8)]
    assert "embeddings jpg_emb of 1 shard(s) (emb-000000.tar...) were made from an earlier build" in caplog.text


# -- 4: ShardStream state after a finished epoch --------------------------------------------------------

def test_stream_state_after_a_finished_epoch_resumes_at_the_next(tmp_path):
    """The state saved after an in-process epoch said epoch 0, 0 consumed: a restore replayed the epoch."""
    write_uneven_shards(tmp_path, (3, 4))
    ds = ShardStream(str(tmp_path), shuffle=True, buffer=4, seed=0, world=1, rank=0)
    first = [s["__key__"] for s in ds]
    state = ds.state_dict()
    assert (state["epoch"], state["skip"], ds.epoch) == (1, {0: 0}, 1)
    reference = ShardStream(str(tmp_path), shuffle=True, buffer=4, seed=0, world=1, rank=0)
    reference.set_epoch(1)
    expected = [s["__key__"] for s in reference]
    assert expected != first and sorted(expected) == sorted(first)
    restored = ShardStream(str(tmp_path), shuffle=True, buffer=4, seed=0, world=1, rank=0)
    restored.load_state_dict(state)
    assert [s["__key__"] for s in restored] == expected
    assert [s["__key__"] for s in ds] == expected  # iterating again reads the next epoch too
    loader = StreamLoader(ShardStream(str(tmp_path), shuffle=True, buffer=4, seed=0, world=1, rank=0), batch_size=2)
    list(loader)
    assert loader.state_dict()["epoch"] == state["epoch"]


# -- 5: non-tar and compressed shards -------------------------------------------------------------------

def test_non_tar_and_compressed_shards_are_config_errors_naming_them(tmp_path):
    good = tmp_path / "d" / "a-good.tar"
    _foreign_tar(good, [(f"k{i}", [("txt", b"x"), ("cls", b"1")]) for i in range(4)])
    text = tmp_path / "d" / "b-text.tar"
    text.write_bytes(b"hello world\n" * 100)
    with pytest.raises(ConfigError) as err:
        ShardStream(str(tmp_path / "d"))
    assert str(err.value) == (f"source: shard {text} is not a tar file: its first 512 bytes are no tar header "
                              "(they start b'hello world\\nhell')")
    packed = tmp_path / "c.tar.gz"
    packed.write_bytes(gzip.compress(good.read_bytes()))
    with pytest.raises(ConfigError) as err:
        ShardStream(str(packed))
    assert str(err.value) == (f"source: shard {packed} is gzip-compressed: compressed shards are not supported "
                              "(samples are read by byte range); decompress it to a plain .tar")
    assert len(ShardStream(str(good))) == 4


def test_train_on_a_garbage_shard_exits_2_naming_it(tmp_path):
    (tmp_path / "d").mkdir()
    _foreign_tar(tmp_path / "d" / "good.tar", [(f"k{i}", [("txt", b"x"), ("cls", str(i % 2).encode())])
                                               for i in range(4)])
    (tmp_path / "d" / "zz-bad.tar").write_bytes(bytes(range(256)) * 8)
    cfg = tmp_path / "train.yaml"
    cfg.write_text(json.dumps({"data": {"source": str(tmp_path / "d"), "val_fraction": 0.0},
                               "modalities": {"t": {"field": "txt", "encoder": "mlp"}},
                               "train": {"epochs": 1, "out": str(tmp_path / "run"), "progress": False}}))
    res = run_cli("train", str(cfg), "-q")
    assert res.returncode == 2, res.stderr
    assert f"mmprep: config error: data.source: shard {tmp_path}/d/zz-bad.tar is not a tar file" in res.stderr
    assert "Traceback" not in res.stderr


# -- 6: collate dtype -----------------------------------------------------------------------------------

def test_int_then_float_collates_to_float_whatever_the_order():
    """The first value chose the dtype: 1 then 0.75 became [1, 0] int64."""
    for values in ([1, 0.75], [0.75, 1], [True, 0.5]):
        out = PadCollate()([{"__key__": str(i), "s.json": v} for i, v in enumerate(values)])
        assert out["s.json"].dtype == torch.float32 and out["s.json"].tolist() == [float(v) for v in values]
    out = PadCollate()([{"__key__": "a"}, {"__key__": "b", "s.json": 2}, {"__key__": "c", "s.json": 0.5}])
    assert out["s.json"].dtype == torch.float32 and out["s.json"].isnan().tolist() == [True, False, False]
    assert out["s.json"][1:].tolist() == [2.0, 0.5] and out["s.json.present"].tolist() == [False, True, True]
    ints = PadCollate()([{"__key__": "a", "c": True}, {"__key__": "b", "c": 3}])
    assert ints["c"].dtype == torch.long and ints["c"].tolist() == [1, 3]


# -- 7: two samples with one key ------------------------------------------------------------------------

def test_two_samples_with_one_key_are_both_delivered(tmp_path):
    """Matched by key, the first was lost and the second delivered twice (webdataset delivers both)."""
    path = _foreign_tar(tmp_path / "dup.tar", [("a", [("txt", b"first")]), ("z", [("txt", b"z")]),
                                               ("a", [("txt", b"second")])])
    got = [(s["__key__"], s["txt"]) for s in ShardStream(str(path), shuffle=False)]
    assert got == [("a", "first"), ("z", "z"), ("a", "second")]
    ds = ShardStream(str(path), shuffle=False, chunk_bytes=1)  # one read per sample
    assert [s["txt"] for s in ds] == ["first", "z", "second"]


# -- 8: cnn on one tiny image ---------------------------------------------------------------------------

@pytest.mark.parametrize("size", [[2, 2], [4, 4]])
def test_cnn_trains_on_a_last_batch_of_one_tiny_image(tmp_path, size):
    """41 samples in batches of 8 end with a batch of one; at image_size <= 4 its feature map is 1x1 and
    BatchNorm2d raised "Expected more than 1 value per channel when training"."""
    write_fusion_shards(tmp_path / "shards", n=41, per_shard=41)
    doc = {"data": {"source": str(tmp_path / "shards"), "batch_size": 8, "val_fraction": 0.0},
           "modalities": {"image": {"field": "jpg", "encoder": "cnn", "image_size": size}},
           "train": {"epochs": 1, "out": str(tmp_path / "run"), "progress": False, "resume": False}}
    run = Run(parse_config(doc), tmp_path / "run")
    norm = run.model.encoders["image"].net[4]
    result = run.fit()
    assert run.step == 6 and result["metrics"]["samples"] == 41
    assert int(norm.num_batches_tracked) == 5  # the batch of one left the running statistics alone
