"""Which samples a (rank, worker) reads in an epoch: the same count for every rank, always.

The epoch's global sequence is the shards in a seeded order (a permutation per epoch when shuffling),
each shard's samples in file order; ``N`` samples in all. Every rank gets ``q`` consecutive
positions of that sequence, ``q = ceil(N / world)`` with ``even="pad"`` (the last ranks wrap around
to the start, like ``DistributedSampler``) or ``q = N // world`` with ``even="drop"``. A rank's ``q``
positions are cut into one contiguous run per DataLoader worker (sizes differ by at most one).
Equal per-rank counts are what keeps DDP from hanging when shards hold uneven sample counts.
"""

from __future__ import annotations

import random
from typing import Literal

Even = Literal["pad", "drop"]


def rank_count(total: int, world: int, even: Even) -> int:
    """Samples each rank reads per epoch."""
    return -(-total // world) if even == "pad" else total // world


def worker_counts(per_rank: int, workers: int) -> list[int]:
    """Samples each DataLoader worker of a rank reads; they sum to ``per_rank``."""
    base, extra = divmod(per_rank, max(workers, 1))
    return [base + (1 if w < extra else 0) for w in range(max(workers, 1))]


def shard_order(n_shards: int, *, epoch: int, seed: int, shuffle: bool) -> list[int]:
    order = list(range(n_shards))
    if shuffle:
        random.Random(f"shards:{seed}:{epoch}").shuffle(order)
    return order


def worker_start(total: int, *, world: int, rank: int, workers: int, worker: int, even: Even) -> tuple[int, int]:
    """``(start, length)``: where this worker's run begins in the epoch's global sequence (before wrapping
    modulo ``total``) and how many positions it holds."""
    per_rank = rank_count(total, world, even)
    wc = worker_counts(per_rank, workers)
    return rank * per_rank + sum(wc[:worker]), wc[worker]


def segments(counts: list[int], *, epoch: int, seed: int, shuffle: bool, world: int, rank: int, workers: int,
             worker: int, even: Even) -> list[tuple[int, int, int]]:
    """``(shard index, first sample, stop)`` runs this worker reads, in order.

    ``counts[i]`` is the number of samples in shard ``i``.
    """
    total = sum(counts)
    if total == 0:
        return []
    start, length = worker_start(total, world=world, rank=rank, workers=workers, worker=worker, even=even)
    return runs(counts, shard_order(len(counts), epoch=epoch, seed=seed, shuffle=shuffle), start, length)


def runs(counts: list[int], order: list[int], start: int, length: int) -> list[tuple[int, int, int]]:
    """``(shard index, first sample, stop)`` runs covering ``length`` positions of the global sequence
    (shards in ``order``) from position ``start``, wrapping around to its beginning as often as needed."""
    total = sum(counts)
    if total == 0:
        return []
    starts = []  # global position where each shard (in epoch order) begins
    pos = 0
    for i in order:
        starts.append(pos)
        pos += counts[i]
    out: list[tuple[int, int, int]] = []
    while length > 0:
        start %= total
        # find the shard holding ``start``
        lo, hi = 0, len(order) - 1
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if starts[mid] <= start:
                lo = mid
            else:
                hi = mid - 1
        shard = order[lo]
        first = start - starts[lo]
        take = min(length, counts[shard] - first)
        if take > 0:
            out.append((shard, first, first + take))
        start += take
        length -= take
    return out
