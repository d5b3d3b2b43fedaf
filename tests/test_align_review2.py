"""Alignment review fixes: CRLF subtitles, WebVTT written back with only the times changed, cues that are
not speech moved with their own segment, NaN audio, and subtitle.decode's span and cue count."""

from __future__ import annotations

import numpy as np
import pytest

from mmprep.align.api import align_subtitles
from mmprep.align.retime import AlignParams, align
from mmprep.align.speech import activity
from mmprep.align.subs import Cue, SubtitleError, parse, render
from mmprep.stage import make_stage
from mmprep.testing.media import srt_text, wav_bytes, write
from mmprep.testing.speech import add_noise, shifted_cues, speech_track, with_ad_break
from tests.conftest import run_cli

RATE = 16000


def test_crlf_srt_cues_have_no_carriage_returns():
    """pysubs2 parses a string without newline translation: a CRLF file's cue texts kept '\\r' and the
    re-timed file came out with stray '\\r' line breaks inside the cues."""
    srt = "1\n00:00:01,000 --> 00:00:02,000\nHello <i>there</i>\nline two\n\n2\n00:00:03,000 --> 00:00:04,000\nThird\n"
    data = ("\ufeff" + srt).replace("\n", "\r\n").encode()
    doc = parse(data, "srt")
    assert [(c.start, c.end, c.text) for c in doc.cues] == [(1000, 2000, "Hello there\nline two"),
                                                             (3000, 4000, "Third")]
    out = render(doc, [(1500, 2500), (3500, 4500)])
    assert out == ("1\n00:00:01,500 --> 00:00:02,500\nHello <i>there</i>\nline two\n\n"
                   "2\n00:00:03,500 --> 00:00:04,500\nThird\n")
    assert parse(data.decode("utf-8-sig").replace("\r\n", "\r"), "srt").cues == doc.cues  # old Mac CR


VTT = """WEBVTT - a title

NOTE made by hand

STYLE
::cue { color: yellow }

intro
00:01.000 --> 00:02.500 align:start position:10%
<v Ann>Hello &amp; <b>welcome</b></v>

NOTE a comment between cues

00:00:03.000 --> 00:00:04.000 line:0
Second
two lines

3
01:02:03.004 --> 01:02:05.000
Third
"""


def test_vtt_keeps_ids_notes_styles_and_settings_and_changes_only_times():
    """pysubs2 reads WebVTT as SRT: the identifier 'intro' and the NOTE block became cue text (shown on
    screen in the re-timed file), and the cue settings and the STYLE block were lost."""
    doc = parse(VTT.encode(), "vtt")
    assert [(c.start, c.end, c.text) for c in doc.cues] == [
        (1000, 2500, "Hello & welcome"), (3000, 4000, "Second\ntwo lines"), (3_723_004, 3_725_000, "Third")]
    out = render(doc, [(1250, 2750), (3250, 4250), (-20, 3_725_250)])
    assert out == VTT.replace("00:01.000 --> 00:02.500", "00:00:01.250 --> 00:00:02.750").replace(
        "00:00:03.000 --> 00:00:04.000", "00:00:03.250 --> 00:00:04.250").replace(
        "01:02:03.004 --> 01:02:05.000", "00:00:00.000 --> 01:02:05.250")
    assert [c.text for c in parse(out, "vtt").cues] == [c.text for c in doc.cues]
    squeezed = parse("WEBVTT\n00:01.000 --> 00:02.000\nHi\n00:03.000 --> 00:04.000\nTwo\n", "vtt")  # no blank lines
    assert [(c.start, c.end, c.text) for c in squeezed.cues] == [(1000, 2000, "Hi"), (3000, 4000, "Two")]
    with pytest.raises(SubtitleError) as err:
        parse("WEBVTT\n\nNOTE nothing here\n", "vtt")
    assert err.value.reason == "subtitle.empty"
    with pytest.raises(SubtitleError) as err:
        parse("WEBVTT\n\n1:2 --> x\nbroken\n", "vtt")
    assert err.value.reason == "subtitle.unparseable"


@pytest.fixture(scope="module")
def track():
    x, truth = speech_track(60, seed=3, lead=10.0)
    return add_noise(x, 10, seed=3, kind="pink"), truth


