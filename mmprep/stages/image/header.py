"""Read an image's size, format and EXIF orientation from its first bytes, without decoding pixels.

This is what lets ``image.decode`` refuse a decompression bomb (a small file claiming 20000x20000)
before OpenCV allocates anything, and choose a reduced JPEG decode scale from the true size.
Parsers here only look at headers; they never trust a size they cannot find (``None`` then).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass


@dataclass(frozen=True)
class Header:
    """``width``/``height`` as stored (before EXIF rotation); ``channels`` as the file declares them."""

    format: str  # jpg, png, webp, bmp, tiff, gif
    width: int
    height: int
    channels: int | None = None  # 1 grey, 2 grey+alpha, 3 colour, 4 colour+alpha
    orientation: int = 1  # EXIF orientation 1..8 (JPEG only; 1 = as stored)
    complete: bool = True  # the end-of-image marker is present (JPEG, PNG)

    @property
    def pixels(self) -> int:
        return self.width * self.height


def sniff(data: bytes) -> str | None:
    """The format named by the magic bytes, or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "jpg"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data[:2] == b"BM":
        return "bmp"
    if data[:4] in (b"II*\x00", b"MM\x00*"):
        return "tiff"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    return None


def read_header(data: bytes) -> Header | None:
    """Size and layout from the header; None when the format is unknown or the header is cut short."""
    fmt = sniff(data)
    try:
        if fmt == "jpg":
            return _jpeg(data)
        if fmt == "png":
            return _png(data)
        if fmt == "webp":
            return _webp(data)
        if fmt == "bmp":
            w, h = struct.unpack("<ii", data[18:26])
            bits = struct.unpack("<H", data[28:30])[0]
            return Header("bmp", abs(w), abs(h), 4 if bits == 32 else 3)
        if fmt == "tiff":
            return _tiff(data)
        if fmt == "gif":
            w, h = struct.unpack("<HH", data[6:10])
            return Header("gif", w, h, 3)
    except (struct.error, IndexError, ValueError):
        return None
    return None


_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(data: bytes) -> Header | None:
    pos, n, orientation = 2, len(data), 1
    while pos + 4 <= n:
        if data[pos] != 0xFF:  # extraneous bytes before a marker: libjpeg skips them (with a warning), so do we
            pos = data.find(b"\xff", pos)
            if pos < 0:
                return None
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        length = struct.unpack(">H", data[pos + 2 : pos + 4])[0]
        if marker == 0xE1 and data[pos + 4 : pos + 10] == b"Exif\x00\x00":
            orientation = _exif_orientation(data[pos + 10 : pos + 2 + length]) or 1
        if marker in _SOF:
            h, w = struct.unpack(">HH", data[pos + 5 : pos + 9])
            channels = data[pos + 9]
            # FF D9 cannot occur inside entropy-coded data (FF is stuffed there), so an end marker past the
            # frame header means the scan was not cut short, whatever trails it (camera trailers, padding)
            return Header("jpg", w, h, channels, orientation, complete=data.rfind(b"\xff\xd9") > pos)
        pos += 2 + length
    return None


def _exif_orientation(tiff: bytes) -> int | None:
    """Tag 0x0112 of IFD0 in an EXIF (TIFF-structured) block; None when the block is damaged (metadata
    only: the picture itself is still fine, so a broken EXIF block must not make the file unreadable)."""
    try:
        return _ifd0_orientation(tiff)
    except (struct.error, IndexError, ValueError):
        return None


def _ifd0_orientation(tiff: bytes) -> int | None:
    if tiff[:2] == b"II":
        end = "<"
    elif tiff[:2] == b"MM":
        end = ">"
    else:
        return None
    ifd = struct.unpack(end + "I", tiff[4:8])[0]
    count = struct.unpack(end + "H", tiff[ifd : ifd + 2])[0]
    for i in range(count):
        entry = tiff[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
        tag, typ = struct.unpack(end + "HH", entry[:4])
        if tag == 0x0112 and typ == 3:
            value = struct.unpack(end + "H", entry[8:10])[0]
            return value if 1 <= value <= 8 else None
    return None


def _png(data: bytes) -> Header:
    w, h, depth, color = struct.unpack(">IIBB", data[16:26])
    channels = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}.get(color, 3)
    if color in (2, 3) and _png_has_trns(data):  # palette / RGB with transparency: decoded as RGBA
        channels = 4
    # the IEND chunk with its fixed CRC; anything appended after it does not make the file truncated
    return Header("png", w, h, channels, complete=data.rfind(b"IEND\xaeB`\x82") > 33)


def _png_has_trns(data: bytes) -> bool:
    """Whether a tRNS chunk comes before the image data, walking the chunk list (an ICC profile or text
    chunks can put it kilobytes into the file)."""
    pos = 8
    while pos + 8 <= len(data):
        size, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"tRNS":
            return True
        if kind in (b"IDAT", b"IEND"):
            return False
        pos += 12 + size
    return False


def _webp(data: bytes) -> Header | None:
    chunk = data[12:16]
    if chunk == b"VP8 ":
        w, h = struct.unpack("<HH", data[26:30])
        return Header("webp", w & 0x3FFF, h & 0x3FFF, 3)
    if chunk == b"VP8L":
        b = data[21:25]
        w = 1 + (((b[1] & 0x3F) << 8) | b[0])
        h = 1 + (((b[3] & 0x0F) << 10) | (b[2] << 2) | ((b[1] & 0xC0) >> 6))
        alpha = bool(b[3] & 0x10)
        return Header("webp", w, h, 4 if alpha else 3)
    if chunk == b"VP8X":
        flags = data[20]
        w = 1 + int.from_bytes(data[24:27], "little")
        h = 1 + int.from_bytes(data[27:30], "little")
        return Header("webp", w, h, 4 if flags & 0x10 else 3)
    return None


def _tiff(data: bytes) -> Header | None:
    end = "<" if data[:2] == b"II" else ">"
    ifd = struct.unpack(end + "I", data[4:8])[0]
    count = struct.unpack(end + "H", data[ifd : ifd + 2])[0]
    size: dict[int, int] = {}
    for i in range(count):
        entry = data[ifd + 2 + 12 * i : ifd + 14 + 12 * i]
        tag, typ = struct.unpack(end + "HH", entry[:4])
        if tag in (256, 257, 277):  # width, height, samples per pixel
            fmt = end + ("H" if typ == 3 else "I")
            size[tag] = struct.unpack(fmt, entry[8 : 10 if typ == 3 else 12])[0]
    if 256 not in size or 257 not in size:
        return None
    return Header("tiff", size[256], size[257], size.get(277))
