"""``mmprep probe``: what an image, audio or video file holds, without building anything."""

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
        doc = {"file": str(path), "kind": "image", "format": hdr.format, "width": hdr.width, "height": hdr.height,
               "channels": hdr.channels, "orientation": hdr.orientation, "complete": hdr.complete,
               "megapixels": round(hdr.pixels / 1e6, 3)}
        if not hdr.complete:  # what image.decode (strict, the default) drops: broken, exit 1
            doc.update(error="image.corrupt", message=f"{path.name}: truncated {hdr.format} (no end-of-image marker)")
        return doc
    if kind == "image":  # named an image but no image header: as the build says it, not a video's error
        what = "empty" if not data else f"no image header (starts {data[:8]!r})"
        return {"file": str(path), "kind": "image", "error": "image.corrupt", "message": f"{path.name}: {what}"}
    if kind == "audio":  # decoded as audio.decode reads it (a wav has no video stream to probe)
        return _audio(path, data)
    if kind is not None and kind != "video":  # text, subtitles...: a video probe's error would mislead
        return {"file": str(path), "kind": kind, "error": "probe.unsupported",
                "message": f"{path.name}: a {kind} file; probe reads images, audio and video"}
    from mmprep.stages.video.probe import probe

    try:
        return {"file": str(path), "kind": "video", **probe(data, field=path.suffix[1:] or "video")}
    except Drop as drop:
        return {"file": str(path), "kind": kind, "error": drop.reason, "message": drop.message}


def _audio(path: Path, data: bytes) -> dict:
    """Rate, channels, length and (for libsndfile formats) the sample format of an audio file."""
    from mmprep.stages.audio.io import read_audio, soundfile_subtype

    field = path.suffix[1:].lower()
    try:
        samples, rate = read_audio(data, field=field)
    except Drop as drop:
        return {"file": str(path), "kind": "audio", "error": drop.reason, "message": drop.message}
    except Exception as exc:  # noqa: BLE001 - a decoder's own error: reported like audio.decode does
        return {"file": str(path), "kind": "audio", "error": "audio.corrupt", "message": f"{path.name}: {exc}"}
    return {"file": str(path), "kind": "audio", "rate": rate, "channels": int(samples.shape[0]),
            "samples": int(samples.shape[1]), "duration": round(samples.shape[1] / rate, 6),
            "subtype": soundfile_subtype(data)}


@app.command("probe")
def probe_command(
    files: list[Path] = typer.Argument(..., help="Image, audio or video files."),
) -> None:
    """Print one JSON line per file: image header facts (size, EXIF orientation), audio rate, channels and
    length, or a video probe."""
    bad = 0
    for path in files:
        if not path.is_file():
            fail_config(ConfigError("files", f"{path} is not a file"))
        doc = describe(path)
        bad += "error" in doc
        typer.echo(json.dumps(doc, ensure_ascii=False))
    if bad:
        raise typer.Exit(1)
