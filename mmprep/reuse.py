"""Reusing earlier work: finished-record cache entries, and the previous build of a shard.

A finished record is what the shard writer needs for it: the samples it produced, each
``(key, [(field, bytes)], meta)``, and its errors. A record copied from the previous build of the shard
(:class:`Previous`) has its rows and errors there, and its bytes go over unread.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

from mmprep import serialize
from mmprep.atomic import temp_name
from mmprep.corpus import Record
from mmprep.shardwriter import SampleInfo, ShardWriter

_ROW = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # one encoder for every row
PART_FORMAT = 3  # bump when part files or their rows change shape: older ones are then rebuilt
_TRANSIENT = ("input.unreadable",)  # errors worth retrying next run: never cached nor copied
# A row ends with its sample's place: ``,"size":N,"shard":"NAME.tar","offset":N}``. Shard names are
# [A-Za-z0-9_.-] (the config's pattern), and a quote in any other value is escaped, so the tail is
# found with one scan of the rows file and cut off at its last ``,"size":``.
_TAIL = re.compile(r',"size":(\d+),"shard":"([A-Za-z0-9_.-]+)","offset":(\d+)\}$', re.MULTILINE)
_SIZE = ',"size":'


def row_line(row: dict[str, Any], size: int, shard: str, offset: int) -> str:
    """A sample's index row as one JSON line. Member places are relative to the sample (``member_starts``)
    and the sample's own place comes last, so a copied sample's row is moved by rewriting the tail
    (``Previous.copy``)."""
    return _placed(_ROW.encode(row)[:-1], size, shard, offset)


def _placed(fixed: str, size: int | str, shard: str, offset: int) -> str:
    """A row from its fields (the JSON object without its closing brace) and its place."""
    return f'{fixed}{_SIZE}{size},"shard":"{shard}","offset":{offset}}}'


def _fixed(line: str) -> str:
    """A row without its place: the inverse of ``_placed``."""
    return line[: line.rindex(_SIZE)]


def retried(errors: list[dict[str, Any]]) -> bool:
    """Whether a record's outcome is worth computing again next run, rather than reusing (from the cache
    or the previous build): an unreadable file may be readable now, a download that timed out may
    finish (``Drop(transient=True)``), and a stage's crash is a bug."""
    return bool(errors) and any(e["reason"] in _TRANSIENT or e["reason"].endswith(".error") or e.get("transient")
                                for e in errors)


def transient(errors: list[dict[str, Any]]) -> bool:
    """Whether some of a shard's errors may go on their own (a download timed out): then a rerun of the
    same command builds the shard again, computing only those records (``retried``)."""
    return any(e.get("transient") for e in errors)


def index_row(info: SampleInfo, meta: dict[str, Any], record: str) -> dict[str, Any]:
    """The sample's index row, less its place (see :func:`mmprep.reuse.row_line`)."""
    return {
        "key": info.key,
        "fields": [m.field for m in info.members],
        "member_starts": [m.offset - info.offset for m in info.members],
        "member_sizes": [m.size for m in info.members],
        "duration": meta.get("duration"),
        "status": meta.get("status", "ok"),
        "source": str(meta.get("source", "")),
        "record": record,
    }


def dump_entry(entry: dict[str, Any]) -> bytes:
    blobs: dict[str, Any] = {}
    doc = {"errors": entry["errors"], "samples": []}
    for key, members, meta in entry["samples"]:
        doc["samples"].append({"key": key, "fields": [ext for ext, _ in members], "meta": meta})
        for _ext, data in members:
            blobs[f"{len(blobs)}"] = data
    return serialize.dumps({"doc": doc, **blobs})


def load_entry(data: bytes) -> dict[str, Any]:
    raw = serialize.loads(data)
    doc, n = raw["doc"], 0
    samples = []
    for s in doc["samples"]:
        members = []
        for ext in s["fields"]:
            members.append((ext, raw[str(n)]))
            n += 1
        samples.append((s["key"], members, s["meta"]))
    return {"samples": samples, "errors": doc["errors"]}


def file_stamps(folder: Path, names: list[str]) -> dict[str, str]:
    """Size and mtime of each named file (raises OSError if one is missing): a part file's tars, so it is
    only trusted for the tars it describes, and the reports the last merge wrote."""
    stamps = {}
    for name in names:
        st = os.stat(folder / name)
        stamps[name] = f"{st.st_size}:{st.st_mtime_ns}"
    return stamps


