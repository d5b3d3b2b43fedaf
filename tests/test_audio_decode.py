"""audio.decode on good and bad input: every bad file is handled or dropped with a reason code."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest

from mmprep.errors import Drop
from mmprep.sample import Audio
from mmprep.stage import make_stage
from mmprep.testing.audio import encoded_bytes, tone
from mmprep.testing.media import mp4_bytes, wav_bytes


def wav_with_header(rate: int, *, channels: int = 1, n: int = 100) -> bytes:
    """A PCM-16 WAV whose header claims ``rate`` Hz (soundfile refuses to write absurd ones)."""
    data = b"\x00\x01" * n * channels
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * channels * 2, channels * 2, 16)
    return (b"RIFF" + struct.pack("<I", 36 + len(data)) + b"WAVEfmt " + struct.pack("<I", 16) + fmt + b"data"
            + struct.pack("<I", len(data)) + data)


def float_wav(x: np.ndarray, rate: int = 16000) -> bytes:
    import soundfile as sf

    buf = io.BytesIO()
    sf.write(buf, x.T if x.ndim == 2 else x, rate, format="WAV", subtype="FLOAT")
    return buf.getvalue()


def decode(data: bytes, ext: str = "wav", **params):
    return make_stage("audio.decode", **params).process({"__key__": "k", ext: data})


def reason(data: bytes, ext: str = "wav", **params) -> str:
    with pytest.raises(Drop) as info:
        decode(data, ext, **params)
    assert info.value.field == ext
    return info.value.reason


def test_wav_decodes_with_metadata_and_keeps_source_bytes():
    data = wav_bytes(tone(0.5, freq=300.0), 16000)
    s = decode(data)
    audio = s["wav"]
    assert isinstance(audio, Audio) and audio.rate == 16000 and audio.samples.shape == (8000,)
    assert audio.samples.dtype == np.float32 and audio.source == data
    assert s["__meta__"]["audio"]["wav"] == {"rate": 16000, "seconds": 0.5, "channels": 1, "clipped_fraction": 0.0}


@pytest.mark.parametrize(("ext", "rate"), [("mp3", 16000), ("m4a", 16000), ("opus", 48000), ("flac", 16000)])
def test_compressed_formats_decode_to_the_same_tone(ext, rate):
    x = tone(1.0, freq=440.0, rate=rate)
    data = wav_bytes(x, rate, fmt="FLAC") if ext == "flac" else encoded_bytes(x, rate, ext=ext)
    audio = decode(data, ext)[ext]
    assert audio.rate == rate and abs(audio.seconds - 1.0) < 0.05
    spec = np.abs(np.fft.rfft(audio.samples))
    assert abs(np.argmax(spec) * rate / len(audio.samples) - 440.0) < 2.0
    assert 0.4 < np.max(np.abs(audio.samples)) < 0.6  # integer PCM scaled to [-1, 1]


def test_audio_track_of_a_video():
    s = make_stage("audio.decode", from_video=True).process({"__key__": "k", "mp4": mp4_bytes(seconds=1.0)})
    assert s["wav"].rate == 16000 and abs(s["wav"].seconds - 1.0) < 0.1
    assert s["__meta__"]["audio"]["wav"]["from"] == "mp4"
    assert isinstance(s["mp4"], bytes)


def test_eight_channels_mixdown_and_channel_pick():
    x = np.stack([tone(0.25, freq=200.0 * (c + 1), amplitude=0.1) for c in range(8)])
    data = wav_bytes(x, 16000)
    mixed = decode(data)
    assert mixed["wav"].samples.shape == (4000,) and mixed["__meta__"]["audio"]["wav"]["channels"] == 8
    np.testing.assert_allclose(mixed["wav"].samples, x.mean(axis=0), atol=1e-4)
    third = decode(data, channel=3)["wav"].samples
    np.testing.assert_allclose(third, x[3], atol=1e-4)
    assert reason(data, channel=9) == "audio.no_channel"
    assert reason(data, max_channels=4) == "audio.bad_channels"


def test_bad_inputs_get_reason_codes():
    assert reason(b"RIFF\x00\x00\x00\x00WAVEjunk") == "audio.corrupt"
    assert reason(wav_bytes(np.zeros(0, np.float32), 16000)) == "audio.empty"
    assert reason(wav_with_header(0)) in ("audio.corrupt", "audio.bad_rate")
    assert reason(wav_with_header(1)) == "audio.bad_rate"
    assert reason(wav_with_header(5_000_000)) == "audio.bad_rate"
    assert reason(float_wav(np.array([0.1, np.nan, 0.2, np.inf], np.float32))) == "audio.nonfinite"


def test_nan_samples_can_be_zeroed_instead():
    s = decode(float_wav(np.array([0.1, np.nan, 0.2, -np.inf], np.float32)), nonfinite="zero")
    np.testing.assert_array_equal(s["wav"].samples, np.array([0.1, 0.0, 0.2, 0.0], np.float32))
    assert s["__meta__"]["audio"]["wav"]["nonfinite_zeroed"] == 2 and s["wav"].source is None


def test_clipping_is_reported_and_can_drop():
    x = np.clip(tone(0.5, amplitude=2.0), -1, 1)
    frac = decode(float_wav(x))["__meta__"]["audio"]["wav"]["clipped_fraction"]
    assert 0.5 < frac < 0.8  # a sine at 2x full scale spends ~2/3 of its time clipped
    assert reason(float_wav(x), max_clipped=0.01) == "audio.clipped"


def test_one_sample_and_silence_survive_to_features():
    one = decode(wav_bytes(np.array([0.5], np.float32)))
    silent = decode(wav_bytes(np.zeros(16000, np.float32)))
    out = make_stage("audio.logmel", device="cpu").process_batch([one, silent])
    assert out[0]["logmel.npy"].shape == (80, 1) and out[1]["logmel.npy"].shape == (80, 101)
    assert np.isfinite(out[1]["logmel.npy"]).all() and float(out[1]["logmel.npy"].max()) == pytest.approx(-100.0)