def test_cues_that_are_not_speech_move_with_their_own_segment(track):
    """Empty and zero-length cues were placed with the search's first offset, before polishing and
    whatever the segment: after an ad break they landed the break's length (12 s) early."""
    y, truth = track
    half = len(truth) // 2
    y2, moved = with_ad_break(y, truth, after_cue=half, ad_seconds=12.0, seed=3)
    subs = [Cue(a - 1000, b - 1000, f"l{i}") for i, (a, b) in enumerate(truth)]
    k = half + 3  # in the second segment
    gap = (subs[k].end + subs[k + 1].start) // 2
    cues = [*subs[: k + 1], Cue(gap, gap, "zero length"), Cue(gap, gap + 300, " "), *subs[k + 1 :]]
    first = [Cue(subs[1].end + 50, subs[1].end + 50, "")]  # and one in the first segment
    cues = [*cues[:2], *first, *cues[2:]]
    res = align(activity(y2, RATE), cues, AlignParams(max_splits=1))
    rec = res.record
    assert rec["status"] == "ok" and rec["cues_not_used"] == 3 and len(rec["splits"]) == 1, rec
    shift = [t[0] - c.start for t, c in zip(res.times, cues, strict=True)]
    speech = [i for i, c in enumerate(cues) if c.text.strip() and c.end > c.start]
    for i in (2, k + 2, k + 3):  # each extra cue moves as its neighbours do
        near = [shift[j] for j in speech if abs(j - i) <= 2]
        assert max(abs(shift[i] - s) for s in near) <= 40, (i, shift[i], near)
    assert abs(shift[k + 2] - 13_000) <= 50 and abs(shift[2] - 1000) <= 50
    assert res.times[k + 2][1] - res.times[k + 2][0] == 0


def test_nan_audio_is_reported_not_read_as_silence(track, tmp_path):
    """One NaN sample spread through the band-pass: the record said audio.no_speech."""
    y, truth = track
    y = y.copy()
    y[12345] = np.nan
    subs = srt_text(shifted_cues(truth, offset_ms=-500))
    rec, text, _, times = align_subtitles(y, RATE, subs, hint="srt")
    assert (rec["status"], rec["reasons"], rec["message"], text, times) == (
        "failed", ["audio.nonfinite"], "the audio holds 1 NaN or infinite samples", None, [])
    write(tmp_path / "a.wav", wav_bytes(np.nan_to_num(y), fmt="WAV"))  # 16-bit: the NaN is gone
    import soundfile as sf

    sf.write(tmp_path / "nan.wav", y, RATE, subtype="FLOAT")
    write(tmp_path / "a.srt", subs)
    proc = run_cli("align", str(tmp_path / "nan.wav"), str(tmp_path / "a.srt"), "-o", str(tmp_path / "o.srt"))
    assert proc.returncode == 1
    assert proc.stdout.strip() == "failed: audio.nonfinite the audio holds 1 NaN or infinite samples"
    ok = run_cli("align", str(tmp_path / "a.wav"), str(tmp_path / "a.srt"), "-o", str(tmp_path / "o.srt"))
    assert ok.returncode == 0 and ok.stdout.startswith("ok,")


ASS = """[Script Info]
ScriptType: v4.00+

[V4+ Styles]
Format: Name, Fontname, Fontsize, PrimaryColour, SecondaryColour, OutlineColour, BackColour, Bold, Italic, \
Underline, StrikeOut, ScaleX, ScaleY, Spacing, Angle, BorderStyle, Outline, Shadow, Alignment, MarginL, MarginR, \
MarginV, Encoding
Style: Default,Arial,20,&H00FFFFFF,&H000000FF,&H00000000,&H00000000,0,0,0,0,100,100,0,0,1,2,2,2,10,10,10,1

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Comment: 0,0:00:00.00,0:00:09.00,Default,,0,0,0,,translator note
Dialogue: 0,0:00:05.00,0:00:06.00,Default,,0,0,0,,later line
Dialogue: 0,0:00:01.00,0:00:02.00,Default,,0,0,0,,{\\i1}earlier{\\i0} line
"""


