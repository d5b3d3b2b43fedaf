"""``image.normalize``: pixels -> float (unit range or mean/std), stored as ``.npy``, or stretched back to uint8."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from mmprep.sample import Sample, meta
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.image.common import decoded_images

Positive = Annotated[float, Field(gt=0)]  # a std divides the pixels


class NormalizeConfig(StageConfig):
    mode: Literal["unit", "mean_std", "minmax"] = Field(
        "unit", description="unit: x / 255 in [0, 1]; mean_std: (x / 255 - mean) / std per channel; minmax: "
                            "each channel stretched to its own [min, max] -> [0, 1].")
    mean: tuple[float, float, float] = Field((0.485, 0.456, 0.406), description="mean_std: RGB means (0..1 units).")
    std: tuple[Positive, Positive, Positive] = Field((0.229, 0.224, 0.225),
                                                     description="mean_std: RGB std devs (0..1).")
    output: Literal["npy", "image"] = Field(
        "npy", description="npy: a float array in FIELD.npy (e.g. jpg.npy), shape (H, W, C) or (C, H, W); "
                           "image: back to uint8 (minmax only makes sense here) and re-encoded.")
    dtype: Literal["float16", "float32"] = Field("float32", description="npy: stored float type.")
    layout: Literal["hwc", "chw"] = Field("hwc", description="npy: axis order.")
    keep_image: bool = Field(False, description="npy: keep the image field next to the array.")


def normalize(pixels: np.ndarray, c: NormalizeConfig) -> np.ndarray:
    """Float32 ``shape=(h, w, c)``; RGB(A) alpha is dropped."""
    x = pixels.astype(np.float32) / 255.0
    if x.ndim == 2:
        x = x[:, :, None]
    x = x[:, :, :3]
    if c.mode == "mean_std":
        n = x.shape[2]
        x = (x - np.asarray(c.mean[:n], np.float32)) / np.asarray(c.std[:n], np.float32)
    elif c.mode == "minmax":
        lo = x.min(axis=(0, 1), keepdims=True)
        hi = x.max(axis=(0, 1), keepdims=True)
        x = (x - lo) / np.maximum(hi - lo, 1e-6)
    return x


@register
class ImageNormalize(Stage):
    """Normalize every image to float (unit range or mean/std) as .npy, or re-encode a min-max stretch."""

    name = "image.normalize"
    reads = ("image",)
    writes = ("image", "npy")
    Config = NormalizeConfig

    def process(self, sample: Sample) -> Sample:
        c = self.config
        for ext, image in decoded_images(sample, self.name):
            x = normalize(image.pixels, c)
            if c.output == "image":
                out = np.clip(x * 255.0 + 0.5, 0, 255).astype(np.uint8)
                sample[ext] = image.replace(out[:, :, 0] if out.shape[2] == 1 else out)
                continue
            if c.layout == "chw":
                x = np.transpose(x, (2, 0, 1))
            sample[f"{ext}.npy"] = np.ascontiguousarray(x.astype(c.dtype))
            meta(sample).setdefault("image", {}).setdefault(ext, {})["normalized"] = {
                "mode": c.mode, "layout": c.layout, "dtype": c.dtype}
            if not c.keep_image:
                del sample[ext]
        return sample
