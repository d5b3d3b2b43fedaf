"""Imported once by the forkserver, so that every worker process forks with the core and all stage
modules (and the libraries they import, such as OpenCV) already loaded."""

from mmprep import worker  # noqa: F401
from mmprep.stage import discover

discover()
