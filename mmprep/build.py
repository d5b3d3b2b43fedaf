"""``mmprep build``: plan shards, skip the complete ones, run the rest, then write the reports.

Order of events, so a config error writes nothing: validate the spec, pre-flight every stage,
read the corpus listing; only then create OUT. Shards are the unit of work: records sorted by key
are cut into runs of ``output.max_samples``, so the same corpus always gives the same shards,
whatever the worker count or executor.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mmprep.cache import digest
from mmprep.codecs import to_json
from mmprep.config import instantiate, stage_fingerprint
from mmprep.corpus import Record, read_corpus
from mmprep.errors import ConfigError
from mmprep.executors import default_workers, run_dask, run_local
from mmprep.progress import Progress
from mmprep.report import write_reports
from mmprep.worker import ShardTask, build_shard

log = logging.getLogger("mmprep.build")


@dataclass
class BuildOptions:
    input: str | None = None
    output: str = "out"
    workers: int | None = None
    executor: str | None = None
    scheduler: str | None = None
    cache_dir: str | None = None
    force: bool = False
    progress: bool = True


def _pipeline_hash(spec: BaseModel, stages: list[Any]) -> str:
    out = spec.output.model_dump(mode="json")
    return digest(to_json([stage_fingerprint(s) for s in stages]), to_json(out))


def plan(records: list[Record], spec: BaseModel, pipeline_hash: str) -> list[tuple[str, list[Record], str]]:
    """(shard name, records, plan hash) per shard; the plan hash changes when any input or setting does."""
    n = spec.output.max_samples
    shards = []
    for i in range(0, max(len(records), 1), n):
        chunk = records[i : i + n]
        if not chunk:
            break
        name = f"{spec.output.name}-{i // n:06d}"
        stamp = digest(pipeline_hash, *(f"{r.key}\0{r.stamp}" for r in chunk))
        shards.append((name, chunk, stamp))
    return shards


def _complete(out: Path, name: str, plan_hash: str) -> dict[str, Any] | None:
    part = out / ".parts" / f"{name}.json"
    try:
        doc = json.loads(part.read_text())
    except (OSError, ValueError):
        return None
    if doc.get("plan") != plan_hash or not all((out / "shards" / t).exists() for t in doc.get("tars", [])):
        return None
    return doc


def _clean(out: Path, keep: set[str], name: str) -> None:
    """Remove temporary files left by a killed build, and shards the current plan no longer has."""
    for path in (out / "shards").glob(f".{name}-*.tmp"):
        path.unlink(missing_ok=True)
    for path in (out / ".parts").glob(f"{name}-*.json"):
        if path.stem not in keep:
            path.unlink(missing_ok=True)
    for path in (out / "shards").glob(f"{name}-*.tar"):
        if path.stem.split("_")[0] not in keep:
            path.unlink(missing_ok=True)
    for path in (out / ".parts").glob(".*.tmp"):
        path.unlink(missing_ok=True)


def run_build(spec: BaseModel, opts: BuildOptions) -> dict[str, Any]:
    """Build the shards and reports; returns the summary that ``--json`` prints."""
    t0 = time.perf_counter()
    stages = instantiate(spec)  # pre-flight: missing resources fail here, before OUT exists
    source = opts.input or spec.input.path
    if not source:
        raise ConfigError("input.path", "no input: pass --input or set input.path in the pipeline")
    inp = spec.input
    records = read_corpus(source, fmt=inp.format, key_column=inp.key_column, path_columns=inp.path_columns,
                          include=inp.include, exclude=inp.exclude)
    execution = spec.execution
    executor = opts.executor or ("dask" if (opts.scheduler or execution.scheduler) else execution.executor)
    scheduler = opts.scheduler or execution.scheduler
    workers = opts.workers or execution.workers or default_workers()

    out = Path(opts.output)
    cache_dir = opts.cache_dir or spec.cache.dir or str(out / ".cache")
    for sub in ("shards", ".parts", ".progress"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for path in (out / ".progress").glob("*"):
        path.unlink(missing_ok=True)

    pipeline_hash = _pipeline_hash(spec, stages)
    shards = plan(records, spec, pipeline_hash)
    _clean(out, {name for name, _, _ in shards}, spec.output.name)
    pipeline_doc = spec.model_dump(mode="json")
    results: dict[str, dict[str, Any]] = {}
    tasks: list[ShardTask] = []
    for i, (name, chunk, plan_hash) in enumerate(shards):
        done = None if opts.force else _complete(out, name, plan_hash)
        if done is not None:
            results[name] = done
            continue
        tasks.append(ShardTask(index=i, name=name, records=chunk, pipeline=pipeline_doc,
                               pipeline_hash=pipeline_hash, plan_hash=plan_hash, out_dir=str(out.resolve()),
                               cache_dir=str(Path(cache_dir).resolve()) if spec.cache.enabled else None,
                               read_cache=not opts.force))
    skipped = len(results)
    log.info("%d samples in %d shards: %d complete, %d to build on %s (%d workers)", len(records), len(shards),
             skipped, len(tasks), scheduler or executor, workers)
    failed: list[dict[str, str]] = []
    base_done = sum(r["records"] for r in results.values())
    with Progress(out / ".progress", total=len(records), shards=len(shards), base_done=base_done,
                  enabled=opts.progress) as progress:
        if executor == "dask":
            stream = run_dask(build_shard, tasks, workers=workers, scheduler=scheduler)
        else:
            stream = run_local(build_shard, tasks, workers)
        for task, result in stream:
            progress.shard_done()
            if isinstance(result, BaseException):
                log.error("shard %s failed: %s: %s", task.name, type(result).__name__, result)
                failed.append({"shard": task.name, "error": f"{type(result).__name__}: {result}"})
            else:
                results[task.name] = result
    shutil.rmtree(out / ".progress", ignore_errors=True)
    ordered = [results[name] for name, _, _ in shards if name in results]
    for stage in stages:
        summaries = [r["summaries"][stage.name] for r in ordered if stage.name in r.get("summaries", {})]
        if summaries:
            stage.finalize(summaries, out)
    built = {t.name for t in tasks} & set(results)
    summary = write_reports(out, ordered, stages=[s.name for s in stages], failed=failed,
                            seconds=time.perf_counter() - t0, built=built, workers=workers,
                            executor=scheduler or executor)
    summary["ok"] = not failed
    return summary
