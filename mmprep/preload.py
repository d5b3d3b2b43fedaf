"""Imported once by the forkserver, after the build's stage modules and the libraries they import
(see ``mmprep.executors.preload``), so that every worker process forks with them and the core loaded.

The objects made so far are then frozen out of the cyclic collector's reach: a worker's collections
walk only what it made itself, and never touch (so never copy) the pages it shares with the server."""

import gc

from mmprep import worker  # noqa: F401
from mmprep.executors import exit_with_parent

gc.freeze()
exit_with_parent()  # the forkserver ends with the build's driver, however that ends
