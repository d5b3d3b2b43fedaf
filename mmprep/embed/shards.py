"""Read a build's main shards: samples in file order, with the bytes of one field each."""

from __future__ import annotations

import tarfile
from collections.abc import Iterator
from pathlib import Path

from mmprep.errors import ConfigError


def split_member(name: str) -> tuple[str, str]:
    """``a/b/x.txt.npy`` -> (``a/b/x``, ``txt.npy``): the key ends at the base name's first dot."""
    head, _, base = name.rpartition("/")
    stem, _, ext = base.partition(".")
    return (f"{head}/{stem}" if head else stem), ext


def main_shards(out: Path) -> list[Path]:
    shards = sorted((out / "shards").glob("*.tar"))
    if not shards:
        raise ConfigError("OUT", f"{out / 'shards'} holds no .tar shards; run `mmprep build` first")
    return shards


def read_field(path: Path, field: str) -> Iterator[tuple[str, bytes | None]]:
    """Every sample key of the shard in order, with the bytes of ``field`` (None when it lacks one)."""
    key: str | None = None
    value: bytes | None = None
    with tarfile.open(path, "r:") as tar:
        for member in tar:
            if not member.isfile():
                continue
            k, ext = split_member(member.name)
            if k != key:
                if key is not None:
                    yield key, value
                key, value = k, None
            if ext == field:
                fh = tar.extractfile(member)
                value = fh.read() if fh is not None else None
    if key is not None:
        yield key, value


def check_field(out: Path, field: str) -> None:
    """ConfigError naming ``--field`` when the build's ``index.parquet`` lists no sample with ``field`` (a
    typo, ``jpeg`` for ``jpg``): else every sample would be dropped as ``embed.no_field``, into a sidecar
    that takes the field's name. Without a readable index the shards are read as they are."""
    try:
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        fields = pq.read_table(out / "index.parquet", columns=["fields"]).column("fields")
        found = {f for f in pc.unique(pc.list_flatten(fields)).to_pylist() if f is not None}
    except (OSError, ValueError, KeyError):  # no index (shards copied alone), or one of another layout
        return
    if field not in found:
        has = ", ".join(sorted(found - {"meta.json"})) or "none"
        raise ConfigError("--field", f"no sample of {out} has field {field!r} (its fields: {has})")
