"""Core build benchmark: full build, reruns with no change and with 1% of inputs changed; peak memory.

Baseline: the full build of the same corpus in the same run (the targets are ratios to it):
no-change rerun <= 5%, 1% changed <= 10%, and peak RSS at 20,000 samples within 10% of 2,000 (the
sum of every process's own peak RSS, see benchutil.run_measured; the sampled tree sum is kept too).
Two workloads: tiny samples (a 96x64 JPEG + a caption: all I/O, the worst case for the ratios, and
the memory measurement) and photos through pipelines/images.yaml (real decode/resize/encode work).
The 1% of edits is spread over every shard (the worst case, and the one the target is read on); the
tiny corpora are also rerun with as many edits in one folder (one shard: a re-exported folder).

    python benchmarks/bench_build.py            # 2,000 and 20,000 samples
    python benchmarks/bench_build.py --quick    # 500 and 5,000
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
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


def three_builds(pipe: Path, corpus: Path, out: Path, workers: int, edits: list[Path], repeats: int,
                 clustered: list[Path] | None = None) -> dict:
    """A full build (three times, from scratch), then `repeats` reruns with no change and `repeats` with
    the `edits` files changed (each run edits or restores them, so each sees 1% of the inputs changed).
    Medians are compared: one rerun takes a fraction of a second, and single runs vary by 10-20% (a full
    build now and then by 50%: the median of three keeps one slow one out of the baseline)."""
    fulls = []
    for _ in range(3):
        shutil.rmtree(out, ignore_errors=True)
        fulls.append(build(pipe, corpus, out, workers))
    nochange = [build(pipe, corpus, out, workers) for _ in range(repeats)]
    changed = []
    for i in range(repeats):
        for path in edits:
            text = path.read_text()
            path.write_text(text + " (edited)" if i % 2 == 0 else text.replace(" (edited)", ""))
        changed.append(build(pipe, corpus, out, workers))
        changed[-1]["phases_seconds"] = json.loads((out / "stats.json").read_text())["run"]["phases_seconds"]
    if repeats % 2:  # restore, so the next run starts from the same corpus
        for path in edits:
            path.write_text(path.read_text().replace(" (edited)", ""))
    together = []  # the same count of edits, all in one folder (one shard): what a re-exported folder does
    for i in range(repeats if clustered else 0):
        for path in clustered:
            text = path.read_text()
            path.write_text(text + " (edited)" if i % 2 == 0 else text.replace(" (edited)", ""))
        together.append(build(pipe, corpus, out, workers))
    if clustered and repeats % 2:
        for path in clustered:
            path.write_text(path.read_text().replace(" (edited)", ""))
    for run in (*fulls, *nochange, *changed, *together):
        run["build_seconds"] = run["summary"]["seconds"]

    def median(runs: list[dict], key: str) -> float:
        return round(statistics.median(r[key] for r in runs), 3)

    full = {key: median(fulls, key) for key in ("build_seconds", "seconds")}
    for key in ("peak_rss_mib", "peak_rss_hwm_sum_mib"):
        full[key] = max(r[key] for r in fulls)
    res = {"full": full, "full_runs": fulls}
    for name, runs in (("no_change", nochange), ("one_percent_changed", changed)):
        res[name] = {key: median(runs, key) for key in ("build_seconds", "seconds")}
        res[name]["build_seconds_all"] = [r["build_seconds"] for r in runs]
        res[name]["phases_seconds_last"] = json.loads((out / "stats.json").read_text())["run"]["phases_seconds"] \
            if name == "one_percent_changed" else None
        res[name]["summary_last"] = runs[-1]["summary"]
    # where a 1%-changed rerun's time goes (scan: listing and records; plan; shards, with the merge that
    # keeps pace with them; merge: what is left of it): the median of each phase over the reruns
    res["one_percent_changed"]["phases_seconds_median"] = {
        phase: round(statistics.median(r["phases_seconds"].get(phase, 0.0) for r in changed), 3)
        for phase in ("scan", "plan", "shards", "merge")}
    if together:
        res["one_percent_in_one_folder"] = {key: median(together, key) for key in ("build_seconds", "seconds")}
        res["one_percent_in_one_folder"]["build_seconds_all"] = [r["build_seconds"] for r in together]
        res["ratio_one_percent_in_one_folder"] = round(res["one_percent_in_one_folder"]["build_seconds"]
                                                       / full["build_seconds"], 4)
    # build_seconds: what `mmprep build` reports (corpus scan to reports written); seconds: the whole
    # process, including interpreter start and imports (about 0.35 s here)
    for key, suffix in (("build_seconds", ""), ("seconds", "_process")):
        res[f"ratio_no_change{suffix}"] = round(res["no_change"][key] / full[key], 4)
        res[f"ratio_one_percent{suffix}"] = round(res["one_percent_changed"][key] / full[key], 4)
    return res


def run_size(n: int, workers: int, repeats: int) -> dict:
    corpus = WORK / f"build_{n}"
    make_corpus(corpus, n)
    pipe = WORK / "bench_build.yaml"
    pipe.write_text(PIPELINE)
    edits = sorted(corpus.glob("*/*.txt"))[::100]  # 1%, spread over every shard (the worst case)
    clustered = sorted(corpus.glob("d001/*.txt"))[: len(edits)]  # as many, in one folder (one shard)
    res = three_builds(pipe, corpus, WORK / f"build_{n}_out", workers, edits, repeats, clustered)
    return {"samples": n, "workers": workers, **res,
            "samples_per_second_full": round(n / res["full"]["build_seconds"], 1)}


def run_photos(n: int, workers: int, repeats: int) -> dict:
    """The same builds with real work per sample: pipelines/images.yaml over n photos (0.1-3 MP)."""
    from images_corpus import make_corpus

    corpus = WORK / f"photos-{n}"
    if not (WORK / f"photos-{n}.json").exists():
        make_corpus(corpus, n, workers)
    pipe = Path(__file__).resolve().parent.parent / "pipelines" / "images.yaml"
    edits = sorted(corpus.glob("*.txt"))[::100]
    res = three_builds(pipe, corpus, WORK / f"build_photos_{n}_out", workers, edits, repeats)
    return {"samples": n, "pipeline": "pipelines/images.yaml", **res}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--photos", type=int, default=2000, help="photos for the real-work section (0: skip)")
    ap.add_argument("--repeats", type=int, default=5, help="reruns of each kind; medians are compared")
    args = ap.parse_args()
    ensure_bytecode()
    small, large = (500, 5000) if args.quick else (2000, 20000)
    runs = [run_size(small, args.workers, args.repeats), run_size(large, args.workers, args.repeats)]
    photos = run_photos(args.photos, args.workers, max(1, args.repeats // 2)) if args.photos else None
    if photos:
        print(f"{photos['samples']} photos ({photos['pipeline']}): full {photos['full']['build_seconds']:.2f}s, "
              f"no-change rerun {photos['ratio_no_change']:.1%} of full (target <= 5%), "
              f"1% changed {photos['ratio_one_percent']:.1%} (target <= 10%)")
    # the target is read on the sum of the processes' own high-water marks: exact and stable from run
    # to run, where the sampled sum can miss a 0.5 s build's peak (it varied by 20 MiB at 2,000 samples)
    mem_ratio = runs[1]["full"]["peak_rss_hwm_sum_mib"] / runs[0]["full"]["peak_rss_hwm_sum_mib"]
    sampled_ratio = runs[1]["full"]["peak_rss_mib"] / runs[0]["full"]["peak_rss_mib"]
    for r in runs:
        print(f"{r['samples']:>6} samples: full {r['full']['build_seconds']:.2f}s ({r['samples_per_second_full']}/s), "
              f"no-change rerun {r['no_change']['build_seconds']:.2f}s = {r['ratio_no_change']:.1%} of full "
              f"(target <= 5%), 1% changed {r['one_percent_changed']['build_seconds']:.2f}s = "
              f"{r['ratio_one_percent']:.1%} (target <= 10%; all in one folder: "
              f"{r['one_percent_in_one_folder']['build_seconds']:.2f}s = {r['ratio_one_percent_in_one_folder']:.1%}), "
              f"peak RSS {r['full']['peak_rss_hwm_sum_mib']} MiB "
              f"(sampled {r['full']['peak_rss_mib']} MiB); "
              f"whole process: {r['ratio_no_change_process']:.1%} and {r['ratio_one_percent_process']:.1%}; "
              "1% changed by phase (medians): " + ", ".join(
                  f"{k} {v:.3f}s" for k, v in r["one_percent_changed"]["phases_seconds_median"].items()))
    print(f"peak RSS {large} / {small} samples: {mem_ratio:.3f} (target <= 1.10; sampled sums: {sampled_ratio:.3f})")
    path = save("build", {"runs": runs, "photos": photos, "peak_rss_ratio": round(mem_ratio, 4),
                          "peak_rss_ratio_sampled": round(sampled_ratio, 4),
                          "targets": {"no_change": 0.05, "one_percent": 0.10, "peak_rss_ratio": 1.10}})
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
