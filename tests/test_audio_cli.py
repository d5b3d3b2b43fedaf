"""``mmprep audio-features`` as a real process: arrays + frame parameters out, config errors exit 2."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

from mmprep.testing.audio import chirp, speech_like
from mmprep.testing.media import wav_bytes, write


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmprep", "audio-features", *args], capture_output=True, text=True,
                          timeout=120)


def test_features_for_files_with_frame_params(tmp_path):
    a = write(tmp_path / "a.wav", wav_bytes(speech_like(1.0), 16000))
    b = write(tmp_path / "b.wav", wav_bytes(chirp(0.5, rate=8000), 8000))
    res = run(str(a), str(b), "-o", str(tmp_path / "f"), "-k", "mfcc", "--rate", "16000", "--device", "cpu")
    assert res.returncode == 0, res.stderr
    assert np.load(tmp_path / "f" / "a.wav.mfcc.npy").shape == (13, 101)
    assert np.load(tmp_path / "f" / "b.wav.mfcc.npy").shape == (13, 51)  # resampled to 16 kHz first
    doc = json.loads((tmp_path / "f" / "b.wav.mfcc.json").read_text())
    assert (doc["rate"], doc["hop"], doc["frames"], doc["frame_offset_samples"]) == (16000, 160, 51, 0)


def test_config_errors_exit_2_naming_the_key(tmp_path):
    a = write(tmp_path / "a.wav", wav_bytes(speech_like(0.2), 16000))
    res = run(str(a), "--hop", "0")
    assert res.returncode == 2 and res.stderr.strip().splitlines()[-1].startswith("mmprep: config error: hop:")
    res = run(str(a), "-k", "nope")
    assert res.returncode == 2 and "config error: kind:" in res.stderr


def test_unreadable_files_are_reported_and_exit_1(tmp_path):
    a = write(tmp_path / "a.wav", wav_bytes(speech_like(0.2), 16000))
    bad = write(tmp_path / "bad.wav", b"RIFF\x00\x00\x00\x00WAVEjunk")
    res = run(str(a), str(bad), "-o", str(tmp_path / "f"), "--device", "cpu")
    assert res.returncode == 1 and "bad.wav: skipped (audio.corrupt" in res.stderr
    assert (tmp_path / "f" / "a.wav.logmel.npy").exists() and not (tmp_path / "f" / "bad.wav.logmel.npy").exists()


def test_a_path_that_is_no_file_is_a_config_error_before_any_work(tmp_path):
    a = write(tmp_path / "a.wav", wav_bytes(speech_like(0.2), 16000))
    res = run(str(a), str(tmp_path / "missing.wav"), "-o", str(tmp_path / "f"), "--device", "cpu")
    assert res.returncode == 2
    assert res.stderr.strip() == f"mmprep: config error: files: {tmp_path / 'missing.wav'} is not a file"
    assert not (tmp_path / "f").exists()
