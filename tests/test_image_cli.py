"""``mmprep probe`` as a real process."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from mmprep.testing.images import encode, photo, with_exif_orientation
from mmprep.testing.media import mp4_bytes, write

ROOT = Path(__file__).resolve().parent.parent


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mmprep", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=120, stdin=subprocess.DEVNULL)


def test_probe_images_and_videos(tmp_path):
    img = write(tmp_path / "a.jpg", with_exif_orientation(encode(photo(120, 80), "jpg"), 6))
    vid = write(tmp_path / "v.mp4", mp4_bytes(seconds=1.0, fps=10))
    bad = write(tmp_path / "bad.mp4", b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64)
    res = cli("probe", str(img), str(vid), str(bad))
    assert res.returncode == 1, res.stderr  # one file is broken
    docs = [json.loads(line) for line in res.stdout.splitlines()]
    assert docs[0]["kind"] == "image" and (docs[0]["width"], docs[0]["height"], docs[0]["orientation"]) == (120, 80, 6)
    assert docs[1]["kind"] == "video" and docs[1]["frames"] == 10 and docs[1]["fps"] == 10.0
    assert docs[2]["error"] == "video.corrupt"
    fake = write(tmp_path / "fake.jpg", b"<html>404</html>")  # was reported as a video.corrupt "image"
    doc = json.loads(cli("probe", str(fake)).stdout)
    assert (doc["kind"], doc["error"]) == ("image", "image.corrupt") and "<html" in doc["message"]
    missing = cli("probe", str(tmp_path / "nope.jpg"))
    assert missing.returncode == 2 and "files:" in missing.stderr and len(missing.stderr.strip().splitlines()) == 1
