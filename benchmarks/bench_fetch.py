"""Benchmark: a URL list -> 256 px JPEG shards, ``mmprep build pipelines/urls.yaml`` against img2dataset.

The photo corpus of ``bench_images.py`` (mixed JPEG/PNG/WebP, 0.1-3 MP) is served over HTTP from
localhost by a threaded server in its own process, which waits ``latency`` ms before each response
(0 ms: the cost of the tools themselves; 50 ms: a far server, where concurrency matters). Both tools
get the same URLs and captions, the same downloads at once per process (``--threads``), the same
centre crop to 256 and JPEG q95, no retries, and each runs with one process per core and with two
(mmprep's default when a pipeline starts with ``fetch``); the best of each is compared; img2dataset
1.x runs in a virtual environment of its own under ``benchmarks/.work/``. mmprep's content cache is
off (img2dataset has none). Runs are interleaved; images/s and the ratio are printed and written to
``benchmarks/results/fetch.json``.

    python benchmarks/bench_fetch.py              # 2,000 photos, 0 and 50 ms
    python benchmarks/bench_fetch.py --quick      # 300 photos
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks.benchutil import save, timed_build  # noqa: E402
from benchmarks.images_baselines import ensure_img2dataset, img2dataset_version, run_img2dataset  # noqa: E402
from benchmarks.images_corpus import files, make_corpus  # noqa: E402

SIZE, QUALITY = 256, 95
SERVER = r"""
import functools, http.server, sys, time
latency = float(sys.argv[2]) / 1000

class Handler(http.server.SimpleHTTPRequestHandler):
    def do_GET(self):
        if latency:
            time.sleep(latency)
        super().do_GET()

    def log_message(self, *args):
        pass

httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=sys.argv[1]))
httpd.request_queue_size = 512
print(httpd.server_port, flush=True)
httpd.serve_forever()
"""


class Served:
    """The corpus folder over HTTP on localhost, with ``latency`` ms before each response."""

    def __init__(self, root: Path, latency: float):
        self.proc = subprocess.Popen([sys.executable, "-c", SERVER, str(root), str(latency)], stdout=subprocess.PIPE,
                                     text=True)
        self.url = f"http://127.0.0.1:{self.proc.stdout.readline().strip()}"

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait()


def url_rows(paths: list[Path], base: str) -> list[dict]:
    return [{"key": p.stem, "url": f"{base}/{p.name}", "txt": p.with_suffix(".txt").read_text(encoding="utf-8")}
            for p in paths]


def run_mmprep(rows: list[dict], work: Path, *, workers: int | None, threads: int, n: int) -> dict:
    import yaml

    doc = yaml.safe_load((ROOT / "pipelines" / "urls.yaml").read_text())
    doc["cache"] = {"enabled": False}
    doc["stages"][0].update(concurrency=threads, retries=0, timeout=30)
    doc["output"]["max_samples"] = max(25, min(250, -(-n // (6 * (workers or 4)))))
    doc["execution"]["batch_size"] = max(doc["execution"]["batch_size"], threads)
    pipeline = work / "urls-bench.yaml"
    pipeline.write_text(yaml.safe_dump(doc, sort_keys=False))
    manifest = work / "urls.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = work / "fetch-out"
    shutil.rmtree(out, ignore_errors=True)
    wall, summary = timed_build([str(pipeline), "-i", str(manifest), "-o", str(out),
                                 *(["-w", str(workers)] if workers else [])], ROOT)
    return {"seconds": wall, "images_ok": summary["samples_out"], "errors": summary["errors_by_reason"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="300 photos")
    ap.add_argument("-n", type=int, default=None, help="number of photos (default 2000, quick 300)")
    ap.add_argument("--latency", type=float, nargs="+", default=[0.0, 50.0], help="ms before each response")
    ap.add_argument("--threads", type=int, default=16, help="downloads at once per process, both tools")
    ap.add_argument("--repeat", type=int, default=1, help="runs per tool and latency; the best counts")
    args = ap.parse_args()
    n = args.n or (300 if args.quick else 2000)
    cores = len(os.sched_getaffinity(0))
    work = HERE / ".work"
    corpus = work / f"photos-{n}"
    make_corpus(corpus, n, cores)
    paths = files(corpus, n)
    py = ensure_img2dataset(work / "i2d-venv")
    results = {}
    counts = (cores, 2 * cores)  # processes: one per core, and two (mmprep's default for fetch pipelines)
    for latency in args.latency:
        served = Served(corpus, latency)
        try:
            rows = url_rows(paths, served.url)
            runs: dict[str, list[dict]] = {f"{tool}_{p}p": [] for tool in ("mmprep", "img2dataset") for p in counts}
            for _ in range(args.repeat):
                for p in counts:
                    runs[f"mmprep_{p}p"].append(run_mmprep(rows, work, workers=p, threads=args.threads, n=n))
                    runs[f"img2dataset_{p}p"].append(run_img2dataset(
                        py, paths, work / "i2d-http", processes=p, size=SIZE, quality=QUALITY, threads=args.threads,
                        base_url=served.url))
        finally:
            served.close()
        rate = {k: max(r["images_ok"] / r["seconds"] for r in v) for k, v in runs.items()}
        best = {tool: max(v for k, v in rate.items() if k.startswith(tool)) for tool in ("mmprep", "img2dataset")}
        default = rate[f"mmprep_{2 * cores}p"] / rate[f"img2dataset_{cores}p"]
        ratio = best["mmprep"] / best["img2dataset"]
        results[f"{latency:g}ms"] = {"images_per_s": rate, "best_vs_best": ratio,
                                     "mmprep_default_vs_img2dataset_one_per_core": default, "runs": runs}
        print(f"latency {latency:g} ms: " + ", ".join(f"{k} {v:.1f}" for k, v in rate.items()) + " images/s; "
              f"best vs best {ratio:.2f}x; mmprep's default ({2 * cores} processes) vs img2dataset with one "
              f"process per core {default:.2f}x", flush=True)
    path = save("fetch", {"images": n, "cores": cores, "threads_per_process": args.threads,
                          "img2dataset_version": img2dataset_version(py), "size": SIZE, "quality": QUALITY,
                          "results": results})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
