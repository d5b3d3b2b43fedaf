"""List a corpus folder: every candidate file, its size, mtime and ctime, and a digest per folder.

A rerun must ``stat`` every file to notice a change (an edit in place changes no folder's mtime), and
those calls are most of a rerun with nothing to do: 2-3 us each, so 40,000 files take 0.15 s of one
core. Python threads do not overlap them (each call takes the GIL back), so on Linux each level of
the tree is split with a forked child (``forkjob.Child``): a level of many folders by whole folders
(the child lists and stats every second one), a level of few big ones by halves (the child stats the
second half of each folder's names). Folders are read a level at a time: ``listdir``, then an
``lstat`` of each name tells folders from files. The digests let the build see that nothing changed
without making a single record.
"""
from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
from array import array
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import filterfalse, repeat
from operator import contains, methodcaller
from stat import S_ISDIR, S_ISLNK, S_ISREG
from typing import Any, NamedTuple

from mmprep.forkjob import Child

log = logging.getLogger(__name__)
SPLIT_AT = 4096  # files: below this a fork costs more than it saves
SPLIT_BYTES = 128 * 1024  # folders' own sizes (ext4: ~35 bytes per entry): a level worth splitting


# A folder's stats are one flat int64 array, three per name: size, mtime_ns, ctime_ns (ctime: a chmod
# that makes a file readable counts). 40,000 files take 1 MB instead of 6 MB of tuples, and the driver's
# peak memory grows with the corpus. A size of DIR marks a folder, GONE an entry that vanished or cannot
# be read, OTHER one that is neither a file nor a folder (a FIFO, a socket, a device).
DIR, GONE, OTHER = -1, -2, -3
_HIDDEN = methodcaller("startswith", ".")  # these run once per file: C calls, no Python frame


class Skipped(NamedTuple):
    """Something the listing left out: ``path`` (absolute), ``reason`` (a reason code), ``message``."""

    path: str
    reason: str
    message: str


@dataclass
class Folder:
    rel: str  # relative to the root: "" or ending in "/"
    path: str  # absolute, without a trailing separator
    names: list[str]  # candidate files (no hidden ones, an extension, include/exclude applied), by name
    stats: array = field(default_factory=lambda: array("q"))  # 3 per name: size, mtime_ns, ctime_ns
    digest: str = ""  # of every visible entry's name and stat: equal digests, same files as they were


def list_folder(root: str, include: Sequence[str] = (), exclude: Sequence[str] = (), *, split: bool = True,
                on_head: Callable[[str, str], None] | None = None, skip: str | None = None,
                skipped: list[Skipped] | None = None) -> list[Folder]:
    """The folders under ``root``, level by level and in name order, each with its files stat'ed.
    Hidden files and folders are skipped, and so are files without an extension; a folder reached twice
    (a symlink loop, or two links to one folder) is read once, at the first of its paths in that order;
    one that cannot be read is left out with a warning, and so is what is neither a file nor a folder
    (a FIFO would hang its reader). ``include``/``exclude``: ``fnmatch`` patterns on a file's path
    relative to the root (``*`` crosses ``/``). ``skip``: a folder not to enter (the build's output, if
    it is inside). ``split`` false: no child (for tests and comparisons). ``skipped`` collects what was
    left out (besides the warning): a folder that cannot be read (``input.unlistable``) and what is no
    file (``input.not_regular``).

    ``on_head(folder, digest)`` is called as soon as the first half of a folder's entries is stat'ed
    (before the child's half is in): a build that sees a change there starts its workers at once."""
    include, exclude = list(include), list(exclude)
    skipped = [] if skipped is None else skipped
    seen: set[tuple[int, int]] = set()
    if skip is not None and os.path.isdir(skip) and not os.path.samefile(skip, root):
        _first_visit(skip, seen, skipped)
        _seen_inside(skip, seen)
        seen.discard(_node(root))  # an input folder right inside OUT (-i OUT/raw -o OUT) is still read
    out: list[Folder] = []
    level = [("", root)]
    while level:  # one level at a time: its folders are read together, about half of them in a child
        visits = [(rel, path, size) for rel, path in level if (size := _first_visit(path, seen, skipped)) is not None]
        folders = _read_level([(rel, path) for rel, path, _ in visits], sum(size for *_, size in visits), split,
                              on_head, skipped, skip)
        level = []
        for folder in folders:
            # a negative size marks a folder, or an entry that cannot be read or is no file
            if (include or exclude or min(folder.stats[0::3], default=0) < 0
                    or not all(map(contains, folder.names, repeat(".")))):
                _sift(folder, include, exclude, level, skipped)
        out += folders
    return out


