"""Regressions from a black-box review of the video stages: rotated phone videos, max_frames spread over
the whole video, variable frame rate clips, non-UTF-8 cues, config values that failed only per sample,
and a short video's drop message. Every video is made in code (PyAV + numpy)."""

from __future__ import annotations

import io
from fractions import Fraction

import av
import numpy as np
import pytest

from mmprep.config import instantiate, parse_pipeline
from mmprep.errors import ConfigError, Drop
from mmprep.sample import KEY, META
from mmprep.stages.video.probe import probe
from mmprep.testing.media import mp4_bytes, srt_text
from tests.conftest import run_cli
from tests.test_video_stages import run


def bar_frame(i: int, width: int = 64, height: int = 48) -> np.ndarray:
    """Black, with a white 4-px column at x = 4 * (i % 16) and a white top-left 4x4 corner marker."""
    img = np.zeros((height, width, 3), np.uint8)
    x = 4 * (i % 16)
    img[:, x : x + 4] = 255
    img[:4, :4] = 255
    return img


def encode(times_ms: list[int], *, rotation: int = 0, gop: int | None = None, width: int = 64,
           height: int = 48) -> bytes:
    """An H.264 mp4 whose frame i shows at ``times_ms[i]`` ms (so any frame rate, constant or not), with a
    display-matrix ``rotation`` (degrees counter-clockwise, as FFmpeg reports it) and keyframe interval."""
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as out:
        vs = out.add_stream("libx264", rate=25)
        vs.width, vs.height, vs.pix_fmt = width, height, "yuv420p"
        vs.codec_context.time_base = Fraction(1, 1000)
        if gop:
            vs.codec_context.gop_size = gop
            vs.options = {"keyint": str(gop), "min-keyint": str(gop), "scenecut": "0"}
        if rotation:
            vs.set_display_rotation(rotation)
        for i, t in enumerate(times_ms):
            frame = av.VideoFrame.from_ndarray(bar_frame(i, width, height), format="rgb24")
            frame.pts, frame.time_base = t, Fraction(1, 1000)
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
    return buf.getvalue()


def decoded_times(mp4: bytes) -> list[float]:
    with av.open(io.BytesIO(mp4)) as container:
        return [round(float(f.time), 3) for f in container.decode(video=0)]


# -- 1. rotation -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def portrait() -> bytes:
    """Stored 64x48 landscape with rotation -90 (turn 90 degrees clockwise to show): a phone's portrait."""
    data = encode([40 * i for i in range(25)], rotation=-90)
    assert probe(data, field="mp4")["rotation"] == -90  # the test video really is rotated
    return data


def test_frames_of_a_rotated_video_are_upright(portrait):
    out = run("video.frames", {KEY: "k", "mp4": portrait}, mode="count", count=2, output="npy")
    frames = out["frames.npy"]
    assert frames.shape == (2, 64, 48, 3)  # portrait, as a player shows it (was (2, 48, 64, 3))
    # turned clockwise: the stored top-left corner marker ends up top-right
    assert frames[0, :4, -4:].mean() > 200 and frames[0, :4, :4].mean() < 60


def test_clips_keep_the_rotation(portrait):
    clips = run("video.clips", {KEY: "v", "mp4": portrait}, length=0.5, audio=False)
    assert clips and all(c[META]["clip"]["rotation"] == -90 for c in clips)
    assert probe(clips[0]["mp4"], field="mp4")["rotation"] == -90  # was 0: the clip played sideways
    frames = run("video.frames", {KEY: "c", "mp4": clips[0]["mp4"]}, mode="count", count=1, output="npy")
    assert frames["frames.npy"].shape == (1, 64, 48, 3)


# -- 2. max_frames ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def long_video() -> bytes:
    return mp4_bytes(seconds=25.0, fps=10, audio=False)


def test_max_frames_spreads_fps_targets_over_the_whole_video(long_video):
    out = run("video.frames", {KEY: "k", "mp4": long_video}, fps=10, max_frames=100, output="npy")
    m = out[META]["frames"]
    assert len(m["times"]) == 100 and m["capped"] is True and m["requested"] == 250
    assert m["times"][-1] > 24.0  # was 9.9: only the first 10 s
    assert m["fps"] == pytest.approx(4.0)  # 100 frames over 25 s
    assert np.allclose(np.diff(m["times"]), 0.25, atol=0.1 + 1e-6)
    small = run("video.frames", {KEY: "k", "mp4": long_video}, fps=1, max_frames=100, output="npy")
    assert small[META]["frames"]["capped"] is False and small[META]["frames"]["fps"] == 1


def test_max_frames_spreads_count_targets(long_video):
    out = run("video.frames", {KEY: "k", "mp4": long_video}, mode="count", count=50, max_frames=5, output="npy")
    m = out[META]["frames"]
    assert m["capped"] is True and m["requested"] == 50
    assert m["times"] == pytest.approx([2.5, 7.5, 12.5, 17.5, 22.5], abs=0.1)  # 5 equal spans (was 0.1..0.9 s)


def test_max_frames_spreads_keyframes():
    data = encode([100 * i for i in range(100)], gop=10)  # about one keyframe a second over 10 s
    every = run("video.frames", {KEY: "k", "mp4": data}, mode="keyframes", output="npy")[META]["frames"]
    assert every["capped"] is False and len(every["times"]) == every["requested"] > 8
    out = run("video.frames", {KEY: "k", "mp4": data}, mode="keyframes", max_frames=4, output="npy")
    m = out[META]["frames"]
    assert m["capped"] is True and m["requested"] == len(every["times"]) and len(m["times"]) == 4
    assert m["times"][0] == 0.0 and m["times"][-1] == every["times"][-1]  # was the first 4 keyframes only
    assert set(m["times"]) <= set(every["times"])


