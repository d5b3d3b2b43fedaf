"""Review 3 of alignment: too few cues or a rival offset are never a confident answer, negative SRT / WebVTT
times are read (and counted, moved, clamped) instead of dropping the cue."""

from __future__ import annotations

import numpy as np
import pytest

from mmprep.align.api import align_subtitles
from mmprep.align.command import run_align
from mmprep.align.retime import align
from mmprep.align.speech import activity
from mmprep.align.subs import Cue, parse, render, validate
from mmprep.sample import KEY, Audio
from mmprep.stage import make_stage
from mmprep.testing.media import wav_bytes, write
from mmprep.testing.speech import add_noise, speech_track

RATE = 16000


def _late(truth, ms):
    """Cues ``ms`` late against the speech (the right offset is ``-ms``)."""
    return [Cue(a + ms, b + ms, f"line {i}") for i, (a, b) in enumerate(truth)]


@pytest.fixture(scope="module")
def track13():
    x, truth = speech_track(40.0, seed=13)
    return activity(add_noise(x, 20, seed=13), RATE), truth


def test_one_or_two_speech_cues_are_low_confidence_three_are_ok(track13):
    """One cue fitted any utterance at least as long as it: offset 23.7 s (truth -1.5 s), status ok, 0.985."""
    act, truth = track13
    cues = _late(truth, 1500)
    one = align(act, cues[:1]).record
    assert one["status"] == "low_confidence"
    assert one["reasons"] == ["align.low_confidence", "align.too_few_cues"]
    assert one["confidence"] == 0.5
    two = align(act, cues[:2]).record
    assert two["status"] == "low_confidence" and two["reasons"] == ["align.low_confidence", "align.too_few_cues"]
    three = align(act, cues[:3]).record
    assert three["status"] == "ok" and three["reasons"] == [] and three["confidence"] > 0.9
    assert abs(three["offset"] + 1.5) <= 0.01 and three["ratio"] == 1.0
    assert three["features"]["margin"] > 0.2


def test_single_cue_cli_exits_1_and_writes_nothing(tmp_path):
    x, truth = speech_track(40.0, seed=11)
    wav = write(tmp_path / "a.wav", wav_bytes(add_noise(x, 20, seed=11)))
    a, b = truth[0][0] + 1500, truth[0][1] + 1500
    srt = write(tmp_path / "a.srt", f"1\n00:00:0{a // 1000},{a % 1000:03d} --> 00:00:0{b // 1000},{b % 1000:03d}\n"
                                    "line 0\n")
    out = tmp_path / "out.srt"
    assert run_align(wav, srt, out, quiet=True) == 1
    assert not out.exists()


def test_repeated_speech_is_an_ambiguous_offset():
    """The same 15 s twice: the cues fit both copies (15 s apart) equally well, so no offset can be trusted,
    although fit, onset match and prominence are all perfect."""
    x, truth = speech_track(15.0, seed=4)
    act = activity(add_noise(np.concatenate([x, x]), 20, seed=4), RATE)
    rec = align(act, _late(truth, 500)).record
    assert len(truth) >= 3
    assert rec["status"] == "low_confidence"
    assert rec["reasons"] == ["align.low_confidence", "align.ambiguous_offset"]
    assert rec["features"]["margin"] == 0.0 and rec["features"]["prominence"] == 30.0
    assert rec["confidence"] == 0.5


def test_margin_is_the_lead_over_the_best_offset_more_than_a_second_away():
    from mmprep.align.confidence import margin

    scores = np.zeros(1001)
    scores[300] = 100.0
    scores[350] = 99.0  # within 1 s (100 frames): the peak's own shoulder, not a rival
    assert margin(scores, 300, total=200.0) == 0.5
    scores[500] = 90.0
    assert margin(scores, 300, total=200.0) == pytest.approx(0.05)
    assert margin(scores[250:351], 50, total=200.0) == 2.0  # no offset that far: nothing rivals the peak


NEG_SRT = ("1\n-00:00:00,400 --> 00:00:03,759\nline 0\n\n"
           "2\n00:00:04,771 --> 00:00:07,800\nline 1\n\n"
           "3\n00:00:09,594 --> 00:00:11,491\nline 2\n")


