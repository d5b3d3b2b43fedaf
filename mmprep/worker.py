"""Build one shard: read its records, run the stages over them in small batches, write the tar.

This is the unit of work that executors ship to processes or Dask workers, so what it takes
(:class:`ShardTask`) and returns (a dict, saved as the shard's part file) is plain data.

Caching, per sample: ``hashes[i]`` is the content key of the sample's state before stage ``i``
(``hashes[0]`` hashes the input bytes; each next one adds a stage's name, version and parameters).
The output of every ``cacheable`` stage is stored under its key, and the final members of each
record under the last key plus the output settings; a rerun starts from the deepest hit.
"""

from __future__ import annotations

import json
import os
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmprep import serialize
from mmprep.cache import Cache, digest
from mmprep.codecs import encode_field, to_json
from mmprep.config import instantiate, parse_pipeline, stage_fingerprint
from mmprep.corpus import Record
from mmprep.errors import Drop
from mmprep.sample import KEY, META, SOURCE, Sample
from mmprep.shardwriter import SampleInfo, ShardWriter
from mmprep.stage import Stage, data_fields, summary_slots

_STAGES: dict[str, list[Stage]] = {}  # per process: stages set up once per pipeline


@dataclass
class ShardTask:
    index: int
    name: str  # NAME-000003
    records: list[Record]
    pipeline: dict[str, Any]  # the validated spec, as JSON-able data
    pipeline_hash: str
    plan_hash: str
    out_dir: str
    cache_dir: str | None
    read_cache: bool = True
    previous: str | None = None  # the shard's part file from an earlier build with the same pipeline


@dataclass
class Item:
    """One sample on its way through the stages; ``entry`` is the outcome of the record it came from."""

    sample: Sample
    hashes: list[str]
    entry: dict[str, Any]
    origin: str
    start: int = 0
    partial: bool = False


def _stages_for(task: ShardTask) -> list[Stage]:
    stages = _STAGES.get(task.pipeline_hash)
    if stages is None:
        stages = instantiate(parse_pipeline(task.pipeline))
        for stage in stages:
            stage.setup()
        _STAGES[task.pipeline_hash] = stages
    return stages


def load_record(record: Record) -> tuple[Sample, list[Drop]]:
    """Read a record's files. An unreadable or empty file is left out, with a Drop naming it."""
    sample: Sample = {KEY: record.key, META: {"source": record.origin}, SOURCE: dict(record.paths)}
    problems: list[Drop] = []
    for ext, path in sorted(record.paths.items()):
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            problems.append(Drop("input.unreadable", f"{path}: {exc.strerror}", field=ext))
            continue
        if not data:
            problems.append(Drop("input.empty", f"{path} is empty", field=ext))
            continue
        sample[ext] = data
    for ext, text in sorted(record.inline.items()):
        sample[ext] = text
    return sample, problems


def input_hash(sample: Sample) -> str:
    parts: list[bytes | str] = [sample[KEY]]
    for name in data_fields(sample):
        value = sample[name]
        parts += [name, value if isinstance(value, (bytes, str)) else repr(value)]
    return digest(*parts)


def chain(start: str, fingerprints: list[str]) -> list[str]:
    hashes = [start]
    for fp in fingerprints:
        hashes.append(digest(hashes[-1], fp))
    return hashes


def _dump_entry(entry: dict[str, Any]) -> bytes:
    blobs: dict[str, Any] = {}
    doc = {"errors": entry["errors"], "samples": []}
    for key, members, meta in entry["samples"]:
        doc["samples"].append({"key": key, "fields": [ext for ext, _ in members], "meta": meta})
        for _ext, data in members:
            blobs[f"{len(blobs)}"] = data
    return serialize.dumps({"doc": doc, **blobs})


def _load_entry(data: bytes) -> dict[str, Any]:
    raw = serialize.loads(data)
    doc, n = raw["doc"], 0
    samples = []
    for s in doc["samples"]:
        members = []
        for ext in s["fields"]:
            members.append((ext, raw[str(n)]))
            n += 1
        samples.append((s["key"], members, s["meta"]))
    return {"samples": samples, "errors": doc["errors"]}


class Previous:
    """An earlier build of this shard: records whose files kept their size and mtime are copied from it.

    This is the fast path for incremental builds (like make or rsync): an unchanged record costs one
    read of its members from the old tar, instead of reading and hashing its inputs.
    """

    def __init__(self, part: str, shards: Path):
        doc = json.loads(Path(part).read_text())
        self.stamps: dict[str, str] = doc.get("stamps", {})
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.errors: dict[str, list[dict[str, Any]]] = {}
        for row in doc["rows"]:
            self.rows.setdefault(row["record"], []).append(row)
        for err in doc["errors"]:
            self.errors.setdefault(err.get("record", ""), []).append(err)
        self._files = {name: open(shards / name, "rb") for name in doc["tars"]}  # noqa: SIM115

    def entry(self, record: Record) -> dict[str, Any] | None:
        if self.stamps.get(record.key) != record.stamp:
            return None
        samples = []
        for row in self.rows.get(record.key, []):
            fh = self._files[row["shard"]]
            members = []
            for fld, off, size in zip(row["fields"], row["member_offsets"], row["member_sizes"], strict=True):
                fh.seek(off)
                members.append((fld, fh.read(size)))
            samples.append((row["key"], members, row))
        return {"samples": samples, "errors": self.errors.get(record.key, [])}

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()


