"""The align path's own helpers give numpy's and soundfile's exact values: medians and percentiles,
the WAV reader, and the FFT offset scores (against a direct sum)."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf

from mmprep.align.media import decode_audio, read_wav
from mmprep.align.search import Correlator, cue_mask
from mmprep.align.stats import block_percentile, median, percentile
from mmprep.stages.audio.io import read_soundfile


def _arrays(seed: int = 0):
    rng = np.random.default_rng(seed)
    for t in range(600):
        n = int(rng.integers(1, 300))
        if t % 3 == 0:
            yield rng.normal(size=n) * 10 ** rng.uniform(-3, 5)
        elif t % 3 == 1:
            yield rng.integers(-20, 20, n).astype(np.float64)  # ties
        else:
            yield rng.uniform(-90, -20, n)  # dB envelopes


def test_median_and_percentile_equal_numpy_bit_for_bit():
    for a in _arrays():
        assert np.float64(median(a)).tobytes() == np.float64(np.median(a)).tobytes()
        f32 = a.astype(np.float32)
        assert np.float64(median(f32)).tobytes() == np.float64(np.median(f32)).tobytes()
        for q in (0, 5, 10, 33.3, 50, 95, 97, 100):
            assert np.float64(percentile(a, q)).tobytes() == np.float64(np.percentile(a, q)).tobytes(), (a.size, q)


@pytest.mark.parametrize("block", [1, 7, 100])
def test_block_percentile_equals_nanpercentile_of_padded_rows(block):
    for a in _arrays(1):
        pad = np.full(-(-a.size // block) * block, np.nan)
        pad[: a.size] = a
        want = np.nanpercentile(pad.reshape(-1, block), 10, axis=1)
        assert block_percentile(a, block, 10).tobytes() == want.tobytes()


def _wav(x: np.ndarray, rate: int, subtype: str, fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, x, rate, subtype=subtype, format=fmt)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", ["WAV", "WAVEX"])
@pytest.mark.parametrize("subtype", ["PCM_16", "FLOAT"])
@pytest.mark.parametrize("channels", [1, 2])
def test_wav_reader_gives_soundfiles_samples(fmt, subtype, channels):
    x = np.random.default_rng(channels).uniform(-1, 1, (4001, channels))
    x[0], x[-1] = 1.0, -1.0
    data = _wav(x, 22050, subtype, fmt)
    got, want = read_wav(data), read_soundfile(data)
    assert got is not None and got[1] == want[1] == 22050
    assert got[0].dtype == want[0].dtype == np.float32 and got[0].shape == want[0].shape == (channels, 4001)
    assert got[0].tobytes() == want[0].tobytes()


def test_wav_reader_declines_what_it_does_not_read():
    x = np.random.default_rng(0).uniform(-1, 1, 1000)
    pcm16 = _wav(x, 16000, "PCM_16")
    for data in (_wav(x, 16000, "PCM_24"), _wav(x, 16000, "PCM_U8"), _wav(x, 16000, "PCM_16", "FLAC"),
                 pcm16[:-10], b"RIFF", b""):  # truncated data: libsndfile decides what to do with it
        assert read_wav(data) is None
    samples, rate = decode_audio(_wav(x, 16000, "PCM_24"))  # still decoded, by soundfile
    assert rate == 16000 and samples.shape == (1000,)


def test_correlator_scores_equal_a_direct_sum_at_every_offset():
    rng = np.random.default_rng(3)
    speech = rng.random(700) < 0.4
    cues = [(1200, 2500), (3100, 3900), (5000, 6200)]
    B = 150  # frames: +-1.5 s
    x = np.concatenate([-np.ones(B), 2.0 * speech - 1, -np.ones(2000)])
    corr = Correlator(speech, B * 10, longest=100)  # too short for these cues: it must grow
    for ratio in (1.0, 25 / 23.976, 23.976 / 25):
        m = cue_mask(cues, ratio)
        want = np.array([np.dot(m, x[k : k + m.size]) for k in range(2 * B + 1)])
        got = corr.scores(m)
        assert got.shape == want.shape and np.array_equal(got, want)


def _hysteresis_loop(env, lo, hi):
    above, out = env >= lo, np.zeros(env.size, bool)
    hi = np.broadcast_to(np.asarray(hi, float), env.shape)
    i = 0
    while i < env.size:
        if not above[i]:
            i += 1
            continue
        j = i
        while j < env.size and above[j]:
            j += 1
        out[i:j] = (env[i:j] >= hi[i:j]).any()
        i = j
    return out


def _backtrack_loop(env, idx, level, step, limit=25):
    out = idx.copy()
    for j, k in enumerate(idx):
        for _ in range(limit):
            if not 0 <= k + step < env.size or env[k + step] < level[k + step]:
                break
            k += step
        out[j] = k
    return out


def test_vectorised_speech_steps_equal_their_loop_definitions():
    from mmprep.align.speech import backtrack, close_gaps, hysteresis

    assert close_gaps(np.array([1, 0, 0, 1, 1, 0, 1, 0, 0, 0, 1], bool), 3, 2).tolist() == [
        True, True, True, True, True, True, True, False, False, False, False]  # gaps < 3 filled, lone end run dropped
    rng = np.random.default_rng(4)
    for t in range(200):
        n = int(rng.integers(1, 2000))
        env = np.cumsum(rng.normal(size=n)) + rng.normal(size=n) * 3
        lo = env.mean() + rng.normal(size=n) if t % 2 else float(env.mean())
        hi = lo + np.abs(rng.normal(size=n)) * 3 if t % 2 else lo + 2.0
        assert np.array_equal(hysteresis(env, lo, hi), _hysteresis_loop(env, lo, hi))
        idx = np.sort(rng.choice(n, size=min(n, 40), replace=False))
        level = env - rng.uniform(0, 5, n)
        for step in (-1, 1):
            assert np.array_equal(backtrack(env, idx, level, step), _backtrack_loop(env, idx, level, step))
