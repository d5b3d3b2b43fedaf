"""The two baselines of ``bench_images.py``: img2dataset 1.x (own venv) and a bare OpenCV loop.

The bare loop does what img2dataset's resizer does for ``center_crop``, without any framework:
read the file, ``cv2.imdecode`` at full size, resize the shorter side to 256 with INTER_AREA,
crop the centre, ``cv2.imencode`` JPEG q95; spread over a process pool with one process per core.
"""

from __future__ import annotations

import csv
import json
import subprocess
import sys
import time
import venv
from multiprocessing import get_context
from pathlib import Path

IMG2DATASET = "img2dataset>=1,<2"

RUNNER = r"""
import json, sys, time
from img2dataset import download
args = json.loads(sys.argv[1])
t0 = time.perf_counter()
download(url_list=args["csv"], input_format="csv", url_col="url", caption_col="caption",
         output_format="webdataset", output_folder=args["out"], processes_count=args["processes"],
         thread_count=args["threads"], image_size=args["size"], resize_mode="center_crop",
         resize_only_if_bigger=False, encode_format="jpg", encode_quality=args["quality"],
         number_sample_per_shard=args["per_shard"], distributor="multiprocessing", timeout=30, retries=0,
         enable_wandb=False, compute_hash=None)
print(json.dumps({"seconds": time.perf_counter() - t0}))
"""


def ensure_img2dataset(venv_dir: Path) -> Path:
    """A virtual environment of its own (its pins conflict with ours); created and filled on first use."""
    py = venv_dir / "bin" / "python"
    if not py.exists():
        venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
    probe = subprocess.run([str(py), "-c", "import img2dataset"], capture_output=True)
    if probe.returncode != 0:
        subprocess.run([str(py), "-m", "pip", "install", "-q", IMG2DATASET], check=True)
    return py


def img2dataset_version(py: Path) -> str:
    out = subprocess.run([str(py), "-m", "pip", "show", "img2dataset"], capture_output=True, text=True).stdout
    return next((line.split(":", 1)[1].strip() for line in out.splitlines() if line.startswith("Version")), "?")


def run_img2dataset(py: Path, files: list[Path], work: Path, *, processes: int, size: int, quality: int,
                    threads: int = 4, base_url: str | None = None) -> dict:
    """Wall-clock seconds of ``download()`` on file:// URLs (or ``base_url/NAME``), and how many images it
    wrote."""
    work.mkdir(parents=True, exist_ok=True)
    table = work / "urls.csv"
    with table.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["url", "caption"])
        for f in files:
            url = f"{base_url}/{f.name}" if base_url else f.resolve().as_uri()
            w.writerow([url, f.with_suffix(".txt").read_text(encoding="utf-8")])
    out = work / f"i2d-out-{processes}x{threads}"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    args = {"csv": str(table), "out": str(out), "processes": processes, "threads": threads, "size": size,
            "quality": quality, "per_shard": 250}
    t0 = time.perf_counter()
    proc = subprocess.run([str(py), "-c", RUNNER, json.dumps(args)], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"img2dataset failed: {proc.stderr[-2000:]}")
    ok = 0
    for stats in out.glob("*_stats.json"):
        ok += json.loads(stats.read_text()).get("successes", 0)
    return {"seconds": wall, "images_ok": ok}


def _bare_one(args: tuple[str, int, int, bool]) -> int:
    import cv2
    import numpy as np

    path, size, quality, reduced = args
    data = np.fromfile(path, np.uint8)
    flag = cv2.IMREAD_COLOR
    if reduced and path.endswith(".jpg"):
        hdr = cv2.imdecode(data, cv2.IMREAD_REDUCED_COLOR_8)  # cheap way to learn the size (1/64 of the work)
        s = min(hdr.shape[:2]) * 8
        flag = next((f for k, f in ((8, cv2.IMREAD_REDUCED_COLOR_8), (4, cv2.IMREAD_REDUCED_COLOR_4),
                                    (2, cv2.IMREAD_REDUCED_COLOR_2)) if s // k >= size), cv2.IMREAD_COLOR)
    img = cv2.imdecode(data, flag)
    h, w = img.shape[:2]
    scale = size / min(h, w)
    nw, nh = max(size, round(w * scale)), max(size, round(h * scale))
    img = cv2.resize(img, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    y0, x0 = (nh - size) // 2, (nw - size) // 2
    img = img[y0 : y0 + size, x0 : x0 + size]
    ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, quality])
    return len(buf)


def run_bare_opencv(files: list[Path], *, processes: int, size: int, quality: int, reduced: bool = False) -> dict:
    """Wall-clock seconds of the bare loop over a fresh process pool (pool start-up included)."""
    ctx = get_context("fork" if sys.platform == "linux" else "spawn")
    t0 = time.perf_counter()
    with ctx.Pool(processes) as pool:
        sizes = pool.map(_bare_one, [(str(f), size, quality, reduced) for f in files], chunksize=16)
    return {"seconds": time.perf_counter() - t0, "images_ok": sum(1 for s in sizes if s > 0)}


def run_bare_inline(files: list[Path], *, size: int, quality: int, reduced: bool = False) -> dict:
    """The bare loop in this process, one image after another (for CPU-time measurements)."""
    import cv2

    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        sizes = [_bare_one((str(f), size, quality, reduced)) for f in files]
    finally:
        cv2.setNumThreads(threads)
    return {"images_ok": sum(1 for s in sizes if s > 0)}
