"""Re-encoded audio is the same bytes every time: no clock (float WAV's PEAK chunk) and no random Ogg
serial number (Vorbis through libsndfile, Opus through PyAV) in a shard's members."""

from __future__ import annotations

import io
import random
import struct

import av
import numpy as np
import pytest
import soundfile as sf

from mmprep.codecs import encode_audio
from mmprep.reproducible import OGG_SERIAL, ogg_crc, pinned_ogg, pinned_wav
from mmprep.sample import Audio

RATE = 48000
TONE = (0.3 * np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE)).astype(np.float32)


def _crc_reference(data: bytes) -> int:
    """Ogg's checksum bit by bit, as the spec (RFC 3533) describes it."""
    crc = 0
    for byte in data:
        crc ^= byte << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) & 0xFFFFFFFF if crc & 0x80000000 else (crc << 1) & 0xFFFFFFFF
    return crc


def _pages(data: bytes) -> list[bytes]:
    pages, pos = [], 0
    while pos < len(data):
        assert data[pos : pos + 4] == b"OggS"
        n = data[pos + 26]
        end = pos + 27 + n + sum(data[pos + 27 : pos + 27 + n])
        pages.append(data[pos:end])
        pos = end
    return pages


def test_ogg_crc_matches_the_bitwise_definition() -> None:
    rng = random.Random(7)
    for size in (0, 1, 27, 255, 4096):
        data = bytes(rng.randrange(256) for _ in range(size))
        assert ogg_crc(data) == _crc_reference(data)


@pytest.mark.parametrize(("ext", "subtype"), [("wav", "FLOAT"), ("wav", "DOUBLE"), ("wav", None), ("flac", None),
                                              ("ogg", None), ("opus", None), ("mp3", None), ("m4a", None)])
def test_encoding_twice_gives_the_same_bytes(ext: str, subtype: str | None) -> None:
    info = {"subtype": subtype} if subtype else {}
    first, second = (encode_audio(Audio(samples=TONE, rate=RATE, info=dict(info)), ext) for _ in range(2))
    assert first == second
    with av.open(io.BytesIO(first)) as container:  # still a file a decoder reads to the end
        assert sum(frame.samples for frame in container.decode(audio=0)) > RATE * 0.9


def test_float_wav_peak_timestamp_is_zero_and_samples_untouched() -> None:
    data = encode_audio(Audio(samples=TONE, rate=RATE, info={"subtype": "FLOAT"}), "wav")
    at = data.index(b"PEAK")
    assert struct.unpack_from("<I", data, at + 12)[0] == 0  # id, size, version, then the timestamp
    back, rate = sf.read(io.BytesIO(data), dtype="float32")
    assert rate == RATE and np.array_equal(back, TONE)


def test_vorbis_pages_carry_the_fixed_serial_and_valid_checksums() -> None:
    data = encode_audio(Audio(samples=TONE, rate=RATE), "ogg")
    pages = _pages(data)
    assert len(pages) >= 2
    for page in pages:
        assert struct.unpack_from("<I", page, 14)[0] == OGG_SERIAL
        zeroed = page[:22] + bytes(4) + page[26:]
        assert struct.unpack_from("<I", page, 22)[0] == _crc_reference(zeroed)
    # libogg checks every page's checksum: a flipped bit makes the file unreadable, the pinned one reads
    assert sf.read(io.BytesIO(data))[0].shape == (RATE,)
    broken = bytearray(data)
    broken[len(pages[0]) + 40] ^= 1
    with pytest.raises(sf.LibsndfileError):
        sf.read(io.BytesIO(bytes(broken)))


def test_pinning_leaves_other_bytes_alone() -> None:
    assert pinned_ogg(b"not an ogg file") == b"not an ogg file"
    assert pinned_ogg(b"OggS" + bytes(30)) == b"OggS" + bytes(30)  # a page that runs past the end
    pcm = encode_audio(Audio(samples=TONE, rate=RATE), "wav")  # 16-bit: no PEAK chunk
    assert pinned_wav(pcm) == pcm
