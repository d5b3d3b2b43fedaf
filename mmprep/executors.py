"""Run shard tasks: a local process pool by default, or Dask (a LocalCluster or a remote scheduler).

Both yield ``(task, result_or_exception)`` as shards finish, so the driver treats them alike.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing as mp
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from mmprep.errors import ConfigError
from mmprep.mainscript import rerun_problem

log = logging.getLogger(__name__)


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not on Linux
        return max(1, os.cpu_count() or 1)


_PRELOAD: list[str] = []  # what the stages of this build import in setup (see ``preload``)


def preload(modules: list[str]) -> None:
    """Modules for the forkserver to import once (before freezing its objects), so every worker forks
    with them loaded: the build's stage modules (importing all of them costs 0.1 s), and the libraries
    their setup imports (OpenCV 0.06 s, spaCy a second). Set before the pool starts."""
    _PRELOAD[:] = [m for m in dict.fromkeys(modules) if m != "__main__"]  # never re-run a user's script


# libraries whose threads or device state do not survive a fork: with one loaded, workers never fork
# from the driver
FORK_UNSAFE = ("torch", "tensorflow", "jax", "onnxruntime", "cv2", "av", "spacy", "thinc", "distributed", "pyarrow")


def fork_safe() -> bool:
    """Whether this process may fork: on Linux, with one thread, and none of ``FORK_UNSAFE`` loaded."""
    return sys.platform == "linux" and threading.active_count() == 1 and not any(
        name in sys.modules for name in FORK_UNSAFE)


START_METHODS = ("fork", "forkserver", "spawn")


def check_start_method() -> None:
    """``MMPREP_START_METHOD``, if set, names a start method (checked before any work)."""
    method = os.environ.get("MMPREP_START_METHOD")
    if method and method not in START_METHODS:
        raise ConfigError("MMPREP_START_METHOD", f"must be one of {', '.join(START_METHODS)}, not {method!r}")


def _context(preferred: str = "forkserver") -> Any:
    """How worker processes start: ``MMPREP_START_METHOD``, else ``preferred``, by default ``forkserver``
    (a server that imports the core, the stages and their libraries once; every worker forks from it).

    ``fork`` (from the driver itself) starts workers at once, with the driver's modules loaded; it is
    honoured only where it is safe: on Linux, while the driver runs one thread and has none of
    ``FORK_UNSAFE`` loaded. A rerun that found changes prefers it (``WarmUp``): the driver has only
    listed the corpus by then, and with little to rebuild a worker ready in milliseconds matters. First
    and forced builds keep the forkserver: a fork is only as safe as the driver's state (a library that
    started threads before it can hang a worker), and the sum of the processes' RSS, which most
    monitoring shows, then counts the pages the workers share with the driver again."""
    method = os.environ.get("MMPREP_START_METHOD") or preferred
    safe = fork_safe()
    if method == "fork" and not safe:
        method = "forkserver"
    problem = rerun_problem() if method != "fork" else None
    if problem is not None:  # every worker would fail at its start, or start the build again
        if not safe:
            raise ConfigError("execution.workers", problem)
        log.info("%s: workers fork from this process", problem)
        method = "fork"
    if method not in mp.get_all_start_methods():
        method = "spawn"
    ctx = mp.get_context(method)
    if method == "forkserver":
        # workers fork with the core, the stages and their libraries imported (a failing import is skipped)
        ctx.set_forkserver_preload(["mmprep.workerenv", *_PRELOAD, "mmprep.preload"])
    return ctx


def check_main_script(executor: str, workers: int, scheduler: str | None) -> None:
    """Before any work: workers that start by importing the main script again can (see ``mainscript``).
    A local pool then forks them from the driver where that is safe (``_context``); a Dask LocalCluster
    cannot (its workers are spawned). A remote cluster's workers never import it."""
    if scheduler or (executor != "dask" and workers < 2):  # one local worker runs in the driver
        return
    problem = rerun_problem()
    if problem is not None and (executor == "dask" or not fork_safe()):
        raise ConfigError("execution.workers", problem)


def start_pool(workers: int, setup: Callable[..., Any] | None = None, *args: Any,
               method: str = "forkserver", announce: bool = True) -> ProcessPoolExecutor:
    """Start the local pool before its tasks are known: the forkserver imports, the workers fork and
    run ``setup(*args)`` (the stages' own set-up) on other cores while the driver scans the corpus.
    Hand it to :func:`run_local`, or shut it down when there turns out to be nothing to build.
    ``method``: the preferred start method (see ``_context``). ``announce``: log the start now; else the
    caller does (:func:`announce_pool`) once the pool is used: a pool started beside the reading of a
    bad manifest put its line before the one-line error."""
    ctx = _context(method)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=ctx, initializer=_worker_init,  # see below
                               initargs=(dict(os.environ),))
    if announce:
        announce_pool(pool)
    if setup is None:
        return pool
    if ctx.get_start_method() == "fork":
        # forked here and now, before this process has a second thread; the driver's objects are kept
        # out of the workers' collections, so those never write to (and copy) the pages they share.
        # The driver may be in the middle of its scan, with the collector paused: workers turn it on.
        gc.freeze()
        try:
            _submit(pool, workers, setup, args)
        finally:
            gc.unfreeze()
    else:  # from a thread: starting a worker waits until the forkserver has done its imports
        threading.Thread(target=_submit, args=(pool, workers, setup, args), daemon=True).start()
    return pool


