"""``image.augment``: offline flips, 90-degree turns and random crops, seeded by the sample key.

The random draw for a sample depends only on (``seed``, its key), never on order or worker, so a
rebuild gives byte-identical shards and the content cache stays valid.
"""

from __future__ import annotations

import hashlib

import numpy as np
from pydantic import Field

from mmprep.sample import KEY, Sample, meta
from mmprep.stage import Stage, StageConfig, register
from mmprep.stages.image.common import decoded_images


class AugmentConfig(StageConfig):
    seed: int = Field(0, description="Mixed with each sample key; change it for a different draw.")
    hflip: float = Field(0.5, ge=0, le=1, description="Probability of a left-right flip.")
    vflip: float = Field(0.0, ge=0, le=1, description="Probability of an up-down flip.")
    rot90: bool = Field(False, description="Turn by a random multiple of 90 degrees.")
    crop: float = Field(1.0, gt=0, le=1, description="Random crop keeping this fraction of each side (1 = none).")


def key_rng(key: str, seed: int) -> np.random.Generator:
    digest = hashlib.blake2b(f"{seed}\0{key}".encode(), digest_size=8).digest()
    return np.random.default_rng(int.from_bytes(digest, "little"))


def augment(pixels: np.ndarray, c: AugmentConfig, rng: np.random.Generator) -> tuple[np.ndarray, dict]:
    """The same draws happen in the same order whatever the config, so one key always maps to one draw."""
    draws = rng.random(4)
    done: dict = {}
    out = pixels
    if draws[0] < c.hflip:
        out, done["hflip"] = out[:, ::-1], True
    if draws[1] < c.vflip:
        out, done["vflip"] = out[::-1], True
    if c.rot90:
        k = int(draws[2] * 4) % 4
        if k:
            out, done["rot90"] = np.rot90(out, k), k
    if c.crop < 1.0:
        h, w = out.shape[:2]
        ch, cw = max(1, round(h * c.crop)), max(1, round(w * c.crop))
        y0 = int(rng.integers(0, h - ch + 1))
        x0 = int(rng.integers(0, w - cw + 1))
        out, done["crop"] = out[y0 : y0 + ch, x0 : x0 + cw], [x0, y0, cw, ch]
    return np.ascontiguousarray(out), done


@register
class ImageAugment(Stage):
    """Flip / rotate / crop every image with a per-key seeded draw (deterministic builds)."""

    name = "image.augment"
    reads = ("image",)
    writes = ("image",)
    Config = AugmentConfig

    def process(self, sample: Sample) -> Sample:
        for ext, image in decoded_images(sample, self.name):
            out, done = augment(image.pixels, self.config, key_rng(f"{sample[KEY]}\0{ext}", self.config.seed))
            if done:
                sample[ext] = image.replace(out)
            meta(sample).setdefault("image", {}).setdefault(ext, {})["augment"] = done
        return sample