def _sift(folder: Folder, include: list[str], exclude: list[str], level: list[tuple[str, str]],
          skipped: list[Skipped]) -> None:
    """Keep the folder's files that are samples' fields; queue its subfolders on ``level``."""
    names, stats, old = [], array("q"), folder.stats
    folders: set[str] | None = None
    for i, name in enumerate(folder.names):
        kind = old[3 * i]
        if kind == GONE:  # lstat failed: the listing's own type tells a folder (which then warns) from a file
            folders = _subfolder_names(folder.path) if folders is None else folders
            kind = DIR if name in folders else kind
        if kind == DIR:
            level.append((f"{folder.rel}{name}/", f"{folder.path}{os.sep}{name}"))
        elif kind == OTHER:
            path = f"{folder.path}{os.sep}{name}"
            log.warning("input: %s is not a regular file; it is not in this build", path)
            skipped.append(Skipped(path, "input.not_regular", "neither a file nor a folder"))
        elif "." in name and not ((include or exclude) and _skip(folder.rel + name, include, exclude)):
            names.append(name)
            stats.extend(old[3 * i : 3 * i + 3])
    folder.names, folder.stats = names, stats


def _subfolder_names(path: str) -> set[str]:
    try:
        with os.scandir(path) as it:
            return {entry.name for entry in it if entry.is_dir()}
    except OSError:
        return set()


def _skip(rel: str, include: list[str], exclude: list[str]) -> bool:
    if include and not any(fnmatch.fnmatch(rel, pat) for pat in include):
        return True
    return any(fnmatch.fnmatch(rel, pat) for pat in exclude)


def _first_visit(folder: str, seen: set[tuple[int, int]], skipped: list[Skipped]) -> int | None:
    """The folder's own size (about 35 bytes per entry on ext4: a hint of the work before listing it),
    or None for a folder read already under another path (or one that cannot be reached)."""
    try:
        st = os.stat(folder)
    except OSError as exc:
        _cannot_list(folder, exc.strerror, skipped)
        return None
    if st.st_ino:  # 0: a file system without inode numbers
        node = (st.st_dev, st.st_ino)
        if node in seen:
            return None
        seen.add(node)
    return st.st_size


def _seen_inside(folder: str, seen: set[tuple[int, int]]) -> None:
    """Mark the folders right inside ``folder`` (the build's output: shards/, .parts, .cache...) as read: a
    symbolic link in the input to one of them had the build read its own tars as samples."""
    try:
        with os.scandir(folder) as it:
            for entry in it:
                if entry.is_dir(follow_symlinks=False):
                    st = entry.stat(follow_symlinks=False)
                    if st.st_ino:
                        seen.add((st.st_dev, st.st_ino))
    except OSError:
        pass


def _node(path: str) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _cannot_list(folder: str, why: str | None, skipped: list[Skipped]) -> None:
    log.warning("input: cannot list %s (%s); its files are not in this build", folder, why)
    skipped.append(Skipped(folder, "input.unlistable", str(why)))


def _names(folder: str, skip: str | None = None) -> tuple[list[str], str | None]:
    """The folder's visible names, sorted; none and why when it cannot be read (the caller warns: this
    may run in the child, whose log records would reach no handler of the driver's). Not ``skip`` (the
    build's output): a folder that holds it would list it from the second build on, and its digest
    would tell that build that the input changed."""
    try:
        names = os.listdir(folder)
    except OSError as exc:
        return [], exc.strerror or str(exc)
    names.sort()
    name = os.path.basename(skip) if skip is not None else None
    if name in names and _same(os.path.join(folder, name), skip):
        names.remove(name)
    return list(filterfalse(_HIDDEN, names)), None


