"""``mmprep train CONFIG.yaml [--ablate]``: fusion training on shards (see docs/fusion.md)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mmprep.cli import app, fail_config, setup_logging
from mmprep.errors import ConfigError


@app.command()
def train(
    config: Path = typer.Argument(..., help="Training YAML: data, modalities, model, loss, train."),
    ablate: bool = typer.Option(False, "--ablate", help="Also train each single modality with the same budget "
                                "and report it next to the fused result."),
    epochs: int | None = typer.Option(None, help="Override train.epochs."),
    device: str | None = typer.Option(None, help="Override train.device (auto, cpu, cuda)."),
    out: str | None = typer.Option(None, help="Override train.out."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Warnings only."),
) -> None:
    """Train a fusion classifier on shards; prints the metrics (and the ablation) as JSON."""
    setup_logging(quiet)
    from mmprep.fusion.config import load_config, parse_config
    from mmprep.fusion.trainer import train as run

    try:
        cfg = load_config(config)
        doc = cfg.model_dump(mode="python")
        for key, value in (("epochs", epochs), ("device", device), ("out", out)):
            if value is not None:
                doc["train"][key] = value
        cfg = parse_config(doc)
        report = run(cfg, ablate=ablate)
    except ConfigError as exc:
        fail_config(exc)
        return
    summary = {"fused": _brief(report["fused"])}
    if ablate:
        summary["single"] = {name: _brief(r) for name, r in report["single"].items()}
        summary["ablation"] = str(Path(cfg.train.out) / "ablation.json")
    typer.echo(json.dumps(summary, indent=2))


def _brief(result: dict) -> dict:
    m = result["metrics"]
    return {"modalities": result["modalities"], "fusion": result["fusion"], "eval_split": result["eval_split"],
            "eval_samples": m["samples"], "accuracy": round(m["accuracy"], 4), "macro_f1": round(m["macro_f1"], 4),
            "confusion": m["confusion"]}
