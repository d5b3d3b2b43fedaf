"""How the local pool starts its workers: from a forkserver, or forked from the driver when asked and safe."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading

import pytest

from mmprep import executors


@pytest.mark.skipif(sys.platform != "linux", reason="workers fork from the driver on Linux only")
def test_workers_forked_while_the_scan_pauses_the_collector_run_it():
    # a fresh interpreter: one thread, nothing loaded that forbids a fork
    code = ("import gc\nfrom mmprep.executors import start_pool\ngc.disable()\npool = start_pool(2)\n"
            "print(pool._mp_context.get_start_method(), pool.submit(gc.isenabled).result())\npool.shutdown()")
    env = {**os.environ, "MMPREP_START_METHOD": "fork"}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.stdout.split() == ["fork", "True"], res.stderr


def test_forkserver_by_default_and_no_fork_once_the_driver_has_a_thread_or_a_library_that_dislikes_it(
        monkeypatch):
    monkeypatch.delenv("MMPREP_START_METHOD", raising=False)
    assert executors._context().get_start_method() == "forkserver"
    monkeypatch.setenv("MMPREP_START_METHOD", "fork")
    monkeypatch.setattr(executors, "FORK_UNSAFE", ())
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        assert executors._context().get_start_method() == "forkserver"
    finally:
        stop.set()
        thread.join()
    monkeypatch.setattr(executors, "FORK_UNSAFE", ("json",))  # loaded in every test process
    assert executors._context().get_start_method() == "forkserver"
    monkeypatch.setenv("MMPREP_START_METHOD", "spawn")
    assert executors._context().get_start_method() == "spawn"


def test_a_build_from_a_script_read_on_stdin_starts_its_workers(tmp_path):
    """A forkserver worker runs the main script again; one read from stdin cannot be, and every shard
    used to fail with 'worker died'. Such a build forks its workers from the driver instead."""
    corpus = tmp_path / "c"
    for i in range(6):
        (corpus / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
        (corpus / f"d{i % 2}" / f"s{i}.txt").write_text(f"text {i}")
    script = (
        "import json\n"
        "from mmprep.build import BuildOptions, run_build\n"
        "from mmprep.config import parse_pipeline\n"
        "doc = {'stages': [{'stage': 'text.decode'}], 'output': {'name': 't', 'max_samples': 2}}\n"
        f"opts = BuildOptions(input={str(corpus)!r}, output={str(tmp_path / 'out')!r}, workers=2, progress=False)\n"
        "print(json.dumps(run_build(parse_pipeline(doc), opts)))\n"
    )
    done = subprocess.run([sys.executable, "-"], input=script, capture_output=True, text=True, timeout=120,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["ok"] and summary["shards_built"] == 3 and summary["samples_out"] == 6


def test_workers_of_a_forkserver_started_earlier_get_the_environment_the_driver_has_now(tmp_path):
    """A library caller's second build: the forkserver kept the environment of the first, and a proxy set
    in between must reach the downloads all the same."""
    code = ("import os\nfrom mmprep.executors import start_pool\n"
            "def read(): return os.environ.get('MMPREP_TEST_PROXY', '-')\n"
            "if __name__ == '__main__':\n"
            "    first = start_pool(1, method='forkserver'); print(first.submit(read).result()); first.shutdown()\n"
            "    os.environ['MMPREP_TEST_PROXY'] = 'http://proxy:3128'\n"
            "    second = start_pool(1, method='forkserver')\n"
            "    print(second._mp_context.get_start_method(), second.submit(read).result()); second.shutdown()\n")
    script = tmp_path / "probe.py"  # a file: forkserver workers import the caller's main module by its path
    script.write_text(code)
    env = {k: v for k, v in os.environ.items() if k not in ("MMPREP_START_METHOD", "MMPREP_TEST_PROXY")}
    res = subprocess.run([sys.executable, script], capture_output=True, text=True, env=env, timeout=120)
    assert res.stdout.split() == ["-", "forkserver", "http://proxy:3128"], res.stderr
