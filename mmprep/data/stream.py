"""``ShardStream``: an IterableDataset over WebDataset shards that is balanced, seeded and resumable.

Per epoch: shards in a seeded order, a contiguous run of the global sequence per rank and worker
(see :mod:`mmprep.data.plan`), a seeded shuffle buffer per worker, then decoding of the chosen
fields only. Everything before decoding depends only on ``(seed, epoch, world, rank, workers,
worker)``, so the stream is a pure function of those and the shards.

Resume: the state is ``epoch`` plus how many samples each worker already delivered. Restoring
replays the shuffle buffer on sample *positions* only (no I/O), then reads the few samples that sit
in the buffer at that point and continues reading sequentially: the rest of the stream equals the
uninterrupted one. Use :class:`mmprep.data.loader.StreamLoader` to get this through a DataLoader.

Bad samples: a member that fails to decode raises :class:`~mmprep.data.decode.DecodeError` (shard,
key, field), or with ``on_error="skip"`` the sample is skipped, counted and logged, and once the
worker has read its share it repeats good samples (its own run's first, in file order) until it has
delivered exactly its planned count: every rank still yields ``len(ds)`` samples, so DDP ranks step
together. A worker's position counts the shuffle-buffer *positions* it consumed (skipped ones
included), then the repeat candidates it tried, so a restore re-skips the same samples and the rest
stays exact. With ``on_error="drop"`` (a single rank: training on one process, evaluation) bad
samples are skipped and counted the same way, and nothing is repeated.
"""

from __future__ import annotations

import logging
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from torch.utils.data import IterableDataset, get_worker_info

from mmprep.data import plan
from mmprep.data.decode import DecodeError, Decoder
from mmprep.data.sources import Shard, open_binary, resolve
from mmprep.data.tarscan import group_located, group_samples, scan_spans
from mmprep.errors import ConfigError

log = logging.getLogger("mmprep.data")
Item = tuple[int, int]  # (shard index, sample index in that shard)
Progress = tuple[int, int, int]  # one worker's (positions consumed, samples delivered, samples skipped)
Tag = tuple[int, int, int, int]  # (plan worker, *Progress) after a sample
OnError = Literal["raise", "skip", "drop"]


def dist_info() -> tuple[int, int]:
    """``(world, rank)`` from ``torch.distributed`` when initialized, else ``WORLD_SIZE``/``RANK`` env vars."""
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_world_size(), dist.get_rank()
    except (ImportError, RuntimeError):
        pass
    return int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))


class ShuffleBuffer:
    """Reservoir-style buffer: once full, each push returns a random resident and keeps the newcomer."""

    def __init__(self, size: int, rng: random.Random):
        self.size = size
        self.rng = rng
        self.items: list[Any] = []

    def push(self, item: Any) -> Any | None:
        if self.size <= 1:
            return item
        if len(self.items) < self.size:
            self.items.append(item)
            return None
        j = self.rng.randrange(self.size)
        out, self.items[j] = self.items[j], item
        return out

    def pop(self) -> Any:
        j = self.rng.randrange(len(self.items))
        out = self.items[j]
        self.items[j] = self.items[-1]
        self.items.pop()
        return out


