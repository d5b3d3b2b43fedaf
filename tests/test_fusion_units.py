"""Small pieces of the trainer: key-hash split, metrics, encoders with padding, config errors."""

from __future__ import annotations

import pytest
import torch

from mmprep.errors import ConfigError
from mmprep.fusion import parse_config
from mmprep.fusion.encoders import BagEncoder, ConvSeqEncoder, GRUSeqEncoder
from mmprep.fusion.metrics import classification_metrics
from mmprep.fusion.trainer import in_val


def test_validation_split_by_key_hash_is_stable_and_sized():
    keys = [f"part{i % 3}/item{i:05d}" for i in range(2000)]
    held = [k for k in keys if in_val(k, 0.2)]
    assert 0.17 * 2000 <= len(held) <= 0.23 * 2000
    assert held == [k for k in keys if in_val(k, 0.2)]
    assert set(held) <= {k for k in keys if in_val(k, 0.5)}  # a larger fraction holds out a superset
    assert not any(in_val(k, 0.0) for k in keys)


def test_classification_metrics_exact():
    m = classification_metrics([0, 1, 1, 2, 2, 2], [0, 1, 2, 2, 2, 0], 3)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["confusion"] == [[1, 0, 1], [0, 1, 0], [0, 1, 2]]
    # F1: class0 2*1/(2+0+1)=2/3, class1 2*1/(2+1+0)=2/3, class2 2*2/(4+1+1)=2/3
    assert m["macro_f1"] == pytest.approx(2 / 3)


@pytest.mark.parametrize("cls", [ConvSeqEncoder, GRUSeqEncoder])
def test_sequence_encoders_ignore_padding(cls):
    torch.manual_seed(0)
    enc = cls(13, 8).eval()
    x = torch.randn(2, 13, 6)
    mask = torch.tensor([[True] * 6, [True] * 3 + [False] * 3])
    base = enc(x, mask)
    x2 = x.clone()
    x2[1, :, 3:] = 100.0  # garbage in the padding of sample 1
    assert torch.allclose(enc(x2, mask), base, atol=1e-5)
    alone = enc(x[1:, :, :3], None)  # the same sample with no padding at all
    assert torch.allclose(alone[0], base[1], atol=1e-5)


def test_bag_encoder_ignores_padding_tokens():
    enc = BagEncoder(50, 4)
    ids = torch.tensor([[3, 4, 0], [3, 4, 9]])
    mask = torch.tensor([[True, True, False], [True, True, False]])
    out = enc(ids, mask)
    assert torch.allclose(out[0], out[1])
    assert torch.allclose(out[0], enc.bag.weight[[3, 4]].mean(0), atol=1e-6)


@pytest.mark.parametrize("doc,key", [
    ({"data": {"source": "x"}, "modalities": {}}, "modalities"),
    ({"data": {"source": "x"}, "modalities": {"a": {"field": "jpg", "encoder": "resnet"}}}, "modalities.a.encoder"),
    ({"data": {"source": "x"}, "modalities": {"a": {"field": "jpg", "encoder": "cnn"}},
      "loss": {"matching": {"between": ["a", "b"]}}}, "loss.matching.between"),
    ({"data": {"source": "x", "val_fraction": 1.5}, "modalities": {"a": {"field": "jpg", "encoder": "cnn"}}},
     "data.val_fraction"),
])
def test_config_errors_name_the_key(doc, key):
    with pytest.raises(ConfigError) as err:
        parse_config(doc)
    assert err.value.key == key
