"""Build one shard: read its records, run the stages over them in small batches, write the tar.

This is the unit of work that executors ship to processes or Dask workers, so what it takes
(:class:`ShardTask`) and returns (a dict, saved as the shard's part file) is plain data.

Caching, per sample: ``hashes[i]`` is the content key of the sample's state before stage ``i``
(``hashes[0]`` hashes the input bytes, the record's origin and the optional-field policy; each next
one adds a stage's name, version and parameters). The output of every cacheable stage is stored
under its key (with the errors so far), and the finished members of each record under the last key
plus the output settings; a rerun starts from the deepest hit.
"""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mmprep import serialize
from mmprep.atomic import temp_name
from mmprep.cache import Cache, digest
from mmprep.codecs import encode_field, to_json
from mmprep.config import parse_validated, stage_fingerprint
from mmprep.corpus import Record
from mmprep.errors import Drop
from mmprep.keys import is_safe_key
from mmprep.loading import chain, input_hash, load_record
from mmprep.reuse import (
    PART_FORMAT,
    Previous,
    dump_entry,
    file_stamps,
    index_row,
    load_entry,
    part_paths,
    retried,
    row_line,
    write_rows,
)
from mmprep.sample import KEY, META, SOURCE, Sample
from mmprep.shardtask import ShardTask, stages_for
from mmprep.shardwriter import ShardWriter
from mmprep.stage import Stage, data_fields, summary_slots

_LOOKAHEAD = 4096  # copied records looked past for a batch to compute (each held as a small dict)


@dataclass
class Item:
    """One sample on its way through the stages; ``entry`` is the outcome of the record it came from."""

    sample: Sample
    hashes: list[str]
    entry: dict[str, Any]
    origin: str
    start: int = 0
    partial: bool = False
    errors: list[dict[str, Any]] = field(default_factory=list)  # this sample's own, carried through the cache


def _safe_load(data: bytes | None, loader: Any) -> Any:
    """A cache entry, or None when it is missing or unreadable (a torn write is just a miss)."""
    if data is None:
        return None
    try:
        return loader(data)
    except Exception:  # noqa: BLE001 - any corruption means: recompute
        return None


def _placed(sample: Sample, source: dict[str, str]) -> Sample:
    """A cached sample with this record's files as its ``__source__`` (if it has one)."""
    if SOURCE in sample:
        sample[SOURCE] = dict(source)
    return sample


def _located(errors: list[dict[str, Any]], source: dict[str, str]) -> list[dict[str, Any]]:
    """Cached errors with this record's file as their ``path`` (it is ``source[field]`` when made)."""
    return [{**err, "path": source[err["field"]]} if "path" in err and err.get("field") in source else err
            for err in errors]


