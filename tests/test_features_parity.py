"""Parity of the batched torch features with librosa, for the same parameters.

Stated tolerances (float32 on CPU): log-mel within 0.01 dB and MFCC within 0.01 (absolute);
observed <= 2e-3, from float32 FFT rounding in bins ~70 dB under the peak. Mel filterbank within
1e-6, deltas within 1e-5, zero-crossing rate within 1e-6.
"""

from __future__ import annotations

import numpy as np
import pytest

from mmprep.features import FrameParams, compute, deltas, logmel, mel_filterbank, mfcc, pad_batch, spectrogram
from mmprep.testing.audio import chirp, noise, speech_like, tone

librosa = pytest.importorskip("librosa")

pytestmark = pytest.mark.filterwarnings("ignore:n_fft=.*too large:UserWarning")
RATE = 16000
LOGMEL_TOL_DB = 1e-2
MFCC_TOL = 1e-2


def _clips() -> list[np.ndarray]:
    return [
        chirp(1.3, f0=50, f1=7000),
        noise(0.77, amplitude=0.2, seed=3),
        speech_like(2.05, seed=1),
        tone(0.5, freq=1000.0) + noise(0.5, amplitude=0.01, seed=4),
        np.zeros(3000, np.float32),  # silence
        np.array([0.25], np.float32),  # one sample
        noise(0.013, seed=5),  # shorter than n_fft
    ]


@pytest.mark.parametrize(("htk", "norm", "fmax"), [(False, "slaney", None), (True, None, 7600.0)])
def test_mel_filterbank_matches_librosa(htk, norm, fmax):
    ours = mel_filterbank(rate=RATE, n_fft=512, n_mels=64, fmin=20.0, fmax=fmax, htk=htk, norm=norm)
    ref = librosa.filters.mel(sr=RATE, n_fft=512, n_mels=64, fmin=20.0, fmax=fmax, htk=htk, norm=norm)
    assert ours.shape == (64, 257)
    np.testing.assert_allclose(ours, ref, atol=1e-6)


