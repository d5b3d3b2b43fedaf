"""A samples/s progress bar: rich on a terminal, a log line every 10 s otherwise, nothing when disabled."""

from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("mmprep.embed")


class Bar:
    def __init__(self, *, enabled: bool, label: str, interval: float = 10.0):
        self.enabled, self.label, self.interval = enabled, label, interval
        self.done = 0
        self.start = self.last = time.monotonic()
        self._rich = None

    def __enter__(self) -> Bar:
        if self.enabled and sys.stderr.isatty():
            from rich.progress import Progress, TextColumn

            self._rich = Progress(TextColumn("{task.description}"), transient=True)
            self._rich.start()
            self._task = self._rich.add_task(self._line())
        return self

    def _line(self) -> str:
        rate = self.done / max(time.monotonic() - self.start, 1e-9)
        return f"embed {self.label}: {self.done} samples, {rate:.1f} samples/s"

    def advance(self, n: int) -> None:
        self.done += n
        if self._rich is not None:
            self._rich.update(self._task, description=self._line())
        elif self.enabled and time.monotonic() - self.last >= self.interval:
            self.last = time.monotonic()
            log.info(self._line())

    def __exit__(self, *exc: object) -> None:
        if self._rich is not None:
            self._rich.stop()
