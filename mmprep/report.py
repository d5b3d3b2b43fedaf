"""Merge the shards' part files into ``index.parquet``, ``errors.jsonl`` and ``stats.json``.

Part files are read one at a time and streamed into the outputs, so the driver's memory does not
grow with the corpus. Each output is written to a temporary name and renamed, like the shards.
"""

from __future__ import annotations

import functools
import json
import os
from collections import Counter
from pathlib import Path
from typing import Any

from mmprep.atomic import atomic_write, temp_name
from mmprep.reuse import moved, part_paths, rows_digest, trusted_part

COUNTERS = ("in", "out", "skipped", "cached", "seconds")


def preload() -> None:
    """Import what the merge needs (pyarrow: 0.05 s), while the workers build the first shards: imported
    when the first one ends, the merge fell behind by that much, and on a small rebuild the build's end
    waited for it."""
    import pyarrow.json  # noqa: F401
    import pyarrow.parquet  # noqa: F401


@functools.cache
def index_schema(members: str = "member_offsets") -> Any:
    """The index's columns; ``member_starts`` (relative to the sample) names the shards' rows files."""
    import pyarrow as pa

    return pa.schema([
        ("key", pa.string()), ("shard", pa.string()), ("offset", pa.int64()), ("size", pa.int64()),
        ("fields", pa.list_(pa.string())), (members, pa.list_(pa.int64())),
        ("member_sizes", pa.list_(pa.int64())), ("duration", pa.float64()), ("status", pa.string()),
        ("source", pa.string()),
    ])


_ERROR_KEYS = ("key", "source", "stage", "reason", "message", "action", "field", "path")


def _error_row(err: dict[str, Any]) -> dict[str, Any]:
    """An errors.jsonl line in one key order, whether the error was just made or came back from the
    cache (stored with sorted keys): a rebuild's file equals a fresh build's byte for byte."""
    row = {k: err[k] for k in _ERROR_KEYS if k in err}
    row.update((k, v) for k, v in sorted(err.items()) if k not in row and k != "record")
    return row


def read_index_rows(data: bytes) -> Any:
    """A shard's rows file (its bytes) as an index table, member places made absolute. Parsed by Arrow straight into
    columns, and the arithmetic done on the buffers with numpy: building columns from Python lists, or
    Arrow's own ``to_numpy``, would import pandas (a third of a second of a small rebuild)."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.json as pj

    options = pj.ParseOptions(explicit_schema=index_schema("member_starts"), unexpected_field_behavior="ignore")
    # one block for the whole file: a row must not straddle blocks (a megabyte-long key would)
    read = pj.ReadOptions(use_threads=False, block_size=max(1 << 20, len(data) + 1))
    table = pj.read_json(pa.BufferReader(data), parse_options=options, read_options=read)
    offsets = _ints(table["offset"].combine_chunks(), np.int64)
    column = _plus(table["member_starts"], lambda bounds: np.repeat(offsets, np.diff(bounds)))
    table = table.set_column(table.schema.get_field_index("member_starts"), "member_offsets", column)
    return table.select(index_schema().names)


def _plus(lists: Any, added: Any) -> Any:
    """A null-free list-of-int64 column with ``added(bounds)`` added to its values (``bounds``: the lists'
    offsets into them; a number or one per value)."""
    import numpy as np
    import pyarrow as pa

    lists = lists.combine_chunks()
    bounds = _ints(lists.offsets, np.int32)
    values = _ints(lists.values, np.int64)[bounds[0] : bounds[-1]] + added(bounds)
    return pa.ListArray.from_arrays(_arrow(bounds - bounds[0], pa.int32()), _arrow(values, pa.int64()))


def _moved(table: Any, delta: int, tar: str) -> Any:
    """Index rows of samples copied ``delta`` bytes further into tar ``tar``: the same rows, their places
    moved (on the Arrow buffers with numpy, as ``read_index_rows``)."""
    import numpy as np
    import pyarrow as pa

    # a run's rows were all in one tar (``Previous._copy_rows``): its first and last name it. Not
    # ``unique()``: that imports pyarrow.compute (0.04 s, a tenth of a small rebuild)
    shards = table["shard"]
    if table.num_rows and {shards[0].as_py(), shards[-1].as_py()} != {tar}:
        table = table.set_column(table.schema.get_field_index("shard"), "shard", pa.array([tar] * table.num_rows))
    if not delta:
        return table
    column = _plus(table["member_offsets"], lambda _: delta)
    table = table.set_column(table.schema.get_field_index("offset"), "offset",
                             _arrow(_ints(table["offset"].combine_chunks(), np.int64) + delta, pa.int64()))
    return table.set_column(table.schema.get_field_index("member_offsets"), "member_offsets", column)


def _ints(array: Any, dtype: Any) -> Any:
    """A null-free Arrow integer array's values, without a copy."""
    import numpy as np

    size = np.dtype(dtype).itemsize
    return np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * size)


