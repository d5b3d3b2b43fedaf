"""``mmprep align``, ``mmprep avsync`` and ``mmprep report``: alignment outside a pipeline.

Exit codes: 0 ok; 1 the alignment failed or is not trusted (low_confidence); 2 bad arguments.
``mmprep align`` usually runs without typer (:mod:`mmprep.align.command`); this definition gives its
help and its argument errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mmprep.align.command import run_align
from mmprep.cli import app, fail_config
from mmprep.errors import ConfigError


@app.command()
def align(
    media: Path = typer.Argument(..., help="Audio file, or a video with an audio track."),
    subs: Path = typer.Argument(..., help="Subtitles: SRT, WebVTT, ASS, or JSON / JSONL segments."),
    output: Path = typer.Option(..., "--output", "-o", help="Re-timed subtitles (written in the input's format)."),
    max_offset: float = typer.Option(60.0, "--max-offset", min=0.01, max=3600,
                                     help="Largest offset searched, seconds (+-)."),
    max_splits: int = typer.Option(1, "--max-splits", min=0, max=8, help="Offset changes allowed (ad breaks)."),
    no_ratios: bool = typer.Option(False, "--no-ratios", help="Only ratio 1 (no framerate conversion)."),
    refine_window: float = typer.Option(0.25, "--refine-window", min=0, max=2,
                                        help="Snap cue edges to speech edges within this many seconds (0: off)."),
    refine_min_scatter: float = typer.Option(0.045, "--refine-min-scatter", min=0, max=1,
                                             help="Refine only when cue starts scatter this much (s); 0 = always."),
    min_confidence: float = typer.Option(0.5, "--min-confidence", min=0, max=1),
    force: bool = typer.Option(False, "--force", help="Write the output even when the confidence is low."),
    as_json: bool = typer.Option(False, "--json", help="Print the alignment record as JSON."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Re-time subtitles to the speech in MEDIA; print offset, ratio, splits, confidence and status."""
    for name, path in (("MEDIA", media), ("SUBS", subs)):
        if not path.is_file():
            fail_config(ConfigError(name, f"{path} is not a file"))
    if output.is_dir():  # else a traceback (IsADirectoryError) after the whole alignment
        fail_config(ConfigError("--output", f"{output} is a directory; give the re-timed file's path"))
    code = run_align(media, subs, output, max_offset=max_offset, max_splits=max_splits, no_ratios=no_ratios,
                     refine_window=refine_window, refine_min_scatter=refine_min_scatter,
                     min_confidence=min_confidence, force=force, as_json=as_json, quiet=quiet)
    if code:
        raise typer.Exit(code)


@app.command()
def avsync(
    video: Path = typer.Argument(..., help="A video with an audio track."),
    max_offset: float = typer.Option(1.0, "--max-offset", min=0.01, max=10, help="Largest offset searched, s (+-)."),
    as_json: bool = typer.Option(False, "--json", help="Print the record as JSON."),
) -> None:
    """How far the audio lags (+) or leads (-) the picture, from sound onsets against visual change."""
    from mmprep.align.api import av_sync

    if not video.is_file():
        fail_config(ConfigError("VIDEO", f"{video} is not a file"))
    rec = av_sync(video.read_bytes(), max_offset=max_offset)
    if as_json:
        typer.echo(json.dumps(rec))
    elif rec["status"] == "failed":
        typer.echo(f"failed: {', '.join(rec['reasons'])}")
    else:
        late = "late" if rec["offset"] > 0 else "early"
        typer.echo(f"{rec['status']}: audio {abs(rec['offset']) * 1000:.0f} ms {late}, confidence "
                   f"{rec['confidence']:.2f} ({rec.get('matched', 0)}/{rec.get('visual_events', 0)} "
                   "visual events matched)")
    if rec["status"] != "ok":
        raise typer.Exit(1)


@app.command()
def report(out: Path = typer.Argument(..., help="A build's output folder holding alignment_report.json.")) -> None:
    """(Re)build OUT/alignment_report.html from OUT/alignment_report.json and print where it is."""
    from mmprep.align.report import REPORT_JSON, rebuild

    if not (out / REPORT_JSON).is_file():
        fail_config(ConfigError("OUT", f"{out / REPORT_JSON} not found (run a pipeline with align.* stages first)"))
    try:
        _, html_path = rebuild(out)
    except (ValueError, KeyError) as exc:
        fail_config(ConfigError("OUT", f"{out / REPORT_JSON} is not an alignment report ({exc})"))
    typer.echo(str(html_path))
