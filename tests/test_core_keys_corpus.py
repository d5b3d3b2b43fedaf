"""Keys and corpus listing: deterministic, safe names; folders and manifests give the same records."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mmprep.corpus import read_corpus
from mmprep.errors import ConfigError
from mmprep.keys import sanitize_key, unique_keys


@pytest.mark.parametrize(("raw", "key"), [
    ("a/b/x", "a/b/x"),
    ("/abs/path/x", "abs/path/x"),
    ("../../etc/passwd", "etc/passwd"),
    ("a/./b/../c", "a/b/c"),
    ("photo.2020.final", "photo_2020_final"),
    ("dir with space/名字 1", "dir_with_space/名字_1"),
    ("a\\b\\c", "a/b/c"),
])
def test_sanitize_key(raw, key):
    assert sanitize_key(raw) == key
    assert ".." not in key and not key.startswith("/") and "." not in key


def test_collisions_get_distinct_deterministic_keys():
    keys = unique_keys(["a.b", "a_b", "a b"])
    assert len(set(keys.values())) == 3
    assert keys == unique_keys(["a b", "a_b", "a.b"])


def test_folder_groups_files_by_stem(tmp_path):
    for rel in ["a/b/x.jpg", "a/b/x.txt", "a/b/x.wav", "a/y.JPG", "z.tar.gz", ".hidden.txt", "noext"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"data")
    records = read_corpus(tmp_path)
    assert [r.key for r in records] == ["a/b/x", "a/y", "z_tar"]
    assert records[0].fields == ["jpg", "txt", "wav"]
    assert records[1].fields == ["jpg"]
    assert records[0].origin == "a/b/x"
    assert records[0].paths["jpg"] == str(tmp_path / "a/b/x.jpg")


def test_folder_read_once_through_symlinks_and_stamp_follows_changes(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x.txt").write_text("one")
    (tmp_path / "a" / "loop").symlink_to(tmp_path)  # a cycle: must not repeat samples or recurse
    (tmp_path / "b").symlink_to(tmp_path / "a")  # the same folder under a second name: read once
    records = read_corpus(tmp_path)
    assert [r.key for r in records] == ["a/x"]
    before = records[0].stamp
    assert read_corpus(tmp_path)[0].stamp == before  # deterministic
    (tmp_path / "a" / "x.txt").write_text("two!")
    assert read_corpus(tmp_path)[0].stamp != before


def _rows(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "img" / "1.jpg").write_bytes(b"x")
    return [{"key": "s/1", "jpg": "img/1.jpg", "txt": "hello", "cls": 3},
            {"key": "../s/2", "jpg": None, "txt": "world", "cls": 1}]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_manifest_formats(tmp_path, fmt):
    rows = _rows(tmp_path)
    path = tmp_path / f"m.{fmt}"
    if fmt == "jsonl":
        path.write_text("\n".join(json.dumps(r) for r in rows))
    elif fmt == "csv":
        path.write_text("key,jpg,txt,cls\ns/1,img/1.jpg,hello,3\n../s/2,,world,1\n")
    else:
        pq.write_table(pa.Table.from_pylist(rows), path)
    records = read_corpus(path)
    assert [r.key for r in records] == ["s/1", "s/2"]
    first = records[0]
    assert first.paths == {"jpg": str(tmp_path / "img/1.jpg")}
    assert first.inline["txt"] == "hello"
    assert first.inline["cls"] == "3"
    assert records[1].origin == "../s/2"
    assert "jpg" not in records[1].paths


@pytest.mark.parametrize(("fmt", "header", "message"), [
    ("csv", ["key", "jpg", "txt", "jpg"], "line 1 of .* has column 'jpg' twice"),
    ("csv", ["key", "jpg", "txt", "JPG"], "line 1 of .* has columns 'jpg' and 'JPG'"),
    ("jsonl", ["key", "jpg", "txt", "jpg"], "line 1 of .* has 'jpg' twice"),
    ("jsonl", ["key", "jpg", "txt", "JPG"], "line 1 of .* has columns 'jpg' and 'JPG'"),
    ("parquet", ["key", "jpg", "txt", "jpg"], "the schema of .* has column 'jpg' twice"),
    ("parquet", ["key", "jpg", "txt", "Jpg"], "the schema of .* has columns 'jpg' and 'Jpg'"),
])
def test_a_field_named_by_two_columns_is_a_config_error(tmp_path, fmt, header, message):
    # the last column silently won in every row: a sample got the other column's file, or none
    cells = ["a", "1.jpg", "cap", "2.jpg"]
    path = tmp_path / f"m.{fmt}"
    if fmt == "csv":
        path.write_text(",".join(header) + "\n" + ",".join(cells) + "\n")
    elif fmt == "jsonl":
        pairs = (f"{json.dumps(h)}: {json.dumps(c)}" for h, c in zip(header, cells, strict=True))
        path.write_text("{" + ", ".join(pairs) + "}\n")
    else:
        pq.write_table(pa.table([pa.array([c]) for c in cells], names=header), path)
    with pytest.raises(ConfigError, match=message):
        read_corpus(path)


def test_a_repeated_name_inside_an_inline_json_value_is_refused_too(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"key": "a", "txt": "x"}\n{"key": "b", "json": {"n": 1, "n": 2}}\n')
    with pytest.raises(ConfigError, match="line 2 of .* has 'n' twice"):
        read_corpus(path)


def test_missing_input_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="input.path"):
        read_corpus(tmp_path / "nope")
    (tmp_path / "m.xyz").write_text("")
    with pytest.raises(ConfigError, match="input.format"):
        read_corpus(tmp_path / "m.xyz")


@pytest.mark.parametrize("raw", ["a/b/x.jpg", "/abs/x", "../up", "a/./b", "_lead", "名字/x y", "a..b", "", "__"])
def test_child_keys_are_safe_and_never_a_corpus_key(raw):
    from mmprep.keys import child_key, is_safe_key

    key = sanitize_key(raw)
    assert is_safe_key(key)
    child = child_key(key, "seg", 3)
    assert is_safe_key(child) and child == f"{key}/_seg0003"
    assert sanitize_key(child) != child  # sanitizing strips the "_": no file can be given this key


@pytest.mark.parametrize("bad", ["a.b", "/a", "a//b", "a/", "../a", "a/../b", "a b", "", "e\u0301"])
def test_unsafe_child_keys_are_refused(bad):
    from mmprep.keys import is_safe_key

    assert not is_safe_key(bad)
