"""Video stages on mp4s made in code: probe, frame timestamps, frame-exact clips, audio tracks, bad input."""

from __future__ import annotations

import io
import os
import subprocess
import sys

import av
import numpy as np
import pytest

from mmprep.errors import Drop
from mmprep.sample import KEY, META, Audio
from mmprep.stage import get_stage
from mmprep.stages.video.probe import probe
from mmprep.testing.media import mp4_bytes, srt_text
from tests.conftest import build

FPS = 25
WIDTH = 64  # mp4_bytes draws a 4-px bar at x = 4 * (frame % 16): a frame's index mod 16 is visible


def run(name: str, sample: dict, **params):
    cls = get_stage(name)
    s = cls(cls.Spec(stage=name, **params))
    s.check()
    s.setup()
    return s.process(sample)


@pytest.fixture(scope="module")
def video() -> bytes:
    return mp4_bytes(seconds=3.0, fps=FPS, width=WIDTH, height=48)


def bar_index(rgb: np.ndarray) -> int:
    """Frame index mod 16 from the bar's column."""
    col = int(np.argmax(rgb[:, :, 0].mean(axis=0) > 128))
    return round(col / 4) % 16


def test_probe_reports_streams_and_timing(video):
    out = run("video.probe", {KEY: "k", "mp4": video})
    info = out[META]["video"]["mp4"]
    assert (info["width"], info["height"], info["fps"], info["frames"]) == (64, 48, 25.0, 75)
    assert info["duration"] == pytest.approx(3.0, abs=1 / FPS)
    assert info["rotation"] == 0 and info["audio"] == ["aac"]
    assert [s["type"] for s in info["streams"]] == ["video", "audio"]
    assert out[META]["duration"] == info["duration"]
    assert run("video.decode", {KEY: "k", "mp4": video})[META]["video"]["mp4"] == info  # the old name still works


def test_frames_at_target_fps_match_timestamps(video):
    out = run("video.frames", {KEY: "k", "mp4": video}, fps=3.0, size=32)
    times = out[META]["frames"]["times"]
    assert len(times) == 9  # 0, 1/3, ... 8/3 < 3 s
    for k, t in enumerate(times):
        assert abs(t - k / 3) < 1 / FPS  # the frame on screen at k/3 s
        assert t <= k / 3 + 1e-3
    names = sorted(n for n in out if n.startswith("frame"))
    assert names[:2] == ["frame000.jpg", "frame001.jpg"] and len(names) == 9
    import cv2

    img = cv2.imdecode(np.frombuffer(out["frame003.jpg"], np.uint8), cv2.IMREAD_COLOR)
    assert img.shape == (32, 43, 3)  # keep_ratio on the shorter side: 48x64 -> 32x43 (rounded)


def test_frames_count_keyframes_and_npy(video):
    out = run("video.frames", {KEY: "k", "mp4": video}, mode="count", count=4, output="npy", keep_video=False)
    assert "mp4" not in out and out["frames.npy"].shape == (4, 48, 64, 3) and out["frames.npy"].dtype == np.uint8
    times = out[META]["frames"]["times"]
    assert all(abs(t - (i + 0.5) * 0.75) < 1 / FPS for i, t in enumerate(times))
    for i, t in enumerate(times):
        assert bar_index(out["frames.npy"][i]) == round(t * FPS) % 16  # the pixels are that frame's
    key = run("video.frames", {KEY: "k", "mp4": video}, mode="keyframes")
    assert key[META]["frames"]["times"][0] == 0.0


def test_window_clips_are_frame_exact(video):
    clips = run("video.clips", {KEY: "vid", "mp4": video}, length=1.2)
    assert [c[KEY] for c in clips] == ["vid/_clip0000", "vid/_clip0001", "vid/_clip0002"]
    spans = [(c[META]["clip"]["start"], c[META]["clip"]["end"], c[META]["clip"]["frames"]) for c in clips]
    assert spans == [(0.0, 1.2, 30), (1.2, 2.4, 30), (2.4, 3.0, 15)]
    for c in clips:
        info = probe(c["mp4"], field="mp4")
        assert info["frames"] == c[META]["clip"]["frames"] and info["audio"] == ["aac"]
        with av.open(io.BytesIO(c["mp4"])) as container:
            first = next(container.decode(video=0)).to_ndarray(format="rgb24")
        assert bar_index(first) == round(c[META]["clip"]["start"] * FPS) % 16


def test_cue_clips_match_cues_to_one_frame(video):
    cues = [(0.1, 0.95, "hello"), (1.3, 2.5, "world"), (2.6, 2.7, "too short")]
    clips = run("video.clips", {KEY: "v", "mp4": video, "srt": srt_text(cues)}, mode="cues", min_length=0.2)
    assert [c["txt"] for c in clips] == ["hello", "world"]
    for c, (s, e, _) in zip(clips, cues, strict=False):
        m = c[META]["clip"]
        assert s <= m["start"] < s + 1 / FPS and e <= m["end"] < e + 1 / FPS
        assert m["frames"] == round((m["end"] - m["start"]) * FPS)
    with pytest.raises(Drop) as e:
        run("video.clips", {KEY: "v", "mp4": video}, mode="cues")
    assert e.value.reason == "video.no_cues"