@pytest.mark.parametrize(("n_fft", "hop", "win"), [(400, 160, None), (512, 128, 400), (2048, 512, None)])
def test_logmel_batched_matches_librosa_per_clip(n_fft, hop, win):
    clips = _clips()
    ours = compute("logmel", clips, rate=RATE, device="cpu", n_fft=n_fft, hop=hop, win_length=win, n_mels=64)
    for clip, got in zip(clips, ours, strict=True):
        mel = librosa.feature.melspectrogram(y=clip, sr=RATE, n_fft=n_fft, hop_length=hop, win_length=win,
                                             n_mels=64)
        ref = librosa.power_to_db(mel, top_db=80.0)
        assert got.shape == ref.shape == (64, 1 + len(clip) // hop)
        np.testing.assert_allclose(got, ref, atol=LOGMEL_TOL_DB, rtol=0)


def test_mfcc_matches_librosa_with_lifter_and_deltas():
    clips = _clips()
    ours = compute("mfcc", clips, rate=RATE, device="cpu", n_fft=400, hop=160, n_mels=80, n_mfcc=20, lifter=22,
                   delta_order=1)
    for clip, got in zip(clips, ours, strict=True):
        ref = librosa.feature.mfcc(y=clip, sr=RATE, n_fft=400, hop_length=160, n_mels=80, n_mfcc=20, lifter=22)
        assert got.shape == (40, ref.shape[1])
        np.testing.assert_allclose(got[:20], ref, atol=MFCC_TOL * 12, rtol=0)  # lifter scales by up to 12x
        if ref.shape[1] >= 9:
            d = librosa.feature.delta(ref, width=9, mode="nearest")
            np.testing.assert_allclose(got[20:], d, atol=MFCC_TOL * 12, rtol=0)


def test_mfcc_plain_matches_librosa():
    clip = speech_like(3.0, seed=7)
    got, frames = mfcc(clip[None], None, rate=RATE, n_mfcc=13, n_fft=512, hop=160, n_mels=40)
    ref = librosa.feature.mfcc(y=clip, sr=RATE, n_mfcc=13, n_fft=512, hop_length=160, n_mels=40)
    assert int(frames[0]) == ref.shape[1]
    np.testing.assert_allclose(got[0].numpy(), ref, atol=MFCC_TOL, rtol=0)


def test_deltas_match_librosa_nearest_per_clip_edges():
    rng = np.random.default_rng(0)
    feats = [rng.standard_normal((5, n)).astype(np.float32) for n in (30, 12)]
    import torch

    batch = torch.zeros(2, 5, 30)
    batch[0], batch[1, :, :12] = torch.from_numpy(feats[0]), torch.from_numpy(feats[1])
    got = deltas(batch, torch.tensor([30, 12]), width=5)
    for b, f in enumerate(feats):
        ref = librosa.feature.delta(f, width=5, mode="nearest")
        np.testing.assert_allclose(got[b, :, : f.shape[1]].numpy(), ref, atol=1e-5)


def test_zcr_matches_librosa():
    clips = [chirp(0.8, f0=100, f1=6000), noise(0.3, seed=2), tone(0.2, freq=300.0)]
    ours = compute("zcr", clips, rate=RATE, device="cpu", frame_length=512, hop=128)
    for clip, got in zip(clips, ours, strict=True):
        ref = librosa.feature.zero_crossing_rate(clip, frame_length=512, hop_length=128)
        np.testing.assert_allclose(got, ref, atol=1e-6)


def test_power_spectrogram_matches_librosa_stft():
    clip = chirp(0.6, f0=200, f1=5000)
    batch, lengths = pad_batch([clip])
    got, _ = spectrogram(batch, lengths, rate=RATE, n_fft=512, hop=128)
    ref = np.abs(librosa.stft(clip, n_fft=512, hop_length=128)) ** 2
    np.testing.assert_allclose(got[0].numpy(), ref, rtol=1e-3, atol=1e-5 * ref.max())


def test_batch_padding_does_not_change_a_clip():
    a, b = speech_like(1.0, seed=1), speech_like(2.7, seed=2)
    alone, fa = logmel(a[None], None, rate=RATE)
    batch, lengths = pad_batch([a, b])
    both, fb = logmel(batch, lengths, rate=RATE)
    assert int(fa[0]) == int(fb[0]) == 101
    np.testing.assert_allclose(both[0, :, :101].numpy(), alone[0].numpy(), atol=1e-4)


def test_envelope_is_smooth_and_follows_the_spectrum():
    clip = speech_like(1.0, f0=120.0, seed=3)
    env = compute("envelope", [clip], rate=RATE, device="cpu", n_fft=512, hop=160, n_cepstra=20)[0]
    spec = compute("spectrogram", [clip], rate=RATE, device="cpu", n_fft=512, hop=160, db=True, top_db=None)[0]
    assert env.shape == spec.shape == (257, 101)
    # smooth: far smaller bin-to-bin jumps than the harmonic spectrum; close to it on average (dB)
    assert np.abs(np.diff(env, axis=0)).mean() < 0.25 * np.abs(np.diff(spec, axis=0)).mean()
    assert abs(float(env.mean() - spec.mean())) < 6.0


def test_blocked_stft_equals_one_piece():
    from mmprep.features import melspectrogram

    batch, lengths = pad_batch([speech_like(1.3, seed=1), chirp(0.4), np.array([0.1], np.float32)])
    for center in (True, False):
        small, f1 = melspectrogram(batch, lengths, rate=RATE, chunk_frames=7, center=center)
        whole, f2 = melspectrogram(batch, lengths, rate=RATE, chunk_frames=10**6, center=center)
        assert f1.tolist() == f2.tolist()
        np.testing.assert_allclose(small.numpy(), whole.numpy(), rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize(("n_fft", "hop", "win", "center"),
                         [(400, 160, None, True), (512, 128, 400, True), (400, 160, None, False),
                          (401, 100, 300, False), (300, 400, None, True)])
@pytest.mark.parametrize("kind", ["melspectrogram", "logmel", "mfcc"])
def test_packed_cpu_path_equals_padded_batch(kind, n_fft, hop, win, center):
    """``compute`` on CPU packs clips end to end (no padding) and works in blocks; blocks of 7 frames and
    groups of 20k samples make blocks straddle clips and clips fall into several groups."""
    import torch

    from mmprep.features import packed, spectral

    clips = [*_clips(), np.zeros(0, np.float32), noise(0.0251, seed=6)]
    got = packed.mel_features(kind, clips, rate=RATE, n_fft=n_fft, hop=hop, win_length=win, center=center,
                              n_mels=64, block=7, pack_samples=20_000)
    fn = getattr(spectral, kind)
    for clip, ours in zip(clips, got, strict=True):
        batch = torch.from_numpy(clip)[None]
        ref, frames = fn(batch, torch.tensor([len(clip)]), rate=RATE, n_fft=n_fft, hop=hop, win_length=win,
                         center=center, n_mels=64)
        ref = ref[0, :, : int(frames[0])].numpy()
        assert ours.shape == ref.shape == (ref.shape[0], FrameParams(rate=RATE, n_fft=n_fft, hop=hop,
                                                                      center=center).n_frames(len(clip)))
        if ref.size:
            tol = 1e-6 * np.abs(ref).max() if kind == "melspectrogram" else 2e-3
            np.testing.assert_allclose(ours.numpy(), ref, atol=tol, rtol=0)


def test_mel_bands_hold_every_filter_weight_once():
    from mmprep.features.packed import mel_bands

    fb = mel_filterbank(rate=RATE, n_fft=400, n_mels=80)
    rebuilt = np.zeros_like(fb)
    macs = 0
    for m0, m1, b0, b1, weights in mel_bands(rate=RATE, n_fft=400, n_mels=80):
        rebuilt[m0:m1, b0:b1] += weights
        macs += (m1 - m0) * (b1 - b0)
    np.testing.assert_array_equal(rebuilt, fb)
    assert macs < fb.size / 5  # 80 x 201 dense: 16,080; banded: ~1,900


def test_compute_on_cpu_equals_padded_functions_with_deltas_and_float16():
    import torch

    clips = [speech_like(1.7, seed=2), chirp(0.9), np.array([0.5], np.float32)]
    got = compute("mfcc", clips, rate=RATE, device="cpu", n_mfcc=13, delta_order=2, dtype=np.float16)
    batch, lengths = pad_batch(clips)
    ref, frames = mfcc(batch, lengths, rate=RATE, n_mfcc=13)
    for b, ours in enumerate(got):
        t = int(frames[b])
        one = ref[b : b + 1, :, :t]
        want = torch.cat([one, deltas(one, frames[b : b + 1], order=1), deltas(one, frames[b : b + 1], order=2)], 1)
        assert ours.dtype == np.float16 and ours.shape == (39, t)
        np.testing.assert_allclose(ours.astype(np.float32), want[0].numpy(), atol=0.05, rtol=2e-3)


@pytest.mark.parametrize("n_fft", [2, 4, 6, 400, 512])
def test_half_length_fft_power_equals_rfft_power(n_fft):
    """The power spectrum from a half-length complex FFT (numba unpack) equals numpy's float64 rfft."""
    import torch

    from mmprep.features import halfspectrum

    frames = np.random.default_rng(n_fft).standard_normal((37, n_fft)).astype(np.float32)
    frames[3] = 0.0
    frames[4] = 1.0  # all energy in bin 0
    frames[5, ::2], frames[5, 1::2] = 1.0, -1.0  # all energy in the last bin
    out = torch.full((37, n_fft // 2 + 1), np.nan)
    assert halfspectrum._kernel() is not None  # numba is a dependency: the compiled path is what runs
    got = halfspectrum.power(torch.from_numpy(frames), out)
    want = np.abs(np.fft.rfft(frames.astype(np.float64), axis=1)) ** 2
    np.testing.assert_allclose(got.numpy(), want, rtol=0, atol=2e-6 * want.max())
    np.testing.assert_array_equal(got.numpy()[3], 0.0)
