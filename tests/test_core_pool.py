"""How the local pool starts its workers: from a forkserver, or forked from the driver when asked and safe."""

from __future__ import annotations

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
