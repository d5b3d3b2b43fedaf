"""Regression tests for a second review of the video stages: streams whose timestamps do not start at 0
(MPEG-TS, recordings cut with their timestamps kept) are timed from their first frame: frame targets,
windows, clip audio and the audio track all count from there, in step with each other."""

from __future__ import annotations

import io
import subprocess
import sys

import av
import numpy as np
import pytest

from mmprep.errors import Drop
from mmprep.sample import KEY, META
from mmprep.stage import make_stage
from mmprep.stages.audio.io import read_audio
from mmprep.testing.audio import encoded_multichannel
from mmprep.testing.media import encode_mp4, encode_video, tone

FPS, RATE = 10, 16000


def flash_video(container: str, *, start: float, audio_start: float | None = None) -> bytes:
    """2 s: dark frames with white ones at 1.0-1.2 s, and a 1 kHz tone exactly while they show (silence
    around it), stamped from ``start`` seconds (audio from ``audio_start``)."""
    frames = [np.full((48, 64, 3), 255 if 10 <= i < 12 else 0, np.uint8) for i in range(2 * FPS)]
    audio = np.zeros(2 * RATE, np.float32)
    audio[RATE : RATE + RATE // 5] = tone(0.2, freq=1000.0, rate=RATE, amplitude=0.5)
    return encode_video(frames, fps=FPS, audio=audio, rate=RATE, container=container, start=start,
                        audio_start=audio_start)


def onset(samples: np.ndarray, rate: int) -> float:
    """Seconds of the first sample louder than half the tone's amplitude."""
    return float(np.argmax(np.abs(samples) > 0.25)) / rate


def bright(rgb: np.ndarray) -> bool:
    return float(rgb.mean()) > 128


CASES = [("mpegts", 10.0), ("mpegts", 3600.0), ("matroska", 10.0), ("mp4", 10.0), ("mpegts", 0.0)]


@pytest.mark.parametrize(("container", "start"), CASES)
def test_frames_count_from_the_first_frame(container, start):
    data = flash_video(container, start=start)
    out = make_stage("video.frames", fps=2.0, output="npy").process({KEY: "v", "mp4": data})
    info = out[META]["frames"]
    # Matroska records only the container's duration: 2.064 s, the AAC track's end, gave a 5th target at 2.0 s
    assert info["times"] == [0.0, 0.5, 1.0, 1.5] and info["requested"] == 4
    assert info["duration"] == 2.0
    assert [bright(f) for f in out["frames.npy"]] == [False, False, True, False]
    count = make_stage("video.frames", mode="count", count=4, output="npy").process({KEY: "v", "mp4": data})
    assert len(count[META]["frames"]["times"]) == 4  # was 1: every target before the first frame at 10 s


@pytest.mark.parametrize(("container", "start"), CASES)
def test_window_clips_and_their_audio_count_from_the_first_frame(container, start):
    clips = make_stage("video.clips", length=1.0).process({KEY: "v", "mp4": flash_video(container, start=start)})
    assert [c[KEY] for c in clips] == ["v/_clip0000", "v/_clip0001"]  # were clip0010, clip0011 for a 10 s start
    second = clips[1]
    assert (second[META]["clip"]["start"], second[META]["clip"]["end"]) == (0.0 + 1.0, 2.0)
    with av.open(io.BytesIO(second["mp4"])) as c:
        first = next(c.decode(c.streams.video[0])).to_ndarray(format="rgb24")
    assert bright(first)  # the flash opens the second clip...
    samples, rate = read_audio(second["mp4"], field="mp4")
    assert samples.shape[-1] == pytest.approx(rate, abs=1100)  # ...its audio is there (was empty)
    assert onset(samples[0], rate) == pytest.approx(0.0, abs=0.01)  # ...and the tone starts with it
    quiet, _ = read_audio(clips[0]["mp4"], field="mp4")
    assert float(np.abs(quiet[0, : int(0.9 * rate)]).max()) < 0.05


@pytest.mark.parametrize(("container", "start"), CASES)
def test_audio_track_starts_at_the_first_frame(container, start):
    out = make_stage("video.audio_track").process({KEY: "v", "mp4": flash_video(container, start=start)})
    assert onset(out["wav"].samples, RATE) == pytest.approx(1.0, abs=0.01)  # was 1.064: AAC priming kept


@pytest.mark.parametrize("delay", [0.3, -0.3])
def test_audio_that_starts_later_or_earlier_than_the_picture_stays_in_step(delay):
    """The audio stream's first sample at start + delay: the track and the clips are shifted by it."""
    data = flash_video("mpegts", start=10.0, audio_start=10.0 + delay)
    out = make_stage("video.audio_track").process({KEY: "v", "mp4": data})
    # the stream's first sample is the encoder's priming, 1,024 samples (64 ms) before the audio
    assert out[META]["audio_track"]["wav"]["offset"] == pytest.approx(delay - 0.064, abs=0.002)
    assert onset(out["wav"].samples, RATE) == pytest.approx(1.0 + delay, abs=0.01)
    clips = make_stage("video.clips", length=1.0).process({KEY: "v", "mp4": data})
    samples, rate = read_audio(clips[1]["mp4"], field="mp4")
    assert onset(samples[0], rate) == pytest.approx(delay if delay > 0 else 0.0, abs=0.01)


@pytest.mark.parametrize(("container", "start"), CASES)
def test_probe_reports_the_start_and_the_duration_from_it(container, start):
    info = make_stage("video.probe").process({KEY: "v", "mp4": flash_video(container, start=start)})[META]
    video = info["video"]["mp4"]
    assert video["start"] == pytest.approx(start, abs=0.5)  # MPEG-TS muxers add their own delay
    assert info["duration"] == pytest.approx(2.0, abs=0.07)  # Matroska said 12.064: its end time


@pytest.mark.parametrize("channels", [2, 8])
def test_audio_track_of_an_audio_only_mp4_keeps_every_channel(channels):
    """7.1 audio with ``mono: false`` crashed the process (PyAV's to_ndarray on planar frames of 8 channels)."""
    x = np.stack([tone(1.0, freq=300.0 + 200.0 * c, rate=48000, amplitude=0.3) for c in range(channels)])
    data = encoded_multichannel(x, 48000, ext="m4a")  # an MP4 with one AAC stream and no picture
    out = make_stage("video.audio_track", mono=False).process({KEY: "v", "mp4": data})
    assert out["wav"].samples.shape == (channels, 48000)
    assert out[META]["audio_track"]["wav"]["offset"] == 0.0


def test_a_corrupt_tail_keeps_what_decoded_before_it():
    """A TS recording cut off mid-packet: the AAC decoder fails on the last, partial frame. Every clip and the
    audio track were dropped with it (video.corrupt, video.audio_corrupt); now they are kept and say so."""
    frames = [np.full((48, 64, 3), 5 * i, np.uint8) for i in range(50)]
    data = encode_video(frames, fps=FPS, audio=tone(5.0, rate=RATE), rate=RATE, container="mpegts", start=10.0)
    cut = data[: int(len(data) * 0.9)]
    clips = make_stage("video.clips", length=1.0).process({KEY: "v", "mp4": cut})
    assert [c[META]["clip"]["start"] for c in clips] == [0.0, 1.0, 2.0, 3.0, 4.0]
    track = make_stage("video.audio_track").process({KEY: "v", "mp4": cut})
    info = track[META]["audio_track"]["wav"]
    assert "decoding stopped after" in info["truncated"] and 4.0 < info["seconds"] < 4.7
    assert float(np.abs(track["wav"].samples[: 4 * RATE]).max()) == pytest.approx(0.5, abs=0.05)  # the tone


def plain_video(size: tuple[int, int], *, codec: str = "mjpeg", container: str = "matroska", first: int = 0,
                level: int = 20) -> bytes:
    """10 frames at 10 fps of ``size`` (width, height), grey ``level``, the first stamped at frame ``first``."""
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as out:
        vs = out.add_stream(codec, rate=FPS)
        vs.width, vs.height = size
        vs.pix_fmt = "yuvj420p" if codec == "mjpeg" else "yuv420p"
        for i in range(10):
            frame = av.VideoFrame.from_ndarray(np.full((size[1], size[0], 3), level, np.uint8), format="rgb24")
            frame.pts = first + i
            for packet in vs.encode(frame):
                out.mux(packet)
        for packet in vs.encode():
            out.mux(packet)
    return buf.getvalue()


@pytest.mark.parametrize(("size", "even"), [((63, 47), (62, 46)), ((1, 1), (2, 2)), ((64, 47), (64, 46))])
def test_odd_frame_sizes_are_cut_to_even_for_h264_clips(size, even):
    """x264's 4:2:0 refuses odd sizes: every clip of a 63x47 MJPEG video failed, dropped as video.corrupt."""
    clips = make_stage("video.clips", length=0.5).process({KEY: "v", "mkv": plain_video(size)})
    assert len(clips) == 2
    assert clips[0][META]["clip"]["resized"] == {"from": list(size), "to": list(even)}
    with av.open(io.BytesIO(clips[0]["mp4"])) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert len(frames) == 5 and frames[0].shape == (even[1], even[0], 3)
    assert float(frames[0].mean()) == pytest.approx(20, abs=3)


def test_a_size_change_mid_stream_is_scaled_to_the_clips_size():
    """MPEG-2 in TS changing from 64x48 to 96x64 (as broadcasts do at ad breaks), in one clip."""
    data = (plain_video((64, 48), codec="mpeg2video", container="mpegts")
            + plain_video((96, 64), codec="mpeg2video", container="mpegts", first=10, level=200))
    clips = make_stage("video.clips", length=5.0).process({KEY: "v", "mp4": data})
    with av.open(io.BytesIO(clips[0]["mp4"])) as c:
        frames = [(f.width, f.height, round(float(f.to_ndarray(format="rgb24").mean()))) for f in c.decode(video=0)]
    assert {(w, h) for w, h, _ in frames} == {(64, 48)}
    levels = [level for _, _, level in frames]  # the TS join loses a frame: 9 dark ones, then 10 bright
    assert len(levels) == 19 and all(abs(v - 20) <= 2 for v in levels[:9])
    assert all(abs(v - 200) <= 2 for v in levels[9:])


def nan_audio_video() -> bytes:
    """1 s Matroska: MJPEG picture and a float PCM tone whose samples 100-199 are NaN."""
    x = tone(1.0, rate=RATE)
    x[100:200] = np.nan
    return pcm_video(RATE, x, codec="pcm_f32le")


def test_nan_in_a_video_audio_track_is_checked():
    """video.audio_track passed NaN on to the features (240 NaN log-mel values); video.clips failed the whole
    video (video.clips.error: AAC refuses NaN)."""
    data = nan_audio_video()
    with pytest.raises(Drop) as e:
        make_stage("video.audio_track").process({KEY: "v", "mkv": data})
    assert (e.value.reason, e.value.field) == ("audio.nonfinite", "wav")
    out = make_stage("video.audio_track", nonfinite="zero").process({KEY: "v", "mkv": data})
    assert np.isfinite(out["wav"].samples).all() and not out["wav"].samples[100:200].any()
    assert out[META]["audio_track"]["wav"]["nonfinite_zeroed"] == 100
    clips = make_stage("video.clips", length=0.5).process({KEY: "v", "mkv": data})
    assert [c[META]["clip"].get("audio_nonfinite_zeroed") for c in clips] == [100, None]
    samples, _ = read_audio(clips[0]["mp4"], field="mp4")
    assert np.isfinite(samples).all() and float(np.abs(samples).max()) > 0.4


def pcm_video(rate: int, x: np.ndarray | None = None, *, codec: str = "pcm_s16le") -> bytes:
    """1 s Matroska: MJPEG picture and PCM audio at ``rate`` Hz (``x``, default a 440 Hz tone at 0.3)."""
    x = tone(1.0, rate=rate, amplitude=0.3) if x is None else x
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        vs = out.add_stream("mjpeg", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuvj420p"
        a = out.add_stream(codec, rate=rate)
        a.layout = "mono"
        for i in range(FPS):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            for packet in vs.encode(frame):
                out.mux(packet)
        for s in range(0, rate, rate // 10):
            frame = av.AudioFrame.from_ndarray(x[None, s : s + rate // 10], format="flt", layout="mono")
            frame.sample_rate, frame.pts = rate, s
            for packet in a.encode(frame):
                out.mux(packet)
        for packet in a.encode():
            out.mux(packet)
    return buf.getvalue()


@pytest.mark.parametrize(("rate", "held"), [(192000, 96000), (12345, 16000), (1000, 7350), (44100, 44100)])
def test_clip_audio_at_a_rate_aac_lacks_is_resampled(rate, held):
    """AAC holds 7.35-96 kHz at set rates: the clips of a video with 192 kHz or 12,345 Hz PCM audio all failed
    (video.clips.error: the AAC encoder refused to open)."""
    clips = make_stage("video.clips", length=0.5).process({KEY: "v", "mkv": pcm_video(rate)})
    assert len(clips) == 2
    assert clips[0][META]["clip"].get("audio_resampled") == ([rate, held] if rate != held else None)
    samples, got = read_audio(clips[0]["mp4"], field="mp4")
    assert got == held and samples.shape[-1] == pytest.approx(held / 2, abs=held // 50 + 1024)
    assert float(np.abs(samples).max()) == pytest.approx(0.3, abs=0.05)


def test_audio_that_changes_rate_mid_stream_is_converted():
    """A TS whose audio switches from 44.1 to 22.05 kHz (broadcasts do at ad breaks): PyAV's resampler refused
    the new frames (ValueError) and video.audio_track / video.clips failed the whole sample."""
    frames = [np.zeros((48, 64, 3), np.uint8)] * FPS
    data = (encode_video(frames, fps=FPS, audio=tone(1.0, rate=44100, amplitude=0.3), rate=44100,
                         container="mpegts", start=1.0)
            + encode_video(frames, fps=FPS, audio=tone(1.0, freq=330.0, rate=22050, amplitude=0.3), rate=22050,
                           container="mpegts", start=2.0))
    out = make_stage("video.audio_track", rate=16000).process({KEY: "v", "mp4": data})
    samples = out["wav"].samples
    assert out["wav"].rate == 16000 and samples.shape[-1] / 16000 == pytest.approx(2.0, abs=0.12)
    tail = samples[-12000:-2000]
    assert np.argmax(np.abs(np.fft.rfft(tail))) * 16000 / len(tail) == pytest.approx(330.0, abs=3.0)
    clips = make_stage("video.clips", length=0.5).process({KEY: "v", "mp4": data})
    assert len(clips) == 4
    last, rate = read_audio(clips[-1]["mp4"], field="mp4")
    assert rate == 44100 and float(np.abs(last).max()) == pytest.approx(0.3, abs=0.05)


def test_an_audio_stream_without_samples_leaves_clips_without_audio():
    """A Matroska file with an AAC stream but no audio packet: video.clips raised video.no_audio for the whole
    video (dropped, or with ``wav`` optional passed on uncut as if the clips had been made)."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="matroska") as out:
        vs = out.add_stream("mjpeg", rate=FPS)
        vs.width, vs.height, vs.pix_fmt = 64, 48, "yuvj420p"
        a = out.add_stream("aac", rate=RATE)
        a.layout = "mono"
        for i in range(2 * FPS):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            frame.pts = i
            for packet in vs.encode(frame):
                out.mux(packet)
    clips = make_stage("video.clips", length=1.0).process({KEY: "v", "mkv": buf.getvalue()})
    assert [c[META]["clip"]["frames"] for c in clips] == [10, 10]
    assert clips[0][META]["clip"]["audio_lost"].startswith("video.no_audio: ")
    with av.open(io.BytesIO(clips[0]["mp4"])) as c:
        assert [s.type for s in c.streams] == ["video"]


def test_frames_of_a_stream_that_changes_size_stack_into_one_npy():
    """np.stack refused frames of two sizes: video.frames.error, the sample dropped."""
    data = (plain_video((64, 48), codec="mpeg2video", container="mpegts")
            + plain_video((96, 64), codec="mpeg2video", container="mpegts", first=10, level=200))
    out = make_stage("video.frames", fps=2.0, output="npy").process({KEY: "v", "mp4": data})
    frames = out["frames.npy"]
    assert frames.shape == (4, 48, 64, 3) and out[META]["frames"]["rescaled"] == 2
    assert [round(float(f.mean()) / 10) for f in frames] == [2, 2, 20, 20]


def test_a_sliver_is_not_scaled_to_gigabytes():
    """A valid 4000x2 video with size: 64 (keep_ratio, shorter side) made 64x128000 frames (24 MB each, up to
    100 of them); the longer side is now capped at 8192, the ratio kept."""
    out = make_stage("video.frames", size=64, output="npy").process({KEY: "v", "mkv": plain_video((4000, 2))})
    assert out["frames.npy"].shape == (1, 4, 8192, 3) and out[META]["frames"]["size_capped"] is True
    normal = make_stage("video.frames", size=32, output="npy").process({KEY: "v", "mkv": plain_video((64, 48))})
    assert normal["frames.npy"].shape == (1, 32, 43, 3) and "size_capped" not in normal[META]["frames"]


def test_an_implausible_audio_offset_is_not_padded_out():
    """Audio stamped 100 s after the picture (broken timestamps, a PTS wrap): the track was padded with 100 s
    of zeros (hours, for a wrap: gigabytes); beyond 60 s the offset is ignored and kept in metadata."""
    data = flash_video("mpegts", start=10.0, audio_start=110.0)
    out = make_stage("video.audio_track").process({KEY: "v", "mp4": data})
    info = out[META]["audio_track"]["wav"]
    assert info["offset"] == 0.0 and info["offset_ignored"] == pytest.approx(99.936, abs=0.002)
    assert info["seconds"] == pytest.approx(2.0, abs=0.15)
    clips = make_stage("video.clips", length=1.0).process({KEY: "v", "mp4": data})
    assert clips[0][META]["clip"]["audio_offset_ignored"] == info["offset_ignored"]
    samples, rate = read_audio(clips[1]["mp4"], field="mp4")
    assert float(np.abs(samples).max()) > 0.4  # the clip has its audio (it was all padding)


def test_frames_are_resized_as_they_are_chosen(tmp_path):
    """60 HD frames with size: 32 were all held at 1280x720 RGB (2.8 MB each; 25 MB for 4K, up to max_frames of
    them) until the end: peak memory grew by ~215 MB; resized when chosen, by ~50-65 MB (decoder buffers)."""
    rng = np.random.default_rng(0)
    noise_frames = [rng.integers(0, 255, (720, 1280, 3), dtype=np.uint8) for _ in range(2)]
    path = tmp_path / "hd.mp4"
    path.write_bytes(encode_mp4([noise_frames[i % 2] for i in range(60)], fps=FPS))
    script = f"""
from mmprep.stage import make_stage
def peak_kb():
    return int(next(line for line in open("/proc/self/status") if line.startswith("VmHWM")).split()[1])
data = open({str(path)!r}, "rb").read()
stage = make_stage("video.frames", fps=10.0, max_frames=60, size=32, output="npy")
open("/proc/self/clear_refs", "w").write("5")  # peak RSS := current RSS
base = peak_kb()
out = stage.process({{"__key__": "k", "mp4": data}})
assert out["frames.npy"].shape == (60, 32, 57, 3)
print((peak_kb() - base) // 1024)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True)
    assert int(done.stdout.split()[-1]) < 110  # MB
