"""Settings a worker process takes before it imports the stages' libraries.

Workers run one per core, so a library's own pool of threads only oversubscribes the cores. OpenBLAS
(numpy's, and the copy inside OpenCV's wheel) starts a thread per core as it loads, and each one spins
for about 0.1 s of CPU before it sleeps: on 2 cores, the workers of a small rerun lost a fifth of their
time to it. So workers load it with one thread, as Dask's nanny does for its workers; a value the user
set is kept.

Importing this module sets them, so only worker processes import it: the forkserver first of all its
preloads, a worker as it starts (``executors._worker_init``). The driver's own settings are left alone.
"""

import os

LIMITS = {"OPENBLAS_NUM_THREADS": "1"}


def apply() -> None:
    for name, value in LIMITS.items():
        os.environ.setdefault(name, value)


apply()
