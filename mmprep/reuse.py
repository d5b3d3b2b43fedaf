"""Reusing earlier work: finished-record cache entries, and the previous build of a shard.

A finished record is what the shard writer needs for it: the samples it produced and its errors.
A sample is ``(key, members, meta)``, where members are ``[(field, bytes)]`` or, when copied from the
previous build of the shard, a :class:`Span` of its raw tar bytes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmprep import serialize
from mmprep.atomic import temp_name
from mmprep.corpus import Record

_ROW = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))  # one encoder for every row
PART_FORMAT = 2  # bump when part files or their rows change shape: older ones are then rebuilt
_META: dict[str, Any] = {}  # a copied sample's index row already carries its duration and status


@dataclass(slots=True)
class Span:
    """One sample as the previous build of the shard holds it: its index row and the open old tar.

    The shard writer copies the bytes inside the kernel (neighbouring spans in one call); only a
    summarizing stage that replays the sample reads its members into Python.
    """

    fd: int
    row: dict[str, Any]

    def members(self) -> list[tuple[str, bytes]]:
        row = self.row
        return [(f, os.pread(self.fd, s, o))
                for f, o, s in zip(row["fields"], row["member_offsets"], row["member_sizes"], strict=True)]


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


def tar_stamps(shards: Path, tars: list[str]) -> dict[str, str]:
    """Size and mtime of each published tar, so a part file is only trusted for the tars it describes."""
    stamps = {}
    for name in tars:
        st = os.stat(shards / name)
        stamps[name] = f"{st.st_size}:{st.st_mtime_ns}"
    return stamps


def part_paths(out: Path, name: str) -> tuple[Path, Path]:
    """The shard's part file (small JSON: the completion marker) and its index rows (JSON lines, which
    the merge parses with pyarrow's reader straight into the index)."""
    return out / ".parts" / f"{name}.json", out / ".parts" / f"{name}.rows"


def trusted_part(out: Path, name: str) -> dict[str, Any] | None:
    """The shard's part file, if this version wrote it and it describes exactly the tars there now."""
    try:
        doc = json.loads(part_paths(out, name)[0].read_text())
        if doc.get("format") != PART_FORMAT:
            return None
        return doc if tar_stamps(out / "shards", doc["tars"]) == doc.get("tar_stamps") else None
    except (OSError, ValueError, KeyError):
        return None


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    tmp = temp_name(path)
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.writelines(_ROW.encode(row) + "\n" for row in rows)
    os.replace(tmp, path)


def read_rows(out: Path, name: str) -> list[dict[str, Any]]:
    text = part_paths(out, name)[1].read_text(encoding="utf-8")
    # split at "\n" only: str.splitlines also splits at U+2028 and friends, which JSON leaves raw in strings
    return json.loads("[" + ",".join(text.rstrip("\n").split("\n")) + "]") if text else []


class Previous:
    """An earlier build of this shard: records whose files kept their size, mtime and ctime are copied.

    This is the fast path for incremental builds (like make or rsync): an unchanged record costs one
    read of its contiguous bytes from the old tar, instead of reading, hashing and encoding its inputs.
    The old tars are opened here and the old part file is removed at once, before any new tar is
    published, so a crash can never pair new tars with the old part file.
    """

    def __init__(self, out: Path, name: str):
        doc = trusted_part(out, name)
        self.stamps: dict[str, str] = {}
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.errors: dict[str, list[dict[str, Any]]] = {}
        self._files: dict[str, int] = {}
        if doc is None:
            return
        try:
            rows = read_rows(out, name)
        except OSError:
            return
        self.stamps = doc.get("stamps", {})
        for row in rows:
            self.rows.setdefault(row["record"], []).append(row)
        for err in doc["errors"]:
            self.errors.setdefault(err.get("record", ""), []).append(err)
        # kept open: a run of samples is one copy, and an open file stays readable after the new tars
        # replace the old names
        try:
            for tar in doc["tars"]:
                self._files[tar] = os.open(out / "shards" / tar, os.O_RDONLY)
        except OSError:
            self.close()
            return
        part_paths(out, name)[0].unlink()

    def entry(self, record: Record) -> dict[str, Any] | None:
        if not self._files or self.stamps.get(record.key) != record.stamp:
            return None
        samples = [(row["key"], Span(self._files[row["shard"]], row), _META) for row in self.rows.get(record.key, [])]
        return {"samples": samples, "errors": self.errors.get(record.key, [])}

    def close(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files = {}
