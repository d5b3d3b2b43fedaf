"""``OUT/.records``: a rerun makes records only for the folders whose listing changed; the others come
from the store. Every record list so made is compared with one made from scratch."""

from __future__ import annotations

import json
import os

import pytest

from mmprep import corpus as corpus_module
from mmprep.corpus import scan_folder
from mmprep.recordstore import RecordStore
from tests.conftest import build
from tests.test_incremental_copy import outputs, text_corpus, text_doc


@pytest.fixture
def made(monkeypatch) -> list[str]:
    """The folders with files whose records were made (not read from a store), in order."""
    calls: list[str] = []
    real = corpus_module._folder_records

    def counting(folder, *args):
        if folder.names:  # not the corpus root, which holds only folders
            calls.append(folder.rel)
        return real(folder, *args)

    monkeypatch.setattr(corpus_module, "_folder_records", counting)
    return calls


def scan(root, store_path=None, *, read=True, identity="x"):
    store = RecordStore(store_path, identity, read=read) if store_path else None
    skipped = []
    return scan_folder(root, skipped=skipped, store=store), skipped


def test_only_changed_folders_are_made_again_and_the_records_equal_a_fresh_scan(tmp_path, made):
    root = text_corpus(tmp_path / "corpus")  # d0..d3
    store = tmp_path / "records"
    first, _ = scan(root, store)
    assert made == ["d0/", "d1/", "d2/", "d3/"]
    made.clear()
    assert scan(root, store)[0] == first and made == []  # nothing changed: nothing made
    (root / "d1" / "s040.txt").write_text("edited")  # an edit in place
    (root / "d2" / "new.txt").write_text("a new sample")
    again, _ = scan(root, store)
    assert made == ["d1/", "d2/"]
    assert again == scan(root)[0]  # as a scan without a store makes them
    made.clear()
    assert scan(root, store)[0] == again and made == []  # the store now has the edited folders


def test_a_folder_edited_in_place_makes_only_the_records_of_the_edited_samples_again(tmp_path, monkeypatch):
    root = tmp_path / "corpus"
    folder = root / "d"
    folder.mkdir(parents=True)
    for i in range(40):
        (folder / f"s{i:02d}.txt").write_text(f"sample {i}")
    # x.l-1 is a sample of its own whose file sorts between x's; x.mfcc.npy is a field of x;
    # y.txt clashes with y.TXT (sorted first, so kept) and z.TX-T is no field name: both left out
    for name in ("x.jpg", "x.l-1.jpg", "x.mfcc.npy", "x.txt", "y.txt", "y.TXT", "z.TX-T"):
        (folder / name).write_text(name)
    store = tmp_path / "records"
    first, skipped = scan(root, store)
    calls: list[list[str]] = []
    real = corpus_module._folder_records
    monkeypatch.setattr(corpus_module, "_folder_records", lambda f, *a: calls.append(f.names) or real(f, *a))
    for name in ("x.mfcc.npy", "s07.txt", "y.txt", "z.TX-T"):  # the last two are in no sample
        (folder / name).write_text(f"{name} edited, longer")
    again, skipped_again = scan(root, store)
    assert calls == [["s07.txt"], ["x.jpg", "x.mfcc.npy", "x.txt"]]
    assert again != first and again == scan(root)[0]
    assert skipped_again == skipped and {s.reason for s in skipped} == {"input.field_clash", "input.bad_field_name"}
    assert [a.key for a, b in zip(again, first, strict=True) if a != b] == ["d/s07", "d/x"]
    calls.clear()
    for i in range(0, 40, 4):  # more than 8 (and a 16th) of the folder: it is made again whole
        (folder / f"s{i:02d}.txt").write_text("edited again")
    assert scan(root, store)[0] == scan(root)[0]
    assert [c for c in calls if c] == [sorted(os.listdir(folder))] * 2  # the store's scan, then the fresh one


def test_a_folder_whose_names_changed_is_made_again_without_unpacking_its_old_entry(tmp_path, monkeypatch, made):
    from mmprep import recordstore

    root = text_corpus(tmp_path / "corpus")
    (root / "d0" / "odd.TX-T").write_text("left out: no field name")
    store = tmp_path / "records"
    scan(root, store)
    unpacked = []
    real = recordstore._unpacked
    monkeypatch.setattr(recordstore, "_unpacked", lambda entry: unpacked.append(entry) or real(entry))
    (root / "d1" / "new.txt").write_text("a sample more")  # d1's names change
    (root / "d0" / "odd.TX-T").write_text("edited, in no sample")  # d0's names do not
    made.clear()
    again, _ = scan(root, store)
    assert again == scan(root)[0]
    assert made == ["d1/", "d0/", "d1/", "d2/", "d3/"]  # d1 by the store's scan (d0 not at all), then the fresh one
    assert len(unpacked) == 4  # the root, d0 (for _patched), d2 and d3 (unchanged): not d1


