"""``mmprep validate``, ``mmprep stages`` and ``mmprep schema``: working with pipeline specs."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mmprep.cli import app, fail_config
from mmprep.errors import ConfigError


@app.command()
def validate(pipeline: Path = typer.Argument(..., help="Pipeline YAML.")) -> None:
    """Check a pipeline (keys, values, stage names, required resources) without running it."""
    from mmprep.build import check_pipeline
    from mmprep.config import instantiate, load_pipeline

    try:
        spec = load_pipeline(pipeline)
        instantiate(spec)
        check_pipeline(spec)
    except ConfigError as exc:
        fail_config(exc)
    names = ", ".join(s.stage for s in spec.stages)
    typer.echo(f"{pipeline}: ok ({len(spec.stages)} stages: {names})" if names else f"{pipeline}: ok (no stages)")


@app.command()
def stages(as_json: bool = typer.Option(False, "--json", help="Machine-readable.")) -> None:
    """List the stages with their parameters and defaults."""
    from mmprep.schema import describe_stages

    described = describe_stages()
    if as_json:
        typer.echo(json.dumps(described, indent=2, ensure_ascii=False))
        return
    for name, doc in described.items():
        flags = ", ".join(f for f in ("cacheable" if doc["cacheable"] else "", "batched" if doc["batched"] else "")
                          if f)
        typer.echo(f"{name}  (v{doc['version']}{', ' + flags if flags else ''})  {doc['summary']}")
        for pname, p in doc["params"].items():
            value = "(required)" if p["required"] else f"= {json.dumps(p['default'], ensure_ascii=False)}"
            typer.echo(f"    {pname}: {p['type']} {value}"
                       + (f"  # {p['description']}" if p.get("description") else ""))


@app.command()
def schema(write: bool = typer.Option(False, "--write", help="Write schemas/pipeline.schema.json in this repo.")
           ) -> None:
    """Print the pipeline JSON Schema generated from the stages' config models."""
    from mmprep.schema import SCHEMA_PATH, pipeline_schema_text

    text = pipeline_schema_text()
    if write:
        if not SCHEMA_PATH.parent.is_dir():  # an installed package: there is no checkout to write into
            fail_config(ConfigError("--write", f"{SCHEMA_PATH.parent} does not exist: --write regenerates the "
                                    "schema in a checkout of mmprep; print it (without --write) to save it elsewhere"))
        SCHEMA_PATH.write_text(text, encoding="utf-8")
        typer.echo(f"wrote {SCHEMA_PATH}")
    else:
        typer.echo(text, nl=False)
