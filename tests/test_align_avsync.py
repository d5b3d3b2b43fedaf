"""A/V offset from flash-and-beep videos at 25 fps (mmprep.align.avsync) and its failure records."""

from __future__ import annotations

import pytest

from mmprep.align.api import av_sync
from mmprep.testing.media import wav_bytes
from mmprep.testing.speech import beeps, flash_beep_mp4


@pytest.mark.parametrize(("delay", "seed"), [(0.0, 0), (0.137, 1), (-0.215, 2), (0.48, 3), (-0.06, 4)])
def test_offset_within_20ms(delay, seed):
    data, _ = flash_beep_mp4(delay=delay, seed=seed, fps=25, flashes=7)
    rec = av_sync(data)
    assert rec["status"] == "ok", rec
    assert abs(rec["offset"] - delay) <= 0.020, rec
    assert 0.5 <= rec["confidence"] <= 1.0


def test_video_without_audio_fails_with_reason():
    data, _ = flash_beep_mp4(audio=False)
    assert av_sync(data) == {"status": "failed", "offset": None, "confidence": 0.0, "reasons": ["av.no_audio"]}


def test_audio_only_and_garbage_fail_not_crash():
    assert av_sync(wav_bytes(beeps([0.5, 1.5], 3.0)))["reasons"] == ["av.no_video"]
    assert av_sync(b"\x00\x01garbage" * 100)["status"] == "failed"


def test_static_video_has_too_few_events():
    data, _ = flash_beep_mp4(flashes=1, seconds=3.0)
    rec = av_sync(data)
    assert rec["status"] == "failed" and rec["reasons"] == ["av.too_few_events"]


def test_av_stage_records_and_corrects_decoded_audio():
    import numpy as np

    from mmprep.sample import Audio
    from mmprep.stage import get_stage

    data, _ = flash_beep_mp4(delay=0.2, seed=5, flashes=7)
    cls = get_stage("align.av")
    stage = cls(cls.Config(correct=True))
    stage.begin_shard()
    audio = Audio(samples=np.zeros(16000 * 8, np.float32), rate=16000)
    out = stage.process({"__key__": "v", "__meta__": {}, "mp4": data, "wav": audio})
    rec = out["align.json"]["av"]["mp4"]
    assert rec["status"] == "ok" and abs(rec["offset"] - 0.2) <= 0.02 and rec["corrected"] == ["wav"]
    assert out["wav"].samples.size == 16000 * 8 - round(rec["offset"] * 16000)
    seconds = out["wav"].samples.size / 16000  # the metadata tells the corrected length, not the decoded one
    assert out["__meta__"]["duration"] == out["__meta__"]["audio"]["wav"]["seconds"] == round(seconds, 6)
    summary = stage.end_shard()
    assert [r["key"] for r in summary["records"]] == ["v"] and summary["records"][0]["kind"] == "av"
