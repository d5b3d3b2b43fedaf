"""Image embeddings from a TorchScript / ONNX / import-path model, with declared preprocessing.

Preprocessing (part of the cache identity): decode to RGB, resize the shorter side to ``size``
(bilinear, OpenCV), centre-crop ``size x size``, scale to [0, 1], subtract ``mean`` and divide by
``std`` per channel, lay out as ``float32 shape=(3, size, size)``. Batches are fixed-size.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from mmprep.embed.base import Encoder
from mmprep.embed.modelfile import load_model_file
from mmprep.errors import ConfigError, Drop
from mmprep.sample import Image

log = logging.getLogger("mmprep.embed")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_PIXELS = 90_000_000  # as image.decode's max_pixels default


def preprocess(pixels: np.ndarray, *, size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """RGB(A)/grey uint8 ``(h, w[, c])`` -> normalized ``float32 (3, size, size)``."""
    import cv2

    if pixels.ndim == 2:
        pixels = np.repeat(pixels[:, :, None], 3, axis=2)
    pixels = pixels[:, :, :3]
    h, w = pixels.shape[:2]
    if h == 0 or w == 0:
        raise Drop("embed.bad_image", f"image has no pixels ({w}x{h})")
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    if max(nh, nw) > 16 * size:  # a 1x10000 banner would first become 224x2.24M (1.5 GB): cut the square first
        s = min(h, w)
        y0, x0 = (h - s) // 2, (w - s) // 2
        pixels, nh, nw = pixels[y0 : y0 + s, x0 : x0 + s], size, size
    resized = cv2.resize(np.ascontiguousarray(pixels), (nw, nh), interpolation=cv2.INTER_LINEAR)
    top, left = (nh - size) // 2, (nw - size) // 2
    crop = resized[top : top + size, left : left + size].astype(np.float32) / 255.0
    crop = (crop - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
    return np.ascontiguousarray(crop.transpose(2, 0, 1))


def decode_rgb(data: bytes, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """RGB uint8 pixels of encoded image bytes. The size is read from the header first, so a small file
    claiming a huge picture (a decompression bomb) is refused before OpenCV allocates it."""
    import cv2

    from mmprep.stages.image.header import read_header

    hdr = read_header(data)
    if hdr is not None and hdr.pixels > max_pixels:
        raise Drop("embed.too_large", f"{hdr.width}x{hdr.height} = {hdr.pixels / 1e6:.1f} MP is over "
                   f"{max_pixels / 1e6:.0f} MP (image.decode's max_pixels default); not decoded")
    arr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if arr is None:
        raise Drop("embed.bad_image", "the image does not decode")
    return cv2.cvtColor(arr, cv2.COLOR_BGR2RGB)


def _takes_batches(forward: Any, size: int) -> bool:
    """Whether a batch of two gives two rows (models traced with batch 1 often hard-code it)."""
    try:
        out = forward(np.zeros((2, 3, size, size), np.float32))
    except Exception:  # noqa: BLE001 - any failure means: no batches
        return False
    return out.shape[0] == 2


class ImageEncoder(Encoder):
    modality = "image"

    def __init__(self, *, model: str, device: str, batch_size: int, normalize: bool = True, size: int = 224,
                 mean: tuple[float, ...] = IMAGENET_MEAN, std: tuple[float, ...] = IMAGENET_STD,
                 checkpoint: str | None = None):
        loaded = load_model_file(model, device=device, checkpoint=checkpoint)
        self.kind = loaded.kind
        super().__init__(model=model, model_hash=loaded.identity, device=device, batch_size=batch_size,
                         normalize=normalize, preprocessing={"size": size, "mean": list(mean), "std": list(std),
                                                            "resize": "shorter_side+center_crop"})
        self.forward = loaded.forward
        self.size, self.mean, self.std = size, tuple(mean), tuple(std)
        try:  # a model that cannot run at this size fails here, as a config error, not mid-run
            self.dim = int(self.forward(np.zeros((1, 3, size, size), np.float32)).shape[1])
        except Exception as exc:  # noqa: BLE001 - torch / onnxruntime raise many types
            reason = str(exc).strip().splitlines()[-1][:200] if str(exc).strip() else type(exc).__name__
            raise ConfigError("model", f"{model} does not run on a (1, 3, {size}, {size}) batch (--size / size "
                              f"{size}): {reason}") from None
        if batch_size > 1 and not _takes_batches(self.forward, size):
            log.warning("%s takes one image per call (a batch of 2 fails or gives another shape): running it "
                        "one image at a time", model)
            self.batch_size = 1

    def prepare(self, value: Any) -> np.ndarray:
        try:
            pixels = value.pixels if isinstance(value, Image) else decode_rgb(value) if isinstance(value, bytes) \
                else None
            if pixels is None:
                raise Drop("embed.not_image", f"expected image bytes or pixels, got {type(value).__name__}")
            if pixels.dtype != np.uint8:
                raise Drop("embed.bad_image", f"pixels are {pixels.dtype}, expected uint8")
            return preprocess(pixels, size=self.size, mean=self.mean, std=self.std)
        except Drop:
            raise
        except Exception as exc:  # noqa: BLE001 - OpenCV errors on odd shapes
            raise Drop("embed.bad_image", f"preprocessing failed: {exc}") from None

    def encode(self, prepared: list[np.ndarray]) -> tuple[np.ndarray, list[dict[str, Any] | None]]:
        out = np.zeros((len(prepared), self.dim), np.float32)
        for lo in range(0, len(prepared), self.batch_size):
            chunk = prepared[lo : lo + self.batch_size]
            out[lo : lo + len(chunk)] = self.forward(np.stack(chunk))
        self.computed += len(prepared)
        return self.finish(out), [None] * len(prepared)
