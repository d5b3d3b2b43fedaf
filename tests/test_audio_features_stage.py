"""The feature stages' batching contract: mixed rates and lengths in one micro-batch, per-sample drops."""

from __future__ import annotations

import numpy as np
import pytest

from mmprep.errors import ConfigError, Drop
from mmprep.features import compute
from mmprep.sample import Audio
from mmprep.stage import make_stage
from mmprep.testing.audio import chirp, speech_like


def s(key: str, x: np.ndarray | bytes, rate: int = 16000) -> dict:
    value = Audio(samples=x, rate=rate) if isinstance(x, np.ndarray) else x
    return {"__key__": key, "__meta__": {}, "wav": value}


def test_mixed_rates_and_lengths_in_one_batch_match_one_at_a_time():
    batch = [s("a", speech_like(1.0)), s("b", chirp(0.3, rate=8000), 8000), s("c", speech_like(2.2, seed=3)),
             {"__key__": "d", "txt": "no audio here"}, s("e", b"undecoded bytes")]
    out = make_stage("audio.logmel", device="cpu", n_mels=40, dtype="float16").process_batch(batch)
    assert out[3] == {"__key__": "d", "txt": "no audio here"}  # nothing to read: untouched
    assert isinstance(out[4], Drop) and out[4].reason == "audio.not_decoded" and out[4].field == "wav"
    for res, rate in ((out[0], 16000), (out[1], 8000), (out[2], 16000)):
        arr = res["logmel.npy"]
        alone = compute("logmel", [res["wav"].samples], rate=rate, device="cpu", n_mels=40)[0]
        assert arr.dtype == np.float16 and arr.shape == alone.shape
        np.testing.assert_allclose(arr.astype(np.float32), alone, atol=0.05)  # float16 rounding of dB values
        meta = res["__meta__"]["features"]["logmel.npy"]
        assert meta["rate"] == rate and meta["frames"] == arr.shape[1] and meta["dtype"] == "float16"


def test_other_feature_stages_shapes_and_output_names():
    clip = speech_like(0.5)
    spec = make_stage("audio.spectrogram", device="cpu", n_fft=512, output="spec.npy").process(s("a", clip))
    assert spec["spec.npy"].shape == (257, 51) and "spec.npy" in spec["__meta__"]["features"]
    assert make_stage("audio.zcr", device="cpu").process(s("a", clip))["zcr.npy"].shape == (1, 51)
    assert make_stage("audio.envelope", device="cpu").process(s("a", clip))["envelope.npy"].shape == (201, 51)
    mfcc = make_stage("audio.mfcc", device="cpu", deltas=2).process(s("a", clip))["mfcc.npy"]
    assert mfcc.shape == (39, 51)


def test_uncentred_clip_shorter_than_a_frame_is_dropped_with_a_reason():
    out = make_stage("audio.logmel", device="cpu", center=False).process_batch(
        [s("a", speech_like(0.5)), s("b", np.ones(100, np.float32) * 0.1)])
    assert out[0]["logmel.npy"].shape == (80, 1 + (8000 - 400) // 160)
    assert isinstance(out[1], Drop) and out[1].reason == "logmel.too_short" and out[1].field == "logmel.npy"


def test_config_checks_name_the_key():
    with pytest.raises(ConfigError, match="output"):
        make_stage("audio.logmel", output="logmel.bin")
    with pytest.raises(ConfigError, match="n_mfcc"):
        make_stage("audio.mfcc", n_mels=10, n_mfcc=13)
    with pytest.raises(ConfigError, match="win_length"):
        make_stage("audio.logmel", n_fft=256, win_length=400)


def test_device_and_threads_do_not_change_the_cache_key():
    a = make_stage("audio.logmel", device="cpu", cpu_threads=1)
    b = make_stage("audio.logmel", device="auto", cpu_threads=2, max_batch_samples=10)
    assert a.params() == b.params() and "device" not in a.params()
