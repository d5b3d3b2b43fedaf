"""Fusion demo: a 4-class set where every modality alone is ambiguous; fused beats each single one.

Class ``y = 2a + b``: the image shows bit ``a`` (where the bright square is), the audio bit ``b``
(low or high tone), the token ids ``a XOR b`` (see ``mmprep.testing.fusion``). One modality can at
best tell two of the four classes apart (50% accuracy); two or more decide the class.

Steps: write the original files (JPEG, WAV, token ids) and a manifest; compute MFCC once per WAV;
``mmprep build`` the shards; ``mmprep train train.yaml --ablate``; print fused vs single accuracy.

    python examples/fusion_demo/run_demo.py [--samples 400] [--epochs 10] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import yaml

from mmprep.codecs import encode_image
from mmprep.testing.fusion import fusion_sample, mfcc_of
from mmprep.testing.media import wav_bytes


def write_corpus(root: Path, n: int) -> Path:
    files = root / "files"
    files.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(n):
        s = fusion_sample(i, seed=1)
        key = str(s["key"])
        (files / f"{key}.jpg").write_bytes(encode_image(s["pixels"], "jpg"))
        (files / f"{key}.wav").write_bytes(wav_bytes(s["wave"]))
        np.save(files / f"{key}.mfcc.npy", mfcc_of(s["wave"], 16000), allow_pickle=False)
        np.save(files / f"{key}.tok.npy", s["tokens"], allow_pickle=False)
        rows.append({"key": key, "jpg": f"files/{key}.jpg", "mfcc.npy": f"files/{key}.mfcc.npy",
                     "tok.npy": f"files/{key}.tok.npy", "cls": str(s["label"])})
    manifest = root / "manifest.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return manifest


PIPELINE = {
    "name": "fusion-demo",
    "input": {"path_columns": ["jpg", "mfcc.npy", "tok.npy"]},
    "stages": [{"stage": "image.decode"}],
    "output": {"name": "demo", "max_samples": 100, "required": ["jpg", "mfcc.npy", "tok.npy", "cls"]},
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--samples", type=int, default=400)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--fusion", default="attention", choices=["concat", "weighted", "attention", "gated", "late"])
    ap.add_argument("--work", type=Path, default=Path("fusion_demo_work"))
    args = ap.parse_args()
    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    manifest = write_corpus(work, args.samples)
    (work / "pipeline.yaml").write_text(yaml.safe_dump(PIPELINE, sort_keys=False))
    mmprep = [sys.executable, "-m", "mmprep"]
    subprocess.run([*mmprep, "build", str(work / "pipeline.yaml"), "-i", str(manifest), "-o", str(work / "out"),
                    "--force"], check=True)
    train = {
        "data": {"source": str(work / "out"), "label": "cls", "val_fraction": 0.25, "batch_size": 32},
        "modalities": {"image": {"field": "jpg", "encoder": "cnn", "image_size": [32, 32]},
                       "audio": {"field": "mfcc.npy", "encoder": "conv1d"},
                       "text": {"field": "tok.npy", "encoder": "bag", "vocab_size": 128}},
        "model": {"fusion": args.fusion, "dim": 32, "modality_dropout": 0.1},
        "loss": {"matching": {"between": ["image", "audio"], "kind": "infonce", "weight": 0.05}},
        "train": {"epochs": args.epochs, "lr": 0.005, "out": str(work / "run"), "resume": False},
    }
    (work / "train.yaml").write_text(yaml.safe_dump(train, sort_keys=False))
    proc = subprocess.run([*mmprep, "train", str(work / "train.yaml"), "--ablate", "-q"], check=True,
                          capture_output=True, text=True)
    report = json.loads(proc.stdout)
    fused = report["fused"]["accuracy"]
    print(f"{'model':<28}{'accuracy':>10}{'macro-F1':>10}")
    print(f"{'fused (' + args.fusion + ')':<28}{fused:>10.3f}{report['fused']['macro_f1']:>10.3f}")
    for name, r in report["single"].items():
        print(f"{name + ' only':<28}{r['accuracy']:>10.3f}{r['macro_f1']:>10.3f}")
    best_single = max(r["accuracy"] for r in report["single"].values())
    print(f"fused - best single = {fused - best_single:+.3f}  (ablation: {report['ablation']})")
    if fused <= best_single:
        raise SystemExit("fused accuracy is not above every single modality")


if __name__ == "__main__":
    main()
