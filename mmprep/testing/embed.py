"""Builds and model files for embedding tests and benchmarks, made in code (nothing downloads)."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from mmprep.testing.media import image_bytes, write

WORDS = ("a the red blue green small large cat dog bird car house tree river city night street window "
         "sunset beach mountain people walking sitting under over near two three old new photo of").split()


def captions(n: int, *, seed: int = 0, min_words: int = 3, max_words: int = 24) -> list[str]:
    """``n`` random English-like captions of varied length (deterministic for a seed)."""
    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(min_words, max_words))) + f" #{i}"
            for i in range(n)]


def caption_corpus(root: Path, n: int, *, seed: int = 0, bad: bool = False, image_size: int = 48) -> list[str]:
    """``root/itemNNNN.{jpg,txt}`` pairs; with ``bad``, adds a blank caption, an over-long caption and an
    undecodable image (stems ``bad_blank``, ``bad_long``, ``bad_image``). Returns the captions written."""
    texts = captions(n, seed=seed)
    for i, text in enumerate(texts):
        write(root / f"item{i:04d}.jpg", image_bytes(image_size, image_size, seed=seed * 1000 + i))
        write(root / f"item{i:04d}.txt", text)
    if bad:
        write(root / "bad_blank.jpg", image_bytes(image_size, image_size, seed=9007))
        write(root / "bad_blank.txt", "   \n")
        write(root / "bad_long.jpg", image_bytes(image_size, image_size, seed=9008))
        write(root / "bad_long.txt", "word " * 600)
        write(root / "bad_image.jpg", b"\xff\xd8 this is no jpeg")
        write(root / "bad_image.txt", "a caption whose image is broken")
    return texts


def raw_build(corpus: Path, out: Path, *, per_shard: int = 4, stages: list[dict[str, Any]] | None = None,
              optional: list[str] | None = None, cache: Path | None = None) -> dict[str, Any]:
    """Build ``corpus`` into ``out`` in-process, one worker; by default no stages (bytes pass through)."""
    from mmprep.build import BuildOptions, run_build
    from mmprep.config import parse_pipeline

    spec = parse_pipeline({
        "name": "emb", "stages": stages or [],
        "output": {"name": "emb", "max_samples": per_shard, "optional": optional or []},
    })
    return run_build(spec, BuildOptions(input=str(corpus), output=str(out), workers=1, executor="local",
                                        cache_dir=str(cache) if cache else None, progress=False))


def save_torchscript_cnn(path: Path, dim: int = 64) -> Path:
    """The built-in tiny CNN, scripted and saved: a real TorchScript image model file."""
    import torch

    from mmprep.embed.modelfile import tiny_cnn

    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.script(tiny_cnn(dim)).save(str(path))
    return path


def broken_model_file(path: Path) -> Path:
    """A file that exists but is no model (the "does not load" case)."""
    return write(path, b"PK\x03\x04 definitely not a torchscript archive")
