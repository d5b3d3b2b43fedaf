"""Whether worker processes may start by importing the caller's main script again.

A forkserver or spawned worker (and a Dask ``LocalCluster``'s, which spawns) first imports ``__main__``
the way Python ran it: a script by its path, ``python -m mod`` by its name. A script that starts a
build at its top level, outside ``if __name__ == "__main__":``, starts it again in every worker: each
died with another build's lock error, and the build reported nothing but "the worker process died"
for every shard. A script read from stdin cannot be imported at all. Both are found here, before any
work: the build then forks its workers from the driver where that is safe, or says what to change.
"""

from __future__ import annotations

import ast
import os
import sys
import threading
from types import FrameType


def rerun_problem() -> str | None:
    """Why workers that import the main script again cannot start, and what to do, in words; None when they can (an
    interactive session, a notebook or ``python -c`` has no script: nothing is run again)."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    if main is None or path is None:
        return None
    named = getattr(getattr(main, "__spec__", None), "name", None)
    if named is None and not os.path.isfile(path):
        return ("this script was read from stdin, and worker processes start by importing it: run it from a file, "
                "or use one worker")
    if named is not None and (named == "__main__" or named.endswith(".__main__")):
        return None  # ``python -m package``: multiprocessing does not run a package's __main__ again
    frame = _top_level_frame(main.__dict__)
    if frame is None or _guarded(path, frame.f_lineno):
        return None
    return (f"{path}, line {frame.f_lineno}, starts a build outside `if __name__ == \"__main__\":`, and worker "
            "processes start by importing this script (each would start the build again): put the call under "
            "that `if`, or use one worker")


def _top_level_frame(namespace: dict) -> FrameType | None:
    """The frame running the main script's own top level, if this call is made from it, or from a thread
    it started and waits for (then the main thread's frame: where it waits)."""
    frames = [sys._getframe(1)]
    if threading.current_thread() is not threading.main_thread():
        frames.append(sys._current_frames().get(threading.main_thread().ident))
    for frame in frames:
        while frame is not None:
            if frame.f_globals is namespace and frame.f_code.co_name == "<module>":
                return frame
            frame = frame.f_back
    return None


def _guarded(path: str, line: int) -> bool:
    """Whether the statement at ``line`` of the script is under an ``if`` that tests ``__name__``; True
    when the source cannot be read (nothing is refused on a guess)."""
    try:
        with open(path, "rb") as fh:
            body = ast.parse(fh.read()).body
    except (OSError, SyntaxError, ValueError):
        return True
    while body:
        node = next((n for n in body if n.lineno <= line <= (n.end_lineno or n.lineno)), None)
        if node is None:
            return False
        if isinstance(node, ast.If) and any(isinstance(n, ast.Name) and n.id == "__name__"
                                            for n in ast.walk(node.test)):
            return True
        body = [child for field in ("body", "orelse", "finalbody", "handlers") for child in getattr(node, field, [])]
    return False
