"""What a build sends a worker (:class:`ShardTask`, one per output shard) and what a worker process keeps
between tasks: its stages, set up once per pipeline (possibly ahead of the first task, by ``prepare``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from mmprep.config import instantiate, parse_validated
from mmprep.corpus import Record
from mmprep.stage import Stage

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
    reuse: bool = False  # copy unchanged records from the previous build of this shard
    progress: bool = True  # write OUT/.progress/NAME.json for the driver's progress bar or log lines
    root: str | None = None  # the input folder (its errors' paths are under it), None for a manifest
    stop_file: str | None = None  # made when the build is stopped: a shard still running then is not published

    def __getstate__(self) -> dict[str, Any]:
        # records travel as plain tuples: a named tuple pickles through its class, twice as slow
        return {**self.__dict__, "records": [tuple(r) for r in self.records]}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state, records=[Record._make(r) for r in state["records"]])


def setup_stages(pipeline: dict[str, Any], pipeline_hash: str) -> list[Stage]:
    """This process's stages for the pipeline, set up on first use (the pool may call it ahead).

    Keyed by the whole pipeline, not only ``pipeline_hash``: that leaves out settings that do not change
    the output (fetch's timeout, retries, User-Agent), which the stages set up must still follow."""
    key = f"{pipeline_hash}:{json.dumps(pipeline, sort_keys=True, default=str)}"
    stages = _STAGES.get(key)
    if stages is None:
        stages = instantiate(parse_validated(pipeline))
        for stage in stages:
            stage.setup()
        _STAGES[key] = stages
    return stages


def prepare(pipeline: dict[str, Any], pipeline_hash: str) -> None:
    """Set the stages up ahead of the first shard (submitted to a pool started early). Returns None, so
    the pool does not pickle the stages back to the driver."""
    setup_stages(pipeline, pipeline_hash)


def stages_for(task: ShardTask) -> list[Stage]:
    return setup_stages(task.pipeline, task.pipeline_hash)
