"""The work of ``mmprep align`` (re-time one subtitle file), and a typer-free entry for it.

``mmprep align`` runs once per file, often in a shell loop, so its start-up counts: typer imports
pydantic and costs ~0.1 s, more than aligning a minute of audio. ``fast_main`` parses the command's
own options with the standard library, limits OpenBLAS to one thread (unless the user set
``OPENBLAS_NUM_THREADS``) and runs :func:`run_align`; anything it does not handle
(``--help``, an unknown option, a value out of range, a missing file) returns None, and the typer
command in :mod:`mmprep.cli.align` runs instead and gives the usual help or error. A test keeps the
two option tables in step.
"""

from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path

# option -> (parameter, type, min, max): the value options of the typer command, same bounds
VALUE_OPTIONS: dict[str, tuple[str, type, float | None, float | None]] = {
    "--output": ("output", Path, None, None),
    "-o": ("output", Path, None, None),
    "--max-offset": ("max_offset", float, 0.01, 3600.0),
    "--max-splits": ("max_splits", int, 0, 8),
    "--refine-window": ("refine_window", float, 0, 2),
    "--refine-min-scatter": ("refine_min_scatter", float, 0, 1),
    "--min-confidence": ("min_confidence", float, 0, 1),
}
FLAGS = {"--no-ratios": "no_ratios", "--force": "force", "--json": "as_json", "--quiet": "quiet", "-q": "quiet"}


def summary(rec: dict) -> str:
    """One line for a person: status, confidence, offset, ratio, splits and reasons."""
    if rec.get("status") == "failed":
        return f"failed: {', '.join(rec.get('reasons', []))} {rec.get('message', '')}".rstrip()
    parts = [rec["status"], f"confidence {rec['confidence']:.3f}", f"offset {rec['offset']:+.3f} s"]
    if rec.get("ratio") is not None:
        parts.append(f"ratio {rec['ratio']:.6f}")
    if rec.get("splits"):
        parts.append("splits " + ", ".join(f"cue {s['cue']}: {s['offset']:+.3f} s" for s in rec["splits"]))
    if rec.get("reasons"):
        parts.append("(" + ", ".join(rec["reasons"]) + ")")
    return ", ".join(parts)


def run_align(media: Path, subs: Path, output: Path, *, max_offset: float = 60.0, max_splits: int = 1,
              no_ratios: bool = False, refine_window: float = 0.25, refine_min_scatter: float = 0.045,
              min_confidence: float = 0.5, force: bool = False, as_json: bool = False, quiet: bool = False) -> int:
    """Align ``subs`` to the speech in ``media`` (both existing files), write ``output`` when the
    result is ``ok`` (or ``force``), print the record; the exit code: 0 ok, 1 not ok."""
    from mmprep.align.api import align_subtitles
    from mmprep.align.media import decode_audio
    from mmprep.align.retime import AlignParams, failed
    from mmprep.cli import setup_logging
    from mmprep.errors import Drop

    setup_logging(quiet)
    params = AlignParams(max_offset=max_offset, ratios=not no_ratios, max_splits=max_splits,
                         refine_window=refine_window, refine_min_scatter=refine_min_scatter,
                         min_confidence=min_confidence)
    try:
        samples, rate = decode_audio(media.read_bytes(), field=media.suffix.lstrip("."))
        rec, text, _, _ = align_subtitles(samples, rate, subs.read_bytes(), hint=subs.suffix.lstrip("."),
                                          params=params, plot="none")
    except Drop as drop:
        rec, text = failed(drop.reason, drop.message).record, None
    written = text is not None and (rec["status"] == "ok" or force)
    if written:
        output.parent.mkdir(parents=True, exist_ok=True)
        output.write_text(text, encoding="utf-8")
    rec["output"] = str(output) if written else None
    line = json.dumps(rec, ensure_ascii=False) if as_json else summary(rec) + (f" -> {output}" if written else "")
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
    return 0 if rec["status"] == "ok" else 1


def _value(text: str, kind: type, lo: float | None, hi: float | None) -> object | None:
    """``text`` as ``kind`` within ``[lo, hi]``, or None (then typer reports the error)."""
    if kind is Path:
        return Path(text) if text else None
    try:
        v = kind(text)
    except ValueError:
        return None
    if not math.isfinite(v) or (lo is not None and v < lo) or (hi is not None and v > hi):
        return None
    return v


def parse_args(args: list[str]) -> dict | None:
    """Keyword arguments of :func:`run_align` from the arguments after ``align``, or None when they
    are anything but a plain valid call (help, unknown or repeated-flag forms, bad values)."""
    kw: dict = {}
    positional: list[str] = []
    it = iter(args)
    for arg in it:
        if arg.startswith("-") and arg != "-":
            name, eq, inline = arg.partition("=")
            if name in FLAGS and not eq:
                kw[FLAGS[name]] = True
            elif name in VALUE_OPTIONS and (not eq or name.startswith("--")):
                param, kind, lo, hi = VALUE_OPTIONS[name]
                text = inline if eq else next(it, None)
                value = _value(text, kind, lo, hi) if text is not None else None
                if value is None:
                    return None
                kw[param] = value  # repeated: the last one wins, as in click
            else:
                return None
        else:
            positional.append(arg)
    if len(positional) != 2 or "output" not in kw:
        return None
    media, subs = Path(positional[0]), Path(positional[1])
    if not (media.is_file() and subs.is_file()) or kw["output"].is_dir():
        return None
    return {"media": media, "subs": subs, **kw}


def fast_main(args: list[str]) -> int | None:
    """``mmprep align ARGS`` without typer: the exit code, or None to let the typer command run."""
    kw = parse_args(args)
    if kw is None:
        return None
    # numpy is not imported yet: one file needs no parallel linear algebra (one 2-column least
    # squares), and OpenBLAS starting a thread per core costs ~60 ms of start-up. A value the user
    # set is kept.
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    return run_align(**kw)