def _same(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def _read_level(level: list[tuple[str, str]], dir_bytes: int, split: bool,
                on_head: Callable[[str, str], None] | None, skipped: list[Skipped], skip: str | None = None
                ) -> list[Folder]:
    """Each folder of the level, listed and stat'ed. Many folders (their own sizes, ``dir_bytes``, add
    up to ``SPLIT_BYTES``): a forked child reads every second one, whole. Fewer, big ones: this process
    lists them all, then a child stats the second half of each one's names. Else this process does it all."""
    if split and len(level) >= 2 and dir_bytes >= SPLIT_BYTES:
        folders = [Folder(rel, path, []) for rel, path in level]
        with Child(lambda: [_read(path, skip) for _, path in level[1::2]]) as child:
            for folder in folders[0::2]:
                _fill(folder, _read(folder.path, skip), skipped)
                _digest(folder, on_head)  # at once: a change here starts the workers while the rest is read
            got = child.result(len(level) // 2)
        for i, folder in enumerate(folders[1::2]):
            _fill(folder, (got[i][0], _array(got[i][1]), got[i][2]) if got else _read(folder.path, skip), skipped)
            _digest(folder, on_head)
        return [f for f in folders if f.names]  # as the other branch: an empty folder has no digest
    folders = []
    for rel, path in level:
        names, why = _names(path, skip)
        if why is not None:
            _cannot_list(path, why, skipped)
        elif names:
            folders.append(Folder(rel, path, names))
    _stat_all(folders, split=split, on_head=on_head)
    return folders


def _fill(folder: Folder, read: tuple[list[str], array, str | None], skipped: list[Skipped]) -> None:
    folder.names, folder.stats, why = read
    if why is not None:
        _cannot_list(folder.path, why, skipped)


def _read(path: str, skip: str | None = None) -> tuple[list[str], array, str | None]:
    names, why = _names(path, skip)
    return names, _stats(path, names, 0, len(names)), why


def _digest(folder: Folder, on_head: Callable[[str, str], None] | None) -> None:
    if not folder.names:  # empty, or unreadable: left out of the listing, as _stat_all's levels leave it
        return
    cut = len(folder.names) // 2
    h = _head(folder, cut, folder.stats[: 3 * cut], on_head)
    h.update(_canonical(folder.names[cut:], folder.stats[3 * cut :]))
    folder.digest = h.hexdigest()


def _head(folder: Folder, cut: int, stats: array, on_head: Callable[[str, str], None] | None) -> Any:
    """The running digest after the folder's first ``cut`` names (``stats``: theirs), shown to ``on_head``;
    the rest of the names and stats are added to it to make ``Folder.digest``."""
    h = hashlib.blake2b(_canonical(folder.names[:cut], stats), digest_size=8)
    if on_head is not None:
        on_head(folder.rel, h.hexdigest())
    return h


def _stat_all(folders: list[Folder], *, split: bool, on_head: Callable[[str, str], None] | None) -> None:
    cuts = [len(f.names) // 2 for f in folders]  # the child takes names[cut:] of each folder
    big = split and sum(len(f.names) for f in folders) >= SPLIT_AT
    hashes = []
    with Child(lambda: [_stats(f.path, f.names, cut, len(f.names)) for f, cut in zip(folders, cuts, strict=True)],
                enabled=big) as child:
        for folder, cut in zip(folders, cuts, strict=True):
            folder.stats = _stats(folder.path, folder.names, 0, cut)
            hashes.append(_head(folder, cut, folder.stats, on_head))
        theirs = child.result(len(folders))
    for i, (folder, cut, h) in enumerate(zip(folders, cuts, hashes, strict=True)):
        tail = _array(theirs[i]) if theirs is not None else _stats(folder.path, folder.names, cut, len(folder.names))
        h.update(_canonical(folder.names[cut:], tail))
        folder.stats += tail
        folder.digest = h.hexdigest()


def _canonical(names: list[str], stats: array) -> bytes:
    """Bytes that depend only on the values (``marshal``'s depend on how objects are shared)."""
    text = "\0".join(names).encode("utf-8", "surrogatepass")  # undecodable bytes are lone surrogates
    return b"%d\0%s\0%s" % (len(names), text, stats.tobytes())


def _stats(path: str, names: list[str], lo: int, hi: int) -> array:
    """Size, mtime_ns and ctime_ns of each name (size ``DIR``: a folder, ``GONE``: cannot be read,
    ``OTHER``: neither file nor folder).
    ``lstat`` first (a quarter cheaper than ``stat``), ``stat`` only for symbolic links."""
    out = array("q")
    if lo == hi:
        return out
    add = out.extend
    with _opened(path) as fd:
        lstat = os.lstat
        for name in names[lo:hi]:
            try:
                st = lstat(name, dir_fd=fd) if fd is not None else lstat(f"{path}{os.sep}{name}")
                if st.st_mode & 0o170000 == 0o100000:  # S_ISREG, inline: this loop runs once per file
                    add((st.st_size, st.st_mtime_ns, st.st_ctime_ns))
                else:
                    add(_other(path, name, fd, st))
            except OSError:
                add((GONE, 0, 0))
    return out


def _other(path: str, name: str, fd: int | None, st: os.stat_result) -> tuple[int, int, int]:
    if S_ISLNK(st.st_mode):
        st = os.stat(name, dir_fd=fd) if fd is not None else os.stat(f"{path}{os.sep}{name}")
    if S_ISDIR(st.st_mode):
        return DIR, 0, 0
    return (st.st_size, st.st_mtime_ns, st.st_ctime_ns) if S_ISREG(st.st_mode) else (OTHER, 0, 0)


@contextmanager
def _opened(path: str) -> Iterator[int | None]:
    """The folder open for ``stat(name, dir_fd=...)`` (no path walk per file) where the OS allows it."""
    fd = None
    if os.lstat in os.supports_dir_fd and os.stat in os.supports_dir_fd:
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        except OSError:
            fd = None
    try:
        yield fd
    finally:
        if fd is not None:
            os.close(fd)


def _array(data: bytes) -> array:
    stats = array("q")
    stats.frombytes(data)
    return stats
