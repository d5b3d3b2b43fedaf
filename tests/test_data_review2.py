"""Loader review 2, on shards made by ``mmprep build``: ``on_error="skip"`` keeps every rank and worker at
its planned count (skips used to make ranks yield fewer batches, and a DDP job hung at the next
collective), resume stays exact through the repeats, one shard over many ranks."""

from __future__ import annotations

import json
import multiprocessing as mp
import socket
from pathlib import Path

import pytest

from mmprep.data import DecodeError, PadCollate, ShardStream, StreamLoader
from mmprep.errors import ConfigError
from tests.conftest import build
from tests.test_data_review import stopped

N = 19
BAD = {"k03", "k04", "k09", "k17"}  # .cls 2.5: the build keeps it, the loader cannot decode it


def _build(out: Path, n: int, bad: set[str], max_samples: int) -> list[str]:
    rows = [{"key": f"k{i:02d}", "txt": f"caption {i}", "cls": 2.5 if f"k{i:02d}" in bad else i % 3}
            for i in range(n)]
    manifest = out.parent / f"{out.name}.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    doc = {"name": "r", "stages": [{"stage": "text.decode"}], "output": {"name": "r", "max_samples": max_samples}}
    build(doc, manifest, out)
    return [r["key"] for r in rows]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    out = tmp_path_factory.mktemp("review2") / "out"
    keys = _build(out, N, BAD, 4)  # shards of 4, 4, 4, 4, 3 samples
    assert len(list((out / "shards").glob("*.tar"))) == 5
    return out, keys


def _stream(out: Path, **kw) -> ShardStream:
    kw.setdefault("seed", 5)
    kw.setdefault("buffer", 3)
    return ShardStream(str(out), fields=["txt", "cls"], **kw)


def _loader(out: Path, workers: int, **kw) -> StreamLoader:
    return StreamLoader(_stream(out, **kw), batch_size=2, num_workers=workers, collate_fn=PadCollate())


def _expected(out: Path, bad: set[str], *, workers: int, epoch: int = 0, **kw) -> list[list[str]]:
    """Each plan worker's samples: its (shuffled) run minus the bad ones, then one stand-in per skipped
    sample: the epoch's sequence in file order from the worker's first position on, bad ones passed over."""
    whole = _stream(out, buffer=0)
    whole.set_epoch(epoch)
    sequence = [key for key, _ in whole.raw_samples()]
    result = []
    for w in range(workers):
        ds = _stream(out, **kw)
        ds.set_epoch(epoch)
        run = [key for key, _ in ds.raw_samples(workers, w)]
        plain = _stream(out, **{**kw, "buffer": 0})
        plain.set_epoch(epoch)
        first = [key for key, _ in plain.raw_samples(workers, w)][:1]
        got = [k for k in run if k not in bad]
        if first and len(got) < len(run):
            start = sequence.index(first[0])
            good = [k for k in (sequence[(start + i) % len(sequence)] for i in range(len(sequence))) if k not in bad]
            got += [good[i % len(good)] for i in range(len(run) - len(got))]
        result.append(got)
    return result


def _batches(loader: StreamLoader) -> list[list[str]]:
    return [b["__key__"] for b in loader]


@pytest.mark.parametrize("even", ["pad", "drop"])
@pytest.mark.parametrize("workers", [0, 2])
def test_skip_keeps_every_rank_at_its_planned_count(built, workers, even):
    out, keys = built
    seen = []
    for rank in range(3):
        loader = _loader(out, workers, world=3, rank=rank, even=even, on_error="skip")
        batches = _batches(loader)
        got = [k for b in batches for k in b]
        assert len(got) == len(loader.dataset) == (7 if even == "pad" else 6)
        assert len(batches) == len(loader)  # every rank steps the same number of times: no DDP hang
        assert not set(got) & BAD
        w = max(workers, 1)
        expected = _expected(out, BAD, workers=w, world=3, rank=rank, even=even)
        assert [[k for b in batches[i::w] for k in b] for i in range(w)] == expected
        seen += got
    assert set(seen) == set(keys) - BAD if even == "pad" else set(seen) < set(keys) - BAD


def test_skip_counts_hold_in_every_epoch(built):
    out, _ = built
    loader = _loader(out, 2, world=3, rank=2, on_error="skip")
    for epoch in range(4):
        loader.set_epoch(epoch)
        batches = _batches(loader)
        assert len(batches) == len(loader) == 4 and sum(map(len, batches)) == 7
        expected = _expected(out, BAD, workers=2, epoch=epoch, world=3, rank=2)
        assert [[k for b in batches[i::2] for k in b] for i in range(2)] == expected


