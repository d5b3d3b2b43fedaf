"""Image and video pipelines through a real build: shard contents and a reason code for each bad input."""

from __future__ import annotations

import io
import json
from pathlib import Path

import cv2
import numpy as np
import yaml

from mmprep.build import BuildOptions, run_build
from mmprep.config import parse_pipeline
from mmprep.testing.images import encode, photo, png_bomb, with_exif_orientation
from mmprep.testing.media import mp4_bytes, write
from tests.conftest import shard_members as members

ROOT = Path(__file__).resolve().parent.parent


def build(pipeline: str, inp: Path, out: Path) -> dict:
    doc = yaml.safe_load((ROOT / "pipelines" / pipeline).read_text())
    doc["output"]["max_samples"] = 4
    return run_build(parse_pipeline(doc), BuildOptions(input=str(inp), output=str(out), workers=1, progress=False))




def errors(out: Path) -> dict[str, dict]:
    lines = (out / "errors.jsonl").read_text().splitlines()
    return {json.loads(line)["key"]: json.loads(line) for line in lines}


def test_images_pipeline_crops_encodes_and_reports_bad_files(tmp_path):
    inp = tmp_path / "in"
    good = {"a": ("jpg", encode(photo(1200, 800, seed=1), "jpg")), "b": ("png", encode(photo(300, 500, seed=2), "png")),
            "c": ("webp", encode(photo(640, 480, seed=3), "webp")),
            "d": ("jpg", with_exif_orientation(encode(photo(900, 300, seed=4), "jpg"), 6))}
    bad = {"bomb": ("png", png_bomb(), "image.too_large"),
           "trunc": ("jpg", encode(photo(200, 200))[:-300], "image.corrupt"),
           "fake": ("jpg", b"<html>404 not found</html>", "image.corrupt")}
    for key, (ext, data) in good.items():
        write(inp / f"{key}.{ext}", data)
        write(inp / f"{key}.txt", f"caption {key}")
    for key, (ext, data, _) in bad.items():
        write(inp / f"{key}.{ext}", data)
        write(inp / f"{key}.txt", "caption")
    summary = build("images.yaml", inp, tmp_path / "out")
    assert summary["samples_out"] == 4 and summary["samples_dropped"] == 3
    errs = errors(tmp_path / "out")
    assert {k: e["reason"] for k, e in errs.items()} == {k: v[2] for k, v in bad.items()}
    got = members(tmp_path / "out")
    for key in good:
        assert f"{key}.png" not in got and f"{key}.webp" not in got  # every image stored as JPEG
        img = cv2.imdecode(np.frombuffer(got[f"{key}.jpg"], np.uint8), cv2.IMREAD_COLOR)
        assert img.shape == (256, 256, 3)
        assert got[f"{key}.txt"] == f"caption {key}".encode()
    meta = json.loads(got["a.meta.json"])
    assert meta["image"]["jpg"]["scale"] == 2 and meta["image"]["jpg"]["width"] == 1200  # reduced decode used
    assert json.loads(got["d.meta.json"])["image"]["jpg"]["width"] == 300  # EXIF 6: upright 300 x 900


def test_video_pipeline_clips_audio_frames_and_bad_videos(tmp_path):
    inp = tmp_path / "in"
    write(inp / "talk.mp4", mp4_bytes(seconds=2.5, fps=10))
    write(inp / "mute.mp4", mp4_bytes(seconds=1.0, fps=10, audio=False))
    write(inp / "broken.mp4", mp4_bytes(seconds=1.0, fps=10)[:900])
    doc = yaml.safe_load((ROOT / "pipelines" / "video.yaml").read_text())
    doc["stages"][1]["length"] = 1.0
    doc["stages"][3]["size"] = 32
    out = tmp_path / "out"
    summary = run_build(parse_pipeline(doc), BuildOptions(input=str(inp), output=str(out), workers=1, progress=False))
    got = members(out)
    keys = sorted({name.split(".")[0] for name in got})
    assert keys == ["mute/_clip0000", "talk/_clip0000", "talk/_clip0001", "talk/_clip0002"]
    assert "talk/_clip0002.wav" in got and "mute/_clip0000.wav" not in got  # no audio: field omitted, sample kept
    assert "talk/_clip0001.frame000.jpg" in got
    meta = json.loads(got["talk/_clip0002.meta.json"])
    assert meta["clip"]["start"] == 2.0 and meta["clip"]["end"] == 2.5 and meta["clip"]["frames"] == 5
    reasons = sorted((e["key"], e["reason"], e["action"]) for e in
                     map(json.loads, (out / "errors.jsonl").read_text().splitlines()))
    assert reasons == [("broken", "video.corrupt", "dropped"), ("mute/_clip0000", "video.no_audio", "omitted")]
    assert summary["samples_out"] == 4
    wav = io.BytesIO(got["talk/_clip0000.wav"])
    import soundfile as sf

    samples, rate = sf.read(wav)
    assert rate == 16000 and abs(len(samples) / rate - 1.0) < 0.1


def test_a_gif_goes_through_the_image_stages(tmp_path):
    """GIF was no image field: a.gif skipped every image stage and landed as the original 400x300 bytes."""
    ok, gif = cv2.imencode(".gif", photo(400, 300, seed=5))
    assert ok
    write(tmp_path / "in" / "a.gif", gif.tobytes())
    write(tmp_path / "in" / "a.txt", "caption a")
    summary = build("images.yaml", tmp_path / "in", tmp_path / "out")
    assert summary["samples_out"] == 1 and summary["samples_dropped"] == 0
    got = members(tmp_path / "out")
    meta = json.loads(got["a.meta.json"])
    assert "image" in meta
    (name,) = [n for n in got if n.startswith("a.") and n.split(".", 1)[1] in ("jpg", "gif")]
    pixels = cv2.imdecode(np.frombuffer(got[name], np.uint8), cv2.IMREAD_COLOR)
    assert pixels.shape[:2] == (256, 256)
