"""``image.decode``: encoded bytes -> RGB(A) pixels (:class:`~mmprep.sample.Image`), safely and fast.

Order of checks, cheapest first: magic bytes -> header size against ``max_pixels`` (a decompression
bomb is refused before any allocation) -> truncation marker -> decode. JPEGs are decoded at a
reduced DCT scale (1/2, 1/4, 1/8) when ``reduce_to`` says a later resize will shrink them anyway:
the decoder then does a fraction of the work, which is where most of the time goes.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from mmprep.errors import Drop
from mmprep.sample import Image, Sample, fields_of, meta
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.image.geometry import RGB, orient, reduce_factor
from mmprep.stages.image.header import Header, read_header, sniff

_REDUCED_COLOR = {2: "IMREAD_REDUCED_COLOR_2", 4: "IMREAD_REDUCED_COLOR_4", 8: "IMREAD_REDUCED_COLOR_8"}
_REDUCED_GREY = {2: "IMREAD_REDUCED_GRAYSCALE_2", 4: "IMREAD_REDUCED_GRAYSCALE_4", 8: "IMREAD_REDUCED_GRAYSCALE_8"}


class DecodeConfig(StageConfig):
    max_pixels: int = Field(90_000_000, ge=1, description="Refuse (image.too_large) images whose header claims "
                                                         "more pixels than this, before decoding.")
    alpha: Literal["drop", "composite", "keep"] = Field(
        "drop", description="Transparency: drop the alpha channel, composite onto `background`, or keep RGBA.")
    background: RGB = Field((255, 255, 255), description="RGB colour under transparent pixels.")
    grayscale: Literal["rgb", "keep"] = Field("rgb", description="Grey images: expand to RGB, or keep one channel.")
    reduce_to: int | None = Field(
        None, ge=1, description="Pixels a later resize needs on `reduce_side`; JPEGs are then decoded at the "
                                "smallest DCT scale (1/2, 1/4, 1/8) that still gives that many.")
    reduce_side: Literal["shorter", "longer"] = Field(
        "shorter", description="Side `reduce_to` applies to: shorter for center_crop / keep_ratio, longer for pad.")
    strict: bool = Field(True, description="Drop JPEG/PNG files whose end marker is missing (truncated downloads).")
    threads: int | None = Field(1, ge=1, description="OpenCV threads per worker process (mmprep already runs one "
                                                     "worker per core, so more only adds overhead); none: OpenCV's "
                                                     "default.")


def decode_image(data: bytes, cfg: DecodeConfig, *, field: str) -> tuple[Image, dict]:
    """Pixels ``shape=(h, w, 3|4)`` (or ``(h, w)`` grey when kept) uint8, plus metadata for the sample."""
    hdr = read_header(data)
    if hdr is None:
        kind = sniff(data)
        what = f"a cut-short {kind} header" if kind else f"unknown format (starts with {data[:8]!r})"
        raise Drop("image.corrupt", f".{field}: {what}", field=field)
    if hdr.width <= 0 or hdr.height <= 0:
        raise Drop("image.corrupt", f".{field}: header says {hdr.width}x{hdr.height}", field=field)
    if hdr.pixels > cfg.max_pixels:
        raise Drop("image.too_large", f".{field}: {hdr.width}x{hdr.height} = {hdr.pixels / 1e6:.1f} MP "
                   f"> max_pixels {cfg.max_pixels / 1e6:.1f} MP", field=field)
    if cfg.strict and not hdr.complete:
        raise Drop("image.corrupt", f".{field}: truncated {hdr.format} (no end-of-image marker)", field=field)
    if hdr.format == "jpg":
        pixels, factor = _decode_jpeg(data, hdr, cfg)
    else:
        pixels, factor = _decode_other(data, hdr, cfg), 1
    if pixels is None or pixels.size == 0:
        raise Drop("image.corrupt", f".{field}: OpenCV could not decode this {hdr.format}", field=field)
    pixels, changed = _channels(pixels, cfg)
    oriented = hdr.orientation in (5, 6, 7, 8)
    info = {"width": hdr.height if oriented else hdr.width, "height": hdr.width if oriented else hdr.height,
            "format": hdr.format, "orientation": hdr.orientation, "scale": factor}
    keep_source = not changed and hdr.orientation == 1
    return Image(pixels=pixels, source=data if keep_source else None, format=hdr.format), info


def _decode_jpeg(data: bytes, hdr: Header, cfg: DecodeConfig) -> tuple[np.ndarray | None, int]:
    import cv2

    factor = reduce_factor(hdr.width, hdr.height, cfg.reduce_to, cfg.reduce_side) if cfg.reduce_to else 1
    grey = hdr.channels == 1 and cfg.grayscale == "keep"
    if grey:
        flag = getattr(cv2, _REDUCED_GREY[factor]) if factor > 1 else cv2.IMREAD_GRAYSCALE
    else:  # libjpeg writes RGB directly: no BGR -> RGB pass
        flag = (getattr(cv2, _REDUCED_COLOR[factor]) & ~cv2.IMREAD_COLOR if factor > 1 else 0) | _rgb_flag()
    pixels = cv2.imdecode(np.frombuffer(data, np.uint8), flag | cv2.IMREAD_IGNORE_ORIENTATION)
    if pixels is None:
        return None, factor
    if not grey and not hasattr(cv2, "IMREAD_COLOR_RGB"):
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    return np.ascontiguousarray(orient(pixels, hdr.orientation)), factor


def _rgb_flag() -> int:
    """cv2.IMREAD_COLOR_RGB (OpenCV >= 4.10: decoders write RGB order themselves), else BGR colour."""
    import cv2

    return getattr(cv2, "IMREAD_COLOR_RGB", cv2.IMREAD_COLOR)


def _decode_other(data: bytes, hdr: Header, cfg: DecodeConfig) -> np.ndarray | None:
    """PNG/WebP/BMP/TIFF/GIF. Plain colour goes straight to 8-bit RGB; files the header says hold alpha or
    grey (when kept) are read with their own layout and depth, so alpha is seen, not lost."""
    import cv2

    buf = np.frombuffer(data, np.uint8)
    if hdr.channels == 3 or (hdr.channels == 1 and cfg.grayscale == "rgb"):
        pixels = cv2.imdecode(buf, _rgb_flag() | cv2.IMREAD_IGNORE_ORIENTATION)
        if pixels is not None and not hasattr(cv2, "IMREAD_COLOR_RGB"):
            pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
        if pixels is not None:
            return pixels
        # else a depth the colour flag does not take (a 32-bit float TIFF): read as it is, as below
    pixels = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    if pixels is None:
        return None
    if pixels.dtype == np.uint16:
        pixels = (pixels >> 8).astype(np.uint8)
    elif pixels.dtype != np.uint8:
        pixels = np.clip(pixels.astype(np.float32) * (255.0 if pixels.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
    elif pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGRA2RGBA)
    return pixels


def _channels(pixels: np.ndarray, cfg: DecodeConfig) -> tuple[np.ndarray, bool]:
    """Apply the grey / alpha policy; the flag says whether the original bytes no longer match."""
    import cv2

    if pixels.ndim == 2:
        if cfg.grayscale == "keep":
            return pixels, False
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2RGB), False
    if pixels.shape[2] != 4 or cfg.alpha == "keep":
        return pixels, False
    if cfg.alpha == "drop":
        return np.ascontiguousarray(pixels[:, :, :3]), True
    a = pixels[:, :, 3:4].astype(np.float32) / 255.0
    bg = np.asarray(cfg.background, np.float32)
    out = pixels[:, :, :3].astype(np.float32) * a + bg * (1.0 - a)
    return np.clip(out + 0.5, 0, 255).astype(np.uint8), True


@register
class ImageDecode(Stage):
    """Decode JPEG/PNG/WebP/BMP/TIFF to RGB pixels; EXIF orientation applied; bombs refused from the header."""

    name = "image.decode"
    version = "4"  # 3: trailers after the end marker, damaged EXIF, tRNS past 4 KB decode (were dropped);
    # 4: float TIFFs decode (were dropped)
    reads = ("image",)
    writes = ("image",)
    Config = DecodeConfig

    def imports(self) -> tuple[str, ...]:
        return ("cv2",)

    def setup(self) -> None:
        import cv2

        if self.config.threads is not None:
            cv2.setNumThreads(self.config.threads)

    def process(self, sample: Sample) -> Sample:
        for ext in fields_of(sample, "image"):
            data = sample[ext]
            if isinstance(data, Image):
                continue
            image, info = decode_image(data, self.config, field=ext)
            sample[ext] = image
            meta(sample).setdefault("image", {})[ext] = info
        return sample
