"""Review of the folder listing (forked child), the no-change stop and the incremental batching.

Each test reproduced one defect the review found; all are fixed. A test's docstring describes the
defect as the code had it before the fix (names in it may have moved since).
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import time

import pytest

from mmprep import forkjob, listing
from mmprep import reuse as reuse_module
from mmprep import warmup as warmup_module
from mmprep import worker as worker_module
from mmprep.testing.media import write
from tests.conftest import build


def text_doc(**extra) -> dict:
    return {"stages": [{"stage": "text.decode"}], "output": {"name": "t", "max_samples": 10},
            "cache": {"enabled": False}, **extra}


def corpus(root, n: int = 24):
    for i in range(n):
        write(root / f"d{i % 2}" / f"s{i:02d}.txt", f"text {i}")
    return root


@pytest.fixture
def forks(monkeypatch):
    """Split even a small listing (as tests/test_core_listing.py does); the pids of the listing's children."""
    pids: list[int] = []
    real = os.fork

    def fork():
        pid = real()
        if pid:
            pids.append(pid)
        return pid

    monkeypatch.setattr(listing, "SPLIT_AT", 0)
    monkeypatch.setattr(forkjob, "fork_safe", lambda: True)
    monkeypatch.setattr(os, "fork", fork)
    return pids


# -- 1. the no-change stop ignores a new version of the output format ------------------------------

def test_a_new_part_format_is_rebuilt_even_when_no_input_changed(tmp_path, monkeypatch):
    """An mmprep upgrade that bumps PART_FORMAT (part files / rows / tars change shape: "older ones are
    then rebuilt", reuse.py) must rebuild every shard. The full path does (trusted_part refuses the old
    parts); the no-change stop does not: .scan.json's identity has neither PART_FORMAT nor the version,
    so the rerun says "nothing changed" and the output stays in the old format."""
    root, out = corpus(tmp_path / "c"), tmp_path / "out"
    build(text_doc(), root, out, workers=1)
    # the upgrade: a version of mmprep whose part files have format 4
    monkeypatch.setattr(reuse_module, "PART_FORMAT", reuse_module.PART_FORMAT + 1)
    monkeypatch.setattr(worker_module, "PART_FORMAT", reuse_module.PART_FORMAT)
    again = build(text_doc(), root, out, workers=1)
    assert again["shards_built"] == 3, "the no-change stop kept shards written in the old part format"


# -- 2. a child reaped by someone else crashes the build ------------------------------------------

def test_a_listing_child_reaped_elsewhere_does_not_crash_the_build(tmp_path, forks):
    """A process that ignores SIGCHLD (inherited through exec from a supervisor, or set by an embedding
    application), or one whose SIGCHLD handler reaps with waitpid(-1), has the child reaped by the
    kernel / the handler: os.waitpid(pid, 0) in listing._received raises ChildProcessError, which is not
    caught, and the build dies instead of using the child's (complete) data or redoing its half."""
    root, out = corpus(tmp_path / "c"), tmp_path / "out"
    old = signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    try:
        summary = build(text_doc(), root, out, workers=1)
    finally:
        signal.signal(signal.SIGCHLD, old)
    assert forks and summary["samples_out"] == 24


# -- 3. an exception while the child runs leaks it (zombie, or blocked forever) and its pipe ---------

def _state(pid: int) -> str | None:
    """The child's state letter (Z: a zombie), None once it is reaped."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def _cleanup(pids, fds):
    """Kill and reap what the code under test left, and close its fds."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
    for fd, _ in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _fds() -> set[tuple[int, str]]:
    """Open fds with what they point at (the fd that lists /proc/self/fd itself is gone by readlink)."""
    out = set()
    for n in os.listdir("/proc/self/fd"):
        try:
            out.add((int(n), os.readlink(f"/proc/self/fd/{n}")))
        except OSError:
            pass
    return out


def test_a_failure_in_the_driver_while_the_child_lists_leaves_no_zombie_and_no_fd(tmp_path, forks, monkeypatch):
    """listing._stat_all forks the child, then stats its own half and calls on_head (WarmUp.head, which
    starts the pool) before _received reaps the child and closes the pipe. Anything raised there (the
    pool cannot start: EAGAIN from fork, EMFILE; a KeyboardInterrupt in a notebook) skips _received: the
    child stays a zombie (or, when its half is over the 64 KiB pipe buffer, blocks in write() forever)
    and the read end of the pipe is never closed. There is no try/finally around the child's lifetime."""
    root, out = corpus(tmp_path / "c"), tmp_path / "out"
    build(text_doc(), root, out, workers=1)
    write(root / "d0" / "s00.txt", "changed: d0's first half differs, so on_head starts the pool")

    def cannot_start(*args, **kwargs):
        raise OSError(errno.EAGAIN, "Resource temporarily unavailable")

    monkeypatch.setattr(warmup_module, "start_pool", cannot_start)
    forks.clear()
    before = _fds()
    with pytest.raises(OSError):
        build(text_doc(), root, out, workers=2)
    leaked = sorted(_fds() - before)
    time.sleep(0.3)
    states = {pid: _state(pid) for pid in forks}
    _cleanup(forks, leaked)  # after the code under test
    assert forks, "the listing did not fork"
    unreaped = {pid: state for pid, state in states.items() if state is not None}
    assert (unreaped, leaked) == ({}, []), "listing children left unreaped, and pipe fds left open"


