"""Three real gloo ranks over seven uneven shards: every rank steps the same number of times, no hang."""

from __future__ import annotations

import multiprocessing as mp
import socket
from pathlib import Path

import pytest

from mmprep.testing.fusion import write_uneven_shards


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _rank(rank: int, port: int, source: str, out: mp.Queue) -> None:
    import torch
    import torch.distributed as dist

    from mmprep.data import PadCollate, ShardStream, StreamLoader

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", world_size=3, rank=rank)
    try:
        loader = StreamLoader(ShardStream(source, seed=0, buffer=4), batch_size=2, num_workers=0,
                              collate_fn=PadCollate())
        steps, keys = 0, []
        for batch in loader:  # an all_reduce per step, as DDP's gradient sync does: unequal counts would hang
            t = torch.tensor([float(len(batch["__key__"]))])
            dist.all_reduce(t)
            steps += 1
            keys += batch["__key__"]
        out.put((rank, loader.dataset.world, steps, keys))
    finally:
        dist.destroy_process_group()


def test_three_gloo_ranks_step_equally(tmp_path: Path):
    pytest.importorskip("torch.distributed")
    keys = write_uneven_shards(tmp_path)
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    port = _free_port()
    procs = [ctx.Process(target=_rank, args=(r, port, str(tmp_path), out)) for r in range(3)]
    for p in procs:
        p.start()
    results = sorted(out.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(timeout=30)
        assert p.exitcode == 0
    assert [r[1] for r in results] == [3, 3, 3]  # world size taken from torch.distributed
    assert [r[2] for r in results] == [6, 6, 6]  # 11 samples per rank in batches of 2
    assert set().union(*(r[3] for r in results)) == set(keys)
