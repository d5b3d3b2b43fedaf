"""``image.denoise`` and ``image.enhance``: OpenCV filters on uint8 RGB(A) pixels (alpha left untouched)."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, model_validator

from mmprep.sample import Sample
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.image.common import decoded_images


def _split_alpha(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        return np.ascontiguousarray(pixels[:, :, :3]), pixels[:, :, 3:]
    return pixels, None


def _join_alpha(rgb: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
    return rgb if alpha is None else np.concatenate([rgb, alpha], axis=2)


class DenoiseConfig(StageConfig):
    method: Literal["mean", "gaussian", "median", "bilateral", "nlmeans"] = Field(
        "gaussian", description="mean/gaussian/median: kernel filters; bilateral: edge-preserving; nlmeans: "
                                "non-local means (best, slowest: ~50x gaussian).")
    ksize: int = Field(3, ge=1, description="Kernel side in pixels (odd) for mean, gaussian, median.")
    sigma: float = Field(0.0, ge=0, description="Gaussian sigma in pixels; 0 derives it from ksize.")
    diameter: int = Field(5, ge=1, description="Bilateral: neighbourhood diameter in pixels.")
    sigma_color: float = Field(50.0, gt=0, description="Bilateral: how different colours may be and still mix.")
    sigma_space: float = Field(50.0, gt=0, description="Bilateral: spatial sigma in pixels.")
    h: float = Field(5.0, gt=0, description="Non-local means filter strength (luma and colour).")
    template: int = Field(7, ge=1, description="Non-local means: template patch side (odd).")
    search: int = Field(21, ge=1, description="Non-local means: search window side (odd).")

    @model_validator(mode="after")
    def _odd(self) -> DenoiseConfig:
        for key in ("ksize", "template", "search"):
            if getattr(self, key) % 2 == 0:
                raise ValueError(f"{key} must be odd, got {getattr(self, key)}")
        return self


def denoise(pixels: np.ndarray, c: DenoiseConfig) -> np.ndarray:
    import cv2

    rgb, alpha = _split_alpha(pixels)
    k = c.ksize
    if c.method == "mean":
        out = cv2.blur(rgb, (k, k))
    elif c.method == "gaussian":
        out = cv2.GaussianBlur(rgb, (k, k), c.sigma)
    elif c.method == "median":
        out = cv2.medianBlur(rgb, k)
    elif c.method == "bilateral":
        out = cv2.bilateralFilter(rgb, c.diameter, c.sigma_color, c.sigma_space)
    elif rgb.ndim == 2:
        out = cv2.fastNlMeansDenoising(rgb, None, c.h, c.template, c.search)
    else:
        out = cv2.fastNlMeansDenoisingColored(rgb, None, c.h, c.h, c.template, c.search)
    return _join_alpha(out, alpha)


@register
class ImageDenoise(Stage):
    """Denoise every image: mean, Gaussian, median, bilateral or non-local means."""

    name = "image.denoise"
    reads = ("image",)
    writes = ("image",)
    Config = DenoiseConfig

    def process(self, sample: Sample) -> Sample:
        for ext, image in decoded_images(sample, self.name):
            sample[ext] = image.replace(denoise(image.pixels, self.config))
        return sample


class EnhanceConfig(StageConfig):
    alpha: float = Field(1.0, gt=0, description="Contrast gain: out = alpha * in + beta (then clipped).")
    beta: float = Field(0.0, description="Brightness offset in 0..255 units.")
    gamma: float = Field(1.0, gt=0, description="out = 255 * (in / 255) ** (1 / gamma); > 1 brightens.")
    clahe: bool = Field(False, description="Contrast-limited adaptive histogram equalisation on the L of Lab.")
    clahe_clip: float = Field(2.0, gt=0, description="CLAHE clip limit.")
    clahe_tiles: int = Field(8, ge=1, description="CLAHE tiles per side.")
    balance: Literal["none", "gray_world", "stretch"] = Field(
        "none", description="Colour balance: gray_world scales channels to a common mean; stretch maps each "
                            "channel's [p, 100-p] percentiles to [0, 255].")
    percentile: float = Field(1.0, ge=0, lt=50, description="stretch: percent clipped at each end.")


def enhance(pixels: np.ndarray, c: EnhanceConfig) -> np.ndarray:
    """Applied in this order: contrast/brightness, gamma, CLAHE, colour balance."""
    import cv2

    rgb, alpha = _split_alpha(pixels)
    if c.alpha != 1.0 or c.beta != 0.0:  # saturated to 0..255 (convertScaleAbs would mirror negatives: -40 -> 40)
        rgb = cv2.addWeighted(rgb, c.alpha, rgb, 0.0, c.beta)
    if c.gamma != 1.0:
        lut = np.clip(255.0 * (np.arange(256) / 255.0) ** (1.0 / c.gamma) + 0.5, 0, 255).astype(np.uint8)
        rgb = cv2.LUT(rgb, lut)
    if c.clahe:
        clahe = cv2.createCLAHE(clipLimit=c.clahe_clip, tileGridSize=(c.clahe_tiles, c.clahe_tiles))
        if rgb.ndim == 2:
            rgb = clahe.apply(rgb)
        else:
            lab = cv2.cvtColor(rgb, cv2.COLOR_RGB2LAB)
            lab[:, :, 0] = clahe.apply(np.ascontiguousarray(lab[:, :, 0]))
            rgb = cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)
    if c.balance != "none" and rgb.ndim == 3:
        f = rgb.astype(np.float32)
        if c.balance == "gray_world":
            means = f.reshape(-1, 3).mean(axis=0)
            f *= means.mean() / np.maximum(means, 1e-3)
        else:
            lo = np.percentile(f.reshape(-1, 3), c.percentile, axis=0)
            hi = np.percentile(f.reshape(-1, 3), 100 - c.percentile, axis=0)
            f = (f - lo) * (255.0 / np.maximum(hi - lo, 1e-3))
        rgb = np.clip(f + 0.5, 0, 255).astype(np.uint8)
    return _join_alpha(rgb, alpha)


@register
class ImageEnhance(Stage):
    """Enhance every image: contrast/brightness, gamma, CLAHE, colour balance."""

    name = "image.enhance"
    version = "2"  # 2: a negative beta darkens to 0 (1 mirrored values below 0 back up)
    reads = ("image",)
    writes = ("image",)
    Config = EnhanceConfig

    def process(self, sample: Sample) -> Sample:
        for ext, image in decoded_images(sample, self.name):
            sample[ext] = image.replace(enhance(image.pixels, self.config))
        return sample
