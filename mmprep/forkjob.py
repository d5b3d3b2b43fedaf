"""Run a small job in a forked child and get its result back through a pipe.

The listing uses it to ``stat`` half of a big corpus on the other core: Python threads would not
overlap those calls (each takes the GIL back). The child only runs the job (no logging, no I/O of
the driver's), writes ``marshal`` data (arrays as bytes) and exits with ``os._exit``. The driver
keeps Ctrl-C: SIGINT is blocked across the fork and stays blocked in the child, a KeyboardInterrupt
is held back until the child is recorded (another thread may take the signal), and leaving the
``with`` block early kills and reaps the child.
"""

from __future__ import annotations

import marshal
import os
import signal
import threading
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from mmprep.executors import fork_safe


class Child:
    """A forked child that runs ``job`` and writes its result to a pipe (arrays as bytes), used as a
    context manager: ``result(n)`` reads it, and leaving the block any other way (an exception in the
    driver, Ctrl-C) kills and reaps the child and closes the pipe. Without a safe fork
    (``executors.fork_safe``), or with ``enabled`` false, there is no child and ``result`` is None."""

    def __init__(self, job: Callable[[], list], *, enabled: bool = True):
        self.pid: int | None = None
        self.fd: int | None = None
        if enabled and fork_safe():
            self._fork(job)

    def _fork(self, job: Callable[[], list]) -> None:
        try:
            with _ctrl_c_deferred():  # a Ctrl-C meanwhile is raised at the end, once the child is known
                self._start(job)
        except BaseException:
            self.close()  # the child, if one started, is stopped and reaped; the pipe is closed
            raise

    def _start(self, job: Callable[[], list]) -> None:
        read, write = os.pipe()
        # blocked across the fork, and left blocked in the child: Ctrl-C must reach the driver only
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            pid = os.fork()
            if pid == 0:  # the child: work, write, exit without running any of the driver's clean-up
                code = 1
                try:
                    os.close(read)
                    data = marshal.dumps(_plain(job()))
                    with os.fdopen(write, "wb") as fh:
                        fh.write(data)
                    code = 0
                finally:
                    os._exit(code)
            self.pid, self.fd, read = pid, read, None
        except OSError:  # no fork: no child, this process does the work
            pass
        finally:
            os.close(write)
            if read is not None:
                os.close(read)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the pipe; stop and reap the child unless it has exited (or was reaped elsewhere)."""
        fd, self.fd = self.fd, None
        if fd is not None:
            os.close(fd)
        if self.pid is not None:
            try:
                done = os.waitpid(self.pid, os.WNOHANG)[0] == self.pid
            except ChildProcessError:  # reaped elsewhere: its pid may belong to another process by now
                self.pid = None
                return
            if not done:
                os.kill(self.pid, signal.SIGKILL)
                self._reap()
            self.pid = None

    def _reap(self) -> int:
        """The child's exit status; 0 when something else reaped it (SIGCHLD ignored, or a handler that
        waits for every child): the data check then decides."""
        try:
            status = os.waitpid(self.pid, 0)[1]
        except ChildProcessError:
            status = 0
        self.pid = None  # only now: a Ctrl-C inside waitpid leaves it to close()
        return status

    def result(self, n: int) -> list | None:
        """The child's n results, or None when there was no child or it failed (the caller then does
        that work itself)."""
        fd, self.fd = self.fd, None
        if fd is None:
            return None
        with os.fdopen(fd, "rb") as fh:
            data = fh.read()
        if self._reap() != 0:
            return None
        try:
            items = marshal.loads(data)
        except (EOFError, ValueError, TypeError):
            return None
        return items if isinstance(items, list) and len(items) == n else None


@contextmanager
def _ctrl_c_deferred() -> Iterator[None]:
    """Hold back Ctrl-C's KeyboardInterrupt until the block ends. Blocking SIGINT in this thread is not
    enough: the kernel hands a process-wide SIGINT to any thread that does not block it (a pool's
    thread, say), and Python then raises KeyboardInterrupt in the main thread between any two calls,
    e.g. after ``os.fork`` returns and before the child is recorded (left unreaped, its pipe open).
    Only the main thread gets KeyboardInterrupt, so elsewhere there is nothing to hold back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    # SIGTERM too when a handler turns it into an exception (``mmprep build`` does)
    held = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    held = {sig: h for sig, h in held.items() if h is not None and (sig == signal.SIGINT or callable(h))}
    caught: list[tuple[int, object]] = []
    for sig in held:
        signal.signal(sig, lambda signum, frame: caught.append((signum, frame)))
    try:
        yield
    finally:
        for sig, previous in held.items():
            signal.signal(sig, previous)
        if caught:
            signum, frame = caught[0]
            previous = held[signum]
            if callable(previous):
                previous(signum, frame)
            elif previous == signal.SIG_DFL:
                signal.raise_signal(signum)


def _plain(value: object) -> object:
    """What marshal can write: arrays as bytes, at any depth."""
    if isinstance(value, array):
        return value.tobytes()
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value

