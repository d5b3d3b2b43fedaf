"""Second review of the core engine: every problem is one errors.jsonl row (and one count), whatever
path a record takes (two bad files, a fan-out, the cache), and a cache shared between builds of other
folders gives each build the report a fresh build of its own folder gives."""

from __future__ import annotations

import json
import os
import shutil

from mmprep.testing.corpus import add_bad_samples, multimodal_corpus
from mmprep.testing.media import image_bytes, tone, wav_bytes, write
from tests.conftest import ROOT, build, shard_members


def errors(out) -> list[dict]:
    return [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]


def stats(out) -> dict:
    return json.loads((out / "stats.json").read_text())


def test_a_record_with_two_bad_files_is_dropped_once(tmp_path):
    inp = tmp_path / "in"
    write(inp / "a.json", b"")  # neither field is optional: the first problem drops the sample
    write(inp / "a.txt", b"")
    write(inp / "b.txt", "kept")
    doc = {"stages": [{"stage": "text.decode"}], "output": {"name": "t", "max_samples": 4},
           "cache": {"enabled": False}}
    summary = build(doc, inp, tmp_path / "out", workers=1)
    assert (summary["samples_in"], summary["samples_out"], summary["samples_dropped"]) == (2, 1, 1)
    assert summary["errors_by_reason"] == {"input.empty": 1}
    assert [(e["key"], e["field"], e["action"]) for e in errors(tmp_path / "out")] == [("a", "json", "dropped")]


def segment_doc(cache: dict) -> dict:
    return {"stages": [{"stage": "audio.decode"}, {"stage": "audio.segment", "window": 0.1, "min_seconds": 0.05}],
            "output": {"name": "s", "max_samples": 4, "optional": ["jpg"]}, "cache": cache}


def test_a_fanned_out_record_reports_its_own_problems_once(tmp_path):
    """An optional field omitted before a fan-out was repeated on every child: four rows and four
    omitted fields for one empty file; the same from the cache."""
    inp = tmp_path / "in"
    write(inp / "c.wav", wav_bytes(tone(0.35)))  # four segments
    write(inp / "c.jpg", b"")
    want = [("c", "input", "input.empty", "omitted", "jpg")]
    for n, cache in enumerate([{"enabled": False}, {"stages": "all"}, {"stages": "all"}, {"final": True},
                               {"final": True}]):
        out = tmp_path / f"out{n}"
        summary = build(segment_doc(cache), inp, out, workers=1, cache_dir=str(tmp_path / f"cache{(n + 1) // 2}"))
        assert [(e["key"], e["stage"], e["reason"], e["action"], e["field"]) for e in errors(out)] == want, cache
        assert (summary["samples_out"], summary["fields_omitted"]) == (4, 1)
        assert stats(out)["stages"]["input"]["omitted"] == {"input.empty": 1}
    assert stats(tmp_path / "out2")["stages"]["audio.segment"]["cached"] == 1  # the second read the cache
    assert stats(tmp_path / "out4")["run"]["records_from_cache"] == 1


def test_a_cache_shared_with_a_build_of_another_folder_names_this_builds_files(tmp_path):
    """Two copies of a corpus built with one --cache: the second build's errors.jsonl named the first
    copy's files (their paths were stored in the cache with the errors)."""
    first = tmp_path / "first"
    multimodal_corpus(first, 4)
    add_bad_samples(first)
    write(first / "bad" / "tiny.wav", wav_bytes(tone(0.35)))
    write(first / "bad" / "tiny.jpg", image_bytes(64, 48)[:100])  # corrupt: omitted with its path
    second = tmp_path / "second"
    shutil.copytree(first, second)
    doc = {"stages": [{"stage": "image.decode"}, {"stage": "text.decode"}, {"stage": "audio.decode"},
                      {"stage": "audio.segment", "window": 0.1, "min_seconds": 0.05},
                      {"stage": "video.decode"}],
           "output": {"name": "d", "max_samples": 4, "optional": ["jpg", "wav", "srt", "mp4", "txt"]}}
    for n, cache in enumerate([{"final": True}, {"stages": "all"}]):
        doc["cache"] = cache
        shared = tmp_path / f"shared{n}"
        build(doc, first, tmp_path / f"a{n}", workers=1, cache_dir=str(shared))
        summary = build(doc, second, tmp_path / f"b{n}", workers=1, cache_dir=str(shared))
        fresh = tmp_path / f"fresh{n}"
        build(doc, second, fresh, workers=1, cache_dir=str(tmp_path / f"own{n}"))
        got = errors(tmp_path / f"b{n}")
        assert got == errors(fresh), cache
        paths = [e["path"] for e in got if "path" in e]
        assert len(paths) >= 3 and all(p.startswith(str(second)) for p in paths)
        assert shard_members(tmp_path / f"b{n}") == shard_members(fresh)
        assert summary["records_from_cache"] == (summary["samples_in"] - 1 if n == 0 else 0)
        if n == 1:  # every record resumed from a cached stage, but the one dropped at the first stage (no
            # state stored) and the one with an empty file (its input.empty message names its path)
            cached = [s.get("cached", 0) for s in stats(tmp_path / f"b{n}")["stages"].values()]
            assert sum(cached) == summary["samples_in"] - 2


SLOW_STAGE = '''
from mmprep.stage import Stage, register


@register
class SlowImport(Stage):
    """Passes samples on; its setup "imports" a library that takes seconds to load."""

    name = "test.slow_import"

    def imports(self):
        return ("mmprep_review2_slowlib",)
'''