class ShardBuilder:
    def __init__(self, task: ShardTask):
        self.task = task
        self.spec = parse_validated(task.pipeline)
        self.stages = stages_for(task)
        self.slots = summary_slots(self.stages)
        self.fps = [stage_fingerprint(s) for s in self.stages]
        self.out_fp = digest(to_json(self.spec.output.model_dump(mode="json")))
        self.policy = to_json(sorted(self.spec.output.optional))
        cache_all = self.spec.cache.stages == "all"
        self.cacheable = [cache_all or s.cacheable for s in self.stages]
        self.cache = Cache(task.cache_dir, read=task.read_cache)
        self.hashing = self.cache.root is not None and (self.spec.cache.final or any(self.cacheable))
        self.counters = {slot: {"in": 0, "out": 0, "skipped": 0, "cached": 0, "seconds": 0.0} for slot in self.slots}
        self._counting = threading.Lock()  # the one-batch-ahead thread counts too (see ``ahead``)
        self.summarizers = [s for s in self.stages if s.summarizes]
        # never resume past a summarizer
        self.resume_limit = next((i for i, s in enumerate(self.stages) if s.summarizes), len(self.stages))
        self.cached_records = 0
        self.reused_records = 0
        # a first stage that waits on the network (fetch) runs one batch ahead, in a thread, while the
        # other stages work on the batch before: downloads overlap decoding. Not with a summarizing
        # stage (it would see samples from two threads); counters are shared safely (``_bump``)
        self.ahead = bool(self.stages) and self.stages[0].io_bound and not self.summarizers
        self.out = Path(task.out_dir)
        self.progress_path = self.out / ".progress" / f"{task.name}.json"
        self._last_progress = 0.0

    def _bump(self, slot: str, key: str, n: float) -> None:
        with self._counting:
            self.counters[slot][key] += n

    # -- drops -------------------------------------------------------------------------------------
    def _error(self, item: Item, stage: str, drop: Drop, action: str) -> None:
        rec = {"key": item.sample[KEY], "source": item.origin, "stage": stage, "reason": drop.reason,
               "message": drop.message, "action": action}
        if drop.field:
            rec["field"] = drop.field
            path = item.sample.get(SOURCE, {}).get(drop.field)
            if path:
                rec["path"] = path
        if drop.transient:
            rec["transient"] = True
        item.errors.append(rec)

    def _survives(self, item: Item, stage: str, drop: Drop) -> bool:
        """Record a drop; True when the sample lives on (only an optional field went)."""
        if drop.field and drop.field in self.spec.output.optional:
            item.sample.pop(drop.field, None)
            item.partial = True
            self._error(item, stage, drop, "omitted")
            return True
        self._error(item, stage, drop, "dropped")
        item.entry["errors"].extend(item.errors)
        return False

    # -- the stage loop ------------------------------------------------------------------------------
    def run_stage(self, i: int, stage: Stage, items: list[Item]) -> list[Item]:
        slot = self.slots[i]
        todo = [n for n, it in enumerate(items) if it.start <= i and stage.applies(it.sample)]
        self._bump(slot, "skipped", sum(1 for it in items if it.start <= i) - len(todo))
        if not todo:
            return items
        t0 = time.perf_counter()
        results = dict(zip(todo, self._call(stage, [items[n].sample for n in todo]), strict=True))
        self._bump(slot, "seconds", time.perf_counter() - t0)
        self._bump(slot, "in", len(todo))
        out: list[Item] = []
        for n, item in enumerate(items):
            if n not in results:
                out.append(item)
                continue
            result = results[n]
            if isinstance(result, Drop):
                if self._survives(item, slot, result):
                    out.append(self._ran(i, item))
            elif isinstance(result, list):  # fan-out: clips, segments
                out += self._fan_out(i, item, result)
            else:
                item.sample = result
                out.append(self._ran(i, item))
        return out

    def _fan_out(self, i: int, item: Item, children: list[Sample]) -> list[Item]:
        slot = self.slots[i]
        if not children:
            self._survives(item, slot, Drop(f"{self.stages[i].name}.empty", "the stage produced no samples"))
            return []
        kids = []
        for child in children:
            key = child[KEY]
            if not is_safe_key(key):
                self._error(item, slot, Drop(f"{self.stages[i].name}.bad_key", f"child key {key!r}"), "dropped")
                continue
            hashes = item.hashes[: i + 1] + chain(digest(item.hashes[i + 1], key), self.fps[i + 1 :])
            kids.append(Item(sample=child, hashes=hashes, entry=item.entry, origin=item.origin, start=i + 1,
                             partial=item.partial))
        # the parent's errors are the record's once, not once per child (each child's row would repeat them)
        item.entry["errors"].extend(item.errors)
        self._bump(slot, "out", len(kids))
        if self.cacheable[i] and not retried(item.errors):
            blobs = {str(n): self._state(kid) for n, kid in enumerate(kids)}
            self.cache.put("s" + item.hashes[i + 1], serialize.dumps({"children": len(kids), "errors": item.errors,
                                                                      **blobs}))
        out = []
        for kid in kids:
            out += self._resume(kid, after=i + 1)
        return out

    def _state(self, item: Item) -> bytes:
        return serialize.dumps({"sample": serialize.dumps(item.sample), "errors": item.errors,
                                "partial": item.partial})

    def _ran(self, i: int, item: Item) -> Item:
        self._bump(self.slots[i], "out", 1)
        if self.cacheable[i] and not retried(item.errors):  # an omitted field may come next run
            self.cache.put("s" + item.hashes[i + 1], self._state(item))
        return item

    def _call(self, stage: Stage, samples: list[Sample]) -> list[Any]:
        if stage.batched:
            try:
                results = stage.process_batch([dict(s) for s in samples])
                if len(results) == len(samples):
                    return results
            except Exception:  # noqa: BLE001 - fall back to one at a time to isolate the bad sample
                pass
        out: list[Any] = []
        for sample in samples:
            try:
                out.append(stage.process(sample))
            except Drop as drop:
                out.append(drop)
            except Exception as exc:  # noqa: BLE001 - a bug or a library choking on one input
                where = traceback.extract_tb(exc.__traceback__)[-1]
                out.append(Drop(f"{stage.name}.error",
                                f"{type(exc).__name__}: {exc} ({Path(where.filename).name}:{where.lineno})"))
        return out

    def _resume(self, item: Item, *, after: int = 0, source: dict[str, str] | None = None) -> list[Item]:
        """Skip the stages whose output is cached: start after the deepest cached stage (never past a
        summarizing stage, which must see every sample). A cached fan-out gives back its children.

        ``source``: this record's files (``__source__``). A cached state names the files of the build
        that stored it, in another folder when builds share ``--cache``: its samples and errors get
        this record's paths back."""
        source = item.sample.get(SOURCE, {}) if source is None else source
        for i in range(min(self.resume_limit, len(self.stages)) - 1, after - 1, -1):
            if not self.cacheable[i]:
                continue
            doc = _safe_load(self.cache.get("s" + item.hashes[i + 1]), serialize.loads)
            if doc is None:
                continue
            if "children" in doc:
                if "errors" not in doc:  # written when every child carried its parent's errors: recompute
                    continue
                self._bump(self.slots[i], "cached", 1)
                item.entry["errors"].extend(_located(doc["errors"], source))
                kids = []
                for n in range(doc["children"]):
                    state = serialize.loads(doc[str(n)])
                    sample = _placed(serialize.loads(state["sample"]), source)
                    hashes = item.hashes[: i + 1] + chain(digest(item.hashes[i + 1], sample[KEY]), self.fps[i + 1 :])
                    kid = Item(sample=sample, hashes=hashes, entry=item.entry, origin=item.origin, start=i + 1,
                               partial=state["partial"], errors=_located(state["errors"], source))
                    kids += self._resume(kid, after=i + 1, source=source)
                return kids
            self._bump(self.slots[i], "cached", 1)
            item.sample = _placed(serialize.loads(doc["sample"]), source)
            item.errors, item.partial, item.start = _located(doc["errors"], source), doc["partial"], i + 1
            return [item]
        return [item]

    # -- output --------------------------------------------------------------------------------------
    def members(self, item: Item) -> list[tuple[str, bytes]] | None:
        sample, out = item.sample, self.spec.output
        missing = [f for f in out.required if f not in sample]
        if missing:
            return self._dropped(item, Drop("field.missing", f"required field(s) missing: {', '.join(missing)}",
                                            field=missing[0]))
        names = data_fields(sample)
        if out.fields is not None:
            names = [n for n in names if n in out.fields]
        members: list[tuple[str, bytes]] = []
        for name in names:
            try:
                members.append((name, encode_field(name, sample[name], out.encoding)))
            except Drop as drop:
                drop.field = drop.field or name
                if not self._survives(item, "output", drop):
                    return None
            except Exception as exc:  # noqa: BLE001 - an encoder choking on one value
                if not self._survives(item, "output", Drop("encode.error", f"{type(exc).__name__}: {exc}",
                                                           field=name)):
                    return None
        if not members:
            return self._dropped(item, Drop("sample.empty", "no field left to write"))
        meta = sample.setdefault(META, {})
        meta["status"] = "partial" if item.partial else "ok"
        if out.meta:
            try:
                members.append(("meta.json", to_json(meta).encode("utf-8")))
            except (TypeError, ValueError) as exc:
                return self._dropped(item, Drop("meta.not_json", str(exc)))
        return members

    def _dropped(self, item: Item, drop: Drop) -> None:
        self._survives(item, "output", drop)
        return None

    def _replay(self, samples: list[tuple[str, list[tuple[str, bytes]]]]) -> None:
        """Show summarizing stages the finished samples of a record that skipped the stages."""
        for stage in self.summarizers:
            for key, members in samples:
                stage.replay({KEY: key, **dict(members)})

    def _outcomes(self, records: list[Record], previous: Previous | None
                  ) -> Iterator[tuple[list[Record], dict[str, Any] | None]]:
        """The records in order, as ``(records, None)`` for a run of records copied from the previous build
        and ``([record], outcome)`` for each one computed. A copied record costs no stage work, so the
        records to compute are gathered past the copied ones into full batches: the changed 1% of a
        rerun reach a batched (GPU) stage ``batch_size`` at a time, not one by one between their copied
        neighbours."""
        copied = previous.reusable(records) if previous is not None else [False] * len(records)
        self.reused_records += sum(copied)
        for i, end, computed in self._computed(self._batches(records, copied, previous)):
            while i < end:
                if not copied[i]:
                    yield [records[i]], next(computed)
                    i += 1
                    continue
                run = i
                while i < end and copied[i]:
                    i += 1
                yield records[run:i], None

    def _batches(self, records: list[Record], copied: list[bool], previous: Previous | None
                 ) -> Iterator[tuple[int, int, list[Record]]]:
        """``(start, end, records to compute)``: each stretch of records that holds one batch to compute."""
        size = self.spec.execution.batch_size
        i, n = 0, len(records)
        while i < n:
            end, todo, passed = i, [], 0
            while end < n and len(todo) < size and passed < _LOOKAHEAD:
                if not copied[end]:
                    todo.append(records[end])
                elif self.summarizers:
                    self._replay(previous.samples(previous.rows[records[end].key]))
                passed += copied[end]
                end += 1
            yield i, end, todo
            i = end

    def _computed(self, batches: Iterator[tuple[int, int, list[Record]]]
                  ) -> Iterator[tuple[int, int, Iterator[dict[str, Any]]]]:
        """Each stretch with the outcomes of its batch, in order; with ``ahead``, the next batch is loaded
        and through the first stage (in a thread) while this one goes through the others."""
        if not self.ahead:
            for i, end, todo in batches:
                yield i, end, iter(self._process_batch(todo) if todo else ())
            return
        with ThreadPoolExecutor(1, thread_name_prefix="ahead") as thread:
            pending = None
            for i, end, todo in batches:
                started = thread.submit(self._start, todo, 1) if todo else None
                if pending is not None:
                    yield self._finished(*pending)
                pending = (i, end, started)
            if pending is not None:
                yield self._finished(*pending)

    def _finished(self, i: int, end: int, started: Future | None) -> tuple[int, int, Iterator[dict[str, Any]]]:
        if started is None:
            return i, end, iter(())
        entries, items = started.result()
        return i, end, iter(self._finish(entries, items, 1))

    def _process_batch(self, records: list[Record]) -> list[dict[str, Any]]:
        """The outcome of each record: the samples to write (several after a fan-out) and its errors."""
        return self._finish(*self._start(records, 0), 0)

    def _start(self, records: list[Record], through: int) -> tuple[list[dict[str, Any]], list[Item]]:
        """Load the records (or their finished outcome from the cache) and run the first ``through`` stages."""
        entries: list[dict[str, Any]] = []
        items: list[Item] = []
        for record in records:
            sample, problems = load_record(record)
            # hashing every input byte only pays when something will be looked up in the cache
            start = input_hash(sample, record.origin, self.policy, problems) if self.hashing else digest(sample[KEY])
            hashes = chain(start, self.fps)
            final_key = "f" + digest(hashes[-1], self.out_fp) if self.spec.cache.final else None
            cached = _safe_load(self.cache.get(final_key) if final_key else None, load_entry)
            if cached is not None:
                cached["errors"] = _located(cached["errors"], record.paths)
                if self.summarizers:
                    self._replay([(key, members) for key, members, _ in cached["samples"]])
                entries.append(cached)
                self.cached_records += 1
                continue
            entry: dict[str, Any] = {"samples": [], "errors": [], "cache_key": final_key}
            entries.append(entry)
            item = Item(sample=sample, hashes=hashes, entry=entry, origin=record.origin)
            # the first problem that drops the sample ends it: one record, one drop (no row per problem)
            if all(self._survives(item, "input", drop) for drop in problems):
                items += self._resume(item)
        for i in range(through):
            items = self.run_stage(i, self.stages[i], items)
        return entries, items

    def _finish(self, entries: list[dict[str, Any]], items: list[Item], first: int) -> list[dict[str, Any]]:
        """Run the stages from ``first`` on, and make each record's outcome (cached when final)."""
        for i in range(first, len(self.stages)):
            items = self.run_stage(i, self.stages[i], items)
        for item in items:
            members = self.members(item)
            if members is not None:
                item.entry["errors"].extend(item.errors)
                item.entry["samples"].append((item.sample[KEY], members, item.sample.get(META, {})))
        for entry in entries:
            key = entry.pop("cache_key", None)
            if key is not None and not retried(entry["errors"]):
                self.cache.put(key, dump_entry(entry))
        return entries

    def progress(self, done: int, errors: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if not self.task.progress or (not final and now - self._last_progress < 0.5):
            return
        self._last_progress = now
        tmp = temp_name(self.progress_path)
        tmp.write_text(json.dumps({"done": done, "errors": errors}))
        os.replace(tmp, self.progress_path)

    def _check_stopped(self) -> None:
        """Raise ``Stopped`` when the build that sent this shard was stopped (``ShardTask.stop_file``): a
        shard running on a remote Dask cluster cannot be cancelled, and would publish itself after the
        build ended, perhaps over the next build's."""
        if self.task.stop_file and os.path.exists(self.task.stop_file):
            raise Stopped(f"the build was stopped ({self.task.stop_file}): {self.task.name} is not published")

    def build(self) -> dict[str, Any]:
        task, spec = self.task, self.spec
        shards = self.out / "shards"
        previous = Previous(self.out, task.name, task.root) if task.reuse else None
        writer = ShardWriter(shards, task.name, max_bytes=spec.output.max_bytes)
        rows: list[str] = []  # index rows as JSON lines
        counts: list[int] = []  # rows per record
        errors: list[dict[str, Any]] = []
        done = reported = 0
        try:
            for stage in self.stages:
                stage.begin_shard()
            for run, entry in self._outcomes(task.records, previous):
                if entry is None:  # copied: their rows and errors as the previous build has them
                    lines, copied = previous.copy(writer, run, len(rows))
                    rows += lines
                    counts += copied
                    if previous.errors:  # few records have any: no loop over the run without them
                        for record in run:
                            errors += ({**err, "record": record.key} for err in previous.errors.get(record.key, ()))
                else:
                    record = run[0]
                    errors += ({**err, "record": record.key} for err in entry["errors"])
                    before = len(rows)
                    for key, members, meta in entry["samples"]:
                        info = writer.write(key, members)
                        rows.append(row_line(index_row(info, meta, record.key), info.size, info.shard, info.offset))
                    counts.append(len(rows) - before)
                done += len(run)
                if done - reported >= spec.execution.batch_size:
                    self.progress(done, len(errors))
                    self._check_stopped()
                    reported = done
            self._check_stopped()
            tars = writer.close()
        except BaseException:
            writer.abort()
            raise
        finally:
            if previous is not None:
                previous.close()
        for stale in shards.glob(f"{task.name}*.tar"):  # parts an earlier build had and this one has not
            if stale.name not in tars and (stale.stem == task.name or stale.stem[len(task.name):][:1] == "_"):
                stale.unlink(missing_ok=True)
        summaries = {slot: s.end_shard() for slot, s in zip(self.slots, self.stages, strict=True)}
        self.progress(done, len(errors), final=True)
        return {
            "format": PART_FORMAT, "name": task.name, "index": task.index, "plan": task.plan_hash,
            "pipeline": task.pipeline_hash, "root": task.root,
            "tars": tars, "tar_stamps": file_stamps(shards, tars), "records": len(task.records),
            "cached_records": self.cached_records, "reused_records": self.reused_records, "stages": self.counters,
            "cache_failures": self.cache.failed, "cache_failure": self.cache.failure,
            "summaries": {k: v for k, v in summaries.items() if v is not None},
            "stamps": {r.key: r.stamp for r in task.records}, "rows_per_record": counts, "rows": rows,
            "errors": errors,
            "rows_from": ({"digest": previous.rows_digest, "runs": previous.runs}
                          if previous is not None and previous.runs else None),
        }


class Stopped(RuntimeError):
    """The build that sent the shard was stopped while the shard ran."""


def build_shard(task: ShardTask) -> dict[str, Any]:
    """Entry point for executors: build the shard, then publish its index rows and its part file (the
    completion marker, written last)."""
    result = ShardBuilder(task).build()
    part, rows_path = part_paths(Path(task.out_dir), task.name)
    rows = result.pop("rows")
    digest = write_rows(rows_path, rows)
    if result["rows_from"]:  # for the merge to check that the runs describe this rows file
        result["rows_from"]["rows"] = digest
    result["samples"], result["rows_bytes"] = len(rows), rows_path.stat().st_size
    tmp = temp_name(part)
    tmp.write_text(json.dumps(result, default=str))  # ASCII: error paths may hold undecodable bytes
    os.replace(tmp, part)
    return {k: result[k] for k in ("name", "records", "tars")}
