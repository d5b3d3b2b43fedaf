"""Batched features in plain torch: spectrogram, log-mel, MFCC, deltas, zero-crossing rate, envelope.

Every function takes a zero-padded batch ``shape=(batch, max_len)`` (float32, any device) and the
true ``lengths`` in samples ``shape=(batch,)``, and returns ``(features, frames)``: features
``shape=(batch, channels, max_frames)`` and each clip's valid frame count ``frames`` (int64,
``FrameParams.n_frames(length)``). Frames past a clip's count are padding; slice them off with
``features[b, :, :frames[b]]``. Because framing pads with zeros (``pad_mode="constant"``, as librosa
>= 0.10), the valid frames of a clip are the same whether it is computed alone or in a padded batch.

Defaults follow librosa (periodic Hann window, Slaney mel scale and norm, ``power_to_db`` with
``ref=1, amin=1e-10, top_db=80`` taken per clip, orthonormal DCT-II) except ``n_fft=400, hop=160``
(25 ms / 10 ms at 16 kHz), the usual speech framing.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from mmprep.features.filters import dct_matrix, lifter_weights, mel_filterbank
from mmprep.features.frames import FrameParams


def _as_tensor(batch: Any, lengths: Any):
    import torch

    x = batch if isinstance(batch, torch.Tensor) else torch.as_tensor(np.asarray(batch, dtype=np.float32))
    if x.ndim == 1:
        x = x[None]
    x = x.float()
    if lengths is None:
        lens = torch.full((x.shape[0],), x.shape[-1], dtype=torch.int64, device=x.device)
    else:
        lens = torch.as_tensor(lengths, dtype=torch.int64, device=x.device).reshape(-1)
    return x, lens


def _frames(fp: FrameParams, lens) -> Any:
    import torch

    return torch.tensor([fp.n_frames(int(n)) for n in lens.tolist()], dtype=torch.int64, device=lens.device)


def _valid_mask(frames, t: int):
    """``shape=(batch, 1, t)`` True on each clip's valid frames."""
    import torch

    return (torch.arange(t, device=frames.device)[None, :] < frames[:, None])[:, None, :]


def stft_power(batch: Any, lengths: Any = None, *, rate: int, n_fft: int = 400, hop: int = 160,
               win_length: int | None = None, center: bool = True, power: float = 2.0):
    """``|STFT|**power``, ``shape=(batch, n_fft // 2 + 1, frames)``; frequency bin ``k`` is ``k * rate / n_fft`` Hz."""
    import torch

    fp = FrameParams(rate=rate, n_fft=n_fft, hop=hop, win_length=win_length, center=center)
    x, lens = _as_tensor(batch, lengths)
    if x.shape[-1] < n_fft and not center:
        x = torch.nn.functional.pad(x, (0, n_fft - x.shape[-1]))
    window = torch.hann_window(fp.win, periodic=True, device=x.device, dtype=x.dtype)
    spec = torch.stft(x, n_fft=n_fft, hop_length=hop, win_length=fp.win, window=window, center=center,
                      pad_mode="constant", return_complex=True)
    if power == 2.0:
        out = spec.real.square().add_(spec.imag.square())  # faster on CPU than view_as_real(...).sum(-1)
    elif power == 1.0:
        out = spec.abs()
    else:
        out = spec.abs().pow(power)
    frames = _frames(fp, lens)
    return out[..., : int(frames.max()) if len(frames) else 0], frames


def power_to_db(power: Any, frames: Any, *, ref: float = 1.0, amin: float = 1e-10, top_db: float | None = 80.0):
    """``10 log10(max(amin, S) / max(amin, ref))``, floored at each clip's own maximum minus ``top_db``."""
    import torch

    db = torch.clamp(power, min=amin).log10_().mul_(10.0)
    if ref != 1.0:
        db.sub_(10.0 * math.log10(max(amin, ref)))
    if top_db is not None and db.shape[-1] > 0:
        if bool((frames == db.shape[-1]).all()):  # no padded frames: plain max
            peak = db.amax(dim=(-2, -1), keepdim=True)
        else:
            valid = _valid_mask(frames, db.shape[-1])
            peak = torch.where(valid, db, torch.full_like(db, -torch.inf)).amax(dim=(-2, -1), keepdim=True)
        db = torch.maximum(db, peak - top_db)
    return db


def spectrogram(batch: Any, lengths: Any = None, *, rate: int, n_fft: int = 400, hop: int = 160,
                win_length: int | None = None, center: bool = True, power: float = 2.0, db: bool = False,
                top_db: float | None = 80.0):
    """Power (or magnitude, ``power=1``) spectrogram, ``shape=(batch, n_fft // 2 + 1, frames)``; dB if ``db``."""
    spec, frames = stft_power(batch, lengths, rate=rate, n_fft=n_fft, hop=hop, win_length=win_length,
                              center=center, power=power)
    if db:
        spec = power_to_db(spec, frames, top_db=top_db) if power == 2.0 else power_to_db(spec.square(), frames,
                                                                                          top_db=top_db)
    return spec, frames


