"""Image review fixes: damaged EXIF, bytes after the end marker, PNG transparency past the first 4 KB,
and darkening with a negative brightness offset."""

from __future__ import annotations

import io
import json
import struct
import zlib

import numpy as np
import pytest

from mmprep.sample import KEY
from mmprep.stage import make_stage
from mmprep.stages.image.filters import EnhanceConfig, enhance
from mmprep.stages.image.header import read_header
from mmprep.testing.images import encode, photo


def decoded(data: bytes, ext: str = "jpg", **params) -> dict:
    return make_stage("image.decode", **params).process({KEY: "k", ext: data})


def test_a_damaged_exif_block_does_not_make_a_good_jpeg_unreadable():
    """An APP1 EXIF block whose IFD offset points past its end raised struct.error inside the header
    parser, which read as 'a cut-short jpg header': the whole image was dropped as image.corrupt."""
    jpeg = encode(photo(40, 30, seed=2), "jpg")
    payload = b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 0xFFFF)  # IFD0 offset far beyond the block
    data = jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]
    hdr = read_header(data)
    assert (hdr.format, hdr.width, hdr.height, hdr.orientation, hdr.complete) == ("jpg", 40, 30, 1, True)
    out = decoded(data)
    assert out["jpg"].pixels.shape == (30, 40, 3)
    assert out["jpg"].source is data


@pytest.mark.parametrize("ext", ["jpg", "png"])
def test_bytes_after_the_end_marker_are_not_truncation(ext):
    """Camera trailers and padding after JPEG EOI / PNG IEND: the end marker was only looked for in the
    last 64 (JPEG) or 32 (PNG) bytes, so such files were dropped as truncated with strict: true."""
    good = encode(photo(40, 30, seed=3), ext)
    data = good + b"SEFH" + bytes(range(256)) * 4  # 1 KB of trailer
    assert read_header(data).complete
    out = decoded(data, ext)
    assert out[ext].pixels.shape == (30, 40, 3)
    cut = good[: len(good) * 2 // 3]  # a real truncation is still caught
    assert not read_header(cut).complete
    with pytest.raises(Exception, match="truncated") as exc:
        decoded(cut, ext)
    assert exc.value.reason == "image.corrupt"


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)


def test_palette_transparency_after_a_large_icc_profile_is_kept():
    """tRNS was looked for in the first 4 KB only; a palette PNG with a 6 KB iCCP chunk before it lost its
    alpha (decoded as RGB) even with alpha: keep."""
    from PIL import Image as PilImage

    pixels = np.zeros((8, 8), np.uint8)
    pixels[:, 4:] = 1  # right half: palette entry 1, left half entry 0 (transparent)
    img = PilImage.fromarray(pixels, "P")
    img.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    buf = io.BytesIO()
    img.save(buf, "PNG", transparency=0)
    plain = buf.getvalue()
    icc = _chunk(b"iCCP", b"junk\x00\x00" + zlib.compress(bytes(range(256)) * 64, 0))  # > 4 KB, stored
    data = plain[:33] + icc + plain[33:]  # right after IHDR
    assert len(icc) > 4096 and data.index(b"tRNS") > 4096
    assert read_header(data).channels == 4
    px = decoded(data, "png", alpha="keep")["png"].pixels
    assert px.shape == (8, 8, 4)
    assert px[0, 0].tolist() == [255, 0, 0, 0] and px[0, 7].tolist() == [0, 0, 255, 255]
    px = decoded(data, "png", alpha="composite", background=(0, 255, 0))["png"].pixels
    assert px[0, 0].tolist() == [0, 255, 0] and px[0, 7].tolist() == [0, 0, 255]


def test_negative_brightness_darkens_to_black_not_back_up():
    """convertScaleAbs takes the absolute value: with beta -50 a pixel of 10 became 40, brighter."""
    px = np.array([[[10, 100, 250], [0, 49, 51]]], np.uint8)
    assert enhance(px, EnhanceConfig(beta=-50)).tolist() == [[[0, 50, 200], [0, 0, 1]]]
    assert enhance(px, EnhanceConfig(alpha=0.5, beta=-20)).tolist() == [[[0, 30, 105], [0, 4, 6]]]
    assert enhance(px, EnhanceConfig(alpha=2.0, beta=10)).tolist() == [[[30, 210, 255], [10, 108, 112]]]
    rgba = np.dstack([px, np.full((1, 2), 77, np.uint8)])
    assert enhance(rgba, EnhanceConfig(beta=-50))[:, :, 3].tolist() == [[77, 77]]
    assert make_stage("image.enhance").version == "2"


