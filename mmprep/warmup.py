"""Start the worker processes' imports early, but only when shards will be built.

Starting the pool costs a third of a second of imports, so it is started while the corpus is
scanned. A rerun where nothing changed needs no worker at all, and a start running beside the scan
slows the scan down. So the scan's per-folder digests are compared with those the last complete
build saved: the pool is started at the first folder that differs, at once when there is no record
of a last build (or the pipeline changed, or ``--force``), and never when every folder is the same.

This is only a guess about timing: the plan decides what is built, and a pool that was not started
here starts when it is needed.
"""

from __future__ import annotations

import json
from pathlib import Path

from mmprep.atomic import atomic_write
from mmprep.executors import warm_up


class WarmUp:
    def __init__(self, out: Path, pipeline_hash: str, *, enabled: bool, force: bool, folder_input: bool):
        self.path = out / ".scan.json"
        self.pipeline_hash = pipeline_hash
        self.folders: dict[str, str] = {}
        self.started = False
        self.enabled = enabled
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
        if self.enabled and not self.started:
            self.started = True
            warm_up()

    def folder(self, name: str, digest: str) -> None:
        """The scan's ``on_folder`` callback."""
        self.folders[name] = digest
        if not self.started and self.known is not None and self.known.get(name) != digest:
            self.start()

    def save(self) -> None:
        """After a complete build: what the corpus looked like (nothing to save for a manifest)."""
        if self.folders and self.folders != self.known:
            doc = {"pipeline": self.pipeline_hash, "folders": self.folders}
            atomic_write(self.path, json.dumps(doc, sort_keys=True).encode())
