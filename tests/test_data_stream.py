"""ShardStream / StreamLoader: resume with shuffling, equal per-rank counts, determinism, fsspec."""

from __future__ import annotations

from pathlib import Path

import pytest

from mmprep.data import PadCollate, ShardStream, StreamLoader, delivered_per_worker
from mmprep.errors import ConfigError
from mmprep.testing.fusion import write_uneven_shards


@pytest.fixture(scope="module")
def shards(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    d = tmp_path_factory.mktemp("uneven")
    return d, write_uneven_shards(d)


def _loader(d: Path, workers: int, **kw) -> StreamLoader:
    ds = ShardStream(str(d / "part-{000000..000006}.tar"), shuffle=True, buffer=6, seed=3, **kw)
    return StreamLoader(ds, batch_size=2, num_workers=workers, collate_fn=PadCollate())


@pytest.mark.parametrize("workers", [0, 1, 2])
@pytest.mark.parametrize("stop", [1, 5, 9])
def test_resume_mid_epoch_gives_the_uninterrupted_rest(shards, workers, stop):
    d, keys = shards
    ref_loader = _loader(d, workers)
    ref_loader.set_epoch(1)
    reference = [k for batch in ref_loader for k in batch["__key__"]]
    assert sorted(reference) == sorted(keys)  # one rank: every sample exactly once

    first = _loader(d, workers)
    first.set_epoch(1)
    seen = []
    for i, batch in enumerate(first):
        seen += batch["__key__"]
        if i + 1 == stop:
            state = first.state_dict()
            break
    resumed = _loader(d, workers)
    resumed.load_state_dict(state)
    rest = [k for batch in resumed for k in batch["__key__"]]
    assert seen + rest == reference
    assert resumed.epoch == 2  # the restored epoch ran to its end


def test_dataset_state_dict_without_loader(shards):
    d, _ = shards
    full = [s["__key__"] for s in ShardStream(str(d), seed=5, buffer=4)]
    ds = ShardStream(str(d), seed=5, buffer=4)
    it = iter(ds)
    head = [next(it)["__key__"] for _ in range(11)]
    state = ds.state_dict()
    again = ShardStream(str(d), seed=5, buffer=4)
    again.load_state_dict(state)
    assert head + [s["__key__"] for s in again] == full


def test_shuffle_is_seeded_per_epoch(shards):
    d, _ = shards
    ds = ShardStream(str(d), seed=1, buffer=8)
    e0 = [s["__key__"] for s in ds]
    assert e0 == [s["__key__"] for s in ShardStream(str(d), seed=1, buffer=8)]
    ds.set_epoch(1)
    e1 = [s["__key__"] for s in ds]
    assert e1 != e0 and sorted(e1) == sorted(e0)
    plain = [s["__key__"] for s in ShardStream(str(d), shuffle=False)]
    assert plain == sorted(plain, key=lambda k: int(k.split("/k")[1]))  # file order


@pytest.mark.parametrize("even,expected", [("pad", 11), ("drop", 10)])
@pytest.mark.parametrize("workers", [1, 2])
def test_three_ranks_over_seven_uneven_shards_get_equal_counts(shards, even, expected, workers):
    d, keys = shards
    per_rank = []
    for rank in range(3):
        loader = StreamLoader(ShardStream(str(d), world=3, rank=rank, even=even, seed=0, buffer=4), batch_size=4,
                              num_workers=workers, collate_fn=PadCollate())
        got = [k for batch in loader for k in batch["__key__"]]
        assert len(got) == len(loader.dataset) == expected
        assert len(loader) == sum(-(-c // 4) for c in loader.dataset.worker_counts(workers))
        per_rank.append(got)
    every = [k for got in per_rank for k in got]
    if even == "pad":
        assert set(every) == set(keys) and len(every) == 33  # 2 samples repeated to fill the last rank
    else:
        assert len(set(every)) == 30  # disjoint, one sample left out


def test_rank_from_env(shards, monkeypatch):
    d, _ = shards
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "2")
    ds = ShardStream(str(d))
    assert (ds.world, ds.rank, len(ds)) == (3, 2, 11)


def test_delivered_per_worker_round_robin():
    # worker 0: 3 batches of 2 (5 samples), worker 1: 1 batch (2 samples); order w0 w1 w0 w0
    assert delivered_per_worker([5, 2], 2, 0) == [0, 0]
    assert delivered_per_worker([5, 2], 2, 2) == [2, 2]
    assert delivered_per_worker([5, 2], 2, 3) == [4, 2]
    assert delivered_per_worker([5, 2], 2, 4) == [5, 2]


def test_resume_refuses_other_settings(shards):
    d, _ = shards
    first = _loader(d, 1)
    next(iter(first))
    state = first.state_dict()  # mid-epoch: between epochs only the epoch counts
    with pytest.raises(ConfigError, match="num_workers"):
        _loader(d, 2).load_state_dict(state)
    other = StreamLoader(ShardStream(str(d), seed=99, buffer=6), batch_size=2, num_workers=1)
    with pytest.raises(ConfigError, match="seed"):
        other.load_state_dict(state)


def test_sources_glob_list_and_fsspec_memory(shards):
    fsspec = pytest.importorskip("fsspec")
    d, keys = shards
    assert len(list(ShardStream(str(d / "part-*.tar"), shuffle=False))) == 31
    assert len(list(ShardStream([str(d / "part-000000.tar"), str(d / "part-000002.tar")], shuffle=False))) == 14
    fs = fsspec.filesystem("memory")
    for i in range(3):
        fs.pipe(f"/mmprep-test/part-{i:06d}.tar", (d / f"part-{i:06d}.tar").read_bytes())
    got = [s["__key__"] for s in ShardStream("memory:///mmprep-test/part-*.tar", shuffle=False)]
    assert got == keys[:15]
    with pytest.raises(ConfigError, match="no shards match"):
        ShardStream(str(d / "nothing-*.tar"))
