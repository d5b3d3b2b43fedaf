"""Re-timing recovers offsets, framerate ratios and ad-break splits; mismatches and bad input are flagged."""

from __future__ import annotations

import numpy as np
import pytest

from mmprep.align.retime import AlignParams, align
from mmprep.align.speech import activity
from mmprep.align.subs import Cue
from mmprep.testing.speech import add_noise, speech_track, with_ad_break

RATE = 16000


def _cues(truth, offset_ms=0.0, ratio=1.0):
    """Subtitle cues that need ``t_media = ratio * t_sub + offset`` to match ``truth``."""
    return [Cue(int(round((a - offset_ms) / ratio)), int(round((b - offset_ms) / ratio)), f"l{i}")
            for i, (a, b) in enumerate(truth)]


def _errors(times, truth):
    return np.array([t[0] - s for t, (s, _) in zip(times, truth, strict=True)], float)


@pytest.fixture(scope="module")
def track():
    x, truth = speech_track(60, seed=3, lead=10.0)
    return add_noise(x, 10, seed=3, kind="pink"), truth


@pytest.mark.parametrize(("offset_ms", "ratio"), [(4321, 1.0), (-8765, 1.0), (2500, 25 / 23.976),
                                                   (-3000, 23.976 / 25), (1500, 24 / 23.976)])
def test_offset_and_ratio_recovered(track, offset_ms, ratio):
    y, truth = track
    subs = _cues(truth, offset_ms, ratio)
    if min(c.start for c in subs) < 0:
        pytest.skip("case would need negative subtitle times")
    res = align(activity(y, RATE), subs)
    rec = res.record
    assert rec["status"] == "ok", rec
    assert rec["confidence"] >= 0.8
    assert abs(rec["ratio"] - ratio) < 0.002
    err = np.abs(_errors(res.times, truth))
    # cue starts: median within 15 ms, all within 100 ms (SNR 10 dB, pink noise)
    assert np.median(err) <= 15, err
    assert err.max() <= 100, err


def test_offset_beyond_bound_is_not_found(track):
    y, truth = track
    rec = align(activity(y, RATE), _cues(truth, 20000), AlignParams(max_offset=5.0)).record
    assert rec["status"] != "ok"


def test_ad_break_split(track):
    y, truth = track
    y2, moved = with_ad_break(y, truth, after_cue=len(truth) // 2, ad_seconds=12.0, seed=3)
    subs = _cues(truth, 1000)  # subtitles made for the version without the ad, 1 s early
    rec_single = align(activity(y2, RATE), subs, AlignParams(max_splits=0))
    res = align(activity(y2, RATE), subs, AlignParams(max_splits=1))
    assert len(res.record["splits"]) == 1
    split = res.record["splits"][0]
    assert split["cue"] == len(truth) // 2 + 1
    assert abs(split["offset"] - 13.0) < 0.05 and abs(res.record["offset"] - 1.0) < 0.05
    err = np.abs(_errors(res.times, moved))
    assert np.median(err) <= 15 and err.max() <= 100
    assert np.abs(_errors(rec_single.times, moved)).max() > 1000  # one offset cannot fit both halves


def test_mismatched_subtitles_never_ok(track):
    y, _ = track
    act = activity(y, RATE)
    for seed in range(4):
        other = speech_track(60, seed=100 + seed)[1]
        rec = align(act, _cues(other)).record
        assert rec["status"] in ("low_confidence", "failed"), rec
        assert rec["confidence"] < 0.5


def test_no_speech_and_no_cues_fail_with_reasons(track):
    _, truth = track
    silent = activity(np.zeros(RATE * 20, np.float32), RATE)
    assert align(silent, _cues(truth)).record["reasons"] == ["audio.no_speech"]
    noise = activity(add_noise(np.zeros(RATE * 20, np.float32) + 1e-3, 0), RATE)
    assert align(noise, _cues(truth)).record["status"] == "failed"
    y, _ = track
    rec = align(activity(y, RATE), [Cue(1000, 2000, "  "), Cue(3000, 2000, "x")]).record
    assert rec["status"] == "failed" and rec["reasons"] == ["subtitle.empty"]
    assert rec["validation"]["counts"] == {"empty": 1, "backwards": 1}


def test_boundary_refinement_fixes_jitter(track):
    y, truth = track
    rng = np.random.default_rng(0)
    subs = [Cue(c.start + int(rng.normal(0, 60)), c.end + int(rng.normal(0, 60)), c.text) for c in _cues(truth, 700)]
    act = activity(y, RATE)
    raw = np.median(np.abs(_errors(align(act, subs, AlignParams(refine_window=0)).times, truth)))
    refined = np.median(np.abs(_errors(align(act, subs).times, truth)))
    assert refined <= 15 and refined < raw / 2, (raw, refined)


def test_a_sign_or_an_overlong_cue_does_not_pull_the_match(track):
    """A positioned ASS event (a sign) over the whole episode read as a minute of speech: the file came
    out low_confidence with a wrong offset. Signs and cues over 30 s are moved with the others but not
    matched to speech."""
    import pysubs2

    from mmprep.align.subs import parse

    y, truth = track
    subs = _cues(truth, -2000)
    doc = pysubs2.SSAFile()
    doc.events = [pysubs2.SSAEvent(start=c.start, end=c.end, text=c.text) for c in subs]
    doc.events.insert(0, pysubs2.SSAEvent(start=0, end=59_000, text=r"{\pos(320,50)}EPISODE 1"))
    cues = parse(doc.to_string("ass").encode(), "ass").cues
    assert cues[0].sign and not any(c.sign for c in cues[1:])
    long_cue = [*subs, Cue(0, 45_000, "narration over everything")]
    for case in (cues, long_cue):
        res = align(activity(y, RATE), case)
        assert res.record["status"] == "ok" and res.record["cues_not_used"] == 1, res.record
        spoken = [t for t, c in zip(res.times, case, strict=True) if not c.sign and c.end - c.start < 30_000]
        assert np.median(np.abs(_errors(spoken, truth))) <= 15
    assert np.allclose(res.times[-1], (-2000, 43_000), atol=20)  # moved with the rest
