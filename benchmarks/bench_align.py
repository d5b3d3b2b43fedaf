"""Alignment benchmark: subtitle re-timing against ffsubsync, A/V offset against frame-rate correlation.

    python benchmarks/bench_align.py [--quick] [--ffsubsync PATH] [--set DIR] [--repeats N]

1. Generates a set with known truth (benchmarks/align/generate.py: espeak-ng speech when installed,
   SNR 8/12/20 dB white or pink noise, offsets +-10 s, framerate ratios, ad breaks, 25 % mismatched
   subtitles) and scores ``mmprep align`` and ffsubsync (when its executable is found, in its own
   virtualenv) on the same files in the same run, interleaved item by item after a warm-up run of
   each, ``--repeats`` timing passes (benchmarks/align/score.py).
2. A/V: flash-and-beep videos at 25 fps with known audio delays; mmprep's event matching against the
   baseline a simple tool would use: cross-correlating frame-difference energy with the audio
   energy rise at the video frame rate.

Writes benchmarks/results/align.json with the machine it ran on. Timings on shared cores are noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks" / "align"))
sys.path.insert(0, str(ROOT / "benchmarks"))

import generate  # noqa: E402
import score  # noqa: E402
from benchutil import ensure_bytecode  # noqa: E402

from mmprep.align.api import av_sync  # noqa: E402
from mmprep.align.avsync import read_video  # noqa: E402
from mmprep.align.speech import RATE  # noqa: E402
from mmprep.testing.speech import flash_beep_mp4  # noqa: E402


def machine() -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count()}
    try:
        import torch

        info["torch"] = torch.__version__
        info["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    except ImportError:
        info["torch"] = None
    return info


def naive_av(data: bytes, max_offset: float = 1.0) -> float | None:
    """Baseline: lag (s) maximising the correlation of frame change with audio energy rise, per frame."""
    sig = read_video(data)
    if sig.audio is None or sig.change.size < 3:
        return None
    hop = RATE / sig.fps
    n = sig.change.size
    idx = (np.arange(n + 1) * hop).astype(int)
    c = np.concatenate([[0.0], np.cumsum(sig.audio.astype(np.float64) ** 2)])
    energy = np.log10((c[np.minimum(idx[1:], c.size - 1)] - c[np.minimum(idx[:-1], c.size - 1)]) / hop + 1e-10)
    rise = np.maximum(np.diff(energy, prepend=energy[0]), 0)
    v = sig.change - sig.change.mean()
    a = rise - rise.mean()
    L = int(round(max_offset * sig.fps))
    lags = np.arange(-L, L + 1)
    corr = [np.dot(v[max(0, -k) : n - max(0, k)], a[max(0, k) : n - max(0, -k)]) for k in lags]
    return float(lags[int(np.argmax(corr))] / sig.fps)


def bench_av(n: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    errs_m, errs_b, t_m, t_b, flagged = [], [], 0.0, 0.0, 0
    for i in range(n):
        delay = float(rng.uniform(-0.5, 0.5))
        data, _ = flash_beep_mp4(delay=delay, seed=seed * 100 + i, fps=25, seconds=10.0, flashes=8)
        t = time.perf_counter()
        rec = av_sync(data)
        t_m += time.perf_counter() - t
        t = time.perf_counter()
        base = naive_av(data)
        t_b += time.perf_counter() - t
        flagged += rec["status"] != "ok"
        errs_m.append(abs(rec["offset"] - delay) * 1000 if rec["offset"] is not None else 1e4)
        errs_b.append(abs(base - delay) * 1000 if base is not None else 1e4)
    def stats(e: list[float]) -> dict:
        a = np.array(e)
        return {"median_ms": round(float(np.median(a)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2),
                "max_ms": round(float(a.max()), 2), "within_20ms": round(float((a <= 20).mean()), 4)}

    return {"videos": n, "fps": 25, "delays": "uniform +-0.5 s", "mmprep": {**stats(errs_m), "flagged": flagged,
            "seconds_per_video": round(t_m / n, 3)}, "frame_xcorr_baseline": {**stats(errs_b),
            "seconds_per_video": round(t_b / n, 3)}}


def bench_negatives(set_dir: Path, n: int) -> dict:
    """Negative controls only (every item has another item's subtitles), aligned in-process:
    the share that comes out ok must be ~0 (target: >= 99 % flagged)."""
    from mmprep.align.api import align_subtitles
    from mmprep.align.media import decode_audio

    generate.main([str(set_dir), "--items", str(n), "--seconds", "45", "--seed", "2", "--mismatch-share", "1.0",
                   "--snrs", "8,12,20"])
    meta = json.loads((set_dir / "truth.json").read_text())
    statuses, conf = [], []
    t = time.perf_counter()
    for it in meta["items"]:
        x, rate = decode_audio((set_dir / it["wav"]).read_bytes())
        rec = align_subtitles(x, rate, (set_dir / it["srt"]).read_bytes(), hint="srt", plot="none")[0]
        statuses.append(rec["status"])
        conf.append(rec["confidence"])
    return {"items": len(statuses), "flagged": round(float(np.mean([s != "ok" for s in statuses])), 4),
            "max_confidence": round(float(np.max(conf)), 4), "median_confidence": round(float(np.median(conf)), 4),
            "seconds_per_item_in_process": round((time.perf_counter() - t) / len(statuses), 3)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="12 items of 45 s and 6 videos instead of 40 x 60 s and 20")
    ap.add_argument("--ffsubsync", default=shutil.which("ffsubsync") or "/tmp/ffs-venv/bin/ffsubsync")
    ap.add_argument("--set", type=Path, default=None, help="reuse a set made by generate.py")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "align.json")
    ap.add_argument("--repeats", type=int, default=None,
                    help="timing passes over each set, interleaved (default 3; 1 with --quick)")
    args = ap.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 3)
    ensure_bytecode()  # each ``mmprep align`` process loads compiled modules, as from an installed package
    load_before = os.getloadavg()
    ffs = args.ffsubsync if args.ffsubsync and Path(args.ffsubsync).exists() else None
    with tempfile.TemporaryDirectory() as tmp:
        set_dir = args.set
        if set_dir is None:
            set_dir = Path(tmp) / "set"
            items, secs = ("12", "45") if args.quick else ("40", "60")
            generate.main([str(set_dir), "--items", items, "--seconds", secs, "--seed", "0"])
        t = time.perf_counter()
        doc = score.score(set_dir, ffs, Path(tmp) / "outputs", repeats)
        doc["score_seconds"] = round(time.perf_counter() - t, 1)
        negatives = bench_negatives(Path(tmp) / "neg", 30 if args.quick else 150)
        long_doc = None
        if not args.quick:  # long files: the per-command start-up no longer dominates
            long_dir = Path(tmp) / "long"
            generate.main([str(long_dir), "--items", "3", "--seconds", "600", "--seed", "1", "--mismatch-share", "0",
                           "--split-share", "0", "--snrs", "8,12,20"])
            long_doc = score.score(long_dir, ffs, Path(tmp) / "long-outputs", repeats)
    print(score.table(doc))
    if long_doc:
        print("3 files of 10 minutes:")
        print(score.table(long_doc))
    print(f"negative controls: {negatives['flagged'] * 100:.1f} % of {negatives['items']} mismatched subtitles "
          f"flagged (max confidence {negatives['max_confidence']})")
    if not ffs:
        print("ffsubsync not found: baseline skipped (python -m venv V && V/bin/pip install ffsubsync; needs ffmpeg)")
    av = bench_av(6 if args.quick else 20)
    print(f"A/V offset, {av['videos']} flash-and-beep videos at 25 fps: mmprep median {av['mmprep']['median_ms']} ms, "
          f"p95 {av['mmprep']['p95_ms']} ms, max {av['mmprep']['max_ms']} ms; frame-correlation baseline median "
          f"{av['frame_xcorr_baseline']['median_ms']} ms, p95 {av['frame_xcorr_baseline']['p95_ms']} ms")
    result = {"benchmark": "align", "quick": args.quick, "machine": machine(), "subtitles": doc,
              "subtitles_long": long_doc, "negative_controls": negatives, "av": av,
              "note": f"{os.cpu_count()} shared CPU cores, other jobs running (load average 1 min "
                      f"{load_before[0]:.2f} before, {os.getloadavg()[0]:.2f} after): timings are noisy. Both tools "
                      f"ran in the same run on the same files, each as a command (process start included), "
                      f"interleaved item by item (order alternating) after a warm-up run of each, {repeats} "
                      "timing passes (seconds per item: the median of the passes).",
              "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1))
    print(f"-> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