def test_audio_track_is_pcm_for_the_audio_stages(video):
    out = run("video.audio_track", {KEY: "k", "mp4": video}, rate=8000)
    a = out["wav"]
    assert isinstance(a, Audio) and a.rate == 8000 and a.samples.ndim == 1 and a.samples.dtype == np.float32
    assert a.seconds == pytest.approx(3.0, abs=0.1)
    assert 0.25 < np.abs(a.samples).max() < 0.35  # the 0.3-amplitude tone, not silence, not clipped
    silent = mp4_bytes(seconds=0.5, fps=10, audio=False)
    with pytest.raises(Drop) as e:
        run("video.audio_track", {KEY: "k", "mp4": silent})
    assert (e.value.reason, e.value.field) == ("video.no_audio", "wav")


@pytest.mark.parametrize("cut", [0, 100])
def test_bad_videos_drop_with_reasons(video, cut):
    data = video[: len(video) // 3] if cut == 0 else b"\x00\x00\x00\x18ftypmp42" + b"\x00" * cut
    with pytest.raises(Drop) as e:
        run("video.probe", {KEY: "k", "mp4": data})
    assert e.value.reason in ("video.corrupt", "video.no_frames")


def test_unsupported_codec_is_a_reason_not_a_crash(video):
    unknown = video.replace(b"avc1", b"zzz9")  # the sample entry's codec tag: no decoder knows it
    for stage in ("video.probe", "video.frames", "video.clips"):
        with pytest.raises(Drop) as e:
            run(stage, {KEY: "k", "mp4": unknown})
        assert e.value.reason == "video.unsupported_codec" and e.value.field == "mp4"


def test_time_limit_drops_a_slow_sample(video):
    with pytest.raises(Drop) as e:
        run("video.frames", {KEY: "k", "mp4": video}, fps=10, time_limit=1e-9)
    assert e.value.reason == "video.timeout"


# cuts the video at argv[1] into 1 s windows and prints one digest per clip (run in a fresh process)
_CUT_CHILD = """
import hashlib, sys
from mmprep.stages.video.clips import ClipsConfig, cut, windows
data = open(sys.argv[1], "rb").read()
clips = cut(data, windows(2.5, 1.0, 1.0, 0.0), ClipsConfig(mode="windows", length=1.0), field="mp4")
print(" ".join(hashlib.md5(c["mp4"]).hexdigest() for c in clips))
"""


@pytest.mark.parametrize("audio", [False, True])
def test_clips_are_the_same_bytes_every_time(audio):
    """x264's macroblock tree (AVX-512) read uninitialised memory: cutting one video into 1 s clips gave other
    bytes, and other pixels, from call to call in one process (three distinct clip sets in ten calls)."""
    data = mp4_bytes(seconds=2.5, fps=10, audio=audio)
    cuts = [[c["mp4"] for c in run("video.clips", {KEY: "v", "mp4": data}, length=1.0, audio=audio)]
            for _ in range(8)]
    assert len(cuts[0]) == 3
    assert all(c == cuts[0] for c in cuts[1:])


def test_clip_bytes_depend_on_the_frames_alone(tmp_path):
    """What a fresh allocation holds (glibc's MALLOC_PERTURB_ fills it) and the CPUs the process may use (x264's
    default thread count follows them) changed the clips; neither may. (A CPU without AVX-512 passed the first
    before the fix too; the second needs two cores.)"""
    path = tmp_path / "in.mp4"  # 128 rows: x264 cuts a 48-row picture into one slice whatever the thread count
    path.write_bytes(mp4_bytes(seconds=2.5, fps=10, height=128, audio=False))

    def clips(perturb: int | None = None, one_cpu: bool = False) -> str:
        env = {k: v for k, v in os.environ.items() if k != "MALLOC_PERTURB_"}
        if perturb is not None:
            env["MALLOC_PERTURB_"] = str(perturb)
        pin = "import os; os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:1])\n" if one_cpu else ""
        out = subprocess.run([sys.executable, "-c", pin + _CUT_CHILD, str(path)], env=env, capture_output=True,
                             text=True, timeout=120, check=True)
        return out.stdout.strip()

    first = clips(85)
    assert len(first.split()) == 3
    assert clips(170) == first
    if hasattr(os, "sched_setaffinity") and len(os.sched_getaffinity(0)) > 1:
        assert clips(one_cpu=True) == first


def test_clip_shards_are_the_same_bytes_in_two_builds(tmp_path):
    """Five --force builds of four 2.5 s videos gave five different shards; incremental builds and the content
    cache take a shard's bytes for its inputs'."""
    (tmp_path / "in").mkdir()
    for name in "ab":
        (tmp_path / "in" / f"{name}.mp4").write_bytes(mp4_bytes(seconds=2.5, fps=10, audio=name == "b"))
    doc = {"name": "video", "stages": [{"stage": "video.clips", "mode": "windows", "length": 1.0}],
           "output": {"name": "video", "max_samples": 100}}
    shards = []
    for _ in range(2):
        build(doc, tmp_path / "in", tmp_path / "out", force=True, workers=1)
        shards.append((tmp_path / "out" / "shards" / "video-000000.tar").read_bytes())
    assert shards[0] == shards[1]