def index_row(info: SampleInfo, meta: dict[str, Any]) -> dict[str, Any]:
    return {
        "key": info.key,
        "shard": info.shard,
        "offset": info.offset,
        "size": info.size,
        "fields": [m.field for m in info.members],
        "member_offsets": [m.offset for m in info.members],
        "member_sizes": [m.size for m in info.members],
        "duration": meta.get("duration"),
        "status": meta.get("status", "ok"),
        "source": str(meta.get("source", "")),
    }


class ShardBuilder:
    def __init__(self, task: ShardTask):
        self.task = task
        self.spec = parse_pipeline(task.pipeline)
        self.stages = _stages_for(task)
        self.fps = [stage_fingerprint(s) for s in self.stages]
        self.out_fp = digest(to_json(self.spec.output.model_dump(mode="json")))
        self.cache = Cache(task.cache_dir, read=task.read_cache)
        self.counters = {s.name: {"in": 0, "out": 0, "skipped": 0, "cached": 0, "seconds": 0.0} for s in self.stages}
        self.replayers = [s for s in self.stages if s.summarizes]
        self.cached_records = 0
        self.reused_records = 0
        self.out = Path(task.out_dir)
        self.progress_path = self.out / ".progress" / f"{task.name}.json"
        self._last_progress = 0.0

    # -- drops -------------------------------------------------------------------------------------
    def _error(self, item: Item, stage: str, drop: Drop, action: str) -> None:
        rec = {"key": item.sample[KEY], "source": item.origin, "stage": stage, "reason": drop.reason,
               "message": drop.message, "action": action}
        if drop.field:
            rec["field"] = drop.field
            path = item.sample.get(SOURCE, {}).get(drop.field)
            if path:
                rec["path"] = path
        item.entry["errors"].append(rec)

    def _survives(self, item: Item, stage: str, drop: Drop) -> bool:
        """Record a drop; True when the sample lives on (only an optional field went)."""
        if drop.field and drop.field in self.spec.output.optional:
            item.sample.pop(drop.field, None)
            item.partial = True
            self._error(item, stage, drop, "omitted")
            return True
        self._error(item, stage, drop, "dropped")
        return False

    # -- the stage loop ------------------------------------------------------------------------------
    def run_stage(self, i: int, stage: Stage, items: list[Item]) -> list[Item]:
        counter = self.counters[stage.name]
        todo = [n for n, it in enumerate(items) if it.start <= i and stage.applies(it.sample)]
        counter["skipped"] += sum(1 for it in items if it.start <= i) - len(todo)
        if not todo:
            return items
        t0 = time.perf_counter()
        results = dict(zip(todo, self._call(stage, [items[n].sample for n in todo]), strict=True))
        counter["seconds"] += time.perf_counter() - t0
        counter["in"] += len(todo)
        out: list[Item] = []
        for n, item in enumerate(items):
            if n not in results:
                out.append(item)
                continue
            result = results[n]
            if isinstance(result, Drop):
                if self._survives(item, stage.name, result):
                    out.append(self._ran(i, stage, item))
            elif isinstance(result, list):  # fan-out: clips, segments
                if not result:
                    self._survives(item, stage.name, Drop(f"{stage.name}.empty", "the stage produced no samples"))
                for child in result:
                    hashes = item.hashes[: i + 1] + chain(digest(item.hashes[i + 1], child[KEY]), self.fps[i + 1 :])
                    kid = Item(sample=child, hashes=hashes, entry=item.entry, origin=item.origin,
                               start=i + 1, partial=item.partial)
                    out.append(self._ran(i, stage, kid))
                    self._resume(kid, after=i + 1)
            else:
                item.sample = result
                out.append(self._ran(i, stage, item))
        return out

    def _ran(self, i: int, stage: Stage, item: Item) -> Item:
        self.counters[stage.name]["out"] += 1
        if stage.cacheable:
            self.cache.put("s" + item.hashes[i + 1], serialize.dumps(item.sample))
        return item

    def _call(self, stage: Stage, samples: list[Sample]) -> list[Any]:
        if stage.batched:
            try:
                return stage.process_batch(samples)
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

    def _resume(self, item: Item, *, after: int = 0) -> None:
        """Skip the stages whose output is cached: start after the deepest cached cacheable stage.

        Never past a summarizing stage (one with ``replay``): it must see every sample of the shard.
        """
        for stage in self.replayers:
            after = max(after, self.stages.index(stage) + 1)
        for i in range(len(self.stages) - 1, after - 1, -1):
            if self.stages[i].cacheable:
                data = self.cache.get("s" + item.hashes[i + 1])
                if data is not None:
                    item.sample = serialize.loads(data)
                    item.start = i + 1
                    self.counters[self.stages[i].name]["cached"] += 1
                    return

    # -- output --------------------------------------------------------------------------------------
    def members(self, item: Item) -> list[tuple[str, bytes]] | None:
        sample, out = item.sample, self.spec.output
        missing = [f for f in out.required if f not in sample]
        if missing:
            self._error(item, "output", Drop("field.missing", f"required field(s) missing: {', '.join(missing)}"),
                        "dropped")
            return None
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
        if not members:
            self._error(item, "output", Drop("sample.empty", "no field left to write"), "dropped")
            return None
        if out.meta:
            meta = sample.setdefault(META, {})
            meta["status"] = "partial" if item.partial else "ok"
            members.append(("meta.json", to_json(meta).encode("utf-8")))
        return members

    def _replay(self, entry: dict[str, Any]) -> dict[str, Any]:
        for stage in self.replayers:
            for key, members, _ in entry["samples"]:
                stage.replay({KEY: key, **dict(members)})
        return entry

    def _process_batch(self, records: list[Record], previous: Previous | None) -> list[dict[str, Any]]:
        """The outcome of each record: the samples to write (several after a fan-out) and its errors."""
        entries: list[dict[str, Any]] = []
        items: list[Item] = []
        for record in records:
            reused = previous.entry(record) if previous is not None else None
            if reused is not None:
                entries.append(self._replay(reused))
                self.reused_records += 1
                continue
            sample, problems = load_record(record)
            hashes = chain(input_hash(sample), self.fps)
            final_key = "f" + digest(hashes[-1], self.out_fp) if self.spec.cache.final else None
            cached = self.cache.get(final_key) if final_key else None
            if cached is not None:
                entries.append(self._replay(_load_entry(cached)))
                self.cached_records += 1
                continue
            entry: dict[str, Any] = {"samples": [], "errors": [], "cache_key": final_key}
            entries.append(entry)
            item = Item(sample=sample, hashes=hashes, entry=entry, origin=record.origin)
            if all([self._survives(item, "input", drop) for drop in problems]):
                self._resume(item)
                items.append(item)
        for i, stage in enumerate(self.stages):
            items = self.run_stage(i, stage, items)
        for item in items:
            members = self.members(item)
            if members is not None:
                item.entry["samples"].append((item.sample[KEY], members, item.sample.get(META, {})))
        for entry in entries:
            key = entry.pop("cache_key", None)
            if key is not None:
                self.cache.put(key, _dump_entry(entry))
        return entries

    def progress(self, done: int, errors: int, *, final: bool = False) -> None:
        now = time.monotonic()
        if not final and now - self._last_progress < 0.5:
            return
        self._last_progress = now
        tmp = self.progress_path.with_name(f".{self.progress_path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"done": done, "errors": errors}))
        os.replace(tmp, self.progress_path)

    def build(self) -> dict[str, Any]:
        task, spec = self.task, self.spec
        writer = ShardWriter(self.out / "shards", task.name, max_bytes=spec.output.max_bytes)
        previous = Previous(task.previous, self.out / "shards") if task.previous else None
        rows: list[dict[str, Any]] = []
        errors: list[dict[str, Any]] = []
        done = 0
        for stage in self.stages:
            stage.begin_shard()
        try:
            for lo in range(0, len(task.records), spec.execution.batch_size):
                batch = task.records[lo : lo + spec.execution.batch_size]
                for record, entry in zip(batch, self._process_batch(batch, previous), strict=True):
                    for err in entry["errors"]:
                        errors.append({**err, "record": record.key})
                    for key, members, meta in entry["samples"]:
                        rows.append({**index_row(writer.write(key, members), meta), "record": record.key})
                done += len(batch)
                self.progress(done, len(errors))
            tars = writer.close()
        except BaseException:
            writer.abort()
            raise
        finally:
            if previous is not None:
                previous.close()
        summaries = {slot: s.end_shard() for slot, s in zip(summary_slots(self.stages), self.stages, strict=True)}
        self.progress(done, len(errors), final=True)
        return {
            "name": task.name, "index": task.index, "plan": task.plan_hash, "pipeline": task.pipeline_hash,
            "tars": tars, "records": len(task.records), "cached_records": self.cached_records,
            "reused_records": self.reused_records, "stages": self.counters,
            "summaries": {k: v for k, v in summaries.items() if v is not None},
            "stamps": {r.key: r.stamp for r in task.records}, "rows": rows, "errors": errors,
        }


def build_shard(task: ShardTask) -> dict[str, Any]:
    """Entry point for executors: build the shard and publish its part file (the completion marker)."""
    result = ShardBuilder(task).build()
    parts = Path(task.out_dir) / ".parts"
    tmp = parts / f".{task.name}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(result, ensure_ascii=False, default=str))
    os.replace(tmp, parts / f"{task.name}.json")
    return {k: result[k] for k in ("name", "records", "tars")}
