"""Images made in code for tests and benchmarks: photo-like pictures, EXIF-rotated JPEGs, alpha PNGs, bombs."""

from __future__ import annotations

import struct
import zlib

import numpy as np


def photo(width: int, height: int, *, seed: int = 0) -> np.ndarray:
    """RGB uint8 ``shape=(height, width, 3)``: smooth colour noise, shapes and a little grain.

    Compresses like a photograph (JPEG q90 ~ 1.5-3 bits/pixel), unlike flat test patterns.
    """
    import cv2

    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (max(2, height // 32), max(2, width // 32), 3), dtype=np.uint8)
    img = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(6):
        color = tuple(int(v) for v in rng.integers(0, 256, 3))
        cx, cy = int(rng.integers(0, width)), int(rng.integers(0, height))
        r = int(rng.integers(max(2, min(width, height) // 20), max(3, min(width, height) // 4)))
        if rng.random() < 0.5:
            cv2.circle(img, (cx, cy), r, color, -1, lineType=cv2.LINE_AA)
        else:
            cv2.rectangle(img, (cx - r, cy - r), (cx + r, cy + r // 2), color, -1)
    grain = rng.normal(0, 6, (height, width, 1)).astype(np.float32)
    return np.clip(img.astype(np.float32) + grain, 0, 255).astype(np.uint8)


def encode(pixels: np.ndarray, ext: str = "jpg", quality: int = 90) -> bytes:
    """RGB(A) or grey uint8 -> bytes in the format the extension names."""
    import cv2

    if pixels.ndim == 3 and pixels.shape[2] == 3:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR)
    elif pixels.ndim == 3 and pixels.shape[2] == 4:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_RGBA2BGRA)
    params = {"jpg": [cv2.IMWRITE_JPEG_QUALITY, quality], "webp": [cv2.IMWRITE_WEBP_QUALITY, quality]}.get(ext, [])
    ok, buf = cv2.imencode("." + ext, pixels, params)
    if not ok:
        raise ValueError(f"cannot encode .{ext}")
    return buf.tobytes()


def with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """The JPEG with an APP1 EXIF block whose IFD0 holds only the Orientation tag (0x0112)."""
    ifd = struct.pack("<H", 1) + struct.pack("<HHIHH", 0x0112, 3, 1, orientation, 0) + struct.pack("<I", 0)
    tiff = b"II*\x00" + struct.pack("<I", 8) + ifd
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload
    return jpeg[:2] + app1 + jpeg[2:]


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A few hundred bytes of PNG whose header claims ``width x height`` RGB pixels."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" * (width * 3 + 1) * 4, 9)  # only 4 of the rows: the rest is missing
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def caption(seed: int) -> str:
    rng = np.random.default_rng(seed)
    words = ["a", "red", "blue", "circle", "square", "over", "soft", "noise", "photo", "of", "the", "sky", "field"]
    return " ".join(rng.choice(words, int(rng.integers(4, 12))))


def face_picture(size: int = 200) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A drawn frontal face (skin oval, brows, eyes, nose, mouth, hair) on a plain background.

    RGB ``shape=(2 * size, 2 * size, 3)`` and the face oval's box ``(x, y, w, h)``. Drawn to the
    pattern Haar frontal-face cascades key on (dark eye band over lighter cheeks, light nose bridge);
    OpenCV 4's ``haarcascade_frontalface_default.xml`` finds it at ``size=200``.
    """
    import cv2

    img = np.full((size * 2, size * 2, 3), (90, 120, 150), np.uint8)
    c, s = size, size

    def px(f: float) -> int:
        return int(s * f)

    cv2.ellipse(img, (c, c), (px(0.36), px(0.48)), 0, 0, 360, (200, 160, 140), -1)
    for dx in (-1, 1):
        ex, ey = c + dx * px(0.16), c - px(0.10)
        cv2.ellipse(img, (ex, ey - px(0.09)), (px(0.10), px(0.025)), 0, 180, 360, (60, 40, 30), -1)
        cv2.ellipse(img, (ex, ey), (px(0.075), px(0.04)), 0, 0, 360, (240, 240, 240), -1)
        cv2.circle(img, (ex, ey), px(0.035), (40, 30, 20), -1)
    cv2.ellipse(img, (c, c + px(0.10)), (px(0.05), px(0.03)), 0, 0, 360, (150, 110, 95), -1)
    cv2.ellipse(img, (c, c + px(0.25)), (px(0.14), px(0.045)), 0, 0, 360, (120, 50, 50), -1)
    cv2.ellipse(img, (c, c - px(0.42)), (px(0.38), px(0.16)), 0, 180, 360, (50, 35, 25), -1)
    img = cv2.GaussianBlur(img, (0, 0), s * 0.02)
    return img, (c - px(0.36), c - px(0.48), px(0.72), px(0.96))
