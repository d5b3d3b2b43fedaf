"""Start the worker pool early, but only when shards will be built; and see when nothing is to be built.

Starting the pool costs a third of a second of imports and stage set-up, so it is started while the
corpus is listed. A rerun where nothing changed needs no worker at all, and a start running beside the
listing slows it down. So the listing's per-folder digests are compared with those the last complete
build saved (``OUT/.scan.json``): the pool is started at once when there is no record of a last build
(or the pipeline or input changed, or ``--force``), as soon as the first half of a folder differs (the
listing's ``on_head``), when a whole folder does, and never when every folder is the same. When every
output file is also as that build left it, the build has nothing to do and makes no record at all.

The pool start is only a guess about timing: the plan decides what is built, and a pool that was not
started here starts when it is needed.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from mmprep.atomic import atomic_write
from mmprep.executors import announce_pool, start_pool
from mmprep.listing import Skipped
from mmprep.shardtask import prepare

FORMAT = 4  # of .scan.json: bump when the digests change meaning
_LEFT_OUT = 1_000  # files left out for their names that .scan.json keeps (past that: found again by a rerun)


def output_signature(out: Path, reports: tuple[str, ...] = ()) -> dict[str, str] | None:
    """Size and mtime of each file a complete build leaves (shards, part files, index, errors and the
    stages' ``reports``; not stats.json, which every run rewrites), or None when they are not all there."""
    sig: dict[str, str] = {}
    try:
        if not (out / "stats.json").is_file():
            return None
        for name in ("index.parquet", "errors.jsonl"):
            st = os.stat(out / name)
            sig[name] = f"{st.st_size}:{st.st_mtime_ns}"
        for name in reports:  # a stage with nothing to summarize (an empty corpus) writes none
            st = os.stat(out / name) if os.path.exists(out / name) else None
            sig[name] = f"{st.st_size}:{st.st_mtime_ns}" if st else "missing"
        for sub in ("shards", ".parts"):
            with os.scandir(out / sub) as it:
                for entry in it:
                    st = entry.stat()
                    sig[f"{sub}/{entry.name}"] = f"{st.st_size}:{st.st_mtime_ns}"
    except OSError:
        return None
    return sig


class WarmUp:
    """``workers`` 0: nothing to start (one worker runs in the driver; Dask starts its own).
    ``identity``: a digest of what else decides the output (pipeline, input folder and settings, part
    format, mmprep version). ``reports``: the files the stages' ``finalize`` writes (``Stage.reports``)."""

    def __init__(self, out: Path, pipeline: dict[str, Any], pipeline_hash: str, identity: str, *, workers: int,
                 force: bool, folder_input: bool, reports: tuple[str, ...] = ()):
        self.out = out
        self.reports = reports
        self.path = out / ".scan.json"
        self.pipeline = pipeline
        self.pipeline_hash = pipeline_hash
        self.identity = identity
        self.folders: dict[str, str] | None = None  # the listing's digests, once a folder corpus is listed
        self.heads: dict[str, str] = {}
        self.pool: ProcessPoolExecutor | None = None
        self.workers = workers
        self.known = None if force or not folder_input else self._load()
        if self.known is None:
            self.start()

    def _load(self) -> dict[str, Any] | None:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return doc if doc.get("format") == FORMAT and doc.get("identity") == self.identity else None

    def start(self) -> None:
        """At once without a record of a last build; forked from the driver (where safe) when a rerun
        finds a change: the driver has only listed the corpus by then (see ``executors._context``)."""
        if self.workers > 1 and self.pool is None:
            self.pool = start_pool(self.workers, prepare, self.pipeline, self.pipeline_hash,
                                   method="forkserver" if self.known is None else "fork", announce=False)

    def head(self, folder: str, digest: str) -> None:
        """The listing's ``on_head``: the first half of a folder differs, so shards will be built."""
        self.heads[folder] = digest
        if self.pool is None and self.known is not None and self.known["heads"].get(folder) != digest:
            self.start()

    def unchanged_shards(self, folders: dict[str, str]) -> int | None:
        """The listing's digest per folder. Returns the last build's shard count when the folders and
        the output files are all as that build left them (nothing to build); else None, having started
        the pool if a folder changed."""
        self.folders = folders
        if self.known is None:
            return None
        if folders != self.known["folders"]:
            self.start()
            return None
        return self.known["shards"] if output_signature(self.out, self.reports) == self.known["outputs"] else None

    def take_pool(self) -> ProcessPoolExecutor | None:
        """The pool, for the shards to build: its start is logged now."""
        pool, self.pool = self.pool, None
        if pool is not None:
            announce_pool(pool)
        return pool

    def abandon(self) -> None:
        pool, self.pool = self.pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def left_out(self) -> list[Skipped] | None:
        """What the last build left out of these folders for their names (bad field names, clashes): the
        same, as the names are (a listing that found nothing changed). None if not saved."""
        saved = (self.known or {}).get("left_out")
        return None if saved is None else [Skipped(*item) for item in saved]

    def save(self, shards: int, left_out: list[Skipped] = ()) -> None:
        """After a complete build: what the corpus and the output looked like (nothing for a manifest), and
        the files left out for their names (``left_out``; up to ``_LEFT_OUT``, else a rerun finds them)."""
        sig = output_signature(self.out, self.reports) if self.folders is not None else None
        if sig is not None:
            doc = {"format": FORMAT, "identity": self.identity, "folders": self.folders, "heads": self.heads,
                   "outputs": sig, "shards": shards}
            if len(left_out) <= _LEFT_OUT:
                doc["left_out"] = [list(item) for item in left_out]
            atomic_write(self.path, json.dumps(doc, sort_keys=True).encode())
