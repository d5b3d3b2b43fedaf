"""The CLI as users run it: a remote Dask scheduler, --json summaries, log lines when not on a TTY."""

from __future__ import annotations

import json
import os

from tests.conftest import ROOT, build, run_cli, write_pipeline


def test_build_on_an_existing_dask_scheduler_via_env(tmp_path, corpus, demo_doc):
    from distributed import LocalCluster

    local = tmp_path / "local"
    build(demo_doc, corpus, local, workers=1)
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        out = tmp_path / "remote"
        res = run_cli("build", str(ROOT / "pipelines/demo.yaml"), "-i", str(corpus), "-o", str(out), "--json",
                      env_extra={"MMPREP_SCHEDULER": cluster.scheduler_address})
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["ok"] and summary["samples_out"] == 8 and summary["shards_built"] == 2
    stats = json.loads((out / "stats.json").read_text())
    assert stats["run"]["executor"] == cluster.scheduler_address
    assert {p.name: p.read_bytes() for p in (out / "shards").iterdir()} == {
        p.name: p.read_bytes() for p in (local / "shards").iterdir()}


def test_a_scheduler_that_is_no_address_or_does_not_answer_fails_before_any_work(tmp_path, corpus, demo_doc):
    """Found when the shards were sent, a bad scheduler had the build list the input, create OUT, remove
    a finished build's stats.json and print progress for 30 s before a traceback."""
    import socket

    with socket.socket() as sock:  # a port nothing listens on once this is closed
        sock.bind(("127.0.0.1", 0))
        refused = f"tcp://127.0.0.1:{sock.getsockname()[1]}"
    out = tmp_path / "out"
    for address, why in ((refused, "cannot reach the Dask scheduler at"),
                         ("notanaddress", "is no Dask scheduler address"),
                         ("foo://host:1", "unknown address scheme 'foo'")):
        res = run_cli("build", str(ROOT / "pipelines/demo.yaml"), "-i", str(corpus), "-o", str(out),
                      "--scheduler", address)
        assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
        assert res.stderr.startswith("mmprep: config error: --scheduler: ") and why in res.stderr, res.stderr
        assert not out.exists()
    build(demo_doc, corpus, out, workers=1)
    stats = (out / "stats.json").read_bytes()
    next(corpus.rglob("*.txt")).write_text("changed")  # a rerun with work to do, sent to the bad scheduler
    res = run_cli("build", str(ROOT / "pipelines/demo.yaml"), "-i", str(corpus), "-o", str(out),
                  env_extra={"MMPREP_SCHEDULER": refused})
    assert res.returncode == 2 and "--scheduler" in res.stderr, res.stderr
    assert (out / "stats.json").read_bytes() == stats  # the finished build is as it was


def test_plain_log_lines_and_summary_when_not_a_tty(tmp_path, corpus):
    out = tmp_path / "out"
    res = run_cli("build", str(ROOT / "pipelines/demo.yaml"), "-i", str(corpus), "-o", str(out), "-w", "1")
    assert res.returncode == 0, res.stderr
    assert "8 samples in 2 shards: 0 complete, 2 to build" in res.stderr
    assert "8/8 samples, 2/2 shards" in res.stderr  # the closing progress line
    assert res.stdout.startswith("8/8 samples in 2 shards (0 already complete), 0 dropped")
    again = run_cli("build", str(ROOT / "pipelines/demo.yaml"), "-i", str(corpus), "-o", str(out), "--json")
    summary = json.loads(again.stdout)
    assert summary["shards_skipped"] == 2 and summary["shards_built"] == 0 and summary["samples_out"] == 8
    assert not [n for n in os.listdir(out / "shards") if n.startswith(".")]


