"""Start the worker pool early, but only when shards will be built.

Starting the pool costs a third of a second of imports and stage set-up, so it is started while the
corpus is scanned. A rerun where nothing changed needs no worker at all, and a start running beside
the scan slows the scan down. So the scan's per-folder digests are compared with those the last
complete build saved: the pool is started at the first folder that differs, at once when there is no
record of a last build (or the pipeline changed, or ``--force``), and never when every folder is the same.

This is only a guess about timing: the plan decides what is built, and a pool that was not started
here starts when it is needed.
"""

from __future__ import annotations

import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from mmprep.atomic import atomic_write
from mmprep.executors import start_pool
from mmprep.worker import prepare


class WarmUp:
    """``workers`` 0: nothing to start (one worker runs in the driver; Dask starts its own)."""

    def __init__(self, out: Path, pipeline: dict[str, Any], pipeline_hash: str, *, workers: int, force: bool,
                 folder_input: bool):
        self.path = out / ".scan.json"
        self.pipeline = pipeline
        self.pipeline_hash = pipeline_hash
        self.folders: dict[str, str] = {}
        self.pool: ProcessPoolExecutor | None = None
        self.workers = workers
        self.known = None if force or not folder_input else self._load()
        if self.known is None:
            self.start()

    def _load(self) -> dict[str, str] | None:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return None
        return doc.get("folders") if doc.get("pipeline") == self.pipeline_hash else None

    def start(self) -> None:
        if self.workers > 1 and self.pool is None:
            self.pool = start_pool(self.workers, prepare, self.pipeline, self.pipeline_hash)

    def folder(self, name: str, digest: str) -> None:
        """The scan's ``on_folder`` callback."""
        self.folders[name] = digest
        if self.pool is None and self.known is not None and self.known.get(name) != digest:
            self.start()

    def take_pool(self) -> ProcessPoolExecutor | None:
        pool, self.pool = self.pool, None
        return pool

    def abandon(self) -> None:
        pool = self.take_pool()
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)

    def save(self) -> None:
        """After a complete build: what the corpus looked like (nothing to save for a manifest)."""
        if self.folders and self.folders != self.known:
            doc = {"pipeline": self.pipeline_hash, "folders": self.folders}
            atomic_write(self.path, json.dumps(doc, sort_keys=True).encode())
