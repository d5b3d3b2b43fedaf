"""Regression tests for a second review of the audio stages: loudness targets that cannot be reached
say so (near-silence under the BS.1770 absolute gate, silence, short clips, capped gain) and any channel
count is measured; processed audio a lossy format cannot hold is kept losslessly instead of dropping
the sample; AAC end padding is trimmed on decode."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import soundfile as sf

from mmprep.build import BuildOptions, run_build
from mmprep.codecs import encode_field
from mmprep.config import parse_pipeline
from mmprep.errors import Drop
from mmprep.sample import Audio
from mmprep.stage import make_stage
from mmprep.stages.audio.io import read_audio, read_pyav
from mmprep.stages.audio.loudness import integrated_lufs
from mmprep.testing.audio import encoded_bytes, encoded_multichannel, noise, speech_like
from mmprep.testing.media import mp4_bytes, tone, wav_bytes, write
from tests.conftest import shard_members as members


def loudness(samples: np.ndarray, rate: int = 16000, **params) -> tuple[dict, np.ndarray]:
    """``audio.loudness`` on one decoded field: its ``meta.audio.wav.loudness`` and the samples after."""
    sample = {"__key__": "k", "__meta__": {}, "wav": Audio(samples=samples, rate=rate)}
    out = make_stage("audio.loudness", **params).process(sample)
    return out["__meta__"]["audio"]["wav"]["loudness"], out["wav"].samples


def test_lufs_target_under_the_absolute_gate_is_not_reached_and_no_gain_applied():
    quiet = noise(2.0, amplitude=1e-5)  # about -92 LUFS: every 400 ms block is under the -70 LUFS gate
    info, after = loudness(quiet, mode="lufs", target=-23.0)
    assert info == {"mode": "lufs", "measured": None, "gain_db": 0.0, "target": -23.0, "reached": False,
                    "reason": "below_gate"}
    assert np.array_equal(after, quiet)


@pytest.mark.parametrize("mode", ["lufs", "rms", "peak"])
def test_silence_says_target_not_reached(mode):
    info, after = loudness(np.zeros(16000, np.float32), mode=mode)
    assert info["reached"] is False and info["reason"] == "silent" and info["gain_db"] == 0.0
    assert not after.any()


def test_short_clip_says_target_not_reached():
    info, _ = loudness(speech_like(0.2), mode="lufs")
    assert info["reached"] is False and info["reason"] == "too_short" and info["measured"] is None


def test_capped_gain_and_peak_limit_name_the_reason():
    info, _ = loudness(speech_like(1.0) * 1e-3, mode="rms", target=-10.0, max_gain_db=20.0)
    assert (info["gain_db"], info["reached"], info["reason"]) == (20.0, False, "max_gain")
    info, after = loudness(speech_like(1.0), mode="rms", target=-1.0)
    assert info["reached"] is False and info["reason"] == "limit_peak"
    assert float(np.max(np.abs(after))) == pytest.approx(1.0, abs=1e-6)
    info, _ = loudness(speech_like(1.0), mode="rms", target=-30.0)
    assert info["reached"] is True and "reason" not in info


@pytest.mark.parametrize("rate", [16000, 44100])
def test_integrated_lufs_equals_pyloudnorm(rate):
    stereo = np.stack([speech_like(3.3, rate=rate), 0.3 * noise(3.3, rate=rate)])
    five = np.stack([speech_like(2.0, rate=rate, seed=s) * (0.2 + 0.15 * s) for s in range(5)])
    for x in (speech_like(3.3, rate=rate), stereo, five):
        want = pyloudnorm.Meter(rate).integrated_loudness(x.T.astype(np.float64))
        assert integrated_lufs(x, rate) == pytest.approx(want, abs=1e-9)


def test_lufs_on_eight_channels_is_measured_not_an_error():
    x8 = np.stack([speech_like(2.0, seed=c) * 0.1 for c in range(8)])
    info, after = loudness(x8, mode="lufs", target=-23.0)
    assert info["reached"] is True
    assert integrated_lufs(after, 16000) == pytest.approx(-23.0, abs=0.05)
    # 8 channels weigh 1 each: the same as the sum of the powers pyloudnorm measures on mono copies
    one = speech_like(2.0) * 0.1
    mono = pyloudnorm.Meter(16000).integrated_loudness(one.astype(np.float64))
    assert integrated_lufs(np.stack([one] * 8), 16000) == pytest.approx(mono + 10 * np.log10(8), abs=1e-9)


@pytest.mark.parametrize("rate", [8000, 16000, 22050, 44100])
def test_m4a_decodes_to_the_length_it_was_encoded_with(rate):
    x = speech_like(1.0, rate=rate)
    out = make_stage("audio.decode").process({"__key__": "k", "__meta__": {}, "m4a": encoded_bytes(x, rate, ext="m4a")})
    assert out["m4a"].samples.shape == (rate,)  # AAC pads its last frame to 1,024 samples: cut off again
    assert out["__meta__"]["duration"] == 1.0
    lag = int(np.argmax(np.correlate(out["m4a"].samples[:2048], x[:1024], mode="valid")))
    assert lag == 0  # the encoder's priming is skipped too: the first sample is the first sample


@pytest.mark.parametrize("rate", [None, 8000, 22050])
def test_video_audio_track_has_the_tracks_length(rate):
    out = make_stage("video.audio_track", rate=rate).process({"__key__": "k", "mp4": mp4_bytes(seconds=1.0, fps=10)})
    assert out["wav"].samples.shape == (rate or 16000,)
    assert out["__meta__"]["audio_track"]["wav"]["seconds"] == 1.0


# -- processed audio a lossy format cannot hold -----------------------------------------------------

def one_file_build(tmp_path: Path, name: str, data: bytes, stages: list[dict], **output) -> tuple[dict, dict, list]:
    """Build a one-file corpus: (stats, shard members, errors.jsonl lines)."""
    write(tmp_path / "in" / name, data)
    doc = {"name": "t", "stages": stages, "output": {"name": "t", **output}}
    stats = run_build(parse_pipeline(doc), BuildOptions(input=str(tmp_path / "in"), output=str(tmp_path / "out"),
                                                        progress=False, workers=1))
    errors = (tmp_path / "out" / "errors.jsonl").read_text().splitlines()
    return stats, members(tmp_path / "out"), [json.loads(line) for line in errors]


@pytest.mark.parametrize(("ext", "rate", "target"), [("opus", 48000, 22050), ("opus", 48000, 44100),
                                                     ("mp3", 44100, 96000), ("m4a", 44100, 192000)])
def test_resampled_lossy_field_its_format_cannot_hold_is_kept_as_flac(tmp_path, ext, rate, target):
    x = speech_like(1.0, rate=rate)
    stages = [{"stage": "audio.decode"}, {"stage": "audio.resample", "rate": target}]
    stats, got, errors = one_file_build(tmp_path, f"a.{ext}", encoded_bytes(x, rate, ext=ext), stages)
    assert stats["samples_out"] == 1 and errors == []  # was dropped: encode.unsupported
    assert sorted(got) == ["a.flac", "a.meta.json"]
    y, got_rate = sf.read(io.BytesIO(got["a.flac"]), dtype="float32")
    assert got_rate == target and abs(len(y) - target) <= target // 20  # mp3 decodes ~1 frame longer
    info = json.loads(got["a.meta.json"])["audio"]["flac"]
    assert info["from"] == ext and info["rate"] == target and info["original_rate"] == rate
    assert info["fallback"]["reason"] == "encode.unsupported" and f"not {target} Hz" in info["fallback"]["message"]


def test_fallback_takes_wav_when_flac_is_taken_and_leaves_holdable_rates_alone():
    sample = {"__key__": "k", "__meta__": {}, "flac": wav_bytes(speech_like(1.0), 16000, fmt="FLAC"),
              "opus": encoded_bytes(speech_like(1.0, rate=48000), 48000, ext="opus")}
    out = make_stage("audio.resample", rate=22050).process(make_stage("audio.decode").process(sample))
    assert sorted(k for k in out if not k.startswith("__")) == ["flac", "wav"]
    assert out["__meta__"]["audio"]["wav"]["from"] == "opus" and out["flac"].rate == 22050
    out = make_stage("audio.resample", rate=24000).process(make_stage("audio.decode").process(
        {"__key__": "k", "__meta__": {}, "opus": encoded_bytes(speech_like(1.0, rate=48000), 48000, ext="opus")}))
    assert "opus" in out and out["opus"].rate == 24000  # Opus holds 24 kHz: stays Opus


@pytest.mark.parametrize("ext", ["m4a", "opus"])
@pytest.mark.parametrize("channels", [6, 8])
def test_multichannel_aac_and_opus_decode_and_encode(tmp_path, ext, channels):
    """7.1 AAC/Opus crashed the worker process (PyAV's to_ndarray on a planar frame of 8 channels: SIGSEGV),
    and more than 2 channels could not be written back (encode.unsupported)."""
    x = np.stack([tone(1.0, freq=300.0 + 200.0 * c, rate=48000, amplitude=0.3) for c in range(channels)])
    stages = [{"stage": "audio.decode", "mono": False}, {"stage": "audio.loudness", "mode": "peak", "target": -6.0}]
    stats, got, errors = one_file_build(tmp_path, f"a.{ext}", encoded_multichannel(x, 48000, ext=ext), stages)
    assert stats["samples_out"] == 1 and errors == []
    y, rate = read_pyav(got[f"a.{ext}"], field=ext)  # FFmpeg's channel order, as written
    assert (rate, y.shape) == (48000, (channels, 48000))
    peaks = [round(float(np.argmax(np.abs(np.fft.rfft(y[c, 4800:43200])))) * 48000 / 38400) for c in range(channels)]
    want = [300 + 200 * c for c in range(channels)]
    if ext == "m4a":  # AAC low-passes the LFE channel (index 3 in 5.1 and 7.1): its 900 Hz tone is gone
        peaks, want = peaks[:3] + peaks[4:], want[:3] + want[4:]
    assert peaks == want  # every channel in its place


# -- short clips written as .opus / .aac ------------------------------------------------------------

@pytest.mark.parametrize("rate", [16000, 48000])
@pytest.mark.parametrize("n", [1, 1000, 16001])
def test_reencoded_opus_keeps_its_length(rate, n):
    """The last 20 ms Opus frame was zero-padded before encoding: every processed .opus grew by up to 20 ms."""
    x = speech_like(n / rate + 0.01, rate=rate)[:n]
    y, got_rate = read_audio(encode_field("opus", Audio(samples=x, rate=rate)), field="opus")
    assert (got_rate, y.shape) == (rate, (1, n))


@pytest.mark.parametrize(("n", "channels"), [(5, 1), (1024, 2), (300, 1)])
def test_short_aac_written_by_the_writer_reads_back(n, channels):
    """A few ADTS frames score too low in FFmpeg's format probe: a processed 5-sample .aac was written, then
    refused on reading as audio.corrupt. A field named .aac is opened as ADTS when the probe gives up."""
    x = np.full((channels, n), 0.25, np.float32)
    y, rate = read_audio(encode_field("aac", Audio(samples=x if channels > 1 else x[0], rate=8000)), field="aac")
    assert rate == 8000 and y.shape[0] == channels and y.shape[1] >= n  # ADTS keeps priming and padding


def test_a_stream_whose_rate_changes_mid_way_keeps_its_speed():
    """Joined ADTS files (or a broadcast capture) switching from 44.1 to 22.05 kHz: the 22.05 kHz frames were
    concatenated as if at 44.1 kHz (1.58 s instead of 2 s, the second tone an octave up)."""
    first = encode_field("aac", Audio(samples=tone(1.0, rate=44100, amplitude=0.3), rate=44100))
    second = encode_field("aac", Audio(samples=tone(1.0, freq=330.0, rate=22050, amplitude=0.3), rate=22050))
    y, rate = read_audio(first + second, field="aac")
    assert rate == 44100 and y.shape[-1] / rate == pytest.approx(2.0, abs=0.15)  # ADTS keeps its padding
    tail = y[0, -30000:-4000]
    assert np.argmax(np.abs(np.fft.rfft(tail))) * rate / len(tail) == pytest.approx(330.0, abs=3.0)


def test_a_microphone_array_decoded_to_flac_is_kept_as_wav(tmp_path):
    """FLAC holds at most 8 channels: a 16-channel array recording decoded with ``output: flac, mono: false``
    failed in libsndfile at write time (encode.error) and the sample was dropped."""
    x = np.stack([speech_like(1.0, seed=c) * 0.3 for c in range(16)])
    stages = [{"stage": "audio.decode", "mono": False, "output": "flac"}]
    stats, got, errors = one_file_build(tmp_path, "array.wav", wav_bytes(x, 16000), stages)
    assert stats["samples_out"] == 1 and errors == []
    assert sorted(got) == ["array.meta.json", "array.wav"]
    y, rate = sf.read(io.BytesIO(got["array.wav"]), dtype="float32", always_2d=True)
    assert (rate, y.shape) == (16000, (16000, 16))
    np.testing.assert_allclose(y.T, x, atol=1 / 32768 + 1e-7)  # 16-bit PCM, as the input
    info = json.loads(got["array.meta.json"])["audio"]["wav"]
    assert info["from"] == "wav" and info["fallback"] == {"reason": "encode.unsupported", "field": "flac",
                                                          "message": ".flac holds at most 8 channels, not 16"}
    with pytest.raises(Drop) as e:
        encode_field("flac", Audio(samples=x, rate=16000))
    assert e.value.reason == "encode.unsupported"


def test_lufs_at_a_rate_the_k_weighting_cannot_take_says_so():
    """At 2-2.5 kHz the K-weighting shelf (1.7 kHz) is unstable: the measure overflowed to -inf and read as
    near-silence (below_gate) on loud audio."""
    x = noise(2.0, rate=2000, amplitude=0.1)
    info, after = loudness(x, rate=2000, mode="lufs")
    assert info["reason"] == "bad_rate" and info["reached"] is False and np.array_equal(after, x)


@pytest.mark.parametrize("rate", [16000, 44100])
def test_m4a_round_trip_through_a_build_keeps_its_duration(tmp_path, rate):
    """Decode, change, re-encode as .m4a: each generation used to add the AAC padding (1 s -> 1.024 s -> ...)."""
    x = speech_like(1.0, rate=rate)
    stages = [{"stage": "audio.decode"}, {"stage": "audio.normalize", "peak_dbfs": -3.0}]
    stats, got, errors = one_file_build(tmp_path, "a.m4a", encoded_bytes(x, rate, ext="m4a"), stages)
    assert stats["samples_out"] == 1 and errors == []
    assert json.loads(got["a.meta.json"])["duration"] == 1.0
    y, got_rate = read_audio(got["a.m4a"], field="m4a")
    assert (got_rate, y.shape) == (rate, (1, rate))
    assert float(np.abs(y).max()) == pytest.approx(10 ** (-3 / 20), abs=0.1)  # AAC overshoots peaks a little


def test_resampling_that_leaves_no_sample_is_audio_empty():
    """100 samples at 384 kHz are 0.26 of a sample at 1 kHz: an empty clip went on (audio.zcr crashed on it,
    audio.trim called it silent)."""
    sample = {"__key__": "k", "__meta__": {}, "wav": Audio(samples=np.full(100, 0.5, np.float32), rate=384000)}
    with pytest.raises(Drop) as e:
        make_stage("audio.resample", rate=1000).process(sample)
    assert (e.value.reason, e.value.field) == ("audio.empty", "wav")
    one = make_stage("audio.resample", rate=1000).process(
        {"__key__": "k", "__meta__": {}, "wav": Audio(samples=np.full(384, 0.5, np.float32), rate=384000)})
    assert one["wav"].samples.shape == (1,)
