"""Reusing earlier work: finished-record cache entries, and the previous build of a shard.

A finished record is what the shard writer needs for it: the samples it produced (key, members,
metadata) and its errors. Both paths hand back that same ``entry`` dict.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from mmprep import serialize
from mmprep.corpus import Record


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


def trusted_part(out: Path, name: str) -> dict[str, Any] | None:
    """The shard's part file, if it describes exactly the tars that are there now."""
    try:
        doc = json.loads((out / ".parts" / f"{name}.json").read_text())
        return doc if tar_stamps(out / "shards", doc["tars"]) == doc.get("tar_stamps") else None
    except (OSError, ValueError, KeyError):
        return None


class Previous:
    """An earlier build of this shard: records whose files kept their size, mtime and ctime are copied.

    This is the fast path for incremental builds (like make or rsync): an unchanged record costs one
    read of its members from the old tar, instead of reading and hashing its inputs. The old tars are
    opened here and the old part file is removed at once, before any new tar is published, so a crash
    can never pair new tars with the old part file.
    """

    def __init__(self, out: Path, name: str):
        doc = trusted_part(out, name)
        self.stamps: dict[str, str] = {}
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.errors: dict[str, list[dict[str, Any]]] = {}
        self._files: dict[str, Any] = {}
        if doc is None:
            return
        self.stamps = doc.get("stamps", {})
        for row in doc["rows"]:
            self.rows.setdefault(row["record"], []).append(row)
        for err in doc["errors"]:
            self.errors.setdefault(err.get("record", ""), []).append(err)
        self._files = {t: open(out / "shards" / t, "rb") for t in doc["tars"]}  # noqa: SIM115
        (out / ".parts" / f"{name}.json").unlink()

    def entry(self, record: Record) -> dict[str, Any] | None:
        if not self._files or self.stamps.get(record.key) != record.stamp:
            return None
        samples = []
        for row in self.rows.get(record.key, []):
            fh = self._files[row["shard"]]
            members = []
            for fld, off, size in zip(row["fields"], row["member_offsets"], row["member_sizes"], strict=True):
                fh.seek(off)
                members.append((fld, fh.read(size)))
            samples.append((row["key"], members, {k: row[k] for k in ("duration", "status", "source")}))
        return {"samples": samples, "errors": self.errors.get(record.key, [])}

    def close(self) -> None:
        for fh in self._files.values():
            fh.close()
