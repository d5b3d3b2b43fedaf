"""``mmprep embed --check``: image -> caption retrieval recall, a quick sanity number.

For every key that has both embeddings, the image vector is compared (cosine) with every caption
vector; recall@k is the share of images whose own caption ranks among the k nearest. Both fields
must live in one space (the same dimension; e.g. a CLIP-style image and text tower). Random pairs
give recall@1 around 1/n.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path
from typing import Any

import numpy as np

from mmprep.embed.shards import split_member
from mmprep.errors import ConfigError


def load_sidecar(out: Path, name: str) -> tuple[list[str], np.ndarray]:
    """Keys and ``float32 shape=(n, dim)`` embeddings of ``OUT/embeddings/<name>/`` in shard order."""
    root = out / "embeddings" / name
    if not (root / "meta.json").is_file():
        raise ConfigError("--check", f"no embeddings named {name!r} under {out / 'embeddings'}")
    keys: list[str] = []
    rows: list[np.ndarray] = []
    for path in sorted(root.glob("*.tar")):
        with tarfile.open(path, "r:") as tar:
            for member in tar:
                key, ext = split_member(member.name)
                if ext == f"{name}.npy":
                    keys.append(key)
                    rows.append(np.load(io.BytesIO(tar.extractfile(member).read()), allow_pickle=False))
    dim = json.loads((root / "meta.json").read_text()).get("dim", 0)
    return keys, (np.stack(rows).astype(np.float32) if rows else np.zeros((0, dim), np.float32))


def recall_at(queries: np.ndarray, targets: np.ndarray, ks: tuple[int, ...] = (1, 5)) -> dict[str, float]:
    """Row i of ``queries`` should retrieve row i of ``targets``; cosine similarity, ties count against."""
    q = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
    t = targets / np.maximum(np.linalg.norm(targets, axis=1, keepdims=True), 1e-12)
    sims = q @ t.T
    own = np.diag(sims)[:, None]
    rank = (sims >= own).sum(axis=1) - 1  # how many others score at least as high as the right one
    return {f"recall@{k}": float((rank < k).mean()) for k in ks}


def retrieval_check(out: Path, image: str, text: str) -> dict[str, Any]:
    ikeys, ivecs = load_sidecar(out, image)
    tkeys, tvecs = load_sidecar(out, text)
    if ivecs.shape[1] != tvecs.shape[1]:
        raise ConfigError("--check", f"{image} has dimension {ivecs.shape[1]} and {text} {tvecs.shape[1]}: "
                          "retrieval needs embeddings from one joint space")
    where = {k: i for i, k in enumerate(tkeys)}
    pairs = [(i, where[k]) for i, k in enumerate(ikeys) if k in where]
    if not pairs:
        raise ConfigError("--check", f"no key has both {image} and {text}")
    qi, ti = (np.array(x) for x in zip(*pairs, strict=True))
    return {"query": image, "target": text, "pairs": len(pairs), **recall_at(ivecs[qi], tvecs[ti])}


def default_pair(out: Path) -> tuple[str, str]:
    """The first image-field and the first text-field embeddings found in ``OUT/embeddings``."""
    from mmprep.sample import ext_modality

    found: dict[str, str] = {}
    for meta in sorted((out / "embeddings").glob("*/meta.json")):
        doc = json.loads(meta.read_text())
        found.setdefault(ext_modality(doc.get("field", "")) or "", doc["name"])
    if "image" not in found or "text" not in found:
        raise ConfigError("--check", "needs one image and one text embedding under OUT/embeddings "
                          "(or name them: --check-pair IMAGE_NAME,TEXT_NAME)")
    return found["image"], found["text"]
