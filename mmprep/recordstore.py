"""``OUT/.records``: the records each folder of the corpus gave, by the folder's listing digest.

A rerun lists every file (it must, to see an edit in place), but making records costs as much again:
3.5 us per sample, 0.08 s for 20,000. A folder whose digest (names, sizes, mtimes and ctimes of its
entries, :mod:`mmprep.listing`) is the one saved here gives back its records from here, and only the
folders that changed are made again: a corpus of a million samples with one folder edited makes one
folder's records. An entry keeps a digest of its folder's names and their stats too: where only stats
changed (files edited in place), only the samples of those files are made again (``corpus._patched``).
Entries are ``marshal`` data (records as tuples, written and read in C), one per folder, written as
the records are made, so the driver never holds the whole file while it builds.
"""

from __future__ import annotations

import logging
import marshal
import os
from pathlib import Path
from typing import Any, BinaryIO

from mmprep.atomic import temp_name

log = logging.getLogger(__name__)
FORMAT = 3  # bump when a folder's records would come out differently (keys, stamps, fields)


class RecordStore:
    """``identity``: what else decides the records (input folder, include/exclude, mmprep version).
    ``read`` false (``--force``): nothing saved is used, and the store is written anew."""

    def __init__(self, path: Path, identity: str, *, read: bool = True):
        self.path = path
        self.identity = identity
        # folder (relative) -> (digest, digest of its names, their stats, entry): all as written
        self.saved: dict[str, tuple[str, str, bytes, bytes]] = {}
        self._fh: BinaryIO | None = None
        self._tmp: Path | None = None
        self._failed = False
        self._kept: list[str] = []  # folders given back before the file was opened (see ``get``)
        if read:
            self._load()

    def _load(self) -> None:
        try:
            with open(self.path, "rb") as fh:
                if marshal.load(fh) != (FORMAT, self.identity):
                    return
                saved = {}
                while True:
                    try:
                        rel, *hit = marshal.load(fh)
                    except EOFError:
                        break
                    saved[rel] = tuple(hit)
        except (OSError, EOFError, ValueError, TypeError):  # missing, truncated or not ours: nothing saved
            return
        if all(len(hit) == 4 for hit in saved.values()):
            self.saved = saved

    def get(self, rel: str, digest: str) -> Any:
        """What :meth:`put` saved for the folder with this digest (as it was given), or None. What is
        given is carried over to the store being written, unread: written once a folder is ``put``, so a
        run where none changed leaves the file as it is."""
        hit = self.saved.get(rel)
        if hit is None or not digest or hit[0] != digest:
            return None
        entry = _unpacked(hit[3])
        if entry is None:
            return None
        if self._fh is None:
            self._kept.append(rel)
        else:
            self._write(rel, hit)
        return entry

    def last(self, rel: str, names: str) -> tuple[bytes, Any] | None:
        """The stats and the entry the last run saved for the folder when it had the same ``names`` (their
        digest), whatever its digest then; else None, having unpacked nothing. Nothing is carried over."""
        hit = self.saved.get(rel)
        if hit is None or not names or hit[1] != names:
            return None
        entry = _unpacked(hit[3])
        return None if entry is None else (hit[2], entry)

    def put(self, rel: str, digest: str, entry: Any, names: str = "", stats: bytes = b"") -> None:
        """Save the folder's entry (marshal-able data) for the next run, with a digest of its ``names``
        and their ``stats`` (for :meth:`last`): written at once, published by :meth:`commit`."""
        self._write(rel, (digest, names, stats, marshal.dumps(entry)))

    def _write(self, rel: str, hit: tuple[str, str, bytes, bytes]) -> None:
        """A store that cannot be written is given up with a warning: the build goes on without it."""
        if not hit[0] or self._failed:
            return
        try:
            if self._fh is None:
                self._open()
            marshal.dump((rel, *hit), self._fh)
        except OSError as exc:
            self._give_up(exc)

    def _open(self) -> None:
        self._tmp = temp_name(self.path)
        self._fh = open(self._tmp, "wb")  # noqa: SIM115 - closed in commit or abandon
        marshal.dump((FORMAT, self.identity), self._fh)
        for kept in self._kept:  # the folders before the first one put, which did not change
            marshal.dump((kept, *self.saved[kept]), self._fh)

    def _give_up(self, exc: OSError) -> None:
        log.warning("cannot write %s (%s): the next run makes every record again", self.path, exc.strerror)
        self.abandon()
        self._failed = True

    def commit(self) -> None:
        """Publish what was written (every folder of this listing), replacing the last store."""
        try:
            if self._fh is None and not self._failed and self._kept != list(self.saved):
                self._open()  # no folder changed, but some went
            fh, self._fh = self._fh, None
            if fh is not None:
                fh.close()
                os.replace(self._tmp, self.path)
        except OSError as exc:
            self._give_up(exc)
        self._forget()

    def _forget(self) -> None:
        """Drop what was read: it is as big as the store, and the build goes on for long after."""
        self.saved, self._kept = {}, []

    def abandon(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            fh.close()
        if self._tmp is not None:
            Path(self._tmp).unlink(missing_ok=True)
        self._forget()


def _unpacked(entry: bytes) -> Any:
    try:
        return marshal.loads(entry)
    except (EOFError, ValueError, TypeError):
        return None
