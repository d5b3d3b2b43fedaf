"""Review of the core engine: incremental rebuilds that copy samples must give what a fresh build gives,
whatever a record produced (several samples, none, errors) and wherever its samples land."""

from __future__ import annotations

import json
import os
import tarfile
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from mmprep.corpus import scan_folder
from mmprep.testing.media import tone, wav_bytes, write
from tests.conftest import build


def tars(out) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "shards").glob("*.tar"))}


def index(out) -> list[dict]:
    return pq.read_table(out / "index.parquet").to_pylist()


def check_places(out) -> None:
    """Every index row points at its own members' bytes in its tar."""
    for row in index(out):
        with tarfile.open(out / "shards" / row["shard"]) as tar:
            members = {m.name: m for m in tar.getmembers()}
            for field, offset, size in zip(row["fields"], row["member_offsets"], row["member_sizes"], strict=True):
                m = members[f"{row['key']}.{field}"]
                assert (m.offset_data, m.size) == (offset, size)
        assert row["offset"] <= row["member_offsets"][0] < row["offset"] + row["size"]


def segment_doc() -> dict:
    return {"stages": [{"stage": "audio.decode"},
                       {"stage": "audio.segment", "window": 0.1, "min_seconds": 0.05}],
            "output": {"name": "a", "max_samples": 4, "max_bytes": 20000}, "cache": {"enabled": False}}


def audio_corpus(root, n: int = 14):
    for i in range(n):
        # 0.02 s: nothing to keep (no row, an error); 0.1..0.4 s: one to four segments
        seconds = 0.02 if i % 5 == 2 else 0.1 * (1 + i % 4)
        write(root / f"d{i // 6}" / f"s{i:03d}.wav", wav_bytes(tone(seconds, freq=200 + 30 * i)))
    write(root / "d0" / "s003.wav", b"RIFF\x00\x00\x00\x00WAVEjunk")  # a corrupt one: dropped with its reason
    for i in range(4):  # a shard where every record is dropped: no tar at all
        write(root / "z" / f"bad{i}.wav", wav_bytes(tone(0.01)))
    return root


