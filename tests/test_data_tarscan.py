"""Our tar parsing agrees with :mod:`tarfile` and with the index the shard writer reports."""

from __future__ import annotations

import io
import tarfile

import pytest

from mmprep.data.tarscan import group_samples, scan_spans, split_name
from mmprep.shardwriter import ShardWriter

KEYS = ["a", "dir/b", "x" * 120 + "/long_\u00e9\u00e8", "part0/item0001/clip0003", "z"]


def test_split_name_follows_webdataset():
    assert split_name("a/b/x.mfcc.npy") == ("a/b/x", "mfcc.npy")
    assert split_name("k.jpg") == ("k", "jpg")
    assert split_name("noext") is None and split_name("dir.d/.hidden") is None


def test_spans_and_members_match_tarfile_and_writer(tmp_path):
    w = ShardWriter(tmp_path, "s")
    infos = [w.write(k, [("txt", k.encode() * (i + 1)), ("meta.json", b"{}"), ("cls", str(i).encode())])
             for i, k in enumerate(KEYS)]
    w.close()
    path = tmp_path / "s.tar"
    with open(path, "rb") as fh:
        spans = scan_spans(fh)
    assert [(s.key, s.offset, s.end) for s in spans] == [(i.key, i.offset, i.offset + i.size) for i in infos]
    data = path.read_bytes()
    ours = list(group_samples(data))
    with tarfile.open(path) as tar:
        theirs = [(m.name, tar.extractfile(m).read()) for m in tar.getmembers()]
    flat = [(f"{key}.{ext}", value) for key, fields in ours for ext, value in fields.items()]
    assert flat == theirs
    # a range read from the middle of the shard
    mid = list(group_samples(data[spans[2].offset : spans[3].end], spans[2].offset))
    assert [k for k, _ in mid] == KEYS[2:4]


def test_truncated_member_is_an_error(tmp_path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("k.bin")
        info.size = 4000
        tar.addfile(info, io.BytesIO(b"\1" * 4000))
    with pytest.raises(EOFError, match="truncated"):
        list(group_samples(buf.getvalue()[:2048]))
