"""Corpus input: a folder or a manifest (JSONL, CSV, Parquet) -> sorted :class:`Record` list.

Planning only lists and stats files; bytes are read later, in the worker that builds the shard.
"""

from __future__ import annotations

import fnmatch
import gc
import json
import logging
import os
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple

from mmprep.errors import ConfigError
from mmprep.keys import unique_keys
from mmprep.sample import RESERVED, ext_modality

log = logging.getLogger(__name__)
FIELD_NAME = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")


class Record(NamedTuple):
    """One sample before it is read: its key, where each field comes from, and how to notice a change.

    A named tuple: a corpus has millions of them, and this is the cheapest immutable record to build."""

    key: str
    origin: str
    paths: dict[str, str] = {}  # noqa: RUF012 - never mutated: records are built whole
    inline: dict[str, str] = {}  # noqa: RUF012
    stamp: str = ""  # digest of every file's size, mtime and ctime: equal stamps mean unchanged input
    size: int = 0  # bytes of all its files: big shards are started first, so no core idles at the end

    @property
    def fields(self) -> list[str]:
        return sorted({*self.paths, *self.inline})


_NONE: dict[str, str] = {}  # shared by records without inline fields (never mutated)
_NAME = attrgetter("name")  # sort key of folder entries, called in C
_KEY = attrgetter("key")  # sort key of records


def _stamp(paths: dict[str, str], inline: dict[str, str]) -> str:
    parts = []
    for ext, path in sorted(paths.items()):
        try:
            st = os.stat(path)  # ctime too: a chmod that makes a file readable must count as a change
            parts.append(f"{ext}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}")
        except OSError:
            parts.append(f"{ext}:missing")
    for ext, text in sorted(inline.items()):
        parts.append(f"{ext}:inline:{text}")
    return hash_text("|".join(parts))


def printable(text: str) -> str:
    """A name that is not valid UTF-8 (undecodable bytes become lone surrogates in Python) as text that
    any JSON or Parquet reader accepts: ``caf\udce9`` -> ``caf\\udce9``."""
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


def hash_text(text: str) -> str:
    import hashlib

    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def _skip(rel: str, include: list[str], exclude: list[str]) -> bool:
    if include and not any(fnmatch.fnmatch(rel, pat) for pat in include):
        return True
    return any(fnmatch.fnmatch(rel, pat) for pat in exclude)


def scan_folder(root: Path, *, include: list[str] = (), exclude: list[str] = (),
                on_folder: Callable[[str, str], None] | None = None) -> list[Record]:
    """Files sharing a path stem form one sample: ``a/b/x.jpg`` + ``a/b/x.txt`` -> key ``a/b/x``.

    Hidden files and folders are skipped, and so are files without an extension; a folder reached
    twice (a symlink loop) is read once. This runs on every rebuild, so the loop does one ``stat`` per
    file, relative to an open folder (no path walk), and little else. A folder's entries come sorted by
    name, hence a stem's files by extension, and their stamps are joined in that order.

    ``on_folder(folder, digest)`` is called after each folder (relative, ``""`` for the root, else
    ending in ``/``) with a digest of its samples' names and stamps: the build compares them with the
    last build's to start its workers as soon as a change shows, and not at all when none does.
    """
    with _gc_paused():  # ~100k new objects and no cycles: the cyclic collector would only walk them
        return _scan(str(root), list(include), list(exclude), on_folder)


@contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _scan(root: str, include: list[str], exclude: list[str], on_folder: Callable[[str, str], None] | None
          ) -> list[Record]:
    groups: dict[str, list] = {}  # stem -> [fields, "ext:size:mtime:ctime|..." over its files, bytes]
    filtered = bool(include or exclude)
    seen: set[tuple[int, int]] = set()
    todo = [("", root)]  # (path relative to root with a trailing "/", absolute path)
    while todo:
        rel_dir, folder = todo.pop()
        subfolders = []
        fresh = []  # this folder's stems
        with _listing(folder, seen) as entries:
            for entry in entries:
                name = entry.name
                if name[0] == ".":
                    continue
                if entry.is_dir():
                    subfolders.append((f"{rel_dir}{name}/", f"{folder}{os.sep}{name}"))
                    continue
                stem, dot, ext = name.rpartition(".")
                if not dot:
                    continue
                stem = rel_dir + stem
                if filtered and _skip(f"{stem}.{ext}", include, exclude):
                    continue
                ext = ext.lower()
                path = f"{folder}{os.sep}{name}"
                group = groups.get(stem)
                if group is not None and ext in group[0]:
                    log.warning("input: %s and %s would both be field %r of %r; keeping the first",
                                group[0][ext], path, ext, stem)
                    continue
                try:
                    st = entry.stat()
                    stamp, size = f"{ext}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}", st.st_size
                except OSError:
                    stamp, size = f"{ext}:missing", 0
                if group is None:
                    groups[stem] = [{ext: path}, stamp, size]
                    fresh.append(stem)
                else:
                    group[0][ext] = path
                    group[1] = f"{group[1]}|{stamp}"
                    group[2] += size
        todo.extend(reversed(subfolders))  # depth first in name order: the first name for a folder wins
        if on_folder is not None:
            on_folder(rel_dir, hash_text("\n".join(f"{stem}\0{groups[stem][1]}" for stem in fresh)))
    keys = unique_keys(list(groups))
    records = [Record(keys[stem], printable(stem), paths, _NONE, hash_text(stamp), size)
               for stem, (paths, stamp, size) in groups.items()]
    del groups, keys
    records.sort(key=_KEY)
    return records


