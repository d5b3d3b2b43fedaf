"""Make a subtitle-alignment benchmark set with known truth.

    python benchmarks/align/generate.py SET_DIR [--items 40] [--seconds 90] [--engine auto]

Speech comes from espeak-ng when it is installed (random English sentences, several voices and
speeds), else from the synthetic speech-like bursts of :mod:`mmprep.testing.speech`. Each item is
a 16 kHz WAV with white or pink noise at one of ``--snrs`` and an SRT that is off by a known
transform: an offset uniform in +-``--max-offset`` s, a framerate ratio (half the items 1, the
rest one of the standard ratios), an ad break in some items (``--split-share``), and optional
human-like timing jitter (``--jitter-ms``, normal SD). ``--mismatch-share`` of the items get the
subtitles of another item (negative controls: they must be flagged, not aligned).

Truth: the start and end of each utterance in the WAV, in ms; an utterance starts at its first
sample above 1 % of its peak (quieter lead-in is cut away, so the truth is exact).
``SET_DIR/truth.json`` lists every item.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from mmprep.testing.media import srt_text, wav_bytes  # noqa: E402
from mmprep.testing.speech import add_noise, utterance  # noqa: E402

RATE = 16000
RATIOS = (25 / 23.976, 23.976 / 25, 24 / 23.976, 23.976 / 24, 25 / 24, 24 / 25)
WORDS = ("the a of to and in is it you that he was for on are with as I his they be at one have this from or "
         "had by word but what some we can out other were all there when up use your how said an each she which "
         "do their time if will way about many then them write would like so these her long make thing see him "
         "two has look more day could go come did number sound no most people my over know water than call first "
         "who may down side been now find any new work part take get place made live where after back little only "
         "round man year came show every good me give our under name very through just form sentence great think "
         "say help low line differ turn cause much mean before move right boy old too same tell does set three "
         "want air well also play small end put home read hand port large spell add even land here must big high "
         "such follow act why ask men change went light kind off need house picture try us again animal point "
         "mother world near build self earth father").split()
VOICES = ("en", "en-us", "en-gb-scotland", "en-029", "en-gb-x-rp", "en+f3", "en-us+m3", "en+f2")


def espeak_pool(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    import soundfile as sf
    import soxr

    pool = []
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "u.wav"
        for _ in range(n):
            text = " ".join(rng.choice(WORDS, size=int(rng.integers(3, 13))))
            cmd = ["espeak-ng", "-v", str(rng.choice(VOICES)), "-s", str(int(rng.integers(140, 200))),
                   "-p", str(int(rng.integers(30, 70))), "-w", str(wav), text]
            subprocess.run(cmd, check=True, capture_output=True)
            x, rate = sf.read(wav, dtype="float64")
            x = soxr.resample(x, rate, RATE) if rate != RATE else x
            pool.append(trim(x))
    return pool


def synthetic_pool(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    return [trim(utterance(rng, float(rng.uniform(0.8, 3.0)))) for _ in range(n)]


def trim(x: np.ndarray) -> np.ndarray:
    """Cut the utterance to its first and last sample above 1 % of its peak; peak 0.5."""
    a = np.flatnonzero(np.abs(x) > 0.01 * np.abs(x).max())
    y = x[a[0] : a[-1] + 1]
    return (0.5 * y / np.abs(y).max()).astype(np.float32)


def track(pool: list[np.ndarray], seconds: float, rng: np.random.Generator, lead: float):
    """Utterances from the pool with 0.3-2.0 s gaps; returns samples and truth cues (ms)."""
    n = int(seconds * RATE)
    out = np.zeros(n, np.float32)
    cues, pos = [], int(lead * RATE)
    while True:
        u = pool[int(rng.integers(len(pool)))] * float(rng.uniform(0.6, 1.0))
        if pos + u.size > n - RATE:
            break
        out[pos : pos + u.size] = u
        cues.append([pos * 1000 // RATE, (pos + u.size) * 1000 // RATE])
        pos += u.size + int(rng.uniform(0.3, 2.0) * RATE)
    return out, cues


def insert_ad(x: np.ndarray, cues: list[list[int]], rng: np.random.Generator, seconds: float):
    """An ad break (no speech) of ``seconds`` between two cues in the middle third; cues after it move."""
    k = int(rng.integers(len(cues) // 3, max(len(cues) // 3 + 1, 2 * len(cues) // 3)))
    cut_ms = (cues[k][1] + cues[k + 1][0]) // 2
    cut = cut_ms * RATE // 1000
    ad = np.zeros(int(seconds * RATE), np.float32)
    shift = ad.size * 1000 // RATE
    moved = [c if i <= k else [c[0] + shift, c[1] + shift] for i, c in enumerate(cues)]
    return np.concatenate([x[:cut], ad, x[cut:]]), moved, k + 1, shift


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--items", type=int, default=40)
    ap.add_argument("--seconds", type=float, default=90.0)
    ap.add_argument("--snrs", default="8,12,20", help="comma-separated SNRs in dB")
    ap.add_argument("--max-offset", type=float, default=10.0)
    ap.add_argument("--split-share", type=float, default=0.15)
    ap.add_argument("--mismatch-share", type=float, default=0.25)
    ap.add_argument("--jitter-ms", type=float, default=0.0)
    ap.add_argument("--engine", choices=("auto", "espeak", "synthetic"), default="auto")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    engine = args.engine
    if engine == "auto":
        engine = "espeak" if shutil.which("espeak-ng") else "synthetic"
    pool = espeak_pool(160, rng) if engine == "espeak" else synthetic_pool(160, rng)
    snrs = [float(s) for s in args.snrs.split(",")]
    items_dir = args.out / "items"
    items_dir.mkdir(parents=True, exist_ok=True)
    lead = args.max_offset + 1.0
    tracks = [track(pool, args.seconds, rng, lead) for _ in range(args.items)]
    items = []
    for i, (x, cues) in enumerate(tracks):
        name = f"item{i:03d}"
        snr, noise = snrs[i % len(snrs)], ("white", "pink")[(i // len(snrs)) % 2]
        mismatch = rng.random() < args.mismatch_share
        split = None
        if not mismatch and rng.random() < args.split_share and len(cues) > 6:
            x, cues, at, shift = insert_ad(x, cues, rng, float(rng.uniform(8, 30)))
            split = {"cue": at, "extra_ms": shift}
        offset = float(rng.uniform(-args.max_offset, args.max_offset))
        ratio = 1.0 if rng.random() < 0.5 else float(rng.choice(RATIOS))
        y = add_noise(x, snr, seed=args.seed * 1000 + i, kind=noise)
        src = tracks[(i + 1 + int(rng.integers(args.items - 1))) % args.items][1] if mismatch else cues
        subs = []
        for j, (a, b) in enumerate(src):
            extra = split["extra_ms"] if split and j >= split["cue"] else 0
            jit = rng.normal(0, args.jitter_ms, 2) if args.jitter_ms else (0.0, 0.0)
            sa = (a - extra - offset * 1000) / ratio + jit[0]
            sb = (b - extra - offset * 1000) / ratio + jit[1]
            subs.append((max(sa, 0) / 1000, max(sb, 0.001) / 1000, f"cue {j}"))
        (items_dir / f"{name}.wav").write_bytes(wav_bytes(y, RATE))
        (items_dir / f"{name}.srt").write_text(srt_text(subs), encoding="utf-8")
        items.append({"name": name, "wav": f"items/{name}.wav", "srt": f"items/{name}.srt", "snr_db": snr,
                      "noise": noise, "offset": offset, "ratio": ratio, "split": split, "mismatched": mismatch,
                      "truth": None if mismatch else cues, "seconds": round(y.size / RATE, 3)})
    meta = {"engine": engine, "items": items, "args": {k: str(v) for k, v in vars(args).items()}}
    (args.out / "truth.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    print(f"{len(items)} items ({sum(i['mismatched'] for i in items)} mismatched, "
          f"{sum(1 for i in items if i['split'])} with an ad break), speech from {engine} -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
