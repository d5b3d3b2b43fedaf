"""Bad samples in real shards: errors name shard, key and field; ``on_error="skip"`` drops exactly them,
keeps the order of the rest, counts them, and resume stays exact (review findings)."""

from __future__ import annotations

import io
import json
import logging
import tarfile
from pathlib import Path

import cv2
import numpy as np
import pytest

from mmprep.data import DecodeError, Decoder, PadCollate, ShardStream, StreamLoader, decode_label
from mmprep.errors import ConfigError
from tests.conftest import build

SIZES = (5, 7, 4, 6)
BAD = {"s1/k0006": ("jpg", b"\xff\xd8\xff\xe0 this is not a JPEG"),  # shard 1
       "s2/k0013": ("cls", b"2.5"),  # shard 2
       "s2/k0014": ("cls", b"cat\n"),  # shard 2, right after the other one
       "s3/k0021": ("jpg", b"")}  # shard 3, the very last sample of the sequence


def _jpeg(k: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((6, 8, 3), k * 10 % 255, np.uint8))
    assert ok
    return buf.tobytes()


def _write(directory: Path, *, bad: bool) -> list[str]:
    """Shards ``d-00000N.tar`` (stdlib tarfile); with ``bad`` the members in BAD replace good ones."""
    directory.mkdir(parents=True, exist_ok=True)
    keys, k = [], 0
    for i, n in enumerate(SIZES):
        with tarfile.open(directory / f"d-{i:06d}.tar", "w", format=tarfile.USTAR_FORMAT) as tar:
            for _ in range(n):
                key = f"s{i}/k{k:04d}"
                members = {"jpg": _jpeg(k), "cls": str(k % 5).encode(), "txt": f"caption {k}".encode()}
                if bad and key in BAD:
                    field, data = BAD[key]
                    members[field] = data
                for ext, data in members.items():
                    info = tarfile.TarInfo(f"{key}.{ext}")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
                keys.append(key)
                k += 1
    return keys


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list[str]]:
    root = tmp_path_factory.mktemp("review")
    keys = _write(root / "good", bad=False)
    assert _write(root / "bad", bad=True) == keys
    return root / "good", root / "bad", keys


def _stream(d: Path, **kw) -> ShardStream:
    kw.setdefault("seed", 7)
    kw.setdefault("buffer", 5)
    return ShardStream(str(d), fields=["jpg", "cls", "txt"], **kw)


def _loader(d: Path, workers: int, **kw) -> StreamLoader:
    return StreamLoader(_stream(d, **kw), batch_size=3, num_workers=workers, collate_fn=PadCollate())


def _keys(loader: StreamLoader) -> list[str]:
    return [k for batch in loader for k in batch["__key__"]]


# -- the errors say where --------------------------------------------------------------------------------------
@pytest.mark.parametrize("key", sorted(BAD))
def test_decode_error_names_shard_key_and_field(dirs, key):
    _, bad_dir, _ = dirs
    field, _ = BAD[key]
    shard = str(bad_dir / f"d-00000{key[1]}.tar")
    ds = _stream(bad_dir, shuffle=False, keys={key})
    with pytest.raises(DecodeError) as info:
        list(ds)
    err = info.value
    assert (err.shard, err.key, err.field) == (shard, key, field)
    assert shard in str(err) and repr(key) in str(err) and repr(field) in str(err)
    assert isinstance(err, ValueError) and isinstance(err.__cause__, ValueError)  # the original is kept
    if field == "cls":
        assert "class label" in str(err) and "integer" in str(err)
    else:
        assert "image" in str(err)


def test_decode_error_through_dataloader_workers(dirs):
    _, bad_dir, _ = dirs
    loader = _loader(bad_dir, 2, shuffle=False)
    with pytest.raises(DecodeError) as info:
        _keys(loader)
    text = str(info.value)  # re-raised in the main process from the worker's traceback text
    assert "d-00000" in text and ".tar" in text and "field" in text and "sample 's" in text


