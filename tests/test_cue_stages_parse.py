"""video.clips (cue mode) and audio.segment (subtitle mode) read cues as alignment does: WebVTT identifiers,
NOTE and STYLE blocks are not cue text, CRLF line ends leave no carriage return, JSON segments work."""

from __future__ import annotations

import json

import pytest

from mmprep.errors import Drop
from mmprep.sample import KEY, Audio
from mmprep.stage import make_stage
from mmprep.testing.audio import speech_like
from mmprep.testing.media import mp4_bytes
from tests.test_video_stages import run

VTT = ("WEBVTT\r\n\r\nNOTE made by hand\r\n\r\nSTYLE\r\n::cue { color: yellow }\r\n\r\n"
       "intro\r\n00:00:00.100 --> 00:00:01.000 align:start\r\n<v Ann>Hello there\r\n\r\n"
       "2\r\n00:00:01.500 --> 00:00:02.500\r\nSecond line\r\nwraps here\r\n")
SRT_CRLF = "1\r\n00:00:00,100 --> 00:00:01,000\r\nHello there\r\n\r\n2\r\n00:00:01,500 --> 00:00:02,500\r\nSecond\r\n"
WANT = ["Hello there", "Second line\nwraps here"]


def test_video_cue_clips_carry_only_the_cue_text():
    video = mp4_bytes(seconds=3.0, fps=25, audio=False)
    clips = run("video.clips", {KEY: "v", "mp4": video, "vtt": VTT.encode()}, mode="cues", cue_field="vtt",
                audio=False)
    assert [c["txt"] for c in clips] == WANT
    clips = run("video.clips", {KEY: "v", "mp4": video, "srt": SRT_CRLF.encode()}, mode="cues", audio=False)
    assert [c["txt"] for c in clips] == ["Hello there", "Second"]


def test_audio_subtitle_segments_carry_only_the_cue_text():
    def segments(field: str, subs: str, **params) -> list[str]:
        sample = {KEY: "k", "__meta__": {}, "wav": Audio(samples=speech_like(3.0), rate=16000), field: subs}
        return [k["txt"] for k in make_stage("audio.segment", mode="subtitle", pad_ms=0, **params).process(sample)]

    assert segments("vtt", VTT) == WANT
    assert segments("srt", SRT_CRLF) == ["Hello there", "Second"]
    segs = [{"start": 0.1, "end": 1.0, "text": "from json"}]
    assert segments("json", json.dumps(segs), subtitle_field="json") == ["from json"]


def test_empty_subtitles_give_no_cues_in_both_stages_and_json_null_text_is_empty():
    video = mp4_bytes(seconds=1.0, fps=10, audio=False)
    for subs in (b"", b"WEBVTT\n\n"):
        with pytest.raises(Drop) as drop:
            run("video.clips", {KEY: "v", "mp4": video, "vtt": subs}, mode="cues", cue_field="vtt", audio=False)
        assert drop.value.reason == "video.clips.empty", subs
        sample = {KEY: "k", "__meta__": {}, "wav": Audio(samples=speech_like(1.0), rate=16000), "vtt": subs}
        with pytest.raises(Drop) as drop:
            make_stage("audio.segment", mode="subtitle").process(sample)
        assert drop.value.reason == "audio.no_segments", subs
    sample = {KEY: "k", "__meta__": {}, "wav": Audio(samples=speech_like(2.0), rate=16000),
              "json": json.dumps([{"start": 0.1, "end": 1.0, "text": None}, {"start": 1.0, "end": 1.5, "text": 7}])}
    kids = make_stage("audio.segment", mode="subtitle", subtitle_field="json", pad_ms=0).process(sample)
    assert [k["txt"] for k in kids] == ["7"]  # the null text is an empty cue: it labels nothing
