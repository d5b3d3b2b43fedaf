"""Where shards come from: a path, a glob, a brace pattern, a list, or a build's ``OUT`` directory.

Local paths are opened with :func:`open`; URLs (``s3://``, ``gs://``, ``http://``...) through fsspec
when the matching backend is installed. An ``OUT`` directory is read through its ``index.parquet``
(no scan needed) and its ``embeddings/<field>/`` sidecar shards are attached by shard file name.
Shards without an index are scanned once, headers only.
"""

from __future__ import annotations

import glob as globlib
import json
import logging
import tarfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from mmprep.data.tarscan import BLOCK, SampleSpan, scan_spans
from mmprep.errors import ConfigError, MissingDependency

log = logging.getLogger(__name__)


@dataclass
class Shard:
    """One main shard: its URL, its samples' spans in file order, and sidecar shard URLs by field."""

    url: str
    spans: list[SampleSpan]
    sidecars: dict[str, str] = field(default_factory=dict)


def is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def _fs(url: str) -> Any:
    try:
        import fsspec
    except ImportError as exc:
        raise MissingDependency("source", "fsspec", "pip install fsspec") from exc
    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ImportError, ValueError) as exc:
        raise MissingDependency("source", f"an fsspec backend for {url.split('://')[0]}://", str(exc)) from exc
    return fs, path


def open_binary(url: str) -> BinaryIO:
    """A seekable binary file for a local path or an fsspec URL."""
    if url.startswith("file://"):
        url = url[len("file://") :]
    if not is_url(url):
        return open(url, "rb")  # the caller closes it
    fs, path = _fs(url)
    return fs.open(path, "rb")


def _exists(url: str) -> bool:
    if not is_url(url):
        return Path(url.removeprefix("file://")).exists()
    fs, path = _fs(url)
    return bool(fs.exists(path))


def _join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *parts])


def _glob(pattern: str) -> list[str]:
    if not is_url(pattern):
        return sorted(globlib.glob(pattern.removeprefix("file://")))
    fs, path = _fs(pattern)
    proto = pattern.split("://", 1)[0]
    return sorted(p if "://" in p else f"{proto}://{p}" for p in fs.glob(path))


def _expand(pattern: str) -> list[str]:
    from webdataset.shardlists import expand_urls

    out: list[str] = []
    for item in expand_urls(pattern):
        out.extend(_glob(item) if any(c in item for c in "*?[") else [item])
    return out


def _is_out_dir(url: str) -> bool:
    """A build's OUT folder with its index. A local folder that has what only a build makes (``.parts``,
    ``stats.json``, ``embeddings/``) but no ``index.parquet`` is refused: a build is running
    there or was stopped before its merge, and read as a plain folder of tars its embedding sidecars
    would become samples of their own. Raises ConfigError (key ``source``)."""
    if _exists(_join(url, "index.parquet")) and _exists(_join(url, "shards")):
        return True
    local = Path(url.removeprefix("file://"))
    if is_url(url) or not local.is_dir() or (local / "index.parquet").exists():
        return False
    found = [name for name in OUT_MARKERS if (local / name).exists()]
    if found:
        raise ConfigError("source", f"{url} is not a finished build: it has {found[0]} but no index.parquet (a "
                                    "build is running there, or was stopped before its end); run `mmprep build` "
                                    f"again, to its end, or give its tars as a glob ('{_join(url, 'shards')}/*.tar')")
    return False


# what a build makes in OUT besides index.parquet (the merge writes the index last); not shards/ alone, which
# a folder of WebDataset tars from elsewhere may have
OUT_MARKERS = (".parts", "stats.json", "embeddings")


# index.parquet's footer key with the size of each tar it covers (``{tar: bytes}``): written by the build's
# merge (``mmprep.report.SIZES_KEY``, spelled here too so the loader does not import the build)
SIZES_KEY = "mmprep.tar_sizes.v1"


