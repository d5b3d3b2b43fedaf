"""Audio made in code for tests and benchmarks: chirps, noise, speech-like bursts, noisy tones, corpora.

All signals are float32 mono in [-1, 1] at ``rate`` Hz, deterministic for a given ``seed``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mmprep.testing.media import tone, wav_bytes, write

__all__ = ["burst_signal", "chirp", "encoded_multichannel", "noise", "snr_db", "speech_corpus", "speech_like", "tone",
           "tone_bursts"]


def chirp(seconds: float = 1.0, *, f0: float = 100.0, f1: float = 4000.0, rate: int = 16000,
          amplitude: float = 0.5) -> np.ndarray:
    """Linear sweep from ``f0`` to ``f1`` Hz."""
    t = np.arange(int(round(seconds * rate))) / rate
    phase = 2 * np.pi * (f0 * t + (f1 - f0) * t * t / (2 * seconds))
    return (amplitude * np.sin(phase)).astype(np.float32)


def noise(seconds: float = 1.0, *, rate: int = 16000, amplitude: float = 0.1, seed: int = 0) -> np.ndarray:
    """White Gaussian noise with RMS ``amplitude``."""
    rng = np.random.default_rng(seed)
    return (amplitude * rng.standard_normal(int(round(seconds * rate)))).astype(np.float32)


def speech_like(seconds: float, *, rate: int = 16000, f0: float = 140.0, seed: int = 0) -> np.ndarray:
    """A voiced, speech-like sound: harmonics of a wobbling ``f0`` with 1/k roll-off, formant-ish
    emphasis around 500/1500/2500 Hz and a 4 Hz syllable envelope that never reaches zero; peak 0.5."""
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    t = np.arange(n) / rate
    pitch = f0 * (1 + 0.05 * np.sin(2 * np.pi * 3 * t + rng.uniform(0, 6)))
    phase = 2 * np.pi * np.cumsum(pitch) / rate
    y = np.zeros(n)
    for k in range(1, int(3800 // f0)):
        fk = k * f0
        gain = sum(np.exp(-((fk - fm) / 250) ** 2) for fm in (500, 1500, 2500)) + 0.1
        y += gain / k * np.sin(k * phase)
    env = 0.6 + 0.4 * np.sin(2 * np.pi * 4 * t + rng.uniform(0, 6))
    y *= env
    peak = np.max(np.abs(y)) if n else 1.0
    return (0.5 * y / (peak or 1.0)).astype(np.float32)


def burst_signal(bursts: list[tuple[float, float]], seconds: float, *, rate: int = 16000, noise_rms: float = 0.002,
                 seed: int = 0) -> np.ndarray:
    """Silence with faint noise, and :func:`speech_like` sound exactly on ``[start, end)`` seconds."""
    y = noise(seconds, rate=rate, amplitude=noise_rms, seed=seed)
    for i, (a, b) in enumerate(bursts):
        s, e = int(round(a * rate)), int(round(b * rate))
        y[s:e] += speech_like((e - s) / rate, rate=rate, seed=seed + i + 1)[: e - s]
    return y


def tone_bursts(seconds: float = 3.0, *, freq: float = 440.0, rate: int = 16000, amplitude: float = 0.5,
                on: float = 0.4, off: float = 0.2) -> np.ndarray:
    """A tone switched on for ``on`` s and off for ``off`` s, with 5 ms fades: the clean reference for denoising."""
    y = tone(seconds, freq=freq, rate=rate, amplitude=amplitude)
    t = np.arange(len(y)) / rate
    gate = ((t % (on + off)) < on).astype(np.float64)
    fade = max(1, int(0.005 * rate))
    gate = np.convolve(gate, np.ones(fade) / fade, mode="same")
    return (y * gate).astype(np.float32)


def snr_db(clean: np.ndarray, test: np.ndarray) -> float:
    """``10 log10(sum clean^2 / sum (test - clean)^2)`` over the common length."""
    n = min(len(clean), len(test))
    err = np.sum((test[:n].astype(np.float64) - clean[:n]) ** 2)
    return float(10 * np.log10(np.sum(clean[:n].astype(np.float64) ** 2) / max(err, 1e-20)))


def speech_corpus(root: Path, *, total_seconds: float = 1200.0, min_seconds: float = 2.0, max_seconds: float = 60.0,
                  rate: int = 16000, seed: int = 0) -> list[Path]:
    """WAV files of speech-like bursts (lengths uniform in ``[min_seconds, max_seconds]``) totalling at least
    ``total_seconds``; returns their paths."""
    rng = np.random.default_rng(seed)
    paths: list[Path] = []
    done = 0.0
    while done < total_seconds:
        secs = float(rng.uniform(min_seconds, max_seconds))
        bursts, t = [], float(rng.uniform(0.1, 0.5))
        while t < secs - 0.3:
            length = float(rng.uniform(0.3, 2.0))
            bursts.append((t, min(t + length, secs)))
            t += length + float(rng.uniform(0.1, 0.8))
        y = burst_signal(bursts, secs, rate=rate, seed=int(rng.integers(1 << 30)))
        paths.append(write(root / f"clip{len(paths):04d}.wav", wav_bytes(y, rate)))
        done += secs
    return paths


_PYAV_FORMATS = {"mp3": ("mp3", "libmp3lame", "fltp"), "m4a": ("mp4", "aac", "fltp"),
                 "opus": ("ogg", "libopus", "flt")}


def encoded_bytes(samples: np.ndarray, rate: int = 16000, *, ext: str = "mp3") -> bytes:
    """Mono ``samples`` encoded with PyAV as ``mp3`` (LAME), ``m4a`` (AAC) or ``opus`` (Ogg Opus; rate 48 kHz)."""
    import io

    import av

    fmt, codec, sample_fmt = _PYAV_FORMATS[ext]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = "mono"
        step = 960 if ext == "opus" else 1152
        x = samples.astype(np.float32)
        for start in range(0, len(x), step):
            chunk = x[start : start + step]
            if ext == "opus" and len(chunk) < step:
                chunk = np.pad(chunk, (0, step - len(chunk)))
            frame = av.AudioFrame.from_ndarray(chunk[None, :], format=sample_fmt, layout="mono")
            frame.sample_rate = rate
            frame.pts = start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()




def encoded_multichannel(samples: np.ndarray, rate: int = 48000, *, ext: str = "m4a") -> bytes:
    """``shape=(channels, n)`` samples (1-8 channels, FFmpeg's order for that count: 6 = 5.1, 8 = 7.1) encoded
    with PyAV as ``m4a`` (AAC) or ``opus`` (Ogg Opus; 8, 12, 16, 24 or 48 kHz)."""
    import io

    import av

    layout = {1: "mono", 2: "stereo", 3: "3.0", 4: "quad", 5: "5.0", 6: "5.1", 7: "6.1", 8: "7.1"}[samples.shape[0]]
    fmt, codec, _ = _PYAV_FORMATS[ext]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format=fmt) as out:
        stream = out.add_stream(codec, rate=rate)
        stream.layout = layout
        step = rate // 50
        x = samples.astype(np.float32)
        for start in range(0, x.shape[1], step):
            chunk = x[:, start : start + step]
            if ext == "opus" and chunk.shape[1] < step:
                chunk = np.pad(chunk, ((0, 0), (0, step - chunk.shape[1])))
            # interleaved: PyAV mishandles planar frames of 8 channels
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(chunk.T).reshape(1, -1), format="flt",
                                               layout=layout)
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    return buf.getvalue()
