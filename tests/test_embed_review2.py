"""Embedding review fixes: a max_tokens the tokenizer cannot honour, NaN audio, a checkpoint that had
nowhere to go, and decompression bombs in ``mmprep embed``."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from mmprep.embed.image import decode_rgb
from mmprep.embed.models import ModelSpec, load_encoder
from mmprep.embed.shards import split_member
from mmprep.embed.sidecar import EmbedOptions, SidecarJob
from mmprep.errors import ConfigError, Drop
from mmprep.sample import Audio
from mmprep.stage import make_stage
from mmprep.testing.embed import caption_corpus, raw_build
from mmprep.testing.images import encode, photo, png_bomb
from mmprep.testing.media import tone, wav_bytes, write
from tests.conftest import run_cli


class WaveNet(nn.Module):
    """A module:Class audio model: ``(1, n)`` waveform -> ``(1, 2)`` (scaled mean and mean square)."""

    def __init__(self):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(2))

    def forward(self, x):
        return torch.stack([x.mean(dim=1), (x * x).mean(dim=1)], dim=1) * self.scale


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("embedreview")
    caption_corpus(root / "corpus", 5, bad=True)  # bad_long: 600 words
    write(root / "corpus" / "bomb.png", png_bomb())
    write(root / "corpus" / "bomb.txt", "a caption next to a bomb")
    raw_build(root / "corpus", root / "out", per_shard=4)
    return root / "out"


@pytest.mark.parametrize("limit", [1, 2])
def test_max_tokens_below_the_special_tokens_is_a_config_error(out, limit):
    """With max_tokens 1 the tokenizer cannot cut to the limit (it keeps the text whole): a 600-word
    caption then overflowed the position embeddings and `mmprep embed` died mid-run with a traceback."""
    proc = run_cli("embed", str(out), "--field", "txt", "--max-tokens", str(limit))
    assert proc.returncode == 2, proc.stderr[-500:]
    assert proc.stderr.strip().splitlines() == [
        f"mmprep: config error: max_tokens: {limit} leaves no room for text: the tokenizer adds 2 special "
        "tokens to every input; use at least 3"]
    assert not (out / "embeddings" / "txt_emb").exists()
    with pytest.raises(ConfigError) as err:
        make_stage("embed", field="txt", device="cpu", max_tokens=limit)
    assert err.value.key == "max_tokens"
    enc = load_encoder(ModelSpec("text", device="cpu", max_tokens=3))
    vecs, notes = enc.encode(["word " * 600])
    assert vecs.shape == (1, 384) and notes == [{"truncated": True, "tokens": 602, "max_tokens": 3}]


def test_nan_audio_is_dropped_not_embedded_as_nan():
    enc = load_encoder(ModelSpec("audio", device="cpu"))
    x = tone(1.0)
    x[100] = np.nan
    buf = io.BytesIO()
    import soundfile as sf

    sf.write(buf, x, 16000, format="WAV", subtype="FLOAT")
    for value in (buf.getvalue(), Audio(samples=x, rate=16000)):
        with pytest.raises(Drop) as drop:
            enc.prepare(value)
        assert drop.value.reason == "embed.bad_audio"
        assert drop.value.message == "the audio holds 1 NaN or infinite samples"
    good, _ = enc.encode([enc.prepare(wav_bytes(tone(1.0)))])
    assert np.isfinite(good).all()


def test_a_checkpoint_without_a_module_class_model_is_a_config_error(out, tmp_path):
    """--checkpoint was ignored without a word for a model file, a built-in or a text model (and for any
    audio model): the embeddings were made with weights other than the ones the user gave."""
    ck = tmp_path / "ck.pt"
    torch.save(WaveNet().state_dict(), ck)
    for args in (("--field", "jpg"), ("--field", "txt"), ("--field", "jpg", "--model", "builtin:tiny-cnn")):
        proc = run_cli("embed", str(out), *args, "--checkpoint", str(ck))
        assert proc.returncode == 2, proc.stderr[-500:]
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"mmprep: config error: checkpoint: {ck} cannot be loaded")
    assert not (out / "embeddings" / "jpg_emb").exists() and not (out / "embeddings" / "txt_emb").exists()
    with pytest.raises(ConfigError) as err:
        make_stage("embed", field="jpg", device="cpu", checkpoint=str(ck))
    assert err.value.key == "checkpoint"
    # an audio module:Class model does take it now
    net = WaveNet()
    with torch.no_grad():
        net.scale.copy_(torch.tensor([3.0, -2.0]))
    torch.save(net.state_dict(), ck)
    spec = dict(modality="audio", model="tests.test_embed_review2:WaveNet", device="cpu")
    plain = load_encoder(ModelSpec(**spec))
    loaded = load_encoder(ModelSpec(**spec, checkpoint=str(ck)))
    x = plain.prepare(wav_bytes(tone(0.5)))
    a, b = plain.encode([x])[0][0], loaded.encode([x])[0][0]
    assert np.allclose(b, a * np.array([3.0, -2.0], np.float32), atol=1e-6) and plain.identity != loaded.identity


def test_a_decompression_bomb_is_refused_from_its_header(out):
    """`mmprep embed` decoded image bytes with no size limit: a 300-byte PNG claiming 20000x20000 made
    OpenCV allocate 1.2 GB per image."""
    with pytest.raises(Drop) as drop:
        decode_rgb(png_bomb())
    assert drop.value.reason == "embed.too_large"
    assert drop.value.message.startswith("20000x20000 = 400.0 MP is over 90 MP")
    small = encode(photo(100, 100), "png")
    with pytest.raises(Drop):
        decode_rgb(small, max_pixels=9_999)
    assert decode_rgb(small, max_pixels=10_000).shape == (100, 100, 3)

    enc = load_encoder(ModelSpec("image", device="cpu", size=32))
    res = SidecarJob(out, enc, EmbedOptions(field="png", name="png_emb", progress=False)).run()
    assert (res.samples, res.embedded, res.errors_by_reason) == (9, 0, {"embed.no_field": 8, "embed.too_large": 1})
    docs = {}
    for tar_path in sorted((out / "embeddings" / "png_emb").glob("*.tar")):
        with tarfile.open(tar_path) as tar:
            for m in tar:
                key, ext = split_member(m.name)
                if ext == "png_emb.drop.json":
                    docs[key] = json.loads(tar.extractfile(m).read())["reason"]
    assert docs["bomb"] == "embed.too_large"


def test_m4a_audio_is_embedded_like_the_build_reads_it():
    """Audio bytes went to libsndfile only: every m4a/aac field (kept by the audio pipeline since it
    decodes them with PyAV) was embed.bad_audio."""
    from mmprep.testing.audio import encoded_bytes

    enc = load_encoder(ModelSpec("audio", device="cpu"))
    x = tone(1.0)
    m4a = enc.prepare(encoded_bytes(x, ext="m4a"))
    assert m4a.shape == (16000,)
    a, b = enc.encode([enc.prepare(wav_bytes(x)), m4a])[0]
    assert float(a @ b / np.linalg.norm(a) / np.linalg.norm(b)) > 0.99
    with pytest.raises(Drop) as drop:
        enc.prepare(b"RIFF....WAVE but nothing else")
    assert drop.value.reason == "embed.bad_audio" and "(audio.corrupt)" in drop.value.message


def test_identical_inputs_in_one_shard_are_embedded_once(tmp_path):
    """The docs promise identical inputs are embedded once, but inside one chunk every copy went through
    the model (the cache is only filled after the chunk's model call)."""
    corpus = tmp_path / "corpus"
    texts = {"a0": "a red car", "a1": "a red car", "b0": "word " * 300, "b1": "word " * 300, "c0": "  ",
             "c1": "  ", "d0": "a blue house"}
    for key, text in texts.items():
        write(corpus / f"{key}.txt", text)
    raw_build(corpus, tmp_path / "out", per_shard=10)
    enc = load_encoder(ModelSpec("text", device="cpu"))
    res = SidecarJob(tmp_path / "out", enc, EmbedOptions(field="txt", progress=False, cache_dir="")).run()
    assert (res.samples, res.embedded, res.computed, res.cached, res.dropped, res.truncated) == (7, 5, 3, 2, 2, 2)
    assert res.errors_by_reason == {"embed.truncated": 2, "embed.empty_text": 2}
    vecs = {}
    with tarfile.open(tmp_path / "out" / "embeddings" / "txt_emb" / "emb-000000.tar") as tar:
        for m in tar:
            key, ext = split_member(m.name)
            if ext == "txt_emb.npy":
                vecs[key] = np.load(io.BytesIO(tar.extractfile(m).read()))
    assert sorted(vecs) == ["a0", "a1", "b0", "b1", "d0"]
    want = enc.encode(["a red car", "word " * 300, "a blue house"])[0]
    for key, row in (("a0", 0), ("a1", 0), ("b0", 1), ("b1", 1), ("d0", 2)):
        assert np.abs(vecs[key] - want[row]).max() < 1e-5
    lines = [json.loads(x) for x in (tmp_path / "out" / "embeddings" / "txt_emb" / "errors.jsonl").read_text()
             .splitlines()]
    assert sorted((x["key"], x["reason"]) for x in lines) == [
        ("b0", "embed.truncated"), ("b1", "embed.truncated"), ("c0", "embed.empty_text"), ("c1", "embed.empty_text")]


def test_a_name_that_holds_another_fields_embeddings_is_not_reused(tmp_path):
    """The same model under one --name for a second field found its shards 'complete' (the identity did
    not include the field): it wrote nothing and relabelled the first field's vectors as the second's."""
    corpus = tmp_path / "corpus"
    for i in range(3):
        write(corpus / f"s{i}.txt", f"caption {i} about a dog")
        write(corpus / f"s{i}.title.txt", f"a completely different title number {i}")
    out = tmp_path / "out"
    raw_build(corpus, out, per_shard=3)
    enc = load_encoder(ModelSpec("text", device="cpu"))
    SidecarJob(out, enc, EmbedOptions(field="txt", name="foo", progress=False)).run()
    with pytest.raises(ConfigError) as err:
        SidecarJob(out, enc, EmbedOptions(field="title.txt", name="foo", progress=False))
    assert err.value.key == "--name" and "the embeddings of field 'txt'" in err.value.message
    res = SidecarJob(out, enc, EmbedOptions(field="title.txt", name="foo", force=True, progress=False)).run()
    assert (res.shards_done, res.embedded) == (1, 3)
    with tarfile.open(out / "embeddings" / "foo" / "emb-000000.tar") as tar:
        got = [np.load(io.BytesIO(tar.extractfile(m).read())) for m in tar if m.name.endswith(".npy")]
    want = enc.encode([f"a completely different title number {i}" for i in range(3)])[0]
    assert np.abs(np.stack(got) - want).max() < 1e-5
    assert json.loads((out / "embeddings" / "foo" / "meta.json").read_text())["field"] == "title.txt"
    # without --name each field has its own folder
    res = SidecarJob(out, enc, EmbedOptions(field="txt", progress=False)).run()
    assert res.name == "txt_emb"


class BatchOfOne(nn.Module):
    """Traced with batch 1, as exports often are: the batch size is baked into the reshape."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3, stride=4)

    def forward(self, x):
        return self.conv(x).mean(dim=(2, 3)).view(1, -1)


class Fixed32(nn.Module):
    """Only runs on 32x32 inputs (a linear layer over the flattened feature map)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, stride=4, padding=1)
        self.head = nn.Linear(4 * 8 * 8, 6)

    def forward(self, x):
        return self.head(self.conv(x).flatten(1))


