"""Mel power, log-mel and MFCC for many clips on CPU, end to end instead of zero-padded.

Why not the padded batch of :mod:`mmprep.features.spectral`: a micro-batch of 2-60 s clips padded
to its longest clip computes mostly padding (bucketing trades that for many small calls), and a
whole-batch STFT does not fit in any cache. Here the frames of all clips are taken back to back,
clip after clip, straight from each clip's samples (a strided view, no copy of the clip); only the
2-3 frames at each end of a clip that reach into the framing padding (``n_fft // 2`` zeros each side
when centred, as librosa >= 0.10 pads) come from small zero-padded copies of the clip's ends.

The frames are processed in blocks of ``block`` frames, each block's intermediates staying in cache:
window (written into the block buffer), the power spectrum (:func:`halfspectrum.power`: a half-length
complex FFT unpacked by a compiled loop, planar ``|X|²``), and a banded mel product. The filterbank
is > 95% zeros (80 Slaney filters x 201 bins: 391 non-zeros), so neighbouring filters are grouped
into bands (:func:`mel_bands`) and each band multiplies only the FFT bins it covers: ~11x fewer
multiply-adds than the dense product, with the same non-zero terms. ``log10`` runs per block (numpy's,
SIMD: ~5x torch's on CPU), and each block's frames go straight into their clips' outputs (times 10:
dB); a clip is finished (one floor: ``amin`` and ``top_db`` at its own peak; DCT for MFCC) as soon as
its last frame is in.

Where the time goes (one thread, 20 min of 2-60 s clips at 16 kHz, 122k frames; log-mel best ~0.075 s):
FFT ~34 ms, unpacking ~9 ms, mel product ~12 ms, windowed framing copy ~4-7 ms, cut into clips + floor
~7 ms, ``log10`` ~2 ms (MFCC: + ~6 ms DCT). Before the half-length FFT (``rfft``, interleaved
``re², im²`` squared in place, a product over both): ``rfft`` 45 ms, squares 3 ms, product 21 ms.
Tried and measured no faster: frequency-domain window (see :mod:`halfspectrum`), sparse CSR product,
other block sizes, framing + FFT in L2-sized sub-blocks, writing the product straight into per-clip
outputs (strided ``log10``, cold lines: slower than the copy), one hugepage output buffer per group,
OpenBLAS for the band products. Values equal the padded-batch functions up to float32 rounding (same
frames, same filterbank, same ``power_to_db``): tested, and the parity tests against librosa run
through this path.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from mmprep.features import halfspectrum
from mmprep.features.filters import dct_matrix, lifter_weights, mel_filterbank
from mmprep.features.frames import FrameParams

KINDS = ("melspectrogram", "logmel", "mfcc")
BLOCK_FRAMES = 2048  # (2048, 400) float32 frames + (2048, 201) complex spectrum: ~6.5 MB, in L3 (measured best)
PACK_SAMPLES = 4_000_000  # audio samples per group of clips: bounds the blocks held (~8 MB at hop 160), not speed

_MEL_KEYS = {"n_fft", "hop", "win_length", "center", "n_mels", "fmin", "fmax", "htk", "norm"}
ACCEPTS = {
    "melspectrogram": _MEL_KEYS | {"power"},
    "logmel": _MEL_KEYS | {"top_db", "amin"},
    "mfcc": _MEL_KEYS | {"top_db", "n_mfcc", "lifter"},
}


def supports(kind: str, params: dict[str, Any]) -> bool:
    """True when :func:`mel_features` computes ``kind`` with these parameters (power 2 only)."""
    return kind in ACCEPTS and set(params) <= ACCEPTS[kind] and params.get("power", 2.0) == 2.0


@functools.lru_cache(maxsize=64)
def mel_bands(*, rate: int, n_fft: int, n_mels: int = 80, fmin: float = 0.0, fmax: float | None = None,
              htk: bool = False, norm: str | None = "slaney",
              call_cost: int = 100) -> tuple[tuple[int, int, int, int, np.ndarray], ...]:
    """Split the filterbank into bands of neighbouring filters: ``(m0, m1, b0, b1, weights)`` per band.

    Filters ``m0..m1-1`` are non-zero only on FFT bins ``b0..b1-1``; ``weights`` is their
    ``shape=(m1 - m0, b1 - b0)`` block of the filterbank. Bands are chosen by dynamic programming to
    minimise multiply-adds plus ``call_cost`` per band (one matrix product each).
    """
    fb = mel_filterbank(rate=rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=htk, norm=norm)
    nonzero = [np.flatnonzero(row) for row in fb]
    lo = [int(nz[0]) if len(nz) else None for nz in nonzero]
    hi = [int(nz[-1]) + 1 if len(nz) else None for nz in nonzero]
    best = [0] + [math.inf] * n_mels  # best[j]: cost of filters 0..j-1
    cut = [0] * (n_mels + 1)
    for j in range(1, n_mels + 1):
        b0, b1 = None, None
        for i in range(j - 1, -1, -1):  # band i..j-1, widened one filter at a time
            if lo[i] is not None:
                b0 = lo[i] if b0 is None else min(b0, lo[i])
                b1 = hi[i] if b1 is None else max(b1, hi[i])
            cost = best[i] + (j - i) * ((b1 - b0) if b0 is not None else 0) + call_cost
            if cost < best[j]:
                best[j], cut[j] = cost, i
    bands = []
    j = n_mels
    while j > 0:
        i = cut[j]
        spans = [(lo[m], hi[m]) for m in range(i, j) if lo[m] is not None]
        b0, b1 = (min(s[0] for s in spans), max(s[1] for s in spans)) if spans else (0, 0)
        weights = np.ascontiguousarray(fb[i:j, b0:b1], dtype=np.float32)
        weights.setflags(write=False)
        bands.append((i, j, b0, b1, weights))
        j = i
    return tuple(reversed(bands))


def _window(fp: FrameParams):
    """Periodic Hann of ``win_length`` centred in ``n_fft`` zeros (as torch.stft and librosa pad it)."""
    import torch

    w = torch.hann_window(fp.win, periodic=True, dtype=torch.float32)
    left = (fp.n_fft - fp.win) // 2
    return torch.nn.functional.pad(w, (left, fp.n_fft - fp.win - left))


def _pieces(clip, fp: FrameParams) -> list[tuple[Any, int, int]]:
    """A clip's frames as ``(signal, first sample, frames)`` pieces, in frame order, without copying the clip.

    Frames wholly inside the clip are read from the clip itself; the few at either end that reach
    into the framing padding (``n_fft // 2`` zeros each side when centred) come from small
    zero-padded copies of the clip's ends.
    """
    import torch

    n, hop, n_fft = len(clip), fp.hop, fp.n_fft
    t = fp.n_frames(n)
    left = n_fft // 2 if fp.center else 0
    x = torch.from_numpy(clip)
    lo = min(t, -(-left // hop))  # first frame not reaching left of sample 0
    hi = max(lo, min(t, (n + left - n_fft) // hop + 1))  # first frame reaching past sample n - 1
    pieces = []
    if lo:
        pieces.append((_zero_padded(clip, -left, (lo - 1) * hop - left + n_fft), 0, lo))
    if hi > lo:
        pieces.append((x, lo * hop - left, hi - lo))
    if t > hi:
        pieces.append((_zero_padded(clip, hi * hop - left, (t - 1) * hop - left + n_fft), 0, t - hi))
    return pieces


def _zero_padded(clip: np.ndarray, start: int, stop: int):
    """``clip[start:stop]`` with zeros where the range leaves the clip (``start`` may be negative)."""
    import torch

    out = np.zeros(stop - start, dtype=np.float32)
    a, b = max(0, start), min(len(clip), stop)
    if b > a:
        out[a - start : b - start] = clip[a:b]
    return torch.from_numpy(out)


def mel_features(kind: str, clips: Sequence[np.ndarray], *, rate: int, n_fft: int = 400, hop: int = 160,
                 win_length: int | None = None, center: bool = True, n_mels: int = 80, fmin: float = 0.0,
                 fmax: float | None = None, htk: bool = False, norm: str | None = "slaney", power: float = 2.0,
                 top_db: float | None = 80.0, amin: float = 1e-10, n_mfcc: int = 13, lifter: float = 0.0,
                 block: int = BLOCK_FRAMES, pack_samples: int = PACK_SAMPLES) -> list[Any]:
    """One float32 tensor per clip, in input order: ``shape=(n_mels, frames)`` for ``melspectrogram``
    and ``logmel``, ``shape=(n_mfcc, frames)`` for ``mfcc``; ``frames = FrameParams.n_frames(len(clip))``
    (a clip too short for one frame gives ``frames == 0``). Same parameters and values as the
    functions of the same name in :mod:`mmprep.features.spectral`, on CPU."""
    import torch

    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
    if power != 2.0:
        raise ValueError("packed mel features compute power 2 only")
    fp = FrameParams(rate=rate, n_fft=n_fft, hop=hop, win_length=win_length, center=center)
    bands = [(m0, m1, b0, b1, torch.from_numpy(w.copy()))
             for m0, m1, b0, b1, w in mel_bands(rate=rate, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax,
                                                htk=htk, norm=norm)]
    post = _Post(kind, n_mels=n_mels, top_db=top_db, amin=amin, n_mfcc=n_mfcc, lifter=lifter)
    out: list[Any] = [None] * len(clips)
    group: list[int] = []
    size = 0
    with torch.inference_mode():
        for i, clip in enumerate(clips):
            if group and size + len(clip) > pack_samples:
                _run_group([clips[j] for j in group], group, out, fp, bands, post, block)
                group, size = [], 0
            group.append(i)
            size += len(clip)
        if group:
            _run_group([clips[j] for j in group], group, out, fp, bands, post, block)
    return out


class _Post:
    """What happens to each block (dB) and to each clip at the end (floor, DCT, lifter)."""

    def __init__(self, kind: str, *, n_mels: int, top_db: float | None, amin: float, n_mfcc: int,
                 lifter: float) -> None:
        import torch

        self.kind, self.n_mels, self.amin = kind, n_mels, amin
        self.db = kind != "melspectrogram"
        self.top_db = top_db if self.db else None
        self.dct = torch.from_numpy(dct_matrix(n_mfcc, n_mels).copy()) if kind == "mfcc" else None
        self.lifter = (torch.from_numpy(lifter_weights(n_mfcc, lifter))[:, None]
                       if kind == "mfcc" and lifter > 0 else None)
        self.channels = n_mfcc if kind == "mfcc" else n_mels


def _run_group(clips, index, out, fp: FrameParams, bands, post: _Post, block: int) -> None:
    """Frames of all ``clips`` back to back in blocks; each block's result goes straight to its clips."""
    import torch

    clips = [np.ascontiguousarray(c, dtype=np.float32).reshape(-1) for c in clips]
    pieces = [p for clip in clips for p in _pieces(clip, fp)]
    sink = _Clips([fp.n_frames(len(c)) for c in clips], index, out, post)
    window = _window(fp)
    framed = torch.empty(block, fp.n_fft)
    power = torch.empty(block, fp.n_fft // 2 + 1)
    mel = torch.empty(post.n_mels, block)
    row = 0
    for src, offset, count in pieces:
        while count:
            take = min(count, block - row)
            frames = src.as_strided((take, fp.n_fft), (fp.hop, 1), src.storage_offset() + offset)
            torch.mul(frames, window, out=framed[row : row + take])
            row, offset, count = row + take, offset + take * fp.hop, count - take
            if row == block:
                sink.add(_block(framed, power, mel, block, bands, post))
                row = 0
    if row:
        sink.add(_block(framed, power, mel, row, bands, post))
    sink.add(mel[:, :0])  # clips of 0 frames at the end


def _block(framed, power, mel, k: int, bands, post: _Post):
    """Windowed frames ``framed[:k]`` -> mel power in ``mel[:, :k]``, or its ``log10`` (dB / 10) for
    log-mel and MFCC; returns that view. ``power``: room for the frames' power spectra."""
    import torch

    sq = halfspectrum.power(framed[:k], power[:k])
    dst = mel[:, :k]
    for m0, m1, b0, b1, w in bands:
        torch.mm(w, sq[:, b0:b1].T, out=dst[m0:m1])
    if post.db:  # numpy's float32 log10 is SIMD (AVX-512 where there is one): ~5x torch's log10_ on CPU
        a = dst.numpy()  # amin is applied with the clip's floor: log10 is monotonic (one pass less per block)
        with np.errstate(divide="ignore"):  # log10(0) = -inf, then floored like any value under amin
            np.log10(a, out=a)
    return dst


class _Clips:
    """Takes the blocks' frames in order and cuts them into clips: each clip's ``(channels, frames)``
    is filled as its blocks come (dB = 10 x the block's ``log10``), and finished (one floor: ``amin``,
    and ``top_db`` under the clip's own peak; DCT) as soon as its last frame is in."""

    def __init__(self, counts: list[int], index: list[int], out: list[Any], post: _Post) -> None:
        import torch

        self.counts, self.index, self.out, self.post = counts, index, out, post
        self.k = self.filled = 0
        self.peak = -math.inf
        # all allocated before the first block, so that the FFT's temporary output comes back from the
        # chunk it freed instead of fresh pages (page faults) whenever a clip's output took that chunk
        self.feats = [torch.empty(post.n_mels, t) for t in counts]

    def add(self, block) -> None:
        import torch

        j, n = 0, block.shape[1]
        while self.k < len(self.counts):
            t = self.counts[self.k]
            if self.filled == t:
                self._finish()
                continue
            if j == n:
                return
            m = min(n - j, t - self.filled)
            src, dst = block[:, j : j + m], self.feats[self.k][:, self.filled : self.filled + m]
            if self.post.db:
                torch.mul(src, 10.0, out=dst)
                if self.post.top_db is not None:
                    self.peak = max(self.peak, float(src.numpy().max()))
            else:
                dst.copy_(src)
            self.filled, j = self.filled + m, j + m

    def _finish(self) -> None:
        import torch

        post, t = self.post, self.counts[self.k]
        if t == 0:
            feats = torch.empty(post.channels, 0)
        else:
            feats = self.feats[self.k]
            if post.db:  # power_to_db's max(amin, S), then its top_db floor at the clip's peak: one pass
                floor = 10.0 * math.log10(post.amin) if post.amin > 0 else -math.inf
                if post.top_db is not None:
                    floor = max(floor, 10.0 * self.peak - post.top_db)
                feats.clamp_(min=floor)
            if post.dct is not None:
                feats = torch.mm(post.dct, feats)
                if post.lifter is not None:
                    feats.mul_(post.lifter)
        self.out[self.index[self.k]] = feats
        self.feats[self.k] = None
        self.k, self.filled, self.peak = self.k + 1, 0, -math.inf
