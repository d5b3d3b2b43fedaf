"""What flows between stages.

A sample is a plain dict, as in webdataset: ``__key__`` plus one entry per field, keyed by the
field's extension (``jpg``, ``txt``, ``wav``, ``mfcc.npy``...). ``__meta__`` holds a JSON-able dict
that is written as ``KEY.meta.json``. ``__source__`` maps each input field to where it came from.

Field values are bytes when untouched, or a decoded object: ``str`` for text, :class:`Image` and
:class:`Audio` below, ``numpy.ndarray`` for ``*.npy`` fields, dict/list for ``*.json`` fields.
The shard writer turns each back into bytes by extension (see :mod:`mmprep.codecs`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

Sample = dict[str, Any]

KEY = "__key__"
META = "__meta__"
SOURCE = "__source__"
RESERVED = (KEY, META, SOURCE)

IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff", "gif")
AUDIO_EXTS = ("wav", "flac", "ogg", "mp3", "m4a", "aac", "opus")
VIDEO_EXTS = ("mp4", "mkv", "webm", "mov", "avi")
TEXT_EXTS = ("txt", "caption", "text")
SUBTITLE_EXTS = ("srt", "vtt", "ass")

MODALITIES: dict[str, tuple[str, ...]] = {
    "image": IMAGE_EXTS,
    "audio": AUDIO_EXTS,
    "video": VIDEO_EXTS,
    "text": TEXT_EXTS,
    "subtitle": SUBTITLE_EXTS,
}


@dataclass
class Image:
    """Decoded pixels, ``shape=(height, width, channels)``, RGB(A) order, uint8 unless a stage says.

    ``source`` keeps the original encoded bytes while no stage has changed the pixels, so the
    writer can store them untouched instead of re-encoding (lossless and fast).
    """

    pixels: np.ndarray
    source: bytes | None = None
    format: str | None = None

    def replace(self, pixels: np.ndarray) -> Image:
        """The same image with new pixels: the original bytes no longer describe it."""
        return Image(pixels=pixels, source=None, format=self.format)


@dataclass
class Audio:
    """Decoded audio, ``shape=(n_samples,)`` mono or ``(channels, n_samples)``, float32 in [-1, 1]."""

    samples: np.ndarray
    rate: int
    source: bytes | None = None
    format: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.samples.shape[-1] / self.rate

    def replace(self, samples: np.ndarray, rate: int | None = None) -> Audio:
        return Audio(samples=samples, rate=rate or self.rate, source=None, format=self.format, info=dict(self.info))


def ext_modality(ext: str) -> str | None:
    """Modality of a field from its extension (last dotted part), or None when it has none."""
    last = ext.rsplit(".", 1)[-1].lower()
    for modality, exts in MODALITIES.items():
        if last in exts:
            return modality
    return None


def fields_of(sample: Sample, modality: str) -> list[str]:
    """Names of the sample's fields of one modality, in a stable order."""
    return sorted(k for k in sample if k not in RESERVED and ext_modality(k) == modality)


def meta(sample: Sample) -> dict[str, Any]:
    """The sample's metadata dict, created on first use."""
    return sample.setdefault(META, {})