def announce_pool(pool: ProcessPoolExecutor) -> None:
    """The pool's start in the log (its size and start method: concurrent.futures keeps them, unexported)."""
    log.info("starting %d worker processes (%s)", pool._max_workers, pool._mp_context.get_start_method())


def _worker_init(environ: dict[str, str]) -> None:
    """``environ``: the driver's when it started the pool. A worker forked by a forkserver that an earlier
    build (of a library caller) started has that one's: a proxy set since would not reach the downloads."""
    if environ != os.environ:
        os.environ.clear()
        os.environ.update(environ)
    from mmprep import workerenv  # sets them (only workers import it), before the stages' set-up imports

    workerenv.apply()  # again: a forkserver's worker imported it there, and has the driver's environment now
    gc.enable()  # off in a driver paused mid-scan, whose state a forked worker inherits
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the driver's handler (a worker forked from it has it)
    exit_with_parent()


def exit_with_parent(poll: float = 1.0) -> None:
    """End this process when its parent dies. A driver killed outright (SIGKILL, the OOM killer) runs no
    clean-up, and its workers and the forkserver, which hold each other's pipes open, would wait forever.
    A thread watches the parent id (PR_SET_PDEATHSIG would follow the parent *thread*, and the forkserver
    is started from a short-lived one); the forkserver runs it too, so the chain ends from the top.

    A worker also watches the process that started it (``multiprocessing.parent_process()``: the driver,
    also for a worker forked by the forkserver), through the pipe the driver holds open for it. The
    parent id alone missed a driver that died before this ran: a forkserver still importing the stages'
    libraries then, or a worker it forked afterwards, took its new parent for the one to watch, and the
    two waited on each other forever."""
    parent = os.getppid()
    starter = mp.parent_process()

    def watch() -> None:
        while os.getppid() == parent and (starter is None or starter.is_alive()):
            time.sleep(poll)
        os._exit(1)

    threading.Thread(target=watch, name="mmprep-exit-with-parent", daemon=True).start()


def _submit(pool: ProcessPoolExecutor, n: int, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
    try:
        for _ in range(n):
            pool.submit(fn, *args)
    except RuntimeError:  # shut down already: nothing was left to build
        pass


def run_local(fn: Callable[[Any], Any], tasks: list[Any], workers: int, pool: ProcessPoolExecutor | None = None,
              submitted: Callable[[], None] | None = None) -> Iterator[tuple[Any, Any]]:
    """``submitted``: called once the tasks are with the pool, before the first result is waited for (the
    driver has time on its hands then: the merge imports its libraries)."""
    # one shard goes to a pool started already (its imports done beside the scan): the driver imports the
    # merge's libraries meanwhile. With no pool, starting one costs more than the shard gains.
    if workers == 1 or not tasks or (len(tasks) == 1 and pool is None):
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)
        for task in tasks:
            try:
                yield task, fn(task)
            except Exception as exc:  # noqa: BLE001 - reported per shard by the driver
                yield task, exc
        return
    # A worker killed by a crashing decoder or the OOM killer breaks the whole pool, and every shard
    # still in it with it. Those are retried in a new pool; after a second crash, each alone, so only
    # the shard that really kills its worker fails.
    todo, attempt = list(tasks), 0
    while todo:
        groups = [todo] if attempt < 2 else [[task] for task in todo]
        todo = []
        for group in groups:
            if pool is None:
                try:
                    pool = start_pool(min(workers, len(group)))
                except ConfigError as exc:  # an unguarded script that can no longer fork (rerun_problem)
                    for task in group:
                        yield task, RuntimeError(f"a worker process died, and no new one can start: {exc}")
                    continue
            for task, result in _pool_round(fn, group, pool, submitted):
                submitted = None
                if not isinstance(result, BrokenProcessPool):
                    yield task, result
                elif attempt < 2:
                    todo.append(task)
                else:
                    yield task, RuntimeError("the worker process died while building this shard")
            pool = None
        attempt += 1
        if todo:
            log.warning("a worker process died; retrying %d shard(s)", len(todo))


