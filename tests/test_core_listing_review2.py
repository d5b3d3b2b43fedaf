"""Second review of the listing fixes (54ca9f9 and after): the forked child's lifetime, the signal
mask, the ``skip`` of the build's own output, and the no-change stop.

Each test reproduced one defect the review found; all are fixed. A test's docstring describes the
defect as the code had it before the fix (names in it may have moved since).
"""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from mmprep import forkjob, listing
from mmprep import warmup as warmup_module
from mmprep.errors import ConfigError
from tests.conftest import build
from tests.test_core_listing_review import _cleanup, _fds, _state, corpus, text_doc


def _sigint_blocked() -> bool:
    return signal.SIGINT in signal.pthread_sigmask(signal.SIG_BLOCK, [])


@pytest.fixture
def split(monkeypatch):
    monkeypatch.setattr(listing, "SPLIT_AT", 0)
    monkeypatch.setattr(forkjob, "fork_safe", lambda: True)


# -- 1. Ctrl-C during the fork: the child and both pipe ends leak ----------------------------------

def test_ctrl_c_during_the_fork_leaves_no_child_and_no_fd(tmp_path, monkeypatch, split):
    """_Child._fork blocks SIGINT across os.fork; a Ctrl-C that arrives meanwhile stays pending and is
    delivered by the parent's pthread_sigmask(SIG_SETMASK, mask), which raises KeyboardInterrupt itself
    (CPython checks signals right after changing the mask). That is inside __init__, before
    ``self.pid, self.fd`` are set and before ``os.close(write)``: the with block is never entered, so
    __exit__ never kills or reaps the child, and both pipe ends stay open in the driver."""
    root = corpus(tmp_path / "c")
    real, pids = os.fork, []

    def fork():
        pid = real()
        if pid:
            pids.append(pid)
            os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C while forking: SIGINT is blocked, so pending
        return pid

    monkeypatch.setattr(os, "fork", fork)
    before = _fds()
    with pytest.raises(KeyboardInterrupt):
        listing.list_folder(str(root))
    leaked = sorted(_fds() - before)
    import time

    time.sleep(0.3)
    states = {pid: _state(pid) for pid in pids}
    _cleanup(pids, leaked)
    assert pids, "the listing did not fork"
    assert ({p: s for p, s in states.items() if s}, leaked) == ({}, []), "child not reaped / pipe fds left open"


def test_ctrl_c_taken_by_another_thread_during_the_fork_still_reaps_the_child(tmp_path, monkeypatch, split):
    """Blocking SIGINT in the main thread does not hold Ctrl-C back when the process has another thread
    (a pool's, a progress thread): the kernel hands the signal to that thread, and Python raises
    KeyboardInterrupt in the main thread at its next call, here inside the fork before the child was
    recorded: the child stayed a zombie (this test's forerunner above failed now and then in the full
    suite, whose earlier tests leave threads behind)."""
    root = corpus(tmp_path / "c")
    real, pids = os.fork, []
    stop = threading.Event()
    other = threading.Thread(target=stop.wait, daemon=True)  # does not block SIGINT: it takes the signal
    other.start()

    def fork():
        pid = real()
        if pid:
            pids.append(pid)
            os.kill(os.getpid(), signal.SIGINT)
        return pid

    monkeypatch.setattr(os, "fork", fork)
    before = _fds()
    try:
        with pytest.raises(KeyboardInterrupt):
            listing.list_folder(str(root))
    finally:
        stop.set()
        other.join()
    leaked = sorted(_fds() - before)
    time.sleep(0.3)  # a child left behind has exited by now (its pipe is closed): a zombie
    states = {pid: _state(pid) for pid in pids}
    _cleanup(pids, leaked)
    assert pids, "the listing did not fork"
    assert ({p: s for p, s in states.items() if s}, leaked) == ({}, []), "child not reaped / pipe fds left open"
    assert not _sigint_blocked()


# -- 2. a fork refused with anything but OSError leaves SIGINT blocked in the driver ---------------

def test_a_fork_that_raises_leaves_ctrl_c_working(tmp_path, monkeypatch, split):
    """_Child._fork restores the signal mask only in ``except OSError``. os.fork can raise other
    exceptions before any process exists: RuntimeError from an audit hook that forbids it (sys.audit
    "os.fork"), from a subinterpreter, or at interpreter shutdown. Then SIGINT stays blocked in the
    driver for the rest of its life (Ctrl-C does nothing) and the pipe's two fds leak."""
    root = corpus(tmp_path / "c")

    def refused():
        raise RuntimeError("fork not allowed here")

    monkeypatch.setattr(os, "fork", refused)
    assert not _sigint_blocked()
    before = _fds()
    try:
        listing.list_folder(str(root))
    except RuntimeError:
        pass  # raising is acceptable; leaving Ctrl-C dead is not
    blocked = _sigint_blocked()
    leaked = sorted(_fds() - before)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})  # repair the test process
    _cleanup([], leaked)
    assert (blocked, leaked) == (False, []), "SIGINT left blocked in the driver / pipe fds left open"


