"""``StreamLoader``: a DataLoader over a :class:`ShardStream` whose ``state_dict`` works mid-epoch.

With ``num_workers=W`` each worker yields its own run of samples and the DataLoader hands out
batches round-robin over the workers that still have data (``in_order=True``). Knowing each
worker's sample count, the number of batches consumed tells exactly how many samples each worker
delivered; restoring tells every worker to skip that many. Resume needs the same ``num_workers``,
``batch_size``, seed, world size and rank as the saved run (checked). A new DataLoader starts its
round-robin at worker 0, so on restore DataLoader worker ``i`` reads plan worker ``(i + r) % W`` where
``r`` is the worker whose batch was due next: the interleaving then continues exactly.

With ``on_error="skip"`` a worker still delivers its whole share (skipped samples are made up for
by repeats at the end of its run), but its position in the shard sequence runs ahead of the samples
it delivered: every batch also carries (through a wrapping collate function) its worker's position
after its last sample, and the state stores those positions with the delivered and skipped counts.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from torch.utils.data import DataLoader, IterableDataset, default_collate

from mmprep.data.stream import ShardStream, Tag
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


class _Tagged(IterableDataset):
    """``stream.tagged()``: samples with their worker's position, and an end marker per worker."""

    def __init__(self, stream: ShardStream):
        self.stream = stream

    def __iter__(self) -> Iterator[tuple[dict[str, Any] | None, Tag]]:
        return self.stream.tagged()


class _TagCollate:
    """Collates the samples of a tagged batch: ``(batch or None, tag of its last item)``."""

    def __init__(self, collate_fn: Callable[[list[dict[str, Any]]], Any] | None):
        self.collate_fn = collate_fn or default_collate

    def __call__(self, items: list[tuple[dict[str, Any] | None, Tag]]) -> tuple[Any, Tag]:
        samples = [sample for sample, _ in items if sample is not None]
        try:
            return (self.collate_fn(samples) if samples else None), items[-1][1]
        except StopIteration as exc:  # the DataLoader would take it for the end of the data: an epoch cut short
            keys = [s.get("__key__") for s in samples[:3]]
            raise RuntimeError(f"collate_fn raised StopIteration on the batch of samples {keys}...: a bug in "
                               "the collate function (a next() with nothing left)") from exc


class StreamLoader:
    """Iterate batches; ``state_dict()`` any time between batches; ``load_state_dict()`` before iterating.

    ``skipped``: samples the dataset's ``on_error="skip"`` skipped (and replaced by repeats) in the
    current epoch (or the one just finished), as far as the batches handed out tell; it is part of
    ``state_dict()``.
    """

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
        self._workers: dict[int, tuple[int, int, int]] = {}  # plan worker -> (positions, delivered, skipped)
        self._next = 0  # plan worker whose batch is due next
        self.skipped = 0

    def __len__(self) -> int:
        """Batches per epoch on this rank."""
        return sum(-(-c // self.batch_size) for c in self.dataset.worker_counts(max(self.num_workers, 1)))

    @property
    def position(self) -> int:
        """Batches of the current epoch already handed out (restored ones included)."""
        return self._batches

    def set_epoch(self, epoch: int) -> None:
        if epoch != self.epoch:
            self._restart()
        self.epoch = epoch
        self.dataset.set_epoch(epoch)

    def _restart(self) -> None:
        self._batches = 0
        self._workers = {}
        self._next = 0
        self.skipped = 0

    def __iter__(self) -> Iterator[Any]:
        self.dataset.set_epoch(self.epoch)
        workers = max(self.num_workers, 1)
        if self._workers:
            # a fresh DataLoader starts its round-robin at worker 0: let worker 0 play the one that is due
            self.dataset.set_position(self.epoch, {w: p[0] for w, p in self._workers.items()}, rotate=self._next,
                                      skipped={w: p[2] for w, p in self._workers.items()},
                                      delivered={w: p[1] for w, p in self._workers.items()})
        elif self._batches:  # a state saved before positions were recorded: nothing was skipped then
            counts = self.dataset.worker_counts(workers)
            done = delivered_per_worker(counts, self.batch_size, self._batches)
            rotate = next_worker(counts, self.batch_size, self._batches)
            self.dataset.set_position(self.epoch, dict(enumerate(done)), rotate=rotate)
        kwargs: dict[str, Any] = {}
        if self.num_workers and self.prefetch_factor:
            kwargs["prefetch_factor"] = self.prefetch_factor
        loader = DataLoader(_Tagged(self.dataset), batch_size=self.batch_size, num_workers=self.num_workers,
                            collate_fn=_TagCollate(self.collate_fn), pin_memory=self.pin_memory, **kwargs)
        for batch, (worker, *progress) in loader:
            self._workers[worker] = tuple(progress)
            self._next = (worker + 1) % workers
            self.skipped = sum(p[2] for p in self._workers.values())
            if batch is None:  # the worker's end marker (its last samples were all skipped, or none were left)
                continue
            self._batches += 1
            yield batch
        skipped = self.skipped
        self._restart()
        self.skipped = skipped  # readable until the next epoch starts
        self.epoch += 1
        self.dataset.set_epoch(self.epoch)

    def state_dict(self) -> dict[str, Any]:
        """Plain ints: epoch, batches handed out, each plan worker's ``positions`` / ``skipped`` counts,
        the worker due next, and the settings a restore must match."""
        return {"epoch": self.epoch, "batches": self._batches, "batch_size": self.batch_size,
                "num_workers": self.num_workers, "positions": {w: p[0] for w, p in self._workers.items()},
                "delivered": {w: p[1] for w, p in self._workers.items()},
                "skipped": {w: p[2] for w, p in self._workers.items()}, "next_worker": self._next,
                **self.dataset.fingerprint()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Continue where ``state`` was saved. Mid-epoch, the batch size, ``num_workers``, world size and
        rank must be the saved ones (they decide who reads what); a state saved between epochs (no batch
        of its epoch handed out yet, as a checkpoint at an epoch's end) only sets the epoch, so a job
        restarted with more workers or ranks resumes there."""
        layout = ("batch_size", "num_workers", "world", "rank")
        boundary = not int(state.get("batches", 0)) and not any((state.get("positions") or {}).values())
        if not boundary:
            for key in ("batch_size", "num_workers"):
                if state.get(key) != getattr(self, key):
                    raise ConfigError("state", f"saved mid-epoch with {key}={state.get(key)!r}, this loader has "
                                      f"{getattr(self, key)!r}; resume mid-epoch with the saved value")
        self.dataset._check(state, ignore=layout if boundary else ())
        self._restart()
        self.epoch = int(state["epoch"])
        self._batches = int(state["batches"])
        positions = state.get("positions") or {}
        delivered, skipped = state.get("delivered") or {}, state.get("skipped") or {}
        self._workers = {int(w): (int(n), int(delivered.get(w, n)), int(skipped.get(w, 0)))
                         for w, n in positions.items()}
        self._next = int(state.get("next_worker", 0))
        self.skipped = sum(p[2] for p in self._workers.values())
