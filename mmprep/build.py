"""``mmprep build``: plan shards, skip the complete ones, run the rest, then write the reports.

Order of events, so a config error writes nothing: validate the spec, pre-flight every stage,
list the corpus; only then create OUT (for a folder, before its records are made: they are saved
there). Shards are the unit of work: records sorted by key are cut into runs of
``output.max_samples``, so the same corpus always gives the same shards, whatever the worker count or
executor.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
import shutil
import time
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from mmprep import __version__, reuse
from mmprep.atomic import atomic_write
from mmprep.cache import digest
from mmprep.codecs import to_json
from mmprep.config import instantiate, stage_fingerprint
from mmprep.corpus import NAME_REASONS, Record, printable, read_corpus, skipped_names
from mmprep.errors import ConfigError
from mmprep.executors import (
    check_main_script,
    check_scheduler,
    check_start_method,
    default_workers,
    preload,
    run_dask,
    run_local,
)
from mmprep.listing import Skipped, list_folder
from mmprep.progress import Progress
from mmprep.recordstore import RecordStore
from mmprep.report import Merger
from mmprep.report import preload as preload_merge
from mmprep.shardtask import ShardTask
from mmprep.stage import summary_slots
from mmprep.warmup import WarmUp
from mmprep.worker import build_shard

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
    dry_run: bool = False  # plan only: say what would be built, and why, and write nothing


def _pipeline_hash(spec: BaseModel, stages: list[Any]) -> str:
    out = spec.output.model_dump(mode="json")
    return digest(to_json([stage_fingerprint(s) for s in stages]), to_json(out), spec.cache.stages)


def plan(records: list[Record], spec: BaseModel, pipeline_hash: str) -> list[tuple[str, list[Record], str]]:
    """(shard name, records, plan hash) per shard; the plan hash changes when any input or setting does."""
    n = spec.output.max_samples
    shards = []
    for i in range(0, len(records), n):
        chunk = records[i : i + n]
        stamp = digest(pipeline_hash, *(f"{r.key}\0{r.stamp}" for r in chunk))
        shards.append((f"{spec.output.name}-{i // n:06d}", chunk, stamp))
    return shards


_SHARD = re.compile(r"^(?P<shard>.+-\d{6,})(?:_\d{2,})?\.tar$")  # NAME-000003.tar, NAME-000003_101.tar


def check_pipeline(spec: BaseModel) -> None:
    """What a pipeline file alone says that a build would refuse (``mmprep validate`` runs it too): a
    scheduler address that does not parse (whether one runs there is the build's check), a ``cache.dir``
    that cannot be written."""
    if spec.execution.scheduler:
        check_scheduler(spec.execution.scheduler, "execution.scheduler", connect=False)
    if spec.cache.enabled and spec.cache.dir:
        _check_writable(Path(spec.cache.dir).resolve(), "cache.dir")


def _check_writable(path: Path, key: str) -> None:
    """A folder this build can create or write in, checked before any work (nothing is created here)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(key, f"{probe} is a file, not a folder" + ("" if probe == path else f" (for {path})"))
    if not os.access(probe, os.W_OK | os.X_OK):
        raise ConfigError(key, f"cannot write in {probe}" + ("" if probe == path else f" (to create {path})"))


def _check_foreign_tars(out: Path) -> None:
    """Refuse an output folder whose shards/ holds tars no mmprep build wrote: the build removes the tars
    its plan does not have, and they would be lost. Ours: OUT/.parts exists and the name is a shard's."""
    try:
        names = [p.name for p in (out / "shards").iterdir() if p.suffix == ".tar" and not p.name.startswith(".")]
    except OSError:
        return
    ours = (out / ".parts").is_dir()
    foreign = sorted(n for n in names if not ours or _SHARD.match(n) is None)
    if foreign:
        raise ConfigError("output", f"{out / 'shards'} holds {len(foreign)} tar file(s) no mmprep build wrote "
                          f"(e.g. {foreign[0]}); build into an empty folder, or move them away")


STOPS = ".stopped"  # OUT/.stopped/RUN: the build RUN was stopped (``ShardTask.stop_file``)


def _forget_stops(out: Path, age: float = 86_400.0) -> None:
    """Remove the stop files of builds stopped more than ``age`` seconds ago (a newer one may still have a
    shard running on a Dask cluster, which must see its file)."""
    now = time.time()
    for path in _entries(out / STOPS):
        try:
            if now - path.stat().st_mtime > age:
                path.unlink()
        except OSError:
            pass


def _stale(out: Path, keep: set[str]) -> tuple[list[Path], list[Path], list[Path]]:
    """What a build removes: tars and part files the current plan does not have, and temporaries
    left by a killed build (``.`` names)."""
    tars, parts, temps = [], [], list(out.glob(".*.tmp"))
    for path in _entries(out / "shards"):
        match = _SHARD.match(path.name)
        if path.name.startswith("."):
            temps.append(path)
        elif path.suffix == ".tar" and (match is None or match["shard"] not in keep):
            tars.append(path)
    for path in _entries(out / ".parts"):
        if path.name.startswith("."):
            temps.append(path)
        elif path.name.split(".", 1)[0] not in keep:
            parts.append(path)
    return tars, parts, temps


def _entries(folder: Path) -> list[Path]:
    try:
        return list(folder.iterdir())
    except FileNotFoundError:
        return []


def _clean(out: Path, keep: set[str]) -> tuple[int, int]:
    """Remove what :func:`_stale` lists; returns how many tars and how many part files went."""
    tars, parts, temps = _stale(out, keep)
    for path in (*tars, *parts, *temps):
        path.unlink(missing_ok=True)
    return len(tars), len(parts)


def run_build(spec: BaseModel, opts: BuildOptions) -> dict[str, Any]:
    """Build the shards and reports; returns the summary that ``--json`` prints."""
    lock = OutputLock()
    try:
        return _build(spec, opts, lock)
    finally:
        lock.release()


class OutputLock:
    """One build at a time per output folder: two builds into one OUT interleave their shards and merges
    (an index without a shard's rows). ``acquire`` takes ``OUT/.lock`` (``flock``: released if the
    process dies) once the build is about to write, so a configuration error still writes nothing."""

    def __init__(self) -> None:
        self.fd: int | None = None

    def acquire(self, out: Path) -> None:
        if self.fd is not None or os.name == "nt":
            return
        import fcntl

        try:
            out.mkdir(parents=True, exist_ok=True)
            fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ConfigError("output", f"cannot write {out}: {exc.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise ConfigError("output", f"another build is writing to {out} (it holds {out / '.lock'}); "
                              "wait for it to end, or build into another folder") from None
        except OSError as exc:  # a file system without locks (some network mounts): build without one
            os.close(fd)
            log.warning("cannot lock %s (%s): nothing stops a second build into it meanwhile", out, exc.strerror)
            return
        self.fd = fd

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _build(spec: BaseModel, opts: BuildOptions, lock: OutputLock) -> dict[str, Any]:
    t0 = time.perf_counter()
    stages = instantiate(spec)  # pre-flight: missing resources fail here, before OUT exists
    source = opts.input or spec.input.path
    if not source:
        raise ConfigError("input.path", "no input: pass --input or set input.path in the pipeline")
    execution = spec.execution
    executor = opts.executor or ("dask" if (opts.scheduler or execution.scheduler) else execution.executor)
    scheduler = opts.scheduler or execution.scheduler
    if executor == "local" and scheduler:  # --executor local wins (over MMPREP_SCHEDULER set for other builds)
        log.info("executor local: the Dask scheduler %s is not used", scheduler)
        scheduler = None
    workers = opts.workers or execution.workers or _default_workers(stages)
    if executor == "dask" and scheduler and not opts.dry_run:
        check_scheduler(scheduler, "--scheduler" if opts.scheduler else "execution.scheduler")
    out = Path(opts.output).resolve()
    inp = spec.input
    pipeline_hash = _pipeline_hash(spec, stages)
    # absolute paths: Dask workers elsewhere may not share our directory. A manifest keeps the path it was
    # named by: its relative paths are from its folder, not from where a symbolic link to it points
    source = Path(os.path.abspath(source)) if Path(source).is_file() else Path(source).resolve()
    if printable(str(out)) != str(out):  # Arrow takes paths as UTF-8: the merge failed after every shard was built
        raise ConfigError("output", f"{printable(str(out))} is not valid UTF-8, which index.parquet's writer needs: "
                          "build into a folder whose path is")
    if out == source.resolve():
        raise ConfigError("output", f"{out} is the input folder: its shards would be read as input; write the "
                          "build to another folder (a subfolder of the input is fine: it is not read)")
    if not source.exists():  # before the workers start (read_corpus says it too, for library callers)
        raise ConfigError("input.path", f"{source} does not exist")
    check_start_method()
    if not opts.dry_run:
        check_main_script(executor, workers, scheduler)
    cache_dir = Path(opts.cache_dir or spec.cache.dir or out / ".cache").resolve()
    dry = opts.dry_run
    if not dry:  # a dry run writes nothing: a read-only output folder is fine for it
        _check_writable(out, "output")
        if spec.cache.enabled:
            _check_writable(cache_dir, "cache.dir")
    _check_foreign_tars(out)
    if not dry:
        preload([*(m for stage in stages for m in stage.imports()), *(type(stage).__module__ for stage in stages)])
    # the worker processes' imports run on another core while the corpus is scanned, when a change shows
    pipeline_doc = spec.model_dump(mode="json")
    folder_input = source.is_dir() and inp.format in ("auto", "folder")
    identity = digest(pipeline_hash, str(source), to_json(inp.model_dump(mode="json", exclude={"path"})),
                      str(reuse.PART_FORMAT), __version__)  # an upgrade that writes parts differently rebuilds
    reports = tuple(dict.fromkeys(name for stage in stages for name in stage.reports()))
    warmup = WarmUp(out, pipeline_doc, pipeline_hash, identity, workers=0 if dry or executor == "dask" else workers,
                    force=opts.force, folder_input=folder_input, reports=reports)
    phases = _Phases()  # where the time went, in stats.json: a slow scan or merge shows there
    skipped: list[Skipped] = []  # what the listing left out: reported in stats.json every run
    store: RecordStore | None = None  # the records of the last run, by folder (OUT/.records)
    try:
        # a folder whose first half differs starts the pool at once (WarmUp.head) where cores are to spare.
        # The listing keeps two busy (it stats half the files in a forked child), and on two a pool started
        # beside it slows it by more than the head start gains (0.04 s of a 0.45 s rerun of 20,000 samples):
        # there the heads are only noted (for .scan.json) and the pool starts when the listing ends
        on_head = warmup.head if default_workers() > 2 else warmup.heads.__setitem__
        listing = list_folder(str(source), inp.include, inp.exclude, on_head=on_head,
                              skip=str(out), skipped=skipped) if folder_input else None
        if listing is not None:
            unchanged = warmup.unchanged_shards({folder.rel: folder.digest for folder in listing})
            if unchanged is not None and not dry:
                phases.end("scan")
                lock.acquire(out)
                summary = _unchanged(out, t0, unchanged, workers, scheduler or executor, phases,
                                     skipped + skipped_names(listing, warmup.left_out()))
                if summary is not None:
                    warmup.abandon()  # none should have started; if one did, stop it
                    return summary
        if listing is not None and not dry:  # the records are saved by folder as they are made, in OUT
            lock.acquire(out)
            out.mkdir(parents=True, exist_ok=True)  # acquire made it, but where there are no locks
            # keys are sanitized with the Unicode tables of this Python: another one may make others
            store = RecordStore(out / ".records", digest(str(source), to_json([inp.include, inp.exclude]),
                                                         __version__, unicodedata.unidata_version),
                                read=not opts.force)
        records = read_corpus(source, fmt=inp.format, key_column=inp.key_column, path_columns=inp.path_columns,
                              include=inp.include, exclude=inp.exclude, listing=listing, skipped=skipped,
                              store=store)
        if not dry:
            lock.acquire(out)
    except BaseException:  # a manifest's config error: stop the workers now, not at exit
        warmup.abandon()
        if store is not None:
            store.abandon()
        raise
    del listing, store
    phases.end("scan")
    if dry:
        return _dry_run(out, spec, records, pipeline_hash, opts, reports, skipped, t0)

    for sub in ("shards", ".parts", ".progress"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for path in (out / ".progress").glob("*"):
        path.unlink(missing_ok=True)
    _forget_stops(out)

    shards = plan(records, spec, pipeline_hash)
    removed, parts = _clean(out, {name for name, _, _ in shards})
    if removed:
        log.warning("removed %d tar(s) of an earlier build that this plan does not have", removed)
    root = str(source) if folder_input else None
    triage = _Triage(out, shards, pipeline_hash, force=opts.force, root=root)
    complete, why, changed = triage.complete, triage.why, triage.changed
    # Dask's running tasks cannot be cancelled: a stopped build makes this file, and they stop at it
    stop_file = str(out / STOPS / f"{os.getpid()}-{time.time_ns()}") if executor == "dask" else None
    tasks = [ShardTask(index=i, name=name, records=chunk, pipeline=pipeline_doc, pipeline_hash=pipeline_hash,
                       plan_hash=plan_hash, out_dir=str(out), read_cache=not opts.force,
                       cache_dir=str(cache_dir) if spec.cache.enabled else None,
                       # copies read old tars by offset while new ones replace them: not on Windows
                       reuse=prev is not None and prev.get("pipeline") == pipeline_hash and os.name != "nt",
                       progress=opts.progress, root=root, stop_file=stop_file)
             for i, name, chunk, plan_hash, prev in triage.todo]
    # longest first, for a short tail (the output is the same in any order); shards of about the same
    # size in plan order, so they finish in about that order and the merge keeps pace
    tasks.sort(key=lambda t: -float(f"{sum(r.size for r in t.records):.1g}"))
    phases.end("plan")
    log.info("%d samples in %d shards: %d complete, %d to build on %s (%d workers)", len(records), len(shards),
             len(shards) - len(tasks), len(tasks), scheduler or executor, workers)
    if why:
        log.info("shards to build: %s", "; ".join(f"{n} {reason}" + (f" ({changed} records new or changed in them)"
                                                                     if reason == "inputs changed" else "")
                                                 for reason, n in sorted(why.items())))
    if tasks or removed or parts:
        (out / "stats.json").unlink(missing_ok=True)  # the reports are stale until the merge below ends
    failed: list[dict[str, str]] = []
    failed_names: set[str] = set()
    built: set[str] = set()
    plans = {name: plan_hash for name, _, plan_hash in shards}  # in plan order: the merge's order
    unfinished = {task.name for task in tasks}
    slots = summary_slots(stages)
    # else nothing changed since the last merge; but a moved input folder moves the paths in errors.jsonl
    merging = triage.moved or not _reports_current(out, reports)
    merger: Merger | None = None  # made at the first finished shard (it imports pyarrow)
    with Progress(out / ".progress", total=len(records), shards=len(shards), base_done=complete,
                  shards_done=len(shards) - len(tasks), enabled=opts.progress) as progress:
        if not tasks:
            warmup.abandon()
            stream = iter(())
        elif executor == "dask":
            stream = run_dask(build_shard, tasks, workers=workers, scheduler=scheduler)
        else:
            stream = run_local(build_shard, tasks, workers, pool=warmup.take_pool(),
                               submitted=preload_merge if merging else None)
        for task, result in stream:
            progress.shard_done()
            if isinstance(result, BaseException):
                log.error("shard %s failed: %s: %s", task.name, type(result).__name__, result)
                failed.append({"shard": task.name, "records": len(task.records),
                               "error": f"{type(result).__name__}: {result}"})
                failed_names.add(task.name)
            else:
                built.add(task.name)
            unfinished.discard(task.name)
            if merging:
                merger = merger or Merger(out, slots, plans, root)
                merger.add_ready(unfinished, built, failed_names)
    shutil.rmtree(out / ".progress", ignore_errors=True)
    phases.end("shards")
    run = {"seconds": round(time.perf_counter() - t0, 3), "shards_built": len(built),
           "shards_skipped": len(shards) - len(tasks), "rebuilt_because": why, "records_changed": changed,
           **_inputs_skipped(skipped), "failed_shards": failed, "workers": workers,
           "executor": scheduler or executor, "machine": _machine(), "phases_seconds": phases}
    stats = None if merging else _refresh_stats(out, run)
    if stats is None:
        merger = merger or Merger(out, slots, plans, root)
        merger.add_ready(set(), built, failed_names)
        for slot, stage in zip(slots, stages, strict=True):
            if slot in merger.summaries:
                stage.finalize(merger.summaries[slot], out)
        phases.end("merge")
        run["seconds"] = round(time.perf_counter() - t0, 3)
        stats = merger.close(run)
        written = _report_stamps(out)
        if written is not None:
            atomic_write(out / _WRITTEN, json.dumps(written).encode())
    if not failed and not stats.get("errors_to_retry"):  # else the next run is no "nothing changed"
        warmup.save(len(shards), [item for item in skipped if item.reason in NAME_REASONS])
    run["seconds"] = round(time.perf_counter() - t0, 3)
    failed_writes = stats["run"].get("cache_writes_failed", 0)
    if failed_writes:
        log.warning("could not write %d cache entries (first: %s): the samples are in the shards, but a rerun "
                    "computes them again", failed_writes, stats["run"].get("cache_write_error"))
    if stats["samples_in"] and not stats["samples_out"]:  # completed, but surely not what was meant
        top = max(stats["errors_by_reason"].items(), key=lambda kv: kv[1], default=("", 0))
        log.warning("none of the %d samples was written%s: see %s", stats["samples_in"],
                    f" (most often: {top[0]}, {top[1]})" if top[1] else "", out / "errors.jsonl")
    return _summary(out, stats, run)


class _Triage:
    """Which planned shards are complete and which are to build, with why (from their part files)."""

    def __init__(self, out: Path, shards: list[tuple[str, list[Record], str]], pipeline_hash: str, *,
                 force: bool, root: str | None = None) -> None:
        self.todo: list[tuple[int, str, list[Record], str, dict[str, Any] | None]] = []  # with the part file
        self.complete = 0  # records in complete shards
        self.why: dict[str, int] = {}  # shards to build, by reason
        self.changed = 0  # records new or changed in shards built on an earlier build
        self.moved = False  # a complete shard was built from the input folder under another path
        for i, (name, chunk, plan_hash) in enumerate(shards):
            prev, problem = (None, "forced") if force else reuse.read_part(out, name)
            self.moved |= prev is not None and root is not None and prev.get("root") not in (None, root)
            if prev is not None and prev.get("plan") == plan_hash and not reuse.transient(prev["errors"]):
                self.complete += len(chunk)
                continue
            reason, n = _why(prev, problem, chunk, pipeline_hash, plan_hash)
            self.why[reason] = self.why.get(reason, 0) + 1
            self.changed += n
            self.todo.append((i, name, chunk, plan_hash, prev))


def _dry_run(out: Path, spec: BaseModel, records: list[Record], pipeline_hash: str, opts: BuildOptions,
             reports: tuple[str, ...], skipped: list[Skipped], t0: float) -> dict[str, Any]:
    """What the build would do, read from the output folder as it is; nothing is written or started."""
    shards = plan(records, spec, pipeline_hash)
    triage = _Triage(out, shards, pipeline_hash, force=opts.force)
    tars, parts, _ = _stale(out, {name for name, _, _ in shards})
    # planned shards: output.max_bytes may still split one into several tars (NAME-000000_01.tar...)
    return {"output": str(out), "dry_run": True, "samples_in": len(records), "planned_shards": len(shards),
            "shards_complete": len(shards) - len(triage.todo), "shards_to_build": len(triage.todo),
            "samples_to_build": sum(len(chunk) for _, _, chunk, _, _ in triage.todo),
            "rebuilt_because": dict(sorted(triage.why.items())), "records_changed": triage.changed,
            "stale_tars": len(tars), "stale_parts": len(parts),
            "reports_current": not triage.todo and not tars and not parts and _reports_current(out, reports),
            "inputs_skipped": _inputs_skipped(skipped)["inputs_skipped"],
            "seconds": round(time.perf_counter() - t0, 3)}


def _default_workers(stages: list) -> int:
    """One worker per core; two for a pipeline that starts by waiting on the network (fetch), so that one's
    downloads overlap the other's decoding (1.4x the images/s on 2 cores), unless a stage of it runs on
    a GPU (each worker would load its model there)."""
    n = default_workers()
    if not stages or not stages[0].io_bound:
        return n
    if any(getattr(s.config, "device", "cpu") != "cpu" for s in stages):
        import torch

        if torch.cuda.is_available():
            return n
    return 2 * n


def _why(prev: dict[str, Any] | None, problem: str, chunk: list[Record], pipeline_hash: str,
         plan_hash: str) -> tuple[str, int]:
    """Why a shard is built (``problem``: why its part file was not read, ``forced`` included), and how
    many of its records are new or changed since its last build."""
    if prev is None:
        return problem, 0
    if prev.get("pipeline") != pipeline_hash:
        return "pipeline changed", 0
    if prev.get("plan") == plan_hash:  # complete but for errors that may go now (a download timed out)
        return "errors to retry", len({e.get("record") for e in prev["errors"] if e.get("transient")})
    stamps = prev.get("stamps", {})
    return "inputs changed", sum(stamps.get(r.key) != r.stamp for r in chunk)  # same stamps: same plan


def _summary(out: Path, stats: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    return {"output": str(out), "ok": not run["failed_shards"], "samples_in": stats["samples_in"],
            "samples_out": stats["samples_out"], "samples_failed": stats.get("samples_failed", 0),
            "samples_dropped": stats["samples_dropped"],
            "fields_omitted": stats["fields_omitted"], "errors_by_reason": stats["errors_by_reason"],
            "errors_to_retry": stats.get("errors_to_retry", 0),
            "shards": len(stats["shards"]), **{k: run[k] for k in ("shards_built", "shards_skipped", "seconds")},
            "records_from_cache": stats["run"]["records_from_cache"],
            "records_reused": stats["run"]["records_reused"], "failed_shards": run["failed_shards"]}


def _unchanged(out: Path, t0: float, shards: int, workers: int, executor: str, phases: _Phases,
               skipped: list[Skipped]) -> dict[str, Any] | None:
    """Every input folder and output file is as the last complete build left them: note this run in
    stats.json and return the summary, without making a record. None if stats.json cannot be read."""
    log.info("nothing changed since the last complete build: its %d shards and reports are current", shards)
    run = {"seconds": round(time.perf_counter() - t0, 3), "shards_built": 0, "shards_skipped": shards,
           "rebuilt_because": {}, "records_changed": 0, **_inputs_skipped(skipped), "failed_shards": [],
           "workers": workers, "executor": executor, "machine": _machine(), "phases_seconds": phases}
    stats = _refresh_stats(out, run)
    if stats is None:
        return None
    run["seconds"] = round(time.perf_counter() - t0, 3)
    return _summary(out, stats, run)


def _inputs_skipped(skipped: list[Skipped], show: int = 20) -> dict[str, Any]:
    """What the listing left out, for this run's summary in stats.json: counts by reason code, and the
    first ``show`` of them (path, reason, message). Not samples: a folder that cannot be read may
    have held any number."""
    counts: dict[str, int] = {}
    for item in skipped:
        counts[item.reason] = counts.get(item.reason, 0) + 1
    return {"inputs_skipped": dict(sorted(counts.items())),
            "inputs_skipped_first": [{"path": printable(i.path), "reason": i.reason, "message": i.message}
                                     for i in skipped[:show]]}


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


class _Phases(dict):
    """Seconds per phase of a build, each phase ending where the next begins (a phase ended twice adds up)."""

    def __init__(self) -> None:
        super().__init__()
        self._mark = time.perf_counter()

    def end(self, name: str) -> None:
        now = time.perf_counter()
        self[name], self._mark = round(self.get(name, 0.0) + now - self._mark, 3), now


_WRITTEN = ".reports.json"  # OUT/.reports.json: size and mtime of each report as the last merge wrote it


def _report_stamps(out: Path) -> dict[str, str] | None:
    """Size and mtime of index.parquet and errors.jsonl; None if one is missing. Not the stages' reports:
    a command may change them on purpose (``mmprep vocab`` re-cuts vocab.json), and a build keeps that."""
    try:
        return reuse.file_stamps(out, ["index.parquet", "errors.jsonl"])
    except OSError:
        return None


def _reports_current(out: Path, reports: tuple[str, ...]) -> bool:
    """Whether the last merge is still true: stats.json is removed before any shard is built, the stages'
    reports are there, index and errors are as that merge wrote them (``_WRITTEN``: a truncated or
    emptied index was kept, and the next run took it for current), and no shard failed in the run that
    wrote them (a shard that failed under --force kept its part file of this plan: complete next run,
    so merged then)."""
    stamps = _report_stamps(out)
    if stamps is None or not all((out / name).exists() for name in ("stats.json", *reports)):
        return False
    try:
        if json.loads((out / _WRITTEN).read_text()) != stamps:
            return False
        return not json.loads((out / "stats.json").read_text())["run"]["failed_shards"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _refresh_stats(out: Path, run: dict[str, Any]) -> dict[str, Any] | None:
    """Nothing changed since the last complete merge: keep index and errors as they are, note this run in
    stats.json. None when stats.json cannot be read (then the reports are merged again)."""
    try:
        stats = json.loads((out / "stats.json").read_text())
    except (OSError, ValueError):
        return None
    stats["run"] = {**run, "records_from_cache": 0, "records_reused": 0, "index_shards_reused": 0,
                    "index_rows_parsed": 0}
    atomic_write(out / "stats.json", (json.dumps(stats, indent=2, ensure_ascii=False) + "\n").encode())
    return stats
