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


def _script_build(tmp_path, body: str, name: str = "build_it.py", workers: int = 2,
                  stages: str = "[{'stage': 'text.decode'}]") -> subprocess.CompletedProcess:
    """Run a script file that builds a 6-sample corpus with 2 workers (``body``: its last lines, with
    ``build()`` defined); the environment has no MMPREP_START_METHOD."""
    corpus = tmp_path / "c"
    for i in range(6):
        (corpus / f"d{i % 2}").mkdir(parents=True, exist_ok=True)
        (corpus / f"d{i % 2}" / f"s{i}.txt").write_text(f"text {i}")
    script = tmp_path / name
    script.write_text(
        "import json\n"
        "from mmprep.build import BuildOptions, run_build\n"
        "from mmprep.config import parse_pipeline\n"
        "def build(executor='local'):\n"
        f"    doc = {{'stages': {stages}, 'output': {{'name': 't', 'max_samples': 2}},\n"
        "           'execution': {'executor': executor}}\n"
        f"    opts = BuildOptions(input={str(corpus)!r}, output={str(tmp_path / 'out')!r}, workers={workers}, "
        "progress=False)\n"
        "    print(json.dumps(run_build(parse_pipeline(doc), opts)))\n" + body)
    env = {k: v for k, v in os.environ.items() if k != "MMPREP_START_METHOD"}
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path,
                          env=env)


@pytest.mark.skipif(sys.platform != "linux", reason="workers fork from the driver on Linux only")
def test_a_script_that_builds_without_the_main_guard_forks_its_workers(tmp_path):
    """A forkserver worker imports the main script again, and one that builds at its top level started the
    build again in every worker: each died on the first build's lock, and every shard failed with 'worker
    died'. Such a script's workers fork from the driver instead (nothing unsafe to fork is loaded)."""
    done = _script_build(tmp_path, "build()\n")
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["ok"] and summary["shards_built"] == 3 and summary["samples_out"] == 6


def test_a_script_that_cannot_fork_and_builds_without_the_main_guard_is_told_where_before_any_work(tmp_path):
    done = _script_build(tmp_path, "import pyarrow  # no fork once it is loaded\nbuild()\n")
    assert done.returncode == 1
    last = done.stderr.strip().splitlines()[-1]
    assert last == (f"mmprep.errors.ConfigError: execution.workers: {tmp_path / 'build_it.py'}, line 10, starts a "
                    "build outside `if __name__ == \"__main__\":`, and worker processes start by importing this "
                    "script (each would start the build again): put the call under that `if`, or use one worker")
    assert not (tmp_path / "out").exists()  # nothing written
    guarded = _script_build(tmp_path, "import pyarrow\nif __name__ == '__main__':\n    build()\n", "guarded.py")
    assert guarded.returncode == 0, guarded.stderr
    assert json.loads(guarded.stdout.strip().splitlines()[-1])["samples_out"] == 6


def test_a_dask_local_cluster_is_refused_to_a_script_without_the_main_guard(tmp_path):
    """Dask spawns a LocalCluster's workers, which import the main script whatever this process could fork."""
    for workers in (2, 1):  # one Dask worker is spawned too
        done = _script_build(tmp_path, "build('dask')\n", workers=workers)
        assert done.returncode == 1
        assert "line 9, starts a build outside `if __name__" in done.stderr.strip().splitlines()[-1]
        assert not (tmp_path / "out").exists()


@pytest.mark.skipif(sys.platform != "linux", reason="workers fork from the driver on Linux only")
def test_a_worker_that_dies_in_an_unguarded_script_fails_shards_not_the_build(tmp_path):
    """Such a script's workers fork from the driver; when one died, the retry's new pool could no longer
    fork (the merge had loaded pyarrow) and the build ended in a ConfigError, with no reports."""
    trace = str(tmp_path / "t.log")
    stages = f"[{{'stage': 'text.decode'}}, {{'stage': 'debug.trace', 'path': {trace!r}, 'exit_on': 'd1/s3'}}]"
    done = _script_build(tmp_path, "build()\n", stages=stages)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    failed = {f["shard"]: f["error"] for f in summary["failed_shards"]}
    assert "t-000002" in failed and not summary["ok"]  # d1/s3's shard (keys sorted: the third)
    assert all("no new one can start" in error for error in failed.values()), failed
    assert summary["samples_out"] == 6 - 2 * len(failed) and (tmp_path / "out" / "stats.json").exists()