# -- 4. the child's warnings never reach the driver's log -----------------------------------------

def test_a_folder_the_child_could_not_list_is_warned_about_in_the_driver(tmp_path, monkeypatch, caplog):
    """With many folders on a level (listing._read_level's split branch), the child lists every second
    folder and calls _names, which logs "cannot list ...; its files are not in this build" in the child.
    The driver's handlers never see it (caplog here; a file, queue or Rich handler of an application
    alike): a folder is left out of the build silently. Without the split the warning is there."""
    root = tmp_path / "c"
    for name in ("a", "b", "c"):
        write(root / name / "x.txt", name)
    real = os.listdir
    blocked = str(root / "b")

    def listdir(path="."):
        if os.fsdecode(path) == blocked:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(path)

    monkeypatch.setattr(os, "listdir", listdir)
    monkeypatch.setattr(listing, "SPLIT_BYTES", 0)  # the level counts as big: its folders split
    monkeypatch.setattr(forkjob, "fork_safe", lambda: True)
    caplog.set_level(logging.WARNING, logger="mmprep.listing")
    alone = listing.list_folder(str(root), split=False)
    assert [f.rel for f in alone] == ["", "a/", "c/"] and "cannot list" in caplog.text
    caplog.clear()
    split = listing.list_folder(str(root), split=True)
    assert [f.rel for f in split] == ["", "a/", "c/"]
    assert "cannot list" in caplog.text and blocked in caplog.text, "the child's warning was lost"


# -- 5. batches are cut at 4,096 records even when nothing is copied ------------------------------

def test_a_batch_size_over_4096_is_honoured_by_a_fresh_build(tmp_path):
    """worker._outcomes stops gathering at len(group) == _LOOKAHEAD (4,096) whether the group's records
    are copied or to compute, so execution.batch_size (no upper bound in config.py) is silently capped at
    4,096 even in a fresh build with nothing to copy; before the change a batch was batch_size records.
    The lookahead was meant to bound the copied records held ("copied ones are held as small dicts")."""
    n = 4200
    root = tmp_path / "c"
    for i in range(n):
        folder = root / f"d{i // 1000}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"s{i:05d}.txt").write_text(str(i))
    trace = tmp_path / "trace.log"
    doc = {"stages": [{"stage": "debug.trace", "path": str(trace), "batch": True}],
           "output": {"name": "t", "max_samples": 10000}, "execution": {"batch_size": 5000},
           "cache": {"enabled": False}}
    build(doc, root, tmp_path / "out", workers=1)
    sizes = sorted({line.split()[2] for line in trace.read_text().splitlines()})
    assert sizes == [str(n)], f"batch sizes seen by the batched stage: {sizes}"


# -- 6. an entry that cannot be stat'ed is taken for a file -----------------------------------------

def test_a_folder_whose_entry_cannot_be_stated_is_not_made_into_a_record(tmp_path, monkeypatch):
    """_stats records an entry whose lstat fails (EACCES in a folder with r but not x permission, EIO,
    ESTALE) as GONE, and _sift then treats it as a file: a subfolder named like a file (``v1.0``,
    ``clips.2023``) becomes a record ``v1`` with a field ``0`` and a missing file, and its contents go
    without the "cannot list" warning. The scandir-based scanner this replaced knew it was a folder from
    the directory entry's d_type (DirEntry.is_dir needs no stat)."""
    root, out = tmp_path / "c", tmp_path / "out"
    write(root / "d" / "a.txt", "a")
    write(root / "d" / "v1.0" / "y.txt", "y")
    real = os.lstat

    def lstat(path, *, dir_fd=None):
        if os.fsdecode(path).endswith("v1.0"):
            raise PermissionError(errno.EACCES, "Permission denied")
        return real(path, dir_fd=dir_fd)

    monkeypatch.setattr(os, "lstat", lstat)
    summary = build(text_doc(), root, out, workers=1)
    import pyarrow.parquet as pq

    keys = sorted(pq.read_table(out / "index.parquet").column("key").to_pylist())
    errors = (out / "errors.jsonl").read_text()
    assert "d/v1" not in keys and '"d/v1"' not in errors, (keys, errors, summary["errors_by_reason"])
