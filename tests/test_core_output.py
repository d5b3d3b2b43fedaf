"""The output folder: checked before any work, one build at a time, and no tar it did not write lost."""

from __future__ import annotations

import fcntl
import logging
import os

import pytest

from mmprep.errors import ConfigError
from tests.conftest import build


def text_doc(name: str = "t", **cache) -> dict:
    return {"stages": [{"stage": "text.decode"}], "output": {"name": name, "max_samples": 2}, "cache": cache}


@pytest.fixture
def texts(tmp_path):
    root = tmp_path / "c"
    root.mkdir()
    for i in range(5):
        (root / f"s{i}.txt").write_text(f"text {i}")
    return root


def test_tars_no_build_wrote_are_refused_not_deleted(tmp_path, texts):
    out = tmp_path / "o"
    (out / "shards").mkdir(parents=True)
    (out / "shards" / "mine.tar").write_bytes(b"x" * 1024)
    with pytest.raises(ConfigError, match=r"^output: .*1 tar file\(s\) no mmprep build wrote \(e\.g\. mine\.tar\)"):
        build(text_doc(), texts, out, workers=1)
    assert sorted(p.name for p in out.rglob("*")) == ["mine.tar", "shards"]


def test_an_earlier_builds_shards_the_plan_does_not_have_are_removed_and_said(tmp_path, texts, caplog):
    out = tmp_path / "o"
    build(text_doc("a"), texts, out, workers=1)
    with caplog.at_level(logging.WARNING, logger="mmprep.build"):
        build(text_doc("b"), texts, out, workers=1)
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["b-000000.tar", "b-000001.tar", "b-000002.tar"]
    assert "removed 3 tar(s) of an earlier build that this plan does not have" in caplog.text


@pytest.mark.parametrize("where", ["output", "cache.dir"])
def test_an_output_or_cache_that_is_a_file_is_a_config_error_before_any_work(tmp_path, texts, where):
    afile = tmp_path / "afile"
    afile.write_text("not a folder")
    out = afile if where == "output" else tmp_path / "o"
    doc = text_doc() if where == "output" else text_doc(dir=str(afile / "sub"))
    with pytest.raises(ConfigError, match=rf"^{where}: {afile} is a file, not a folder"):
        build(doc, texts, out, workers=1)
    assert not (tmp_path / "o").exists()


def test_a_second_build_into_the_same_output_is_refused_while_one_runs(tmp_path, texts):
    out = tmp_path / "o"
    out.mkdir()
    fd = os.open(out / ".lock", os.O_RDWR | os.O_CREAT)
    fcntl.flock(fd, fcntl.LOCK_EX)  # as a running build holds it
    try:
        with pytest.raises(ConfigError, match="^output: another build is writing to"):
            build(text_doc(), texts, out, workers=1)
        assert sorted(p.name for p in out.iterdir()) == [".lock"]
    finally:
        os.close(fd)
    assert build(text_doc(), texts, out, workers=1)["shards_built"] == 3
    assert build(text_doc(), texts, out, workers=1)["shards_built"] == 0  # released after each build


def test_a_shard_that_cannot_be_written_leaves_no_temporary_and_the_closing_line_counts_it(tmp_path):
    """A full disk: aborting the shard wrote the tar's end blocks first, failed again, and left the
    partial temporary behind (keeping the disk full); the closing line said '0 dropped' and nothing of
    the failed samples. The file size limit (RLIMIT_FSIZE) makes a write fail as a full disk does."""
    import subprocess
    import sys

    from tests.conftest import ROOT, write_pipeline

    inp = tmp_path / "in"
    inp.mkdir()
    for i in range(4):
        (inp / f"s{i}.txt").write_text("x" * (40_000 if i == 2 else 10))  # s2's shard outgrows the limit
    pipe = write_pipeline(tmp_path / "p.yaml", {"stages": [{"stage": "text.decode"}],
                                                "output": {"name": "k", "max_samples": 2}})
    limit = ("import resource, runpy, signal, sys\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
             "resource.setrlimit(resource.RLIMIT_FSIZE, (32_000, 32_000))\n"
             "sys.argv = ['mmprep', *sys.argv[1:]]\nrunpy.run_module('mmprep', run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", limit, "build", str(pipe), "-i", str(inp), "-o", str(tmp_path / "o"),
                           "-w", "1"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 1, done.stderr
    assert done.stdout.startswith("2/4 samples in 2 shards (1 tars; 0 already complete), 0 dropped, 2 failed "
                                  "(1 shards), ")
    assert "\nfailed: k-000001: OSError: [Errno 27] File too large" in done.stdout
    assert sorted(p.name for p in (tmp_path / "o" / "shards").iterdir()) == ["k-000000.tar"]


def test_an_output_name_or_folder_that_cannot_be_written_is_a_config_error_before_any_work(tmp_path, texts):
    """A 230-character output.name validated, then every shard failed with 'File name too long'; an OUT
    whose path is not UTF-8 failed in the merge, after every shard was built."""
    from tests.conftest import ROOT, run_cli, write_pipeline

    pipe = write_pipeline(tmp_path / "p.yaml", {"output": {"name": "n" * 201}})
    res = run_cli("validate", str(pipe))
    assert (res.returncode, res.stderr) == (2, "mmprep: config error: output.name: String should have at most 200 "
                                               "characters\n")
    out = os.fsdecode(os.fsencode(str(tmp_path)) + b"/out\xfe")
    res = run_cli("build", str(ROOT / "pipelines/demo.yaml"), "-i", str(texts), "-o", out)
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert res.stderr.startswith(f"mmprep: config error: output: {tmp_path}/out\\udcfe is not valid UTF-8")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["p.yaml", texts.name])


