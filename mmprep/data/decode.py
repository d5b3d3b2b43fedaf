"""Member bytes -> tensors / arrays / objects, by extension. Nothing here ever unpickles.

| extension                          | result                                                        |
|------------------------------------|---------------------------------------------------------------|
| jpg jpeg png webp bmp tif tiff     | ``torch.uint8`` ``(3, H, W)`` RGB, or float32 in [0, 1]       |
| npy                                | ``numpy.load(allow_pickle=False)`` as a tensor                |
| json                               | ``dict`` / ``list``                                           |
| txt caption text srt vtt ass       | ``str`` (UTF-8)                                               |
| cls cls2 index                     | ``int`` (see :func:`decode_label`)                            |
| wav flac ogg                       | float32 tensor ``(n,)`` mono or ``(channels, n)``             |
| pyd pickle pkl                     | never decoded; refused when asked for, dropped otherwise      |
| anything else                      | the raw ``bytes``                                             |

A member that fails to decode raises :class:`DecodeError` naming the shard, the sample key and the
field, with the original exception as ``__cause__``.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from mmprep.errors import ConfigError, MmprepError
from mmprep.sample import IMAGE_EXTS  # the fields the build treats as images

PICKLE_EXTS = ("pyd", "pickle", "pkl")
TEXT_EXTS = ("txt", "caption", "text", "srt", "vtt", "ass")
AUDIO_EXTS = ("wav", "flac", "ogg")


_INT = re.compile(rb"[+-]?[0-9]+")
_FLOAT = re.compile(rb"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")
_BOOL = {b"true": 1, b"false": 0}


class DecodeError(MmprepError, ValueError):
    """One member of one sample could not be decoded; the original exception is ``__cause__``.

    ``shard``: URL or path of the tar holding the member (a sidecar's for sidecar fields; None when
    the decoder was called outside a stream); ``key``: the sample key; ``field``: the member's
    extension (``jpg``, ``mfcc.npy``). Constructible from the message alone, as the DataLoader
    re-raises a worker's exception that way.
    """

    def __init__(self, message: str, *, shard: str | None = None, key: str | None = None,
                 field: str | None = None):
        super().__init__(message)
        self.shard, self.key, self.field = shard, key, field

    @classmethod
    def wrap(cls, exc: BaseException, *, shard: str | None, key: str, field: str) -> DecodeError:
        detail = " ".join(str(exc).split()) or "no detail"  # one line: OpenCV messages span several
        where = f"shard {shard}" if shard else "no shard"
        return cls(f"{where}: sample {key!r}, field {field!r}: {type(exc).__name__}: {detail}",
                   shard=shard, key=key, field=field)


def decode_label(data: bytes) -> int:
    """A class label member (``.cls``) as an int, accepting every form the build writes.

    The build stores an inline manifest value as text: integers as ``3`` (CSV cells, JSON ints),
    JSON/Parquet floats as ``3.0`` (a Parquet int column with nulls reads back as float), booleans as
    ``true`` / ``false`` (JSON) or ``True`` / ``False``; surrounding whitespace is ignored. Integral
    floats and booleans become ints (``true`` = 1); anything else (``2.5``, ``cat``, empty, ``nan``)
    raises ValueError saying what the member holds.
    """
    text = data.strip()
    if _INT.fullmatch(text):
        return int(text)
    if text.lower() in _BOOL:
        return _BOOL[text.lower()]
    if _FLOAT.fullmatch(text):
        value = float(text)
        if value.is_integer():
            return int(value)
        reason = "a fractional number" if value == value and abs(value) != float("inf") else "out of range"
    else:
        reason = "empty" if not text else "not a number"
    shown = data[:40] + (b"..." if len(data) > 40 else b"")
    raise ValueError(f"class label {shown!r} is {reason}; a .cls member must hold an integer "
                     "(also accepted: an integral float like 3.0, true/false)")


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

    def __call__(self, key: str, raw: dict[str, bytes], *, shard: str | None = None,
                 sidecars: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Decoded fields of sample ``key``. ``shard``: the tar it came from, and ``sidecars`` (field
        name -> sidecar tar) for members merged from embedding sidecars: named by a DecodeError."""
        out: dict[str, Any] = {"__key__": key}
        for ext, data in raw.items():
            if self.wants(ext):
                try:
                    out[ext] = self.decode(ext, data)
                except (ImportError, MemoryError, MmprepError):
                    raise  # the environment or the configuration, not this sample
                except Exception as exc:
                    origin = _origin(ext, shard, sidecars)
                    raise DecodeError.wrap(exc, shard=origin, key=key, field=ext) from exc
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
            return decode_label(data)
        if last in AUDIO_EXTS:
            import soundfile as sf

            samples, _rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=False)
            samples = np.ascontiguousarray(samples.T if samples.ndim == 2 else samples)
            return _tensor(samples) if self.tensors else samples
        return data

    def _image(self, data: bytes) -> Any:
        import cv2

        if not data:
            raise ValueError("the image member is empty (0 bytes)")
        pixels = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        if pixels is None:
            raise ValueError(f"OpenCV cannot decode these {len(data)} bytes as an image "
                             f"(they start {bytes(data[:8])!r})")
        if self.resize is not None:
            pixels = cv2.resize(pixels, tuple(self.resize), interpolation=cv2.INTER_AREA)
        pixels = cv2.cvtColor(pixels, cv2.COLOR_BGR2RGB)
        if self.image == "numpy":
            return pixels
        import torch

        tensor = torch.from_numpy(pixels).permute(2, 0, 1).contiguous()
        return tensor.float().div_(255.0) if self.image == "float" else tensor


def _origin(ext: str, shard: str | None, sidecars: Mapping[str, str] | None) -> str | None:
    """The tar member ``ext`` came from: a sidecar's (its members are ``KEY.<name>...``) or ``shard``."""
    for name, url in (sidecars or {}).items():
        if ext == name or ext.startswith(name + "."):
            return url
    return shard


def _tensor(array: np.ndarray) -> Any:
    import torch

    if not array.dtype.isnative:  # a big-endian .npy (numpy.save keeps the byte order): torch refuses it
        array = array.astype(array.dtype.newbyteorder("="))
    if not array.flags.writeable:
        array = array.copy()
    return torch.from_numpy(array)
