"""Image stages checked on pixels: decode policies, reduced decode, resize modes, filters, encode, augment."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from mmprep.errors import Drop, MissingDependency
from mmprep.sample import KEY, Image
from mmprep.stage import make_stage
from mmprep.stages.image.header import read_header
from mmprep.testing.images import encode, photo, png_bomb, with_exif_orientation

stage = make_stage


def run(name: str, sample: dict, **params) -> dict:
    return stage(name, **params).process(sample)


def decoded(data: bytes, ext: str = "jpg", **params) -> dict:
    return run("image.decode", {KEY: "k", ext: data}, **params)


# -- decode --------------------------------------------------------------------------------------------
@pytest.mark.parametrize("ext", ["jpg", "png", "webp", "bmp", "tiff"])
def test_decode_formats_keep_size_and_original_bytes(ext):
    px = photo(120, 80, seed=1)
    data = encode(px, ext, quality=95)
    hdr = read_header(data)
    assert (hdr.width, hdr.height) == (120, 80)
    out = decoded(data, ext)
    img = out[ext]
    assert img.pixels.shape == (80, 120, 3) and img.pixels.dtype == np.uint8
    assert img.source is data
    err = np.abs(img.pixels.astype(int) - px).mean()
    assert err < (8.0 if ext in ("jpg", "webp") else 0.01)  # RGB order kept (a BGR swap gives ~40+)
    assert out["__meta__"]["image"][ext]["width"] == 120


def test_exif_orientation_6_turns_the_image_clockwise():
    px = np.zeros((40, 80, 3), np.uint8)
    px[:, :40] = (255, 0, 0)  # left half red
    data = with_exif_orientation(encode(px, "jpg", 95), 6)
    assert read_header(data).orientation == 6
    img = decoded(data)["jpg"]
    assert img.pixels.shape == (80, 40, 3)  # turned upright: portrait
    assert img.pixels[5, 20, 0] > 200 and img.pixels[75, 20, 0] < 60  # left half -> top half after 90 deg cw
    assert img.source is None  # stored bytes would show it sideways to EXIF-blind readers


def test_alpha_policies():
    px = np.zeros((10, 10, 4), np.uint8)
    px[..., 0] = 200
    px[:, :5, 3] = 255  # left opaque red, right fully transparent
    data = encode(px, "png")
    assert decoded(data, "png", alpha="keep")["png"].pixels.shape == (10, 10, 4)
    dropped = decoded(data, "png", alpha="drop")["png"]
    assert dropped.pixels.shape == (10, 10, 3) and dropped.source is None
    comp = decoded(data, "png", alpha="composite", background=(0, 255, 0))["png"].pixels
    assert tuple(comp[0, 0]) == (200, 0, 0) and tuple(comp[0, 9]) == (0, 255, 0)


def test_grayscale_kept_or_expanded():
    g = photo(32, 24, seed=2)[:, :, 0]
    data = encode(g, "png")
    assert decoded(data, "png", grayscale="keep")["png"].pixels.shape == (24, 32)
    rgb = decoded(data, "png")["png"].pixels
    assert rgb.shape == (24, 32, 3) and np.array_equal(rgb[..., 0], g)


def test_bomb_refused_from_header_before_decoding():
    bomb = png_bomb(20000, 20000)
    assert len(bomb) < 10_000
    with pytest.raises(Drop) as e:
        decoded(bomb, "png")
    assert e.value.reason == "image.too_large" and "400.0 MP" in e.value.message
    with pytest.raises(Drop) as e:
        decoded(encode(photo(100, 100), "jpg"), max_pixels=5000)
    assert e.value.reason == "image.too_large"


@pytest.mark.parametrize("data", [b"this is not a png at all", encode(photo(64, 48))[:300],
                                  encode(photo(64, 48))[:-100], b"\x89PNG\r\n\x1a\n"])
def test_bad_bytes_are_dropped_with_a_reason(data):
    with pytest.raises(Drop) as e:
        decoded(data, "png" if data.startswith(b"\x89") or data.startswith(b"this") else "jpg")
    assert e.value.reason == "image.corrupt"


def test_reduced_decode_matches_full_decode_then_resize():
    px = photo(1600, 1200, seed=3)
    data = encode(px, "jpg", 95)
    full = run("image.resize", decoded(data), size=256, mode="center_crop")["jpg"].pixels
    fast_sample = decoded(data, reduce_to=256)
    assert fast_sample["__meta__"]["image"]["jpg"]["scale"] == 4  # 1200/4 = 300 >= 256; /8 = 150 < 256
    assert fast_sample["jpg"].pixels.shape == (300, 400, 3)
    fast = run("image.resize", fast_sample, size=256, mode="center_crop")["jpg"].pixels
    assert fast.shape == full.shape == (256, 256, 3)
    assert np.abs(fast.astype(int) - full).mean() < 3.0  # mean abs error in 0..255 units


def test_reduced_decode_never_goes_below_the_target():
    data = encode(photo(500, 300, seed=4), "jpg")
    s = decoded(data, reduce_to=256)
    assert s["jpg"].pixels.shape == (300, 500, 3)  # 300/2 = 150 < 256: full scale
    s = decoded(data, reduce_to=100, reduce_side="longer")
    assert s["jpg"].pixels.shape == (75, 125, 3)  # 500/4 = 125 >= 100; /8 = 63 < 100


# -- resize --------------------------------------------------------------------------------------------
def _img(px: np.ndarray) -> dict:
    return {KEY: "k", "jpg": Image(pixels=px, source=b"x", format="jpg")}


def test_center_crop_keeps_the_centre():
    px = np.zeros((100, 300, 3), np.uint8)
    px[:, 100:200] = 255  # the centre square is white, the sides black
    out = run("image.resize", _img(px), size=50, mode="center_crop")["jpg"]
    assert out.pixels.shape == (50, 50, 3) and out.pixels.min() == 255 and out.source is None


def test_keep_ratio_shorter_and_longer():
    px = photo(400, 200)
    assert run("image.resize", _img(px), size=100, mode="keep_ratio")["jpg"].pixels.shape == (100, 200, 3)
    out = run("image.resize", _img(px), size=100, mode="keep_ratio", side="longer")
    assert out["jpg"].pixels.shape == (50, 100, 3)
    assert out["__meta__"]["image"]["jpg"]["resized"] == [100, 50]


@pytest.mark.parametrize("border", ["constant", "replicate", "reflect"])
def test_pad_fills_to_a_square(border):
    px = np.zeros((50, 100, 3), np.uint8)
    px[:25] = (10, 200, 30)  # top half green, bottom half dark
    out = run("image.resize", _img(px), size=100, mode="pad", border=border, color=(255, 0, 255))["jpg"].pixels
    assert out.shape == (100, 100, 3)
    assert np.array_equal(out[25:75], px)  # content centred, unscaled (longer side already 100)
    top = tuple(out[0, 50])
    assert top == {"constant": (255, 0, 255), "replicate": (10, 200, 30), "reflect": (0, 0, 0)}[border]


def test_no_upscale_leaves_small_images():
    px = photo(40, 30)
    out = run("image.resize", _img(px), size=100, mode="keep_ratio", upscale=False)["jpg"]
    assert out.pixels is px and out.source == b"x"


# -- filters, normalize, encode, augment -------------------------------------------------------------------
@pytest.mark.parametrize("method", ["mean", "gaussian", "median", "bilateral", "nlmeans"])
def test_denoise_reduces_noise(method):
    rng = np.random.default_rng(0)
    clean = np.full((48, 48, 3), 128, np.uint8)
    noisy = np.clip(clean + rng.normal(0, 20, clean.shape), 0, 255).astype(np.uint8)
    out = run("image.denoise", _img(noisy), method=method, ksize=5, h=15)["jpg"].pixels
    assert np.abs(out.astype(int) - 128).mean() < 0.6 * np.abs(noisy.astype(int) - 128).mean()


def test_enhance_contrast_gamma_clahe_balance():
    px = np.array([[[100, 100, 100], [50, 50, 50]]], np.uint8)
    assert run("image.enhance", _img(px), alpha=2.0, beta=10)["jpg"].pixels.tolist() == [[[210] * 3, [110] * 3]]
    g = run("image.enhance", _img(px), gamma=2.0)["jpg"].pixels
    assert g[0, 0, 0] == round(255 * (100 / 255) ** 0.5)
    cast = np.dstack([np.full((8, 8), 200), np.full((8, 8), 100), np.full((8, 8), 100)]).astype(np.uint8)
    bal = run("image.enhance", _img(cast), balance="gray_world")["jpg"].pixels
    assert np.ptp(bal[0, 0].astype(int)) <= 1  # the cast is gone: grey
    low = (photo(64, 64) // 4 + 60).astype(np.uint8)
    eq = run("image.enhance", _img(low), clahe=True)["jpg"].pixels
    assert eq.std() > low.std() * 1.3


def test_normalize_to_npy_and_mean_std():
    px = np.full((4, 6, 3), 255, np.uint8)
    out = run("image.normalize", _img(px), dtype="float16", layout="chw")
    assert "jpg" not in out and out["jpg.npy"].shape == (3, 4, 6) and out["jpg.npy"].dtype == np.float16
    assert np.allclose(out["jpg.npy"], 1.0)
    ms = run("image.normalize", _img(px), mode="mean_std")["jpg.npy"]
    assert np.allclose(ms[0, 0], [(1 - 0.485) / 0.229, (1 - 0.456) / 0.224, (1 - 0.406) / 0.225], atol=1e-5)


def test_encode_keeps_original_or_converts():
    data = encode(photo(64, 48), "png")
    s = run("image.encode", decoded(data, "png"), format="png")
    assert s["png"] is data  # untouched: no pixel stage ran
    s = run("image.encode", decoded(data, "png"), format="jpg", quality=80)
    assert "png" not in s and s["jpg"][:3] == b"\xff\xd8\xff" and "jpg" in s["__meta__"]["image"]
    big = run("image.encode", decoded(data, "png"), format="jpg", quality=100)["jpg"]
    assert len(big) > len(s["jpg"])


def test_augment_is_deterministic_per_key():
    px = photo(64, 48, seed=5)
    a = run("image.augment", _img(px), hflip=0.5, rot90=True, crop=0.5, seed=3)
    b = run("image.augment", _img(px), hflip=0.5, rot90=True, crop=0.5, seed=3)
    assert np.array_equal(a["jpg"].pixels, b["jpg"].pixels)
    shapes = set()
    for i in range(12):
        s = run("image.augment", {KEY: f"k{i}", "jpg": Image(pixels=px)}, hflip=1.0, rot90=True, crop=0.5)
        shapes.add(s["jpg"].pixels.shape)
        assert s["__meta__"]["image"]["jpg"]["augment"]["hflip"] is True
    assert shapes == {(24, 32, 3), (32, 24, 3)}  # some keys turned by 90 degrees, some not


def test_pixel_stage_before_decode_is_a_clear_drop():
    with pytest.raises(Drop) as e:
        run("image.resize", {KEY: "k", "jpg": b"\xff\xd8\xff"})
    assert e.value.reason == "image.not_decoded"


# -- face crop -------------------------------------------------------------------------------------------------
def test_face_crop_or_missing_dependency():
    from mmprep.stages.image.face import cascade_path

    if cascade_path("haarcascade_frontalface_default.xml") is None:
        with pytest.raises(MissingDependency, match="opencv-python-headless<5"):
            stage("image.face_crop")
        pytest.skip(f"OpenCV {cv2.__version__} ships no Haar cascades (real optional tool absent)")
    from mmprep.testing.images import face_picture

    px, box = face_picture()
    out = run("image.face_crop", _img(px), size=64, margin=0.1)
    x, y, w, h = out["__meta__"]["image"]["jpg"]["face"]
    bx, by, bw, bh = box
    assert abs((x + w / 2) - (bx + bw / 2)) < bw / 4 and abs((y + h / 2) - (by + bh / 2)) < bh / 4
    assert out["jpg"].pixels.shape == (64, 64, 3)
    with pytest.raises(Drop) as e:
        run("image.face_crop", _img(np.full((100, 100, 3), 128, np.uint8)))
    assert e.value.reason == "image.no_face"
    kept = run("image.face_crop", _img(np.full((100, 100, 3), 128, np.uint8)), no_face="keep")
    assert kept["jpg"].pixels.shape == (100, 100, 3)


@pytest.mark.parametrize("channels", [3, 1])
def test_a_float_tiff_decodes_to_its_pixels(tmp_path, channels):
    """A 32-bit float TIFF (values 0..1) was dropped as image.corrupt: the colour flag takes no float depth."""
    px = photo(120, 80, seed=1)
    values = px[..., ::-1] if channels == 3 else px[..., 0]  # cv2 writes BGR
    path = tmp_path / "f.tiff"
    assert cv2.imwrite(str(path), values.astype(np.float32) / 255.0)
    img = decoded(path.read_bytes(), "tiff")["tiff"]
    want = px if channels == 3 else np.repeat(px[..., :1], 3, axis=2)
    assert img.pixels.shape == (80, 120, 3) and img.pixels.dtype == np.uint8
    assert np.abs(img.pixels.astype(int) - want).max() <= 1
