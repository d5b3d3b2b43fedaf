"""``StreamLoader``: a DataLoader over a :class:`ShardStream` whose ``state_dict`` works mid-epoch.

With ``num_workers=W`` each worker yields its own run of samples and the DataLoader hands out
batches round-robin over the workers that still have data (``in_order=True``). Knowing each
worker's sample count, the number of batches consumed tells exactly how many samples each worker
delivered; restoring tells every worker to skip that many. Resume needs the same ``num_workers``,
``batch_size``, seed, world size and rank as the saved run (checked). A new DataLoader starts its
round-robin at worker 0, so on restore DataLoader worker ``i`` reads plan worker ``(i + r) % W`` where
``r`` is the worker whose batch was due next: the interleaving then continues exactly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from torch.utils.data import DataLoader

from mmprep.data.stream import ShardStream
from mmprep.errors import ConfigError


def batch_order(counts: list[int], batch_size: int) -> list[int]:
    """The worker that yields each batch of an epoch: round-robin over workers that still have data."""
    n_batches = [-(-c // batch_size) for c in counts]
    return [w for rnd in range(max(n_batches, default=0)) for w, nb in enumerate(n_batches) if rnd < nb]


def delivered_per_worker(counts: list[int], batch_size: int, batches: int) -> list[int]:
    """Samples each worker has delivered after ``batches`` batches of round-robin (last batch may be short)."""
    taken = [0] * len(counts)
    for w in batch_order(counts, batch_size)[:batches]:
        taken[w] += 1
    return [min(t * batch_size, c) for t, c in zip(taken, counts, strict=True)]


def next_worker(counts: list[int], batch_size: int, batches: int) -> int:
    """The worker due to yield batch number ``batches`` (0 when the epoch is over)."""
    order = batch_order(counts, batch_size)
    return order[batches] if batches < len(order) else 0


class StreamLoader:
    """Iterate batches; ``state_dict()`` any time between batches; ``load_state_dict()`` before iterating."""

    def __init__(self, dataset: ShardStream, *, batch_size: int, num_workers: int = 0,
                 collate_fn: Callable[[list[dict[str, Any]]], Any] | None = None, pin_memory: bool = False,
                 prefetch_factor: int | None = None):
        self.dataset = dataset
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.collate_fn = collate_fn
        self.pin_memory = pin_memory
        self.prefetch_factor = prefetch_factor
        self.epoch = dataset.epoch
        self._batches = 0

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        return sum(-(-c // self.batch_size) for c in self.dataset.worker_counts(max(self.num_workers, 1)))

    @property
    def position(self) -> int:
        """Batches of the current epoch already handed out (restored ones included)."""
        return self._batches

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self._batches = 0
        self.epoch = epoch
        self.dataset.set_epoch(epoch)

    def __iter__(self) -> Iterator[Any]:
        self.dataset.set_epoch(self.epoch)
        if self._batches:
            counts = self.dataset.worker_counts(max(self.num_workers, 1))
            done = delivered_per_worker(counts, self.batch_size, self._batches)
            # a fresh DataLoader starts its round-robin at worker 0: let worker 0 play the one that is due
            rotate = next_worker(counts, self.batch_size, self._batches)
            self.dataset.set_position(self.epoch, dict(enumerate(done)), rotate=rotate)
        kwargs: dict[str, Any] = {}
        if self.num_workers and self.prefetch_factor:
            kwargs["prefetch_factor"] = self.prefetch_factor
        loader = DataLoader(self.dataset, batch_size=self.batch_size, num_workers=self.num_workers,
                            collate_fn=self.collate_fn, pin_memory=self.pin_memory, **kwargs)
        for batch in loader:
            self._batches += 1
            yield batch
        self._batches = 0
        self.epoch += 1
        self.dataset.set_epoch(self.epoch)

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "batches": self._batches, "batch_size": self.batch_size,
                "num_workers": self.num_workers, **self.dataset.fingerprint()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("batch_size", "num_workers"):
            if state.get(key) != getattr(self, key):
                raise ConfigError("state", f"saved with {key}={state.get(key)!r}, this loader has "
                                  f"{getattr(self, key)!r}")
        self.dataset._check(state)
        self.epoch = int(state["epoch"])
        self._batches = int(state["batches"])
