"""Loader benchmark: streaming a build's shards vs a plain PyTorch Dataset over the original files.

1. media: N samples of (JPEG 256x256, caption, 2 s WAV). mmprep builds shards holding the JPEG, the
   caption and the MFCC ``.npy`` (computed once at build time, librosa, 13 x 201). We stream them
   with ``ShardStream`` + ``StreamLoader(num_workers=2)``; the baseline is a map-style ``Dataset``
   over the original files + ``DataLoader(num_workers=2)`` that decodes the JPEG, reads the caption
   and computes the same MFCC from the WAV per sample. Both use the same collate and a loop that
   touches every tensor. Target: >= 2x.
2. tiny: N ~1 KB samples (a .bin of 1000 bytes + .cls) in shards; ``ShardStream`` (no workers)
   against a bare ``tarfile`` iteration reading every member. Target: >= 0.5x.

Run: ``python benchmarks/bench_loader.py [--quick]``; writes benchmarks/results/loader.json.
Timings on a shared 2-core machine are noisy; each pass is run ``--repeat`` times, best kept.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tarfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from benchmarks.benchutil import RESULTS, WORK, ensure_bytecode, machine  # noqa: E402

RATE = 16000
MFCC = {"n_mfcc": 13, "n_fft": 400, "hop_length": 160}


def mfcc(samples: np.ndarray) -> np.ndarray:
    import librosa

    return librosa.feature.mfcc(y=samples, sr=RATE, **MFCC).astype(np.float32)


def make_media(root: Path, n: int) -> list[dict]:
    """Original files under root/files and a manifest pointing at them plus the precomputed MFCC."""
    from mmprep.testing.media import image_bytes, tone, wav_bytes

    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        key = f"s{i:06d}"
        (files / f"{key}.jpg").write_bytes(image_bytes(256, 256, seed=i))
        (files / f"{key}.txt").write_text(f"a picture number {i} with a tone of {200 + i % 500} hertz")
        wave = tone(2.0, freq=200.0 + i % 500, rate=RATE)
        (files / f"{key}.wav").write_bytes(wav_bytes(wave, RATE))
        np.save(files / f"{key}.mfcc.npy", mfcc(wave), allow_pickle=False)
        rows.append({"key": key, "jpg": f"files/{key}.jpg", "txt": f"files/{key}.txt",
                     "mfcc.npy": f"files/{key}.mfcc.npy"})
    (root / "manifest.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def build(root: Path) -> Path:
    from mmprep.build import BuildOptions, run_build
    from mmprep.config import parse_pipeline

    spec = parse_pipeline({
        "name": "bench", "input": {"path_columns": ["jpg", "txt", "mfcc.npy"]},
        "stages": [{"stage": "text.decode"}],
        "output": {"name": "bench", "max_samples": 250, "required": ["jpg", "txt", "mfcc.npy"]},
    })
    out = root / "out"
    run_build(spec, BuildOptions(input=str(root / "manifest.jsonl"), output=str(out), workers=2, progress=False))
    return out


class FilesDataset:
    """The baseline: decode the JPEG, read the caption, compute MFCC from the WAV, per sample."""

    def __init__(self, files: Path, keys: list[str]):
        self.files = files
        self.keys = keys

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> dict:
        import cv2
        import soundfile as sf
        import torch

        key = self.keys[i]
        img = cv2.cvtColor(cv2.imread(str(self.files / f"{key}.jpg"), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
        wave, _ = sf.read(self.files / f"{key}.wav", dtype="float32")
        return {"__key__": key, "jpg": torch.from_numpy(img).permute(2, 0, 1).contiguous(),
                "txt": (self.files / f"{key}.txt").read_text(), "mfcc.npy": torch.from_numpy(mfcc(wave))}


def consume(loader) -> tuple[int, float]:
    """Samples and seconds for one epoch; touches every tensor (sums it)."""
    import torch

    t0 = time.perf_counter()
    n = 0
    total = 0.0
    for batch in loader:
        for value in batch.values():
            if isinstance(value, torch.Tensor):
                total += float(value.float().sum())
        n += len(batch["__key__"])
    return n, time.perf_counter() - t0


def bench_media(root: Path, n: int, repeat: int, workers: int) -> dict:
    from torch.utils.data import DataLoader

    from mmprep.data import PadCollate, ShardStream, StreamLoader

    t0 = time.perf_counter()
    rows = make_media(root, n)
    t_media = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = build(root)
    t_build = time.perf_counter() - t0
    collate = PadCollate()
    ours, base = [], []
    for _ in range(repeat):
        ds = ShardStream(str(out), fields=["jpg", "txt", "mfcc.npy"], shuffle=True, buffer=500, seed=0)
        count, secs = consume(StreamLoader(ds, batch_size=32, num_workers=workers, collate_fn=collate))
        assert count == n, count
        ours.append(count / secs)
        dl = DataLoader(FilesDataset(root / "files", [r["key"] for r in rows]), batch_size=32, shuffle=True,
                        num_workers=workers, collate_fn=collate)
        count, secs = consume(dl)
        assert count == n, count
        base.append(count / secs)
    return {"samples": n, "workers": workers, "prep_seconds": round(t_media, 1), "build_seconds": round(t_build, 1),
            "shards": len(list((out / "shards").glob("*.tar"))),
            "shard_bytes": sum(p.stat().st_size for p in (out / "shards").glob("*.tar")),
            "stream_samples_per_s": round(max(ours), 1), "baseline_samples_per_s": round(max(base), 1),
            "all_stream": [round(x, 1) for x in ours], "all_baseline": [round(x, 1) for x in base],
            "ratio": round(max(ours) / max(base), 2), "target": 2.0,
            "baseline": "torch Dataset over original files (cv2 JPEG decode + soundfile + librosa MFCC) + "
                        f"DataLoader(num_workers={workers}, batch_size=32, shuffle=True)"}


def bench_tiny(root: Path, n: int, repeat: int) -> dict:
    from mmprep.data import ShardStream
    from mmprep.shardwriter import ShardWriter

    shards = root / "tiny"
    shards.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    per = 5000
    for s in range(0, n, per):
        w = ShardWriter(shards, f"tiny-{s // per:06d}")
        for i in range(s, min(n, s + per)):
            w.write(f"t{i:07d}", [("bin", rng.bytes(1000)), ("cls", str(i % 10).encode())])
        w.close()
    paths = sorted(shards.glob("*.tar"))

    def bare() -> int:
        count = 0
        for path in paths:
            with tarfile.open(path, "r|") as tar:
                for member in tar:
                    data = tar.extractfile(member).read()
                    count += len(data) > 0
        return count // 2

    results: dict[str, list[float]] = {"tarfile": [], "stream_ordered": [], "stream_shuffled": []}
    for _ in range(repeat):
        t0 = time.perf_counter()
        assert bare() == n
        results["tarfile"].append(n / (time.perf_counter() - t0))
        for name, shuffle in (("stream_ordered", False), ("stream_shuffled", True)):
            t0 = time.perf_counter()
            count = sum(1 for _ in ShardStream(str(shards), shuffle=shuffle, buffer=1000))
            assert count == n
            results[name].append(n / (time.perf_counter() - t0))
    best = {k: max(v) for k, v in results.items()}
    return {"samples": n, "bytes_per_sample": 1000, "tarfile_samples_per_s": round(best["tarfile"]),
            "stream_ordered_samples_per_s": round(best["stream_ordered"]),
            "stream_shuffled_samples_per_s": round(best["stream_shuffled"]),
            "ratio_ordered": round(best["stream_ordered"] / best["tarfile"], 2),
            "ratio_shuffled": round(best["stream_shuffled"] / best["tarfile"], 2), "target": 0.5,
            "baseline": "tarfile.open(mode='r|') reading every member, single process",
            "ours": "ShardStream, num_workers=0, decoding .bin (bytes) and .cls (int)"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="200 media / 20k tiny samples")
    ap.add_argument("--media", type=int, default=None)
    ap.add_argument("--tiny", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    ensure_bytecode()
    n_media = args.media or (200 if args.quick else 1000)
    n_tiny = args.tiny or (20000 if args.quick else 100000)
    root = WORK / "loader"
    shutil.rmtree(root, ignore_errors=True)
    root.mkdir(parents=True)
    media = bench_media(root, n_media, args.repeat, args.workers)
    print(f"media: stream {media['stream_samples_per_s']}/s vs files+DataLoader {media['baseline_samples_per_s']}/s"
          f" -> {media['ratio']}x (target >= 2x)")
    tiny = bench_tiny(root, n_tiny, args.repeat)
    print(f"tiny: stream {tiny['stream_ordered_samples_per_s']}/s (shuffled {tiny['stream_shuffled_samples_per_s']}/s)"
          f" vs bare tarfile {tiny['tarfile_samples_per_s']}/s -> {tiny['ratio_ordered']}x / {tiny['ratio_shuffled']}x"
          " (target >= 0.5x)")
    RESULTS.mkdir(parents=True, exist_ok=True)
    doc = {"machine": machine(), "quick": args.quick, "media": media, "tiny": tiny,
           "note": "shared 2-core machine with other jobs running: timings are noisy; best of --repeat runs"}
    name = "loader_quick.json" if args.quick else "loader.json"
    (RESULTS / name).write_text(json.dumps(doc, indent=2))
    print(f"wrote {RESULTS / name}")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
