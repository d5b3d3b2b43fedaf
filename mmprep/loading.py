"""A record's files read into a sample, and the content keys that the cache files samples under.

``chain(input_hash(...), fingerprints)[i]`` is the key of a sample's state before stage ``i``: the
input bytes, the record's origin and the optional-field policy, then each stage's name, version and
parameters in turn.
"""

from __future__ import annotations

import errno
import os
from stat import S_ISREG

from mmprep.cache import digest
from mmprep.corpus import Record, printable
from mmprep.errors import Drop
from mmprep.sample import KEY, META, SOURCE, Sample
from mmprep.stage import data_fields


def load_record(record: Record) -> tuple[Sample, list[Drop]]:
    """Read a record's files. An unreadable or empty file is left out, with a Drop naming it."""
    sample: Sample = {KEY: record.key, META: {"source": record.origin}, SOURCE: dict(record.paths)}
    problems: list[Drop] = []
    for ext, path in sorted(record.paths.items()):
        if printable(ext) != ext:
            problems.append(Drop("input.bad_name", f"{printable(path)}: the extension is not valid UTF-8", field=ext))
            continue
        try:
            data = read_regular(path)
        except NotRegular:
            problems.append(Drop("input.not_regular", f"{path} is not a regular file", field=ext))
            continue
        except OSError as exc:
            problems.append(Drop("input.unreadable", f"{path}: {exc.strerror}", field=ext))
            continue
        if not data:
            problems.append(Drop("input.empty", f"{path} is empty", field=ext))
            continue
        sample[ext] = data
    for ext, text in sorted(record.inline.items()):
        sample[ext] = text
    return sample, problems


class NotRegular(Exception):
    """A path that names a FIFO, a device or a socket, not a file."""


def read_regular(path: str) -> bytes:
    """The bytes of a regular file. Anything else is refused before a read: a FIFO swapped in after the
    listing, or a manifest that names one (or ``/dev/zero``), hung the build or filled its memory.
    ``O_NONBLOCK`` opens a FIFO without waiting for a writer, and means nothing for a file."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:  # a socket cannot be opened (ENXIO): say what it is, not only that
        if exc.errno == errno.ENXIO and not S_ISREG(os.stat(path).st_mode):
            raise NotRegular(path) from None
        raise
    try:
        if not S_ISREG(os.fstat(fd).st_mode):
            raise NotRegular(path)
        with open(fd, "rb", closefd=False) as fh:
            return fh.read()
    finally:
        os.close(fd)


def input_hash(sample: Sample, origin: str, policy: str, problems: list[Drop] = ()) -> str:
    """The content key of a loaded sample. The files that could not be loaded count too (reason, field
    and message, which names the file): else an empty caption that is later deleted would bring its
    cached ``input.empty`` error and ``partial`` status back into a build that no longer has it."""
    parts: list[bytes | str] = [sample[KEY], origin, policy]
    for name in data_fields(sample):
        value = sample[name]
        parts += [name, value if isinstance(value, (bytes, str)) else repr(value)]
    for drop in problems:
        parts += ["problem", drop.reason, drop.field or "", drop.message]
    return digest(*parts)


def chain(start: str, fingerprints: list[str]) -> list[str]:
    hashes = [start]
    for fp in fingerprints:
        hashes.append(digest(hashes[-1], fp))
    return hashes
