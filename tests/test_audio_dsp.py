"""Signal stages on audio made in code: resample, denoise, loudness, pre-emphasis, VAD, trim, segment."""

from __future__ import annotations

import numpy as np
import pytest

from mmprep.errors import Drop
from mmprep.sample import Audio
from mmprep.stage import make_stage
from mmprep.stages.audio.loudness import integrated_lufs
from mmprep.stages.audio.vad import intervals, speech_mask
from mmprep.testing.audio import burst_signal, chirp, noise, snr_db, speech_like, tone, tone_bursts
from mmprep.testing.media import srt_text

BURSTS = [(0.5, 1.2), (2.0, 2.35), (3.1, 4.4)]


def sample_of(x: np.ndarray, rate: int = 16000, **fields) -> dict:
    return {"__key__": "k", "__meta__": {}, "wav": Audio(samples=x, rate=rate), **fields}


def peak_hz(x: np.ndarray, rate: int) -> float:
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.argmax(spec) * rate / len(x))


@pytest.mark.parametrize(("src", "dst"), [(44100, 16000), (16000, 48000), (22050, 8000)])
@pytest.mark.parametrize("quality", ["quick", "very_high"])
def test_resample_keeps_a_tone_frequency(src, dst, quality):
    stage = make_stage("audio.resample", rate=dst, quality=quality)
    s = stage.process(sample_of(tone(1.0, freq=1000.0, rate=src), src))
    y = s["wav"]
    assert y.rate == dst and abs(len(y.samples) - dst) <= 1
    assert abs(peak_hz(y.samples, dst) - 1000.0) <= 1.0  # 1 Hz resolution of a 1 s FFT
    assert s["__meta__"]["audio"]["wav"] == {"original_rate": src, "rate": dst}


def test_resample_removes_content_above_the_new_nyquist():
    y = make_stage("audio.resample", rate=8000).process(sample_of(tone(1.0, freq=6000.0, rate=32000), 32000))["wav"]
    inner = y.samples[400:-400]  # away from the filter's start/end transients
    assert np.sqrt(np.mean(inner**2)) < 1e-3  # 6 kHz cannot exist at 8 kHz: filtered out, not aliased to 2 kHz


@pytest.mark.parametrize(("method", "margin_db"), [("subtract", 6.0), ("gate", 6.0)])
def test_denoise_improves_snr_on_a_noisy_tone(method, margin_db):
    clean = tone_bursts(3.0, freq=440.0)
    noisy = clean + noise(3.0, amplitude=0.1, seed=1)
    out = make_stage("audio.denoise", method=method).process(sample_of(noisy))["wav"].samples
    before, after = snr_db(clean, noisy), snr_db(clean, out)
    assert len(out) == len(noisy)
    assert after - before >= margin_db, (before, after)  # measured: subtract +8.1 dB, gate +9.8 dB


@pytest.mark.parametrize("target", [-23.0, -16.0, -30.0])
def test_lufs_normalisation_hits_target_within_half_lu(target):
    x = 0.05 * speech_like(5.0, seed=2)
    s = make_stage("audio.loudness", mode="lufs", target=target).process(sample_of(x))
    assert abs(integrated_lufs(s["wav"].samples, 16000) - target) < 0.5
    assert s["__meta__"]["audio"]["wav"]["loudness"]["reached"] is True


def test_peak_and_rms_modes_and_peak_limit():
    x = chirp(1.0, amplitude=0.1)
    peak = make_stage("audio.loudness", mode="peak", target=-3.0).process(sample_of(x))["wav"].samples
    assert 20 * np.log10(np.abs(peak).max()) == pytest.approx(-3.0, abs=0.01)
    rms = make_stage("audio.loudness", mode="rms", target=-20.0).process(sample_of(x))["wav"].samples
    assert 10 * np.log10(np.mean(rms.astype(np.float64) ** 2)) == pytest.approx(-20.0, abs=0.01)
    # a sine cannot reach -1 dBFS RMS without passing 0 dBFS peak: the gain stops at the peak
    loud = make_stage("audio.loudness", mode="rms", target=-1.0).process(sample_of(x))
    assert np.abs(loud["wav"].samples).max() <= 1.0 and loud["__meta__"]["audio"]["wav"]["loudness"]["reached"] is False


def test_loudness_leaves_silence_and_short_clips_alone():
    s = make_stage("audio.loudness").process(sample_of(np.zeros(16000, np.float32)))
    assert s["__meta__"]["audio"]["wav"]["loudness"] == {"mode": "lufs", "measured": None, "gain_db": 0.0,
                                                         "target": -23.0, "reached": False, "reason": "silent"}
    with pytest.raises(Drop, match="audio.too_short"):
        make_stage("audio.loudness", on_short="drop").process(sample_of(tone(0.1)))