def _out_dir_shards(out: str) -> list[Shard]:
    import pyarrow.parquet as pq

    with open_binary(_join(out, "index.parquet")) as fh:
        index = pq.ParquetFile(fh)
        table = index.read(columns=["key", "shard", "offset", "size"])
        sizes = (index.metadata.metadata or {}).get(SIZES_KEY.encode())
    by_shard: dict[str, list[SampleSpan]] = {}
    for key, shard, offset, size in zip(*(table.column(c).to_pylist() for c in ("key", "shard", "offset", "size")),
                                        strict=True):
        by_shard.setdefault(shard, []).append(SampleSpan(key, offset, offset + size))
    _check_tars(out, sorted(by_shard), sizes)
    metas = sidecar_meta(out)
    shards, stale = [], {}
    for name in sorted(by_shard):
        spans = sorted(by_shard[name], key=lambda s: s.offset)
        url = _join(out, "shards", name)
        now = _stamp(url)
        cars = {}
        for f, meta in metas.items():
            car = _join(out, "embeddings", f, name)
            made_from = meta.get("shards", {}).get(name, {}).get("source")
            if not _exists(car):
                continue
            if now is not None and made_from is not None and not _same_shard(out, name, spans, car, made_from, now):
                stale.setdefault(f, []).append(name)  # the shard was rebuilt after `mmprep embed`
                continue
            cars[f] = car
        shards.append(Shard(url, spans, cars))
    for f, names in stale.items():
        log.warning("embeddings %s of %d shard(s) (%s...) were made from an earlier build of them: left out "
                    "of their samples, since their keys and order may differ; run `mmprep embed` again",
                    f, len(names), names[0])
    return shards


def _check_tars(out: str, names: list[str], footer: bytes | None) -> None:
    """Refuse an index that no longer describes the tars it names. A rerun rewrites tars first and replaces
    the index only at its end: stopped (or still running) in between, it leaves the last index's offsets
    over new bytes, and a sample would fail mid-epoch as truncated, or be read from other bytes silently.

    The merge wrote each indexed tar's size in the footer, and the index after every tar it covers. A
    tar missing, or of another size, is stale; so is one newer than the index while ``stats.json`` is
    absent (a build removes it before it writes a shard, and the merge writes it last): a rewrite that
    kept the size (tars grow by 10 KiB records). With ``stats.json`` there, mtimes are not compared: a
    folder copied without them (``cp -r``) holds the tars its index was written for. Indexes without
    sizes (older builds) and URLs (not stat'ed) are read as before. Raises ConfigError (key ``source``)."""
    if footer is None or is_url(out):
        return
    try:
        sizes = json.loads(footer)
    except ValueError:
        return
    if not isinstance(sizes, dict):
        return
    local = Path(out.removeprefix("file://"))
    written = None if (local / "stats.json").is_file() else _stamp(str(local / "index.parquet"))
    stale = []
    for name in names:
        size, now = sizes.get(name), _stamp(_join(out, "shards", name))
        if not isinstance(size, int):
            continue  # not recorded: nothing to compare with
        if now is None:
            stale.append(f"shards/{name} is missing")
        elif now["size"] != size:
            stale.append(f"shards/{name} is {now['size']} bytes, the index was written for {size}")
        elif written is not None and now["mtime_ns"] > written["mtime_ns"]:
            stale.append(f"shards/{name} was written after the index")
    if stale:
        more = f"; and {len(stale) - 1} more tar(s)" if len(stale) > 1 else ""
        raise ConfigError("source", f"{out} is not a finished build: its index.parquet no longer describes its "
                                    f"shards ({stale[0]}{more}); a build is running there, or was stopped after "
                                    "rewriting shards. Run `mmprep build` again, to its end, before reading it")


def _same_shard(out: str, name: str, spans: list[SampleSpan], car: str, made_from: Any,
                now: dict[str, int]) -> bool:
    """Whether sidecar ``car`` was made from the shard ``name`` that is there now.

    ``mmprep embed`` records the shard's size and mtime (``made_from``). The same stamp: yes. A copy
    (``cp -r``, rsync without ``-t``) keeps the bytes but not the mtimes, so otherwise the sidecar is
    taken when the size is the recorded one, the sidecar holds the index's keys for the shard in the
    same order (as embed writes them), and the build's own record of the tar it wrote
    (``.parts/<shard>.json``, copied along when present) is still the stamp embed read: a rebuild after
    ``mmprep embed`` records the new tar's stamp there, and is caught even when it kept size and keys.
    """
    if not isinstance(made_from, dict) or made_from == now:
        return made_from == now
    if made_from.get("size") != now["size"]:
        return False
    written = _part_stamp(out, name)
    if written is not None and written != f"{made_from.get('size')}:{made_from.get('mtime_ns')}":
        return False
    try:
        with open_binary(car) as fh:
            keys = [s.key for s in scan_spans(fh)]
    except (OSError, ValueError, EOFError):
        return False
    return keys == [s.key for s in spans]