@contextmanager
def _listing(folder: str, seen: set[tuple[int, int]]) -> Iterator[list[os.DirEntry]]:
    """The folder's entries sorted by name; their ``stat`` calls are relative to the folder, kept open
    until the block ends, where the OS allows it. Nothing (with a warning) when the folder cannot be
    read, and nothing when it was read already."""
    fd = None
    try:
        if os.scandir in os.supports_fd:
            fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        st = os.stat(folder) if fd is None else os.fstat(fd)
        node = (st.st_dev, st.st_ino) if st.st_ino else None  # 0: a file system without inode numbers
        if node in seen:
            entries = []
        else:
            if node is not None:
                seen.add(node)
            with os.scandir(folder if fd is None else fd) as it:
                entries = sorted(it, key=_NAME)
    except OSError as exc:
        log.warning("input: cannot list %s (%s); its files are not in this build", folder, exc.strerror)
        entries = []
    try:
        yield entries
    finally:
        if fd is not None:
            os.close(fd)


def _manifest_rows(path: Path, fmt: str) -> list[dict]:
    if fmt == "jsonl":
        rows = []
        with path.open(encoding="utf-8") as fh:
            for n, line in enumerate(fh, 1):
                if line.strip():
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError as exc:
                        raise ConfigError("input.path", f"{path}:{n} is not JSON: {exc.msg}") from None
        return rows
    if fmt == "csv":
        import csv

        with path.open(encoding="utf-8", newline="") as fh:
            return list(csv.DictReader(fh))
    import pyarrow.parquet as pq

    return pq.read_table(path).to_pylist()


def _is_path_column(col: str, path_columns: list[str] | None) -> bool:
    if path_columns is not None:
        return col in path_columns
    return ext_modality(col) in ("image", "audio", "video", "subtitle")


def read_manifest(path: Path, *, fmt: str, key_column: str, path_columns: list[str] | None) -> list[Record]:
    """One row per sample: a key column, then one column per field holding a path or an inline value.

    Relative paths are taken from the manifest's folder. Empty cells mean the field is absent.
    """
    rows = _manifest_rows(path, fmt)
    base = path.parent
    by_raw: dict[str, tuple[dict[str, str], dict[str, str]]] = {}
    for n, row in enumerate(rows):
        if key_column not in row or row[key_column] in (None, ""):
            raise ConfigError("input.key_column", f"row {n} of {path} has no {key_column!r} value")
        raw = str(row[key_column])
        if raw in by_raw:
            raise ConfigError("input.key_column", f"key {raw!r} appears twice in {path.name} (row {n})")
        paths: dict[str, str] = {}
        inline: dict[str, str] = {}
        for col, value in row.items():
            if col == key_column or value is None or value == "":
                continue
            ext = str(col).lower()
            if not FIELD_NAME.match(ext) or ext in RESERVED:
                raise ConfigError("input", f"manifest column {col!r} is not a field name (lowercase "
                                  "letters, digits, _ and inner dots, e.g. jpg or mfcc.npy)")
            if _is_path_column(ext, path_columns):
                paths[ext] = str(base / str(value))
            else:
                inline[ext] = value if isinstance(value, str) else json.dumps(value)
        by_raw[raw] = (paths, inline)
    keys = unique_keys(list(by_raw))
    records = [
        Record(key=keys[raw], origin=printable(raw), paths=p, inline=i, stamp=_stamp(p, i))
        for raw, (p, i) in by_raw.items()
    ]
    return sorted(records, key=_KEY)


def read_corpus(path: str | Path, *, fmt: str = "auto", key_column: str = "key",
                path_columns: list[str] | None = None, include=(), exclude=(),
                on_folder: Callable[[str, str], None] | None = None) -> list[Record]:
    path = Path(path)
    if not path.exists():
        raise ConfigError("input.path", f"{path} does not exist")
    if fmt == "auto":
        if path.is_dir():
            fmt = "folder"
        else:
            suffixes = {".jsonl": "jsonl", ".json": "jsonl", ".csv": "csv", ".parquet": "parquet"}
            fmt = suffixes.get(path.suffix.lower(), "")
            if not fmt:
                raise ConfigError("input.format", f"cannot tell the manifest format of {path.name}; set input.format")
    if fmt == "folder":
        if not path.is_dir():
            raise ConfigError("input.path", f"{path} is not a folder")
        return scan_folder(path, include=list(include), exclude=list(exclude), on_folder=on_folder)
    return read_manifest(path, fmt=fmt, key_column=key_column, path_columns=path_columns)
