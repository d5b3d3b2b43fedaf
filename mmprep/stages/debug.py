"""``debug.trace``: note which samples a stage position really processed.

Appends one line ``TAG KEY`` per sample to a file, so a user (or a test) can see what a rerun
recomputed and what came from the cache. It also adds TAG to the sample's ``meta.trace`` list.
"""

from __future__ import annotations

import os
import time

from pydantic import Field

from mmprep.sample import Sample, meta
from mmprep.stage import Stage, StageConfig, register


@register
class Trace(Stage):
    """Log every sample this position processes to a file (for checking caching and resume)."""

    name = "debug.trace"

    class Config(StageConfig):
        path: str = Field(..., description="File to append `TAG KEY` lines to.")
        tag: str = Field("trace", description="Written before each key; also appended to meta.trace.")
        cacheable: bool = Field(False, description="Cache this position's output like an expensive stage.")
        delay: float = Field(0.0, ge=0, description="Seconds to sleep per sample, to act like a slow stage.")

    def __init__(self, config: StageConfig):
        super().__init__(config)
        self.cacheable = config.cacheable

    def process(self, sample: Sample) -> Sample:
        if self.config.delay:
            time.sleep(self.config.delay)
        with open(self.config.path, "a", encoding="utf-8") as fh:
            fh.write(f"{self.config.tag} {sample['__key__']}\n")
            fh.flush()
            os.fsync(fh.fileno())
        meta(sample).setdefault("trace", []).append(self.config.tag)
        return sample
