"""Pixel geometry shared by the image and video stages: EXIF orientation, resize modes, reduced decode.

All functions take and return ``numpy`` arrays ``shape=(height, width[, channels])``, uint8 unless
stated, and never change the channel count.
"""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field

Interp = Literal["nearest", "linear", "cubic", "area", "lanczos"]
ResizeMode = Literal["no", "keep_ratio", "center_crop", "pad"]
Side = Literal["shorter", "longer"]
Border = Literal["constant", "replicate", "reflect"]
RGB = tuple[Annotated[int, Field(ge=0, le=255)], Annotated[int, Field(ge=0, le=255)],
            Annotated[int, Field(ge=0, le=255)]]  # a colour in a config: [300, -20, 0] was clamped, silently


def interp_flag(name: str) -> int:
    import cv2

    return {"nearest": cv2.INTER_NEAREST, "linear": cv2.INTER_LINEAR, "cubic": cv2.INTER_CUBIC,
            "area": cv2.INTER_AREA, "lanczos": cv2.INTER_LANCZOS4}[name]


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1..8) so the image displays upright; 1 returns ``pixels`` as is."""
    if orientation == 2:
        return pixels[:, ::-1]
    if orientation == 3:
        return pixels[::-1, ::-1]
    if orientation == 4:
        return pixels[::-1]
    if orientation == 5:
        return np.swapaxes(pixels, 0, 1)
    if orientation == 6:
        return np.swapaxes(pixels, 0, 1)[:, ::-1]
    if orientation == 7:
        return np.swapaxes(pixels, 0, 1)[::-1, ::-1]
    if orientation == 8:
        return np.swapaxes(pixels, 0, 1)[::-1]
    return pixels


def reduce_factor(width: int, height: int, target: int, side: Side) -> int:
    """Largest JPEG DCT scale (1, 2, 4, 8) whose output keeps the chosen side >= ``target`` pixels.

    libjpeg's scaled size is ``ceil(size / factor)``, which is what this checks.
    """
    s = min(width, height) if side == "shorter" else max(width, height)
    for factor in (8, 4, 2):
        if -(-s // factor) >= target:
            return factor
    return 1


def _resize(pixels: np.ndarray, width: int, height: int, down: str, up: str) -> np.ndarray:
    import cv2

    h, w = pixels.shape[:2]
    if (w, h) == (width, height):
        return pixels
    flag = interp_flag(down if width * height < w * h else up)
    return cv2.resize(pixels, (width, height), interpolation=flag)


def resize(pixels: np.ndarray, size: int, mode: ResizeMode, *, side: Side = "shorter", down: str = "area",
           up: str = "cubic", upscale: bool = True, border: Border = "constant",
           color: tuple[int, int, int] = (0, 0, 0)) -> np.ndarray:
    """Resize by one of the img2dataset-style modes.

    - ``keep_ratio``: the ``side`` (shorter or longer) becomes ``size``; aspect kept.
    - ``center_crop``: the centred square of side ``min(h, w)`` is cut first, then resized to
      ``size x size`` (same picture as resize-shorter-then-crop, with fewer pixels to resample).
    - ``pad``: the longer side becomes ``size``, then a border fills up to ``size x size``.
    ``upscale=False`` leaves images already smaller than the target at their size (no pad either).
    """
    import cv2

    h, w = pixels.shape[:2]
    if mode == "no" or h == 0 or w == 0:
        return pixels
    if mode == "center_crop":
        s = min(h, w)
        if s < size and not upscale:
            size = s
        y0, x0 = (h - s) // 2, (w - s) // 2
        return _resize(np.ascontiguousarray(pixels[y0 : y0 + s, x0 : x0 + s]), size, size, down, up)
    ref = min(h, w) if (mode == "keep_ratio" and side == "shorter") else max(h, w)
    scale = size / ref
    if scale > 1 and not upscale:
        return pixels
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    out = _resize(pixels, nw, nh, down, up)
    if mode == "keep_ratio":
        return out
    top, left = (size - nh) // 2, (size - nw) // 2
    kind = {"constant": cv2.BORDER_CONSTANT, "replicate": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT_101}
    value = list(color) + [255] * (pixels.shape[2] - 3 if pixels.ndim == 3 and pixels.shape[2] > 3 else 0)
    return cv2.copyMakeBorder(out, top, size - nh - top, left, size - nw - left, kind[border],
                              value=value if pixels.ndim == 3 else color[0])