def test_default_is_raise_and_on_error_is_checked(dirs):
    _, bad_dir, _ = dirs
    assert _stream(bad_dir).on_error == "raise"
    with pytest.raises(ConfigError, match="on_error"):
        _stream(bad_dir, on_error="ignore")


# -- skip: exactly the bad samples go, the rest keep their order, repeats make up the count ---------------------
def _made_up(d: Path, workers: int, worker: int, epoch: int, n: int) -> list[str]:
    """The ``n`` good samples that stand in for skipped ones: the epoch's sequence in file order from
    the worker's first sample on, bad ones passed over, wrapping around."""
    ref = _stream(d, buffer=0)  # shards in the epoch's order, samples in file order, no buffer
    ref.set_epoch(epoch)
    sequence = [key for key, _ in ref.raw_samples()]
    ref.set_epoch(epoch)
    run = [key for key, _ in ref.raw_samples(workers, worker)]
    start = sequence.index(run[0])
    good = [sequence[(start + i) % len(sequence)] for i in range(len(sequence))]
    good = [k for k in good if k not in BAD]
    return [good[i % len(good)] for i in range(n)]


def test_skip_in_process_is_the_good_stream_without_the_bad_samples_then_repeats(dirs, caplog):
    good_dir, bad_dir, keys = dirs
    for epoch in (0, 1):
        reference = _stream(good_dir)
        reference.set_epoch(epoch)
        expected = [s["__key__"] for s in reference if s["__key__"] not in BAD]
        expected += _made_up(good_dir, 1, 0, epoch, len(BAD))
        ds = _stream(bad_dir, on_error="skip")
        ds.set_epoch(epoch)
        with caplog.at_level(logging.WARNING, logger="mmprep.data"):
            caplog.clear()
            got = [s["__key__"] for s in ds]
        assert got == expected and len(got) == len(keys) == len(ds)
        assert ds.skipped == len(BAD)
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == len(BAD)  # one warning line per skipped sample, naming it
        for key, (field, _) in BAD.items():
            assert sum(repr(key) in line and repr(field) in line and "d-00000" in line for line in lines) == 1


def _per_worker(d: Path, workers: int) -> list[list[str]]:
    """The keys each plan worker reads, in its (shuffled) order: the tar layer never decodes."""
    ds = _stream(d)
    return [[key for key, _ in ds.raw_samples(workers, w)] for w in range(workers)]


@pytest.mark.parametrize("workers", [0, 2])
def test_skip_through_loader_delivers_every_good_sample_in_order(dirs, workers):
    good_dir, bad_dir, keys = dirs
    loader = _loader(bad_dir, workers, on_error="skip")
    got = _keys(loader)
    assert len(got) == len(keys) and sum(1 for _ in _loader(bad_dir, workers, on_error="skip")) == len(loader)
    assert set(got) == set(keys) - set(BAD)
    assert loader.skipped == len(BAD)  # the trailing bad sample too
    for w, run in enumerate(_per_worker(bad_dir, max(workers, 1))):
        # each worker's samples: its order minus the bad ones, then as many repeats as it skipped
        bad = sum(k in BAD for k in run)
        mine = [k for k in run if k not in BAD] + _made_up(good_dir, max(workers, 1), w, 0, bad)
        batches = [b["__key__"] for b in _loader(bad_dir, workers, on_error="skip")]
        assert [k for b in batches[w::max(workers, 1)] for k in b] == mine
    if workers == 0:
        assert got == [k for k in _keys(_loader(good_dir, 0)) if k not in BAD] + _made_up(good_dir, 1, 0, 0, len(BAD))