def part_paths(out: Path, name: str) -> tuple[Path, Path]:
    """The shard's part file (small JSON: the completion marker) and its index rows (JSON lines, which
    the merge parses with pyarrow's reader straight into the index)."""
    return out / ".parts" / f"{name}.json", out / ".parts" / f"{name}.rows"


def read_part(out: Path, name: str) -> tuple[dict[str, Any] | None, str]:
    """The shard's part file, if this version wrote it and it describes exactly the tars there now;
    else None and why, in words for the log."""
    try:
        doc = json.loads(part_paths(out, name)[0].read_text())
    except (OSError, ValueError):
        return None, "not built yet"
    if doc.get("format") != PART_FORMAT:
        return None, "written by another version"
    try:
        same_tars = file_stamps(out / "shards", doc["tars"]) == doc.get("tar_stamps")
    except (OSError, KeyError):
        same_tars = False
    if not same_tars:
        return None, "its tars changed"
    try:  # a truncated rows file would have the merge index part of the shard
        size = part_paths(out, name)[1].stat().st_size
        same_rows = doc.get("rows_bytes") in (None, size)  # None: written before the size was kept
    except OSError:
        same_rows = False
    return (doc, "") if same_rows else (None, "its index rows changed")


def trusted_part(out: Path, name: str) -> dict[str, Any] | None:
    """The shard's part file, if it can be trusted (see :func:`read_part`)."""
    return read_part(out, name)[0]


def moved(errors: list[dict[str, Any]], old: str | None, new: str | None) -> list[dict[str, Any]]:
    """Errors whose ``path`` (or message) names a file under the input folder ``old``, naming it under ``new``
    instead: the folder was moved (``mv A B``) since they were made, and the shards that hold them are reused."""
    if not old or not new or old == new:
        return errors
    prefix, root = os.path.join(old, ""), os.path.join(new, "")
    out = []
    for err in errors:
        path, message = err.get("path"), err.get("message")
        if isinstance(path, str) and path.startswith(prefix):
            err = {**err, "path": root + path[len(prefix):]}
        if isinstance(message, str) and prefix in message:  # "/a/d0/x.txt is empty"
            err = {**err, "message": message.replace(prefix, root)}
        out.append(err)
    return out


def rows_digest(data: bytes) -> str:
    """A rows file's digest, as ``index.parquet``'s footer keeps it (0.1 ms per 1,000 rows)."""
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def write_rows(path: Path, lines: list[str]) -> str:
    """Write the rows file; returns its digest (:func:`rows_digest`)."""
    data = "".join(f"{line}\n" for line in lines).encode("utf-8")
    tmp = temp_name(path)
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)
    return rows_digest(data)


