"""Review fixes in corpus input: multi-dot fields in folders, bad and clashing extensions counted as
skipped, manifest problems as config errors with line numbers, and keys that a new file does not move."""

from __future__ import annotations

import datetime
import json
import tarfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmprep.corpus import read_corpus
from mmprep.errors import ConfigError
from mmprep.keys import unique_keys
from tests.conftest import build, run_cli, write_pipeline


def make(root, *rels: str, data: bytes = b"data"):
    for rel in rels:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def fields(records) -> dict[str, list[str]]:
    return {r.key: r.fields for r in records}


def text_doc() -> dict:
    return {"stages": [{"stage": "text.decode"}], "output": {"name": "t", "max_samples": 10}}


# 1. multi-dot field names in folders


def test_a_multi_dot_file_is_a_field_of_its_sample(tmp_path):
    root = make(tmp_path / "c", "x.jpg", "x.txt", "x.mfcc.npy", "clip.wav", "clip.segments.json",
                "sub/y.jpg", "sub/y.a.b.npy", "sub/y.frame000.jpg")
    records = read_corpus(root)
    assert fields(records) == {"clip": ["segments.json", "wav"], "sub/y": ["a.b.npy", "frame000.jpg", "jpg"],
                               "x": ["jpg", "mfcc.npy", "txt"]}
    x = records[-1]
    assert x.paths["mfcc.npy"] == str(root / "x.mfcc.npy") and x.origin == "x"


def test_names_that_merely_contain_dots_stay_samples(tmp_path):
    root = make(tmp_path / "c", "IMG.2023.jpg", "trip.jpg", "trip.1.jpg", "a.jpg", "a.Final.jpg",
                "d.v/x.jpg", "d.jpg", "s.2023.jpg", "s.2023.mfcc.npy")
    assert fields(read_corpus(root)) == {
        "IMG_2023": ["jpg"],  # no sample IMG
        "a": ["jpg"], "a_Final": ["jpg"],  # Final is not lowercase
        "d": ["jpg"], "d_v/x": ["jpg"],  # a dot in a folder's name is no field's
        "s_2023": ["jpg", "mfcc.npy"],  # 2023 has no letter: s.2023 is the sample, mfcc.npy its field
        "trip": ["jpg"], "trip_1": ["jpg"],  # 1 has no letter: a numbered photo, not a field
    }


def test_a_merged_field_changes_its_samples_stamp(tmp_path):
    root = make(tmp_path / "c", "x.jpg", "x.mfcc.npy")
    before = read_corpus(root)[0].stamp
    (root / "x.mfcc.npy").write_bytes(b"other bytes")
    assert read_corpus(root)[0].stamp != before


def test_a_folder_extracted_from_the_shards_builds_the_same_samples(tmp_path):
    root = make(tmp_path / "c", "x.txt", "x.mfcc.npy", "clip.txt", "clip.segments.json")
    out = tmp_path / "out"
    assert build(text_doc(), root, out, workers=1)["ok"]
    extracted = tmp_path / "extracted"
    extracted.mkdir()
    with tarfile.open(next((out / "shards").glob("*.tar"))) as tar:
        names = tar.getnames()
        tar.extractall(extracted, filter="data")
    assert "x.mfcc.npy" in names and "clip.segments.json" in names
    assert fields(read_corpus(extracted)) == {"clip": ["meta.json", "segments.json", "txt"],
                                              "x": ["meta.json", "mfcc.npy", "txt"]}


# 2. and 3. extensions that are no field name, and fields two files claim


def test_reserved_and_invalid_extensions_are_left_out_and_counted(tmp_path, caplog):
    root = make(tmp_path / "c", "v.__key__", "v.txt", "u.__META__", "u.txt", "x.", "x.txt", "y.txt ", "z.t-t")
    skipped = []
    with caplog.at_level("WARNING", logger="mmprep.corpus"):
        records = read_corpus(root, skipped=skipped)
    assert fields(records) == {"u": ["txt"], "v": ["txt"], "x": ["txt"]}
    assert sorted((s.path, s.reason) for s in skipped) == sorted(
        (str(root / name), "input.bad_field_name") for name in ("v.__key__", "u.__META__", "x.", "y.txt ", "z.t-t"))
    assert any("reserved" in s.message for s in skipped if s.path.endswith("__key__"))
    assert sum("left out" in r.getMessage() for r in caplog.records) == 5


def test_a_reserved_extension_no_longer_fails_the_shard(tmp_path):
    root = make(tmp_path / "c", "v.__key__", "v.txt", "u.__meta__", "u.txt", "w.txt")
    summary = build(text_doc(), root, tmp_path / "out", workers=1)
    assert summary["ok"] and summary["samples_out"] == 3 and summary["samples_dropped"] == 0


def test_clashing_fields_are_counted_not_only_logged(tmp_path):
    root = make(tmp_path / "c", "x.TXT", "x.Txt", "x.txt")
    skipped = []
    records = read_corpus(root, skipped=skipped)
    assert fields(records) == {"x": ["txt"]} and records[0].paths["txt"] == str(root / "x.TXT")  # first by name
    assert [(s.path, s.reason) for s in skipped] == [(str(root / "x.Txt"), "input.field_clash"),
                                                     (str(root / "x.txt"), "input.field_clash")]
    assert str(root / "x.TXT") in skipped[0].message


