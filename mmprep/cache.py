"""A content-addressed store: key = hash of (input bytes, stage chain, parameters, versions).

Entries are files named by their key under two-letter fan-out folders, written atomically, so
several workers (or several builds sharing ``--cache DIR``) can use one cache at the same time.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from mmprep.atomic import atomic_write


def digest(*parts: bytes | str) -> str:
    h = hashlib.blake2b(digest_size=20)
    for part in parts:
        data = part.encode("utf-8", "surrogatepass") if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)
    return h.hexdigest()


class Cache:
    """``get``/``put`` bytes by key; a disabled cache (``root=None``) stores nothing. A ``put`` that fails (a
    full disk, a fan-out folder another user made read-only) is counted, not raised: the cache only saves
    work, and a shard whose samples are all good must not fail for it (``failed``, ``failure``)."""

    def __init__(self, root: str | Path | None, *, read: bool = True):
        self.root = Path(root) if root else None
        self.read = read
        self.failed = 0  # entries that could not be written
        self.failure = ""  # the first one's error

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / key

    def get(self, key: str) -> bytes | None:
        if self.root is None or not self.read:
            return None
        try:
            return self._path(key).read_bytes()
        except OSError:
            return None

    def put(self, key: str, data: bytes) -> None:
        if self.root is None:
            return
        path = self._path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write(path, data)
        except OSError as exc:
            self.failed += 1
            self.failure = self.failure or f"{exc.strerror or exc} ({exc.filename or path})"