def errors(out) -> list[dict]:
    return [json.loads(line) for line in (out / "errors.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("workers", [1, 2])
def test_fan_out_drops_and_roll_over_rebuild_like_a_fresh_build(tmp_path, workers):
    corpus = audio_corpus(tmp_path / "corpus")
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    first = build(segment_doc(), corpus, out, workers=workers)
    assert first["ok"] and first["samples_in"] == 18
    assert first["samples_out"] > 14 and first["errors_by_reason"] == {"audio.corrupt": 1, "audio.no_segments": 7}
    assert len(tars(out)) > 5  # 5 shards (one without any tar), some of several tars: copies cross tar boundaries
    for i in (1, 9):  # one in the first shard, one in the middle
        write(corpus / f"d{i // 6}" / f"s{i:03d}.wav", wav_bytes(tone(0.35, freq=999)))
    again = build(segment_doc(), corpus, out, workers=workers)
    assert again["ok"] and again["shards_built"] == 2
    assert again["records_reused"] == 8 - 2  # the two changed shards hold 8 records
    ref = build(segment_doc(), corpus, fresh, workers=1)
    assert tars(out) == tars(fresh)
    assert index(out) == index(fresh)
    assert errors(out) == errors(fresh)
    assert {k: again[k] for k in ("samples_out", "samples_dropped", "errors_by_reason")} == \
        {k: ref[k] for k in ("samples_out", "samples_dropped", "errors_by_reason")}
    check_places(out)


def test_names_with_quotes_backslashes_and_a_fake_tail_survive_a_rebuild(tmp_path):
    corpus = tmp_path / "corpus"
    names = ['q"uote', "back\\slash", 'evil,"size":1,"shard":"t-000000.tar","offset":0}', "plain"]
    for n, name in enumerate(names):
        write(corpus / f"{name}.txt", f"text {n}")
    doc = {"stages": [{"stage": "text.decode"}], "output": {"name": "t", "max_samples": 10}}
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    build(doc, corpus, out, workers=1)
    write(corpus / "plain.txt", "changed")
    assert build(doc, corpus, out, workers=1)["records_reused"] == 3
    build(doc, corpus, fresh, workers=1)
    assert index(out) == index(fresh) and tars(out) == tars(fresh)
    assert sorted(row["source"] for row in index(out)) == sorted(names)
    check_places(out)


def test_a_previous_rows_file_that_does_not_match_its_part_is_rebuilt_not_copied(tmp_path):
    corpus = tmp_path / "corpus"
    for i in range(6):
        write(corpus / f"s{i}.txt", f"text {i} " * (i + 1))
    doc = {"stages": [{"stage": "text.decode"}], "output": {"name": "t", "max_samples": 10},
           "cache": {"enabled": False}}
    out, fresh = tmp_path / "out", tmp_path / "fresh"
    build(doc, corpus, out, workers=1)
    rows = out / ".parts" / "t-000000.rows"
    lines = rows.read_text().split("\n")
    rows.write_text("\n".join(lines[:2] + lines[3:]))  # one row lost: counts no longer add up
    write(corpus / "s5.txt", "changed")
    again = build(doc, corpus, out, workers=1)
    assert again["records_reused"] == 0
    build(doc, corpus, fresh, workers=1)
    assert index(out) == index(fresh) and tars(out) == tars(fresh)


def test_symlinked_folder_loop_is_read_once(tmp_path):
    corpus = tmp_path / "corpus"
    write(corpus / "a" / "x.txt", "one")
    os.symlink(corpus, corpus / "a" / "loop")
    doc = {"stages": [{"stage": "text.decode"}], "output": {"name": "t"}}
    summary = build(doc, corpus, tmp_path / "out", workers=1)
    assert summary["samples_in"] == 1 and [r["key"] for r in index(tmp_path / "out")] == ["a/x"]


def texts(corpus, n: int, folders: int):
    """n one-line text samples spread over ``folders`` folders d0, d1...; the folder."""
    for i in range(n):
        write(corpus / f"d{i % folders}" / f"s{i}.txt", f"text {i}")
    return corpus


def test_a_no_change_rerun_with_a_pool_started_for_nothing_finishes(tmp_path):
    corpus = texts(tmp_path / "corpus", 8, 2)
    doc = {"stages": [{"stage": "text.decode"}], "output": {"name": "t", "max_samples": 3}}
    out = tmp_path / "out"
    build(doc, corpus, out, workers=2)
    (out / ".scan.json").unlink()  # no record of the last scan: the pool starts at once
    again = build(doc, corpus, out, workers=2)
    assert again["ok"] and again["shards_built"] == 0 and again["samples_out"] == 8
    assert json.loads((out / ".scan.json").read_text())["folders"].keys() == {"", "d0/", "d1/"}


def test_filters_with_the_folder_scan(tmp_path):
    corpus = tmp_path / "corpus"
    for folder in ("d0", "d1", "d0/sub"):
        write(corpus / folder / "a.txt", f"text in {folder}")
        write(corpus / folder / "a.JPG", b"not read: filtered out")
    doc = {"input": {"include": ["*.txt"], "exclude": ["d1/*"]}, "stages": [{"stage": "text.decode"}],
           "output": {"name": "t"}}
    out = tmp_path / "out"
    build(doc, corpus, out, workers=1)
    assert [(r["key"], r["fields"]) for r in index(out)] == [("d0/a", ["txt", "meta.json"]),
                                                             ("d0/sub/a", ["txt", "meta.json"])]
    write(corpus / "d1" / "a.txt", "changed, but excluded")
    assert build(doc, corpus, out, workers=1)["shards_built"] == 0


def test_the_pool_starts_only_when_a_folder_changed(tmp_path, monkeypatch):
    from mmprep import warmup

    started = []
    real = warmup.start_pool
    monkeypatch.setattr(warmup, "start_pool", lambda *a, **kw: started.append(a[0]) or real(*a, **kw))
    corpus = texts(tmp_path / "corpus", 6, 3)
    doc = {"stages": [{"stage": "text.decode"}], "output": {"name": "t", "max_samples": 2}}
    out = tmp_path / "out"
    build(doc, corpus, out, workers=2)
    assert started == [2]  # no record of a last scan: at once
    assert build(doc, corpus, out, workers=2)["shards_built"] == 0
    assert started == [2]  # every folder as the last complete build saw it: never
    write(corpus / "d2" / "s5.txt", "changed")
    assert build(doc, corpus, out, workers=2)["shards_built"] == 1
    assert started == [2, 2]


# --- bugs the review found, fixed ---


def test_a_shard_that_fails_after_a_pipeline_change_does_not_merge_its_old_rows(tmp_path):
    corpus = tmp_path / "corpus"
    for i in range(6):
        write(corpus / f"s{i}.txt", f"text {i}")
    old = {"stages": [{"stage": "text.decode"}], "output": {"name": "t", "max_samples": 3},
           "cache": {"enabled": False}}
    out = tmp_path / "out"
    build(old, corpus, out, workers=2)
    new = {**old, "stages": [{"stage": "text.decode"},
                             {"stage": "debug.trace", "path": str(tmp_path / "trace.log"), "exit_on": "s1"}]}
    again = build(new, corpus, out, workers=2)  # shard 0's worker dies at s1, each time
    assert [f["shard"] for f in again["failed_shards"]] == ["t-000000"]
    # the index must hold what this pipeline made: shard 1 only, never shard 0 as the old pipeline made it
    assert sorted(row["key"] for row in index(out)) == ["s3", "s4", "s5"]
    assert again["samples_in"] == 6 and again["samples_failed"] == 3  # the failed shard counted as failed


def test_a_pool_whose_worker_died_while_setting_up_still_builds_every_task():
    import time

    from mmprep.executors import run_local, start_pool

    pool = start_pool(2, os._exit, 3)  # a stage's setup that kills its worker (a native crash, the OOM killer)
    deadline = time.monotonic() + 10
    while not pool._broken and time.monotonic() < deadline:
        time.sleep(0.05)
    assert pool._broken
    results = dict(run_local(abs, [1, -2, 3], 2, pool=pool))  # a new pool takes over, as after a crash mid-shard
    assert results == {1: 1, -2: 2, 3: 3}


def test_a_shard_of_more_than_100_tars_is_complete_on_a_rerun(tmp_path):
    corpus = tmp_path / "corpus"
    for i in range(102):
        write(corpus / f"s{i:03d}.txt", f"text {i}")
    doc = {"stages": [{"stage": "text.decode"}], "output": {"name": "t", "max_samples": 200, "max_bytes": 1}}
    out = tmp_path / "out"
    first = build(doc, corpus, out, workers=1)
    assert first["shards"] == 102 and (out / "shards" / "t-000000_101.tar").exists()
    again = build(doc, corpus, out, workers=1)
    assert again["shards_built"] == 0 and again["samples_out"] == 102



def test_a_file_system_without_inode_numbers_still_lists_every_folder(tmp_path, monkeypatch):
    # os.stat: st_ino "if non-zero, uniquely identifies the file"; some file systems give 0 (FAT/exFAT on
    # Windows, some network and FUSE mounts)
    for folder in ("a", "b", "b/c"):
        write(tmp_path / folder / "x.txt", folder)
    real = os.stat

    def no_inode(path, **kw):
        st = real(path, **kw)
        return SimpleNamespace(st_dev=7, st_ino=0, st_size=st.st_size, st_mtime_ns=st.st_mtime_ns,
                               st_ctime_ns=st.st_ctime_ns)

    monkeypatch.setattr(os, "stat", no_inode)
    assert [r.key for r in scan_folder(tmp_path)] == ["a/x", "b/c/x", "b/x"]
