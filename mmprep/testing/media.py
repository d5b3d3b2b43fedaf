"""Small, deterministic media files made in code."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import numpy as np


def image_bytes(width: int = 64, height: int = 48, *, ext: str = "jpg", seed: int = 0) -> bytes:
    """A gradient with a coloured square whose place depends on ``seed``; encoded as ``ext``."""
    import cv2

    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([x * 255 // max(width - 1, 1), y * 255 // max(height - 1, 1),
                    np.full_like(x, (seed * 37) % 256)], axis=-1).astype(np.uint8)
    s = max(4, min(width, height) // 4)
    x0, y0 = int(rng.integers(0, width - s)), int(rng.integers(0, height - s))
    img[y0:y0 + s, x0:x0 + s] = rng.integers(0, 256, 3, dtype=np.uint8)
    ok, buf = cv2.imencode("." + ext, cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    assert ok
    return buf.tobytes()


def tone(seconds: float = 1.0, *, freq: float = 440.0, rate: int = 16000, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def wav_bytes(samples: np.ndarray, rate: int = 16000, *, fmt: str = "WAV") -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, samples.T if samples.ndim == 2 else samples, rate, format=fmt, subtype="PCM_16")
    return buf.getvalue()


def srt_text(cues: list[tuple[float, float, str]]) -> str:
    """SRT for ``(start s, end s, text)`` cues. SRT has no negative times: one is an error here (it was
    written as ``-1:59:58,000``, which readers take as two hours)."""
    def ts(sec: float) -> str:
        ms = int(round(sec * 1000))
        if ms < 0:
            raise ValueError(f"SRT cannot hold a negative time ({sec} s)")
        return f"{ms // 3600000:02d}:{ms // 60000 % 60:02d}:{ms // 1000 % 60:02d},{ms % 1000:03d}"

    return "".join(f"{i}\n{ts(a)} --> {ts(b)}\n{text}\n\n" for i, (a, b, text) in enumerate(cues, 1))


def encode_mp4(frames: Iterable[np.ndarray], *, fps: int, audio: np.ndarray | None = None,
               rate: int = 16000) -> bytes:
    """RGB uint8 frames ``shape=(h, w, 3)`` (frame i at i / fps s) and an optional mono float32 track at
    ``rate`` Hz -> an mp4 with H.264 (MPEG-4 where libx264 is missing) video and AAC audio, via PyAV."""
    return encode_video(frames, fps=fps, audio=audio, rate=rate, container="mp4")


def encode_video(frames: Iterable[np.ndarray], *, fps: int, audio: np.ndarray | None = None, rate: int = 16000,
                 container: str = "mpegts", start: float = 0.0, audio_start: float | None = None) -> bytes:
    """RGB uint8 frames and an optional mono float32 track (as :func:`encode_mp4`) in any container PyAV
    writes H.264 + AAC to (``mpegts``, ``matroska``, ``mp4``), with the first frame at ``start`` seconds
    and the audio's first sample at ``audio_start`` (default ``start``): the timestamps a broadcast
    capture or a cut that kept its timestamps has."""
    import av

    audio_start = start if audio_start is None else audio_start
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=container) as out:
        vs = out.add_stream("libx264" if "libx264" in av.codecs_available else "mpeg4", rate=fps)
        vs.pix_fmt = "yuv420p"
        a_stream = None
        if audio is not None:
            a_stream = out.add_stream("aac", rate=rate)
            a_stream.layout = "mono"
        for i, img in enumerate(frames):
            if i == 0:
                vs.height, vs.width = img.shape[:2]
            frame = av.VideoFrame.from_ndarray(img, format="rgb24")
            frame.pts = i + int(round(start * fps))
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
        if a_stream is not None:
            first = int(round(audio_start * rate))
            for i in range(0, len(audio), 1024):
                frame = av.AudioFrame.from_ndarray(audio[None, i : i + 1024], format="fltp", layout="mono")
                frame.sample_rate, frame.pts = rate, first + i
                for packet in a_stream.encode(frame):
                    out.mux(packet)
            for packet in a_stream.encode():
                out.mux(packet)
    return buf.getvalue()


def mp4_bytes(*, seconds: float = 1.0, fps: int = 10, width: int = 64, height: int = 48, audio: bool = True,
              rate: int = 16000, flash_frames: tuple[int, ...] = ()) -> bytes:
    """A small mp4: a moving bar, white frames at ``flash_frames``, a 440 Hz tone (see :func:`encode_mp4`)."""

    def frame(i: int) -> np.ndarray:
        img = np.zeros((height, width, 3), np.uint8)
        if i in flash_frames:
            img[:] = 255
        else:
            x = (i * 4) % width
            img[:, x : x + 4] = (255, 128, 0)
        return img

    track = tone(seconds, rate=rate, amplitude=0.3) if audio else None
    return encode_mp4((frame(i) for i in range(int(round(seconds * fps)))), fps=fps, audio=track, rate=rate)


def write(path: Path, data: bytes | str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(data, str):
        path.write_text(data, encoding="utf-8")
    else:
        path.write_bytes(data)
    return path
