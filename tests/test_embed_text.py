"""Text encoder: equal to the model run directly, bucketing that never changes results, bad text."""

from __future__ import annotations

import numpy as np
import pytest

from mmprep.embed.models import ModelSpec, load_encoder
from mmprep.errors import Drop
from mmprep.testing.embed import captions


@pytest.fixture(scope="module")
def enc():
    return load_encoder(ModelSpec("text", device="cpu", batch_size=8))


def test_equals_sentence_transformers_encode(enc):
    from sentence_transformers import SentenceTransformer

    texts = captions(14, seed=3) + ["word " * 400, "城市夜景 and neon lights"]
    ours, notes = enc.encode([enc.prepare(t) for t in texts])
    ref = SentenceTransformer(enc.model, device="cpu").encode(texts, batch_size=8, convert_to_numpy=True)
    assert ours.shape == (16, 384) and ours.dtype == np.float32
    assert np.abs(ours - ref).max() < 1e-5
    assert np.allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)  # the model ships a Normalize module
    assert notes[14] == {"truncated": True, "tokens": 402, "max_tokens": 256}
    assert [n for i, n in enumerate(notes) if i != 14] == [None] * 15


def test_batch_company_does_not_change_an_embedding(enc):
    alone, _ = enc.encode(["a small cat under a window"])
    mixed, _ = enc.encode(["word " * 300, "x", "a small cat under a window", "two people walking"])
    assert np.abs(alone[0] - mixed[2]).max() < 1e-5


def test_buckets_group_similar_lengths(enc):
    lengths = [3, 90, 4, 60, 5, 200, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 96, 16, 16]
    batches = enc.buckets(lengths)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len(b) <= enc.batch_size for b in batches)
    # CPU: a text joins a batch only within 1/16 of its longest (16 takes 15, 15 takes nothing shorter)
    assert batches == [[5], [16, 1], [3], [15, 17, 18, 14], [13], [12], [11], [10], [9], [8], [7], [6], [4],
                       [2], [0]]


def test_cpu_batches_stay_within_the_token_budget():
    from mmprep.embed.text import CPU_BATCH_TOKENS

    enc = load_encoder(ModelSpec("text", device="cpu", batch_size=1000))
    batches = enc.buckets([20] * 200 + [2000])
    assert batches[0] == [200]  # longer than the budget: alone
    assert [len(b) for b in batches[1:]] == [CPU_BATCH_TOKENS // 20] * 3 + [200 - 3 * (CPU_BATCH_TOKENS // 20)]


def test_concurrent_batches_equal_one_thread_and_keep_the_thread_count(enc):
    import torch

    texts = captions(40, seed=5)
    threads = torch.get_num_threads()
    assert enc.pool is not None or threads == 1
    pooled, _ = enc.encode(texts)
    pool, enc.pool = enc.pool, None
    try:
        inline, _ = enc.encode(texts)
    finally:
        enc.pool = pool
    assert np.abs(pooled - inline).max() < 1e-5
    assert torch.get_num_threads() == threads  # the caller's count is kept...
    if enc.pool is not None:  # ...while each worker's ops run single-threaded
        assert set(enc.pool.map(_threads_here, range(2 * threads))) == {1}


def _threads_here(_: int) -> int:
    import torch

    return torch.get_num_threads()


@pytest.mark.parametrize(("value", "reason"), [("  \n\t", "embed.empty_text"), (b"\xff\xfe\xfa", "embed.undecodable"),
                                               (12, "embed.not_text")])
def test_bad_text_has_reason_code(enc, value, reason):
    with pytest.raises(Drop) as err:
        enc.prepare(value)
    assert err.value.reason == reason
