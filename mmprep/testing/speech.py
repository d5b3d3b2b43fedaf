"""Speech-like test signals with known timing, made in code (no TTS, no downloads).

An utterance is a run of syllables: a voiced harmonic source (f0 90-230 Hz, gliding) shaped by
two or three formant resonances, sometimes led by a fricative noise burst, with an 8 ms attack.
Truth cue times are the first and last non-zero sample of each utterance, in integer ms.
"""

from __future__ import annotations

import numpy as np

RATE = 16000


def syllable(rng: np.random.Generator, rate: int = RATE) -> np.ndarray:
    n = int(rng.uniform(0.11, 0.26) * rate)
    t = np.arange(n) / rate
    f0 = rng.uniform(90, 230) * (1 + rng.uniform(-0.15, 0.15) * t / t[-1])
    phase = 2 * np.pi * np.cumsum(f0) / rate
    formants = [(rng.uniform(300, 900), 90), (rng.uniform(900, 2300), 120), (rng.uniform(2300, 3300), 180)]
    out = np.zeros(n)
    for k in range(1, int(3800 / f0.max())):
        fk = k * f0.mean()
        gain = sum(np.exp(-0.5 * ((fk - f) / bw) ** 2) for f, bw in formants) + 0.02
        out += gain * np.sin(k * phase)
    env = np.minimum(1.0, np.minimum(t / 0.008, (t[-1] - t) / 0.03))
    voiced = out * env
    if rng.random() < 0.3:  # a fricative before the vowel
        m = int(0.04 * rate)
        burst = rng.standard_normal(m) * np.hanning(2 * m)[m:][::-1] ** 0.5
        from mmprep.align.speech import band

        burst = band(burst, 2000, 6000, rate)
        burst *= 0.4 * np.abs(voiced).max() / (np.abs(burst).max() + 1e-9)
        voiced = np.concatenate([burst, voiced])
    return voiced / (np.abs(voiced).max() + 1e-9)


def utterance(rng: np.random.Generator, seconds: float, rate: int = RATE) -> np.ndarray:
    """Syllables and short word gaps (20-160 ms) filling about ``seconds``."""
    parts: list[np.ndarray] = []
    total = 0
    while total < seconds * rate or not parts:
        if parts:
            gap = np.zeros(int(rng.choice([rng.uniform(0.02, 0.06), rng.uniform(0.08, 0.16)]) * rate))
            parts.append(gap)
            total += gap.size
        s = syllable(rng, rate) * rng.uniform(0.5, 1.0)
        parts.append(s)
        total += s.size
    return np.concatenate(parts)