def test_negative_srt_and_vtt_times_are_parsed_counted_and_clamped():
    doc = parse(NEG_SRT, "srt")
    assert [(c.start, c.end, c.text) for c in doc.cues] == [(-400, 3759, "line 0"), (4771, 7800, "line 1"),
                                                            (9594, 11491, "line 2")]
    assert validate(doc.cues)["counts"] == {"negative": 1}
    out = render(doc, [(c.start - 1000, c.end - 1000) for c in doc.cues])
    assert out.split("\n")[1] == "00:00:00,000 --> 00:00:02,759"  # clamped at 0, retimed like the others
    assert out.split("\n")[5] == "00:00:03,771 --> 00:00:06,800"
    vtt = parse("WEBVTT\n\n-00:01.500 --> 00:02.000\nhi\n\n00:03.000 --> -00:00:00.250\nbye\n", "vtt")
    assert [(c.start, c.end) for c in vtt.cues] == [(-1500, 2000), (3000, -250)]
    assert validate(vtt.cues)["counts"] == {"negative": 2, "backwards": 1}


def test_negative_cue_is_counted_by_subtitle_decode_and_cut_by_audio_segment():
    out = make_stage("subtitle.decode").process({KEY: "k", "__meta__": {}, "srt": NEG_SRT.encode()})
    assert out["__meta__"]["subtitle"]["srt"] == {"cues": 3, "start": -0.4, "end": 11.491,
                                                  "problems": {"negative": 1}}
    sample = {KEY: "k", "__meta__": {}, "wav": Audio(samples=np.zeros(12 * RATE, np.float32), rate=RATE),
              "srt": NEG_SRT}
    kids = make_stage("audio.segment", mode="subtitle", pad_ms=0).process(sample)
    assert [k["txt"] for k in kids] == ["line 0", "line 1", "line 2"]
    assert (kids[0]["__meta__"]["segment"]["start"], kids[0]["__meta__"]["segment"]["end"]) == (0.0, 3.759)


def test_negative_cue_is_moved_with_its_neighbours_when_aligning():
    """Subtitles 1.5 s early: the first cue starts at -0.5 s. It was dropped by the parser and written back
    untouched (``-00:00:00,500``) in an ``ok`` output."""
    x, truth = speech_track(40.0, seed=11)
    y = add_noise(x, 20, seed=11)
    srt = "".join(f"{i + 1}\n{'-' if a < 0 else ''}00:00:{abs(a) // 1000:02d},{abs(a) % 1000:03d} --> "
                  f"00:00:{b // 1000:02d},{b % 1000:03d}\nline {i}\n\n"
                  for i, (a, b) in enumerate((a - 1500, b - 1500) for a, b in truth))
    assert srt.split("\n")[1] == "-00:00:00,500 --> 00:00:00,759"
    rec, text, doc, times = align_subtitles(y, RATE, srt, hint="srt")
    assert rec["status"] == "ok" and abs(rec["offset"] - 1.5) <= 0.01
    assert rec["cues"] == len(truth) and rec["validation"]["counts"] == {"negative": 1}
    assert rec["cues_not_used"] == 1  # moved with the nearest speech cue, not matched itself
    assert len(times) == len(truth) and abs(times[0][0] - truth[0][0]) <= 20 and abs(times[0][1] - truth[0][1]) <= 20
    first = text.split("\n")[1]
    assert first.startswith("00:00:00,9") or first.startswith("00:00:01,0"), first


def test_cues_out_of_file_order_are_out_of_order_not_overlaps():
    """Four disjoint cues in reverse order were 3 overlaps; one mistyped time (10:00:03) made every later cue
    overlap it by ~36,000 s."""
    rev = [Cue(s * 1000, (s + 1) * 1000, "line") for s in (30, 20, 10, 5)]
    report = validate(rev)
    assert report["counts"] == {"out_of_order": 3}
    assert [p["cue"] for p in report["problems"]] == [0, 1, 2]
    typo = parse("1\n00:00:01,000 --> 00:00:02,000\na\n\n2\n10:00:03,000 --> 10:00:04,000\nb\n\n"
                 "3\n00:00:05,000 --> 00:00:06,000\nc\n\n4\n00:00:07,000 --> 00:00:08,000\nd\n", "srt")
    assert validate(typo.cues)["problems"] == [
        {"cue": 1, "problem": "out_of_order", "detail": "starts at 36003000 ms, out of start order with the cues "
                                                        "around it"}]


def test_overlaps_are_found_in_start_order_and_listed_in_file_order():
    cues = [Cue(5000, 7000, "c"), Cue(1000, 3000, "a"), Cue(2000, 4000, "b"), Cue(6000, 6500, "d")]
    report = validate(cues)
    assert report["counts"] == {"out_of_order": 1, "overlap": 2}
    assert report["problems"][0]["cue"] == 0 and report["problems"][0]["problem"] == "out_of_order"
    assert report["problems"][1:] == [
        {"cue": 2, "problem": "overlap", "detail": "overlaps cue 1 by 1000 ms"},
        {"cue": 3, "problem": "overlap", "detail": "overlaps cue 0 by 1000 ms"}]