class Previous:
    """An earlier build of this shard: records whose files kept their size, mtime and ctime are copied.

    This is the fast path for incremental builds (like make or rsync): an unchanged record costs one
    read of its contiguous bytes from the old tar, instead of reading, hashing and encoding its inputs.
    The old tars are opened here and the old part file is removed at once, before any new tar is
    published, so a crash can never pair new tars with the old part file.
    """

    def __init__(self, out: Path, name: str, root: str | None = None):
        doc = trusted_part(out, name)
        self.stamps: dict[str, str] = {}
        self.rows: dict[str, tuple[int, int]] = {}  # record -> its rows' range in ``_lines``
        self.errors: dict[str, list[dict[str, Any]]] = {}
        self._again: set[str] = set()
        self._files: dict[str, int] = {}
        self._lines: list[str] = []
        self._places: list[tuple[str, str, str]] = []  # per row: size, tar, offset (digits)
        # which of the new rows file's rows are which old ones, moved by how much: the merge takes those
        # from the last index instead of parsing them (``rows_from`` in the part file, ``Merger.add``)
        self.rows_digest = ""  # of the old rows file: how the last index knows it
        self.runs: list[list[Any]] = []  # [first new row, rows, first old row, offset change, tar]
        if doc is None:
            return
        try:
            data = part_paths(out, name)[1].read_bytes()
            text = data.decode("utf-8")
        except (OSError, UnicodeDecodeError):
            return
        self.rows_digest = rows_digest(data)
        # split at "\n" only: str.splitlines also splits at U+2028 and friends, which JSON leaves raw in strings
        self._lines = text.split("\n")[:-1]
        self._places = _TAIL.findall(text)  # no row is parsed as JSON: a rebuild copies thousands of them
        counts = doc.get("rows_per_record", [])
        self.stamps = doc.get("stamps", {})
        if len(self._places) != len(self._lines) or len(counts) != len(self.stamps) or sum(counts) != len(self._lines):
            self.stamps = {}  # not what this version writes: nothing is reused
            return
        start = 0
        for key, n in zip(self.stamps, counts, strict=True):  # records in the order they were written
            self.rows[key] = (start, start + n)
            start += n
        for err in moved(doc["errors"], doc.get("root"), root):
            self.errors.setdefault(err.get("record", ""), []).append(err)
        self._again = {key for key, errs in self.errors.items() if retried(errs)}  # computed, not copied
        # kept open: a run of samples is one copy, and an open file stays readable after the new tars
        # replace the old names
        try:
            for tar in doc["tars"]:
                self._files[tar] = os.open(out / "shards" / tar, os.O_RDONLY)
        except OSError:
            self.close()
            return
        part_paths(out, name)[0].unlink()

    def reusable(self, records: list[Record]) -> list[bool]:
        """Whether each record can be copied: its files kept their stamp and its errors are not worth
        computing again (``retried``)."""
        if not self._files:
            return [False] * len(records)
        stamps, again = self.stamps, self._again
        return [stamps.get(r.key) == r.stamp and r.key not in again for r in records]

    def copy(self, writer: ShardWriter, records: list[Record], first: int = 0) -> tuple[list[str], list[int]]:
        """Append the samples of these records (all ``reusable``) to ``writer`` as the old tar holds them.
        Returns their index rows at the new place, and how many rows each record has. Records that were
        neighbours in the old rows file are copied together (``_copy_rows``). ``first``: the new rows
        file's row where these rows start (noted in ``runs``)."""
        lines: list[str] = []
        counts: list[int] = []
        lo = hi = -1
        for record in records:
            start, end = self.rows[record.key]
            counts.append(end - start)
            if start != hi:
                lines += self._copy_rows(writer, lo, hi, first + len(lines))
                lo = start
            hi = end
        lines += self._copy_rows(writer, lo, hi, first + len(lines))
        return lines, counts

    def _copy_rows(self, writer: ShardWriter, lo: int, hi: int, row: int) -> list[str]:
        """Rows ``lo:hi`` of the old rows file: their samples copied with one ``writer.copy``, and their
        rows at the new place; the lines as they are when the place is the same (the usual case: no
        sample before them changed size). The old writer filled its tars one after the other with
        samples back to back, so rows whose first and last are in one tar are all in it, contiguous.
        Past ``max_bytes`` the writer may roll over between two samples, so then they go one by one.
        ``row``: where these rows start in the new rows file (a run of ``runs``, unless one by one)."""
        if hi <= lo:
            return []
        lines, places = self._lines[lo:hi], self._places[lo:hi]
        (_, tar, first), (size, last_tar, last) = places[0], places[-1]
        start, end = int(first), int(last) + int(size)
        if writer.max_bytes or last_tar != tar:
            return [self._copy_row(writer, line, place) for line, place in zip(lines, places, strict=True)]
        shard, new = writer.copy(self._files[tar], start, end - start)
        self.runs.append([row, hi - lo, lo, new - start, shard])
        if shard == tar and new == start:
            return lines
        return [_placed(_fixed(line), n, shard, int(offset) + new - start)
                for line, (n, _, offset) in zip(lines, places, strict=True)]

    def _copy_row(self, writer: ShardWriter, line: str, place: tuple[str, str, str]) -> str:
        size, tar, offset = place
        shard, new = writer.copy(self._files[tar], int(offset), int(size))
        return _placed(_fixed(line), size, shard, new)

    def samples(self, rows: tuple[int, int]) -> list[tuple[str, list[tuple[str, bytes]]]]:
        """(key, [(field, member bytes)]) of these rows, read back for a summarizing stage to replay."""
        out = []
        for i in range(*rows):
            _, tar, offset = self._places[i]
            row = json.loads(_fixed(self._lines[i]) + "}")
            start = int(offset)
            out.append((row["key"], [(f, os.pread(self._files[tar], n, start + o)) for f, o, n in
                                     zip(row["fields"], row["member_starts"], row["member_sizes"], strict=True)]))
        return out

    def close(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files = {}
