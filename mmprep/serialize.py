"""Samples <-> bytes for the cache, without pickle.

Layout: 8-byte little-endian header length, a JSON header listing each field's kind and the byte
ranges of its blobs, then the blobs. Kinds: bytes, str, json, npy, image, audio.
"""

from __future__ import annotations

import io
import json
import struct
from typing import Any

import numpy as np

from mmprep.codecs import to_json
from mmprep.sample import Audio, Image, Sample


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    return buf.getvalue()


def _load_npy(data: bytes) -> np.ndarray:
    return np.load(io.BytesIO(data), allow_pickle=False)


def dumps(sample: Sample) -> bytes:
    header: list[dict[str, Any]] = []
    blobs: list[bytes] = []

    def blob(data: bytes) -> int:
        blobs.append(data)
        return len(blobs) - 1

    for name, value in sample.items():
        entry: dict[str, Any] = {"name": name}
        if isinstance(value, bytes):
            entry.update(kind="bytes", blob=blob(value))
        elif isinstance(value, str):
            entry.update(kind="str", blob=blob(value.encode("utf-8", "surrogatepass")))
        elif isinstance(value, np.ndarray):
            entry.update(kind="npy", blob=blob(_npy(value)))
        elif isinstance(value, Image):
            entry.update(kind="image", blob=blob(_npy(value.pixels)), format=value.format,
                         source=None if value.source is None else blob(value.source))
        elif isinstance(value, Audio):
            entry.update(kind="audio", blob=blob(_npy(value.samples)), rate=value.rate, format=value.format,
                         info=value.info, source=None if value.source is None else blob(value.source))
        else:
            # surrogatepass: a path from an undecodable file name must round-trip, not fail the shard
            entry.update(kind="json", blob=blob(to_json(value).encode("utf-8", "surrogatepass")))
        header.append(entry)
    sizes = [len(b) for b in blobs]
    head = json.dumps({"fields": header, "sizes": sizes}).encode("utf-8")
    return struct.pack("<Q", len(head)) + head + b"".join(blobs)


def loads(data: bytes) -> Sample:
    (n,) = struct.unpack_from("<Q", data, 0)
    head = json.loads(data[8 : 8 + n])
    offsets = [8 + n]
    for size in head["sizes"]:
        offsets.append(offsets[-1] + size)

    def blob(i: int | None) -> bytes | None:
        return None if i is None else data[offsets[i] : offsets[i + 1]]

    sample: Sample = {}
    for entry in head["fields"]:
        kind, raw = entry["kind"], blob(entry["blob"])
        if kind == "bytes":
            value: Any = raw
        elif kind == "str":
            value = raw.decode("utf-8", "surrogatepass")
        elif kind == "npy":
            value = _load_npy(raw)
        elif kind == "image":
            value = Image(pixels=_load_npy(raw), source=blob(entry["source"]), format=entry["format"])
        elif kind == "audio":
            value = Audio(samples=_load_npy(raw), rate=entry["rate"], source=blob(entry["source"]),
                          format=entry["format"], info=entry["info"])
        else:
            value = json.loads(raw.decode("utf-8", "surrogatepass"))
        sample[entry["name"]] = value
    return sample
