"""Shared by the benchmark scripts: machine description, peak memory of a process tree, results files."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import threading
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
WORK = Path(__file__).resolve().parent / ".work"


def ensure_bytecode() -> None:
    """Compile mmprep's modules as ``pip install`` does for an installed package. An editable checkout
    run with PYTHONDONTWRITEBYTECODE=1 (as on our CI machines) would otherwise recompile every module in
    every process, and process start-up would be measured slower than users see it."""
    import compileall

    root = Path(__file__).resolve().parent.parent
    compileall.compile_dir(root / "mmprep", quiet=1)


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpus": os.cpu_count(),
            "machine": platform.machine()}
    try:
        import psutil

        info["memory_gib"] = round(psutil.virtual_memory().total / 2**30, 1)
    except ImportError:
        pass
    try:
        import torch

        info["torch"] = torch.__version__
        info["cuda"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    except ImportError:
        pass
    return info


def run_measured(cmd: list[str], *, cwd: Path | None = None, env: dict | None = None) -> dict:
    """Run a command; wall seconds and the peak RSS of its whole process tree, two ways: the largest sum
    of the processes' RSS seen by a sampler (every 20 ms: a short build's peak can fall between samples),
    and the sum of each process's own high-water mark (Linux ``VmHWM``: exact per process, and an upper
    bound of the tree's peak, as the processes may peak at different times)."""
    import psutil

    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    peak = {"tree": 0, "main": 0}
    hwm: dict[int, int] = {}
    stop = threading.Event()

    def sample() -> None:
        try:
            root = psutil.Process(proc.pid)
        except psutil.NoSuchProcess:
            return
        while not stop.is_set():
            try:
                procs = [root, *root.children(recursive=True)]
                rss = {p.pid: p.memory_info().rss for p in procs if p.is_running()}
            except psutil.Error:
                rss = {}
            if rss:
                peak["tree"] = max(peak["tree"], sum(rss.values()))
                peak["main"] = max(peak["main"], rss.get(proc.pid, 0))
            for pid in rss:
                hwm[pid] = max(hwm.get(pid, 0), _high_water(pid))
            stop.wait(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    out, err = proc.communicate()
    stop.set()
    thread.join()
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-3000:]}")
    return {"seconds": round(seconds, 3), "peak_rss_mib": round(peak["tree"] / 2**20, 1),
            "peak_rss_main_mib": round(peak["main"] / 2**20, 1),
            "peak_rss_hwm_sum_mib": round(sum(hwm.values()) / 2**20, 1), "stdout": out}


def _high_water(pid: int) -> int:
    """A process's peak RSS so far in bytes (0 where /proc is not there or the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def save(name: str, doc: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {"benchmark": name, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "machine": machine(),
           **doc}
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    return path


def timed_build(cmd: list[str], cwd: Path) -> tuple[float, dict]:
    """Run an ``mmprep build ... --json`` command: its wall seconds and its closing JSON summary."""
    import sys

    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "mmprep", "build", *cmd, "--json", "-q"], capture_output=True,
                          text=True, cwd=cwd)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"mmprep build failed: {proc.stderr[-2000:]}")
    return wall, json.loads(proc.stdout.strip().splitlines()[-1])