def test_keep_ratio_refuses_an_output_over_90_megapixels():
    """keep_ratio on the shorter side grows the longer one by the same factor: a 1x2000 banner (a few
    hundred bytes as PNG) became a 512000x256 image (393 MB), a 1x100000 one 19 GB: a worker killed by
    the OOM killer instead of one dropped sample."""
    from mmprep.sample import Image

    banner = np.full((1, 2000, 3), 90, np.uint8)
    with pytest.raises(Exception, match="would be 512000x256 = 131 MP") as exc:
        make_stage("image.resize", size=256, mode="keep_ratio").process({KEY: "k", "png": Image(pixels=banner)})
    assert (exc.value.reason, exc.value.field) == ("image.too_large", "png")
    for params in ({"side": "longer"}, {"upscale": False}, {"mode": "center_crop"}, {"mode": "pad"}):
        out = make_stage("image.resize", **{"size": 256, "mode": "keep_ratio", **params}).process(
            {KEY: "k", "png": Image(pixels=banner)})
        assert out["png"].pixels.size <= 256 * 2000 * 3
    stage = make_stage("image.resize", size=256, mode="keep_ratio")
    ok = stage.process({KEY: "k", "png": Image(pixels=banner[:, :300])})
    assert ok["png"].pixels.shape == (256, 76800, 3)  # 19.7 MP: allowed


def test_embedding_preprocessing_of_a_banner_does_not_blow_up():
    """mmprep embed's preprocessing resized the shorter side to `size` before cropping: a 1x2000 image
    meant a 224x448000 intermediate (301 MB)."""
    import tracemalloc

    from mmprep.embed.image import preprocess

    banner = np.zeros((1, 2000, 3), np.uint8)
    banner[0, 990:1010] = 200  # the centre the crop keeps
    tracemalloc.start()
    x = preprocess(banner, size=224, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 5_000_000, peak
    assert x.shape == (3, 224, 224) and np.allclose(x, 200 / 255)
    normal = photo(300, 200, seed=4)  # usual aspect ratios keep the resize-then-crop path
    got = preprocess(normal, size=64, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    import cv2

    want = cv2.resize(normal, (96, 64), interpolation=cv2.INTER_LINEAR)[:, 16:80].astype(np.float32) / 255
    assert np.array_equal(got, want.transpose(2, 0, 1))


def test_extraneous_bytes_between_jpeg_segments_are_skipped_as_libjpeg_does():
    """Padding between two header segments made the header parser give up ('a cut-short jpg header',
    image.corrupt) although OpenCV decodes the file (libjpeg warns and skips to the next marker)."""
    jpeg = encode(photo(40, 30, seed=5), "jpg")
    app0 = 4 + struct.unpack(">H", jpeg[4:6])[0]
    data = jpeg[:app0] + b"\x00\x00\x00" + jpeg[app0:]
    hdr = read_header(data)
    assert (hdr.width, hdr.height, hdr.complete) == (40, 30, True)
    assert decoded(data)["jpg"].pixels.shape == (30, 40, 3)
    assert read_header(jpeg[:app0] + b"\x00" * 40) is None  # no marker after the padding: still refused


def test_probe_calls_a_truncated_image_broken(tmp_path):
    """`mmprep probe` printed complete: false for a cut-short JPEG but exited 0 ('exit 1 if a file is
    broken'), although the build drops it as image.corrupt."""
    from mmprep.testing.media import write
    from tests.conftest import run_cli

    good = encode(photo(40, 30, seed=6), "jpg")
    cut = write(tmp_path / "cut.jpg", good[: len(good) // 2])
    ok = write(tmp_path / "ok.jpg", good + b"trailer" * 20)
    res = run_cli("probe", str(ok), str(cut))
    assert res.returncode == 1, res.stderr
    docs = [json.loads(line) for line in res.stdout.splitlines()]
    assert docs[0]["complete"] and "error" not in docs[0]
    assert (docs[1]["complete"], docs[1]["error"], docs[1]["width"]) == (False, "image.corrupt", 40)
    assert docs[1]["message"] == "cut.jpg: truncated jpg (no end-of-image marker)"
    assert run_cli("probe", str(ok)).returncode == 0