def test_a_model_that_only_takes_batches_of_one_runs_one_image_at_a_time(out, tmp_path, caplog):
    """A TorchScript file traced with batch 1 crashed `mmprep embed` mid-run (could not broadcast (1, 24)
    into (4, 8)) after the first shard's batch had been prepared."""
    torch.manual_seed(0)
    net = BatchOfOne().eval()
    path = tmp_path / "b1.pt"
    torch.jit.trace(net, torch.zeros(1, 3, 32, 32)).save(str(path))
    enc = load_encoder(ModelSpec("image", model=str(path), device="cpu", size=32, normalize=False))
    assert enc.batch_size == 1 and "takes one image per call" in caplog.text
    res = SidecarJob(out, enc, EmbedOptions(field="jpg", name="b1_emb", progress=False)).run()
    assert (res.samples, res.embedded, res.computed) == (9, 7, 7)  # 5 items + bad_blank, bad_long; bad_image
    x = enc.prepare(encode(photo(48, 48, seed=1), "jpg"))
    with torch.no_grad():
        want = net(torch.from_numpy(x[None])).numpy()
    assert np.abs(enc.encode([x, x])[0] - want).max() < 1e-5


def test_a_model_that_cannot_run_at_the_size_is_a_config_error(out, tmp_path):
    """The probe forward at load time raised a RuntimeError out of `mmprep embed` (a traceback, exit 1)."""
    path = tmp_path / "fixed32.pt"
    torch.jit.script(Fixed32().eval()).save(str(path))
    assert load_encoder(ModelSpec("image", model=str(path), device="cpu", size=32)).dim == 6
    proc = run_cli("embed", str(out), "--field", "jpg", "--model", str(path), "--size", "64", "--name", "f32")
    assert proc.returncode == 2, proc.stderr[-800:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(
        f"mmprep: config error: model: {path} does not run on a (1, 3, 64, 64) batch (--size / size 64): ")
    assert not (out / "embeddings" / "f32").exists()
    with pytest.raises(ConfigError) as err:
        make_stage("embed", field="jpg", model=str(path), size=64, device="cpu")
    assert err.value.key == "model" and "(1, 3, 64, 64)" in err.value.message
    make_stage("embed", field="jpg", model=str(path), size=32, device="cpu")
    with pytest.raises(ConfigError) as err:  # an image network given as an audio model
        load_encoder(ModelSpec("audio", model="tests.test_embed_review2:Fixed32", device="cpu"))
    assert err.value.key == "model" and "does not run on a (1, 16000) waveform: " in err.value.message


class NeedsLongClips(nn.Module):
    """An audio model whose first convolution spans 2000 samples (0.125 s at 16 kHz)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 4, 2000, stride=500)

    def forward(self, x):
        return self.conv(x[:, None, :]).mean(dim=2)


def test_a_clip_the_audio_model_cannot_take_drops_only_that_clip(tmp_path):
    """Clips differ in length: one shorter than the model's kernel raised out of encode, crashing
    `mmprep embed` mid-run (and dropping the stage's whole batch as embed.error)."""
    corpus = tmp_path / "corpus"
    write(corpus / "long.wav", wav_bytes(tone(1.0)))
    write(corpus / "short.wav", wav_bytes(tone(0.05)))
    write(corpus / "zlong.wav", wav_bytes(tone(0.5)))
    raw_build(corpus, tmp_path / "out", per_shard=10)
    spec = ModelSpec("audio", model="tests.test_embed_review2:NeedsLongClips", device="cpu")
    enc = load_encoder(spec)
    res = SidecarJob(tmp_path / "out", enc, EmbedOptions(field="wav", progress=False)).run()
    assert (res.samples, res.embedded, res.dropped, list(res.errors_by_reason)) == (3, 2, 1, ["embed.bad_audio"])
    line = json.loads((tmp_path / "out" / "embeddings" / "wav_emb" / "errors.jsonl").read_text())
    assert line["key"] == "short" and line["message"].startswith("the model failed on this 0.050 s clip: ")
    stage = make_stage("embed", field="wav", model="tests.test_embed_review2:NeedsLongClips", device="cpu")
    out = stage.process_batch([{"__key__": k, "wav": wav_bytes(tone(s))} for k, s in (("a", 1.0), ("b", 0.05))])
    assert out[0]["wav_emb.npy"].shape == (4,)
    assert isinstance(out[1], Drop) and (out[1].reason, out[1].field) == ("embed.bad_audio", "wav_emb.npy")


def test_logmel_batches_do_not_pad_short_clips_to_a_long_one():
    """The log-mel batch padded every clip to the longest one: one hour-long recording among 15 short
    clips made 16 hour-long waveforms and spectrograms (about 13 GB)."""
    from mmprep.embed.audio import BATCH_SAMPLES, padded_batches

    assert padded_batches([10, 100, 20, 30, 5], 100) == [[1], [3, 2, 0], [4]]
    assert padded_batches([10, 100, 20, 30, 5], 60) == [[1], [3, 2], [0, 4]]
    lengths = [16000] * 15 + [3600 * 16000]  # fifteen 1 s clips and an hour
    batches = padded_batches(lengths, BATCH_SAMPLES)
    assert batches == [[15], list(range(15))]
    assert all(len(b) * max(lengths[i] for i in b) <= BATCH_SAMPLES for b in batches[1:])
    enc = load_encoder(ModelSpec("audio", device="cpu", batch_size=16))
    clips = [enc.prepare(wav_bytes(tone(s, freq=200 + 100 * i))) for i, s in enumerate((0.2, 40.0, 1.0, 0.03))]
    together = enc.encode(clips)[0]
    alone = np.concatenate([enc.encode([c])[0] for c in clips])
    assert np.abs(together - alone).max() < 1e-4


def test_a_text_model_with_broken_weights_fails_before_any_work(out, tmp_path):
    """A model directory whose model.safetensors is damaged passed the stage's pre-flight check (it only
    hashed the files): every worker batch then failed (all samples embed.error), and `mmprep embed` died
    with a SafetensorError traceback (exit 1)."""
    import shutil

    from mmprep.embed.identity import resolve_text_model

    bad = tmp_path / "model"
    shutil.copytree(resolve_text_model(None), bad)
    (bad / "model.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(ConfigError) as err:
        make_stage("embed", field="txt", model=str(bad), device="cpu")
    assert err.value.key == "model"
    assert err.value.message.startswith(f"{bad / 'model.safetensors'} does not load as safetensors weights")
    proc = run_cli("embed", str(out), "--field", "txt", "--model", str(bad), "--name", "broken")
    assert proc.returncode == 2, proc.stderr[-800:]
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mmprep: config error: model: {bad} does not load")
    assert not (out / "embeddings" / "broken").exists()
    (bad / "tokenizer.json").write_text("{not json")
    with pytest.raises(ConfigError) as err:
        make_stage("embed", field="txt", model=str(bad), device="cpu")
    assert err.value.message.startswith(f"{bad / 'tokenizer.json'} does not load as a tokenizer")


def test_an_implausible_sample_rate_is_a_bad_input_not_a_crash():
    """Rate 0 (PyAV's answer for a stream without one) raised soxr's ValueError out of prepare (the
    stage's whole batch failed, `mmprep embed` crashed); a header claiming 1 Hz was resampled 16000-fold."""
    enc = load_encoder(ModelSpec("audio", device="cpu"))
    for rate in (0, 1, 999, 400_000):
        with pytest.raises(Drop) as drop:
            enc.prepare(Audio(samples=np.full(100, 0.1, np.float32), rate=rate))
        assert drop.value.reason == "embed.bad_audio"
        assert drop.value.message == f"implausible sample rate {rate} Hz (outside 1000-384000)"
    assert enc.prepare(Audio(samples=np.full(1000, 0.1, np.float32), rate=1000)).shape == (16000,)


def test_a_main_shard_replaced_while_it_is_embedded_is_redone_next_run(tmp_path, monkeypatch):
    """The shard's size/mtime were recorded after its embeddings were computed: a build replacing the
    shard meanwhile left vectors of the old shard recorded as matching the new one (never redone)."""
    import os

    import mmprep.embed.sidecar as sidecar

    corpus = tmp_path / "corpus"
    for i in range(3):
        write(corpus / f"s{i}.txt", f"caption number {i}")
    out = tmp_path / "out"
    raw_build(corpus, out, per_shard=10)
    shard = out / "shards" / "emb-000000.tar"
    read = sidecar.read_field

    def read_then_replaced(path, field):  # a concurrent rebuild: new bytes and mtime after the read
        rows = list(read(path, field))
        os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 5_000_000_000))
        return iter(rows)

    enc = load_encoder(ModelSpec("text", device="cpu"))
    monkeypatch.setattr(sidecar, "read_field", read_then_replaced)
    SidecarJob(out, enc, EmbedOptions(field="txt", progress=False)).run()
    monkeypatch.setattr(sidecar, "read_field", read)
    again = SidecarJob(out, enc, EmbedOptions(field="txt", progress=False)).run()
    assert (again.shards_done, again.shards_skipped) == (1, 0)
    third = SidecarJob(out, enc, EmbedOptions(field="txt", progress=False)).run()
    assert (third.shards_done, third.shards_skipped) == (0, 1)
    assert json.loads((out / "embeddings" / "txt_emb" / "meta.json").read_text())["shards"][shard.name]["source"][
        "mtime_ns"] == shard.stat().st_mtime_ns


def test_sidecars_of_removed_main_shards_go_even_after_force(tmp_path):
    """With --force (or a name taken over by another model) the meta starts empty, so sidecars of main
    shards a rebuild removed were kept: --check read their stale keys as well."""
    from mmprep.embed.check import load_sidecar

    corpus = tmp_path / "corpus"
    for i in range(6):
        write(corpus / f"s{i}.txt", f"caption number {i}")
    out = tmp_path / "out"
    raw_build(corpus, out, per_shard=3)
    enc = load_encoder(ModelSpec("text", device="cpu"))
    SidecarJob(out, enc, EmbedOptions(field="txt", progress=False)).run()
    cars = out / "embeddings" / "txt_emb"
    assert sorted(p.name for p in cars.glob("*.tar")) == ["emb-000000.tar", "emb-000001.tar"]
    for i in range(3, 6):
        (corpus / f"s{i}.txt").unlink()
    raw_build(corpus, out, per_shard=3)
    assert sorted(p.name for p in (out / "shards").glob("*.tar")) == ["emb-000000.tar"]
    SidecarJob(out, enc, EmbedOptions(field="txt", force=True, progress=False)).run()
    assert sorted(p.name for p in cars.glob("*.tar")) == ["emb-000000.tar"]
    keys, vecs = load_sidecar(out, "txt_emb")
    assert keys == ["s0", "s1", "s2"] and vecs.shape == (3, 384)


class Loud(nn.Module):
    """Channel means times 1e6: fine in float32, beyond float16's range."""

    def forward(self, x):
        return x.mean(dim=(2, 3)) * 1e6 + 1.0


class Broken(nn.Module):
    """Weights gone bad: every output is NaN."""

    def forward(self, x):
        return x.mean(dim=(2, 3)) * float("nan")


def test_nan_or_float16_overflowing_embeddings_are_dropped(out):
    """A model giving NaN, or values over 65504 stored as float16, wrote NaN / inf vectors into the shards
    without a word."""
    loud = dict(modality="image", model="tests.test_embed_review2:Loud", device="cpu", size=16, normalize=False)
    enc = load_encoder(ModelSpec(**loud))
    res = SidecarJob(out, enc, EmbedOptions(field="jpg", name="loud16", dtype="float16", progress=False)).run()
    assert (res.embedded, res.errors_by_reason.get("embed.nonfinite")) == (0, 7)
    lines = [json.loads(x) for x in (out / "embeddings" / "loud16" / "errors.jsonl").read_text().splitlines()]
    over = [x for x in lines if x["reason"] == "embed.nonfinite"]
    assert len(over) == 7 and over[0]["message"].endswith("do not fit float16 (65504): use float32 or normalize")
    res = SidecarJob(out, enc, EmbedOptions(field="jpg", name="loud32", progress=False)).run()
    assert res.embedded == 7 and "embed.nonfinite" not in res.errors_by_reason
    broken = load_encoder(ModelSpec(**{**loud, "model": "tests.test_embed_review2:Broken"}))
    res = SidecarJob(out, broken, EmbedOptions(field="jpg", name="broken", progress=False)).run()
    assert (res.embedded, res.errors_by_reason.get("embed.nonfinite")) == (0, 7)
    stage = make_stage("embed", field="jpg", model="tests.test_embed_review2:Loud", size=16, normalize=False,
                       dtype="float16", device="cpu")
    got = stage.process_batch([{"__key__": "a", "jpg": encode(photo(32, 32), "jpg")}])
    assert isinstance(got[0], Drop) and (got[0].reason, got[0].field) == ("embed.nonfinite", "jpg_emb.npy")
