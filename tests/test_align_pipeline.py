"""End to end: `mmprep build` with align.subtitles + align.av, the report files, and the CLI commands."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mmprep.align.subs import parse
from mmprep.cli import load_commands
from mmprep.testing.speech import alignment_corpus
from tests.conftest import shard_members as _members

PIPELINE = Path(__file__).resolve().parents[1] / "pipelines" / "align.yaml"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("align")
    truth = alignment_corpus(root / "in")
    res = CliRunner().invoke(load_commands(), ["build", str(PIPELINE), "-i", str(root / "in"), "-o",
                                               str(root / "out"), "-w", "1", "-q"])
    assert res.exit_code == 0, res.output
    return root, truth




def test_report_json_records_and_totals(built):
    root, truth = built
    doc = json.loads((root / "out" / "alignment_report.json").read_text())
    recs = {(r["key"], r["field"]): r for r in doc["records"]}
    assert recs[("shift", "srt")]["status"] == "ok"
    assert abs(recs[("shift", "srt")]["offset"] - truth["shift"]["offset"]) < 0.03
    assert recs[("ratio", "vtt")]["status"] == "ok"
    assert abs(recs[("ratio", "vtt")]["ratio"] - truth["ratio"]["ratio"]) < 0.002
    assert recs[("mismatch", "srt")]["status"] in ("low_confidence", "failed")
    assert recs[("garbage", "srt")]["reasons"] == ["subtitle.unparseable"]
    assert recs[("silence", "srt")]["reasons"] == ["audio.no_speech"]
    assert recs[("subonly", "srt")]["reasons"] == ["align.no_media"]
    assert recs[("flash", "mp4")]["kind"] == "av" and abs(recs[("flash", "mp4")]["offset"] - 0.12) <= 0.02
    t = doc["totals"]
    assert t["records"] == 7 and t["status"] == {"ok": 3, "low_confidence": 1, "failed": 3}
    assert sum(doc["histograms"]["confidence"]["counts"]) == 7
    for key in ("speech_coverage", "cue_coverage", "residuals", "features", "validation"):
        assert key in recs[("shift", "srt")]
    assert "plot" in recs[("mismatch", "srt")] and "plot" not in recs[("shift", "srt")]
    assert [r["status"] for r in doc["records"]][:3] == ["failed"] * 3  # worst first


def test_shards_hold_retimed_subtitles_and_cue_maps(built):
    root, truth = built
    got = _members(root / "out")
    cues = parse(got["shift.srt"].decode(), "srt").cues
    errs = [abs(c.start - s) for c, (s, _) in zip(cues, truth["shift"]["cues"], strict=True)]
    assert sorted(errs)[len(errs) // 2] <= 15 and max(errs) <= 100
    info = json.loads(got["shift.align.json"])
    cmap = info["subtitles"]["srt"]["cue_map"]
    assert len(cmap) == len(cues)
    first = cmap[0]
    assert first["samples"] == [round(first["start"] * 16000), round(first["end"] * 16000)]
    assert first["feature_frames"][0] == -(-first["samples"][0] // 160)
    # low confidence keeps the original subtitle bytes (on_low_confidence: original)
    assert got["mismatch.srt"] == (root / "in" / "mismatch.srt").read_bytes()
    assert json.loads(got["flash.align.json"])["av"]["mp4"]["status"] == "ok"


def test_report_command_rebuilds_html(built):
    root, _ = built
    html = root / "out" / "alignment_report.html"
    html.unlink()
    res = CliRunner().invoke(load_commands(), ["report", str(root / "out")])
    assert res.exit_code == 0 and res.output.strip() == str(html)
    page = html.read_text()
    assert page.startswith("<!DOCTYPE html>") and "http" not in page.replace("http-equiv", "")
    assert page.count("<svg") >= 3 and "<table class='sortable'" in page


def test_report_missing_is_config_error(tmp_path):
    res = CliRunner().invoke(load_commands(), ["report", str(tmp_path)])
    assert res.exit_code == 2 and "OUT" in res.output


def test_align_and_avsync_commands(built, tmp_path):
    root, truth = built
    app = load_commands()
    out = tmp_path / "o.vtt"
    res = CliRunner().invoke(app, ["align", str(root / "in" / "ratio.wav"), str(root / "in" / "ratio.vtt"), "-o",
                                   str(out), "--json"])
    assert res.exit_code == 0, res.output
    rec = json.loads(res.output)
    assert rec["status"] == "ok" and out.read_text().startswith("WEBVTT")
    bad = CliRunner().invoke(app, ["align", str(root / "in" / "mismatch.wav"), str(root / "in" / "mismatch.srt"),
                                   "-o", str(tmp_path / "m.srt")])
    assert bad.exit_code == 1 and not (tmp_path / "m.srt").exists()
    av = CliRunner().invoke(app, ["avsync", str(root / "in" / "flash.mp4"), "--json"])
    assert av.exit_code == 0 and abs(json.loads(av.output)["offset"] - 0.12) <= 0.02
    missing = CliRunner().invoke(app, ["align", str(tmp_path / "none.wav"), str(out), "-o", str(out)])
    assert missing.exit_code == 2


def test_html_renders_in_headless_chromium(built, tmp_path):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    root, _ = built
    page = root / "out" / "alignment_report.html"
    cmd = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
           "--virtual-time-budget=2000"]
    dom = subprocess.run([*cmd, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Alignment report" in dom.stdout and "<svg" in dom.stdout and "mismatch" in dom.stdout
    shot = tmp_path / "shot.png"
    run = subprocess.run([*cmd, f"--screenshot={shot}", "--window-size=1200,900", page.as_uri()],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0 and shot.stat().st_size > 10_000


def test_clips_cut_by_cues_use_aligned_times(tmp_path):
    from conftest import build

    from mmprep.testing.media import srt_text, wav_bytes, write
    from mmprep.testing.speech import add_noise, shifted_cues, speech_track

    x, truth = speech_track(30, seed=5, lead=4.0)
    write(tmp_path / "in" / "a.wav", wav_bytes(add_noise(x, 15, seed=5)))
    write(tmp_path / "in" / "a.srt", srt_text(shifted_cues(truth, offset_ms=3000)))  # subtitles 3 s early
    doc = {"stages": [{"stage": "audio.decode"}, {"stage": "align.subtitles"},
                      {"stage": "audio.segment", "mode": "subtitle", "pad_ms": 0, "max_seconds": None}],
           "output": {"meta": True}}
    summary = build(doc, tmp_path / "in", tmp_path / "out", workers=1)
    assert summary["ok"], summary
    metas = {k: json.loads(v) for k, v in _members(tmp_path / "out").items() if k.endswith(".meta.json")}
    starts = sorted(m["segment"]["start_sample"] for m in metas.values())
    assert len(starts) == len(truth)
    errs = [abs(s / 16 - t) for s, (t, _) in zip(starts, truth, strict=True)]  # ms
    assert max(errs) <= 100 and sorted(errs)[len(errs) // 2] <= 15


def test_stage_bad_media_gives_failed_records_not_crashes():
    from mmprep.stage import get_stage
    from mmprep.testing.media import mp4_bytes, srt_text

    cls = get_stage("align.subtitles")
    stage = cls(cls.Config())
    stage.begin_shard()
    srt = srt_text([(1.0, 2.0, "hello"), (3.0, 4.0, "there")])
    silent_video = stage.process({"__key__": "v", "__meta__": {}, "mp4": mp4_bytes(audio=False), "srt": srt})
    broken = stage.process({"__key__": "b", "__meta__": {}, "wav": b"RIFF\x00garbage", "srt": srt})
    empty = stage.process({"__key__": "e", "__meta__": {}, "wav": mp4_bytes(), "srt": "\n\n"})
    recs = {r["key"]: r for r in stage.end_shard()["records"]}
    assert recs["v"]["status"] == "failed" and recs["v"]["reasons"] == ["audio.no_stream"]
    assert recs["b"]["status"] == "failed" and recs["b"]["reasons"] == ["audio.corrupt"]
    assert recs["e"]["reasons"] == ["subtitle.empty"]
    assert silent_video["srt"] == srt and silent_video["align.json"]["subtitles"]["srt"]["status"] == "failed"
    assert broken["__meta__"]["align"]["srt"]["status"] == "failed" and empty["srt"] == "\n\n"


def test_stage_aligns_json_segments_and_keeps_their_format():
    from mmprep.stage import get_stage
    from mmprep.testing.media import wav_bytes
    from mmprep.testing.speech import add_noise, speech_track

    x, truth = speech_track(40, seed=8, lead=3.0)
    segs = [{"start": (a - 1500) / 1000, "end": (b - 1500) / 1000, "text": f"s{i}", "speaker": "A"}
            for i, (a, b) in enumerate(truth)]
    cls = get_stage("align.subtitles")
    stage = cls(cls.Config(fields=["segments.json"], feature_hop=160))
    out = stage.process({"__key__": "j", "__meta__": {}, "wav": wav_bytes(add_noise(x, 15, seed=8)),
                         "segments.json": json.dumps({"segments": segs}).encode()})
    rec = out["align.json"]["subtitles"]["segments.json"]
    assert rec["status"] == "ok" and rec["format"] == "json" and abs(rec["offset"] - 1.5) < 0.03
    got = json.loads(out["segments.json"])["segments"]
    assert [s["speaker"] for s in got] == ["A"] * len(truth)
    assert max(abs(s["start"] * 1000 - a) for s, (a, _) in zip(got, truth, strict=True)) <= 100
    first = rec["cue_map"][0]
    assert first["feature_frames"] == [-(-first["samples"][0] // 160), -(-first["samples"][1] // 160)]


def test_incremental_rebuild_keeps_every_record_in_the_report(built, tmp_path):
    root, _ = built
    src, out = tmp_path / "in", tmp_path / "out"
    shutil.copytree(root / "in", src)
    res = CliRunner().invoke(load_commands(), ["build", str(PIPELINE), "-i", str(src), "-o", str(out), "-w", "1",
                                               "-q"])
    assert res.exit_code == 0, res.output
    before = json.loads((out / "alignment_report.json").read_text())
    srt = next(src.glob("shift.srt"))
    srt.write_text(srt.read_text() + "\n")  # one input changes; the shard's others are replayed
    res = CliRunner().invoke(load_commands(), ["build", str(PIPELINE), "-i", str(src), "-o", str(out), "-w", "1",
                                               "-q", "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output.strip().splitlines()[-1])
    assert summary["shards_built"] >= 1 and summary["records_reused"] >= 1
    after = json.loads((out / "alignment_report.json").read_text())
    assert after["totals"]["records"] == before["totals"]["records"] == 7
    assert sorted((r["key"], r["field"], r["status"]) for r in after["records"]) == sorted(
        (r["key"], r["field"], r["status"]) for r in before["records"])
    html = (out / "alignment_report.html").read_bytes()
    (out / "alignment_report.html").unlink()  # nothing else changes: the rerun still writes it again
    res = CliRunner().invoke(load_commands(), ["build", str(PIPELINE), "-i", str(src), "-o", str(out), "-w", "1",
                                               "-q", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output.strip().splitlines()[-1])["shards_built"] == 0
    assert (out / "alignment_report.html").read_bytes() == html