def test_preemphasis_is_the_first_order_filter():
    x = chirp(0.1)
    y = make_stage("audio.preemphasis", coef=0.9).process(sample_of(x))["wav"].samples
    np.testing.assert_allclose(y[1:], x[1:] - 0.9 * x[:-1], atol=1e-7)
    assert y[0] == x[0]


@pytest.mark.parametrize("rate", [16000, 22050, 44100])
def test_energy_vad_finds_bursts_within_20_ms(rate):
    found = intervals(speech_mask(burst_signal(BURSTS, 5.0, rate=rate), rate))
    assert len(found) == len(BURSTS)
    for (a, b), (fa, fb) in zip(BURSTS, found, strict=True):
        assert abs(fa - a) <= 0.02 and abs(fb - b) <= 0.02


@pytest.mark.parametrize(("noise_rms", "margin_db", "tol"), [(0.01, 12.0, 0.02), (0.05, 6.0, 0.05)])
def test_energy_vad_under_noise(noise_rms, margin_db, tol):
    x = burst_signal(BURSTS, 5.0, noise_rms=noise_rms)  # SNR ~23 dB and ~9 dB
    found = intervals(speech_mask(x, 16000, margin_db=margin_db))
    assert len(found) == 3
    assert all(abs(fa - a) <= tol and abs(fb - b) <= tol for (a, b), (fa, fb) in zip(BURSTS, found, strict=True))


def test_webrtc_vad_finds_burst_onsets():
    pytest.importorskip("webrtcvad")
    found = [iv for iv in intervals(speech_mask(burst_signal(BURSTS, 5.0), 16000, method="webrtc")) if iv[0] > 0.2]
    assert len(found) == 3
    for (a, b), (fa, fb) in zip(BURSTS, found, strict=True):
        assert abs(fa - a) <= 0.02  # onsets within 20 ms; WebRTC holds speech ~100-200 ms past the end
        assert b - 0.02 <= fb <= b + 0.25


def test_vad_stage_writes_intervals():
    s = make_stage("audio.vad").process(sample_of(burst_signal(BURSTS, 5.0)))
    assert s["vad.json"]["intervals"] == [[0.5, 1.2], [2.0, 2.35], [3.1, 4.4]]
    assert s["__meta__"]["vad"]["segments"] == 3 and s["__meta__"]["vad"]["speech_seconds"] == pytest.approx(2.35)


def test_trim_cuts_silence_and_drops_all_silent():
    x = np.concatenate([np.zeros(8000), tone(1.0), np.zeros(4000)]).astype(np.float32)
    s = make_stage("audio.trim", pad_ms=0).process(sample_of(x))
    assert s["__meta__"]["audio"]["wav"]["trim"] == {"start": 0.5, "end": 1.5, "start_sample": 8000,
                                                      "end_sample": 24000}
    assert len(s["wav"].samples) == 16000
    with pytest.raises(Drop, match="audio.silent"):
        make_stage("audio.trim").process(sample_of(np.zeros(1000, np.float32)))


def test_fixed_segments_fan_out_with_exact_times():
    kids = make_stage("audio.segment", mode="fixed", window=2.0, min_seconds=0.5).process(sample_of(chirp(5.3)))
    assert [k["__key__"] for k in kids] == ["k/_seg0000", "k/_seg0001", "k/_seg0002"]
    assert [(k["__meta__"]["segment"]["start"], k["__meta__"]["segment"]["end"]) for k in kids] == [
        (0.0, 2.0), (2.0, 4.0), (4.0, 5.3)]
    assert [len(k["wav"].samples) for k in kids] == [32000, 32000, 20800]


def test_vad_segments_follow_speech():
    kids = make_stage("audio.segment", mode="vad", pad_ms=0).process(sample_of(burst_signal(BURSTS, 5.0)))
    got = [(k["__meta__"]["segment"]["start"], k["__meta__"]["segment"]["end"]) for k in kids]
    assert got == BURSTS
    with pytest.raises(Drop, match="audio.no_segments"):
        make_stage("audio.segment", mode="vad").process(sample_of(np.zeros(16000, np.float32)))


def test_subtitle_segments_carry_cue_text():
    srt = srt_text([(0.25, 1.0, "hello there"), (1.5, 2.75, "general kenobi"), (9.0, 10.0, "past the end")])
    kids = make_stage("audio.segment", mode="subtitle", pad_ms=0, keep=["jpg"]).process(
        sample_of(chirp(3.0), srt=srt, jpg=b"jpegbytes"))
    assert [(k["txt"], k["__meta__"]["segment"]["start"], k["__meta__"]["segment"]["end"]) for k in kids] == [
        ("hello there", 0.25, 1.0), ("general kenobi", 1.5, 2.75)]
    assert kids[0]["jpg"] == b"jpegbytes" and "srt" not in kids[0]
    with pytest.raises(Drop, match="audio.no_subtitles"):
        make_stage("audio.segment", mode="subtitle").process(sample_of(chirp(1.0)))
