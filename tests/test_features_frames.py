"""Frame index <-> seconds: exact, in integer samples, and consistent with the frames actually computed."""

from __future__ import annotations

import numpy as np
import pytest

from mmprep.errors import ConfigError
from mmprep.features import FrameParams, buckets, compute
from mmprep.testing.audio import chirp


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100, 48000])
@pytest.mark.parametrize("center", [True, False])
def test_frame_seconds_round_trip_is_exact(rate, center):
    fp = FrameParams(rate=rate, n_fft=512, hop=rate // 100 + 1, center=center)
    for i in range(0, 200_000, 37):
        sample = fp.frame_to_sample(i)
        assert sample == fp.offset + i * fp.hop  # integer arithmetic, no drift
        assert fp.frame_to_seconds(i) == sample / rate
        assert fp.seconds_to_frame(fp.frame_to_seconds(i)) == i
        assert fp.sample_to_frame(sample) == i


def test_frame_times_match_librosa():
    librosa = pytest.importorskip("librosa")
    fp = FrameParams(rate=22050, n_fft=2048, hop=512)
    idx = np.arange(10_000)
    ours = np.array([fp.frame_to_seconds(int(i)) for i in idx])
    np.testing.assert_array_equal(ours, librosa.frames_to_time(idx, sr=22050, hop_length=512))


def test_frame_count_matches_computed_features():
    clips = [chirp(n / 16000) for n in (1, 159, 160, 161, 399, 400, 401, 16000, 16001)]
    for center in (True, False):
        fp = FrameParams(rate=16000, n_fft=400, hop=160, center=center)
        out = compute("logmel", clips, rate=16000, device="cpu", n_fft=400, hop=160, center=center)
        assert [a.shape[1] for a in out] == [fp.n_frames(len(c)) for c in clips]
    assert FrameParams(rate=16000).n_frames(16000) == 101
    assert FrameParams(rate=16000, center=False).n_frames(399) == 0


def test_meta_describes_frames():
    doc = FrameParams(rate=16000, n_fft=512, hop=160, win_length=400, center=False).to_meta()
    assert doc == {"rate": 16000, "n_fft": 512, "hop": 160, "win_length": 400, "center": False, "window": "hann",
                   "frame_offset_samples": 256}


def test_bad_frame_params_are_config_errors():
    with pytest.raises(ConfigError, match="rate"):
        FrameParams(rate=0)
    with pytest.raises(ConfigError, match="win_length"):
        FrameParams(rate=16000, n_fft=256, win_length=400)


def test_buckets_cover_every_clip_once_and_bound_padding():
    lengths = [5, 100, 7, 3000, 120, 6, 2900, 1]
    groups = buckets(lengths, max_samples=10_000, max_ratio=1.5)
    assert sorted(i for g in groups for i in g) == list(range(len(lengths)))
    for g in groups:
        longest, shortest = max(lengths[i] for i in g), max(min(lengths[i] for i in g), 1)
        assert longest <= 1.5 * shortest or len(g) == 1
        assert longest * len(g) <= 10_000 or len(g) == 1