# -- 3. variable frame rate ------------------------------------------------------------------------

VFR_MS = [0, 40, 80, 1200, 1240, 1280, 2500, 2540, 2580, 2620]


def test_vfr_clips_keep_source_timestamps():
    data = encode(VFR_MS)
    clips = run("video.clips", {KEY: "v", "mp4": data}, length=3.0, audio=False)
    assert len(clips) == 1
    # was [0, 0.267, 0.533, 0.8...]: frames re-timed at the average rate, out of sync with the audio
    assert decoded_times(clips[0]["mp4"]) == [t / 1000 for t in VFR_MS]
    second = run("video.clips", {KEY: "v", "mp4": data}, length=1.0, audio=False)
    assert [c[META]["clip"]["start"] for c in second] == [0.0, 1.2, 2.5]
    assert decoded_times(second[1]["mp4"]) == [0.0, 0.04, 0.08]


def test_vfr_window_clips_meet_where_the_next_frame_starts():
    """10 fps, then 2 fps, then 30 fps: a clip's last frame lasts until the next frame, so the windows'
    clips (and the audio cut on them) meet. Each clip ended one frame at the average rate after its
    last frame, so 0.43 s of the 2 fps second was in no clip."""
    times = [*range(0, 1000, 100), 1000, 1500, *range(2000, 3000, 33)]
    clips = run("video.clips", {KEY: "v", "mp4": encode(times)}, length=1.0, audio=False)
    spans = [(c[META]["clip"]["start"], c[META]["clip"]["end"]) for c in clips]
    assert spans[:2] == [(0.0, 1.0), (1.0, 2.0)] and spans[2][0] == 2.0
    with av.open(io.BytesIO(encode(times))) as container:  # the video's last frame: one at the average rate
        step = 1 / float(container.streams.video[0].average_rate)
    assert spans[2][1] == pytest.approx(times[-1] / 1000 + step, abs=1e-3)


def test_windows_reach_the_last_frame_when_the_header_is_short(monkeypatch):
    import mmprep.stages.video.clips as clips_mod

    data = encode(VFR_MS)
    monkeypatch.setattr(clips_mod, "stream_duration", lambda container, stream: 2.0)  # a header that stops early
    clips = run("video.clips", {KEY: "v", "mp4": data}, length=1.0, min_length=0.1, audio=False)
    assert clips[-1][META]["clip"]["start"] == 2.5  # the frames at 2.5-2.62 s were lost


# -- 4. cue encodings ------------------------------------------------------------------------------

@pytest.mark.parametrize("encoding", ["gbk", "utf-16"])
def test_cues_in_legacy_encodings_are_decoded(encoding):
    video = mp4_bytes(seconds=3.0, fps=25, audio=False)
    srt = srt_text([(0.1, 1.0, "你好，世界"), (1.5, 2.5, "这是第二句字幕")]).encode(encoding)
    clips = run("video.clips", {KEY: "v", "mp4": video, "srt": srt}, mode="cues", audio=False)
    assert [c["txt"] for c in clips] == ["你好，世界", "这是第二句字幕"]


# -- 5. config values that used to fail per sample -------------------------------------------------

@pytest.mark.parametrize(("stage", "params", "key"), [
    ("video.frames", {"size": 10**12}, "stages[0].size"),
    ("video.audio_track", {"rate": 10**12}, "stages[0].rate"),
    ("video.audio_track", {"field": "mp3"}, "stages[0].field"),
    ("video.clips", {"stride": 1e-9}, "stages[0].stride"),
    ("video.clips", {"length": 10.0, "stride": 0.2}, "stages[0].stride"),
    ("video.clips", {"preset": "nonsense"}, "stages[0].preset"),
    ("video.clips", {"length": 2.0, "min_length": 5.0}, "stages[0].min_length"),
])
def test_bad_video_params_are_config_errors(stage, params, key):
    with pytest.raises(ConfigError) as e:
        instantiate(parse_pipeline({"name": "t", "stages": [{"stage": stage, **params}]}))
    assert e.value.key == key


def test_good_video_params_still_validate():
    stages = [{"stage": "video.audio_track", "field": "audio.flac", "rate": 384000},
              {"stage": "video.clips", "length": 1.0, "stride": 0.5, "preset": "medium"},
              {"stage": "video.frames", "size": 8192}]
    assert len(instantiate(parse_pipeline({"name": "t", "stages": stages}))) == 3


def test_bad_video_param_exits_2_with_one_line(tmp_path):
    pipe = tmp_path / "p.yaml"
    pipe.write_text("name: t\nstages:\n  - stage: video.clips\n    preset: nonsense\n", encoding="utf-8")
    res = run_cli("validate", str(pipe))
    assert res.returncode == 2 and res.stderr.strip().count("\n") == 0 and "stages[0].preset" in res.stderr


# -- 6. short videos -------------------------------------------------------------------------------

def test_a_video_shorter_than_min_length_says_so():
    short = mp4_bytes(seconds=0.3, fps=10, audio=False)
    with pytest.raises(Drop) as e:
        run("video.clips", {KEY: "v", "mp4": short}, length=1.0, min_length=0.5)
    assert e.value.reason == "video.clips.empty" and "shorter than min_length 0.5 s" in e.value.message
