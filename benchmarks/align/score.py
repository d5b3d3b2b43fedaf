"""Score subtitle aligners on a set made by ``generate.py``: cue-start errors and flagged mismatches.

    python benchmarks/align/score.py SET_DIR [--ffsubsync /path/to/venv/bin/ffsubsync] [--json OUT.json]

Runs ``mmprep align`` (as a command, like a user would) and, when given, ffsubsync on the same files
in the same run, interleaved item by item after a warm-up run of each, and prints both side by side.
Errors are ``output start - truth start`` per cue, for items that are not negative controls;
"flagged" is the share of mismatched items an aligner marks as not trusted (mmprep: status not ok;
ffsubsync has no such output, so only a failure counts).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from mmprep.align.subs import SubtitleError, parse  # noqa: E402


def timed(cmd: list[str], **kw: Any) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run a command; its wall seconds and CPU seconds (user + sys of it and the children it waited for)."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, **kw)
    dt = time.perf_counter() - t
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return p, dt, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def run_mmprep(wav: Path, srt: Path, out: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "mmprep", "align", str(wav), str(srt), "-o", str(out), "--json", "--force"]
    p, dt, cpu = timed(cmd, cwd=ROOT)
    try:
        rec = json.loads(p.stdout.strip().splitlines()[-1])
    except (IndexError, json.JSONDecodeError):
        rec = {"status": "failed", "reasons": ["crash"], "stderr": p.stderr[-500:]}
    return {"seconds": dt, "cpu": cpu, "flagged": rec.get("status") != "ok", "ok_output": out.exists(), "record": rec}


def run_ffsubsync(exe: str, wav: Path, srt: Path, out: Path) -> dict[str, Any]:
    cmd = [exe, str(wav), "-i", str(srt), "-o", str(out)]
    p, dt, cpu = timed(cmd)
    return {"seconds": dt, "cpu": cpu, "flagged": p.returncode != 0 or not out.exists(), "ok_output": out.exists(),
            "record": {"rc": p.returncode, "stderr": p.stderr[-300:]}}


def errors(out: Path, truth: list[list[int]]) -> list[float]:
    """Start error (ms) per truth cue; a missing output counts every cue as 10 s off."""
    if not out.exists():
        return [10_000.0] * len(truth)
    try:
        cues = parse(out.read_text(encoding="utf-8"), "srt").cues
    except SubtitleError:
        return [10_000.0] * len(truth)
    if len(cues) != len(truth):
        return [10_000.0] * len(truth)
    return [float(c.start - t[0]) for c, t in zip(cues, truth, strict=True)]


def summarize(items: list[dict[str, Any]], runs: dict[str, dict[str, Any]], min_snr: float) -> dict[str, Any]:
    errs = [e for it in items if not it["mismatched"] and it["snr_db"] >= min_snr for e in runs[it["name"]]["errors"]]
    a = np.abs(np.array(errs)) if errs else np.zeros(1)
    neg = [runs[it["name"]]["flagged"] for it in items if it["mismatched"]]
    pos_flag = [runs[it["name"]]["flagged"] for it in items if not it["mismatched"]]
    names = [it["name"] for it in items]
    secs = [runs[n]["seconds"] for n in names]
    cpu = [runs[n]["cpu"] for n in names]
    return {"cues": len(errs), "median_ms": round(float(np.median(a)), 2),
            "p95_ms": round(float(np.percentile(a, 95)), 2),
            "within_100ms": round(float((a <= 100).mean()), 4), "within_50ms": round(float((a <= 50).mean()), 4),
            "mismatched": len(neg), "mismatched_flagged": round(float(np.mean(neg)), 4) if neg else None,
            "true_flagged": round(float(np.mean(pos_flag)), 4) if pos_flag else None,
            "seconds_total": round(float(np.sum(secs)), 2),
            "seconds_per_item": round(float(np.mean(secs)), 3) if secs else None,
            "cpu_seconds_per_item": round(float(np.mean(cpu)), 3) if cpu else None}


def score(set_dir: Path, ffsubsync: str | None, work: Path, repeats: int = 1) -> dict[str, Any]:
    """Both tools on every item, interleaved: per item one run of each, the order alternating from
    item to item and pass to pass, after one untimed warm-up run of each (disk cache, .pyc files).
    Errors come from the first pass; seconds per item are the median over ``repeats`` passes."""
    meta = json.loads((set_dir / "truth.json").read_text())
    items = meta["items"]
    work.mkdir(parents=True, exist_ok=True)
    tools = {"mmprep": None, **({"ffsubsync": ffsubsync} if ffsubsync else {})}

    def run(tool: str, it: dict[str, Any]) -> dict[str, Any]:
        wav, srt = set_dir / it["wav"], set_dir / it["srt"]
        out = work / f"{tool}-{it['name']}.srt"
        out.unlink(missing_ok=True)
        r = run_mmprep(wav, srt, out) if tool == "mmprep" else run_ffsubsync(tools[tool], wav, srt, out)
        r["errors"] = errors(out, it["truth"]) if not it["mismatched"] else []
        return r

    for tool in tools:  # warm-up
        run(tool, items[0])
    runs: dict[str, dict[str, Any]] = {tool: {} for tool in tools}
    times: dict[str, dict[str, list[tuple[float, float]]]] = {tool: {it["name"]: [] for it in items} for tool in tools}
    for p in range(repeats):
        for i, it in enumerate(items):
            for tool in (list(tools) if (i + p) % 2 == 0 else list(tools)[::-1]):
                r = run(tool, it)
                times[tool][it["name"]].append((r["seconds"], r["cpu"]))
                runs[tool].setdefault(it["name"], r)
    results: dict[str, Any] = {}
    for tool in tools:
        for name, r in runs[tool].items():
            r["seconds"] = float(np.median([t for t, _ in times[tool][name]]))
            r["cpu"] = float(np.median([c for _, c in times[tool][name]]))
        by_snr = {}
        for snr in sorted({it["snr_db"] for it in items}):
            sub = [it for it in items if it["snr_db"] == snr]
            by_snr[str(snr)] = summarize(sub, runs[tool], snr)
        results[tool] = {"snr_ge_8": summarize(items, runs[tool], 8.0), "by_snr": by_snr,
                         "splits": summarize([it for it in items if it["split"]], runs[tool], 0.0),
                         "per_item": {k: {"flagged": v["flagged"], "seconds": round(v["seconds"], 3),
                                          "median_abs_ms": round(float(np.median(np.abs(v["errors"]))), 1)
                                          if v["errors"] else None,
                                          "confidence": v["record"].get("confidence"),
                                          "status": v["record"].get("status")}
                                      for k, v in runs[tool].items()}}
    doc = {"set": {"engine": meta["engine"], "items": len(items),
                   "mismatched": sum(i["mismatched"] for i in items),
                   "splits": sum(1 for i in items if i["split"]),
                   "audio_seconds": round(sum(i["seconds"] for i in items), 1), "args": meta["args"]},
           "timing": {"repeats": repeats, "order": "interleaved per item, alternating", "warm_up": "1 run per tool"},
           "results": results}
    if len(tools) == 2:
        ratio = [runs["ffsubsync"][n]["seconds"] / runs["mmprep"][n]["seconds"] for n in runs["mmprep"]]
        doc["speedup"] = {"wall_mean": round(results["ffsubsync"]["snr_ge_8"]["seconds_per_item"]
                                             / results["mmprep"]["snr_ge_8"]["seconds_per_item"], 2),
                          "cpu_mean": round(results["ffsubsync"]["snr_ge_8"]["cpu_seconds_per_item"]
                                            / results["mmprep"]["snr_ge_8"]["cpu_seconds_per_item"], 2),
                          "wall_paired_median": round(float(np.median(ratio)), 2),
                          "wall_paired_min": round(float(np.min(ratio)), 2)}
    return doc


def table(doc: dict[str, Any]) -> str:
    tools = list(doc["results"])
    rows = [("median |err| ms", "median_ms"), ("p95 |err| ms", "p95_ms"), ("within 100 ms", "within_100ms"),
            ("within 50 ms", "within_50ms"), ("mismatches flagged", "mismatched_flagged"),
            ("true items flagged", "true_flagged"), ("wall s / item", "seconds_per_item"),
            ("CPU s / item", "cpu_seconds_per_item")]
    lines = [f"{'SNR >= 8 dB':24s}" + "".join(f"{t:>14s}" for t in tools)]
    for label, key in rows:
        lines.append(f"{label:24s}" + "".join(f"{doc['results'][t]['snr_ge_8'][key]!s:>14s}" for t in tools))
    if "speedup" in doc:
        sp = doc["speedup"]
        lines.append(f"{'wall speed-up':24s}{sp['wall_mean']:>14.2f}x (per item: median {sp['wall_paired_median']}x, "
                     f"lowest {sp['wall_paired_min']}x)")
        lines.append(f"{'CPU speed-up':24s}{sp['cpu_mean']:>14.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("set_dir", type=Path)
    ap.add_argument("--ffsubsync", default=None, help="ffsubsync executable (its own virtualenv)")
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--repeats", type=int, default=1, help="timing passes (seconds: the median per item)")
    args = ap.parse_args(argv)
    doc = score(args.set_dir, args.ffsubsync, args.work or args.set_dir / "outputs", args.repeats)
    print(table(doc))
    if args.json:
        args.json.write_text(json.dumps(doc, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