def test_keys_that_collide_across_folders_come_out_as_a_fresh_scan_gives_them(tmp_path, made):
    root = tmp_path / "corpus"
    for folder in ("a b", "a_b", "c"):
        (root / folder).mkdir(parents=True)
        (root / folder / "x.txt").write_text(folder)
    store = tmp_path / "records"
    first, _ = scan(root, store)
    keys = sorted(r.key for r in first)
    assert keys[0] == "a_b/x" and keys[1].startswith("a_b/x-") and keys[2] == "c/x"  # "a_b" keeps its key
    assert {r.origin: r.key for r in first}["a_b/x"] == "a_b/x"
    (root / "a_b" / "x.txt").unlink()
    os.rmdir(root / "a_b")
    made.clear()
    again, _ = scan(root, store)
    assert made == []  # "a b" and "c" did not change
    assert sorted(r.key for r in again) == ["a_b/x", "c/x"]  # "a b/x" has the plain key now, as fresh
    assert again == scan(root)[0]


def test_what_a_folder_left_out_is_reported_again_when_its_records_come_from_the_store(tmp_path, made, caplog):
    root = text_corpus(tmp_path / "corpus")
    (root / "d0" / "bad.TX-T").write_text("not a field name")
    store = tmp_path / "records"
    _, skipped = scan(root, store)
    made.clear()
    caplog.clear()
    _, again = scan(root, store)
    assert made == [] and again == skipped and [s.reason for s in again] == ["input.bad_field_name"]
    assert "bad.TX-T left out" in caplog.text


def test_names_that_are_not_utf8_round_trip(tmp_path, made):
    root = tmp_path / "corpus"
    folder = os.fsencode(root) + b"/caf\xe9"
    os.makedirs(folder)
    with open(folder + b"/x\xff.txt", "wb") as fh:
        fh.write(b"text")
    store = tmp_path / "records"
    first, _ = scan(root, store)
    made.clear()
    again, _ = scan(root, store)
    assert made == [] and again == first == scan(root)[0]
    assert os.path.exists(again[0].paths["txt"])


@pytest.mark.parametrize("damage", ["truncated", "foreign", "other identity"])
def test_a_store_that_cannot_be_used_is_ignored(tmp_path, made, damage):
    root = text_corpus(tmp_path / "corpus")
    store = tmp_path / "records"
    first, _ = scan(root, store)
    if damage == "truncated":
        store.write_bytes(store.read_bytes()[:-100])
    elif damage == "foreign":
        store.write_bytes(b"not marshal data at all")
    made.clear()
    again, _ = scan(root, store, identity="y" if damage == "other identity" else "x")
    assert again == first
    assert len(made) == (4 if damage != "truncated" else 1)  # truncated: the last folder is lost


def test_builds_keep_the_store_beside_the_shards_and_force_does_not_read_it(tmp_path, made):
    corpus = text_corpus(tmp_path / "corpus")
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    build(text_doc(), corpus, out, workers=1)
    assert (out / ".records").is_file()
    (corpus / "d3" / "s095.txt").write_text("an edit in the last folder")
    made.clear()
    build(text_doc(), corpus, out, workers=1)
    assert made == ["d3/"]
    build(text_doc(), corpus, fresh, workers=1)
    assert outputs(out) == outputs(fresh)
    made.clear()
    build(text_doc(), corpus, out, workers=1, force=True)
    assert made == ["d0/", "d1/", "d2/", "d3/"]
    assert json.loads((out / "stats.json").read_text())["samples_out"] == 99


def test_a_dry_run_writes_no_store(tmp_path):
    corpus = text_corpus(tmp_path / "corpus")
    out = tmp_path / "out"
    build(text_doc(), corpus, out, workers=1, dry_run=True)
    assert not out.exists()


def test_the_store_read_is_dropped_once_the_records_are_made(tmp_path):
    """What was read is as big as the store file: it is not kept through the rest of the build."""
    root = text_corpus(tmp_path / "corpus")
    path = tmp_path / "records"
    scan(root, path)
    store = RecordStore(path, "x")
    assert len(store.saved) == 5  # the root and d0..d3
    scan_folder(root, store=store)
    assert store.saved == {} and store._kept == []
