"""Atomic publication: write under a hidden temporary name, then rename over the final one.

Temporary names carry a random part, so processes on different hosts sharing a filesystem (Dask
workers in containers often have the same PID) never write into the same temporary file.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path


def temp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:12]}.tmp")


def atomic_write(path: Path, data: bytes) -> None:
    tmp = temp_name(path)
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except BaseException:  # a full disk: no partial temporary left to keep it full
        tmp.unlink(missing_ok=True)
        raise
