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
