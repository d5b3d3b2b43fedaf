"""The benchmark's photo corpus, made in code: 0.1-3 MP photo-like images, mixed JPEG/PNG/WebP, with captions.

Sizes are log-uniform in megapixels (median ~0.55 MP) with aspect ratios from 3:4 to 16:9; 60% JPEG
(quality 75-95), 20% PNG, 20% WebP (quality 80), as in web-scraped sets. Deterministic per index.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from mmprep.testing.images import caption, encode, photo

ASPECTS = (3 / 4, 1.0, 4 / 3, 3 / 2, 16 / 9)


def spec(i: int) -> tuple[int, int, str, int]:
    rng = np.random.default_rng(10_000 + i)
    mp = float(np.exp(rng.uniform(np.log(0.1), np.log(3.0))))
    aspect = float(rng.choice(ASPECTS))
    w = int(round((mp * 1e6 * aspect) ** 0.5))
    h = int(round(mp * 1e6 / w))
    u = rng.random()
    ext = "jpg" if u < 0.6 else ("png" if u < 0.8 else "webp")
    quality = int(rng.integers(75, 96)) if ext == "jpg" else 80
    return w, h, ext, quality


def _make(args: tuple[int, str]) -> tuple[str, int, int]:
    i, root = args
    w, h, ext, q = spec(i)
    path = Path(root) / f"img{i:05d}.{ext}"
    if not path.exists():
        tmp = path.with_suffix(f".tmp.{ext}")
        tmp.write_bytes(encode(photo(w, h, seed=i), ext, quality=q))
        os.replace(tmp, path)
        path.with_suffix(".txt").write_text(caption(i), encoding="utf-8")
    return str(path), w, h


def make_corpus(root: Path, n: int, workers: int) -> dict:
    """Write (or reuse) ``n`` images + captions under ``root``; returns a summary for the results file."""
    root.mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(workers) as pool:
        rows = list(pool.map(_make, [(i, str(root)) for i in range(n)], chunksize=8))
    sizes = [os.path.getsize(p) for p, _, _ in rows]
    mps = [w * h / 1e6 for _, w, h in rows]
    exts = [Path(p).suffix[1:] for p, _, _ in rows]
    summary = {"images": n, "bytes": int(sum(sizes)), "megapixels_total": round(sum(mps), 1),
               "megapixels_median": round(float(np.median(mps)), 3), "megapixels_min": round(min(mps), 3),
               "megapixels_max": round(max(mps), 3), "formats": {e: exts.count(e) for e in sorted(set(exts))}}
    (root.parent / f"{root.name}.json").write_text(json.dumps(summary, indent=1))
    return summary


def files(root: Path, n: int) -> list[Path]:
    return [Path(root) / f"img{i:05d}.{spec(i)[2]}" for i in range(n)]
