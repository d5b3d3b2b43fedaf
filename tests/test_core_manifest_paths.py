"""A manifest's paths: taken from the folder of the manifest the user named, and part of what a rerun
compares (a row pointed at another file is a change, even when the two files' stats are equal)."""

from __future__ import annotations

import json
import os
import socket

from tests.conftest import build, shard_members

DOC = {"stages": [{"stage": "text.decode"}], "output": {"max_samples": 10}}


def _texts(out) -> dict[str, bytes]:
    return {name: data for name, data in shard_members(out).items() if name.endswith(".txt")}


def test_a_manifest_reached_through_a_symbolic_link_reads_files_beside_the_link(tmp_path):
    # git-annex and DVC keep the manifest elsewhere and link it into the data folder
    (tmp_path / "data").mkdir()
    (tmp_path / "store").mkdir()
    (tmp_path / "data" / "a.txt").write_text("beside the link")
    (tmp_path / "store" / "m.jsonl").write_text(json.dumps({"key": "a", "txt": "a.txt"}) + "\n")
    os.symlink("../store/m.jsonl", tmp_path / "data" / "m.jsonl")
    summary = build({**DOC, "input": {"path_columns": ["txt"]}}, tmp_path / "data" / "m.jsonl", tmp_path / "out",
                    workers=1)
    assert (summary["samples_out"], summary["samples_dropped"]) == (1, 0)
    assert _texts(tmp_path / "out") == {"a.txt": b"beside the link"}


def test_swapping_two_paths_of_equal_stats_rebuilds_like_a_fresh_build(tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    for name, text in (("x.txt", "low tone"), ("y.txt", "high one")):  # the same size
        (clips / name).write_text(text)
        os.utime(clips / name, ns=(1_700_000_000_000_000_000,) * 2)  # the same mtime, as tar -x or cp -p leave

    def manifest(first: str, second: str) -> None:
        rows = [{"key": "low", "txt": f"clips/{first}"}, {"key": "high", "txt": f"clips/{second}"}]
        (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))

    doc = {**DOC, "input": {"path_columns": ["txt"]}}
    manifest("x.txt", "y.txt")
    build(doc, tmp_path / "m.jsonl", tmp_path / "out", workers=1)
    manifest("y.txt", "x.txt")  # a label mix-up fixed: only the manifest's text changed
    again = build(doc, tmp_path / "m.jsonl", tmp_path / "out", workers=1)
    assert again["shards_built"] == 1
    build(doc, tmp_path / "m.jsonl", tmp_path / "fresh", workers=1, force=True)
    assert _texts(tmp_path / "out") == _texts(tmp_path / "fresh") == {"low.txt": b"high one", "high.txt": b"low tone"}


def test_a_manifest_moved_with_its_files_is_no_change(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "s.txt").write_text("caption")
    (tmp_path / "a" / "m.jsonl").write_text(json.dumps({"key": "s", "txt": "s.txt"}) + "\n")
    doc = {**DOC, "input": {"path_columns": ["txt"]}}
    build(doc, tmp_path / "a" / "m.jsonl", tmp_path / "out", workers=1)
    os.rename(tmp_path / "a", tmp_path / "b")  # rename keeps mtimes (and the stamp holds the path as written)
    again = build(doc, tmp_path / "b" / "m.jsonl", tmp_path / "out", workers=1)
    assert again["shards_built"] == 0 and again["samples_out"] == 1


def test_the_path_as_written_is_part_of_a_records_stamp(tmp_path):
    # two names of one file (a hard link) have every stat equal, ctime included: only the path tells
    from mmprep.corpus import read_corpus

    (tmp_path / "x.txt").write_text("one file")
    os.link(tmp_path / "x.txt", tmp_path / "y.txt")
    stamps = []
    for name in ("x.txt", "y.txt", "x.txt"):
        (tmp_path / "m.jsonl").write_text(json.dumps({"key": "k", "txt": name}) + "\n")
        stamps.append(read_corpus(tmp_path / "m.jsonl", path_columns=["txt"])[0].stamp)
    assert stamps[0] != stamps[1] and stamps[0] == stamps[2]


def test_a_build_that_writes_no_sample_says_so(tmp_path, caplog):
    # it completed (exit 0, as dropped samples allow), but an empty output is surely not what was meant
    (tmp_path / "m.jsonl").write_text(json.dumps({"key": "a", "jpg": "gone.jpg", "txt": "cap"}) + "\n")
    doc = {"stages": [{"stage": "image.decode"}], "output": {"required": ["jpg"]}}
    with caplog.at_level("WARNING", logger="mmprep.build"):
        summary = build(doc, tmp_path / "m.jsonl", tmp_path / "out", workers=1)
    assert summary["ok"] and (summary["samples_in"], summary["samples_out"]) == (1, 0)
    assert [r.getMessage() for r in caplog.records if "none of the" in r.getMessage()] == [
        f"none of the 1 samples was written (most often: input.unreadable, 1): see {tmp_path / 'out' / 'errors.jsonl'}"]


def test_a_fifo_or_a_device_named_by_a_manifest_is_dropped_not_read(tmp_path):
    """A read of a FIFO waits for a writer forever, and one of /dev/zero never ends: a manifest naming
    them (or a FIFO swapped in after the listing) hung the build. They are refused before any read."""
    (tmp_path / "a.txt").write_text("a file")
    os.mkfifo(tmp_path / "pipe.txt")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "sock.txt"))
    rows = [{"key": "a", "txt": "a.txt"}, {"key": "b", "txt": "pipe.txt"}, {"key": "c", "txt": "/dev/zero"},
            {"key": "d", "txt": "sock.txt"}]
    (tmp_path / "m.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    summary = build({**DOC, "input": {"path_columns": ["txt"]}}, tmp_path / "m.jsonl", tmp_path / "out", workers=1)
    sock.close()
    assert (summary["samples_out"], summary["errors_by_reason"]) == (1, {"input.not_regular": 3})
    assert _texts(tmp_path / "out") == {"a.txt": b"a file"}
    errors = [json.loads(line) for line in (tmp_path / "out" / "errors.jsonl").read_text().splitlines()]
    assert [(e["key"], e["message"]) for e in errors] == [
        ("b", f"{tmp_path / 'pipe.txt'} is not a regular file"), ("c", "/dev/zero is not a regular file"),
        ("d", f"{tmp_path / 'sock.txt'} is not a regular file")]
