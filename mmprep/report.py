"""Merge the shards' part files into ``index.parquet``, ``stats.json`` and ``errors.jsonl``.

Each is written to a temporary name and renamed, like the shards.
"""

from __future__ import annotations

import json
import os
import platform
from collections import Counter
from pathlib import Path
from typing import Any

INDEX_COLUMNS = ("key", "shard", "offset", "size", "fields", "member_offsets", "member_sizes", "duration",
                 "status", "source")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def write_index(path: Path, rows: list[dict[str, Any]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([
        ("key", pa.string()), ("shard", pa.string()), ("offset", pa.int64()), ("size", pa.int64()),
        ("fields", pa.list_(pa.string())), ("member_offsets", pa.list_(pa.int64())),
        ("member_sizes", pa.list_(pa.int64())), ("duration", pa.float64()), ("status", pa.string()),
        ("source", pa.string()),
    ])
    table = pa.Table.from_pylist([{c: r.get(c) for c in INDEX_COLUMNS} for r in rows], schema=schema)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def write_reports(out: Path, results: list[dict[str, Any]], *, stages: list[str], failed: list[dict[str, str]],
                  seconds: float, built: set[str], workers: int, executor: str) -> dict[str, Any]:
    rows = [row for r in results for row in r["rows"]]
    errors = [err for r in results for err in r["errors"]]
    write_index(out / "index.parquet", rows)
    lines = "".join(json.dumps(e, ensure_ascii=False) + "\n" for e in errors)
    _atomic_write(out / "errors.jsonl", lines.encode("utf-8"))

    per_stage: dict[str, dict[str, Any]] = {}
    for name in [*stages, "input", "output"]:
        per_stage[name] = {"in": 0, "out": 0, "skipped": 0, "cached": 0, "seconds": 0.0, "dropped": {},
                           "omitted": {}}
    for r in results:
        for name, counts in r.get("stages", {}).items():
            for k, v in counts.items():
                per_stage.setdefault(name, {"dropped": {}, "omitted": {}})
                per_stage[name][k] = per_stage[name].get(k, 0) + v
    for err in errors:
        slot = per_stage.setdefault(err["stage"], {"dropped": {}, "omitted": {}})[err["action"]]
        slot[err["reason"]] = slot.get(err["reason"], 0) + 1
    for counts in per_stage.values():
        if "seconds" in counts:
            counts["seconds"] = round(counts["seconds"], 4)
    for name in ("input", "output"):
        if not per_stage[name]["dropped"] and not per_stage[name]["omitted"]:
            del per_stage[name]
        else:
            for k in ("in", "out", "skipped", "cached", "seconds"):
                per_stage[name].pop(k, None)

    records = sum(r["records"] for r in results)
    stats = {
        "samples_in": records,
        "samples_out": len(rows),
        "samples_dropped": sum(1 for e in errors if e["action"] == "dropped"),
        "fields_omitted": sum(1 for e in errors if e["action"] == "omitted"),
        "errors_by_reason": dict(sorted(Counter(e["reason"] for e in errors).items())),
        "shards": sorted(t for r in results for t in r["tars"]),
        "stages": per_stage,
        "run": {
            "seconds": round(seconds, 3),
            "samples_per_second": round(records / seconds, 2) if seconds else None,
            "shards_built": len(built),
            "shards_skipped": len(results) - len(built),
            "records_from_cache": sum(r.get("cached_records", 0) for r in results if r["name"] in built),
            "failed_shards": failed,
            "workers": workers,
            "executor": executor,
            "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
        },
    }
    _atomic_write(out / "stats.json", (json.dumps(stats, indent=2, ensure_ascii=False) + "\n").encode())
    return {"output": str(out), "samples_in": records, "samples_out": len(rows),
            "samples_dropped": stats["samples_dropped"], "fields_omitted": stats["fields_omitted"],
            "errors_by_reason": stats["errors_by_reason"], "shards": len(stats["shards"]),
            "shards_built": len(built), "shards_skipped": len(results) - len(built),
            "seconds": stats["run"]["seconds"], "failed_shards": failed}