class ShardStream(IterableDataset):
    """Samples from shards, as dicts ``{"__key__": str, field: decoded value, ...}``.

    ``source``: path, glob, brace pattern (``data-{000000..000009}.tar``), URL, list, or a build's
    OUT directory (index + embedding sidecars). ``fields``: which fields to decode (None = all but
    pickles). ``buffer``: shuffle buffer size in samples (ignored unless ``shuffle``). ``even``:
    ``pad`` repeats samples so every rank gets ``ceil(N / world)``, ``drop`` gives ``N // world``.
    ``world``/``rank`` default to :func:`dist_info`. ``chunk_bytes``: bytes read per ``read`` call.
    ``on_error``: a member that fails to decode raises :class:`DecodeError` (``"raise"``), or its
    sample is skipped, counted in ``skipped``, logged as one warning line and made up for by a
    repeated good sample at the end of the worker's run, so ``len(ds)`` still holds (``"skip"``), or
    only skipped (``"drop"``: one rank only; ``len(ds)`` is then an upper bound, and nothing repeats).
    """

    def __init__(self, source: str | Path | list[str | Path], *, fields: list[str] | tuple[str, ...] | None = None,
                 shuffle: bool = True, buffer: int = 1000, seed: int = 0, even: Literal["pad", "drop"] = "pad",
                 world: int | None = None, rank: int | None = None, decoder: Decoder | None = None,
                 chunk_bytes: int = 4 << 20, keys: set[str] | None = None, on_error: OnError = "raise"):
        if even not in ("pad", "drop"):
            raise ConfigError("even", f"must be 'pad' or 'drop', got {even!r}")
        if on_error not in ("raise", "skip", "drop"):
            raise ConfigError("on_error", f"must be 'raise', 'skip' or 'drop', got {on_error!r}")
        self.on_error = on_error
        self.shards: list[Shard] = resolve(source)
        if keys is not None:
            for shard in self.shards:
                shard.spans = [s for s in shard.spans if s.key in keys]
            self.shards = [s for s in self.shards if s.spans]
            if not self.shards:
                raise ConfigError("keys", "no sample of the source is in the given key subset")
        self.decoder = decoder or Decoder(fields=tuple(fields) if fields is not None else None)
        self.shuffle = shuffle
        self.buffer = buffer if shuffle else 0
        self.seed = seed
        self.even = even
        auto_world, auto_rank = dist_info()
        self.world = world if world is not None else auto_world
        self.rank = rank if rank is not None else auto_rank
        if not 0 <= self.rank < self.world:
            raise ConfigError("rank", f"rank {self.rank} is outside world size {self.world}")
        if on_error == "drop" and self.world > 1:
            raise ConfigError("on_error", f"'drop' would leave the {self.world} ranks different sample counts "
                              "(DDP then hangs at a collective): use 'skip', which repeats good samples in "
                              "the skipped ones' place")
        if even == "drop" and sum(self.counts) < self.world:  # every epoch would be empty on every rank
            raise ConfigError("even", f"'drop' leaves each of the {self.world} ranks no sample of the "
                              f"{sum(self.counts)}; use even='pad' (ranks then repeat samples)")
        self.chunk_bytes = chunk_bytes
        self.epoch = 0
        self._resume: dict[int, Progress] = {}  # where each plan worker starts
        self._rotate = 0
        self._progress: Progress = (0, 0, 0)  # of the worker iterated in this process (num_workers=0 use)
        self.skipped = 0
        """Samples skipped by ``on_error="skip"`` in this epoch by this process (restored ones included).
        With DataLoader workers this copy stays 0: read :attr:`StreamLoader.skipped`."""
        self._sidecar_spans: dict[str, dict[str, tuple[int, int]]] = {}

    # -- sizes ---------------------------------------------------------------------------------
    @property
    def counts(self) -> list[int]:
        return [len(s.spans) for s in self.shards]

    def __len__(self) -> int:
        """Samples this rank reads per epoch (the same on every rank)."""
        return plan.rank_count(sum(self.counts), self.world, self.even)

    def worker_counts(self, workers: int) -> list[int]:
        return plan.worker_counts(len(self), workers)

    # -- state ---------------------------------------------------------------------------------
    def set_epoch(self, epoch: int) -> None:
        """Start ``epoch`` from its beginning (clears a restored position unless it is for this epoch)."""
        if epoch != self.epoch:
            self._resume = {}
            self._rotate = 0
            self._progress = (0, 0, 0)
            self.skipped = 0
        self.epoch = epoch

    def set_position(self, epoch: int, skip: dict[int, int], *, rotate: int = 0,
                     skipped: dict[int, int] | None = None, delivered: dict[int, int] | None = None) -> None:
        """Next iteration starts ``epoch`` after ``skip[worker]`` positions already consumed per worker.

        A position is a sample read, delivered or (``on_error="skip"``) skipped, or a candidate tried
        to make up for a skipped one; ``skipped[worker]`` says how many samples of its share were
        skipped (0 if absent), ``delivered[worker]`` how many it delivered (default: positions minus
        skipped, which holds until the worker starts making up for skipped samples). ``rotate``:
        DataLoader worker ``i`` reads the samples of plan worker ``(i + rotate) % W``.
        """
        skipped = skipped or {}
        delivered = delivered or {}
        self.epoch = epoch
        self._resume = {}
        for w, n in skip.items():
            lost = int(skipped.get(w, 0))
            self._resume[int(w)] = (int(n), int(delivered.get(w, int(n) - lost)), lost)
        self._rotate = rotate
        self._progress = self._resume.get(0, (0, 0, 0))
        self.skipped = self._progress[2]

    def state_dict(self) -> dict[str, Any]:
        """Position when iterated in this process (``num_workers=0``). With workers, use StreamLoader."""
        return {"epoch": self.epoch, "skip": {0: self._progress[0]}, "delivered": {0: self._progress[1]},
                "skipped": {0: self._progress[2]}, **self.fingerprint()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._check(state)
        self.set_position(state["epoch"], state["skip"], skipped=state.get("skipped"),
                          delivered=state.get("delivered"))

    def fingerprint(self) -> dict[str, Any]:
        return {"seed": self.seed, "world": self.world, "rank": self.rank, "samples": sum(self.counts),
                "shuffle": self.shuffle, "buffer": self.buffer, "even": self.even}

    def _check(self, state: dict[str, Any], *, ignore: tuple[str, ...] = ()) -> None:
        mine = self.fingerprint()
        for k, v in mine.items():
            if k in state and k not in ignore and state[k] != v:
                raise ConfigError("state", f"saved with {k}={state[k]!r} but this stream has {k}={v!r}")

    # -- iteration -----------------------------------------------------------------------------
    def __iter__(self) -> Iterator[dict[str, Any]]:
        """In-process iteration (no DataLoader). Once the epoch has run to its end the stream moves on to
        the next one, as :class:`StreamLoader` does: ``state_dict()`` then resumes there, and iterating
        again reads the next epoch (``skipped`` stays readable until then)."""
        for sample, _tag in self.tagged():
            if sample is not None:
                yield sample
        skipped = self.skipped
        self.set_epoch(self.epoch + 1)
        self.skipped = skipped

    def tagged(self) -> Iterator[tuple[dict[str, Any] | None, Tag]]:
        """``(sample, (plan worker, positions, delivered, skipped))`` after each delivered sample, then
        ``(None, tag)`` once at the end.

        What :class:`StreamLoader` iterates to know each worker's exact position. A worker always
        delivers its whole share (``worker_counts``): with ``on_error="skip"`` every skipped sample is
        made up for once the share has been read, by repeating good samples (see :meth:`_refill`).
        """
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        worker = (worker + self._rotate) % workers
        pos, delivered, skipped = self._resume.get(worker, (0, 0, 0))
        self.skipped = skipped
        for (shard_i, _), (key, raw) in self._entries(workers, worker, skip=pos):
            pos += 1
            try:
                sample = self._decode(shard_i, key, raw)
            except DecodeError as exc:
                if self.on_error == "raise":
                    raise
                skipped += 1
                self.skipped = skipped
                log.warning("on_error=%s: skipped a sample (%d in this epoch by worker %d of rank %d%s): %s",
                            self.on_error, skipped, worker, self.rank,
                            "; a good sample is repeated in its place at the end of the worker's run"
                            if self.on_error == "skip" else "", exc)
                continue
            delivered += 1
            self._progress = (pos, delivered, skipped)
            yield sample, (worker, pos, delivered, skipped)
        for sample, *at in self._refill(workers, worker, pos, delivered) if self.on_error == "skip" else ():
            pos, delivered = at
            self._progress = (pos, delivered, skipped)
            yield sample, (worker, pos, delivered, skipped)
        self._progress = (pos, delivered, skipped)
        yield None, (worker, pos, delivered, skipped)
        # the epoch is over for this process: a later iteration starts it afresh
        self._resume = {}
        self._rotate = 0
        self._progress = (0, 0, 0)

    def _decode(self, shard_i: int, key: str, raw: dict[str, bytes]) -> dict[str, Any]:
        shard = self.shards[shard_i]
        return self.decoder(key, raw, shard=shard.url, sidecars=shard.sidecars)

    def _refill(self, workers: int, worker: int, pos: int, delivered: int
                ) -> Iterator[tuple[dict[str, Any], int, int]]:
        """``(sample, positions, delivered)`` making up for the samples ``on_error="skip"`` skipped.

        Candidates are the epoch's global sequence from this worker's first position on (its own run
        first, in file order, then the samples after it, wrapping around): good ones are delivered
        again until the worker has delivered its share, so every worker and every rank yields exactly
        its planned count and DDP ranks step together. Position ``share + k`` is the ``k``-th candidate,
        so resume stays exact. Candidates that fail again are not counted as new skips (each bad
        sample of the share was counted once); a whole cycle of the sequence without one good sample
        raises the last :class:`DecodeError`.
        """
        total = sum(self.counts)
        if total == 0:
            return
        start, share = plan.worker_start(total, world=self.world, rank=self.rank, workers=workers, worker=worker,
                                         even=self.even)
        order = plan.shard_order(len(self.counts), epoch=self.epoch, seed=self.seed, shuffle=self.shuffle)
        misses = 0
        while delivered < share:
            items: list[Item] = [(s, i) for s, a, b in plan.runs(self.counts, order, start + pos - share,
                                                                   share - delivered) for i in range(a, b)]
            for shard_i, (key, raw) in zip((i for i, _ in items), self._read(items), strict=True):
                pos += 1
                try:
                    sample = self._decode(shard_i, key, raw)
                except DecodeError as exc:
                    misses += 1
                    if misses >= total:
                        raise DecodeError(f"on_error=skip: none of the {total} samples of the epoch decodes, "
                                          f"nothing can stand in for the skipped ones; the last: {exc}",
                                          shard=exc.shard, key=exc.key, field=exc.field) from exc
                    log.debug("on_error=skip: a repeat candidate fails too: %s", exc)
                    continue
                misses = 0
                delivered += 1
                yield sample, pos, delivered

    def located(self, workers: int = 1, worker: int = 0) -> Iterator[tuple[Shard, str, dict[str, bytes]]]:
        """Undecoded ``(shard, key, {ext: bytes})`` for one worker: the shard lets a caller decode with
        errors that name it (``decoder(key, raw, shard=shard.url, sidecars=shard.sidecars)``)."""
        for (shard_i, _), (key, raw) in self._entries(workers, worker, skip=0):
            yield self.shards[shard_i], key, raw

    def raw_samples(self, workers: int = 1, worker: int = 0, *, skip: int = 0
                    ) -> Iterator[tuple[str, dict[str, bytes]]]:
        """Undecoded ``(key, {ext: bytes})`` for one worker, after ``skip`` already-consumed positions."""
        for _item, payload in self._entries(workers, worker, skip=skip):
            yield payload

    def _entries(self, workers: int, worker: int, *, skip: int
                 ) -> Iterator[tuple[Item, tuple[str, dict[str, bytes]]]]:
        segs = plan.segments(self.counts, epoch=self.epoch, seed=self.seed, shuffle=self.shuffle,
                             world=self.world, rank=self.rank, workers=workers, worker=worker, even=self.even)
        items: list[Item] = [(s, i) for s, a, b in segs for i in range(a, b)]
        rng = random.Random(f"buffer:{self.seed}:{self.epoch}:{self.rank}:{worker}")
        buf = ShuffleBuffer(self.buffer, rng)
        cursor = emitted = 0
        while emitted < skip and cursor < len(items):  # replay on positions only
            if buf.push(items[cursor]) is not None:
                emitted += 1
            cursor += 1
        while emitted < skip and buf.items:
            buf.pop()
            emitted += 1
        if buf.items:
            buf.items = list(zip(buf.items, self._fetch(buf.items), strict=True))
        for entry in zip(items[cursor:], self._read(items[cursor:]), strict=True):
            out = buf.push(entry)
            if out is not None:
                yield out
        while buf.items:
            yield buf.pop()

    # -- reading -------------------------------------------------------------------------------
    def _read(self, items: list[Item]) -> Iterator[tuple[str, dict[str, bytes]]]:
        """Payloads of ``items`` in order, reading runs of consecutive samples with one call each."""
        i = 0
        handles: dict[int, Any] = {}
        try:
            while i < len(items):
                shard_i, first = items[i]
                spans = self.shards[shard_i].spans
                j, last = i, first
                limit = spans[first].offset + self.chunk_bytes
                while (j + 1 < len(items) and items[j + 1] == (shard_i, last + 1)
                       and spans[last + 1].end <= limit):
                    j, last = j + 1, last + 1
                if shard_i not in handles:
                    for fh in handles.values():
                        fh.close()
                    handles = {shard_i: open_binary(self.shards[shard_i].url)}
                yield from self._chunk(handles[shard_i], shard_i, first, last + 1)
                i = j + 1
        finally:
            for fh in handles.values():
                fh.close()

    def _fetch(self, items: list[Item]) -> list[tuple[str, dict[str, bytes]]]:
        """Payloads of scattered items (the shuffle buffer after a restore), in the given order."""
        out = []
        for shard_i, idx in items:
            with open_binary(self.shards[shard_i].url) as fh:
                out.extend(self._chunk(fh, shard_i, idx, idx + 1))
        return out

    def _chunk(self, fh: Any, shard_i: int, first: int, stop: int) -> list[tuple[str, dict[str, bytes]]]:
        shard = self.shards[shard_i]
        spans = shard.spans[first:stop]
        fh.seek(spans[0].offset)
        data = fh.read(spans[-1].end - spans[0].offset)
        try:  # by offset, not key: a foreign shard may hold two samples with one key (webdataset yields both)
            got = {offset: (key, fields) for offset, key, fields in group_located(data, spans[0].offset)}
        except (EOFError, ValueError) as exc:  # a truncated or garbled tar: name it
            kind = EOFError if isinstance(exc, EOFError) else ValueError
            raise kind(f"shard {shard.url}, samples {spans[0].key!r}..{spans[-1].key!r}: {exc}") from exc
        extra = {name: self._sidecar(url, [s.key for s in spans]) for name, url in shard.sidecars.items()}
        result = []
        for span in spans:
            key, fields = got.get(span.offset, (None, None))
            if key != span.key or fields is None:
                raise ValueError(f"{shard.url}: sample {span.key!r} not found at byte {span.offset}")
            for car in extra.values():
                fields.update(car.get(span.key, {}))
            result.append((span.key, fields))
        return result

    def _sidecar(self, url: str, keys: list[str]) -> dict[str, dict[str, bytes]]:
        """Members of sidecar shard ``url`` for ``keys`` (keys absent from the sidecar are skipped)."""
        if url not in self._sidecar_spans:
            with open_binary(url) as fh:
                self._sidecar_spans[url] = {s.key: (s.offset, s.end) for s in scan_spans(fh)}
        where = [self._sidecar_spans[url][k] for k in keys if k in self._sidecar_spans[url]]
        if not where:
            return {}
        lo, hi = min(w[0] for w in where), max(w[1] for w in where)
        with open_binary(url) as fh:
            fh.seek(lo)
            data = fh.read(hi - lo)
        wanted = set(keys)
        return {k: f for k, f in group_samples(data, lo) if k in wanted}