def _part_stamp(out: str, tar: str) -> str | None:
    """``size:mtime_ns`` the build recorded for ``tar`` in its part file, None when it has none."""
    stem = tar.removesuffix(".tar")
    parts = Path(out.removeprefix("file://")) / ".parts"
    for part in dict.fromkeys((stem, stem.rsplit("_", 1)[0])):  # NAME-000000_01.tar is a part of NAME-000000
        try:
            stamps = json.loads((parts / f"{part}.json").read_text()).get("tar_stamps") or {}
        except (OSError, ValueError, AttributeError):
            continue
        if isinstance(stamps, dict) and isinstance(stamps.get(tar), str):
            return stamps[tar]
    return None


def _stamp(url: str) -> dict[str, int] | None:
    """Size and mtime of a local shard, as ``mmprep embed`` records the shard it read (None for URLs)."""
    if is_url(url):
        return None
    try:
        st = Path(url.removeprefix("file://")).stat()
    except OSError:
        return None
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _sidecar_fields(out: str) -> list[str]:
    """Fields with a sidecar folder (``OUT/embeddings/<field>/meta.json``)."""
    root = _join(out, "embeddings")
    if not is_url(out):
        base = Path(root)
        return sorted(p.parent.name for p in base.glob("*/meta.json")) if base.is_dir() else []
    fs, path = _fs(root)
    return sorted(p.rstrip("/").split("/")[-2] for p in fs.glob(path + "/*/meta.json"))


def sidecar_meta(out: str) -> dict[str, dict[str, Any]]:
    """``OUT/embeddings/<field>/meta.json`` documents, by field."""
    docs = {}
    for name in _sidecar_fields(out):
        with open_binary(_join(out, "embeddings", name, "meta.json")) as fh:
            docs[name] = json.loads(fh.read())
    return docs


def resolve(source: str | Path | list[str | Path]) -> list[Shard]:
    """Every shard of ``source`` with its sample spans, in a stable order.

    Raises ConfigError (key ``source``) when nothing matches or a shard holds no samples.
    """
    items = [str(s) for s in source] if isinstance(source, (list, tuple)) else [str(source)]
    shards: list[Shard] = []
    for item in items:
        if _is_out_dir(item):
            shards.extend(_out_dir_shards(item))
            continue
        if not is_url(item) and Path(item).is_dir():
            urls = sorted(str(p) for p in Path(item).rglob("*.tar"))
        else:
            urls = _expand(item)
        if not urls:
            raise ConfigError("source", f"no shards match {item!r}")
        for url in urls:
            if not _exists(url):
                raise ConfigError("source", f"shard {url} does not exist")
            with open_binary(url) as fh:
                shards.append(Shard(url, _scan(fh, url)))
    if not shards or not any(s.spans for s in shards):
        raise ConfigError("source", f"no samples in {source!r}")
    return [s for s in shards if s.spans]


# magic numbers of the compressions a shard might come in (webdataset can read .tar.gz; we read ranges)
_COMPRESSED = {b"\x1f\x8b": "gzip", b"BZh": "bzip2", b"\xfd7zXZ\x00": "xz", b"\x28\xb5\x2f\xfd": "zstd"}


def _scan(fh: BinaryIO, url: str) -> list[SampleSpan]:
    """:func:`scan_spans` of shard ``url``, or a ConfigError (key ``source``) naming it when it is compressed,
    or not a tar (its first header's checksum does not match, or its headers do not parse)."""
    head = fh.read(BLOCK)
    for magic, kind in _COMPRESSED.items():
        if head.startswith(magic):
            raise ConfigError("source", f"shard {url} is {kind}-compressed: compressed shards are not supported "
                                        "(samples are read by byte range); decompress it to a plain .tar")
    if head.count(0) != len(head) and not _header_ok(head):
        raise ConfigError("source", f"shard {url} is not a tar file: its first {len(head)} bytes are no tar "
                                    f"header (they start {head[:16]!r})")
    try:
        return scan_spans(fh)
    except (ValueError, EOFError, OverflowError) as exc:
        raise ConfigError("source", f"shard {url} is not a readable tar: {type(exc).__name__}: {exc}") from None


def _header_ok(block: bytes) -> bool:
    """Whether ``block`` is a whole tar header whose checksum (bytes 148-155, octal) matches its bytes."""
    if len(block) < BLOCK:
        return False
    try:
        recorded = int(block[148:156].rstrip(b"\0 ").strip() or b"-1", 8)
    except ValueError:
        return False
    return recorded in tarfile.calc_chksums(block)  # unsigned and signed sums, the field itself as spaces
