"""Corpus input: a folder or a manifest (JSONL, CSV, Parquet) -> sorted :class:`Record` list.

Planning only lists and stats files; bytes are read later, in the worker that builds the shard.

How a folder's file names become samples and fields:

- A name splits at its last dot into a stem and an extension; files of one folder sharing a stem
  are one sample, and the extension, lowercased, is the field (``x.jpg`` + ``x.TXT`` -> sample ``x``,
  fields ``jpg`` and ``txt``).
- Then a stem ``S.T`` whose folder also holds a sample ``S``, where ``T`` is one or more dot-separated
  tokens of lowercase letters, digits and ``_``, each with at least one letter, joins ``S``: its
  files become fields ``T.ext`` (``x.jpg`` + ``x.mfcc.npy`` -> sample ``x``, fields ``jpg`` and
  ``mfcc.npy``; ``clip.wav`` + ``clip.segments.json`` -> ``clip``, ``segments.json``). The shortest
  such ``S`` wins, as WebDataset splits member names at the first dot, so a folder extracted from
  WebDataset tars gives back their samples. Otherwise ``S.T`` stays a sample of its own:
  ``IMG.2023.jpg`` alone is sample ``IMG.2023`` (key ``IMG_2023``) with field ``jpg``, and so are
  ``trip.1.jpg`` and ``a.Final.jpg`` next to ``trip.jpg`` and ``a.jpg`` (``1`` has no letter, ``Final``
  is not lowercase).
- A file whose extension is no field name (empty, not only ASCII letters, digits and ``_``, or a
  reserved name: ``__key__``, ``__meta__``, ``__source__``) is left out (``input.bad_field_name``),
  and so is a second file for a field a sample has already (``x.TXT`` next to ``x.txt``: the first
  by name is kept, ``input.field_clash``). Both are logged and appended to the caller's ``skipped``.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import os
import re
from array import array
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import contextmanager
from operator import attrgetter
from pathlib import Path
from typing import Any, NamedTuple

from mmprep.errors import ConfigError
from mmprep.keys import sanitize_key, unique_keys
from mmprep.listing import Folder, Skipped, list_folder
from mmprep.recordstore import RecordStore
from mmprep.sample import RESERVED, ext_modality

log = logging.getLogger(__name__)
NAME_REASONS = ("input.bad_field_name", "input.field_clash")  # files left out for their names alone
FIELD_NAME = re.compile(r"^[a-z0-9_]+(\.[a-z0-9_]+)*$")
_WORD = r"[0-9_]*[a-z][a-z0-9_]*"  # a token of a folder stem's field part: it has a letter (not "2023")
_FIELD_PREFIX = re.compile(rf"{_WORD}(?:\.{_WORD})*")


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


def _stamp(paths: dict[str, str], inline: dict[str, str], given: dict[str, str]) -> str:
    """A manifest record's stamp: each file's stats and its path as the manifest gives it (``given``: a
    row pointed at another file of the same size and times, as ``cp -p`` or ``tar -x`` leave them, is a
    change; the manifest's folder moved elsewhere with its files is none), and the inline values."""
    parts = []
    for ext, path in sorted(paths.items()):
        try:
            st = os.stat(path)  # ctime too: a chmod that makes a file readable must count as a change
            parts.append(f"{ext}:{given[ext]!r}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}")
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
    """The digest that record stamps are (``_records`` computes it inline)."""
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def scan_folder(root: Path, *, include: list[str] = (), exclude: list[str] = (),
                listing: list[Folder] | None = None, skipped: list[Skipped] | None = None,
                store: RecordStore | None = None) -> list[Record]:
    """Files sharing a path stem form one sample: ``a/b/x.jpg`` + ``a/b/x.txt`` -> key ``a/b/x``.

    The files are those :func:`mmprep.listing.list_folder` finds (pass ``listing`` when it was listed
    already: ``include`` and ``exclude`` were applied then, and are not used here). A folder's names
    come sorted, hence a stem's files by extension, and their stamps are joined in that order. Files
    left out (the module docstring says which) are appended to ``skipped``, for the build's report.
    ``store``: records of the last run by folder (:class:`mmprep.recordstore.RecordStore`), used for the
    folders that did not change, and written anew.
    """
    skipped = [] if skipped is None else skipped
    with _gc_paused():  # ~100k new objects and no cycles: the cyclic collector would only walk them
        if listing is None:
            listing = list_folder(str(root), list(include), list(exclude), skipped=skipped)
        return _records(listing, skipped, store)


# Matches a folder's names joined by "/" (no file name holds one) when some extension is no field name
# or could clash once lowercased: its last dot's segment is not all a-z, 0-9, _, or it is reserved. One
# search in C spares most folders a loop in Python.
_SUSPECT = re.compile(r"\.(?:(?=[^./]*+(?:/|\Z))(?![a-z0-9_]++(?:/|\Z))|__(?:key|meta|source)__(?:/|\Z))")


def skipped_names(listing: list[Folder], known: list[Skipped] | None = None) -> list[Skipped]:
    """What :func:`scan_folder` would leave out of ``listing``, making no record and leaving the listing
    whole: for a build that stops because no folder changed, so that its report still counts them
    (3 ms per 40,000 well-named files). ``known``: what it left out the last time the folders were as
    they are (names included): only logged again."""
    skipped: list[Skipped] = []
    if known is not None:
        _left_again(known, skipped)
        return skipped
    for folder in listing:
        if _SUSPECT.search("/".join(folder.names)):
            _records([Folder(folder.rel, folder.path, folder.names, folder.stats)], skipped)
    return skipped


@contextmanager
def _gc_paused() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _records(listing: list[Folder], skipped: list[Skipped], store: RecordStore | None = None) -> list[Record]:
    """The records of a listing, which this consumes: each folder's names and stats are dropped once read,
    so the listing and the records are not both whole in memory. With a ``store``, a folder whose digest
    is saved there gives its records back from it, and every folder's are saved for the next run.

    A folder's records do not depend on other folders, but for keys: each is its stem sanitized, unless
    two stems of the corpus sanitize alike (``a b/x`` and ``a_b/x``), then ``unique_keys`` decides over
    all of them (the raw stems are kept for that: a record's ``origin``, or where that is no raw stem,
    a name that is not UTF-8, in the folder's ``odd``)."""
    fields: dict[str, str] = {}  # extension -> field name, one string shared by every record; "" if invalid
    records: list[Record] = []
    odd: dict[int, str] = {}  # record index -> raw stem, where the origin is not it
    new = tuple.__new__
    for folder in listing:
        entry = store.get(folder.rel, folder.digest) if store is not None else None
        if entry is not None:  # (record tuples, odd raw stems by index in them, left out: path, reason, message)
            rows, raws, left = entry
            _left_again(left, skipped)
        else:
            names = _names_digest(folder.names) if store is not None else ""
            last = store.last(folder.rel, names) if store is not None else None
            patched = _patched(folder, *last, fields) if last is not None else None
            del last  # as big as the folder's records: not kept while they are all made again
            if patched is not None:  # only some files' stats changed: those samples' records are made again
                rows, raws, left = patched
                _left_again(left, skipped)
            else:
                before = len(skipped)
                rows, raws = _folder_records(folder, fields, skipped)
                left = [tuple(item) for item in skipped[before:]]
            if store is not None:
                store.put(folder.rel, folder.digest, (rows, raws, left), names, folder.stats.tobytes())
        odd.update((len(records) + i, raw) for i, raw in raws.items())
        records += [new(Record, row) for row in rows]
        folder.names, folder.stats = [], folder.stats[:0]
    if store is not None:
        store.commit()
    if len(set(map(_KEY, records))) < len(records):  # two stems sanitize alike: unique_keys decides
        keys = unique_keys([odd.get(i, r.origin) for i, r in enumerate(records)])
        records = [r._replace(key=keys[odd.get(i, r.origin)]) for i, r in enumerate(records)]
    records.sort(key=_KEY)
    return records


def _left_again(left: list[tuple[str, str, str]], skipped: list[Skipped]) -> None:
    """Report files left out by an earlier run, as it did (the folder's names are the same)."""
    for path, reason, message in left:
        log.warning("input: %s left out: %s", printable(path), message)
        skipped.append(Skipped(path, reason, message))


def _folder_records(folder: Folder, fields: dict[str, str], skipped: list[Skipped]
                    ) -> tuple[list[tuple], dict[int, str]]:
    """One folder's records as tuples (a :class:`Record`'s fields; ``inline`` is one empty dict, which
    ``marshal`` keeps one per folder), each keyed by its stem sanitized, and the raw stems that are not
    their records' origins, by index."""
    groups: dict[str, list] = {}  # stem -> [fields, "ext:size:mtime:ctime|..." over its files, bytes]
    dotted: list[str] = []  # stems with a dot in their base name: maybe fields of a shorter stem
    rel_dir, base, stats = folder.rel, folder.path + os.sep, folder.stats
    # this loop runs once per file: sizes, mtimes and ctimes come as three slices of the stats
    for name, size, mtime, ctime in zip(folder.names, stats[0::3], stats[1::3], stats[2::3], strict=True):
        stem, _, raw = name.rpartition(".")
        ext = fields.get(raw) or _field_name(raw, fields)
        if not ext:
            _bad_field(base + name, raw, skipped)
            continue
        full = rel_dir + stem
        group = groups.get(full)
        if group is not None and ext in group[0]:
            _clash(group[0][ext], base + name, ext, full, skipped)
            continue
        if size < 0:  # GONE: vanished, or cannot be read
            stamp, size = f"{ext}:missing", 0
        else:
            stamp = f"{ext}:{size}:{mtime}:{ctime}"
        if group is None:
            groups[full] = [{ext: base + name}, stamp, size]
            if "." in stem:
                dotted.append(full)
        else:
            group[0][ext] = base + name
            group[1] = f"{group[1]}|{stamp}"
            group[2] += size
    for stem in dotted:
        _merge_dotted(stem, groups, skipped)
    # blake2b called here: no Python frame per record
    blake2b = hashlib.blake2b
    rows = [(sanitize_key(stem), printable(stem), paths, _NONE,
             blake2b(stamp.encode("utf-8", "surrogatepass"), digest_size=8).hexdigest(), size)
            for stem, (paths, stamp, size) in groups.items()]
    raws = {i: stem for i, stem in enumerate(groups) if rows[i][1] != stem}
    return rows, raws


def _names_digest(names: list[str]) -> str:
    """Equal for two listings of a folder with the same candidate files (:meth:`RecordStore.last`)."""
    return hashlib.blake2b("\0".join(names).encode("utf-8", "surrogatepass"), digest_size=8).hexdigest()


def _patched(folder: Folder, last_stats: bytes, last: tuple, fields: dict[str, str]) -> tuple | None:
    """The folder's rows, raw stems and left-out files from ``last`` (its store entry from the last run,
    when it had the same names; ``last_stats``: theirs then), where only some stats changed (files
    edited in place): the records of the samples those files are in are made again, from their files
    alone, and the rest are kept. Keys, fields and what is left out depend on the names only. None:
    make them all.

    A folder of 1,000 samples with one edited costs 0.1 ms instead of 4 (a flat folder of a million,
    0.1 s instead of 4)."""
    rows, raws, left = last
    stats = folder.stats
    if len(last_stats) != len(stats) * stats.itemsize:
        return None
    old = array("q")
    old.frombytes(last_stats)
    changed = _changed(old, stats)
    if not changed:  # a subfolder changed, or what is no candidate file
        return last
    # a record made again costs ~10x what it does among all (1.3 us a file): past a 16th, make them all
    if len(changed) > max(8, len(folder.names) // 16):
        return None
    base = folder.path + os.sep
    wanted = {base + folder.names[i] for i in changed}.difference(path for path, _, _ in left)
    if not wanted:  # only files in no sample changed (left out by name): nothing does
        return last
    rows = list(rows)
    for r, row in enumerate(rows):
        if wanted.isdisjoint(row[2].values()):
            continue
        files = sorted(path[len(base):] for path in row[2].values())
        at = [bisect_left(folder.names, name) for name in files]
        sub_stats = array("q")
        for i in at:
            sub_stats += stats[3 * i : 3 * i + 3]
        made, _ = _folder_records(Folder(folder.rel, folder.path, files, sub_stats), fields, [])
        if len(made) != 1 or made[0][:4] != row[:4]:  # cannot be; were it so, make the folder's all
            return None
        rows[r] = made[0]
        wanted.difference_update(row[2].values())
        if not wanted:
            break
    return rows, raws, left


def _changed(old: array, new: array) -> list[int]:
    """The names whose three stats differ, compared 64 names at a time (slices compare in C)."""
    out = []
    for lo in range(0, len(new), 192):
        if old[lo : lo + 192] != new[lo : lo + 192]:
            out += [i // 3 for i in range(lo, min(lo + 192, len(new)), 3) if old[i : i + 3] != new[i : i + 3]]
    return out


def _field_name(ext: str, fields: dict[str, str]) -> str:
    """``ext`` lowercased, remembered in ``fields``; "" when it is no field name (see the module docstring)."""
    name = ext.lower()
    if not FIELD_NAME.match(name) or name in RESERVED:
        return ""
    fields[ext] = name
    return name


def _bad_field(path: str, ext: str, skipped: list[Skipped]) -> None:
    why = "a reserved name" if ext.lower() in RESERVED else "not a field name (lowercase letters, digits, _)"
    message = f"extension {printable(ext)!r} is {why}"
    log.warning("input: %s left out: %s", printable(path), message)
    skipped.append(Skipped(path, "input.bad_field_name", message))


def _clash(kept: str, path: str, field: str, stem: str, skipped: list[Skipped]) -> None:
    message = f"field {field!r} of {printable(stem)!r} is {printable(kept)} already"
    log.warning("input: %s left out: %s", printable(path), message)
    skipped.append(Skipped(path, "input.field_clash", message))


def _merge_dotted(stem: str, groups: dict[str, list], skipped: list[Skipped]) -> None:
    """Make the files of ``S.T`` fields ``T.ext`` of sample ``S``, where ``S`` is one (module docstring).

    The shortest such ``S`` wins, as WebDataset splits a member name at its first dot. A target never
    merges itself: were ``S`` = ``R.U`` mergeable into ``R``, then ``R`` would be the shorter match."""
    start = stem.rfind("/") + 1
    dot = stem.find(".", start + 1)  # start + 1: a base name is never empty
    while dot > 0:
        target = groups.get(stem[:dot])
        if target is not None and _FIELD_PREFIX.fullmatch(stem, dot + 1):
            prefix = stem[dot + 1 :]
            paths, stamp, size = groups.pop(stem)
            for ext, path in paths.items():
                field = f"{prefix}.{ext}"
                if field in target[0]:  # cannot happen: a folder file's own field has no dot
                    _clash(target[0][field], path, field, stem[:dot], skipped)
                else:
                    target[0][field] = path
            target[1] = "|".join([target[1], *(f"{prefix}.{part}" for part in stamp.split("|"))])
            target[2] += size
            return
        dot = stem.find(".", dot + 1)


def _where(path: Path, fmt: str, n: int) -> str:
    """Where a user finds a manifest row: "line N" (JSONL, CSV: from 1, as an editor counts; a CSV row
    spanning lines is at its first) or "row N" (Parquet: from 0, as pyarrow and pandas count)."""
    return f"row {n} (from 0) of {path}" if fmt == "parquet" else f"line {n} of {path}"


def _manifest_rows(path: Path, fmt: str) -> list[tuple[int, dict]]:
    """Each row with its number for :func:`_where` (a number, not the text: a manifest has millions).

    ``utf-8-sig``: a byte order mark (Excel's "CSV UTF-8") is not part of the first column's name."""
    try:
        if fmt == "jsonl":
            return _jsonl_rows(path)
        if fmt == "csv":
            return _csv_rows(path)
        import pyarrow.parquet as pq

        _one_each(pq.read_schema(path).names, path, "the schema")
        return list(enumerate(pq.read_table(path).to_pylist()))
    except UnicodeDecodeError as exc:
        raise ConfigError("input.path", f"{path} is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None
    except (OSError, ValueError) as exc:  # pyarrow's ArrowInvalid is a ValueError; csv.Error is not
        raise ConfigError("input.path", f"cannot read {path} as {fmt}: {_one_line(exc)}") from None


def _jsonl_rows(path: Path) -> list[tuple[int, dict]]:
    rows = []
    with path.open(encoding="utf-8-sig") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    row = json.loads(line, object_pairs_hook=_pairs)
                except _Repeated as exc:
                    raise ConfigError("input.path", f"line {n} of {path} has {exc.args[0]!r} twice") from None
                except json.JSONDecodeError as exc:
                    raise ConfigError("input.path", f"line {n} of {path} is not JSON: {exc.msg}") from None
                if not isinstance(row, dict):
                    raise ConfigError("input.path", f"line {n} of {path} is a JSON {type(row).__name__}, "
                                      "not an object ({\"key\": ..., \"jpg\": ...})")
                rows.append((n, row))
    return rows


def _csv_rows(path: Path) -> list[tuple[int, dict]]:
    import csv

    rows = []
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, [])
            _one_each(header, path, "line 1")
            while True:
                n = reader.line_num + 1  # where the next row starts
                cells = next(reader, None)
                if cells is None:
                    return rows
                if not cells:  # a blank line
                    continue
                if any(cells[len(header):]):
                    raise ConfigError("input.path", f"line {n} of {path} has {len(cells)} cells, "
                                      f"its header {len(header)}")
                rows.append((n, dict(zip(header, cells, strict=False))))
        except csv.Error as exc:
            raise ConfigError("input.path", f"line {reader.line_num} of {path} is not CSV: {exc}") from None


class _Repeated(ValueError):
    """A JSON object with a name twice (``json`` keeps the last one, silently)."""


def _pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    row = dict(pairs)
    if len(row) != len(pairs):  # some name twice: the first one repeated is named
        seen: set[str] = set()
        for name, _ in pairs:
            if name in seen:
                raise _Repeated(name)
            seen.add(name)
    return row


def _one_each(names: list[str], path: Path, where: str) -> None:
    """A manifest's column names name each field once: with a column twice (``key,jpg,txt,jpg``), or twice but
    for case (``jpg`` and ``JPG``: both field ``jpg``), the last one silently won in every row."""
    seen: dict[str, str] = {}
    for name in names:
        field = str(name).lower()
        if field in seen:
            what = f"column {name!r} twice" if seen[field] == name else f"columns {seen[field]!r} and {name!r}"
            raise ConfigError("input.path", f"{where} of {path} has {what}: one column per field")
        seen[field] = name


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def _is_path_column(col: str, path_columns: list[str] | None) -> bool:
    if path_columns is not None:
        return col in path_columns
    return ext_modality(col) in ("image", "audio", "video", "subtitle")


def read_manifest(path: Path, *, fmt: str, key_column: str, path_columns: list[str] | None) -> list[Record]:
    """One row per sample: a key column, then one column per field holding a path or an inline value.

    Relative paths are taken from the manifest's folder. Empty cells mean the field is absent. Inline
    values that are not text are stored as JSON; bytes (a Parquet binary column) are a config error:
    mmprep takes media from files.
    """
    rows = _manifest_rows(path, fmt)
    base = path.parent
    by_raw: dict[str, tuple[dict[str, str], dict[str, str], dict[str, str]]] = {}
    for n, row in rows:
        if key_column not in row or row[key_column] in (None, ""):
            raise ConfigError("input.key_column", f"{_where(path, fmt, n)} has no {key_column!r} value")
        if isinstance(row[key_column], (bytes, bytearray)):
            raise ConfigError("input.key_column", f"column {key_column!r} holds bytes ({_where(path, fmt, n)}); "
                              "keys are text")
        raw = str(row[key_column])
        if raw in by_raw:
            raise ConfigError("input.key_column", f"key {raw!r} appears twice in {path.name} ({_where(path, fmt, n)})")
        if fmt == "jsonl":  # a CSV's or Parquet file's columns were checked once, for every row
            _one_each(list(row), path, f"line {n}")
        paths: dict[str, str] = {}
        given: dict[str, str] = {}  # the paths as the manifest writes them
        inline: dict[str, str] = {}
        for col, value in row.items():
            if col == key_column or value is None or value == "":
                continue
            ext = str(col).lower()
            if not FIELD_NAME.match(ext) or ext in RESERVED:
                raise ConfigError("input", f"manifest column {col!r} is not a field name (lowercase "
                                  "letters, digits, _ and inner dots, e.g. jpg or mfcc.npy)")
            if isinstance(value, (bytes, bytearray)):
                raise ConfigError("input", f"manifest column {col!r} holds bytes ({_where(path, fmt, n)}): mmprep "
                                  "reads media from files; write them out and put their paths in the column")
            if _is_path_column(ext, path_columns):
                paths[ext], given[ext] = str(base / str(value)), str(value)
            elif isinstance(value, str):
                inline[ext] = value
            else:
                try:
                    inline[ext] = json.dumps(value)
                except (TypeError, ValueError):  # a date, a timestamp, bytes inside a list
                    raise ConfigError("input", f"manifest column {col!r} holds a {type(value).__name__} "
                                      f"({_where(path, fmt, n)}) that JSON cannot hold; make it text, or "
                                      "leave the column out") from None
        by_raw[raw] = (paths, inline, given)
    keys = unique_keys(list(by_raw))
    records = [
        Record(key=keys[raw], origin=printable(raw), paths=p, inline=i, stamp=_stamp(p, i, g))
        for raw, (p, i, g) in by_raw.items()
    ]
    return sorted(records, key=_KEY)


def read_corpus(path: str | Path, *, fmt: str = "auto", key_column: str = "key",
                path_columns: list[str] | None = None, include=(), exclude=(),
                listing: list[Folder] | None = None, skipped: list[Skipped] | None = None,
                store: RecordStore | None = None) -> list[Record]:
    """A folder's or a manifest's records, sorted by key. Folder files left out go to ``skipped``
    (:class:`mmprep.listing.Skipped`, as the listing's own); a bad manifest is a :class:`ConfigError`."""
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
        return scan_folder(path, include=list(include), exclude=list(exclude), listing=listing, skipped=skipped,
                           store=store)
    return read_manifest(path, fmt=fmt, key_column=key_column, path_columns=path_columns)