# 4. manifests: config errors, byte order marks, line numbers


def test_a_jsonl_line_that_is_not_an_object_is_a_config_error(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"key": "a", "txt": "hi"}\n5\n')
    with pytest.raises(ConfigError, match=r"line 2 of .*m\.jsonl is a JSON int, not an object"):
        read_corpus(path)


def test_the_cli_reports_a_bad_manifest_in_one_line_with_exit_2(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('[1, 2]\n')
    pipe = write_pipeline(tmp_path / "p.yaml", text_doc())
    res = run_cli("build", str(pipe), "-i", str(path), "-o", str(tmp_path / "out"), "-w", "1")
    assert res.returncode == 2, res.stderr
    assert "input.path" in res.stderr and "line 1" in res.stderr and "Traceback" not in res.stderr


def test_parquet_bytes_and_dates_are_config_errors_naming_the_column(tmp_path):
    path = tmp_path / "m.parquet"
    pq.write_table(pa.table({"key": ["a"], "blob": pa.array([b"\x00\x01"], pa.binary())}), path)
    with pytest.raises(ConfigError, match=r"column 'blob' holds bytes \(row 0 \(from 0\)"):
        read_corpus(path)
    pq.write_table(pa.table({"key": ["a", "b"], "when": [None, datetime.date(2024, 1, 2)]}), path)
    with pytest.raises(ConfigError, match=r"column 'when' holds a date \(row 1 \(from 0\)"):
        read_corpus(path)


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_byte_order_mark_is_not_part_of_the_first_column(tmp_path, fmt):
    path = tmp_path / f"m.{fmt}"
    text = "key,txt\na,hello\n" if fmt == "csv" else json.dumps({"key": "a", "txt": "hello"}) + "\n"
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())  # Excel's "CSV UTF-8"
    records = read_corpus(path)
    assert [(r.key, r.inline) for r in records] == [("a", {"txt": "hello"})]


def test_manifest_rows_are_named_by_the_line_an_editor_shows(tmp_path):
    csv_path = tmp_path / "m.csv"
    csv_path.write_text('key,txt\na,"two\nlines"\n\n,no key\n')  # the row without a key is on line 5
    with pytest.raises(ConfigError, match=r"input.key_column: line 5 of .*m\.csv has no 'key' value"):
        read_corpus(csv_path)
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text('{"key": "a"}\n\n{"key": "a"}\n')
    with pytest.raises(ConfigError, match=r"appears twice in m\.jsonl \(line 3 of"):
        read_corpus(jsonl)


def test_broken_manifest_files_are_config_errors(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("key,txt\na,hello,surplus\n")
    with pytest.raises(ConfigError, match="line 2 of .* has 3 cells, its header 2"):
        read_corpus(path)
    path.write_bytes("key,txt\na,caf\xe9\n".encode("cp1252"))
    with pytest.raises(ConfigError, match="not UTF-8"):
        read_corpus(path)
    bad = tmp_path / "m.parquet"
    bad.write_bytes(b"not parquet")
    with pytest.raises(ConfigError, match="cannot read .* as parquet"):
        read_corpus(bad)


# 5. keys an unrelated file does not move


def test_a_new_colliding_name_leaves_an_existing_key(tmp_path):
    assert unique_keys(["a.b"]) == {"a.b": "a_b"}
    both = unique_keys(["a b", "a.b"])
    assert both["a.b"] == "a_b" and both["a b"].startswith("a_b-")
    root = make(tmp_path / "c", "a.b.txt")
    assert [r.key for r in read_corpus(root)] == ["a_b"]
    make(root, "a b.txt")
    records = read_corpus(root)
    assert {r.origin: r.key for r in records}["a.b"] == "a_b" and len({r.key for r in records}) == 2


def test_a_clean_name_keeps_its_key_and_suffixes_stay_unique():
    keys = unique_keys(["a_b", "a.b", "a b", "a  b"])
    assert keys["a_b"] == "a_b" and len(set(keys.values())) == 4
    assert keys == unique_keys(["a  b", "a b", "a.b", "a_b"])


def test_skipped_names_finds_what_the_records_leave_out_and_keeps_the_listing(tmp_path):
    from mmprep.corpus import skipped_names
    from mmprep.listing import list_folder

    root = make(tmp_path / "c", "ok/a.jpg", "ok/a.mfcc.npy", "bad/v.__key__", "bad/v.txt", "bad/x.TXT",
                "bad/x.txt", "bad/y.t t", "up/IMG_1.JPG")
    listing = list_folder(str(root), split=False)
    names = [list(f.names) for f in listing]
    found = skipped_names(listing)
    assert [list(f.names) for f in listing] == names  # untouched: the build may still make records from it
    made = []
    read_corpus(root, skipped=made)
    assert sorted(found) == sorted(made) and {s.reason for s in made} == {"input.bad_field_name",
                                                                           "input.field_clash"}
    assert len(made) == 3