def speech_track(seconds: float, *, seed: int = 0, rate: int = RATE, lead: float = 1.0,
                 gaps: tuple[float, float] = (0.4, 2.0), lengths: tuple[float, float] = (0.8, 3.0),
                 ) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """A clean speech-like track of ``seconds`` and its utterances as ``(start_ms, end_ms)``.

    Samples ``shape=(round(seconds*rate),)`` float32, peak 0.5, silence between utterances.
    """
    rng = np.random.default_rng(seed)
    n = int(round(seconds * rate))
    out = np.zeros(n, np.float32)
    cues: list[tuple[int, int]] = []
    pos = int(lead * rate)
    while True:
        u = utterance(rng, rng.uniform(*lengths), rate)
        if pos + u.size > n - rate // 2:
            break
        out[pos : pos + u.size] = 0.5 * u
        cues.append((pos * 1000 // rate, (pos + u.size) * 1000 // rate))
        pos += u.size + int(rng.uniform(*gaps) * rate)
    return out, cues


def add_noise(x: np.ndarray, snr_db: float, *, seed: int = 0, kind: str = "white") -> np.ndarray:
    """``x`` plus noise at ``snr_db`` (speech power over the active samples / noise power).

    ``kind``: ``white`` or ``pink`` (1/f power, made by shaping white noise in the FFT domain).
    """
    rng = np.random.default_rng(seed + 7919)
    noise = rng.standard_normal(x.size)
    if kind == "pink":
        spec = np.fft.rfft(noise)
        f = np.arange(spec.size)
        spec[1:] /= np.sqrt(f[1:])
        noise = np.fft.irfft(spec, x.size)
    active = x[np.abs(x) > 1e-4]
    p_sig = float(np.mean(active.astype(np.float64) ** 2)) if active.size else 1e-4
    noise *= np.sqrt(p_sig / 10 ** (snr_db / 10) / np.mean(noise**2))
    y = x + noise
    peak = np.abs(y).max()
    return (y / peak * 0.9 if peak > 0.9 else y).astype(np.float32)


def beeps(times_s: list[float], seconds: float, *, rate: int = RATE, freq: float = 1000.0,
          length: float = 0.08) -> np.ndarray:
    """Short tone bursts starting exactly at ``times_s`` (first non-zero sample), float32 peak 0.5."""
    out = np.zeros(int(round(seconds * rate)), np.float32)
    m = int(length * rate)
    t = np.arange(m) / rate
    burst = 0.5 * np.sin(2 * np.pi * freq * t) * np.minimum(1, (m - np.arange(m)) / (0.01 * rate))
    for s in times_s:
        a = int(round(s * rate))
        if 0 <= a < out.size:
            out[a : a + m] = burst[: out.size - a]
    return out


def flash_beep_mp4(*, seconds: float = 8.0, fps: int = 25, delay: float = 0.0, flashes: int = 6, seed: int = 0,
                   width: int = 64, height: int = 48, rate: int = 16000, audio: bool = True,
                   noise_db: float | None = -30.0) -> tuple[bytes, list[float]]:
    """An mp4 (H.264 or MPEG-4 video, AAC audio) with white flash frames and a beep ``delay`` s after
    each flash (positive = audio late). Returns the bytes and the flash times in seconds."""
    from mmprep.testing.media import encode_mp4

    rng = np.random.default_rng(seed)
    n = int(round(seconds * fps))
    frames = sorted(rng.choice(np.arange(fps // 2, n - fps), size=flashes, replace=False).tolist())
    frames = [f for i, f in enumerate(frames) if i == 0 or f - frames[i - 1] > fps // 2]
    times = [f / fps for f in frames]
    track = beeps([t + delay for t in times], seconds, rate=rate)
    if noise_db is not None:
        track = track + (10 ** (noise_db / 20) * rng.standard_normal(track.size)).astype(np.float32)
    def frame(i: int) -> np.ndarray:
        img = np.full((height, width, 3), 40, np.uint8)
        if i in frames:
            img[:] = 255
        x = (i * 2) % width
        img[:, x : x + 3] = (90, 60, 40)
        return img

    video = encode_mp4((frame(i) for i in range(n)), fps=fps, audio=track if audio else None, rate=rate)
    return video, times


def shifted_cues(truth: list[tuple[int, int]], *, offset_ms: int = 0,
                 ratio: float = 1.0) -> list[tuple[float, float, str]]:
    """Subtitle cues (seconds) that a player would need ``t_media = ratio * t_sub + offset`` to line up."""
    return [((a - offset_ms) / ratio / 1000, (b - offset_ms) / ratio / 1000, f"line {i}")
            for i, (a, b) in enumerate(truth)]


def alignment_corpus(root, *, seconds: float = 40.0, snr_db: float = 12.0) -> dict[str, dict]:
    """A folder corpus for alignment tests; returns ``{key: truth}``.

    ``shift``: wav + srt off by -2.5 s (late); ``ratio``: wav + vtt at 25/23.976; ``mismatch``: srt of another
    track; ``garbage``: unparseable srt; ``nosub``: empty srt; ``silence``: srt over a silent wav;
    ``subonly``: srt without media; ``flash``: a flash-and-beep mp4 with audio 120 ms late.
    """
    from pathlib import Path

    from mmprep.testing.media import srt_text, wav_bytes, write

    root = Path(root)
    truth: dict[str, dict] = {}
    x, cues = speech_track(seconds, seed=11)
    y = add_noise(x, snr_db, seed=11)
    write(root / "shift.wav", wav_bytes(y))
    write(root / "shift.srt", srt_text(shifted_cues(cues, offset_ms=-2500)))
    truth["shift"] = {"offset": -2.5, "ratio": 1.0, "cues": cues}
    write(root / "ratio.wav", wav_bytes(y))
    vtt = srt_text(shifted_cues(cues, offset_ms=-1200, ratio=25 / 23.976))
    write(root / "ratio.vtt", "WEBVTT\n\n" + vtt.replace(",", "."))
    truth["ratio"] = {"offset": -1.2, "ratio": 25 / 23.976, "cues": cues}
    other = speech_track(seconds, seed=99)[1]
    write(root / "mismatch.wav", wav_bytes(y))
    write(root / "mismatch.srt", srt_text(shifted_cues(other)))
    write(root / "garbage.wav", wav_bytes(y))
    write(root / "garbage.srt", "this is not\na subtitle file\n")
    write(root / "silence.wav", wav_bytes(np.zeros(int(seconds * RATE), np.float32)))
    write(root / "silence.srt", srt_text(shifted_cues(cues)))
    write(root / "subonly.srt", srt_text(shifted_cues(cues)))
    data, _ = flash_beep_mp4(delay=0.12, seed=2, flashes=6)
    write(root / "flash.mp4", data)
    truth["flash"] = {"av_offset": 0.12}
    return truth


def with_ad_break(x: np.ndarray, cues: list[tuple[int, int]], *, after_cue: int, ad_seconds: float,
                  seed: int = 0, rate: int = RATE) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Insert ``ad_seconds`` of quiet noise (no speech) in the silence after cue ``after_cue``.

    Returns the new track and the cues in its time (those after the break move by the ad length)."""
    rng = np.random.default_rng(seed)
    cut_ms = (cues[after_cue][1] + cues[after_cue + 1][0]) // 2
    cut = cut_ms * rate // 1000
    ad = (0.003 * rng.standard_normal(int(ad_seconds * rate))).astype(np.float32)
    shift = ad.size * 1000 // rate
    moved = [(a, b) if i <= after_cue else (a + shift, b + shift) for i, (a, b) in enumerate(cues)]
    return np.concatenate([x[:cut], ad, x[cut:]]), moved
