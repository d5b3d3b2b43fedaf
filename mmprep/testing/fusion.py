"""A small multimodal classification set, made in code, where no modality alone decides the class.

Class ``y = 2 * a + b`` (4 classes) from two hidden bits: ``a`` sets the image (a bright square on
the left or on the right of a noisy 32x32 picture), ``b`` sets the audio (a 300 Hz or 1200 Hz tone,
0.3-0.7 s, as MFCC ``(13, T)``, variable ``T``), and the token ids carry ``a XOR b`` (one of two
marker tokens among random filler, variable length). Each modality alone narrows four classes to
two (best single-modality accuracy 50%); any two of them decide the class (100% possible).
Samples have ``jpg``, ``mfcc.npy``, ``tok.npy``, ``cls`` and ``meta.json`` members.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from mmprep.codecs import encode_image, npy_bytes
from mmprep.shardwriter import ShardWriter

MARKERS = (7, 11)  # token ids that encode a XOR b; filler ids are drawn from 20..99


def mfcc_of(samples: np.ndarray, rate: int, n_mfcc: int = 13) -> np.ndarray:
    """MFCC ``(n_mfcc, frames)`` float32 (librosa, 25 ms window, 10 ms hop)."""
    import librosa

    return librosa.feature.mfcc(y=samples, sr=rate, n_mfcc=n_mfcc, n_fft=400, hop_length=160).astype(np.float32)


def fusion_sample(i: int, *, seed: int = 0, rate: int = 16000) -> dict[str, object]:
    """Sample ``i``: ``{"key", "label", "pixels" (32, 32, 3) uint8, "wave" float32, "tokens" int64}``."""
    rng = np.random.default_rng([seed, i])
    a, b = int(rng.integers(2)), int(rng.integers(2))
    pixels = rng.integers(0, 90, (32, 32, 3), dtype=np.uint8)
    x0 = 2 if a == 0 else 18
    pixels[8:24, x0:x0 + 12] = rng.integers(180, 256, 3, dtype=np.uint8)
    seconds = float(rng.uniform(0.3, 0.7))
    t = np.arange(int(seconds * rate)) / rate
    freq = (300.0 if b == 0 else 1200.0) * float(rng.uniform(0.95, 1.05))
    wave = (0.4 * np.sin(2 * np.pi * freq * t) + 0.02 * rng.standard_normal(t.size)).astype(np.float32)
    n_tok = int(rng.integers(4, 12))
    tokens = rng.integers(20, 100, n_tok).astype(np.int64)
    tokens[int(rng.integers(n_tok))] = MARKERS[a ^ b]
    return {"key": f"s{i:05d}", "label": 2 * a + b, "pixels": pixels, "wave": wave, "tokens": tokens}


def write_fusion_shards(directory: Path, n: int = 96, *, per_shard: int = 32, seed: int = 0,
                        drop_audio_every: int = 0, rate: int = 16000) -> list[str]:
    """Write ``n`` samples into ``directory/fusion-NNNNNN.tar``; returns the shard paths.

    ``drop_audio_every=k`` leaves out ``mfcc.npy`` of every k-th sample (missing-modality tests).
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    for start in range(0, n, per_shard):
        writer = ShardWriter(directory, f"fusion-{start // per_shard:06d}")
        for i in range(start, min(n, start + per_shard)):
            s = fusion_sample(i, seed=seed, rate=rate)
            members = [("cls", str(s["label"]).encode()), ("jpg", encode_image(s["pixels"], "jpg"))]
            if not (drop_audio_every and i % drop_audio_every == 0):
                members.append(("mfcc.npy", npy_bytes(mfcc_of(s["wave"], rate))))
            members += [("meta.json", json.dumps({"label": s["label"]}).encode()),
                        ("tok.npy", npy_bytes(s["tokens"]))]
            writer.write(str(s["key"]), members)
        paths += [str(directory / name) for name in writer.close()]
    return paths


def write_uneven_shards(directory: Path, sizes: tuple[int, ...] = (5, 1, 9, 3, 7, 2, 4)) -> list[str]:
    """Shards ``part-NNNNNN.tar`` holding ``sizes[i]`` samples each (``txt`` + ``cls``); returns the keys.

    Keys are ``grp{k % 3}/k{k:04d}`` (they contain ``/``) in global order.
    """
    keys = []
    k = 0
    for i, n in enumerate(sizes):
        writer = ShardWriter(Path(directory), f"part-{i:06d}")
        for _ in range(n):
            key = f"grp{k % 3}/k{k:04d}"
            writer.write(key, [("txt", f"text {k}".encode()), ("cls", str(k % 4).encode())])
            keys.append(key)
            k += 1
        writer.close()
    return keys
