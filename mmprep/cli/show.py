"""``mmprep show``: what a finished build holds and why the rest was left out."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mmprep.cli import app, fail_config
from mmprep.errors import ConfigError


@app.command()
def show(
    out: Path = typer.Argument(..., help="Output folder of a build."),
    examples: int = typer.Option(2, "--examples", min=0, help="Example rows kept per reason code (--json)."),
    as_json: bool = typer.Option(False, "--json", help="Print the overview as one JSON object."),
) -> None:
    """Summarize a finished build: samples, fields, each stage's counts and time, reasons with examples."""
    from mmprep.overview import overview, render

    try:
        view = overview(out, examples=examples)
    except ConfigError as exc:
        fail_config(exc)
    typer.echo(json.dumps(view, ensure_ascii=False) if as_json else render(view))
