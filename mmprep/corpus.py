"""Corpus input: a folder or a manifest (JSONL, CSV, Parquet) -> sorted :class:`Record` list.

Planning only lists and stats files; bytes are read later, in the worker that builds the shard.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from operator import attrgetter
from pathlib import Path
from typing import NamedTuple

from mmprep.errors import ConfigError
from mmprep.keys import unique_keys
from mmprep.listing import Folder, list_folder
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


def scan_folder(root: Path, *, include: list[str] = (), exclude: list[str] = (),
                listing: list[Folder] | None = None) -> list[Record]:
    """Files sharing a path stem form one sample: ``a/b/x.jpg`` + ``a/b/x.txt`` -> key ``a/b/x``.

    The files are those :func:`mmprep.listing.list_folder` finds (pass ``listing`` when it was listed
    already: ``include`` and ``exclude`` were applied then, and are not used here). A folder's names
    come sorted, hence a stem's files by extension, and their stamps are joined in that order.
    """
    with _gc_paused():  # ~100k new objects and no cycles: the cyclic collector would only walk them
        if listing is None:
            listing = list_folder(str(root), list(include), list(exclude))
        return _records(listing)


@contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _records(listing: list[Folder]) -> list[Record]:
    """The records of a listing, which this consumes: each folder's names and stats are dropped once read,
    so the listing and the records are not both whole in memory."""
    groups: dict[str, list] = {}  # stem -> [fields, "ext:size:mtime:ctime|..." over its files, bytes]
    exts: dict[str, str] = {}  # one string per field name, shared by every record (not one per file)
    sep = os.sep
    for folder in listing:
        rel_dir, base, stats = folder.rel, folder.path, folder.stats
        for i, name in enumerate(folder.names):
            stem, _, ext = name.rpartition(".")
            stem = rel_dir + stem
            ext = exts.setdefault(ext, ext.lower())
            path = f"{base}{sep}{name}"
            group = groups.get(stem)
            if group is not None and ext in group[0]:
                log.warning("input: %s and %s would both be field %r of %r; keeping the first",
                            group[0][ext], path, ext, stem)
                continue
            size = stats[3 * i]
            if size < 0:  # GONE: vanished, or cannot be read
                stamp, size = f"{ext}:missing", 0
            else:
                stamp = f"{ext}:{size}:{stats[3 * i + 1]}:{stats[3 * i + 2]}"
            if group is None:
                groups[stem] = [{ext: path}, stamp, size]
            else:
                group[0][ext] = path
                group[1] = f"{group[1]}|{stamp}"
                group[2] += size
        folder.names, folder.stats = [], folder.stats[:0]
    keys = unique_keys(list(groups))
    records = [Record(keys[stem], printable(stem), paths, _NONE, hash_text(stamp), size)
               for stem, (paths, stamp, size) in groups.items()]
    del groups, keys
    records.sort(key=_KEY)
    return records


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
                listing: list[Folder] | None = None) -> list[Record]:
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
        return scan_folder(path, include=list(include), exclude=list(exclude), listing=listing)
    return read_manifest(path, fmt=fmt, key_column=key_column, path_columns=path_columns)
