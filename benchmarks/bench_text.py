"""Benchmark: tokens/s of the text stages against bare jieba.lcut and bare spaCy blank tokenizer loops.

Measured in the same run, on the same texts (Chinese, English, mixed; made in code):
1. per core, in one process: ``text.tokenize`` (``language: auto``) vs ``jieba.lcut`` on the Chinese
   texts and vs ``spacy.blank("en").tokenizer`` on the English ones (target: overhead <= 15%); the
   mixed texts and the whole chain (decode, normalize, language, tokenize, stop words, vocab) for reference;
2. scaling: ``mmprep build`` (local executor, cache off; decode, normalize, tokenize) with 1 and 2
   workers vs the bare loops over a process pool of 1 and 2 on the same texts (the pool shows what the
   machine itself allows). Each build and each pool runs in a fresh Python process, so both pay the
   same start-up: importing spaCy (with thinc and torch) and loading jieba's dictionary in every worker.
   Each run says where its time went: ``fixed_seconds`` (driver before the pool, the slowest worker's
   library loading, driver after the last shard) and ``work_seconds`` (the rest), so the scaling of the
   work itself shows apart from start-up. The build's shard function and corpus scan are wrapped with
   timers for that (``one_build``); the build itself is unchanged.
Per core: chunks of 250 texts, each run ``--repeat`` times with the compared methods interleaved, the
fastest run per chunk counts; scaling: ``--scaling-repeat`` interleaved runs each, the fastest counts.

    python benchmarks/bench_text.py            # ~4 min (48,000 files for the scaling part)
    python benchmarks/bench_text.py --quick    # ~1 min
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from benchmarks.benchutil import RESULTS, WORK, machine  # noqa: E402
from mmprep.stage import make_stage  # noqa: E402
from mmprep.testing.text import EN, MIXED, ZH, ZH_TW  # noqa: E402

EN_MORE = EN + ["Captions, transcripts and subtitles arrive in every encoding a crawl contains.",
                "She sells sea-shells by the sea-shore; the shells she sells are surely sea-shells.",
                "In 2024, about 3.5 million people visited the museum (up 12% on 2023)."]
ZH_MORE = ZH + [ZH_TW, "中文分词是中文自然语言处理的基础任务，结巴分词是最常用的工具之一。",
                "今天天气很好，我们一起去公园散步吧！", "这款手机的电池续航时间超过了二十四小时。"]


def make_texts(n: int, pool: list[str], *, seed: int, per_text: tuple[int, int] = (2, 6)) -> list[str]:
    rng = random.Random(seed)
    return ["".join(rng.choice(pool) for _ in range(rng.randint(*per_text))) for _ in range(n)]


_SPACY: list = []


def bare_jieba(texts: list[str]) -> int:
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    return sum(len(jieba.lcut(t)) for t in texts)


def bare_spacy(texts: list[str]) -> int:
    """The blank English tokenizer, loaded once per process (outside the timing after the warm-up)."""
    if not _SPACY:
        import spacy

        _SPACY.append(spacy.blank("en").tokenizer)
    tok = _SPACY[0]
    return sum(len([w.text for w in tok(t)]) for t in texts)  # the token strings, as jieba.lcut gives


def ours(stages: list, texts: list[str]) -> int:
    n = 0
    for i, t in enumerate(texts):
        sample = {"__key__": f"k{i}", "txt": t}
        for stage in stages:
            if stage.applies(sample):
                sample = stage.process(sample)
        n += len(sample["tokens.json"]["tokens"]) if "tokens.json" in sample else 0
    return n


def interleaved(repeat: int, methods: dict, *, chunk: int = 250) -> dict:
    """``methods``: name -> (function of a list of texts returning a token count, texts). Per name, the
    seconds summed over chunks of ``chunk`` texts, where every chunk runs ``repeat`` times with the methods
    interleaved and its fastest run counts. On a shared machine a burst of someone else's load then
    spoils one short run, not one method's whole measurement."""
    seconds = dict.fromkeys(methods, 0.0)
    tokens = dict.fromkeys(methods, 0)
    n = max(len(texts) for _, texts in methods.values())
    for lo in range(0, n, chunk):
        fastest = dict.fromkeys(methods, float("inf"))
        counts = dict.fromkeys(methods, 0)
        for _ in range(repeat):
            for name, (fn, texts) in methods.items():
                part = texts[lo : lo + chunk]
                if part:
                    t0 = time.perf_counter()
                    counts[name] = fn(part)
                    fastest[name] = min(fastest[name], time.perf_counter() - t0)
        for name, (_, texts) in methods.items():
            if texts[lo : lo + chunk]:
                seconds[name] += fastest[name]
                tokens[name] += counts[name]
    return {name: {"seconds": round(seconds[name], 4), "tokens": tokens[name],
                   "tokens_per_s": round(tokens[name] / seconds[name])} for name in methods}