def test_subtitle_decode_span_and_count_ignore_file_order_and_comments():
    """start/end were the first and last events in file order (here end 2.0 < start 5.0) and the cue
    count included ASS comments; a WebVTT NOTE block was glued to a cue."""
    stage = make_stage("subtitle.decode")
    out = stage.process({"__key__": "k", "ass": ASS.encode()})
    assert out["__meta__"]["subtitle"]["ass"] == {"cues": 2, "start": 1.0, "end": 6.0, "problems": {"out_of_order": 1}}
    assert out["ass"] == ASS
    out = stage.process({"__key__": "k", "vtt": VTT.replace("\n", "\r\n").encode()})
    assert out["__meta__"]["subtitle"]["vtt"] == {"cues": 3, "start": 1.0, "end": 3725.0, "problems": {}}
    assert stage.version == "2"
    with pytest.raises(Exception) as drop:
        stage.process({"__key__": "k", "srt": b"  \r\n"})
    assert drop.value.reason == "subtitle.empty"


def test_video_frame_ranges_stop_at_the_last_frame():
    """The stage read the video's frame count but passed only its rate: a cue past the end of the video
    mapped to frames that do not exist (e.g. [250, 260) of a 120-frame video)."""
    from mmprep.testing.media import encode_mp4

    x, truth = speech_track(12, seed=5, lead=1.0)
    frames = (np.full((48, 64, 3), 40 + i, np.uint8) for i in range(120))  # 12 s at 10 fps
    mp4 = encode_mp4(frames, fps=10, audio=x)
    cues = [*shifted_cues(truth, offset_ms=-300), (25.0, 26.0, "past the end")]
    stage = make_stage("align.subtitles", on_low_confidence="retimed")
    stage.begin_shard()
    out = stage.process({"__key__": "k", "mp4": mp4, "srt": srt_text(cues)})
    rec = out["align.json"]["subtitles"]["srt"]
    assert rec["status"] == "ok", rec
    cue_map = rec["cue_map"]
    assert all(0 <= c["video_frames"][0] <= c["video_frames"][1] <= 120 for c in cue_map)
    assert cue_map[-1]["video_frames"] == [120, 120]
    start_ms, end_ms = round(cue_map[0]["start"] * 1000), round(cue_map[0]["end"] * 1000)
    assert cue_map[0]["video_frames"] == [start_ms * 10 // 1000, -(-end_ms * 10 // 1000)]


def test_a_cue_far_past_the_media_is_not_matched(track):
    """A typo such as 20:00:00 in a file for a one-minute clip made the cue mask (and its FFTs) 20 hours
    long: seconds and hundreds of MB for one file, gigabytes for 99:00:00."""
    import time

    y, truth = track
    subs = [Cue(a + 700, b + 700, f"l{i}") for i, (a, b) in enumerate(truth)]
    cues = [*subs, Cue(72_000_000, 72_001_000, "typo")]
    t0 = time.perf_counter()
    res = align(activity(y, RATE), cues)
    assert time.perf_counter() - t0 < 3.0
    rec = res.record
    assert rec["status"] == "ok" and rec["cues_not_used"] == 1 and rec["validation"]["counts"] == {"past_end": 1}
    assert abs(rec["offset"] + 0.7) < 0.03
    # moved by the model of its nearest speech cue (the ratio is rounded to 1e-6 in the record: 72 ms here)
    predicted = res.times[-2][0] + rec["ratio"] * (cues[-1].start - cues[-2].start)
    assert abs(res.times[-1][0] - predicted) <= 100
    plain = align(activity(y, RATE), subs).record  # the rest of the record as without the typo
    assert (plain["offset"], plain["ratio"], plain["confidence"]) == (rec["offset"], rec["ratio"], rec["confidence"])
    only = align(activity(y, RATE), [Cue(72_000_000, 72_001_000, "typo")]).record
    assert (only["status"], only["reasons"]) == ("failed", ["subtitle.empty"])
    assert only["message"] == "no cue with text and a positive duration within max_offset of the media"


def test_srt_content_in_a_vtt_field_comes_out_as_valid_webvtt():
    srt = srt_text([(1.0, 2.0, "one"), (3.0, 4.5, "two")])
    doc = parse(srt, "vtt")
    assert [(c.start, c.end, c.text) for c in doc.cues] == [(1000, 2000, "one"), (3000, 4500, "two")]
    out = render(doc, [(1100, 2100), (3100, 4600)])
    assert out == ("WEBVTT\n\n" + srt.replace("00:00:01,000 --> 00:00:02,000", "00:00:01.100 --> 00:00:02.100")
                   .replace("00:00:03,000 --> 00:00:04,500", "00:00:03.100 --> 00:00:04.600"))
    assert [(c.start, c.end, c.text) for c in parse(out, "vtt").cues] == [(1100, 2100, "one"), (3100, 4600, "two")]


def test_undecodable_subtitles_are_a_failed_record_not_a_missing_one():
    """Bytes no encoding explains raised Drop(text.undecodable) out of align.subtitles: the subtitle field
    (or the sample) was dropped and the alignment report had no record of it."""
    bad = bytes(np.random.default_rng(0).integers(0, 256, 3000, dtype=np.uint8))
    stage = make_stage("align.subtitles")
    stage.begin_shard()
    x, _ = speech_track(8, seed=2)
    out = stage.process({"__key__": "k", "wav": wav_bytes(x), "srt": bad})
    rec = out["align.json"]["subtitles"]["srt"]
    assert (rec["status"], rec["reasons"]) == ("failed", ["text.undecodable"])
    assert out["srt"] is bad and out["__meta__"]["align"]["srt"]["status"] == "failed"
    assert [(r["key"], r["status"]) for r in stage.end_shard()["records"]] == [("k", "failed")]
    with pytest.raises(SubtitleError) as err:
        parse(bad, "srt")
    assert err.value.reason == "text.undecodable"


def test_srt_keeps_font_tags_positions_and_coordinates():
    """pysubs2 rewrote SRT cue text: <font color>, <b> and {\\an8} (top placement) were dropped and the
    X1..Y2 coordinates after the times were lost; only the times are meant to change."""
    srt = ('1\n00:00:01,000 --> 00:00:02,000\n<font color="#ff0000">Red</font> and {\\an8}top\n\n'
           "2\n00:00:03,000 --> 00:00:04,000 X1:10 X2:20 Y1:5 Y2:6\n<b>Bold</b> &amp; <u>u</u>\n\n"
           "3\n00:00:05,000 --> 00:00:06,000\n{\\pos(10,20)}A SIGN\n")
    doc = parse(srt.encode(), "srt")
    assert [(c.start, c.end, c.text, c.sign) for c in doc.cues] == [
        (1000, 2000, "Red and top", False), (3000, 4000, "Bold &amp; u", False), (5000, 6000, "A SIGN", True)]
    out = render(doc, [(1500, 2500), (3500, 4500), (5500, 6500)])
    assert out == srt.replace("00:00:01,000 --> 00:00:02,000", "00:00:01,500 --> 00:00:02,500").replace(
        "00:00:03,000 --> 00:00:04,000", "00:00:03,500 --> 00:00:04,500").replace(
        "00:00:05,000 --> 00:00:06,000", "00:00:05,500 --> 00:00:06,500")
    squeezed = parse("1\n00:00:01,000 --> 00:00:02,000\nA\n2\n00:00:03,000 --> 00:00:04,000\nB", "srt")
    assert [(c.start, c.end, c.text) for c in squeezed.cues] == [(1000, 2000, "A"), (3000, 4000, "B")]
    ass_named_srt = parse(ASS, "srt")  # another format under a .srt name still goes to pysubs2
    assert [c.text for c in ass_named_srt.cues] == ["later line", "earlier line"]


def test_an_implausible_sample_rate_is_a_failed_record():
    """Rate 0 (PyAV's answer for a stream without one) raised soxr's ValueError out of the stage and the
    command (a traceback)."""
    subs = srt_text([(0.5, 1.0, "a")])
    for rate in (0, 999, 400_000):
        rec, text, _, times = align_subtitles(np.full(1600, 0.1, np.float32), rate, subs, hint="srt")
        assert (rec["status"], rec["reasons"], rec["message"], text, times) == (
            "failed", ["audio.bad_rate"], f"implausible sample rate {rate} Hz", None, [])


def test_an_output_that_is_a_directory_is_a_config_error(tmp_path):
    """-o pointing at a folder aligned the whole file and then died with IsADirectoryError (exit 1)."""
    x, truth = speech_track(10, seed=4)
    write(tmp_path / "a.wav", wav_bytes(x))
    write(tmp_path / "a.srt", srt_text(shifted_cues(truth, offset_ms=-300)))
    proc = run_cli("align", str(tmp_path / "a.wav"), str(tmp_path / "a.srt"), "-o", str(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        f"mmprep: config error: --output: {tmp_path} is a directory; give the re-timed file's path"]