# -- 3. Ctrl-C while the driver waits for the child's exit status leaves a zombie ------------------

def test_ctrl_c_while_reaping_the_child_still_reaps_it(tmp_path, monkeypatch, split):
    """_Child._reap sets ``self.pid = None`` before os.waitpid. A KeyboardInterrupt raised out of the
    waitpid (Ctrl-C while the child is between closing its pipe and exiting) leaves pid None, so
    __exit__ neither kills nor reaps it: a zombie for the driver's lifetime (many in a notebook)."""
    root = corpus(tmp_path / "c")
    real_fork, real_wait, pids = os.fork, os.waitpid, []

    def fork():
        pid = real_fork()
        if pid:
            pids.append(pid)
        return pid

    def waitpid(pid, options):
        if pid in pids and not getattr(waitpid, "done", False):
            waitpid.done = True
            raise KeyboardInterrupt
        return real_wait(pid, options)

    monkeypatch.setattr(os, "fork", fork)
    monkeypatch.setattr(os, "waitpid", waitpid)
    with pytest.raises(KeyboardInterrupt):
        listing.list_folder(str(root))
    import time

    time.sleep(0.3)
    states = {pid: _state(pid) for pid in pids}
    monkeypatch.setattr(os, "waitpid", real_wait)
    _cleanup(pids, [])
    assert pids and {p: s for p, s in states.items() if s} == {}, "listing child left a zombie"


# -- 4. an output folder equal to the input: the skip drops the whole corpus silently ---------------

def test_an_output_folder_that_is_the_input_folder_is_not_a_silent_empty_build(tmp_path):
    """list_folder(skip=OUT) marks OUT as seen before the root; with ``-o`` equal to ``-i`` (or ``-o`` a
    symlink to it) the root itself is "seen", the listing is empty, and the build succeeds with 0
    samples and no warning. Before 54ca9f9 it built the corpus. It should refuse (ConfigError) or
    leave out only what the build writes."""
    root = corpus(tmp_path / "c")
    with pytest.raises(ConfigError, match="is the input folder"):
        build(text_doc(), root, root, workers=1)
    assert sorted(p.name for p in root.iterdir()) == ["d0", "d1"]  # nothing written


# -- 5. an empty folder on a split level starts the pool on a no-change rerun, and it leaks --------

def test_an_unchanged_rerun_starts_no_worker_pool(tmp_path, monkeypatch):
    """_read_level's split branch calls on_head (WarmUp.head) for every folder of the level, empty or
    unreadable ones too, which are then dropped; _stat_all (a level under SPLIT_BYTES) never calls it
    for them. So .scan.json's heads depend on whether the level was split, and that depends on the
    folders' own sizes, which grow but never shrink on ext4: a temporary (hidden) file made and removed
    in one of them crosses the line without changing one digest. The rerun then sees an unknown head,
    starts the pool, finds every folder digest equal and returns through build._unchanged, which never
    abandons that pool (worker processes left running). The unchanged path saves no new heads, so
    every later rerun does the same."""
    root = corpus(tmp_path / "c")
    (root / "empty").mkdir()
    out = tmp_path / "out"
    build(text_doc(), root, out, workers=2)  # the level d0/ d1/ empty/: three small folders, not split

    junk = [root / "d0" / f".partial-download-{i:06d}-{'x' * 40}" for i in range(4000)]
    for path in junk:  # an editor's or rsync's temporary files, then removed: d0's size stays grown
        path.touch()
    for path in junk:
        path.unlink()
    if sum(os.stat(root / d).st_size for d in ("d0", "d1", "empty")) < listing.SPLIT_BYTES:
        pytest.skip("this file system shrinks folders (not ext4)")

    started = []
    real = warmup_module.start_pool

    def spy(*args, **kwargs):
        pool = real(*args, **kwargs)
        started.append(pool)
        return pool

    monkeypatch.setattr(warmup_module, "start_pool", spy)
    try:
        again = build(text_doc(), root, out, workers=2)
    finally:
        for pool in started:
            pool.shutdown(wait=True, cancel_futures=True)
    assert again["shards_built"] == 0
    assert started == [], "a rerun with nothing changed started (and left running) a worker pool"
