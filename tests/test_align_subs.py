"""Subtitle parsing, validation and format-preserving rendering (mmprep.align.subs)."""

from __future__ import annotations

import json

import pytest

from mmprep.align.subs import Cue, SubtitleError, parse, render, validate
from mmprep.testing.media import srt_text

SRT = srt_text([(1.0, 2.0, "one"), (1.5, 3.0, "two"), (4.0, 3.5, "three"), (5.0, 6.0, " "), (70.0, 71.0, "late")])


def test_srt_validation_counts_and_lists_each_problem():
    doc = parse(SRT, "srt")
    assert doc.format == "srt"
    assert [(c.start, c.end) for c in doc.cues] == [(1000, 2000), (1500, 3000), (4000, 3500), (5000, 6000),
                                                     (70000, 71000)]
    report = validate(doc.cues, media_seconds=60.0)
    assert report["counts"] == {"overlap": 1, "backwards": 1, "empty": 1, "past_end": 1}
    assert {(p["cue"], p["problem"]) for p in report["problems"]} == {
        (1, "overlap"), (2, "backwards"), (3, "empty"), (4, "past_end")}


def test_negative_times_are_flagged():
    assert validate([Cue(-500, 100, "x")])["counts"] == {"negative": 1}


def test_vtt_round_trip_keeps_format_and_text():
    doc = parse("WEBVTT\n\n00:01.000 --> 00:02.500\nhello <b>there</b>\n", "vtt")
    out = render(doc, [(1250, 2750)])
    assert out.startswith("WEBVTT")
    assert "00:00:01.250 --> 00:00:02.750" in out
    assert parse(out, "vtt").cues == [Cue(1250, 2750, "hello there")]


def test_srt_render_moves_times():
    out = render(parse(SRT, "srt"), [(0, 1), (2, 3), (4, 5), (6, 7), (8, 9)])
    assert "00:00:00,000 --> 00:00:00,001" in out
    assert [c.start for c in parse(out, "srt").cues] == [0, 2, 4, 6, 8]


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_json_segments_in_seconds_and_ms(fmt):
    segs = [{"start": 1.5, "end": 2.0, "text": "a", "speaker": "S1"}, {"start": 3.0, "end": 4.25, "text": "b"}]
    text = json.dumps({"segments": segs}) if fmt == "json" else "".join(json.dumps(s) + "\n" for s in segs)
    doc = parse(text, fmt)
    assert doc.format == fmt
    assert [(c.start, c.end, c.text) for c in doc.cues] == [(1500, 2000, "a"), (3000, 4250, "b")]
    out = render(doc, [(1600, 2100), (3100, 4350)])
    again = parse(out, fmt)
    assert [(c.start, c.end) for c in again.cues] == [(1600, 2100), (3100, 4350)]
    assert "S1" in out  # other keys are kept
    ms = parse(json.dumps([{"start_ms": 10, "end_ms": 20, "text": "x"}]), "json")
    assert ms.cues == [Cue(10, 20, "x")] and ms.json_times == "ms"
    assert json.loads(render(ms, [(30, 40)]))[0] == {"start_ms": 30, "end_ms": 40, "text": "x"}


@pytest.mark.parametrize("bad", ["just some prose\nwith no timing\n", "", "{not json", '{"foo": 1}'])
def test_unparseable_raises_typed_error(bad):
    hint = "json" if bad.startswith("{") else "srt"
    with pytest.raises(SubtitleError) as info:
        parse(bad, hint)
    assert info.value.reason in ("subtitle.unparseable", "subtitle.empty")


def test_subtitle_decode_stage_counts_problems_in_metadata():
    from mmprep.stage import get_stage

    cls = get_stage("subtitle.decode")
    sample = cls(cls.Config()).process({"__key__": "k", "__meta__": {}, "srt": SRT.encode()})
    info = sample["__meta__"]["subtitle"]["srt"]
    assert info["cues"] == 5 and info["problems"] == {"overlap": 1, "backwards": 1, "empty": 1}


def test_the_test_helper_refuses_negative_srt_times():
    import pytest

    from mmprep.testing.media import srt_text

    assert srt_text([(0.5, 1.25, "hi")]) == "1\n00:00:00,500 --> 00:00:01,250\nhi\n\n"
    with pytest.raises(ValueError, match="negative"):
        srt_text([(-2.0, 1.0, "before the start")])