def _arrow(values: Any, kind: Any) -> Any:
    import pyarrow as pa

    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])


# In index.parquet's footer: which shard's rows come where, with a digest of the bytes of the rows file
# they were read from (``[[shard, digest, rows], ...]`` in file order), for the next merge (``_LastIndex``)
ROWS_KEY = "mmprep.shard_rows.v1"
# In index.parquet's footer: the size of each tar the index covers (``{tar: bytes}``, from the part files'
# ``tar_stamps``). A rerun rewrites tars long before it replaces the index, so one stopped or still running
# leaves this index over other bytes: the loader (``mmprep.data.sources``, which spells the key itself: it
# does not import the build) compares the tars with these, and their mtimes with the index's, and refuses
# a stale index. Sizes, not mtimes: a rebuild's index stays the same bytes as a fresh build's
SIZES_KEY = "mmprep.tar_sizes.v1"


class _LastIndex:
    """The index the last merge wrote, kept open while the new one is written: a shard whose rows file is
    the same bytes as then (the digest in the footer) has its rows read back from there. Row groups
    decode in a fifth of the time a rows file parses, and a rerun that rebuilt one shard of a thousand
    would parse every one of them. Anything unexpected (no such index, another format, row groups not
    where the footer says) means: parse the rows files."""

    def __init__(self, path: Path):
        self.file: Any = None
        self.places: dict[tuple[str, str], tuple[int, int, int]] = {}  # (shard, digest) -> row groups, rows
        if os.name == "nt":  # an open file cannot be replaced there
            return
        file = None
        try:
            import pyarrow.parquet as pq

            file = pq.ParquetFile(path)
            entries = json.loads((file.metadata.metadata or {})[ROWS_KEY.encode()])
            if not file.schema_arrow.equals(index_schema()):
                raise ValueError("another schema")
            group_at = {0: 0}  # first row -> row group starting there (and the end -> their count)
            total = 0
            for i in range(file.metadata.num_row_groups):
                total += file.metadata.row_group(i).num_rows
                group_at[total] = i + 1
            places, start = {}, 0
            for name, digest, n in entries:
                first, end = group_at.get(start), group_at.get(start + n)
                if digest and n and first is not None and end is not None:
                    places[(name, digest)] = (first, end, n)
                start += n
        except Exception:  # noqa: BLE001 - no index, not ours, a footer of another shape: parse the rows
            if file is not None:
                file.close()
            return
        self.file, self.places = file, places

    def rows(self, name: str, digest: str | None, n: int) -> Any:
        """The shard's rows as the last index holds them, or None."""
        place = self.places.get((name, digest)) if digest else None
        if place is None or place[2] != n:
            return None
        try:  # the row groups hold n rows: they were found by their row counts
            # one thread: the workers have the cores, and a thread pool per read of a thousand rows
            # only adds hand-overs between them
            return self.file.read_row_groups(range(place[0], place[1]), use_threads=False)
        except Exception:  # noqa: BLE001 - any of pyarrow's errors: the rows file is parsed instead
            return None

    def shard(self, name: str, digest: str) -> Any:
        """All rows the last index holds for the shard's rows file with this digest, or None."""
        place = self.places.get((name, digest)) if digest else None
        return None if place is None else self.rows(name, digest, place[2])

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
            self.file = None


