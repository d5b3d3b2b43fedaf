"""``--dry-run``: what a build would do and why, read from the output folder as it is; nothing written or run."""

from __future__ import annotations

import os
from pathlib import Path

from tests.conftest import build
from tests.test_core_incremental import trace, traced


def snapshot(root: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``root`` with its size and mtime: a dry run must leave all of them."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(root.rglob("*"))}


def test_dry_run_on_a_new_output_folder_creates_nothing_and_runs_no_stage(tmp_path, corpus):
    out = tmp_path / "out"
    plan = build(traced(tmp_path), corpus, out, workers=2, dry_run=True)
    assert not out.exists()
    assert trace(tmp_path) == []  # no stage ran
    assert plan["dry_run"] is True
    assert (plan["samples_in"], plan["planned_shards"]) == (8, 3)
    assert (plan["shards_complete"], plan["shards_to_build"]) == (0, 3)
    assert plan["samples_to_build"] == 8
    assert plan["rebuilt_because"] == {"not built yet": 3}
    assert plan["reports_current"] is False


def test_dry_run_names_the_changed_shard_and_record_and_leaves_the_build_as_it_was(tmp_path, corpus):
    out = tmp_path / "out"
    build(traced(tmp_path), corpus, out, workers=1)
    trace(tmp_path)
    same = build(traced(tmp_path), corpus, out, dry_run=True)
    assert (same["shards_complete"], same["shards_to_build"], same["rebuilt_because"]) == (3, 0, {})
    assert same["reports_current"] is True

    (corpus / "part1" / "item0003.txt").write_text("A changed caption")
    before = snapshot(out)
    plan = build(traced(tmp_path), corpus, out, dry_run=True)
    assert snapshot(out) == before
    assert trace(tmp_path) == []
    assert (plan["shards_complete"], plan["shards_to_build"], plan["samples_to_build"]) == (2, 1, 3)
    assert plan["rebuilt_because"] == {"inputs changed": 1} and plan["records_changed"] == 1

    real = build(traced(tmp_path), corpus, out, workers=1)  # the dry run's forecast is what happens
    assert (real["shards_built"], real["shards_skipped"]) == (plan["shards_to_build"], plan["shards_complete"])


def test_dry_run_counts_stale_tars_a_smaller_plan_would_remove(tmp_path, corpus):
    out = tmp_path / "out"
    build(traced(tmp_path), corpus, out, workers=1)
    for name in ("item0005", "item0007"):  # the last shard's two records
        for path in (corpus / "part1").glob(f"{name}.*"):
            os.remove(path)
    plan = build(traced(tmp_path), corpus, out, dry_run=True)
    assert (plan["samples_in"], plan["planned_shards"], plan["shards_to_build"]) == (6, 2, 0)
    assert (plan["stale_tars"], plan["stale_parts"]) == (1, 2)  # t-000002.tar, its .json and .rows
    assert len(list((out / "shards").glob("*.tar"))) == 3


def test_dry_run_with_force_plans_every_shard(tmp_path, corpus):
    out = tmp_path / "out"
    build(traced(tmp_path), corpus, out, workers=1)
    plan = build(traced(tmp_path), corpus, out, dry_run=True, force=True)
    assert plan["rebuilt_because"] == {"forced": 3} and plan["shards_complete"] == 0


def test_cli_dry_run_prints_the_plan_and_the_build_names_its_error_reasons(tmp_path, corpus):
    from tests.conftest import ROOT, run_cli

    out = tmp_path / "out"
    (corpus / "part0" / "item0002.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    pipe = str(ROOT / "pipelines/demo.yaml")
    plan = run_cli("build", pipe, "-i", str(corpus), "-o", str(out), "--dry-run")
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout == ("dry run: 8 samples in 2 planned shards: 0 complete, 2 to build "
                           "(8 samples; 2 not built yet)\n")
    assert not out.exists() and "starting" not in plan.stderr  # no worker was started

    res = run_cli("build", pipe, "-i", str(corpus), "-o", str(out), "-w", "1")
    assert res.returncode == 0, res.stderr
    first, second = res.stdout.splitlines()
    assert first.startswith("8/8 samples in 2 shards (0 already complete), 0 dropped, ")
    assert second == f"errors by reason: image.corrupt 1 (details in {out / 'errors.jsonl'})"

    same = run_cli("build", pipe, "-i", str(corpus), "-o", str(out), "--dry-run")
    assert same.stdout == ("dry run: 8 samples in 2 planned shards: 2 complete, 0 to build (0 samples); "
                           "nothing to build\n")


def test_dry_run_counts_planned_shards_that_max_bytes_may_split(tmp_path, corpus, demo_doc):
    doc = {**demo_doc, "output": {**demo_doc["output"], "max_bytes": 20000}}
    plan = build(doc, corpus, tmp_path / "out", dry_run=True)
    real = build(doc, corpus, tmp_path / "out", workers=1)
    assert plan["planned_shards"] == 2 and real["shards_built"] == 2  # planned shards, each built once
    assert real["shards"] > 2  # and split into more tars by max_bytes


def test_dry_run_does_not_need_to_write(tmp_path, corpus):
    from mmprep.build import BuildOptions, run_build
    from mmprep.config import parse_pipeline

    ro = tmp_path / "readonly"
    ro.write_text("a file where the cache folder would be")  # the real build refuses it: cannot create
    spec = parse_pipeline(traced(tmp_path))
    plan = run_build(spec, BuildOptions(input=str(corpus), output=str(tmp_path / "out"), cache_dir=str(ro / "c"),
                                        progress=False, dry_run=True))
    assert plan["shards_to_build"] == 3