def _load_bare(kind: str) -> None:
    import logging

    import jieba

    if kind == "zh":
        jieba.setLogLevel(logging.WARNING)
        jieba.dt.initialize()
    else:
        bare_spacy([])


def _pool_worker(args: tuple[str, list[str]]) -> dict:
    """One chunk of the bare loop; the first chunk of each kind in a process also loads the library
    (jieba's dictionary, spaCy), timed apart as ``load``."""
    kind, texts = args
    t0 = time.perf_counter()
    if kind not in _LOADED:
        _load_bare(kind)
        _LOADED.add(kind)
    t1 = time.perf_counter()
    tokens = bare_jieba(texts) if kind == "zh" else bare_spacy(texts)
    return {"pid": os.getpid(), "start": t0, "load": t1 - t0, "end": time.perf_counter(), "tokens": tokens}


_LOADED: set[str] = set()


def bare_pool(texts_zh: list[str], texts_en: list[str], workers: int, chunks: int = 24) -> dict:
    """The bare loops over a process pool started for this run (so loading jieba/spaCy is included, as in
    a build); the same ``chunks`` jobs (zh and en alternating) whatever the pool size."""
    jobs = []
    for i in range(chunks // 2):
        jobs += [("zh", texts_zh[i :: chunks // 2]), ("en", texts_en[i :: chunks // 2])]
    t0 = time.perf_counter()
    with mp.get_context("forkserver").Pool(workers) as pool:
        runs = pool.map(_pool_worker, jobs, chunksize=1)
    dt = time.perf_counter() - t0
    per_worker = _per_worker([(r["pid"], r["start"], r["load"], r["end"]) for r in runs], t0)
    fixed = max(w["first_start"] + w["setup"] for w in per_worker.values())
    return {"seconds": round(dt, 3), "tokens": sum(r["tokens"] for r in runs), "workers": per_worker,
            "fixed_seconds": round(fixed, 3), "work_seconds": round(dt - fixed, 3)}


def _per_worker(runs: list[tuple[int, float, float, float]], t0: float) -> dict:
    """(pid, start, setup seconds, end) per task -> per process: when it started its first task (from t0),
    seconds of setup (loading libraries), seconds busy in all."""
    out = {}
    for pid in sorted({r[0] for r in runs}):
        mine = [r for r in runs if r[0] == pid]
        out[str(pid)] = {"first_start": round(min(r[1] for r in mine) - t0, 3),
                         "setup": round(sum(r[2] for r in mine), 3),
                         "busy": round(sum(r[3] - r[1] for r in mine), 3), "tasks": len(mine)}
    return out


def timed_build_shard(task: object) -> dict:
    """``build_shard`` as the executors call it, plus when it ran; the first task of a process sets up
    the stages first (what ``build_shard`` would do itself), timed apart as ``setup``, unless the pool
    started during the scan did that already (then it is part of the time before the pool)."""
    from mmprep import shardtask, worker

    t0 = time.perf_counter()
    setup = 0.0
    if not shardtask._STAGES:
        shardtask.stages_for(task)
        setup = time.perf_counter() - t0
    result = worker.build_shard(task)
    result["timing"] = (os.getpid(), t0, setup, time.perf_counter())
    return result


def one_build(corpus: str, out: str, workers: int, shard: int) -> dict:
    """One ``mmprep build`` (decode, normalize, tokenize; cache off) in this fresh process, with where the
    time went: driver before the scan (config check), scan, shards (per worker: setup, busy), merge."""
    from mmprep import build
    from mmprep.config import parse_pipeline

    marks: dict[str, float] = {}
    timings: list = []
    read_corpus, run_local = build.read_corpus, build.run_local

    def timed_read(*args: object, **kwargs: object) -> object:
        marks["scan"] = time.perf_counter()
        records = read_corpus(*args, **kwargs)
        marks["scanned"] = time.perf_counter()
        return records

    def timed_local(fn: object, tasks: list, n: int, **kwargs: object) -> object:
        marks["pool"] = time.perf_counter()
        for task, result in run_local(fn, tasks, n, **kwargs):
            if isinstance(result, dict):
                timings.append(result["timing"])
            yield task, result
        marks["shards_done"] = time.perf_counter()

    build.read_corpus, build.run_local, build.build_shard = timed_read, timed_local, timed_build_shard
    doc = {"stages": [{"stage": "text.decode"}, {"stage": "text.normalize"}, {"stage": "text.tokenize"}],
           "output": {"max_samples": shard, "meta": False}, "cache": {"enabled": False}}
    shutil.rmtree(out, ignore_errors=True)
    t0 = time.perf_counter()
    summary = build.run_build(parse_pipeline(doc), build.BuildOptions(input=corpus, output=out, workers=workers,
                                                                      force=True, progress=False))
    dt = time.perf_counter() - t0
    stats = json.loads((Path(out) / "stats.json").read_text())
    per_worker = _per_worker(timings, marks["pool"])
    setup = max(w["first_start"] + w["setup"] for w in per_worker.values())
    fixed = (marks["pool"] - t0) + setup + (t0 + dt - marks["shards_done"])
    return {"seconds": round(dt, 3), "samples": summary["samples_out"], "failed": len(summary["failed_shards"]),
            "before_scan": round(marks["scan"] - t0, 3), "scan": round(marks["scanned"] - marks["scan"], 3),
            "shards": round(marks["shards_done"] - marks["pool"], 3),
            "after_shards": round(t0 + dt - marks["shards_done"], 3), "workers": per_worker,
            "fixed_seconds": round(fixed, 3), "work_seconds": round(dt - fixed, 3),
            "stage_seconds": {k: round(v["seconds"], 3) for k, v in stats.get("stages", {}).items()}}


def _child(mode: str, *args: object) -> dict:
    """Run ``one_build`` or the bare pool in a fresh Python process: both pay the same start-up costs."""
    cmd = [sys.executable, str(Path(__file__).resolve()), f"--{mode}", *map(str, args)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _texts_for_build(n_build: int) -> tuple[list[str], list[str]]:
    return make_texts(n_build // 2, ZH_MORE, seed=4), make_texts(n_build // 2, EN_MORE, seed=5)


def scaling(n_build: int, repeat: int) -> dict:
    work = WORK / "text"
    corpus = work / "in"
    shutil.rmtree(work, ignore_errors=True)
    build_zh, build_en = _texts_for_build(n_build)
    for i, t in enumerate(build_zh + build_en):
        path = corpus / f"{i % 16:02d}" / f"t{i:06d}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(t, encoding="utf-8")
    tokens = bare_jieba(build_zh) + bare_spacy(build_en)
    shard = max(100, n_build // 24)
    print(f"scaling: {n_build} files ({tokens:,} tokens), shards of {shard}; each run in a fresh process, "
          f"best of {repeat} interleaved", flush=True)
    runs: dict[str, dict] = {}
    for _ in range(repeat):
        for workers in (1, 2):
            for name, mode, args in ((f"build_w{workers}", "one-build", (corpus, work / "out", workers, shard)),
                                     (f"bare_pool_w{workers}", "one-pool", (n_build, workers))):
                r = _child(mode, *args)
                print(f"    {name:14s} {r['seconds']:6.2f}s  (fixed {r['fixed_seconds']:.2f}s, "
                      f"work {r['work_seconds']:.2f}s)", flush=True)
                if name not in runs or r["seconds"] < runs[name]["seconds"]:
                    runs[name] = r
    for r in runs.values():
        r["tokens_per_s"] = round(tokens / r["seconds"])
    speedup = {k: round(runs[f"{k}_w1"]["seconds"] / runs[f"{k}_w2"]["seconds"], 3) for k in ("build", "bare_pool")}
    work_speedup = {k: round(runs[f"{k}_w1"]["work_seconds"] / runs[f"{k}_w2"]["work_seconds"], 3)
                    for k in ("build", "bare_pool")}
    vs_bare = {f"w{w}": round(runs[f"bare_pool_w{w}"]["seconds"] / runs[f"build_w{w}"]["seconds"], 3) for w in (1, 2)}
    for name, r in runs.items():
        print(f"  {name:16s} {r['tokens_per_s']:>10,} tokens/s  ({r['seconds']:.2f}s; fixed {r['fixed_seconds']:.2f}s)")
    print(f"  speedup 1 -> 2 workers: {speedup}; without the fixed costs: {work_speedup}; "
          f"build throughput / bare pool: {vs_bare}", flush=True)
    return {"build_files": n_build, "build_tokens": tokens, "shard_size": shard, "runs": runs,
            "speedup_1_to_2_workers": speedup, "speedup_without_fixed_costs": work_speedup,
            "build_over_bare_pool": vs_bare}


def one_pool(n_build: int, workers: int) -> dict:
    build_zh, build_en = _texts_for_build(n_build)
    return bare_pool(build_zh, build_en, workers)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="Smaller corpora (about a minute).")
    ap.add_argument("--repeat", type=int, default=5, help="Runs per chunk of texts (per core).")
    ap.add_argument("--scaling-repeat", type=int, default=3, help="Interleaved runs of each build / pool.")
    ap.add_argument("--out", type=Path, default=None, help="Results JSON (default benchmarks/results/text.json).")
    ap.add_argument("--one-build", nargs=4, metavar=("CORPUS", "OUT", "WORKERS", "SHARD"), help=argparse.SUPPRESS)
    ap.add_argument("--one-pool", nargs=2, type=int, metavar=("FILES", "WORKERS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one_build:  # a child of the scaling runs: one measurement, its JSON on the last line
        corpus, out, workers, shard = args.one_build
        print(json.dumps(one_build(corpus, out, int(workers), int(shard))))
        return
    if args.one_pool:
        print(json.dumps(one_pool(*args.one_pool)))
        return
    load_before = os.getloadavg()
    n = 600 if args.quick else 3000
    n_build = 4000 if args.quick else 48000
    zh = make_texts(n, ZH_MORE, seed=1)
    en = make_texts(n, EN_MORE, seed=2)
    mixed = make_texts(n // 2, ZH_MORE + EN_MORE + MIXED, seed=3, per_text=(2, 5))

    tokenize = make_stage("text.tokenize")
    chain = [make_stage(s) for s in ("text.decode", "text.normalize", "text.language", "text.tokenize",
                                     "text.stopwords", "text.vocab")]
    zh_bytes = [t.encode("utf-8") for t in zh]
    bare_jieba(zh[:50]), bare_spacy(en[:50]), ours([tokenize], zh[:50] + en[:50])  # warm up: dictionaries loaded
    print(f"per core: {n} zh, {n} en, {n // 2} mixed texts; chunks of 250 texts, methods interleaved, "
          f"fastest of {args.repeat} per chunk", flush=True)
    methods = {  # name: (function of a list of texts, the texts)
        "bare_jieba_lcut_zh": (bare_jieba, zh),
        "text.tokenize_zh": (lambda part: ours([tokenize], part), zh),
        "bare_spacy_blank_en": (bare_spacy, en),
        "text.tokenize_en": (lambda part: ours([tokenize], part), en),
        "text.tokenize_mixed": (lambda part: ours([tokenize], part), mixed),
        "chain_zh_from_bytes": (lambda part: ours(chain, part), zh_bytes),
    }
    # interleave: pairs that are compared run chunk by chunk next to each other
    per_core = {}
    for names in (("bare_jieba_lcut_zh", "text.tokenize_zh", "chain_zh_from_bytes"),
                  ("bare_spacy_blank_en", "text.tokenize_en"), ("text.tokenize_mixed",)):
        per_core.update(interleaved(args.repeat, {n: methods[n] for n in names}))
    for k, v in per_core.items():
        print(f"  {k:24s} {v['tokens_per_s']:>10,} tokens/s  ({v['seconds']:.2f}s)")
    sec = {k: v["seconds"] for k, v in per_core.items()}
    ratios = {
        "zh_tokenize_vs_jieba": round(sec["bare_jieba_lcut_zh"] / sec["text.tokenize_zh"], 3),
        "en_tokenize_vs_spacy": round(sec["bare_spacy_blank_en"] / sec["text.tokenize_en"], 3),
        "zh_chain_vs_jieba": round(sec["bare_jieba_lcut_zh"] / sec["chain_zh_from_bytes"], 3),
    }
    overhead = {k: f"{(1 / v - 1) * 100:+.1f}%" for k, v in ratios.items()}
    print("  throughput ratio (ours / bare; 1.0 = no overhead):", ratios, "overhead:", overhead, flush=True)

    scale = scaling(n_build, args.scaling_repeat)
    load_after = os.getloadavg()
    result = {
        "benchmark": "text", "quick": args.quick, "repeat": args.repeat, "scaling_repeat": args.scaling_repeat,
        "machine": machine(),
        "note": (f"2 shared cores; load average {load_before[0]:.2f} at start, {load_after[0]:.2f} at the end "
                 "(run under the shared CPU lock); per core: fastest of interleaved repeats per chunk; scaling: "
                 "each build and pool in a fresh process, best of interleaved repeats. fixed_seconds = driver "
                 "before the pool + the slowest worker's library loading + driver after the last shard; "
                 "work_seconds = the rest"),
        "corpus": {"per_core_texts": {"zh": n, "en": n, "mixed": n // 2},
                   "per_core_tokens": {k: v["tokens"] for k, v in per_core.items()}},
        "per_core": per_core, "ratios_ours_over_bare": ratios, "overhead": overhead,
        "scaling": scale,
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = args.out or RESULTS / ("text_quick.json" if args.quick else "text.json")
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False))
    print(f"-> {path}")


if __name__ == "__main__":
    main()
