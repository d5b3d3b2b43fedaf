"""``OUT/alignment_report.json``: per-sample alignment records, corpus totals and histograms.

A record (one per sample and aligned field) is what :func:`mmprep.align.retime.align` or
:func:`mmprep.align.avsync.estimate` returned, plus ``key``, ``field`` and ``kind``
(``subtitles`` or ``av``). Flagged records (status not ``ok``) also carry ``plot``: speech spans
and cue spans before / after alignment, in seconds, for the HTML page.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

REPORT_JSON = "alignment_report.json"
REPORT_HTML = "alignment_report.html"
STATUSES = ("ok", "low_confidence", "failed")


def histogram(values: list[float], edges: list[float]) -> dict[str, list[float]]:
    """Counts of ``values`` in the bins ``edges`` (values outside go to the end bins)."""
    e = np.asarray(edges, float)
    v = np.clip(np.asarray(values, float), e[0], e[-1] - 1e-9) if values else np.zeros(0)
    counts, _ = np.histogram(v, bins=e)
    return {"edges": [round(float(x), 4) for x in e], "counts": [int(c) for c in counts]}


def summarize(records: list[dict[str, Any]]) -> dict[str, Any]:
    """The whole report document: totals, histograms and the records sorted worst first."""
    status = {s: 0 for s in STATUSES}
    reasons: dict[str, int] = {}
    problems: dict[str, int] = {}
    kinds: dict[str, int] = {}
    for r in records:
        status[r.get("status", "failed")] = status.get(r.get("status", "failed"), 0) + 1
        kinds[r.get("kind", "subtitles")] = kinds.get(r.get("kind", "subtitles"), 0) + 1
        for reason in r.get("reasons", []):
            reasons[reason] = reasons.get(reason, 0) + 1
        for name, n in r.get("validation", {}).get("counts", {}).items():
            problems[name] = problems.get(name, 0) + n
    subs = [r for r in records if r.get("kind", "subtitles") == "subtitles"]
    offsets = [r["offset"] for r in subs if r.get("offset") is not None]
    av = [r["offset"] for r in records if r.get("kind") == "av" and r.get("offset") is not None]
    conf = [r.get("confidence", 0.0) for r in records]
    span = max([10.0, *[abs(o) for o in offsets]])
    order = sorted(records, key=lambda r: (STATUSES.index(r.get("status", "failed")) * -1, r.get("confidence", 0.0),
                                           str(r.get("key", "")), str(r.get("field", ""))))
    return {
        "version": 1,
        "totals": {"records": len(records), "status": status, "kinds": kinds, "reasons": dict(sorted(reasons.items())),
                   "validation": dict(sorted(problems.items())),
                   "cues": int(sum(r.get("cues", 0) for r in subs))},
        "histograms": {
            "offset": histogram(offsets, list(np.linspace(-span, span, 41))),
            "confidence": histogram(conf, list(np.linspace(0, 1, 21))),
            "av_offset": histogram(av, list(np.linspace(-1, 1, 41))),
        },
        "records": order,
    }


def _atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_report(out_dir: str | Path, records: list[dict[str, Any]]) -> tuple[Path, Path]:
    """Write the JSON and the HTML page into ``out_dir``; returns both paths."""
    from mmprep.align.html import render_html

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    doc = summarize(records)
    _atomic(out / REPORT_JSON, json.dumps(doc, ensure_ascii=False, indent=1, default=float) + "\n")
    _atomic(out / REPORT_HTML, render_html(doc))
    return out / REPORT_JSON, out / REPORT_HTML


def rebuild(out_dir: str | Path) -> tuple[Path, Path]:
    """Re-make both files from an existing ``alignment_report.json`` (e.g. after an mmprep update)."""
    path = Path(out_dir) / REPORT_JSON
    doc = json.loads(path.read_text(encoding="utf-8"))
    return write_report(out_dir, doc.get("records", []))


def spans(mask: np.ndarray, hop_ms: int = 10, limit: int = 3000) -> list[list[float]]:
    """True runs of a frame mask as ``[start_s, end_s]`` (at most ``limit``, for plotting)."""
    d = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    a, b = np.flatnonzero(d == 1), np.flatnonzero(d == -1)
    return [[round(x * hop_ms / 1000, 3), round(y * hop_ms / 1000, 3)]
            for x, y in zip(a[:limit], b[:limit], strict=True)]


def publish(out_dir: str | Path, stage: str, summaries: list[dict[str, Any]]) -> tuple[Path, Path]:
    """Driver side of a stage's ``finalize``: keep this stage's records in ``OUT/.align/STAGE.json``
    and rebuild the report from every aligning stage's records of this output."""
    out = Path(out_dir)
    parts = out / ".align"
    parts.mkdir(parents=True, exist_ok=True)
    # in key order: an incremental build replays copied records apart from the ones it computes
    records = sorted((r for s in summaries for r in s.get("records", [])),
                     key=lambda r: (str(r.get("key", "")), str(r.get("field", ""))))
    _atomic(parts / f"{stage}.json", json.dumps(records, ensure_ascii=False, default=float))
    every: list[dict[str, Any]] = []
    for part in sorted(parts.glob("*.json")):
        every += json.loads(part.read_text(encoding="utf-8"))
    return write_report(out, every)
