"""The corpus listing (split across a forked child) and the rerun that finds nothing to do."""

from __future__ import annotations

import json
import os

import pytest

from mmprep import build as build_module
from mmprep import corpus as corpus_module
from mmprep import forkjob, listing
from mmprep.testing.media import write
from tests.conftest import build


def tree(root):
    """Nested folders, a folder with a dot in its name, hidden and extensionless files, two links."""
    for i in range(30):
        write(root / f"d{i % 3}" / f"s{i:02d}.txt", f"text {i}")
        write(root / f"d{i % 3}" / f"s{i:02d}.JPG", b"jpg bytes" * i)
    write(root / "d1" / "deep" / "er" / "x.txt", "deep")
    write(root / "v1.0" / "y.txt", "in a folder named like a file")
    write(root / ".hidden" / "z.txt", "skipped")
    write(root / "d0" / ".z.txt", "skipped")
    write(root / "d0" / "README", "no extension: skipped")
    (root / "d2" / "back").symlink_to(root)  # a loop
    (root / "d2" / "l.txt").symlink_to(root / "d0" / "s00.txt")  # a file link: stat follows it
    os.utime(root / "d1" / "s01.txt", ns=(-1, -1))  # dated 1969: -1, like a folder's size
    return root


def flat(folders):
    return [(f.rel, f.names, f.stats, f.digest) for f in folders]


@pytest.fixture(params=["whole folders", "halves of folders"])
def forking(monkeypatch, request):
    """Split even a small listing, whatever this test process has loaded; count the forks. A child
    reads every second folder of a level, or stats the second half of each folder's names."""
    forks = []
    real = os.fork
    monkeypatch.setattr(listing, "SPLIT_AT", 0)
    monkeypatch.setattr(listing, "SPLIT_BYTES", 0 if request.param == "whole folders" else 1 << 60)
    monkeypatch.setattr(forkjob, "fork_safe", lambda: True)
    monkeypatch.setattr(os, "fork", lambda: forks.append(1) or real())
    return forks


def test_a_split_listing_equals_one_process_listing(tmp_path, forking):
    root = tree(tmp_path / "c")
    alone = listing.list_folder(str(root), split=False)
    assert forking == []
    split = listing.list_folder(str(root), split=True)
    assert len(forking) == 4  # one per level: the root, d0-d2 and v1.0, d1/deep, d1/deep/er
    assert flat(split) == flat(alone)
    by_rel = {f.rel: f for f in alone}
    assert list(by_rel) == ["", "d0/", "d1/", "d2/", "v1.0/", "d1/deep/", "d1/deep/er/"]  # level by level
    assert by_rel["d0/"].names[:2] == ["s00.JPG", "s00.txt"] and "README" not in by_rel["d0/"].names
    d2 = by_rel["d2/"]
    assert d2.stats[3 * d2.names.index("l.txt")] == len("text 0")  # the linked file's size, not the link's
    d1 = by_rel["d1/"]
    assert d1.stats[3 * d1.names.index("s01.txt") + 1] == -1  # mtime 1 ns before 1970 (the sift's path)
    keys = [r.key for r in corpus_module.scan_folder(root)]
    assert len(keys) == 33 and "d1/deep/er/x" in keys and not any(k.startswith("d2/back") for k in keys)


def test_a_child_that_fails_leaves_its_half_to_the_parent(tmp_path, forking, monkeypatch):
    root = tree(tmp_path / "c")
    alone = listing.list_folder(str(root), split=False)
    parent, real = os.getpid(), listing._stats

    def broken_in_child(*args):
        if os.getpid() != parent:
            raise OSError("the child cannot stat")
        return real(*args)

    monkeypatch.setattr(listing, "_stats", broken_in_child)
    assert flat(listing.list_folder(str(root), split=True)) == flat(alone)
    assert forking


def test_include_exclude_apply_to_files_not_to_the_folders_walked(tmp_path):
    root = tree(tmp_path / "c")
    folders = listing.list_folder(str(root), include=["*.txt"], exclude=["d1/*"])
    names = {f.rel: f.names for f in folders}
    assert names["d1/"] == names["d1/deep/er/"] == []  # walked, and * matches across "/" (fnmatch)
    assert names["v1.0/"] == ["y.txt"] and len(names["d0/"]) == 10
    assert all(n.endswith(".txt") for ns in names.values() for n in ns)


def text_doc():
    return {"stages": [{"stage": "text.decode"}], "output": {"name": "t", "max_samples": 10}}


def corpus(root):
    for i in range(25):
        write(root / f"d{i % 2}" / f"s{i:02d}.txt", f"text {i}")
    return root


@pytest.fixture
def records_made(monkeypatch):
    """How many times a build made the corpus's records."""
    calls = []
    real = build_module.read_corpus
    monkeypatch.setattr(build_module, "read_corpus", lambda *a, **k: calls.append(1) or real(*a, **k))
    return calls


def test_a_rerun_with_nothing_changed_makes_no_record_and_notes_the_run(tmp_path, records_made):
    root, out = corpus(tmp_path / "c"), tmp_path / "out"
    first = build(text_doc(), root, out, workers=1)
    assert records_made == [1]
    before = {p.name: p.read_bytes() for p in (out / "shards").iterdir()}
    again = build(text_doc(), root, out, workers=1)
    assert records_made == [1]  # the listing alone showed nothing to do
    assert {k: again[k] for k in ("samples_in", "samples_out", "shards", "shards_built", "shards_skipped")} == {
        "samples_in": 25, "samples_out": 25, "shards": 3, "shards_built": 0, "shards_skipped": 3}
    assert {k: v for k, v in again.items() if k != "seconds"} == {k: v for k, v in first.items() if k != "seconds"} | {
        "shards_built": 0, "shards_skipped": 3}
    run = json.loads((out / "stats.json").read_text())["run"]
    assert run["shards_built"] == 0 and run["phases_seconds"].keys() == {"scan"}
    assert {p.name: p.read_bytes() for p in (out / "shards").iterdir()} == before