class Merger:
    """Accumulates part files into the three outputs."""

    def __init__(self, out: Path, stages: list[str], plans: dict[str, str], root: str | None = None):
        self.out = out
        self.root = root  # the input folder: a part made when it was elsewhere has its errors' paths moved
        self.plans = plans  # shard -> the plan hash its part file must carry to be merged, in plan order
        self._names = list(plans)
        self.stage_names = stages
        self.per_stage: dict[str, dict[str, Any]] = {
            n: {**dict.fromkeys(COUNTERS, 0), "dropped": {}, "omitted": {}} for n in stages}
        self.reasons: Counter[str] = Counter()
        self.summaries: dict[str, list[dict[str, Any]]] = {}
        self.records = self.rows = self.dropped = self.omitted = self.cached = self.reused = 0
        self.cache_failed, self.cache_failure = 0, ""  # cache entries the workers could not write, the first error
        self.to_retry = 0  # transient errors (a download timed out): their shards are built again next run
        self.shards: list[str] = []
        self._next = 0  # see add_ready
        import pyarrow.parquet as pq

        self._index_tmp = temp_name(out / "index.parquet")
        # dictionaries for the columns that repeat (a key or a source path never does: a dictionary of them
        # doubled the writer's time, and the file is 15 % smaller without)
        self._index = pq.ParquetWriter(self._index_tmp, index_schema(), use_dictionary=["shard", "fields", "status"])
        self._last = _LastIndex(out / "index.parquet")
        self._placed: list[list[Any]] = []  # [shard, rows_digest, rows] as written: the footer's ROWS_KEY
        self._sizes: dict[str, int] = {}  # the tars whose rows are in the index: the footer's SIZES_KEY
        self.index_reused = 0  # shards whose rows came from the last index
        self.rows_parsed = 0  # rows parsed from rows files (the others came from the last index)
        self._errors_tmp = temp_name(out / "errors.jsonl")
        # a file name that is not UTF-8 is written as a \udcXX escape: still valid JSON
        self._errors = open(self._errors_tmp, "w", encoding="utf-8", errors="backslashreplace")  # noqa: SIM115

    def add_ready(self, unfinished: set[str], built: set[str], failed: set[str] = frozenset()) -> None:
        """Add, in plan order, every shard from the first not added yet up to the first one still being
        built (``unfinished``): the merge keeps pace with the workers instead of starting after them.
        A shard that ``failed`` is not added: its records count as failed, in no part file."""
        names, start = self._names, self._next
        while self._next < len(names) and names[self._next] not in unfinished:
            self._next += 1
        for name in names[start : self._next]:
            doc = trusted_part(self.out, name) if name not in failed else None
            # a shard that failed keeps the part of an earlier plan (other inputs or pipeline), or of this
            # plan when --force rebuilt it: not merged (its records would count twice)
            if doc is not None and doc.get("plan") == self.plans[name]:
                self.add(doc, built=name in built)

    def add(self, doc: dict[str, Any], *, built: bool) -> None:
        """One shard's part file and its index rows."""
        self.records += doc["records"]
        self.rows += doc["samples"]
        self.shards += doc["tars"]
        if built:
            self.cached += doc.get("cached_records", 0)
            self.reused += doc.get("reused_records", 0)
            self.cache_failed += doc.get("cache_failures", 0)
            self.cache_failure = self.cache_failure or doc.get("cache_failure", "")
        for name, counts in doc.get("stages", {}).items():
            slot = self.per_stage.setdefault(name, {**dict.fromkeys(COUNTERS, 0), "dropped": {}, "omitted": {}})
            for k, v in counts.items():
                slot[k] = slot.get(k, 0) + v
        for err in moved(doc["errors"], doc.get("root"), self.root):
            slot = self.per_stage.setdefault(err["stage"], {"dropped": {}, "omitted": {}})[err["action"]]
            slot[err["reason"]] = slot.get(err["reason"], 0) + 1
            self.reasons[err["reason"]] += 1
            self.to_retry += bool(err.get("transient"))
            self.dropped += err["action"] == "dropped"
            self.omitted += err["action"] == "omitted"
            self._errors.write(json.dumps(_error_row(err), ensure_ascii=False))
            self._errors.write("\n")
        for name, summary in doc.get("summaries", {}).items():
            self.summaries.setdefault(name, []).append(summary)
        if doc["samples"]:
            data = part_paths(self.out, doc["name"])[1].read_bytes()
            digest = rows_digest(data)
            table = self._last.rows(doc["name"], digest, doc["samples"])
            if table is None:
                table = self._rebuilt(doc, data, digest)
            else:
                self.index_reused += 1
            if table is None:
                table = read_index_rows(data)
                self.rows_parsed += table.num_rows
            self._index.write_table(table)
            self._placed.append([doc["name"], digest, table.num_rows])
            self._size(doc)

    def _size(self, doc: dict[str, Any]) -> None:
        """Keep the sizes of the shard's tars for the footer, as its part file stamps them (checked against
        the tars there now when it was trusted: ``reuse.read_part``)."""
        stamps = doc.get("tar_stamps") or {}
        for tar in doc["tars"]:
            if tar in stamps:
                self._sizes[tar] = int(stamps[tar].split(":")[0])

    def _rebuilt(self, doc: dict[str, Any], data: bytes, digest: str) -> Any:
        """A rebuilt shard's rows: those it copied (``rows_from``: runs of the old rows file, moved by an
        offset change) from the last index, the others parsed. None where the runs are not of this rows
        file (``digest``), the last index does not hold the old one, the runs do not fit, or there are
        so many that the parse is quicker (a run costs ~70 us, a row's parse ~1.5 us): then every row
        is parsed."""
        source = doc.get("rows_from")
        if not source or source.get("rows") != digest or len(source["runs"]) * 40 > doc["samples"]:
            return None
        old = self._last.shard(doc["name"], source["digest"])
        if old is None:
            return None
        import pyarrow as pa

        lines = data.split(b"\n")[:-1]  # a row holds no raw newline: JSON escapes it
        pieces, fresh, at = [], [], 0  # pieces: (first new row, rows) to parse, or the old rows moved
        for first, n, lo, delta, tar in sorted(source["runs"]):
            if first < at or lo + n > old.num_rows or first + n > len(lines):
                return None
            if first > at:
                pieces.append((at, first - at))
                fresh += lines[at:first]
            pieces.append(_moved(old.slice(lo, n), delta, tar))
            at = first + n
        if at < len(lines):
            pieces.append((at, len(lines) - at))
            fresh += lines[at:]
        parsed = read_index_rows(b"\n".join(fresh) + b"\n") if fresh else None
        self.rows_parsed += len(fresh)
        tables, used = [], 0
        for piece in pieces:
            if isinstance(piece, tuple):
                tables.append(parsed.slice(used, piece[1]))
                used += piece[1]
            else:
                tables.append(piece)
        return pa.concat_tables(tables).combine_chunks()

    def close(self, run: dict[str, Any]) -> dict[str, Any]:
        self._errors.close()
        os.replace(self._errors_tmp, self.out / "errors.jsonl")
        # pyarrow >= 14: else nothing is reused next time, and the loader cannot check the tars
        if hasattr(self._index, "add_key_value_metadata"):
            self._index.add_key_value_metadata({ROWS_KEY: json.dumps(self._placed, separators=(",", ":")),
                                                SIZES_KEY: json.dumps(self._sizes, separators=(",", ":"))})
        self._index.close()
        self._last.close()
        os.replace(self._index_tmp, self.out / "index.parquet")
        for name, counts in self.per_stage.items():
            if "seconds" in counts:
                counts["seconds"] = round(counts["seconds"], 4)
            if name not in self.stage_names:  # input/output pseudo-stages only have drops
                for k in COUNTERS:
                    counts.pop(k, None)
        failed = sum(f.get("records", 0) for f in run.get("failed_shards", []))  # in no part file
        stats = {
            "samples_in": self.records + failed,
            "samples_out": self.rows,
            "samples_failed": failed,
            "samples_dropped": self.dropped,
            "errors_to_retry": self.to_retry,
            "fields_omitted": self.omitted,
            "errors_by_reason": dict(sorted(self.reasons.items())),
            "shards": sorted(self.shards),
            "stages": self.per_stage,
            "run": {**run, "records_from_cache": self.cached, "records_reused": self.reused,
                    "cache_writes_failed": self.cache_failed, "cache_write_error": self.cache_failure,
                    "index_shards_reused": self.index_reused, "index_rows_parsed": self.rows_parsed},
        }
        atomic_write(self.out / "stats.json", (json.dumps(stats, indent=2, ensure_ascii=False) + "\n").encode())
        return stats
