"""Regression tests for a black-box review of the audio stages: every decodable format lands, processed
compressed audio is written (not dropped), subtitle segments never carry text they may not contain,
mel settings a clip's rate cannot honour are dropped with a reason, absurd parameters fail at config
time, and ``mmprep audio-features`` neither overwrites outputs nor passes NaN through."""

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
from mmprep.errors import ConfigError, Drop
from mmprep.sample import Audio
from mmprep.stage import make_stage
from mmprep.stages.audio.io import read_audio
from mmprep.testing.audio import encoded_bytes, speech_like
from mmprep.testing.media import srt_text, wav_bytes, write
from tests.conftest import shard_members as members

ROOT = Path(__file__).resolve().parent.parent




def mixed_corpus(root: Path) -> list[str]:
    """One speech-like clip per format at 22.05 kHz (Opus: 48 kHz, the rate it encodes)."""
    x = speech_like(1.5, rate=22050)
    write(root / "w.wav", wav_bytes(x, 22050))
    write(root / "f.flac", wav_bytes(x, 22050, fmt="FLAC"))
    buf = io.BytesIO()
    sf.write(buf, x, 22050, format="OGG", subtype="VORBIS")
    write(root / "o.ogg", buf.getvalue())
    write(root / "m.mp3", encoded_bytes(x, 22050, ext="mp3"))
    write(root / "a.m4a", encoded_bytes(x, 22050, ext="m4a"))
    write(root / "p.opus", encoded_bytes(speech_like(1.5, rate=48000), 48000, ext="opus"))
    return ["a", "f", "m", "o", "p", "w"]


def test_shipped_pipeline_keeps_every_decodable_format(tmp_path):
    keys = mixed_corpus(tmp_path / "in")
    doc = yaml.safe_load((ROOT / "pipelines" / "audio.yaml").read_text())
    for st in doc["stages"]:
        if st["stage"] in ("audio.logmel", "audio.mfcc"):
            st["device"] = "cpu"
    stats = run_build(parse_pipeline(doc), BuildOptions(input=str(tmp_path / "in"), output=str(tmp_path / "out"),
                                                        progress=False, workers=1))
    got = members(tmp_path / "out")
    assert stats["samples_out"] == len(keys), stats
    for key in keys:
        samples, rate = read_audio(got[f"{key}.wav"], field="wav")
        assert rate == 16000 and samples.shape[-1] > 8000
        assert np.load(io.BytesIO(got[f"{key}.logmel.npy"])).shape[0] == 80
        meta = json.loads(got[f"{key}.meta.json"])
        assert key == "w" or meta["audio"]["wav"]["from"] != "wav"


@pytest.mark.parametrize("ext", ["mp3", "m4a", "aac", "opus"])
def test_processed_compressed_audio_is_encoded_not_dropped(ext):
    audio = Audio(samples=speech_like(1.0, rate=16000), rate=16000, format=ext).replace(speech_like(1.0) * 0.5)
    data = encode_field(ext, audio)
    samples, rate = read_audio(data, field=ext)
    assert rate == 16000 and abs(samples.shape[-1] - 16000) < 2500


def test_decode_output_puts_any_format_under_one_lossless_field():
    sample = {"__key__": "k", "__meta__": {}, "mp3": encoded_bytes(speech_like(1.0), 16000, ext="mp3")}
    out = make_stage("audio.decode", output="flac").process(sample)
    assert "mp3" not in out and isinstance(out["flac"], Audio)
    assert out["__meta__"]["audio"]["flac"]["from"] == "mp3"
    assert sf.info(io.BytesIO(encode_field("flac", out["flac"]))).format == "FLAC"


@pytest.mark.parametrize(("written", "ext", "kept"), [("FLOAT", "wav", "FLOAT"), ("PCM_24", "wav", "PCM_24"),
                                                      ("PCM_24", "flac", "PCM_24"), ("FLOAT", "flac", "PCM_24")])
def test_processed_audio_keeps_the_input_precision(written, ext, kept):
    buf = io.BytesIO()
    sf.write(buf, speech_like(0.5), 16000, format="WAV", subtype=written)
    sample = make_stage("audio.decode").process({"__key__": "k", "__meta__": {}, "wav": buf.getvalue()})
    sample = make_stage("audio.normalize").process(sample)  # processed: the source bytes are gone
    assert sf.info(io.BytesIO(encode_field(ext, sample["wav"]))).subtype == kept


def seg_sample(subs: bytes | str, seconds: float = 12.0) -> dict:
    return {"__key__": "k", "__meta__": {}, "wav": Audio(samples=speech_like(seconds), rate=16000), "srt": subs}


def test_subtitle_segments_keep_long_cues_whole_and_skip_empty_ones():
    subs = srt_text([(0.5, 9.5, "one long cue"), (10.0, 11.0, " "), (11.0, 11.8, "short")])
    kids = make_stage("audio.segment", mode="subtitle", max_seconds=4.0, pad_ms=0).process(seg_sample(subs))
    assert [k["txt"] for k in kids] == ["one long cue", "short"]
    assert kids[0]["__meta__"]["segment"]["end_sample"] - kids[0]["__meta__"]["segment"]["start_sample"] == 9 * 16000
    assert kids[0]["__meta__"]["segment"]["long"] is True and "long" not in kids[1]["__meta__"]["segment"]


