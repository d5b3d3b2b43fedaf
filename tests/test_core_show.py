"""``mmprep show OUT``: a finished build summarized from its own files."""

from __future__ import annotations

import json

from tests.conftest import build, run_cli


def test_show_counts_fields_stages_and_reasons_with_examples(tmp_path, corpus, demo_doc):
    (corpus / "part0" / "item0002.jpg").write_bytes(b"\xff\xd8\xff\xe0 not a jpeg")
    (corpus / "part1" / "item0003.txt").unlink()  # the caption is required: the sample is dropped
    out = tmp_path / "out"
    summary = build(demo_doc, corpus, out, workers=1)

    res = run_cli("show", str(out), "--json", "--examples", "1")
    assert res.returncode == 0, res.stderr
    view = json.loads(res.stdout)
    assert (view["samples_in"], view["samples_out"], view["samples_dropped"], view["fields_omitted"]) == (8, 7, 1, 1)
    assert view["shards"] == summary["shards"] == 2
    assert view["fields"]["txt"] == 7 and view["fields"]["jpg"] == 6 and view["fields"]["wav"] == 7
    assert view["status"] == {"ok": 6, "partial": 1}
    assert view["reasons"] == {
        "field.missing": {"count": 1, "stage": "output", "action": "dropped",
                          "examples": [{"key": "part1/item0003", "message": "required field(s) missing: txt"}]},
        "image.corrupt": {"count": 1, "stage": "image.decode", "action": "omitted",
                          "examples": [{"key": "part0/item0002", "message": view["reasons"]["image.corrupt"]
                                        ["examples"][0]["message"]}]},
    }
    assert view["stages"]["image.decode"]["omitted"] == {"image.corrupt": 1}

    text = run_cli("show", str(out)).stdout.splitlines()
    assert text[0].startswith(f"{out}: 7/8 samples in 2 shards (") and text[0].endswith(
        "): 1 dropped, 0 in failed shards, 1 field(s) omitted")
    assert "stage            in  out  skipped  cached  dropped  omitted  seconds" in text
    assert any(line.startswith("output") and line.split()[-3:] == ["1", "0", "-"] for line in text)
    assert any(line.split()[:4] == ["field.missing", "1", "output", "dropped"]
               and line.endswith("part1/item0003: required field(s) missing: txt") for line in text)


def test_show_on_a_folder_that_is_no_build_is_a_config_error(tmp_path):
    res = run_cli("show", str(tmp_path))
    assert res.returncode == 2
    assert res.stderr.strip().splitlines() == [
        f"mmprep: config error: OUT: {tmp_path} has no stats.json: not a finished mmprep build (or one still "
        "running: stats.json is written when it ends)"]


def test_show_passes_over_lines_of_errors_jsonl_that_are_no_object(tmp_path, corpus, demo_doc):
    out = tmp_path / "out"
    build(demo_doc, corpus, out, workers=1)
    with open(out / "errors.jsonl", "a", encoding="utf-8") as fh:
        fh.write('[1, 2]\n"text"\nnot json\n{"key": "k", "reason": "x.y", "message": "m"}\n')
    view = json.loads(run_cli("show", str(out), "--json").stdout)
    assert view["reasons"] == {"x.y": {"count": 1, "stage": None, "action": None,
                                       "examples": [{"key": "k", "message": "m"}]}}
