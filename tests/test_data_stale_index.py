"""An OUT folder whose tars were rewritten after its index.parquet: a rerun stopped (Ctrl-C, SIGKILL) or
still running. The loader used to read the old index's offsets over the new bytes and failed mid-epoch
(``tar member ... is truncated``) or read other bytes; it now refuses such a folder before any sample,
from the tars' sizes in the index's footer and, while no stats.json says the build ended, their mtimes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from mmprep.data import ShardStream
from mmprep.data.sources import SIZES_KEY
from mmprep.errors import ConfigError
from mmprep.report import SIZES_KEY as WRITTEN_KEY
from tests.conftest import build

N = 10
STALE = "not a finished build"


def _build(out: Path, caption: str) -> list[str]:
    """Ten samples in shards of four (three tars), captions ``caption`` + their number."""
    rows = [{"key": f"k{i:02d}", "txt": f"{caption} {i}"} for i in range(N)]
    manifest = out.parent / f"{out.name}.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    doc = {"name": "s", "stages": [{"stage": "text.decode"}], "output": {"name": "s", "max_samples": 4}}
    build(doc, manifest, out)
    return [r["key"] for r in rows]


def _read(out: Path) -> dict[str, str]:
    """Every sample's caption, by key."""
    got = {}
    for s in ShardStream(str(out), fields=["txt"], shuffle=False):
        got[s["__key__"]] = s["txt"].decode() if isinstance(s["txt"], bytes) else s["txt"]
    return got


def _tars(out: Path) -> list[Path]:
    return sorted((out / "shards").glob("*.tar"))


@pytest.fixture
def built(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    _build(out, "caption")
    assert len(_tars(out)) == 3
    return out


def _rewritten(built: Path, tmp_path: Path) -> Path:
    """The middle tar of ``built`` replaced by the same shard of a build with longer captions (another
    size, other offsets), as a rerun does before its merge."""
    other = tmp_path / "other"
    _build(other, "a much longer caption than before, " * 100)
    name = _tars(built)[1].name
    assert (other / "shards" / name).stat().st_size != (built / "shards" / name).stat().st_size
    shutil.copyfile(other / "shards" / name, built / "shards" / name)
    return built / "shards" / name


def test_footer_has_the_size_of_every_indexed_tar(built):
    index = pq.ParquetFile(built / "index.parquet")
    sizes = json.loads(index.metadata.metadata[SIZES_KEY.encode()])
    assert SIZES_KEY == WRITTEN_KEY
    assert set(sizes) == set(index.read(columns=["shard"]).column("shard").to_pylist())
    assert sizes == {tar.name: tar.stat().st_size for tar in _tars(built)}
    newest = max(tar.stat().st_mtime_ns for tar in _tars(built))
    assert (built / "index.parquet").stat().st_mtime_ns >= newest  # written after the tars it covers


def test_finished_build_streams_every_sample(built):
    got = _read(built)
    assert got == {f"k{i:02d}": f"caption {i}" for i in range(N)}


@pytest.mark.parametrize("stats", ["removed", "kept"])
def test_rewritten_tar_is_refused_before_any_sample(built, tmp_path, stats):
    """The rerun removes stats.json first; a tar of another size is stale even with stats.json there."""
    _rewritten(built, tmp_path)
    if stats == "removed":
        (built / "stats.json").unlink()
    with pytest.raises(ConfigError, match=STALE) as exc:
        ShardStream(str(built), fields=["txt"])
    assert "mmprep build" in str(exc.value) and "bytes" in str(exc.value)


def test_missing_tar_is_refused(built):
    (built / "stats.json").unlink()
    _tars(built)[0].unlink()
    with pytest.raises(ConfigError, match=rf"{STALE}.*is missing"):
        ShardStream(str(built), fields=["txt"])


def _later(path: Path, than: Path) -> None:
    """Give ``path`` an mtime a second after ``than``'s, as a rewrite that kept the size would."""
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, than.stat().st_mtime_ns + 1_000_000_000))


def test_same_size_tar_rewritten_during_a_build_is_refused(built):
    """A rewrite that kept the size (tars grow by 10 KiB) is told by its mtime, newer than the index's,
    while the build has not ended (no stats.json)."""
    (built / "stats.json").unlink()
    _later(_tars(built)[2], built / "index.parquet")
    with pytest.raises(ConfigError, match=rf"{STALE}.*written after the index"):
        ShardStream(str(built), fields=["txt"])


def test_interrupted_rerun_that_rewrote_nothing_yet_streams(built):
    """A build that removed stats.json but has not rewritten a tar: the index still describes them."""
    (built / "stats.json").unlink()
    assert _read(built) == {f"k{i:02d}": f"caption {i}" for i in range(N)}


def test_copied_folder_without_mtimes_still_streams(built, tmp_path):
    """``cp -r`` gives every file a new mtime, in any order, stats.json included: a finished build,
    read as such."""
    copy = tmp_path / "copy"
    shutil.copytree(built, copy, copy_function=shutil.copyfile)
    for tar in _tars(copy):
        _later(tar, copy / "index.parquet")
    assert _read(copy) == _read(built)


def test_index_without_sizes_is_read_as_before(built):
    """An index written before the sizes (no footer key) is trusted as it was."""
    table = pq.read_table(built / "index.parquet")
    pq.write_table(table.replace_schema_metadata(None), built / "index.parquet")
    assert SIZES_KEY.encode() not in (pq.ParquetFile(built / "index.parquet").metadata.metadata or {})
    (built / "stats.json").unlink()
    _later(_tars(built)[0], built / "index.parquet")
    assert _read(built) == {f"k{i:02d}": f"caption {i}" for i in range(N)}


def test_finished_rerun_describes_its_new_tar(built):
    """A rerun that changed one caption ends with an index that describes its new tar (and the reused
    rows of the others)."""
    manifest = built.parent / "out.jsonl"
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    rows[5]["txt"] = "changed " * 40
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    doc = {"name": "s", "stages": [{"stage": "text.decode"}], "output": {"name": "s", "max_samples": 4}}
    build(doc, manifest, built)
    sizes = json.loads(pq.ParquetFile(built / "index.parquet").metadata.metadata[SIZES_KEY.encode()])
    assert sizes == {tar.name: tar.stat().st_size for tar in _tars(built)}
    got = _read(built)
    assert got["k05"] == rows[5]["txt"] and got["k09"] == "caption 9" and len(got) == N
