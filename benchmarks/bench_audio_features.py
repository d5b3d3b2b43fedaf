"""Benchmark: batched torch log-mel / MFCC (``mmprep.features`` and the ``audio.logmel`` / ``audio.mfcc``
stages) against a plain librosa per-file loop with the same parameters, on the same clips, in one run.

Corpus: speech-like clips made in code (``mmprep.testing.audio``), lengths uniform in [2, 60] s, at
16 kHz, totalling >= 20 minutes (``--quick``: >= 3 minutes). Both sides start from decoded float32
arrays in memory and are warmed up first, then timed in interleaved rounds (every variant once per round).

What each variant includes (all from float32 numpy clips in memory to one float32 numpy feature
array per clip; decoding is outside every variant):

* ``librosa_loop``: the baseline, a plain per-file loop (``melspectrogram`` + ``power_to_db``, or
  ``feature.mfcc``) in this process with librosa's defaults: numpy's FFT on one core, the mel
  product in OpenBLAS with its default threads (every core).
* ``librosa_loop_1_blas_thread``: the same loop with OpenBLAS limited to one thread. On a busy
  machine this is often the faster librosa; the headline ratio (``*_vs_faster_librosa``) is taken
  against whichever of the two was faster (best vs best; per round for the paired median).
* ``torch_cpu_function``: ``mmprep.features.compute`` over all clips, one torch thread.
* ``torch_cpu_function_all_threads``: the same with torch's default threads (every core).
* ``torch_cpu_stage``: what one build worker does: the stage's ``process_batch`` over micro-batches of
  32 samples, with the stage default ``cpu_threads: 1`` (a build runs one worker process per core).
* ``*_workers``: the whole machine, as a build uses it: one process per core (``os.cpu_count()``),
  each holding its share of the clips (balanced by length) and running ``librosa_loop`` (BLAS
  limited to one thread per process, so the processes do not oversubscribe the cores) or
  ``torch_cpu_stage`` on it; the time is from the start signal until the last process is done.

Compare like with like: ``torch_cpu_stage`` vs ``librosa_loop`` is one process against one process
(librosa may use spare cores for its BLAS product; torch does not), ``torch_cpu_stage_workers`` vs
``librosa_loop_workers`` is all cores against all cores. Reported: seconds, real-time factor (audio
seconds / compute seconds) and the speed-up over ``librosa_loop`` (best vs best, and the median of
per-round ratios); ``*_workers`` rows also have it against ``librosa_loop_workers``. On a CUDA
machine the same script also times ``device="cuda"``: end to end from numpy arrays (padding and
copies included) and device-resident (a padded batch already on the GPU).

    python benchmarks/bench_audio_features.py [--quick] [--repeats N] [--minutes M]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

RATE = 16000
PARAMS = {"n_fft": 400, "hop": 160, "n_mels": 80}
N_MFCC = 13
RESULTS = Path(__file__).resolve().parent / "results" / "audio.json"


def make_clips(total_seconds: float, seed: int = 0) -> list[np.ndarray]:
    from mmprep.testing.audio import burst_signal

    rng = np.random.default_rng(seed)
    clips: list[np.ndarray] = []
    done = 0.0
    while done < total_seconds:
        secs = float(rng.uniform(2.0, 60.0))
        bursts, t = [], float(rng.uniform(0.1, 0.5))
        while t < secs - 0.3:
            length = float(rng.uniform(0.3, 2.0))
            bursts.append((t, min(t + length, secs)))
            t += length + float(rng.uniform(0.1, 0.8))
        clips.append(burst_signal(bursts, secs, rate=RATE, seed=int(rng.integers(1 << 30))))
        done += secs
    return clips


def interleaved(runs: dict[str, Any], repeats: int, *, sync=None, settle: float = 0.25) -> dict[str, dict[str, Any]]:
    """Warm every variant up, then time them in rounds (A, B, C, A, B, C...) so that on a shared machine
    each round's variants see about the same load. Best, median and all times per variant.

    Before each timed call the script sleeps ``settle`` seconds (untimed): OpenBLAS and OpenMP worker
    threads busy-wait for a while after a call, and would otherwise steal the core from the next variant."""
    for fn in runs.values():
        fn()
    if sync:
        sync()
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeats):
        for name, fn in runs.items():
            time.sleep(settle)
            t0 = time.perf_counter()
            fn()
            if sync:
                sync()
            times[name].append(time.perf_counter() - t0)
    return {name: {"best_s": min(ts), "median_s": statistics.median(ts), "times": ts} for name, ts in times.items()}


def librosa_loop(clips: list[np.ndarray], kind: str) -> None:
    import librosa

    for y in clips:
        if kind == "logmel":
            mel = librosa.feature.melspectrogram(y=y, sr=RATE, n_fft=PARAMS["n_fft"], hop_length=PARAMS["hop"],
                                                 n_mels=PARAMS["n_mels"])
            librosa.power_to_db(mel, top_db=80.0)
        else:
            librosa.feature.mfcc(y=y, sr=RATE, n_mfcc=N_MFCC, n_fft=PARAMS["n_fft"], hop_length=PARAMS["hop"],
                                 n_mels=PARAMS["n_mels"])


def librosa_loop_1_blas_thread(clips: list[np.ndarray], kind: str) -> None:
    import threadpoolctl

    with threadpoolctl.threadpool_limits(1, user_api="blas"):
        librosa_loop(clips, kind)


def ours_function(clips: list[np.ndarray], kind: str, device: str, threads: int | None = 1) -> None:
    from mmprep.features import compute

    extra = {"n_mfcc": N_MFCC} if kind == "mfcc" else {}
    compute(kind, clips, rate=RATE, device=device, threads=threads, **PARAMS, **extra)


def ours_stage(clips: list[np.ndarray], kind: str, device: str, batch_size: int = 32) -> None:
    """What a build does: the stage's process_batch over the worker's micro-batches of decoded samples."""
    from mmprep.sample import Audio
    from mmprep.stage import make_stage

    extra = {"n_mfcc": N_MFCC} if kind == "mfcc" else {}
    stage = make_stage(f"audio.{kind}", device=device, **PARAMS, **extra)
    samples = [{"__key__": f"c{i}", "__meta__": {}, "wav": Audio(samples=c, rate=RATE)} for i, c in enumerate(clips)]
    for lo in range(0, len(samples), batch_size):
        stage.process_batch(samples[lo : lo + batch_size])


class Workers:
    """One process per core, each holding its share of the corpus, running a variant on command."""

    def __init__(self, n: int, minutes: float) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("spawn")  # no fork after torch started its thread pools
        self.pipes, self.procs = [], []
        for rank in range(n):
            ours, theirs = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(theirs, rank, n, minutes), daemon=True)
            proc.start()
            self.pipes.append(ours)
            self.procs.append(proc)
        for pipe in self.pipes:
            pipe.recv()  # corpus made, everything imported and warmed up

    def run(self, kind: str, variant: str) -> None:
        for pipe in self.pipes:
            pipe.send((kind, variant))
        for pipe in self.pipes:
            pipe.recv()

    def close(self) -> None:
        for pipe in self.pipes:
            pipe.send(None)
        for proc in self.procs:
            proc.join(timeout=30)


def shares(clips: list[np.ndarray], n: int) -> list[list[int]]:
    """Clip indices per worker: longest first to the least loaded (about equal audio each)."""
    load, parts = [0] * n, [[] for _ in range(n)]
    for i in sorted(range(len(clips)), key=lambda i: -len(clips[i])):
        w = load.index(min(load))
        parts[w].append(i)
        load[w] += len(clips[i])
    return parts


def _worker(pipe, rank: int, n: int, minutes: float) -> None:
    import threadpoolctl

    threadpoolctl.threadpool_limits(1)  # one core per process: no oversubscription (torch: cpu_threads 1)
    clips = make_clips(minutes * 60)
    mine = [clips[i] for i in shares(clips, n)[rank]]
    variants = {"librosa_loop": lambda k: librosa_loop(mine, k),
                "torch_cpu_stage": lambda k: ours_stage(mine, k, "cpu")}
    for kind in ("logmel", "mfcc"):
        for fn in variants.values():
            fn(kind)
    pipe.send("ready")
    while (msg := pipe.recv()) is not None:
        kind, variant = msg
        variants[variant](kind)
        pipe.send("done")


def _ratios(base: dict[str, Any], row: dict[str, Any]) -> tuple[float, float]:
    """Best vs best, and the median of per-round ratios (the two ran back to back, under the same load)."""
    return (round(min(base["times"]) / row["best_s"], 2),
            round(statistics.median(b / t for b, t in zip(base["times"], row["times"], strict=True)), 2))


def add_ratios(rows: dict[str, dict[str, Any]], audio_s: float) -> None:
    """Real-time factor and speed-ups of every row against ``librosa_loop``, against the faster of the
    two librosa loops (per round), and for ``*_workers`` rows against ``librosa_loop_workers``."""
    one = rows["librosa_loop_1_blas_thread"]["times"]
    faster = {"times": [min(a, b) for a, b in zip(rows["librosa_loop"]["times"], one, strict=True)]}
    faster["times_best"] = min(rows["librosa_loop"]["best_s"], min(one))
    for name, row in rows.items():
        row["rtf"] = round(audio_s / row["best_s"], 1)
        row["speedup_vs_librosa"], row["paired_median_speedup"] = _ratios(rows["librosa_loop"], row)
        row["speedup_vs_faster_librosa"] = round(faster["times_best"] / row["best_s"], 2)
        row["paired_median_speedup_vs_faster_librosa"] = _ratios(faster, row)[1]
        if name.endswith("_workers"):
            (row["speedup_vs_librosa_workers"],
             row["paired_median_speedup_vs_librosa_workers"]) = _ratios(rows["librosa_loop_workers"], row)
    for row in rows.values():
        row["best_s"], row["median_s"] = round(row["best_s"], 4), round(row["median_s"], 4)
        row["times"] = [round(t, 4) for t in row["times"]]


def summary(row: dict[str, Any]) -> str:
    text = (f"best {row['best_s']:8.4f}s  median {row['median_s']:8.4f}s  {row['rtf']:>9.1f}x real time  "
            f"vs librosa {row['speedup_vs_librosa']:5.2f}x (paired {row['paired_median_speedup']:.2f}x)  "
            f"vs faster librosa {row['speedup_vs_faster_librosa']:5.2f}x "
            f"(paired {row['paired_median_speedup_vs_faster_librosa']:.2f}x)")
    if "speedup_vs_librosa_workers" in row:
        text += (f"  vs librosa workers {row['speedup_vs_librosa_workers']:.2f}x "
                 f"(paired {row['paired_median_speedup_vs_librosa_workers']:.2f}x)")
    return text


def machine() -> dict[str, Any]:
    import librosa
    import torch

    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu": platform.processor(),
            "cpu_count": os.cpu_count(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "librosa": librosa.__version__, "cuda": torch.cuda.is_available()}
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="3 minutes of audio, 2 repeats")
    ap.add_argument("--minutes", type=float, default=None, help="corpus size (default 20, quick 3)")
    ap.add_argument("--repeats", type=int, default=None, help="timed rounds (default 5, quick 2)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    import torch

    minutes = args.minutes or (3.0 if args.quick else 20.0)
    repeats = args.repeats or (2 if args.quick else 5)
    t0 = time.perf_counter()
    clips = make_clips(minutes * 60)
    audio_s = sum(len(c) for c in clips) / RATE
    print(f"corpus: {len(clips)} clips, {audio_s / 60:.1f} min of audio "
          f"({min(len(c) for c in clips) / RATE:.1f}-{max(len(c) for c in clips) / RATE:.1f} s), "
          f"made in {time.perf_counter() - t0:.1f}s")
    results: dict[str, Any] = {}
    cuda = torch.cuda.is_available()
    n_workers = os.cpu_count() or 1
    workers = Workers(n_workers, minutes)
    for kind in ("logmel", "mfcc"):
        runs = {"librosa_loop": lambda k=kind: librosa_loop(clips, k),
                "librosa_loop_1_blas_thread": lambda k=kind: librosa_loop_1_blas_thread(clips, k),
                "torch_cpu_function": lambda k=kind: ours_function(clips, k, "cpu"),
                "torch_cpu_function_all_threads": lambda k=kind: ours_function(clips, k, "cpu", None),
                "torch_cpu_stage": lambda k=kind: ours_stage(clips, k, "cpu"),
                "librosa_loop_workers": lambda k=kind: workers.run(k, "librosa_loop"),
                "torch_cpu_stage_workers": lambda k=kind: workers.run(k, "torch_cpu_stage")}
        if cuda:
            runs["torch_cuda_function"] = lambda k=kind: ours_function(clips, k, "cuda")
            runs["torch_cuda_stage"] = lambda k=kind: ours_stage(clips, k, "cuda")
            runs["torch_cuda_resident"] = cuda_resident(clips, kind)
        rows = interleaved(runs, repeats, sync=torch.cuda.synchronize if cuda else None)
        add_ratios(rows, audio_s)
        for name, row in rows.items():
            print(f"{kind:7s} {name:30s} {summary(row)}")
        results[kind] = rows
    workers.close()
    doc = {"benchmark": "audio features: batched torch vs librosa per-file loop", "machine": machine(),
           "corpus": {"clips": len(clips), "audio_seconds": round(audio_s, 2), "rate": RATE,
                      "clip_seconds": [2.0, 60.0], "kind": "speech-like bursts (mmprep.testing.audio)"},
           "params": {**PARAMS, "n_mfcc": N_MFCC, "center": True, "window": "hann", "top_db": 80.0},
           "repeats": repeats, "workers": n_workers, "results": results,
           "load_average": list(os.getloadavg()),
           "note": "after a warm-up, variants timed in interleaved rounds; rtf = audio seconds / best time. "
                   "On a shared machine (other jobs on the same cores) timings are noisy: the paired median "
                   "speed-up (librosa and ours back to back in each round) is the steadiest figure."}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"wrote {args.out}")


def cuda_resident(clips: list[np.ndarray], kind: str):
    """A padded batch already on the GPU, features left there: the GPU's own throughput."""
    import torch

    from mmprep.features import logmel, mfcc, pad_batch

    fn = logmel if kind == "logmel" else mfcc
    extra = {"n_mfcc": N_MFCC} if kind == "mfcc" else {}
    order = sorted(range(len(clips)), key=lambda i: len(clips[i]))
    groups = [order[i : i + 16] for i in range(0, len(order), 16)]  # length-sorted groups of 16: little padding
    batches = [pad_batch([clips[i] for i in group], device="cuda") for group in groups]

    def run() -> None:
        with torch.inference_mode():
            for batch, lengths in batches:
                fn(batch, lengths, rate=RATE, **PARAMS, **extra)

    return run


if __name__ == "__main__":
    main()
