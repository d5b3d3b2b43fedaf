"""Minimal tar reading for WebDataset shards: member parsing from bytes, and a header-only scan.

We parse tar headers ourselves instead of going through :mod:`tarfile` so that a *range* of samples
can be read with one ``seek`` + one ``read`` (resume and rank splits start mid-shard) and so tiny
members cost little. Supported: ustar / POSIX (prefix field), PAX ``x`` headers (long ``path``,
``size``), GNU ``L`` long names. Member names follow WebDataset: ``KEY.EXT`` where the key is
everything up to the first dot of the last path component (keys may contain ``/``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import BinaryIO

BLOCK = 512
_REGULAR = (b"0", b"\0", b"7")


@dataclass(frozen=True)
class SampleSpan:
    """Where one sample's members lie in a shard: bytes ``[offset, end)``, headers included."""

    key: str
    offset: int
    end: int


@dataclass(frozen=True)
class Member:
    name: str
    header: int  # offset of the first header block (extended headers included)
    data: int  # offset of the data
    size: int
    regular: bool

    @property
    def next(self) -> int:
        return self.data + _padded(self.size)


def split_name(name: str) -> tuple[str, str] | None:
    """``a/b/x.mfcc.npy`` -> ``("a/b/x", "mfcc.npy")``; None for names without an extension."""
    slash = name.rfind("/")
    dot = name.find(".", slash + 1)
    if dot <= slash + 1 or dot == len(name) - 1:
        return None
    return name[:dot], name[dot + 1 :]


def _octal(field: bytes) -> int:
    if field and field[0] & 0x80:  # GNU base-256 for sizes >= 8 GiB
        return int.from_bytes(field[1:], "big")
    text = field.rstrip(b"\0 ").strip()
    return int(text, 8) if text else 0


def _cstr(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _pax(data: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    pos = 0
    while pos < len(data) and data[pos:pos + 1] not in (b"\0", b""):
        space = data.index(b" ", pos)
        length = int(data[pos:space])
        key, _, value = data[space + 1 : pos + length - 1].partition(b"=")
        out[key.decode()] = value.decode("utf-8", "surrogateescape")
        pos += length
    return out


def _padded(n: int) -> int:
    return (n + BLOCK - 1) // BLOCK * BLOCK


def next_member(read: Callable[[int, int], bytes], pos: int) -> Member | None:
    """The member whose (first) header starts at ``pos``; None at the end block or end of data.

    ``read(offset, n)`` returns up to ``n`` bytes at ``offset``.
    """
    start = pos
    pax: dict[str, str] = {}
    long_name: str | None = None
    while True:
        header = bytes(read(pos, BLOCK))
        if len(header) < BLOCK or header.count(0) == BLOCK:
            return None
        size = _octal(header[124:136])
        kind = header[156:157]
        if kind in (b"x", b"L", b"g"):
            data = bytes(read(pos + BLOCK, size))
            if kind == b"x":
                pax = _pax(data)
            elif kind == b"L":
                long_name = data.rstrip(b"\0").decode("utf-8", "surrogateescape")
            pos += BLOCK + _padded(size)
            if kind == b"g":
                start = pos
            continue
        if "size" in pax:
            size = int(pax["size"])
        if "path" in pax:
            name = pax["path"]
        elif long_name is not None:
            name = long_name
        else:
            name = _cstr(header[0:100])
            prefix = _cstr(header[345:500]) if header[257:262] == b"ustar" else ""
            if prefix:
                name = f"{prefix}/{name}"
        return Member(name, start, pos + BLOCK, size, kind in _REGULAR)


def group_samples(buf: bytes | memoryview, base: int = 0) -> Iterator[tuple[str, dict[str, bytes]]]:
    """Consecutive members sharing a key, as ``(key, {ext: bytes})``; ``buf`` starts at shard byte ``base``.

    ``buf`` must hold whole samples (a member cut short raises EOFError).
    """
    for _offset, key, fields in group_located(buf, base):
        yield key, fields


def group_located(buf: bytes | memoryview, base: int = 0) -> Iterator[tuple[int, str, dict[str, bytes]]]:
    """:func:`group_samples` with each sample's shard offset (its first header, as :class:`SampleSpan`):
    ``(offset, key, {ext: bytes})``. Two samples with one key in a shard stay apart by their offsets."""
    view = memoryview(buf)
    n = len(view)

    def read(off: int, size: int) -> memoryview:
        return view[off : off + size]

    key: str | None = None
    start = 0
    fields: dict[str, bytes] = {}
    pos = 0
    while (m := next_member(read, pos)) is not None:
        if m.data + m.size > n:
            raise EOFError(f"tar member {m.name!r} at byte {base + m.header} is truncated")
        pos = m.next
        parts = split_name(m.name) if m.regular else None
        if parts is None:
            continue
        if parts[0] != key:
            if key is not None:
                yield base + start, key, fields
            key, start, fields = parts[0], m.header, {}
        fields[parts[1]] = bytes(view[m.data : m.data + m.size])
    if key is not None:
        yield base + start, key, fields


def scan_spans(fh: BinaryIO) -> list[SampleSpan]:
    """Sample spans of a whole shard, reading headers only (data is skipped with ``seek``)."""

    def read(off: int, size: int) -> bytes:
        fh.seek(off)
        return fh.read(size)

    spans: list[SampleSpan] = []
    key: str | None = None
    first = end = pos = 0
    while (m := next_member(read, pos)) is not None:
        pos = m.next
        parts = split_name(m.name) if m.regular else None
        if parts is None:
            continue
        if parts[0] != key:
            if key is not None:
                spans.append(SampleSpan(key, first, end))
            key, first = parts[0], m.header
        end = m.next
    if key is not None:
        spans.append(SampleSpan(key, first, end))
    return spans
