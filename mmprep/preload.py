"""Imported once by the forkserver, so that every worker process forks with the core and all stage
modules (and the libraries they import, such as OpenCV) already loaded.

The objects made so far are then frozen out of the cyclic collector's reach: a worker's collections
walk only what it made itself, and never touch (so never copy) the pages it shares with the server."""

import gc

from mmprep import worker  # noqa: F401
from mmprep.stage import discover

discover()
gc.freeze()
