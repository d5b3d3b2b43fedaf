"""The local pool tells the driver when its tasks are submitted, so a rebuild's merge imports its
libraries while the workers build the first shards, not after the first one ends."""

from __future__ import annotations

from mmprep.executors import run_local
from tests.conftest import build


def test_submitted_is_called_once_after_the_tasks_are_in_the_pool_and_before_any_result():
    seen: list[int] = []
    results: list[tuple[int, int]] = []

    def submitted() -> None:
        seen.append(len(results))

    for task, result in run_local(abs, [1, -2, 3, -4], 2, submitted=submitted):
        results.append((task, result))
    assert seen == [0]
    assert sorted(results) == [(-4, 4), (-2, 2), (1, 1), (3, 3)]


def test_one_worker_runs_in_the_driver_and_has_nothing_to_wait_for():
    seen: list[bool] = []
    assert list(run_local(abs, [-1, -2], 1, submitted=lambda: seen.append(True))) == [(-1, 1), (-2, 2)]
    assert seen == []


def test_a_rebuild_on_a_pool_has_the_merge_libraries_loaded_before_its_first_shard_ends(tmp_path, monkeypatch):
    from mmprep import build as build_module

    corpus = tmp_path / "corpus"
    for i in range(60):
        (corpus / f"d{i // 20}").mkdir(parents=True, exist_ok=True)
        (corpus / f"d{i // 20}" / f"s{i:03d}.txt").write_text(f"caption {i}")
    doc = {"stages": [{"stage": "text.decode"}], "output": {"name": "t", "max_samples": 20}}
    out = tmp_path / "out"
    build(doc, corpus, out, workers=2)
    for i in (0, 25, 45):
        (corpus / f"d{i // 20}" / f"s{i:03d}.txt").write_text("changed")
    order: list[str] = []
    real_merger, real_preload = build_module.Merger, build_module.preload_merge

    def preload() -> None:
        order.append("preload")
        real_preload()

    class Merger(real_merger):
        def add(self, doc, *, built):
            order.append("merge")
            super().add(doc, built=built)

    monkeypatch.setattr(build_module, "preload_merge", preload)
    monkeypatch.setattr(build_module, "Merger", Merger)
    again = build(doc, corpus, out, workers=2)
    assert again["shards_built"] == 3
    assert order == ["preload", "merge", "merge", "merge"]
