"""Image/audio model loading: import path + checkpoint, declared preprocessing, errors naming the file."""

from __future__ import annotations

import numpy as np
import pytest

from mmprep.embed.image import preprocess
from mmprep.embed.modelfile import tiny_cnn
from mmprep.embed.models import ModelSpec, load_encoder, modality_of
from mmprep.errors import ConfigError, Drop
from mmprep.sample import Image
from mmprep.testing.embed import save_torchscript_cnn
from mmprep.testing.media import image_bytes


def test_import_path_with_checkpoint(tmp_path):
    import torch

    net = tiny_cnn()
    with torch.no_grad():
        for p in net.parameters():
            p.mul_(-1.5)  # weights unlike the seeded defaults, so the checkpoint visibly applies
    torch.save(net.state_dict(), tmp_path / "ck.pt")
    enc = load_encoder(ModelSpec("image", model="mmprep.embed.modelfile:tiny_cnn", checkpoint=str(tmp_path / "ck.pt"),
                                 device="cpu", size=40, normalize=False))
    x = enc.prepare(image_bytes(64, 48, seed=3))
    assert x.shape == (3, 40, 40) and x.dtype == np.float32
    got, _ = enc.encode([x])
    want = net(torch.from_numpy(x[None])).detach().numpy()
    assert np.abs(got - want).max() < 1e-5
    default = load_encoder(ModelSpec("image", model="mmprep.embed.modelfile:tiny_cnn", device="cpu", size=40))
    assert default.identity != enc.identity

    torch.save({"nope": torch.zeros(1)}, tmp_path / "wrong.pt")
    with pytest.raises(ConfigError) as err:
        load_encoder(ModelSpec("image", model="mmprep.embed.modelfile:tiny_cnn", checkpoint=str(tmp_path / "wrong.pt")))
    assert err.value.key == "checkpoint" and "wrong.pt" in err.value.message


def test_torchscript_file_is_frozen_on_cpu_and_equals_the_file(tmp_path):
    import torch
    from torch import nn

    from mmprep.embed.modelfile import load_model_file

    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, 2, 1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
                        nn.Conv2d(8, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
    with torch.no_grad():  # batch-norm statistics unlike the identity, so folding them visibly matters
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
    path = tmp_path / "bn.pt"
    torch.jit.script(net.eval()).save(str(path))
    loaded = load_model_file(str(path), device="cpu")
    assert "aten::batch_norm" not in str(loaded.module.graph)  # folded into the convolutions
    x = np.random.default_rng(0).standard_normal((5, 3, 40, 40)).astype(np.float32)
    with torch.inference_mode():
        want = torch.jit.load(str(path)).eval()(torch.from_numpy(x)).numpy()
    got = loaded.forward(x)
    assert got.shape == (5, 16) and np.abs(got - want).max() < 1e-5
    assert np.abs(loaded.forward(x[2:3]) - want[2:3]).max() < 1e-5  # a batch of one as well


def test_preprocessing_is_declared_and_part_of_identity(tmp_path):
    model = str(save_torchscript_cnn(tmp_path / "cnn.pt"))
    a = load_encoder(ModelSpec("image", model=model, device="cpu", size=32))
    b = load_encoder(ModelSpec("image", model=model, device="cpu", size=32, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5)))
    assert a.model_hash == b.model_hash and a.identity != b.identity
    pixels = np.full((10, 20, 3), 255, np.uint8)
    out = preprocess(pixels, size=8, mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    assert out.shape == (3, 8, 8) and np.allclose(out, 1.0)  # (1 - 0.5) / 0.5
    grey = a.prepare(Image(pixels=pixels[:, :, 0]))  # single-channel input is widened to RGB
    assert grey.shape == (3, 32, 32)
    with pytest.raises(Drop) as err:
        a.prepare(Image(pixels=np.zeros((0, 5, 3), np.uint8)))
    assert err.value.reason == "embed.bad_image"


def test_errors_name_what_is_wrong(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_encoder(ModelSpec("image", model=str(tmp_path / "missing.pt")))
    with pytest.raises(ConfigError, match="modality"):
        modality_of("meta.json")
    with pytest.raises(ConfigError) as err:
        load_encoder(ModelSpec("text", model=str(tmp_path)))
    assert err.value.key == "model" and str(tmp_path) in err.value.message
    with pytest.raises(ConfigError) as err:
        load_encoder(ModelSpec("image", device="tpu"))
    assert err.value.key == "device"