def _power_chunks(x, fp: FrameParams, t_max: int, chunk: int, power: float):
    """Yield ``(t0, t1, |STFT|**power of frames t0..t1)``, ``shape=(batch, t1 - t0, freq)``.

    The same frames as one STFT over the whole clip, a block at a time, so that the complex
    intermediates stay in CPU cache (measured ~1.7x faster on 2 busy cores).
    """
    import torch

    half = fp.n_fft // 2 if fp.center else 0
    need = (t_max - 1) * fp.hop + fp.n_fft
    xp = torch.nn.functional.pad(x, (half, max(0, need - x.shape[-1] - half)))
    window = torch.hann_window(fp.win, periodic=True, device=x.device, dtype=x.dtype)
    for t0 in range(0, t_max, chunk):
        t1 = min(t_max, t0 + chunk)
        seg = xp[:, t0 * fp.hop : (t1 - 1) * fp.hop + fp.n_fft]
        spec = torch.stft(seg, n_fft=fp.n_fft, hop_length=fp.hop, win_length=fp.win, window=window, center=False,
                          return_complex=True).transpose(-1, -2)  # (batch, frames, freq): contiguous in memory
        if power == 2.0:
            yield t0, t1, spec.real.square().add_(spec.imag.square())
        else:
            yield t0, t1, spec.abs().pow(power)


