"""Member bytes -> tensors / arrays / objects, by extension. Nothing here ever unpickles.

| extension                          | result                                                        |
|------------------------------------|---------------------------------------------------------------|
| jpg jpeg png webp bmp tif tiff     | ``torch.uint8`` ``(3, H, W)`` RGB, or float32 in [0, 1]       |
| npy                                | ``numpy.load(allow_pickle=False)`` as a tensor                |
| json                               | ``dict`` / ``list``                                           |
| txt caption text srt vtt ass       | ``str`` (UTF-8)                                               |
| cls                                | ``int``                                                       |
| wav flac ogg                       | float32 tensor ``(n,)`` mono or ``(channels, n)``             |
| pyd pickle pkl                     | never decoded; refused when asked for, dropped otherwise      |
| anything else                      | the raw ``bytes``                                             |
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mmprep.errors import ConfigError

PICKLE_EXTS = ("pyd", "pickle", "pkl")
IMAGE_EXTS = ("jpg", "jpeg", "png", "webp", "bmp", "tif", "tiff")
TEXT_EXTS = ("txt", "caption", "text", "srt", "vtt", "ass")
AUDIO_EXTS = ("wav", "flac", "ogg")


def last_ext(ext: str) -> str:
    return ext.rsplit(".", 1)[-1].lower()


def is_pickle(ext: str) -> bool:
    return last_ext(ext) in PICKLE_EXTS


@dataclass(frozen=True)
class Decoder:
    """Decodes the chosen fields of one sample; other fields are never decoded (nor kept).

    ``fields``: exact field names (``jpg``, ``mfcc.npy``, ``txt_emb.npy``...) or None for all.
    ``image``: ``uint8`` / ``float`` tensors ``(3, H, W)`` or ``numpy`` ``(H, W, 3)`` uint8.
    ``resize``: ``(width, height)`` in pixels, applied to every image (OpenCV INTER_AREA).
    ``tensors``: False keeps ``.npy`` and audio as numpy arrays.
    """

    fields: tuple[str, ...] | None = None
    image: Literal["uint8", "float", "numpy"] = "uint8"
    resize: tuple[int, int] | None = None
    tensors: bool = True

    def __post_init__(self) -> None:
        for name in self.fields or ():
            if is_pickle(name):
                raise ConfigError("fields", f"{name!r} is a pickle member; mmprep never unpickles shard data")

    def wants(self, ext: str) -> bool:
        if is_pickle(ext):
            return False
        return self.fields is None or ext in self.fields

    def __call__(self, key: str, raw: dict[str, bytes]) -> dict[str, Any]:
        out: dict[str, Any] = {"__key__": key}
        for ext, data in raw.items():
            if self.wants(ext):
                out[ext] = self.decode(ext, data)
        return out

    def decode(self, ext: str, data: bytes) -> Any:
        last = last_ext(ext)
        if last in PICKLE_EXTS:  # defence in depth: wants() already filters these
            raise ConfigError("fields", f"{ext!r} is a pickle member; refusing to decode it")
        if last in IMAGE_EXTS:
            return self._image(data)
        if last == "npy":
            array = np.load(io.BytesIO(data), allow_pickle=False)
            return _tensor(array) if self.tensors else array
        if last == "json":
            return json.loads(data)
        if last in TEXT_EXTS:
            return data.decode("utf-8")
        if last in ("cls", "cls2", "index"):
            return int(data.strip())
        if last in AUDIO_EXTS:
            import soundfile as sf

            samples, _rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
            samples = np.ascontiguousarray(samples.T if samples.ndim == 2 else samples)
            return _tensor(samples) if self.tensors else samples
        return data

    def _image(self, data: bytes) -> Any:
        import cv2

        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if pixels is None:
            raise ValueError("undecodable image")
        if self.resize is not None:
            pixels = cv2.resize(pixels, tuple(self.resize), interpolation=cv2.INTER_AREA)
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
        if self.image == "numpy":
            return pixels
        import torch

        tensor = torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
        return tensor.float().div_(255.0) if self.image == "float" else tensor


def _tensor(array: np.ndarray) -> Any:
    import torch

    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(array)
