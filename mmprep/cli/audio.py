"""``mmprep audio-features``: compute features for audio files without a pipeline (batched, cached nowhere)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from mmprep.cli import app, fail_config, setup_logging
from mmprep.errors import ConfigError

KINDS = ("logmel", "mfcc", "spectrogram", "zcr", "envelope")
MIN_RATE, MAX_RATE = 1000, 384_000  # audio.decode's default plausible range


def _unique_names(files: list[Path]) -> None:
    """Outputs are named after the file name with its extension (a.wav and a.flac do not collide); two
    inputs with the same name from different folders would overwrite each other, so they are refused."""
    seen: dict[str, Path] = {}
    for path in files:
        other = seen.setdefault(path.name, path)
        if other != path:
            raise ConfigError("files", f"{other} and {path} would both write {path.name}.*: rename one")


def _stage(kind: str, params: dict[str, Any]):
    from pydantic import ValidationError

    from mmprep.stage import get_stage

    name = f"audio.{kind}"
    cls = get_stage(name)
    try:
        stage = cls(cls.Spec(stage=name, **params))
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(".".join(str(p) for p in err["loc"]), err["msg"]) from None
    stage.check()
    stage.setup()
    return stage


@app.command("audio-features")
def audio_features(
    files: list[Path] = typer.Argument(..., help="Audio files (WAV/FLAC/OGG/MP3/M4A/Opus...)."),
    out: Path = typer.Option(Path("features"), "--out", "-o", help="Folder for NAME.KIND.npy and NAME.KIND.json."),
    kind: str = typer.Option("logmel", "--kind", "-k", help=f"One of {', '.join(KINDS)}."),
    rate: int | None = typer.Option(None, "--rate", help="Resample to this rate (Hz) first; keep the file's if unset."),
    n_fft: int = typer.Option(400, "--n-fft", help="FFT size in samples."),
    hop: int = typer.Option(160, "--hop", help="Hop in samples."),
    n_mels: int = typer.Option(80, "--n-mels", help="Mel bands (logmel, mfcc)."),
    n_mfcc: int = typer.Option(13, "--n-mfcc", help="Coefficients (mfcc)."),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    dtype: str = typer.Option("float32", "--dtype", help="float32 or float16."),
    quiet: bool = typer.Option(False, "--quiet", "-q"),
) -> None:
    """Compute one feature for audio files; frame parameters go next to each array as JSON."""
    setup_logging(quiet)
    import numpy as np

    from mmprep.errors import Drop
    from mmprep.sample import Audio
    from mmprep.stages.audio.io import read_audio
    from mmprep.stages.audio.resample import resample

    params: dict[str, Any] = {"n_fft": n_fft, "hop": hop, "device": device, "dtype": dtype}
    if kind in ("logmel", "mfcc"):
        params["n_mels"] = n_mels
    if kind == "mfcc":
        params["n_mfcc"] = n_mfcc
    try:
        if kind not in KINDS:
            raise ConfigError("kind", f"expected one of {', '.join(KINDS)}, got {kind!r}")
        if rate is not None and not MIN_RATE <= rate <= MAX_RATE:
            raise ConfigError("rate", f"must be between {MIN_RATE} and {MAX_RATE} Hz, got {rate}")
        missing = next((path for path in files if not path.exists() or path.is_dir()), None)
        if missing is not None:  # as probe, align and avsync: a path given that is no file, before any work
            raise ConfigError("files", f"{missing} is not a file")
        _unique_names(files)
        stage = _stage(kind, params)
    except ConfigError as exc:
        fail_config(exc)
    samples, failed = [], 0
    for path in files:
        try:
            x, sr = read_audio(path.read_bytes(), field=path.suffix.lstrip("."))
            x = x.mean(axis=0)
            if x.size == 0 or sr <= 0:
                raise Drop("audio.empty", "no samples")
            if not np.isfinite(x).all():  # as audio.decode's nonfinite: drop; NaN in gives NaN out
                raise Drop("audio.nonfinite", f"{int((~np.isfinite(x)).sum())} NaN or infinite samples")
            if rate and sr != rate:
                x, sr = resample(x, sr, rate), rate
        except (OSError, Drop) as exc:
            typer.echo(f"{path}: skipped ({exc})", err=True)
            failed += 1
            continue
        samples.append({"__key__": path.name, "__meta__": {}, "wav": Audio(samples=x, rate=sr), "__path__": path})
    out.mkdir(parents=True, exist_ok=True)
    written = 0
    for sample, result in zip(samples, stage.process_batch(samples), strict=True):
        if isinstance(result, Drop):
            typer.echo(f"{sample['__path__']}: skipped ({result})", err=True)
            failed += 1
            continue
        arr = result[stage.output]
        np.save(out / f"{sample['__key__']}.{kind}.npy", arr, allow_pickle=False)
        doc = result["__meta__"]["features"][stage.output]
        (out / f"{sample['__key__']}.{kind}.json").write_text(json.dumps(doc, indent=2) + "\n")
        written += 1
    typer.echo(f"{written}/{len(files)} files -> {out}")
    if failed:
        raise typer.Exit(1)
