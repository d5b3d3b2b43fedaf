"""WebDataset tar shards, written atomically and reproducibly.

Each shard is written under a hidden temporary name and renamed when complete, so a crash never
leaves a truncated tar under a final name. Member headers carry no time or owner, so the same
samples always give the same bytes. A sample's members are contiguous, named ``KEY.EXT``.
"""

from __future__ import annotations

import io
import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

from mmprep.atomic import temp_name


@dataclass
class MemberInfo:
    field: str
    offset: int  # byte offset of the member's data in the tar
    size: int


@dataclass
class SampleInfo:
    key: str
    shard: str
    offset: int  # byte offset of the sample's first header
    size: int  # bytes from the first header to the end of the last member
    members: list[MemberInfo] = field(default_factory=list)


class ShardWriter:
    """Writes ``DIR/NAME.tar``, rolling over to ``NAME_01.tar``... past ``max_bytes``."""

    def __init__(self, directory: Path, name: str, *, max_bytes: int | None = None):
        self.directory = Path(directory)
        self.name = name
        self.max_bytes = max_bytes
        self.part = 0
        self.finished: list[str] = []
        self._tar: tarfile.TarFile | None = None
        self._tmp: Path | None = None
        self._final: str = ""
        self._run: list[int] | None = None  # copies not yet written: [source fd, start, end]
        self._done: list[tuple[Path, str]] = []  # finished parts not published yet: (temporary, final name)

    def _filename(self) -> str:
        return f"{self.name}.tar" if self.part == 0 else f"{self.name}_{self.part:02d}.tar"

    def _open(self) -> tarfile.TarFile:
        if self._tar is None:
            self._final = self._filename()
            self._tmp = temp_name(self.directory / self._final)
            self._tar = tarfile.open(self._tmp, "w", format=tarfile.PAX_FORMAT)
        return self._tar

    def write(self, key: str, members: list[tuple[str, bytes]]) -> SampleInfo:
        if self._tar is not None and self.max_bytes and self._tar.offset >= self.max_bytes:
            self._close_part()
            self.part += 1
        tar = self._open()
        self._flush()
        info = SampleInfo(key=key, shard=self._final, offset=tar.offset, size=0)
        out = tar.fileobj
        for ext, data in members:
            if not isinstance(data, bytes):
                raise TypeError(f"{key}.{ext}: the shard writer takes bytes, got {type(data).__name__}")
            name, size = f"{key}.{ext}", len(data)
            header = ustar_header(name, size)
            if header is None:  # a long or non-ASCII name: tarfile adds the pax extension
                ti = tarfile.TarInfo(name)
                ti.size, ti.mtime, ti.mode, ti.uname, ti.gname = size, 0, 0o644, "", ""
                tar.addfile(ti, io.BytesIO(data))
            else:
                out.write(header)
                out.write(data)
                out.write(_PAD[: _padded(size) - size])
                tar.offset += BLOCK + _padded(size)
            info.members.append(MemberInfo(field=ext, offset=tar.offset - _padded(size), size=size))
        info.size = tar.offset - info.offset
        return info

    def copy(self, fd: int, start: int, size: int) -> tuple[str, int]:
        """Append a sample exactly as an earlier tar (open as ``fd``) holds it: its contiguous headers
        and data (a multiple of 512 bytes) at ``start``. Returns (tar name, its offset in it).

        Copies are written lazily: a run of samples that were neighbours in the old tar goes out in
        one kernel-side copy, so an incremental rebuild costs little more than copying the file."""
        if self._tar is not None and self.max_bytes and self._tar.offset >= self.max_bytes:
            self._close_part()
            self.part += 1
        tar = self._open()
        offset = tar.offset
        run = self._run
        if run is not None and run[0] == fd and run[2] == start:
            run[2] = start + size
        else:
            self._flush()
            self._run = [fd, start, start + size]
        tar.offset += size
        return self._final, offset

    def _flush(self) -> None:
        if self._run is None:
            return
        src, lo, hi = self._run
        self._run = None
        out = self._tar.fileobj  # type: ignore[union-attr]
        out.flush()
        copy_range(src, out.fileno(), lo, hi - lo)
        out.seek(0, os.SEEK_END)  # the buffered writer re-reads its position from the file

    def _close_part(self) -> None:
        """Finish the open part under its temporary name: every part is published by ``close``, so a shard
        stopped or failed after a rollover publishes none of them."""
        if self._tar is None:
            return
        self._flush()
        self._tar.close()
        with open(self._tmp, "rb+") as fh:  # type: ignore[arg-type]
            os.fsync(fh.fileno())
        self._done.append((self._tmp, self._final))  # type: ignore[arg-type]
        self._tar = None

    def close(self) -> list[str]:
        """Publish every part (renamed from its temporary name); returns their final names."""
        self._close_part()
        for tmp, final in self._done:
            os.replace(tmp, self.directory / final)
            self.finished.append(final)
        self._done = []
        return self.finished

    def abort(self) -> None:
        """Remove the unpublished parts: the open one's file is closed without the end-of-archive blocks (writing them
        on a full disk failed again, and the partial temporary kept the disk full)."""
        self._run = None
        for tmp, _ in self._done:  # finished parts, never published
            tmp.unlink(missing_ok=True)
        self._done = []
        tar, self._tar = self._tar, None
        if tar is None:
            return
        try:
            tar.closed = True
            tar.fileobj.close()
        except OSError:
            pass
        finally:
            Path(self._tmp).unlink(missing_ok=True)  # type: ignore[arg-type]


def _padded(n: int) -> int:
    return (n + 511) // 512 * 512


BLOCK = 512
_PAD = bytes(BLOCK)
# A plain member's ustar header around its name, size and checksum, byte for byte what tarfile writes
# for our TarInfo (mode 644, ids 0, mtime 0, no owner names) when the pax format needs no extension.
_IDS = b"0000644\0" + b"0000000\0" * 2  # mode, uid, gid
_MTIME = b"00000000000\0"
_TAIL = b"0" + bytes(100) + b"ustar\x0000" + bytes(64 + 16 + 155 + 12)  # type, link, magic, owners, devs, prefix
_SUM = 8 * ord(" ") + sum(_TAIL)  # the checksum field itself counts as spaces


def ustar_header(name: str, size: int) -> bytes | None:
    """The 512-byte header of a member, as ``tarfile`` (pax format) would write it; None when the name is
    longer than 100 bytes or not ASCII, or the size needs more than 11 octal digits (pax extension)."""
    if len(name) > 100 or not name.isascii() or size >= 8**11:
        return None
    head = name.encode("ascii").ljust(100, b"\0") + _IDS + b"%011o\0" % size + _MTIME
    return head + b"%06o\0 " % (sum(head) + _SUM) + _TAIL


def copy_range(src: int, dst: int, start: int, size: int) -> None:
    """Append ``size`` bytes of ``src`` from ``start`` to ``dst`` at its position: inside the kernel
    where it can (``copy_file_range``), else through a buffer."""
    end = start + size
    try:
        while start < end:
            n = os.copy_file_range(src, dst, end - start, start)
            if n <= 0:
                break
            start += n
    except (AttributeError, OSError):  # not Linux, an old kernel, or a file system that refuses
        pass
    while start < end:
        chunk = os.pread(src, min(end - start, 1 << 22), start)
        if not chunk:
            raise OSError(f"the previous shard ended {end - start} bytes early")
        view = memoryview(chunk)
        while view:  # a write may take less than it was given
            view = view[os.write(dst, view):]
        start += len(chunk)
