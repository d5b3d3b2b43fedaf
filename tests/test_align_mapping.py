"""Cue -> sample / feature frame / video frame ranges are exact integers (mmprep.align.mapping)."""

from __future__ import annotations

from fractions import Fraction

from mmprep.align.mapping import feature_range, map_cues, sample_range, video_range


def test_sample_range_rounds_and_clips():
    assert sample_range(1000, 2500, 16000) == (16000, 40000)
    assert sample_range(1, 2, 44100) == (44, 88)  # 44.1 -> 44, 88.2 -> 88
    assert sample_range(-20, 500, 16000) == (0, 8000)
    assert sample_range(9000, 12000, 16000, n_samples=160000) == (144000, 160000)


def test_feature_range_centered_and_not():
    # hop 160, centred: frame j centred on sample 160 j; samples [16000, 40000) -> frames 100..249
    assert feature_range(16000, 40000, hop=160, win=400, center=True) == (100, 250)
    assert feature_range(16001, 40001, hop=160, win=400, center=True) == (101, 251)
    # not centred: centre of frame j is 160 j + 200 -> first j with 160 j + 200 >= 16000 is 99 (16040)
    assert feature_range(16000, 40000, hop=160, win=400, center=False) == (99, 249)
    # every frame centre in the range, none outside
    a, b = feature_range(12345, 23456, hop=256, win=1024, center=True)
    assert all(12345 <= j * 256 < 23456 for j in range(a, b))
    assert not 12345 <= (a - 1) * 256 < 23456 and not 12345 <= b * 256 < 23456


def test_video_range_ntsc_and_25fps():
    assert video_range(1000, 2000, 25) == (25, 50)
    assert video_range(1010, 1990, 25) == (25, 50)  # frames shown at all during the cue
    ntsc = Fraction(30000, 1001)
    a, b = video_range(10000, 11000, ntsc)
    assert (a, b) == (299, 330)  # 10 s * 29.97 = 299.7 -> frame 299 is on screen at 10 s
    assert Fraction(a, 1) / ntsc <= 10 < Fraction(a + 1, 1) / ntsc
    assert video_range(0, 100_000, "30000/1001", n_frames=100) == (0, 100)


def test_map_cues_collects_all_ranges():
    cues = map_cues([(1000, 2000)], ["hi"], rate=16000, hop=160, win=400, fps="25")
    assert cues == [{"start": 1.0, "end": 2.0, "text": "hi", "samples": [16000, 32000],
                     "feature_frames": [100, 200], "video_frames": [25, 50]}]


def test_map_cues_uses_feature_stage_metadata():
    feats = {"logmel.npy": {"rate": 16000, "hop": 160, "frame_offset_samples": 0, "frames": 150},
             "mfcc.npy": {"rate": 8000, "hop": 256, "frame_offset_samples": 128, "frames": 1000}}
    cue = map_cues([(1000, 2000)], ["x"], features=feats)[0]
    assert cue["features"]["logmel.npy"] == [100, 150]  # 200 clipped to the 150 frames there are
    # 8 kHz: samples [8000, 16000); centres 128 + 256 j -> j from ceil(7872/256)=31 to ceil(15872/256)=62
    assert cue["features"]["mfcc.npy"] == [31, 62]
