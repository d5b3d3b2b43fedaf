"""Regression tests for a third review of the audio stages and features: energy VAD on audio with no
pause (speech from start to end, as after ``audio.trim``) finds it all; log-mel/MFCC match librosa for
an odd ``n_fft`` (frame count and filterbank); an audio field whose extension lies is re-encoded to what
it names instead of passing the original bytes through; ``audio.segment`` settings that can keep no
piece fail at config time."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from mmprep.build import BuildOptions, run_build
from mmprep.codecs import encode_field
from mmprep.config import instantiate, parse_pipeline
from mmprep.errors import ConfigError
from mmprep.features import FrameParams, compute, logmel, mel_filterbank, mfcc, pad_batch, zero_crossing_rate
from mmprep.sample import Audio
from mmprep.stage import make_stage
from mmprep.stages.audio.io import read_pyav, stored_format
from mmprep.stages.audio.vad import intervals, speech_mask
from mmprep.testing.audio import burst_signal, chirp, encoded_bytes, noise, speech_like, tone
from mmprep.testing.media import wav_bytes, write
from tests.conftest import shard_members as members

pytestmark = pytest.mark.filterwarnings("ignore:n_fft=.*too large:UserWarning")


def sample_of(x: np.ndarray, rate: int = 16000) -> dict:
    return {"__key__": "k", "__meta__": {}, "wav": Audio(samples=x, rate=rate)}


# -- 1. energy VAD on audio with no pause -----------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 5])
def test_energy_vad_calls_speech_with_no_pause_speech_throughout(seed):
    mask = speech_mask(speech_like(3.0, seed=seed), 16000)  # the noise floor used to be the speech itself
    assert mask.shape == (300,) and mask.all()


@pytest.mark.parametrize(("start", "end"), [(0.05, 2.95), (0.02, 2.98)])
def test_energy_vad_finds_speech_between_short_edge_silences(start, end):
    assert intervals(speech_mask(burst_signal([(start, end)], 3.0), 16000)) == [(start, end)]


@pytest.mark.parametrize("x", [noise(3.0), noise(3.0, amplitude=0.002), tone(3.0), chirp(3.0)],
                         ids=["noise", "faint-noise", "tone", "chirp"])
def test_energy_vad_still_calls_a_steady_sound_without_pauses_non_speech(x):
    assert not speech_mask(x, 16000).any()


def test_trim_then_vad_as_the_audio_pipeline_runs_them():
    s = sample_of(burst_signal([(0.5, 2.5)], 3.0, noise_rms=1e-5))  # -100 dBFS: trimmed to 20 ms each side
    s = make_stage("audio.vad").process(make_stage("audio.trim", top_db=60, pad_ms=20).process(s))
    assert s["__meta__"]["audio"]["wav"]["trim"]["start"] == 0.48
    assert s["vad.json"]["intervals"] == [[0.02, 2.02]]
    assert s["__meta__"]["vad"] == {"field": "wav", "frame_ms": 10, "speech_seconds": 2.0, "speech_ratio": 0.9804,
                                    "segments": 1}


def test_vad_segment_of_continuous_speech_is_one_child():
    kids = make_stage("audio.segment", mode="vad", pad_ms=0).process(sample_of(speech_like(3.0)))
    assert [(k["__meta__"]["segment"]["start"], k["__meta__"]["segment"]["end"]) for k in kids] == [(0.0, 3.0)]


# -- 2. odd n_fft: librosa's frame count and FFT bin frequencies ----------------------------------

ODD = [401, 511, 513]


def _librosa():
    return pytest.importorskip("librosa")


@pytest.mark.parametrize("n_fft", ODD)
def test_mel_filterbank_matches_librosa_for_odd_n_fft(n_fft):
    librosa = _librosa()
    ours = mel_filterbank(rate=16000, n_fft=n_fft, n_mels=64)
    ref = librosa.filters.mel(sr=16000, n_fft=n_fft, n_mels=64)
    assert ours.shape == ref.shape == (64, n_fft // 2 + 1)
    np.testing.assert_allclose(ours, ref, atol=1e-6)  # the stated tolerance (was 1.1e-3 for 401)


@pytest.mark.parametrize(("n_fft", "n", "frames"), [(401, 32000, 200), (401, 32001, 201), (400, 32000, 201),
                                                    (513, 1, 1), (401, 0, 0), (511, 159, 1), (511, 160, 1)])
def test_centred_frame_count_is_librosas(n_fft, n, frames):
    librosa = _librosa()
    assert FrameParams(rate=16000, n_fft=n_fft, hop=160).n_frames(n) == frames
    if n:
        assert librosa.stft(np.zeros(n, np.float32), n_fft=n_fft, hop_length=160).shape[1] == frames


def _odd_clips() -> list[np.ndarray]:
    return [speech_like(2.0, seed=2), chirp(1.03, f0=50, f1=7000), noise(0.4995, seed=3), np.array([0.9], np.float32)]


@pytest.mark.parametrize("n_fft", ODD)
def test_logmel_and_mfcc_match_librosa_for_odd_n_fft(n_fft):
    librosa = _librosa()
    clips = _odd_clips()
    packed_lm = compute("logmel", clips, rate=16000, device="cpu", n_fft=n_fft, hop=160, n_mels=64)  # packed CPU path
    packed_mf = compute("mfcc", clips, rate=16000, device="cpu", n_fft=n_fft, hop=160, n_mels=64, n_mfcc=13)
    batch, lengths = pad_batch(clips)  # the padded torch path (what CUDA runs)
    lm, frames = logmel(batch, lengths, rate=16000, n_fft=n_fft, hop=160, n_mels=64)
    mf, _ = mfcc(batch, lengths, rate=16000, n_fft=n_fft, hop=160, n_mels=64, n_mfcc=13)
    for i, x in enumerate(clips):
        kw = {"sr": 16000, "n_fft": n_fft, "hop_length": 160, "n_mels": 64}
        ref = librosa.power_to_db(librosa.feature.melspectrogram(y=x, **kw), top_db=80.0)
        ref_mf = librosa.feature.mfcc(y=x, n_mfcc=13, **kw)
        assert packed_lm[i].shape == lm[i, :, : frames[i]].shape == ref.shape
        assert packed_mf[i].shape == mf[i, :, : frames[i]].shape == ref_mf.shape
        np.testing.assert_allclose(packed_lm[i], ref, atol=1e-2)  # docs: log-mel within 0.01 dB
        np.testing.assert_allclose(lm[i, :, : frames[i]].numpy(), ref, atol=1e-2)
        np.testing.assert_allclose(packed_mf[i], ref_mf, atol=1e-2)  # docs: MFCC within 0.01
        np.testing.assert_allclose(mf[i, :, : frames[i]].numpy(), ref_mf, atol=1e-2)


def test_zero_crossing_rate_matches_librosa_for_odd_frame_length():
    librosa = _librosa()
    clips = _odd_clips()
    batch, lengths = pad_batch(clips)
    zcr, frames = zero_crossing_rate(batch, lengths, rate=16000, frame_length=401, hop=160)
    for i, x in enumerate(clips):
        ref = librosa.feature.zero_crossing_rate(x, frame_length=401, hop_length=160)
        np.testing.assert_allclose(zcr[i, :, : frames[i]].numpy(), ref, atol=1e-6)


# -- 3. an audio field whose extension lies --------------------------------------------------------

def test_stored_format_names_what_the_bytes_are():
    x = speech_like(0.5)
    mp3, m4a, wav = encoded_bytes(x, ext="mp3"), encoded_bytes(x, ext="m4a"), wav_bytes(x, 16000)
    ogg = io.BytesIO()
    sf.write(ogg, x, 16000, format="OGG", subtype="VORBIS")
    assert [stored_format(mp3, field=f) for f in ("wav", "mp3", "x.wav")] == ["mp3", "mp3", "mp3"]
    assert [stored_format(wav, field=f) for f in ("wav", "mp3", "flac")] == ["wav", "wav", "wav"]
    assert [stored_format(m4a, field=f) for f in ("m4a", "wav")] == ["m4a", "m4a"]
    assert [stored_format(ogg.getvalue(), field=f) for f in ("ogg", "opus", "wav")] == ["ogg", "ogg", "ogg"]
    assert stored_format(b"not audio at all", field="wav") is None


def test_mp3_named_wav_is_reencoded_and_a_true_wav_passes_through():
    x = speech_like(1.0)
    mp3 = encoded_bytes(x, ext="mp3")
    s = make_stage("audio.decode").process({"__key__": "k", "__meta__": {}, "wav": mp3})
    assert s["wav"].format == "mp3" and s["wav"].source == mp3
    out = encode_field("wav", s["wav"])
    assert out[:4] == b"RIFF" and sf.info(io.BytesIO(out)).format == "WAV"
    np.testing.assert_allclose(sf.read(io.BytesIO(out), dtype="float32")[0], s["wav"].samples, atol=1 / 16384)
    wav = wav_bytes(x, 16000)
    s = make_stage("audio.decode").process({"__key__": "k", "__meta__": {}, "wav": wav})
    assert s["wav"].format == "wav" and encode_field("wav", s["wav"]) is wav  # byte-identical, not re-encoded
    s = make_stage("audio.decode").process({"__key__": "k", "__meta__": {}, "mp3": wav})  # a WAV named .mp3
    y, rate = read_pyav(encode_field("mp3", s["mp3"]), field="mp3")
    assert rate == 16000 and abs(y.shape[-1] - 16000) < 2000  # now MP3 bytes (LAME priming/padding aside)


def test_build_writes_real_wav_for_an_mp3_named_wav(tmp_path: Path):
    lie, true = encoded_bytes(speech_like(2.0), ext="mp3"), wav_bytes(speech_like(1.0, seed=1), 16000)
    write(tmp_path / "in" / "x.wav", lie)
    write(tmp_path / "in" / "y.wav", true)
    doc = {"name": "t", "stages": [{"stage": "audio.decode", "output": "wav"}], "output": {"name": "t"}}
    stats = run_build(parse_pipeline(doc), BuildOptions(input=str(tmp_path / "in"), output=str(tmp_path / "out"),
                                                        progress=False, workers=1))
    got = members(tmp_path / "out")
    assert stats["samples_out"] == 2, stats
    assert got["y.wav"] == true
    info = sf.info(io.BytesIO(got["x.wav"]))
    assert got["x.wav"][:4] == b"RIFF" and info.format == "WAV" and info.samplerate == 16000
    meta = json.loads(got["x.meta.json"])
    assert info.frames == round(meta["audio"]["wav"]["seconds"] * 16000)


# -- 4. audio.segment settings that keep nothing ----------------------------------------------------

@pytest.mark.parametrize("params", [{"mode": "vad", "min_seconds": 5, "max_seconds": 1},
                                    {"mode": "fixed", "window": 1.0, "min_seconds": 2.0}])
def test_segment_that_can_keep_nothing_fails_at_config_time(params):
    with pytest.raises(ConfigError) as err:
        instantiate(parse_pipeline({"stages": [{"stage": "audio.segment", **params}]}))
    assert err.value.key.endswith("min_seconds")


@pytest.mark.parametrize("params", [{"mode": "vad", "min_seconds": 1, "max_seconds": 1},
                                    {"mode": "vad", "min_seconds": 5, "max_seconds": None},
                                    {"mode": "subtitle", "min_seconds": 5, "max_seconds": 1}])
def test_segment_settings_that_can_keep_pieces_pass(params):
    instantiate(parse_pipeline({"stages": [{"stage": "audio.segment", **params}]}))


def test_validate_exits_2_naming_min_seconds(tmp_path: Path):
    doc = {"name": "s", "stages": [{"stage": "audio.decode"},
                                   {"stage": "audio.segment", "mode": "vad", "min_seconds": 5, "max_seconds": 1}],
           "output": {"name": "s"}}
    path = write(tmp_path / "p.yaml", yaml.safe_dump(doc).encode())
    res = subprocess.run([sys.executable, "-m", "mmprep", "validate", str(path)], capture_output=True, text=True,
                         timeout=120)
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr
    assert lines[0].startswith("mmprep: config error: stages[1].min_seconds: must be <= max_seconds (1.0)")
