"""Whole corpora for tests, benchmarks and the demo: good samples plus, on request, bad ones."""

from __future__ import annotations

from pathlib import Path

from mmprep.testing.media import image_bytes, mp4_bytes, srt_text, tone, wav_bytes, write

CAPTIONS = ["a red square on a gradient", "一只猫坐在窗台上", "waves at sunset", "城市夜景 and neon lights"]


def multimodal_corpus(root: Path, n: int = 8, *, video_every: int = 4) -> list[str]:
    """``n`` samples under ``root/part{0,1}/``: image + caption + audio + subtitles, some with a video.

    Returns the raw stems (the keys before sanitizing).
    """
    stems = []
    for i in range(n):
        stem = f"part{i % 2}/item{i:04d}"
        base = root / stem
        write(base.with_suffix(".jpg"), image_bytes(64 + 8 * (i % 3), 48, seed=i))
        write(base.with_suffix(".txt"), CAPTIONS[i % len(CAPTIONS)] + f" #{i}")
        write(base.with_suffix(".wav"), wav_bytes(tone(0.5 + 0.1 * (i % 3), freq=220 + 20 * i)))
        write(base.with_suffix(".srt"), srt_text([(0.0, 0.3, f"line {i}"), (0.3, 0.5, "second cue")]))
        if video_every and i % video_every == 0:
            write(base.with_suffix(".mp4"), mp4_bytes(seconds=0.5, fps=10))
        stems.append(stem)
    return stems


def add_bad_samples(root: Path) -> dict[str, str]:
    """Bad inputs next to the good ones; returns raw stem -> the reason code the build must give."""
    bad = {
        "bad/truncated": ("jpg", image_bytes(64, 48)[:200], "image.corrupt"),
        "bad/notanimage": ("png", b"this is not a png at all", "image.corrupt"),
        "bad/empty": ("jpg", b"", "input.empty"),
        "bad/badaudio": ("wav", b"RIFF\x00\x00\x00\x00WAVEjunk", "audio.corrupt"),
        "bad/badvideo": ("mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64, "video.corrupt"),
    }
    for stem, (ext, data, _) in bad.items():
        write(root / f"{stem}.{ext}", data)
        write(root / f"{stem}.txt", "caption for a broken file")
    return {stem: reason for stem, (_, _, reason) in bad.items()}