@pytest.mark.parametrize("workers", [0, 2])
def test_resume_at_every_batch_with_stand_ins(built, workers):
    """Stopping anywhere, inside the repeats too, and restoring gives the uninterrupted rest."""
    out, _ = built
    kw = {"world": 3, "rank": 2, "on_error": "skip"}  # rank 2 holds bad samples and wraps around
    ref = _loader(out, workers, **kw)
    ref.set_epoch(1)
    reference = [k for b in _batches(ref) for k in b]
    assert len(reference) == 7
    for stop in range(1, len(ref)):
        first = _loader(out, workers, **kw)
        first.set_epoch(1)
        seen, state = stopped(first, stop)
        resumed = _loader(out, workers, **kw)
        resumed.load_state_dict(state)
        assert seen + [k for b in _batches(resumed) for k in b] == reference, stop
        assert resumed.epoch == 2


def test_in_process_resume_inside_the_stand_ins(built):
    out, _ = built
    full = [s["__key__"] for s in _stream(out, on_error="skip")]
    assert len(full) == N
    for n in range(1, N):
        ds = _stream(out, on_error="skip")
        it = iter(ds)
        head = [next(it)["__key__"] for _ in range(n)]
        again = _stream(out, on_error="skip")
        again.load_state_dict(json.loads(json.dumps(ds.state_dict()), object_hook=lambda d: {
            int(k) if k.isdigit() else k: v for k, v in d.items()}))
        assert head + [s["__key__"] for s in again] == full, n
        assert again.skipped == len(BAD)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, port: int, source: str, workers: int, out: mp.Queue) -> None:
    from datetime import timedelta

    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", world_size=3, rank=rank,
                            timeout=timedelta(seconds=30))
    try:
        loader = _loader(Path(source), workers, on_error="skip")
        steps = 0
        for batch in loader:  # one all_reduce per step, as DDP's gradient sync does
            t = torch.tensor([float(len(batch["__key__"]))])
            dist.all_reduce(t)
            steps += 1
        out.put((rank, steps, loader.skipped))
    except RuntimeError as exc:  # a collective that timed out: report it instead of hanging the test
        out.put((rank, -1, repr(exc)))
    finally:
        dist.destroy_process_group()


@pytest.mark.parametrize("workers", [0, 2])
def test_three_gloo_ranks_with_skipped_samples_step_equally(built, workers):
    pytest.importorskip("torch.distributed")
    out, _ = built
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_rank, args=(r, port, str(out), workers, queue)) for r in range(3)]
    for p in procs:
        p.start()
    results = sorted(queue.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=30)
    # 19 samples: 7 per rank in 4 batches of 2; in epoch 0's order rank 0 holds k04, rank 1 k03 and k09,
    # rank 2 k17 and (wrapping around to the start) k04 again
    assert results == [(0, 4, 1), (1, 4, 2), (2, 4, 2)]


@pytest.mark.parametrize("workers", [0, 2])
def test_one_shard_many_ranks_a_rank_whose_share_is_all_bad(tmp_path, workers):
    out = tmp_path / "one"
    keys = _build(out, 5, {"k02"}, 10)  # one shard of five samples
    got = {}
    for rank in range(8):  # more ranks than samples: each gets one, ranks 5..7 wrap around
        loader = StreamLoader(ShardStream(str(out), fields=["cls"], shuffle=False, world=8, rank=rank,
                                          on_error="skip"), batch_size=4, num_workers=workers)
        batches = [b["__key__"] for b in loader]
        assert len(batches) == len(loader) == 1
        got[rank] = batches[0]
    # rank 2's only sample is bad: the next good one of the sequence stands in for it
    assert got == {0: ["k00"], 1: ["k01"], 2: ["k03"], 3: ["k03"], 4: ["k04"], 5: ["k00"], 6: ["k01"], 7: ["k03"]}
    assert keys == ["k00", "k01", "k02", "k03", "k04"]


def test_nothing_decodes_is_an_error_not_a_loop(tmp_path):
    out = tmp_path / "bad"
    _build(out, 3, {"k00", "k01", "k02"}, 10)
    with pytest.raises(DecodeError, match=r"none of the 3 samples of the epoch decodes.*class label"):
        list(ShardStream(str(out), fields=["cls"], on_error="skip"))


# -- resume with other workers or ranks ----------------------------------------------------------------------
def _roundtrip(state: dict) -> dict:
    return json.loads(json.dumps(state), object_hook=lambda d: {int(k) if k.isdigit() else k: v for k, v in d.items()})


