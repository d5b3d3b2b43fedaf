"""Resume, incremental rebuilds through the content cache, determinism across executors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tarfile
import time

import pytest

from tests.conftest import ROOT, build, write_pipeline
from tests.conftest import shard_members as members


def traced(tmp_path, *, lowercase=False, cache_a=True, count=False) -> dict:
    log = str(tmp_path / "trace.log")
    return {
        "stages": [
            {"stage": "text.decode"},
            {"stage": "debug.trace", "path": log, "tag": "A", "cacheable": cache_a},
            {"stage": "text.normalize", "lowercase": lowercase},
            {"stage": "debug.trace", "path": log, "tag": "B", "cacheable": True},
            {"stage": "debug.trace", "path": log, "tag": "C", "count": count},
        ],
        "output": {"name": "t", "max_samples": 3, "fields": ["txt"]},
        "cache": {"final": True},
    }


def trace(tmp_path) -> list[str]:
    path = tmp_path / "trace.log"
    lines = path.read_text().splitlines() if path.exists() else []
    path.unlink(missing_ok=True)
    return lines




def test_rerun_with_no_change_processes_nothing(tmp_path, corpus):
    out = tmp_path / "out"
    first = build(traced(tmp_path), corpus, out, workers=1)
    assert first["shards_built"] == 3 and len(trace(tmp_path)) == 8 * 3
    before = {p.name: p.read_bytes() for p in (out / "shards").iterdir()}
    again = build(traced(tmp_path), corpus, out, workers=1)
    assert again["shards_built"] == 0 and again["shards_skipped"] == 3
    assert trace(tmp_path) == []
    assert {p.name: p.read_bytes() for p in (out / "shards").iterdir()} == before


def test_one_changed_input_recomputes_only_that_sample(tmp_path, corpus):
    out = tmp_path / "out"
    build(traced(tmp_path), corpus, out, workers=1)
    trace(tmp_path)
    (corpus / "part1" / "item0003.txt").write_text("A changed caption")
    summary = build(traced(tmp_path), corpus, out, workers=1)
    assert summary["shards_built"] == 1 and summary["shards_skipped"] == 2
    assert trace(tmp_path) == ["A part1/item0003", "B part1/item0003", "C part1/item0003"]
    stats = json.loads((out / "stats.json").read_text())
    assert stats["run"]["records_reused"] == 2  # size and mtime unchanged: copied from the old shard
    assert members(out)["part1/item0003.txt"] == b"A changed caption"


def test_changing_a_stage_recomputes_it_and_what_follows_only(tmp_path, corpus):
    out = tmp_path / "out"
    build(traced(tmp_path), corpus, out, workers=1)
    trace(tmp_path)
    summary = build(traced(tmp_path, lowercase=True), corpus, out, workers=1)
    assert summary["shards_built"] == 3
    lines = trace(tmp_path)
    assert sorted({line.split()[0] for line in lines}) == ["B", "C"]  # A's cached output was reused
    assert len(lines) == 16
    assert members(out)["part0/item0000.txt"] == b"a red square on a gradient #0"
    stats = json.loads((out / "stats.json").read_text())
    assert stats["stages"]["debug.trace"]["cached"] >= 8


def test_force_recomputes_everything(tmp_path, corpus):
    out = tmp_path / "out"
    build(traced(tmp_path), corpus, out, workers=1)
    trace(tmp_path)
    summary = build(traced(tmp_path), corpus, out, workers=1, force=True)
    assert summary["shards_built"] == 3 and len(trace(tmp_path)) == 24


def test_shards_are_identical_for_any_worker_count_and_on_dask(tmp_path, corpus, demo_doc):
    one, two, dask = tmp_path / "one", tmp_path / "two", tmp_path / "dask"
    build(demo_doc, corpus, one, workers=1)
    build(demo_doc, corpus, two, workers=2)
    summary = build(demo_doc, corpus, dask, workers=2, executor="dask")
    assert summary["ok"] and summary["shards_built"] == 2
    ref = {p.name: p.read_bytes() for p in (one / "shards").iterdir()}
    assert {p.name: p.read_bytes() for p in (two / "shards").iterdir()} == ref
    assert {p.name: p.read_bytes() for p in (dask / "shards").iterdir()} == ref
    assert json.loads((dask / "stats.json").read_text())["run"]["executor"] == "dask"


def _build_until(cmd: list[str], ready) -> subprocess.Popen:
    """Start a build as its own process and wait (up to 60 s) until ``ready()`` is true."""
    proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not ready():
        time.sleep(0.05)
    return proc


def test_sigkill_midway_then_rerun_gives_the_same_samples(tmp_path, corpus):
    log = str(tmp_path / "slow.log")
    doc = {"stages": [{"stage": "text.decode"}, {"stage": "debug.trace", "path": log, "delay": 0.25}],
           "output": {"name": "k", "max_samples": 2, "fields": ["txt", "jpg"]},
           "execution": {"batch_size": 1}}  # the tar is open while the next sample sleeps
    pipe = write_pipeline(tmp_path / "p.yaml", doc)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mmprep", "build", str(pipe), "-i", str(corpus), "-o", str(out), "-w", "1", "-q"]
    proc = _build_until(cmd, lambda: list((out / ".parts").glob("k-*.json")))
    time.sleep(0.3)  # into the next shard, mid-write
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finals = sorted((out / "shards").glob("k-*.tar"))
    assert 1 <= len(finals) < 4
    for path in finals:  # every tar under a final name is complete
        with tarfile.open(path) as tar:
            assert len(tar.getmembers()) == 2 * 3
    res = subprocess.run(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert not list((out / "shards").glob(".*"))  # temporaries of the killed run are gone
    clean = tmp_path / "clean"
    build(doc, corpus, clean, workers=1)
    assert members(out) == members(clean)


def test_touched_but_unchanged_input_comes_from_the_content_cache(tmp_path, corpus):
    out = tmp_path / "out"
    build(traced(tmp_path), corpus, out, workers=1)
    trace(tmp_path)
    path = corpus / "part0" / "item0002.txt"
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    summary = build(traced(tmp_path), corpus, out, workers=1)
    assert summary["shards_built"] == 1 and summary["records_from_cache"] == 1
    assert trace(tmp_path) == []  # its content hash matched: no stage ran


def test_summaries_count_replayed_samples_too(tmp_path, corpus):
    out = tmp_path / "out"
    build(traced(tmp_path, count=True), corpus, out, workers=1)
    (corpus / "part1" / "item0003.txt").write_text("A changed caption")  # its shard is rebuilt...
    path = corpus / "part0" / "item0002.txt"  # ...and so is this one's, from the content cache
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 10**9))
    summary = build(traced(tmp_path, count=True), corpus, out, workers=1)
    assert summary["records_reused"] == 2 + 2 and summary["records_from_cache"] == 1
    parts = [json.loads(p.read_text()) for p in sorted((out / ".parts").glob("t-*.json"))]
    assert [p["summaries"]["debug.trace#3"]["samples"] for p in parts] == [3, 3, 2]
    assert "samples" not in parts[0]["summaries"].get("debug.trace", {})  # A and B do not count


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["sigterm", "sigkill"])
def test_killing_the_driver_ends_its_workers_too_and_a_rerun_completes(tmp_path, sig):
    """A scheduler's SIGTERM, or SIGKILL (the OOM killer), sent to the driver alone: the forkserver and
    its workers held each other's pipes open and ran on forever (about 110 MB each time); after SIGTERM
    the driver itself went on to build every queued shard before it exited."""
    import psutil

    corpus = tmp_path / "c"
    corpus.mkdir()
    for i in range(40):
        (corpus / f"s{i:02d}.txt").write_text(f"text {i}")
    doc = {"stages": [{"stage": "text.decode"}, {"stage": "debug.trace", "path": str(tmp_path / "t.log"),
                                                  "delay": 0.25}],
           "output": {"name": "k", "max_samples": 2}, "execution": {"batch_size": 1}}
    pipe = write_pipeline(tmp_path / "p.yaml", doc)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mmprep", "build", str(pipe), "-i", str(corpus), "-o", str(out), "-w", "2", "-q"]
    # until the workers are running shards (20 of 0.5 s, 2 at a time: 5 s in all)
    proc = _build_until(cmd, (tmp_path / "t.log").exists)
    family = psutil.Process(proc.pid).children(recursive=True)
    assert family, "no worker processes to check"
    t0 = time.monotonic()
    proc.send_signal(sig)
    # SIGTERM's own status (128 + 15), not Ctrl-C's 130: a job scheduler tells a stop from an interrupt
    assert proc.wait(timeout=60) == (143 if sig == signal.SIGTERM else -signal.SIGKILL)
    assert time.monotonic() - t0 < 3, "the driver built the queued shards before it stopped"
    gone, alive = psutil.wait_procs(family, timeout=15)
    for p in alive:
        p.kill()
    assert alive == []
    assert len(list((out / "shards").glob("k-*.tar"))) < 20
    res = subprocess.run(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert len(list((out / "shards").glob("k-*.tar"))) == 20 and not list((out / "shards").glob(".*"))