def test_a_report_that_cannot_be_written_is_one_line_and_leaves_no_temporary(tmp_path, texts):
    """A full disk while the reports were written (the merge, or a rerun's stats.json) ended in a traceback,
    and the rerun's stats.json temporary stayed for good. RLIMIT_FSIZE fails the write as a full disk does."""
    import subprocess
    import sys

    from tests.conftest import ROOT, write_pipeline

    pipe = write_pipeline(tmp_path / "p.yaml", text_doc())
    out = tmp_path / "o"
    build(text_doc(), texts, out, workers=1)
    limit = ("import resource, runpy, signal, sys\nsignal.signal(signal.SIGXFSZ, signal.SIG_IGN)\n"
             "resource.setrlimit(resource.RLIMIT_FSIZE, (100, 100))\n"
             "sys.argv = ['mmprep', *sys.argv[1:]]\nrunpy.run_module('mmprep', run_name='__main__')\n")
    done = subprocess.run([sys.executable, "-c", limit, "build", str(pipe), "-i", str(texts), "-o", str(out), "-q"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert (done.returncode, done.stderr) == (1, "mmprep: build failed: File too large; the finished shards are "
                                                 "kept, and a rerun finishes the build\n")
    assert [p.name for p in out.iterdir() if p.name.endswith(".tmp")] == []
    assert build(text_doc(), texts, out, workers=1)["samples_out"] == 5


def test_a_link_in_the_input_to_the_outputs_shards_is_not_read(tmp_path, texts):
    """The output folder itself is never read, but a symbolic link in the input to OUT/shards made the
    second build take its own tars as samples (and every build after it changed the output)."""
    out = tmp_path / "o"
    first = build(text_doc(), texts, out, workers=1)
    os.symlink(out / "shards", texts / "shlink")
    for _ in range(2):
        summary = build(text_doc(), texts, out, workers=1)
        assert (summary["samples_in"], summary["shards_built"], summary["errors_by_reason"]) == (
            first["samples_in"], 0, {})


def test_an_input_folder_right_inside_the_output_is_read(tmp_path):
    """The folders right inside OUT are not read (a link to OUT/shards made a build read its own tars),
    but the input itself may be one of them (-i OUT/raw -o OUT): it was skipped, 0 samples, and a rerun
    removed the earlier build's tars."""
    out = tmp_path / "o"
    (out / "raw").mkdir(parents=True)
    for i in range(4):
        (out / "raw" / f"s{i}.txt").write_text(f"text {i}")
    for _ in range(2):
        summary = build(text_doc(), out / "raw", out, workers=1)
        assert (summary["samples_in"], summary["samples_out"]) == (4, 4)
    assert sorted(p.name for p in (out / "shards").iterdir()) == ["t-000000.tar", "t-000001.tar"]


def test_a_shard_rolled_over_and_aborted_publishes_none_of_its_parts(tmp_path):
    """Past max_bytes the writer used to publish each finished part at once: a shard stopped or failed
    afterwards left its first tars under final names (a stopped Dask shard 'ended unpublished' with a
    tar out). Every part is published by close() now, and abort() removes them all."""
    from mmprep.shardwriter import ShardWriter

    for finish in ("close", "abort"):
        folder = tmp_path / finish
        folder.mkdir()
        writer = ShardWriter(folder, "k-000000", max_bytes=1)
        for i in range(3):
            writer.write(f"s{i}", [("txt", b"x" * 100)])
        assert [p.name for p in folder.iterdir() if not p.name.startswith(".")] == []  # two parts done, none out
        getattr(writer, finish)()
        names = sorted(p.name for p in folder.iterdir())
        assert names == (["k-000000.tar", "k-000000_01.tar", "k-000000_02.tar"] if finish == "close" else [])