def test_state_between_epochs_resumes_with_other_workers_batch_size_and_ranks(built):
    """A checkpoint at an epoch's end (what the trainer writes by default) was refused after a restart with
    more DataLoader workers or ranks ('saved with num_workers=0'), although no position depends on them."""
    out, keys = built
    first = _loader(out, 0, on_error="skip")
    first.set_epoch(2)
    _batches(first)
    state = _roundtrip(first.state_dict())
    assert (state["epoch"], state["batches"]) == (3, 0)
    for rank in range(2):
        resumed = StreamLoader(_stream(out, world=2, rank=rank, on_error="skip"), batch_size=3, num_workers=2,
                               collate_fn=PadCollate())
        resumed.load_state_dict(state)
        fresh = StreamLoader(_stream(out, world=2, rank=rank, on_error="skip"), batch_size=3, num_workers=2,
                             collate_fn=PadCollate())
        fresh.set_epoch(3)
        assert resumed.epoch == 3 and _batches(resumed) == _batches(fresh)


def test_mid_epoch_state_still_needs_the_same_layout(built):
    out, _ = built
    first = _loader(out, 0, on_error="skip")
    next(iter(first))
    state = _roundtrip(first.state_dict())
    with pytest.raises(ConfigError) as err:
        _loader(out, 2).load_state_dict(state)
    assert str(err.value) == ("state: saved mid-epoch with num_workers=0, this loader has 2; resume mid-epoch with "
                              "the saved value")
    with pytest.raises(ConfigError, match=r"^state: saved with world=1 but this stream has world=2$"):
        _loader(out, 0, world=2, rank=0).load_state_dict(state)


def test_one_shard_more_ranks_than_samples(tmp_path):
    """even='drop' with fewer samples than ranks gave every rank an empty epoch, silently (a training loop
    then ran zero steps per epoch); 'pad' gives each rank one sample."""
    out = tmp_path / "one"
    _build(out, 5, set(), 10)
    with pytest.raises(ConfigError) as err:
        ShardStream(str(out), world=8, rank=3, even="drop")
    assert str(err.value) == ("even: 'drop' leaves each of the 8 ranks no sample of the 5; use even='pad' (ranks "
                              "then repeat samples)")
    assert len(ShardStream(str(out), world=5, rank=4, even="drop")) == 1
    got = [[s["__key__"] for s in ShardStream(str(out), fields=["txt"], world=8, rank=r)] for r in range(8)]
    assert got == [["k00"], ["k01"], ["k02"], ["k03"], ["k04"], ["k00"], ["k01"], ["k02"]]


def test_big_endian_npy_decodes(tmp_path):
    """numpy.save keeps a big-endian array's byte order; torch.from_numpy refused it, so a valid member
    was a DecodeError (or, with on_error='skip', a silently repeated sample)."""
    import io

    import numpy as np
    import torch

    from mmprep.shardwriter import ShardWriter

    arrays = {"a": np.arange(6, dtype=">f4").reshape(2, 3), "b": np.array([1, -2], dtype=">i8")}
    writer = ShardWriter(tmp_path, "be-000000")
    for key, array in arrays.items():
        buf = io.BytesIO()
        np.save(buf, array)
        writer.write(key, [("x.npy", buf.getvalue())])
    writer.close()
    got = {s["__key__"]: s["x.npy"] for s in ShardStream(str(tmp_path), shuffle=False)}
    assert torch.equal(got["a"], torch.arange(6, dtype=torch.float32).reshape(2, 3))
    assert torch.equal(got["b"], torch.tensor([1, -2]))


def test_pad_collate_promotes_dtypes_like_stack():
    """Padded fields took the first sample's dtype: an int array first truncated the float arrays after
    it (2.7 -> 2), so a batch's values depended on its order."""
    import torch

    a, b = torch.tensor([1, 2], dtype=torch.int64), torch.tensor([2.7, 0.5, 1.25], dtype=torch.float32)
    for pair in ((a, b), (b, a)):
        out = PadCollate()([{"__key__": str(i), "x": v} for i, v in enumerate(pair)])
        assert out["x"].dtype == torch.float32
        assert {tuple(row[:n].tolist()) for row, n in zip(out["x"], out["x.lengths"], strict=True)} == {
            (1.0, 2.0), (2.7000000476837158, 0.5, 1.25)}
    same = PadCollate()([{"__key__": "0", "x": a}, {"__key__": "1"}, {"__key__": "2", "x": a.to(torch.int32)}])
    assert same["x"].dtype == torch.int64 and same["x.present"].tolist() == [True, False, True]
