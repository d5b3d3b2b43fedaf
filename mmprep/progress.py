"""Progress while a build runs: a rich bar on a terminal, a plain log line every few seconds otherwise.

Workers write ``OUT/.progress/SHARD.json`` (samples done, errors); a thread here polls those files,
which works the same for local processes and Dask workers on a shared filesystem.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from pathlib import Path

log = logging.getLogger("mmprep.build")


class Progress:
    def __init__(self, directory: Path, *, total: int, shards: int, base_done: int = 0, shards_done: int = 0,
                 enabled: bool = True, interval: float = 10.0):
        self.directory = directory
        self.total = total
        self.shards = shards
        self.base_done = base_done
        self.shards_done = shards_done
        self.enabled = enabled
        self.interval = interval
        self.start = time.monotonic()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._bar = None

    def _read(self) -> tuple[int, int]:
        done = errors = 0
        for path in self.directory.glob("*.json"):
            try:
                doc = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            done += doc.get("done", 0)
            errors += doc.get("errors", 0)
        return done + self.base_done, errors

    def _line(self, done: int, errors: int) -> str:
        rate = (done - self.base_done) / max(time.monotonic() - self.start, 1e-9)
        return (f"{done}/{self.total} samples, {self.shards_done}/{self.shards} shards, "
                f"{rate:.1f} samples/s, {errors} errors")

    def _loop(self) -> None:
        last_log = 0.0
        while not self._stop.wait(0.5):
            done, errors = self._read()
            if self._bar is not None:
                bar, task = self._bar
                bar.update(task, completed=done, description=self._line(done, errors))
            elif time.monotonic() - last_log >= self.interval:
                last_log = time.monotonic()
                log.info(self._line(done, errors))

    def __enter__(self) -> Progress:
        if not self.enabled:
            return self
        if sys.stderr.isatty():
            from rich.progress import BarColumn, TextColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            bar = RichProgress(TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(), transient=True)
            bar.start()
            self._bar = (bar, bar.add_task("starting", total=self.total, completed=self.base_done))
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def shard_done(self) -> None:
        self.shards_done += 1

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._bar is not None:
            self._bar[0].stop()
        if self.enabled:
            log.info(self._line(*self._read()))