@pytest.mark.parametrize(("source", "guarded"), [
    ("if __name__ == '__main__':\n    go()\n", True),
    ("if '__main__' == __name__ and True:\n    go()\n", True),
    ("try:\n    if __name__ == '__main__':\n        go()\nexcept ValueError:\n    pass\n", True),
    ("go()\n", False),
    ("if True:\n    go()\n", False),
    ("try:\n    go()\nfinally:\n    pass\n", False),
    ("if __name__ == '__main__':\n    pass\ngo()\n", False),
])
def test_the_main_guard_is_found_around_the_line_that_builds(tmp_path, source, guarded):
    from mmprep.mainscript import _guarded

    script = tmp_path / "s.py"
    script.write_text("import os\n" + source)
    line = next(i for i, text in enumerate(script.read_text().splitlines(), 1) if "go()" in text)
    assert _guarded(str(script), line) is guarded


def test_a_package_run_with_python_m_is_not_imported_again(tmp_path):
    """``python -m package`` runs its unguarded ``__main__`` (mmprep's own does): multiprocessing never
    runs a package's __main__ again, so its first build keeps the forkserver."""
    corpus = tmp_path / "c"
    corpus.mkdir()
    for i in range(4):
        (corpus / f"s{i}.txt").write_text(f"text {i}")
    spec = tmp_path / "p.yaml"
    spec.write_text("stages:\n  - stage: text.decode\noutput:\n  name: t\n  max_samples: 2\n")
    env = {k: v for k, v in os.environ.items() if k != "MMPREP_START_METHOD"}
    done = subprocess.run([sys.executable, "-m", "mmprep", "build", str(spec), "-i", str(corpus), "-o",
                           str(tmp_path / "out"), "-w", "2", "--json"], capture_output=True, text=True, env=env,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "starting 2 worker processes (forkserver)" in done.stderr
    assert json.loads(done.stdout.strip().splitlines()[-1])["samples_out"] == 4


def test_a_build_in_a_thread_of_a_script_without_the_main_guard_is_refused(tmp_path):
    """The guard was looked for in the building thread's frames only: a script that builds in a thread it
    waits for had every forkserver worker run it again (a second driver thread rules out the fork)."""
    done = _script_build(tmp_path, "import threading\nt = threading.Thread(target=build)\nt.start()\nt.join()\n")
    assert "ConfigError: execution.workers: " + str(tmp_path / "build_it.py") + ", line 12, starts a build outside" \
        in done.stderr, done.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("method", ["forkserver", "fork"])
@pytest.mark.parametrize("user_value", [None, "3"])
def test_workers_load_openblas_with_one_thread_unless_the_user_set_it(tmp_path, method, user_value):
    """Workers run one per core: OpenBLAS's thread per core only oversubscribes, and each of those spins
    ~0.1 s of CPU as it loads. OpenCV's wheel carries its own copy, loaded by the stages' set-up (in the
    forkserver, or in a worker forked from the driver). A value the user set is kept."""
    code = ("import os\nfrom mmprep.executors import preload, start_pool\n"
            "def blas():\n"
            "    import cv2  # noqa: F401\n"
            "    from threadpoolctl import threadpool_info\n"
            "    return sorted({i['num_threads'] for i in threadpool_info() if i['internal_api'] == 'openblas'})\n"
            "if __name__ == '__main__':\n"
            "    preload(['cv2'])\n"
            f"    pool = start_pool(2, method={method!r})\n"
            "    print(pool._mp_context.get_start_method(), pool.submit(blas).result(), os.environ.get("
            "'OPENBLAS_NUM_THREADS', '-')); pool.shutdown()\n")
    script = tmp_path / "probe.py"
    script.write_text(code)
    env = {k: v for k, v in os.environ.items() if k not in ("MMPREP_START_METHOD", "OPENBLAS_NUM_THREADS")}
    if user_value:
        env["OPENBLAS_NUM_THREADS"] = user_value
    res = subprocess.run([sys.executable, script], capture_output=True, text=True, env=env, timeout=120)
    want = min(int(user_value), os.cpu_count() or 1) if user_value else 1  # OpenBLAS keeps to the cores
    assert res.stdout.split() == [method, f"[{want}]", user_value or "-"], res.stderr