def _pool_round(fn: Callable[[Any], Any], tasks: list[Any], pool: ProcessPoolExecutor,
                submitted: Callable[[], None] | None = None) -> Iterator[tuple[Any, Any]]:
    try:
        futures = {}
        for task in tasks:
            try:
                futures[pool.submit(fn, task)] = task
            except BrokenProcessPool as exc:  # a worker died before (setting the stages up): retried
                yield task, exc
        if submitted is not None:
            submitted()
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                exc = fut.exception()
                yield futures[fut], exc if exc is not None else fut.result()
    except BaseException:  # Ctrl-C, SIGTERM (raised as KeyboardInterrupt), or the driver gave up: stop now
        _stop(pool)
        raise
    pool.shutdown(wait=True)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Stop the pool without waiting for its queued shards: ``shutdown`` alone would build every one of
    them first (a SIGTERM sent to the driver only reaches no worker). Finished shards stay published;
    a stopped one leaves only a hidden temporary, which the next build removes."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in processes:
        if proc.is_alive():
            proc.terminate()
    for proc in processes:
        proc.join(timeout=10)


def run_dask(fn: Callable[[Any], Any], tasks: list[Any], *, workers: int, scheduler: str | None
             ) -> Iterator[tuple[Any, Any]]:
    from distributed import Client, LocalCluster, as_completed

    cluster = None
    if scheduler:
        client = Client(scheduler)
        if not client.scheduler_info().get("workers"):
            log.warning("the Dask scheduler at %s has no workers yet: the build waits until some join", scheduler)
    else:
        # the HTTP endpoints on a free port: with 8787 taken (another cluster's dashboard), distributed warned
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=":0", silence_logs=logging.WARNING)
        client = Client(cluster)
    futures = {}
    try:
        # a key names the task to the scheduler, which shares it between clients: two builds of one corpus
        # into two folders must not share one (the second one's shard would be written into the first's)
        futures = {client.submit(fn, task, pure=False, key=_dask_key(task)): task for task in tasks}
        for fut in as_completed(list(futures)):
            task = futures[fut]
            try:
                yield task, fut.result()
            except Exception as exc:  # noqa: BLE001 - reported per shard by the driver
                yield task, exc
    except BaseException:  # Ctrl-C, SIGTERM: the queued shards are cancelled, the running ones told to stop
        unfinished = [fut for fut in futures if not fut.done()]
        told = _tell_stop(tasks)
        try:
            client.cancel(unfinished)
        except Exception:  # noqa: BLE001 - the scheduler is gone: nothing of ours runs there any more
            unfinished = []
        if unfinished and cluster is None:
            running = min(len(unfinished), _threads(client))
            if told:
                log.warning("told up to %d shard(s) running on the Dask cluster to stop: each ends at its next "
                            "batch of samples, unpublished", running)
            else:
                log.warning("up to %d shard(s) were running on the Dask cluster and may still be written (each "
                            "atomically, with its part file) after this build ends; let them finish before the "
                            "next build into this folder", running)
        raise
    finally:
        client.close()
        if cluster is not None:  # its worker processes end with it: nothing runs on
            cluster.close()


def _tell_stop(tasks: list[Any]) -> bool:
    """Make the tasks' stop file (``ShardTask.stop_file``: running shards check it at each batch); False
    when they have none or it cannot be made."""
    path = next((task.stop_file for task in tasks if getattr(task, "stop_file", None)), None)
    if path is None:
        return False
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(f"stopped at {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
    except OSError:
        return False
    return True


def _threads(client: Any) -> int:
    """How many tasks the cluster runs at once (its workers' threads)."""
    try:
        return sum(w.get("nthreads", 1) for w in client.scheduler_info()["workers"].values()) or 1
    except Exception:  # noqa: BLE001 - the scheduler is gone: say the most it could be
        return 1 << 30


def check_scheduler(address: str, key: str, timeout: float = 10.0, *, connect: bool = True) -> None:
    """Before any work: the scheduler address parses, names a transport distributed has, and a TCP one
    (``tcp://``, ``tls://``, ``ws(s)://``) accepts a connection (unless ``connect`` is false). Found only
    when the shards were sent, an unreachable one had the build list the input, create OUT, remove
    stats.json and show progress for half a minute before a traceback."""
    import socket

    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.comm.registry import get_backend

    try:
        scheme, where = parse_address(address)
        get_backend(scheme)  # a scheme distributed has no transport for
        if scheme in ("tcp", "tls", "ws", "wss"):
            host_port = parse_host_port(where)  # no port: a ValueError
            if connect:
                with socket.create_connection(host_port, timeout=timeout):
                    pass
    except ValueError as exc:
        raise ConfigError(key, f"{address!r} is no Dask scheduler address (tcp://HOST:PORT): {exc}") from None
    except OSError as exc:
        why = "timed out" if isinstance(exc, TimeoutError) else exc.strerror or str(exc)
        raise ConfigError(key, f"cannot reach the Dask scheduler at {address}: {why}") from None


def _dask_key(task: Any) -> str:
    """The shard's task key on a Dask scheduler: its name, and a digest of its output folder and plan."""
    from mmprep.cache import digest

    return f"mmprep-shard-{task.name}-{digest(task.out_dir, task.plan_hash)[:16]}"