def melspectrogram(batch: Any, lengths: Any = None, *, rate: int, n_fft: int = 400, hop: int = 160,
                   win_length: int | None = None, center: bool = True, n_mels: int = 80, fmin: float = 0.0,
                   fmax: float | None = None, htk: bool = False, norm: str | None = "slaney", power: float = 2.0,
                   chunk_frames: int | None = None):
    """Mel power spectrogram (librosa ``melspectrogram``), ``shape=(batch, n_mels, frames)``.

    On CPU the STFT runs in blocks of ``chunk_frames`` frames per clip (default ``max(16, 512 // batch)``);
    on CUDA in one piece. Blocking changes no value: frames are independent given the padded signal.
    """
    import torch

    fp = FrameParams(rate=rate, n_fft=n_fft, hop=hop, win_length=win_length, center=center)
    x, lens = _as_tensor(batch, lengths)
    frames = _frames(fp, lens)
    t_max = int(frames.max()) if len(frames) else 0
    fb = torch.from_numpy(mel_filterbank(rate=rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk,
                                         norm=norm).copy()).to(x.device)
    fb_t = fb.T.contiguous()
    out = torch.empty(x.shape[0], t_max, n_mels, device=x.device, dtype=x.dtype)
    if chunk_frames is None:
        chunk_frames = t_max if x.is_cuda else max(16, 512 // max(1, x.shape[0]))
    for t0, t1, pw in _power_chunks(x, fp, t_max, max(1, chunk_frames), power):
        if x.shape[0] == 1:
            torch.matmul(pw, fb_t, out=out[:, t0:t1])  # contiguous slice: written in place
        else:
            out[:, t0:t1] = torch.matmul(pw, fb_t)
    return out.transpose(1, 2), frames  # a (batch, n_mels, frames) view


def logmel(batch: Any, lengths: Any = None, *, rate: int, n_fft: int = 400, hop: int = 160,
           win_length: int | None = None, center: bool = True, n_mels: int = 80, fmin: float = 0.0,
           fmax: float | None = None, htk: bool = False, norm: str | None = "slaney", top_db: float | None = 80.0,
           amin: float = 1e-10):
    """Log-mel in dB: librosa ``power_to_db(melspectrogram(...), top_db=top_db)``, ``shape=(batch, n_mels, frames)``."""
    mel, frames = melspectrogram(batch, lengths, rate=rate, n_fft=n_fft, hop=hop, win_length=win_length,
                                 center=center, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm)
    return power_to_db(mel, frames, amin=amin, top_db=top_db), frames


def mfcc(batch: Any, lengths: Any = None, *, rate: int, n_mfcc: int = 13, lifter: float = 0.0, n_fft: int = 400,
         hop: int = 160, win_length: int | None = None, center: bool = True, n_mels: int = 80, fmin: float = 0.0,
         fmax: float | None = None, htk: bool = False, norm: str | None = "slaney", top_db: float | None = 80.0):
    """MFCC as librosa computes them (DCT-II ortho of the dB log-mel), ``shape=(batch, n_mfcc, frames)``."""
    import torch

    lm, frames = logmel(batch, lengths, rate=rate, n_fft=n_fft, hop=hop, win_length=win_length, center=center,
                        n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm, top_db=top_db)
    dct = torch.from_numpy(dct_matrix(n_mfcc, n_mels).copy()).to(lm.device)
    out = torch.matmul(dct, lm)
    if lifter > 0:
        out = out * torch.from_numpy(lifter_weights(n_mfcc, lifter)).to(lm.device)[:, None]
    return out, frames


def deltas(features: Any, frames: Any, *, width: int = 9, order: int = 1):
    """Regression deltas over time, ``shape`` as ``features``; edges repeat each clip's own first/last frame.

    Order 1 equals ``librosa.feature.delta(width=width, mode="nearest")``; order 2 applies it twice
    (the HTK/Kaldi delta-delta), which differs from librosa's order-2 Savitzky-Golay at the edges.
    """
    import torch

    if width < 3 or width % 2 == 0:
        raise ValueError(f"width must be odd and >= 3, got {width}")
    x = features
    half = width // 2
    denom = 2.0 * sum(n * n for n in range(1, half + 1))
    t = torch.arange(x.shape[-1], device=x.device)
    last = (frames.to(x.device) - 1).clamp(min=0)[:, None]
    for _ in range(order):
        acc = torch.zeros_like(x)
        for n in range(1, half + 1):
            ahead = torch.minimum((t + n)[None, :].expand(x.shape[0], -1), last)
            behind = torch.minimum((t - n).clamp(min=0)[None, :].expand(x.shape[0], -1), last)
            idx_a = ahead[:, None, :].expand_as(x)
            idx_b = behind[:, None, :].expand_as(x)
            acc = acc + n * (torch.gather(x, -1, idx_a) - torch.gather(x, -1, idx_b))
        x = acc / denom
    return x


def zero_crossing_rate(batch: Any, lengths: Any = None, *, rate: int, frame_length: int = 400, hop: int = 160,
                       center: bool = True, threshold: float = 1e-10):
    """Fraction of sign changes per frame, ``shape=(batch, 1, frames)``; librosa's ``zero_crossing_rate``.

    With ``center`` each clip is edge-padded by ``frame_length // 2`` (its own first/last sample), as
    librosa does; samples with ``|x| <= threshold`` count as zero (non-negative).
    """
    import torch

    fp = FrameParams(rate=rate, n_fft=frame_length, hop=hop, center=center)
    x, lens = _as_tensor(batch, lengths)
    half = frame_length // 2 if center else 0
    span = x.shape[-1] + 2 * half
    if span < frame_length:
        span = frame_length
    j = torch.arange(span, device=x.device)[None, :] - half
    idx = torch.minimum(j.clamp(min=0), (lens - 1).clamp(min=0)[:, None])
    xp = torch.gather(x, -1, idx)
    xp = torch.where(xp.abs() <= threshold, torch.zeros_like(xp), xp)
    neg = torch.signbit(xp)
    change = torch.zeros_like(xp)
    change[:, 1:] = (neg[:, 1:] != neg[:, :-1]).to(x.dtype)
    csum = torch.nn.functional.pad(torch.cumsum(change, dim=-1), (1, 0))
    frames = _frames(fp, lens)
    t_max = int(frames.max()) if len(frames) else 0
    starts = torch.arange(t_max, device=x.device) * hop
    # crossings inside frame t are change[start + 1 : start + frame_length]
    counts = csum[:, (starts + frame_length).clamp(max=span)] - csum[:, starts + 1]
    return (counts / frame_length)[:, None, :], frames


def envelope(batch: Any, lengths: Any = None, *, rate: int, n_fft: int = 400, hop: int = 160,
             win_length: int | None = None, center: bool = True, n_cepstra: int = 30, amin: float = 1e-10):
    """Spectral envelope in dB by cepstral smoothing, ``shape=(batch, n_fft // 2 + 1, frames)``.

    The log power spectrum of each frame is turned into its real cepstrum, all quefrencies at or
    above ``n_cepstra`` are zeroed, and the result is turned back: a smooth curve through the
    spectrum that keeps formant-like shape and drops harmonics of the pitch.
    """
    import torch

    spec, frames = stft_power(batch, lengths, rate=rate, n_fft=n_fft, hop=hop, win_length=win_length,
                              center=center)
    if spec.shape[-1] == 0:  # every clip shorter than n_fft without centring: no frame (FFTs of 0 frames fail)
        return spec, frames
    log_spec = 10.0 * torch.log10(torch.clamp(spec, min=amin))
    ceps = torch.fft.irfft(log_spec, n=n_fft, dim=-2)
    keep = torch.zeros(n_fft, 1, device=spec.device, dtype=ceps.dtype)
    n = max(1, min(n_cepstra, n_fft // 2))
    keep[:n] = 1.0
    keep[n_fft - n + 1 :] = 1.0
    return torch.fft.rfft(ceps * keep, n=n_fft, dim=-2).real, frames