def stopped(loader, stop: int) -> tuple[list[str], dict]:
    """The keys of the loader's first ``stop`` batches and its state then, through JSON (as a checkpoint
    file holds it: integer keys come back as strings, restored here)."""
    seen: list[str] = []
    for i, batch in enumerate(loader):
        seen += batch["__key__"]
        if i + 1 == stop:
            state = loader.state_dict()
            break
    return seen, json.loads(json.dumps(state), object_hook=lambda d: {int(k) if k.isdigit() else k: v
                                                                      for k, v in d.items()})


# -- resume stays exact with skipping --------------------------------------------------------------------------
@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("stop", [1, 2, 3, 4, 5, 6, 7])
def test_resume_with_skipping_gives_the_uninterrupted_rest(dirs, workers, stop):
    _, bad_dir, _ = dirs
    ref = _loader(bad_dir, workers, on_error="skip")
    ref.set_epoch(1)
    reference = _keys(ref)
    first = _loader(bad_dir, workers, on_error="skip")
    first.set_epoch(1)
    seen, state = stopped(first, stop)
    resumed = _loader(bad_dir, workers, on_error="skip")
    resumed.load_state_dict(state)
    assert resumed.skipped == sum(state["skipped"].values())
    rest = _keys(resumed)
    assert seen + rest == reference
    assert resumed.skipped == len(BAD) and resumed.epoch == 2


def test_dataset_state_dict_with_skipping(dirs):
    _, bad_dir, _ = dirs
    full = [s["__key__"] for s in _stream(bad_dir, on_error="skip")]
    for n in range(1, len(full)):
        ds = _stream(bad_dir, on_error="skip")
        it = iter(ds)
        head = [next(it)["__key__"] for _ in range(n)]
        state = ds.state_dict()
        again = _stream(bad_dir, on_error="skip")
        again.load_state_dict(state)
        assert head + [s["__key__"] for s in again] == full
        assert again.skipped == len(BAD)


# -- .cls accepts what the build writes ------------------------------------------------------------------------
@pytest.mark.parametrize("raw,value", [(b"3", 3), (b" 3\n", 3), (b"-1", -1), (b"+2", 2), (b"3.0", 3), (b"7.", 7),
                                       (b"1e2", 100), (b"true", 1), (b"false", 0), (b"True", 1), (b"False", 0)])
def test_cls_accepts_integers_integral_floats_and_booleans(raw, value):
    assert decode_label(raw) == value and type(decode_label(raw)) is int


@pytest.mark.parametrize("raw,reason", [(b"2.5", "fractional"), (b"cat", "not a number"), (b"", "empty"),
                                        (b"nan", "not a number"), (b"1e400", "out of range"), (b"1_000", "not a")])
def test_cls_rejects_the_rest_clearly(raw, reason):
    with pytest.raises(ValueError, match=reason):
        decode_label(raw)
    with pytest.raises(DecodeError, match=r"sample 'k', field 'cls': ValueError: class label"):
        Decoder()("k", {"cls": raw})


def test_cls_values_written_by_a_build_decode(tmp_path):
    rows = [{"key": "a", "txt": "x", "cls": 3}, {"key": "b", "txt": "y", "cls": 4.0},
            {"key": "c", "txt": "z", "cls": True}, {"key": "d", "txt": "w", "cls": " 5 "},
            {"key": "e", "txt": "v", "cls": 2.5}]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    doc = {"name": "cls", "stages": [{"stage": "text.decode"}], "output": {"name": "cls", "max_samples": 10}}
    build(doc, manifest, tmp_path / "out")
    ds = ShardStream(str(tmp_path / "out"), fields=["cls"], shuffle=False, keys={"a", "b", "c", "d"})
    assert {s["__key__"]: s["cls"] for s in ds} == {"a": 3, "b": 4, "c": 1, "d": 5}
    with pytest.raises(DecodeError, match=r"cls-000000\.tar: sample 'e', field 'cls'.*2\.5.*fractional"):
        list(ShardStream(str(tmp_path / "out"), fields=["cls"], shuffle=False, keys={"e"}))