@pytest.mark.parametrize("change", ["edit a file", "add a file", "delete a shard", "touch the index",
                                    "delete stats.json", "new include", "move the corpus"])
def test_any_change_to_inputs_outputs_or_settings_takes_the_full_path(tmp_path, records_made, change):
    root, out = corpus(tmp_path / "c"), tmp_path / "out"
    doc = text_doc()
    build(doc, root, out, workers=1)
    build(doc, root, out, workers=1)
    assert records_made == [1]
    built = 0
    if change == "edit a file":
        write(root / "d1" / "s03.txt", "changed")
        built = 1
    elif change == "add a file":
        write(root / "d1" / "s99.txt", "new")
        built = 1  # the last shard: s99 sorts after every other key
    elif change == "delete a shard":
        (out / "shards" / "t-000001.tar").unlink()
        built = 1
    elif change == "touch the index":
        os.utime(out / "index.parquet", ns=(1, 1))
    elif change == "delete stats.json":
        (out / "stats.json").unlink()
    elif change == "new include":
        doc["input"] = {"include": ["*.txt"]}
    elif change == "move the corpus":
        root = root.rename(tmp_path / "moved")
    again = build(doc, root, out, workers=1)
    assert records_made == [1, 1]
    assert again["shards_built"] == built and again["samples_out"] == 25 + (change == "add a file")
    run = json.loads((out / "stats.json").read_text())["run"]
    because = {"edit a file": {"inputs changed": 1}, "add a file": {"inputs changed": 1},
               "delete a shard": {"its tars changed": 1}}.get(change, {})
    assert (run["rebuilt_because"], run["records_changed"]) == (because, int("inputs" in str(because)))
    assert json.loads((out / "stats.json").read_text())["samples_out"] == again["samples_out"]
    build(doc, root, out, workers=1)
    assert records_made == [1, 1]  # and the next rerun is quick again


def test_an_output_folder_inside_the_corpus_is_not_read_as_input(tmp_path, records_made):
    root = corpus(tmp_path / "c")
    out = root / "out"
    build(text_doc(), root, out, workers=1)
    # the corpus root now holds the output folder: not a change of the input (the second build made
    # the records again, and the no-change stop came only with the third)
    again = build(text_doc(), root, out, workers=1)
    assert again["samples_in"] == 25 and again["shards_built"] == 0
    assert records_made == [1]  # its stats.json, rewritten by every run, is no input: the stop works
    assert json.loads((out / "stats.json").read_text())["run"]["phases_seconds"].keys() == {"scan"}


def test_what_is_neither_file_nor_folder_is_left_out_with_a_warning(tmp_path, caplog):
    root = corpus(tmp_path / "c")
    os.mkfifo(root / "d0" / "pipe.txt")  # a reader would wait for a writer forever
    with caplog.at_level("WARNING", logger="mmprep.listing"):
        summary = build(text_doc(), root, tmp_path / "out", workers=1)
    assert summary["samples_in"] == 25 and summary["ok"]
    assert any("pipe.txt is not a regular file" in r.getMessage() for r in caplog.records)
    run = json.loads((tmp_path / "out" / "stats.json").read_text())["run"]
    assert run["inputs_skipped"] == {"input.not_regular": 1}
    assert run["inputs_skipped_first"] == [{"path": str(root / "d0" / "pipe.txt"), "reason": "input.not_regular",
                                            "message": "neither a file nor a folder"}]
    build(text_doc(), root, tmp_path / "out", workers=1)  # the no-change stop reports it too
    run = json.loads((tmp_path / "out" / "stats.json").read_text())["run"]
    assert run["shards_built"] == 0 and run["inputs_skipped"] == {"input.not_regular": 1}


def test_a_folder_that_cannot_be_listed_is_counted_in_stats(tmp_path, monkeypatch):
    root = corpus(tmp_path / "c")
    real = os.listdir
    monkeypatch.setattr(os, "listdir", lambda p: (_ for _ in ()).throw(PermissionError(13, "Permission denied"))
                        if str(p).endswith("d1") else real(p))  # as root, a chmod would not stop the read
    summary = build(text_doc(), root, tmp_path / "out", workers=1)
    assert summary["samples_in"] == 13  # d0's; d1's 12 were never seen
    run = json.loads((tmp_path / "out" / "stats.json").read_text())["run"]
    assert run["inputs_skipped"] == {"input.unlistable": 1}
    assert run["inputs_skipped_first"][0]["path"] == str(root / "d1")


def test_the_build_says_why_it_builds_each_shard(tmp_path, caplog):
    root, out = corpus(tmp_path / "c"), tmp_path / "out"

    def because(doc=None, **opts):
        with caplog.at_level("INFO", logger="mmprep.build"):
            build(doc or text_doc(), root, out, workers=1, **opts)
        return json.loads((out / "stats.json").read_text())["run"]["rebuilt_because"]

    assert because() == {"not built yet": 3}
    assert because() == {}
    assert because(force=True) == {"forced": 3}
    write(root / "d0" / "s00.txt", "changed")
    write(root / "d1" / "s01.txt", "changed too")
    assert because() == {"inputs changed": 2}  # d0's 13 records fill shard 0 and start shard 1
    assert "shards to build: 2 inputs changed (2 records new or changed in them)" in caplog.text
    assert because({**text_doc(), "stages": [{"stage": "text.decode"}, {"stage": "text.normalize"}]}) == {
        "pipeline changed": 3}