def test_workers_forked_from_the_driver_or_from_a_forkserver_write_the_same_bytes(tmp_path):
    corpus = tmp_path / "corpus"
    for i in range(12):
        (corpus / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (corpus / f"d{i % 3}" / f"s{i:02d}.txt").write_text(f"caption {i}")
    pipe = write_pipeline(tmp_path / "p.yaml", {"stages": [{"stage": "text.decode"}, {"stage": "text.normalize"}],
                                                "output": {"max_samples": 4}})
    shards = {}
    for method in ("fork", "forkserver"):
        out = tmp_path / method
        env = {"MMPREP_START_METHOD": method}
        first = run_cli("build", str(pipe), "-i", str(corpus), "-o", str(out), "-w", "2", env_extra=env)
        assert first.returncode == 0 and f"starting 2 worker processes ({method})" in first.stderr, first.stderr
        (corpus / "d1" / "s04.txt").write_text("changed")  # a rebuild: the pool is started from the scan
        again = run_cli("build", str(pipe), "-i", str(corpus), "-o", str(out), "-w", "2", "--json", env_extra=env)
        assert json.loads(again.stdout)["records_reused"] == 3, again.stderr
        assert f"starting 2 worker processes ({method})" in again.stderr
        (corpus / "d1" / "s04.txt").write_text("caption 4")
        shards[method] = {p.name: p.read_bytes() for p in (out / "shards").iterdir()}
    assert shards["fork"] == shards["forkserver"] and len(shards["fork"]) == 3


def test_a_first_build_starts_a_forkserver_and_a_rerun_with_changes_forks_from_the_driver(tmp_path):
    corpus = tmp_path / "corpus"
    for i in range(12):
        (corpus / f"d{i % 3}").mkdir(parents=True, exist_ok=True)
        (corpus / f"d{i % 3}" / f"s{i:02d}.txt").write_text(f"caption {i}")
    pipe = write_pipeline(tmp_path / "p.yaml", {"stages": [{"stage": "text.decode"}], "output": {"max_samples": 4}})
    out = tmp_path / "out"
    env = {"MMPREP_START_METHOD": ""}  # the defaults
    first = run_cli("build", str(pipe), "-i", str(corpus), "-o", str(out), "-w", "2", env_extra=env)
    assert "starting 2 worker processes (forkserver)" in first.stderr, first.stderr
    (corpus / "d1" / "s04.txt").write_text("changed")
    again = run_cli("build", str(pipe), "-i", str(corpus), "-o", str(out), "-w", "2", "--json", env_extra=env)
    assert json.loads(again.stdout)["records_reused"] == 3, again.stderr
    assert "starting 2 worker processes (fork)" in again.stderr, again.stderr
    forced = run_cli("build", str(pipe), "-i", str(corpus), "-o", str(out), "-w", "2", "--force", env_extra=env)
    assert "starting 2 worker processes (forkserver)" in forced.stderr, forced.stderr


def test_command_table_names_every_command_and_its_module():
    from mmprep.cli import COMMANDS, app, load_commands

    load_commands()
    found = {(c.name or c.callback.__name__.replace("_", "-")): c.callback.__module__.rsplit(".", 1)[-1]
             for c in app.registered_commands}
    assert found == COMMANDS


def test_a_bad_manifest_is_one_line_though_the_pool_starts_beside_its_reading(tmp_path):
    """The workers start while the input is read; their log line waits until they are used, so a bad
    manifest's error is the only line on stderr (it came second)."""
    manifest = tmp_path / "m.csv"
    manifest.write_text("key,txt,TXT\na,one,two\n")
    pipe = write_pipeline(tmp_path / "p.yaml", {"stages": [{"stage": "text.decode"}]})
    res = run_cli("build", str(pipe), "-i", str(manifest), "-o", str(tmp_path / "o"), "-w", "2",
                  env_extra={"MMPREP_START_METHOD": ""})
    assert res.returncode == 2, res.stderr
    assert res.stderr.count("\n") == 1, res.stderr
    assert "columns 'txt' and 'TXT'" in res.stderr and res.stderr.startswith("mmprep: config error: input.path")
    assert not (tmp_path / "o").exists()


def test_a_bad_option_or_argument_is_one_line_and_exit_2(tmp_path):
    """Like a bad pipeline: exit code 2 and one line on stderr that names the option (click drew a
    box of usage and error); help and a good command are unchanged."""
    cases = [(("build", "pipelines/demo.yaml", "-o", str(tmp_path / "o"), "--bogus"), "--bogus"),
             (("align", "a.wav", "b.srt", "--max-offset", "abc"), "'--max-offset'"),
             (("build", "pipelines/demo.yaml"), "'--output'"),
             (("nosuch",), "'nosuch'")]
    for args, named in cases:
        res = run_cli(*args)
        assert res.returncode == 2, (args, res.stderr)
        assert res.stderr.count("\n") == 1 and res.stderr.startswith("mmprep: usage error: "), res.stderr
        assert named in res.stderr and "--help" in res.stderr
        assert not (tmp_path / "o").exists()
    res = run_cli("validate", "--help")
    assert res.returncode == 0 and "Usage" in res.stdout
    res = run_cli("validate", "pipelines/demo.yaml")
    assert res.returncode == 0 and "ok" in res.stdout


def test_ctrl_c_stops_the_shards_running_on_a_remote_dask_cluster_unpublished(tmp_path):
    """Dask cannot cancel a running task: after Ctrl-C the shards running on a remote cluster used to
    publish their tars and part files once the build had ended (perhaps over the next build's). The
    build now makes OUT/.stopped/RUN, and a shard checks it at each batch and before it publishes."""
    import signal
    import subprocess
    import sys
    import time

    from distributed import LocalCluster

    inp = tmp_path / "in"
    inp.mkdir()
    for i in range(4):
        (inp / f"s{i}.txt").write_text(f"text {i}")
    log = tmp_path / "t.log"
    pipe = write_pipeline(tmp_path / "p.yaml", {
        "stages": [{"stage": "text.decode"}, {"stage": "debug.trace", "path": str(log), "delay": 0.5}],
        "output": {"name": "k", "max_samples": 2}, "cache": {"enabled": False}})
    out = tmp_path / "out"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        proc = subprocess.Popen([sys.executable, "-m", "mmprep", "build", str(pipe), "-i", str(inp), "-o", str(out),
                                 "--scheduler", cluster.scheduler_address], cwd=ROOT, stdin=subprocess.DEVNULL,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not log.exists():  # both shards are running (1 s each)
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        while time.monotonic() < deadline and len(log.read_text().splitlines()) < 4:  # the running shards go on
            time.sleep(0.05)
        time.sleep(1.0)  # past their last sample: they stop now, or would publish now
    assert proc.returncode == 130, err
    assert "told up to 2 shard(s) running on the Dask cluster to stop" in err, err
    assert [p.name for p in (out / ".stopped").iterdir()] != []
    assert list((out / "shards").glob("*.tar")) == [] and list((out / ".parts").glob("*.json")) == []
    rerun = run_cli("build", str(pipe), "-i", str(inp), "-o", str(out), "-w", "1", "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout.strip().splitlines()[-1])["samples_out"] == 4
