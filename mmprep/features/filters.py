"""Constant matrices: mel filterbank and DCT-II, built in numpy (float64, cast once) to match librosa.

``mel_filterbank`` reproduces ``librosa.filters.mel`` (Slaney or HTK mel scale, ``norm="slaney"`` or
none); ``dct_matrix`` reproduces ``scipy.fftpack.dct(type=2, norm="ortho")`` as a matrix.
"""

from __future__ import annotations

import functools

import numpy as np

_F_SP = 200.0 / 3  # Slaney: linear below 1 kHz at 66.67 Hz per mel
_MIN_LOG_HZ = 1000.0
_MIN_LOG_MEL = _MIN_LOG_HZ / _F_SP
_LOGSTEP = np.log(6.4) / 27.0


def hz_to_mel(hz: np.ndarray, *, htk: bool = False) -> np.ndarray:
    hz = np.asarray(hz, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + hz / 700.0)
    mel = hz / _F_SP
    log_part = _MIN_LOG_MEL + np.log(np.maximum(hz, 1e-10) / _MIN_LOG_HZ) / _LOGSTEP
    return np.where(hz >= _MIN_LOG_HZ, log_part, mel)


def mel_to_hz(mel: np.ndarray, *, htk: bool = False) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (mel / 2595.0) - 1.0)
    hz = _F_SP * mel
    return np.where(mel >= _MIN_LOG_MEL, _MIN_LOG_HZ * np.exp(_LOGSTEP * (mel - _MIN_LOG_MEL)), hz)


@functools.lru_cache(maxsize=64)
def mel_filterbank(*, rate: int, n_fft: int, n_mels: int = 80, fmin: float = 0.0, fmax: float | None = None,
                   htk: bool = False, norm: str | None = "slaney") -> np.ndarray:
    """Triangular mel filters, ``shape=(n_mels, n_fft // 2 + 1)``, float32; read-only (cached)."""
    fmax = rate / 2.0 if fmax is None else float(fmax)
    fft_freqs = np.fft.rfftfreq(n_fft, 1.0 / rate)  # bin k at k * rate / n_fft Hz (odd n_fft: not up to rate / 2)
    mel_f = mel_to_hz(np.linspace(hz_to_mel(fmin, htk=htk), hz_to_mel(fmax, htk=htk), n_mels + 2), htk=htk)
    fdiff = np.diff(mel_f)
    ramps = np.subtract.outer(mel_f, fft_freqs)
    lower = -ramps[:-2] / fdiff[:-1, None]
    upper = ramps[2:] / fdiff[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    if norm == "slaney":
        weights *= (2.0 / (mel_f[2 : n_mels + 2] - mel_f[:n_mels]))[:, None]
    out = weights.astype(np.float32)
    out.setflags(write=False)
    return out


@functools.lru_cache(maxsize=64)
def dct_matrix(n_out: int, n_in: int) -> np.ndarray:
    """Orthonormal DCT-II, ``shape=(n_out, n_in)``: ``dct_matrix(k, n) @ x == dct(x, norm="ortho")[:k]``."""
    n = np.arange(n_in, dtype=np.float64)
    k = np.arange(n_out, dtype=np.float64)[:, None]
    basis = np.cos(np.pi * k * (2.0 * n + 1.0) / (2.0 * n_in)) * np.sqrt(2.0 / n_in)
    basis[0] /= np.sqrt(2.0)
    out = basis.astype(np.float32)
    out.setflags(write=False)
    return out


def lifter_weights(n_mfcc: int, lifter: float) -> np.ndarray:
    """librosa's sinusoidal liftering, ``1 + (L/2) sin(pi (k+1) / L)``; ones when ``lifter == 0``."""
    if lifter <= 0:
        return np.ones(n_mfcc, dtype=np.float32)
    k = np.arange(1, n_mfcc + 1, dtype=np.float64)
    return (1.0 + (lifter / 2.0) * np.sin(np.pi * k / lifter)).astype(np.float32)
