"""CPU seconds per image, one process per method: a fair comparison on a shared, busy machine.

Wall-clock throughput on a machine that other jobs load mostly measures the scheduler: a tool
with more runnable threads (img2dataset runs several per process) takes a bigger share of the
cores. CPU time spent per image does not depend on that share. Each method runs with one worker:
``mmprep build -w 1`` (builds in-process), img2dataset with ``processes_count=1, thread_count=1``,
the bare loops in this process; CPU = user + system time of the process tree (``RUSAGE_CHILDREN``
for the subprocesses, which wait for all their workers; start-up and imports included).
"""

from __future__ import annotations

import resource
import time
from collections.abc import Callable
from typing import Any


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def self_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def measure(fn: Callable[[], dict], *, subprocess_tree: bool) -> dict[str, Any]:
    clock = children_cpu if subprocess_tree else self_cpu
    c0, w0 = clock(), time.perf_counter()
    res = fn()
    return {**res, "cpu_seconds": clock() - c0, "wall_seconds": time.perf_counter() - w0}


def cpu_section(methods: dict[str, tuple[Callable[[], dict], bool]], n: int, repeat: int) -> dict[str, Any]:
    """``methods``: name -> (run with one worker, runs in a subprocess?). Best of ``repeat`` per method."""
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    for r in range(repeat):
        for name, (fn, sub) in methods.items():
            res = measure(fn, subprocess_tree=sub)
            runs[name].append(res)
            print(f"cpu run {r + 1}/{repeat} {name:20s} {res['cpu_seconds']:7.2f} CPU-s "
                  f"({1000 * res['cpu_seconds'] / n:6.2f} ms/image, wall {res['wall_seconds']:.1f} s) "
                  f"ok={res['images_ok']}", flush=True)
    best = {m: min(rs, key=lambda x: x["cpu_seconds"]) for m, rs in runs.items()}
    per_cpu_s = {m: n / b["cpu_seconds"] for m, b in best.items()}
    return {"images_per_cpu_second": per_cpu_s,
            "cpu_ms_per_image": {m: 1000 * b["cpu_seconds"] / n for m, b in best.items()}, "runs": runs}


def ratios(rate: dict[str, float], prefix: str = "") -> dict[str, float]:
    out = {}
    for base in ("bare_opencv", "bare_opencv_reduced", "img2dataset"):
        for ours in ("mmprep", "mmprep_cache_on"):
            if base in rate and ours in rate:
                out[f"{prefix}{ours}_vs_{base}"] = rate[ours] / rate[base]
    return out
