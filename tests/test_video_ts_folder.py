"""A folder of MPEG-TS recordings (``.ts``, ``.mts``, ``.m2ts``) is video, as broadcast captures are."""

from __future__ import annotations

import json

import numpy as np
import pytest
import yaml

from mmprep.testing.media import encode_video, tone
from tests.conftest import ROOT, build, shard_members


@pytest.mark.parametrize("ext", ["ts", "mts", "m2ts"])
def test_a_ts_recording_goes_through_the_video_pipeline(tmp_path, ext):
    frames = [np.full((48, 64, 3), 40 * (i % 5), np.uint8) for i in range(50)]  # 2 s at 25 fps
    corpus = tmp_path / "in"
    corpus.mkdir()
    audio = tone(2.0, freq=440.0, rate=16000)
    (corpus / f"news.{ext}").write_bytes(encode_video(frames, fps=25, audio=audio, container="mpegts", start=10.0))
    doc = yaml.safe_load((ROOT / "pipelines" / "video.yaml").read_text())
    summary = build(doc, corpus, tmp_path / "out", workers=1)
    assert summary["samples_out"] == 1 and summary["errors_by_reason"] == {}
    got = shard_members(tmp_path / "out")
    meta = json.loads(got["news/clip0000.meta.json"])
    assert meta["clip"]["start"] == 0.0  # counted from the stream's first timestamp (10 s)
    assert sorted(got) == ["news/clip0000.frame000.jpg", "news/clip0000.frame001.jpg", "news/clip0000.meta.json",
                           "news/clip0000.mp4", "news/clip0000.wav"]  # 2 s at 1 fps: 2 frames