@pytest.mark.parametrize("encoding", ["gbk", "utf-16"])
def test_subtitle_segments_read_legacy_and_utf16_text(encoding):
    text = "这是一个用于测试的中文字幕句子，内容足够长。"
    subs = srt_text([(0.5, 2.0, text), (3.0, 4.0, "第二句话也是中文字幕。")]).encode(encoding)
    kids = make_stage("audio.segment", mode="subtitle").process(seg_sample(subs))
    assert kids[0]["txt"] == text


def mel_drop(stage: str, rate: int, **params) -> Drop:
    x = speech_like(0.5, rate=rate)
    got = make_stage(stage, device="cpu", **params).process_batch([
        {"__key__": "k", "__meta__": {}, "wav": Audio(samples=x, rate=rate)}])[0]
    assert isinstance(got, Drop), "expected a drop, got features"
    return got


@pytest.mark.parametrize(("stage", "rate", "params"), [
    ("audio.logmel", 8000, {"fmin": 5000.0}),               # fmin over Nyquist: NaN rows
    ("audio.mfcc", 8000, {"fmax": 8000.0}),                 # fmax over Nyquist: floor rows
    ("audio.logmel", 16000, {"n_mels": 256, "n_fft": 256}),  # more bands than FFT bins
])
def test_mel_settings_the_rate_cannot_honour_are_dropped_with_a_reason(stage, rate, params):
    drop = mel_drop(stage, rate, **params)
    assert drop.reason == f"{stage.split('.')[1]}.bad_rate" and drop.field == f"{stage.split('.')[1]}.npy"


def test_mel_settings_that_fit_still_compute_finite_rows():
    got = make_stage("audio.logmel", device="cpu", fmin=100.0, fmax=4000.0).process(
        {"__key__": "k", "__meta__": {}, "wav": Audio(samples=speech_like(0.5, rate=8000), rate=8000)})
    assert np.isfinite(got["logmel.npy"]).all()


def test_envelope_without_centring_on_a_short_clip_is_too_short_not_an_fft_error():
    batch = [{"__key__": "k", "__meta__": {}, "wav": Audio(samples=speech_like(0.01), rate=16000)}]
    got = make_stage("audio.envelope", device="cpu", center=False).process_batch(batch)[0]
    assert isinstance(got, Drop) and got.reason == "envelope.too_short"


@pytest.mark.parametrize(("stage", "params", "key"), [
    ("audio.logmel", {"n_fft": 10**12}, "n_fft"), ("audio.mfcc", {"n_mels": 10**12}, "n_mels"),
    ("audio.spectrogram", {"n_fft": 10**12}, "n_fft"), ("audio.denoise", {"hop": 1024, "n_fft": 512}, "hop"),
    ("audio.decode", {"min_rate": 48000, "max_rate": 16000}, "min_rate"),
    ("audio.logmel", {"fmin": 4000.0, "fmax": 2000.0}, "fmin"),
])
def test_absurd_parameters_fail_at_config_time(stage, params, key):
    with pytest.raises(ConfigError) as err:  # what `mmprep validate` and a build run first
        instantiate(parse_pipeline({"stages": [{"stage": stage, **params}]}))
    assert key in err.value.key, err.value


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmprep", "audio-features", *args], capture_output=True, text=True,
                          timeout=120)


def test_cli_keeps_the_extension_and_refuses_same_names(tmp_path):
    a = write(tmp_path / "a.wav", wav_bytes(speech_like(1.0), 16000))
    b = write(tmp_path / "a.flac", wav_bytes(speech_like(0.5), 16000, fmt="FLAC"))
    res = cli(str(a), str(b), "-o", str(tmp_path / "f"), "--device", "cpu")
    assert res.returncode == 0, res.stderr
    assert np.load(tmp_path / "f" / "a.wav.logmel.npy").shape[1] == 101
    assert np.load(tmp_path / "f" / "a.flac.logmel.npy").shape[1] == 51
    c = write(tmp_path / "sub" / "a.wav", wav_bytes(speech_like(0.3), 16000))
    res = cli(str(a), str(c), "-o", str(tmp_path / "g"))
    assert res.returncode == 2 and res.stderr.strip().startswith("mmprep: config error: files:")
    assert not (tmp_path / "g").exists()


def test_cli_skips_nonfinite_audio(tmp_path):
    buf = io.BytesIO()
    x = speech_like(0.5)
    x[100] = np.nan
    sf.write(buf, x, 16000, format="WAV", subtype="FLOAT")
    bad = write(tmp_path / "nan.wav", buf.getvalue())
    ok = write(tmp_path / "ok.wav", wav_bytes(speech_like(0.5), 16000))
    res = cli(str(bad), str(ok), "-o", str(tmp_path / "f"), "--device", "cpu")
    assert res.returncode == 1 and "nan.wav: skipped (audio.nonfinite" in res.stderr
    assert not (tmp_path / "f" / "nan.wav.logmel.npy").exists() and (tmp_path / "f" / "ok.wav.logmel.npy").exists()


@pytest.mark.parametrize(("args", "key"), [(["--rate", "0"], "rate"), (["--rate", "10000000"], "rate"),
                                           (["--n-fft", "100000000000"], "n_fft")])
def test_cli_bad_numbers_exit_2_with_one_line(tmp_path, args, key):
    a = write(tmp_path / "a.wav", wav_bytes(speech_like(0.2), 16000))
    res = cli(str(a), *args, "-o", str(tmp_path / "f"))
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"mmprep: config error: {key}:"), res.stderr