DRIVER = '''
import sys
import mmprep_review2_stage  # noqa: F401 - registers test.slow_import
from mmprep.build import BuildOptions, run_build
from mmprep.config import parse_pipeline

if __name__ == "__main__":
    doc = {"stages": [{"stage": "text.decode"}, {"stage": "test.slow_import"}],
           "output": {"name": "s", "max_samples": 1}}
    run_build(parse_pipeline(doc), BuildOptions(input=sys.argv[1], output=sys.argv[2], workers=2, progress=False))
'''


def test_a_driver_killed_while_the_forkserver_imports_leaves_no_process_behind(tmp_path):
    """The forkserver (and the worker it forked next) took the parent they found once their imports were
    done for the driver to watch: with the driver killed before that, both waited for each other forever."""
    import signal
    import subprocess
    import sys
    import time

    import psutil

    mods = tmp_path / "mods"
    write(mods / "mmprep_review2_slowlib.py", "import time\n\ntime.sleep(4)\n")
    write(mods / "mmprep_review2_stage.py", SLOW_STAGE)
    write(tmp_path / "driver.py", DRIVER)
    for i in range(4):
        write(tmp_path / "in" / f"s{i}.txt", f"text {i}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(mods), str(ROOT)])}
    proc = subprocess.Popen([sys.executable, str(tmp_path / "driver.py"), str(tmp_path / "in"), str(tmp_path / "out")],
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(
                "forkserver" in " ".join(p.cmdline()) for p in psutil.Process(proc.pid).children()):
            time.sleep(0.05)
        time.sleep(1)  # the forkserver is importing the slow library
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        # stderr ends when every process holding it (forkserver, workers, resource tracker) has ended
        proc.communicate(timeout=20)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the build's own process group, if anything was left
        except ProcessLookupError:
            pass


def test_a_shard_that_fails_when_forced_counts_once_and_its_kept_part_is_merged_next_run(tmp_path):
    """--force rebuilds a shard whose part file carries this very plan; when the rebuild failed, that part
    was merged anyway (its records counted in samples_in twice, its rows in the index of a failed run),
    and the next run found every shard complete and kept that run's reports (samples_failed 2 for good)."""
    import pyarrow.parquet as pq

    from mmprep.overview import overview

    inp = tmp_path / "in"
    for i in range(6):
        write(inp / f"s{i}.txt", f"text {i}")
    # exit_on ends a worker process, not the driver: one worker builds in the driver, two in processes
    doc = {"stages": [{"stage": "text.decode"}, {"stage": "debug.trace", "path": str(tmp_path / "t.log"),
                                                  "exit_on": "s3"}],
           "output": {"name": "k", "max_samples": 2}, "cache": {"enabled": False}}
    out = tmp_path / "out"
    build(doc, inp, out, workers=1)
    first = {p.name: p.read_bytes() for p in (out / "shards").glob("*.tar")}
    summary = build(doc, inp, out, workers=2, force=True)
    assert [f["shard"] for f in summary["failed_shards"]] == ["k-000001"]
    assert (summary["samples_in"], summary["samples_out"], summary["samples_failed"]) == (6, 4, 2)
    assert pq.read_table(out / "index.parquet")["key"].to_pylist() == ["s0", "s1", "s4", "s5"]
    assert stats(out)["shards"] == ["k-000000.tar", "k-000002.tar"]
    view = overview(out)  # mmprep show: the tars the index covers, not the failed shard's old ones
    assert (view["samples_out"], view["samples_in"], view["samples_failed"], view["shards"]) == (4, 6, 2, 2)
    assert view["shard_bytes"] == len(first["k-000000.tar"]) + len(first["k-000002.tar"])
    assert build(doc, inp, out, dry_run=True)["reports_current"] is False
    summary = build(doc, inp, out, workers=2)  # k-000001's part and tars are this plan's: nothing to build
    assert (summary["shards_built"], summary["samples_in"], summary["samples_out"], summary["samples_failed"]) == (
        0, 6, 6, 0)
    assert pq.read_table(out / "index.parquet")["key"].to_pylist() == [f"s{i}" for i in range(6)]
    assert stats(out)["shards"] == sorted(first)
    assert {p.name: p.read_bytes() for p in (out / "shards").glob("*.tar")} == first
    assert overview(out)["shards"] == 3


def test_two_builds_of_one_corpus_on_one_dask_scheduler_each_write_their_own_shards(tmp_path):
    """A shard's Dask key was its name and plan hash, which two builds of one corpus into two folders
    share: the scheduler gave the second build the first one's task, and it ended 'ok' with no tar."""
    import threading
    import time

    from distributed import LocalCluster

    inp = tmp_path / "in"
    for i in range(4):
        write(inp / f"s{i}.txt", f"text {i}")
    log = tmp_path / "t.log"
    doc = {"stages": [{"stage": "text.decode"}, {"stage": "debug.trace", "path": str(log), "delay": 1.0}],
           "output": {"name": "k", "max_samples": 2}, "cache": {"enabled": False}}
    got: dict[str, dict] = {}
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        def run(name: str) -> None:
            got[name] = build(doc, inp, tmp_path / name, scheduler=cluster.scheduler_address)

        first = threading.Thread(target=run, args=("a",))
        first.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not log.exists():  # a's shards are being built (2 s each)
            time.sleep(0.05)
        run("b")
        first.join()
    for name in ("a", "b"):
        assert (got[name]["shards_built"], got[name]["samples_out"]) == (2, 4)
        want = [f"s{i}.{ext}" for i in range(4) for ext in ("meta.json", "txt")]
        assert sorted(shard_members(tmp_path / name)) == want
    assert log.read_text().count("trace s0") == 2
