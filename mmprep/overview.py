"""What a finished build holds and what happened to the rest: ``mmprep show OUT``.

Read from the build's own files only (``stats.json``, ``errors.jsonl``, ``index.parquet``, the shard
names): samples in and out, fields and how many samples carry each, every stage's counts and time,
and each reason code with how often it came and its first examples, so a user sees why samples were
dropped without opening the files.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mmprep.errors import ConfigError


def overview(out: Path, *, examples: int = 2) -> dict[str, Any]:
    """The build in ``out`` summarized; ``examples``: how many ``(key, message)`` to keep per reason."""
    try:
        stats = json.loads((out / "stats.json").read_text())
    except FileNotFoundError:
        raise ConfigError("OUT", f"{out} has no stats.json: not a finished mmprep build (or one still "
                          "running: stats.json is written when it ends)") from None
    except (OSError, ValueError) as exc:
        raise ConfigError("OUT", f"cannot read {out / 'stats.json'}: {exc}") from None
    # the tars the index covers: a shard that failed may have left an earlier build's tars beside them
    names = stats.get("shards")
    tars = [out / "shards" / n for n in names] if isinstance(names, list) else sorted((out / "shards").glob("*.tar"))
    run = stats.get("run", {})
    return {
        "output": str(out),
        "samples_in": stats.get("samples_in", 0), "samples_out": stats.get("samples_out", 0),
        "samples_dropped": stats.get("samples_dropped", 0), "samples_failed": stats.get("samples_failed", 0),
        "fields_omitted": stats.get("fields_omitted", 0),
        "shards": len(tars), "shard_bytes": sum(p.stat().st_size for p in tars if p.exists()),
        **_index_facts(out / "index.parquet"),
        "stages": stats.get("stages", {}),
        "reasons": _reasons(out / "errors.jsonl", examples),
        "last_run": {**{k: run[k] for k in ("seconds", "shards_built", "shards_skipped", "workers", "executor",
                                            "rebuilt_because", "phases_seconds") if k in run},
                     **({"shards_failed": len(run["failed_shards"])} if run.get("failed_shards") else {})},
        "embeddings": sorted(p.name for p in (out / "embeddings").iterdir() if p.is_dir())
        if (out / "embeddings").is_dir() else [],
    }


def _index_facts(path: Path) -> dict[str, Any]:
    """Samples per field and per status, and the summed duration, from the index (a few columns read)."""
    if not path.exists():
        return {"fields": {}, "status": {}, "duration_seconds": None}
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    table = pq.read_table(path, columns=["fields", "status", "duration"])

    def counts(column: Any) -> dict[str, int]:
        pairs = pc.value_counts(column).to_pylist()
        return dict(sorted(((p["values"], p["counts"]) for p in pairs), key=lambda kv: (-kv[1], kv[0])))

    duration = pc.sum(table["duration"]).as_py()
    return {"fields": counts(pc.list_flatten(table["fields"])), "status": counts(table["status"]),
            "duration_seconds": round(duration, 3) if duration is not None else None}


def _reasons(path: Path, examples: int) -> dict[str, dict[str, Any]]:
    """Per reason code: count, the stage and action of its first row, and its first ``examples`` rows
    (key, message); most frequent first. The file is read a line at a time (it may be large)."""
    found: dict[str, dict[str, Any]] = {}
    if not path.exists():
        return found
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                row = json.loads(line)
            except ValueError:
                continue
            if not isinstance(row, dict):
                continue
            reason = str(row.get("reason", "?"))
            entry = found.setdefault(reason, {"count": 0, "stage": row.get("stage"), "action": row.get("action"),
                                              "examples": []})
            entry["count"] += 1
            if len(entry["examples"]) < examples:
                entry["examples"].append({"key": row.get("key"), "message": row.get("message")})
    return dict(sorted(found.items(), key=lambda kv: (-kv[1]["count"], kv[0])))


def render(view: dict[str, Any]) -> str:
    """The overview as plain text: a headline, the fields, the stage table and the reasons table."""
    last = view["last_run"]
    # "shards" counts the tars the index covers; past output.max_bytes a shard is several tars
    planned = last.get("shards_built", 0) + last.get("shards_skipped", 0) + last.get("shards_failed", 0)
    tars = f"{view['shards']} tars, " if planned and planned != view["shards"] else ""
    lines = [f"{view['output']}: {view['samples_out']}/{view['samples_in']} samples in {planned or view['shards']} "
             f"shards ({tars}{_size(view['shard_bytes'])}): {view['samples_dropped']} dropped, "
             f"{view['samples_failed']} in failed shards, {view['fields_omitted']} field(s) omitted"]
    if view["fields"]:
        lines.append("fields: " + ", ".join(f"{f} {n}" for f, n in view["fields"].items()))
    if view["status"]:
        extra = f"; audio/video {view['duration_seconds']} s" if view["duration_seconds"] else ""
        lines.append("status: " + ", ".join(f"{s} {n}" for s, n in view["status"].items()) + extra)
    if last:
        phases = ", ".join(f"{k} {v} s" for k, v in (last.get("phases_seconds") or {}).items())
        lines.append(f"last run: {last.get('seconds')} s, {last.get('shards_built')} shards built, "
                     f"{last.get('shards_skipped')} skipped, {last.get('workers')} workers ({last.get('executor')})"
                     + (f"; {phases}" if phases else ""))
    if view["embeddings"]:
        lines.append("embeddings: " + ", ".join(view["embeddings"]))
    rows = [("stage", "in", "out", "skipped", "cached", "dropped", "omitted", "seconds")]
    for name, s in view["stages"].items():
        rows.append((name, *(str(s.get(k, "-")) for k in ("in", "out", "skipped", "cached")),
                     str(sum(s.get("dropped", {}).values())), str(sum(s.get("omitted", {}).values())),
                     f"{s['seconds']:.3f}" if "seconds" in s else "-"))
    lines += ["", *_table(rows, range(1, 8))]
    if view["reasons"]:
        rows = [("reason", "count", "stage", "action", "example")]
        for reason, r in view["reasons"].items():
            first = r["examples"][0] if r["examples"] else {}
            rows.append((reason, str(r["count"]), str(r["stage"]), str(r["action"]),
                         f"{first.get('key')}: {first.get('message')}" if first else ""))
        lines += ["", *_table(rows, range(1, 2))]
    return "\n".join(lines)


def _table(rows: list[tuple[str, ...]], right: range) -> list[str]:
    """Rows as aligned columns: those in ``right`` (numbers) flush right, the others left."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return ["  ".join(c.rjust(widths[i]) if i in right else c.ljust(widths[i]) for i, c in enumerate(row)).rstrip()
            for row in rows]


def _size(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"
