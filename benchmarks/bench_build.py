"""Core build benchmark: full build, rerun with no change, rerun with 1% of inputs changed; peak memory.

Baseline: the full build of the same corpus in the same run (the targets are ratios to it):
no-change rerun <= 5%, 1% changed <= 10%, and peak RSS at 20,000 samples within 10% of 2,000.
Two workloads: tiny samples (a 96x64 JPEG + a caption: all I/O, the worst case for the ratios, and
the memory measurement) and photos through pipelines/images.yaml (real decode/resize/encode work).

    python benchmarks/bench_build.py            # 2,000 and 20,000 samples
    python benchmarks/bench_build.py --quick    # 500 and 5,000
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchutil import WORK, ensure_bytecode, run_measured, save  # noqa: E402

PIPELINE = """\
name: bench_build
stages:
  - stage: image.decode
  - stage: text.decode
  - stage: text.normalize
output:
  name: bench
  max_samples: 1000
  required: [txt, jpg]
"""


def make_corpus(root: Path, n: int) -> None:
    from mmprep.testing.media import image_bytes

    if (root / ".complete").exists() and len(list(root.glob("*/*.txt"))) == n:
        return
    shutil.rmtree(root, ignore_errors=True)
    jpgs = [image_bytes(96, 64, seed=s) for s in range(50)]
    for i in range(n):
        d = root / f"d{i // 1000:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"s{i:06d}.jpg").write_bytes(jpgs[i % 50])
        (d / f"s{i:06d}.txt").write_text(f"caption number {i} with a few more words")
    (root / ".complete").write_text("ok")


def build(pipe: Path, corpus: Path, out: Path, workers: int) -> dict:
    cmd = [sys.executable, "-m", "mmprep", "build", str(pipe), "-i", str(corpus), "-o", str(out),
           "-w", str(workers), "--json", "-q"]
    res = run_measured(cmd)
    res["summary"] = json.loads(res.pop("stdout").strip().splitlines()[-1])
    return res


def run_size(n: int, workers: int) -> dict:
    corpus = WORK / f"build_{n}"
    make_corpus(corpus, n)
    out = WORK / f"build_{n}_out"
    shutil.rmtree(out, ignore_errors=True)
    pipe = WORK / "bench_build.yaml"
    pipe.write_text(PIPELINE)
    full = build(pipe, corpus, out, workers)
    nochange = build(pipe, corpus, out, workers)
    changed = sorted(corpus.glob("*/*.txt"))[:: 100]  # 1%
    for path in changed:
        path.write_text(path.read_text() + " (edited)")
    one_pct = build(pipe, corpus, out, workers)
    for path in changed:  # restore, so the next run starts from the same corpus
        path.write_text(path.read_text().replace(" (edited)", ""))
    def ratio(run: dict, key: str) -> float:
        return round(run[key] / full[key], 4)

    for run in (full, nochange, one_pct):
        run["build_seconds"] = run["summary"]["seconds"]
    return {
        "samples": n, "workers": workers, "full": full, "no_change": nochange, "one_percent_changed": one_pct,
        # build_seconds: what `mmprep build` reports (corpus scan to reports written); seconds: the whole
        # process, including interpreter start and imports (about 0.3-0.5 s here)
        "ratio_no_change": ratio(nochange, "build_seconds"),
        "ratio_one_percent": ratio(one_pct, "build_seconds"),
        "ratio_no_change_process": ratio(nochange, "seconds"),
        "ratio_one_percent_process": ratio(one_pct, "seconds"),
        "samples_per_second_full": round(n / full["build_seconds"], 1),
    }


def run_photos(n: int, workers: int) -> dict:
    """The same three builds with real work per sample: pipelines/images.yaml over n photos (0.1-3 MP)."""
    from images_corpus import make_corpus

    corpus = WORK / f"photos-{n}"
    if not (WORK / f"photos-{n}.json").exists():
        make_corpus(corpus, n, workers)
    out = WORK / f"build_photos_{n}_out"
    shutil.rmtree(out, ignore_errors=True)
    pipe = Path(__file__).resolve().parent.parent / "pipelines" / "images.yaml"
    full = build(pipe, corpus, out, workers)
    nochange = build(pipe, corpus, out, workers)
    changed = sorted(corpus.glob("*.txt"))[::100]
    for path in changed:
        path.write_text(path.read_text() + " (edited)")
    one_pct = build(pipe, corpus, out, workers)
    for path in changed:
        path.write_text(path.read_text().replace(" (edited)", ""))
    for run in (full, nochange, one_pct):
        run["build_seconds"] = run["summary"]["seconds"]
    return {"samples": n, "pipeline": "pipelines/images.yaml", "full": full, "no_change": nochange,
            "one_percent_changed": one_pct,
            "ratio_no_change": round(nochange["build_seconds"] / full["build_seconds"], 4),
            "ratio_one_percent": round(one_pct["build_seconds"] / full["build_seconds"], 4)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--photos", type=int, default=2000, help="photos for the real-work section (0: skip)")
    args = ap.parse_args()
    ensure_bytecode()
    small, large = (500, 5000) if args.quick else (2000, 20000)
    runs = [run_size(small, args.workers), run_size(large, args.workers)]
    photos = run_photos(args.photos, args.workers) if args.photos else None
    if photos:
        print(f"{photos['samples']} photos ({photos['pipeline']}): full {photos['full']['build_seconds']:.2f}s, "
              f"no-change rerun {photos['ratio_no_change']:.1%} of full (target <= 5%), "
              f"1% changed {photos['ratio_one_percent']:.1%} (target <= 10%)")
    mem_ratio = runs[1]["full"]["peak_rss_mib"] / runs[0]["full"]["peak_rss_mib"]
    for r in runs:
        print(f"{r['samples']:>6} samples: full {r['full']['build_seconds']:.2f}s ({r['samples_per_second_full']}/s), "
              f"no-change rerun {r['no_change']['build_seconds']:.2f}s = {r['ratio_no_change']:.1%} of full "
              f"(target <= 5%), 1% changed {r['one_percent_changed']['build_seconds']:.2f}s = "
              f"{r['ratio_one_percent']:.1%} (target <= 10%), peak RSS {r['full']['peak_rss_mib']} MiB; "
              f"whole process: {r['ratio_no_change_process']:.1%} and {r['ratio_one_percent_process']:.1%}")
    print(f"peak RSS {large} / {small} samples: {mem_ratio:.3f} (target <= 1.10)")
    path = save("build", {"runs": runs, "photos": photos, "peak_rss_ratio": round(mem_ratio, 4),
                          "targets": {"no_change": 0.05, "one_percent": 0.10, "peak_rss_ratio": 1.10}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
