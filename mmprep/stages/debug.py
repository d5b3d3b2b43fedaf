"""``debug.trace``: note which samples a stage position really processed.

Appends one line ``TAG KEY`` per sample to a file, so a user (or a test) can see what a rerun
recomputed and what came from the cache. It also adds TAG to the sample's ``meta.trace`` list, and
counts every sample of each shard, replayed ones included (the pattern for summarizing stages).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import time
from typing import Any

from pydantic import Field

from mmprep.errors import Drop
from mmprep.sample import Sample, meta
from mmprep.stage import Stage, StageConfig, register

log = logging.getLogger(__name__)


@register
class Trace(Stage):
    """Log every sample this position processes to a file (for checking caching and resume)."""

    name = "debug.trace"

    class Config(StageConfig):
        path: str = Field(..., description="File to append `TAG KEY` lines to.")
        tag: str = Field("trace", description="Written before each key; also appended to meta.trace.")
        cacheable: bool = Field(False, description="Cache this position's output like an expensive stage.")
        delay: float = Field(0.0, ge=0, description="Seconds to sleep per sample, to act like a slow stage.")
        exit_on: str | None = Field(None, description="In a worker process, exit abruptly at this key, like a "
                                    "decoder that crashes (for testing crash recovery).")
        count: bool = Field(False, description="Count every sample per shard, replayed ones included, like a "
                            "summarizing stage (which is then never skipped by the cache).")
        batch: bool = Field(False, description="Run as a batched stage and write each line as `TAG KEY N`, N "
                            "being the size of the batch the sample came in.")

    def __init__(self, config: StageConfig):
        super().__init__(config)
        self.cacheable = config.cacheable
        self.summarizes = config.count
        self.batched = config.batch
        self._suffix = ""

    def begin_shard(self) -> None:
        self.seen = 0

    def end_shard(self) -> dict[str, Any] | None:
        return {"samples": self.seen} if self.summarizes else None

    def replay(self, sample: Sample) -> None:
        self.seen += 1

    def finalize(self, summaries: list[dict[str, Any]], out_dir: Any) -> None:
        log.info("debug.trace %s: %d samples in this build's shards", self.config.tag,
                 sum(s["samples"] for s in summaries))

    def process(self, sample: Sample) -> Sample:
        self.seen += 1
        if sample["__key__"] == self.config.exit_on and multiprocessing.parent_process() is not None:
            os._exit(70)
        if self.config.delay:
            time.sleep(self.config.delay)
        with open(self.config.path, "a", encoding="utf-8") as fh:
            fh.write(f"{self.config.tag} {sample['__key__']}{self._suffix}\n")
            fh.flush()
            os.fsync(fh.fileno())
        meta(sample).setdefault("trace", []).append(self.config.tag)
        return sample

    def process_batch(self, samples: list[Sample]) -> list[Sample | list[Sample] | Drop]:
        self._suffix = f" {len(samples)}"
        try:
            return super().process_batch(samples)
        finally:
            self._suffix = ""
