"""``mmprep probe``: what an image or video file holds, without building anything."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from mmprep.cli import app, fail_config
from mmprep.errors import ConfigError, Drop


def describe(path: Path) -> dict:
    """Header facts of an image (size, format, channels, EXIF orientation) or the probe of a video."""
    from mmprep.sample import ext_modality
    from mmprep.stages.image.header import read_header

    data = path.read_bytes()
    kind = ext_modality(path.suffix[1:]) if path.suffix else None
    hdr = read_header(data) if kind != "video" else None
    if hdr is not None:
        return {"file": str(path), "kind": "image", "format": hdr.format, "width": hdr.width, "height": hdr.height,
                "channels": hdr.channels, "orientation": hdr.orientation, "complete": hdr.complete,
                "megapixels": round(hdr.pixels / 1e6, 3)}
    if kind == "image":  # named an image but no image header: as the build says it, not a video's error
        what = "empty" if not data else f"no image header (starts {data[:8]!r})"
        return {"file": str(path), "kind": "image", "error": "image.corrupt", "message": f"{path.name}: {what}"}
    from mmprep.stages.video.probe import probe

    try:
        return {"file": str(path), "kind": "video", **probe(data, field=path.suffix[1:] or "video")}
    except Drop as drop:
        return {"file": str(path), "kind": kind, "error": drop.reason, "message": drop.message}


@app.command("probe")
def probe_command(
    files: list[Path] = typer.Argument(..., help="Image or video files."),
) -> None:
    """Print one JSON line per file: image header facts (size, EXIF orientation) or a video probe."""
    bad = 0
    for path in files:
        if not path.is_file():
            fail_config(ConfigError("files", f"{path} is not a file"))
        doc = describe(path)
        bad += "error" in doc
        typer.echo(json.dumps(doc, ensure_ascii=False))
    if bad:
        raise typer.Exit(1)
