"""``on_error="drop"``: bad samples skipped and not made up for (one rank only), resume still exact."""

from __future__ import annotations

import pytest

from mmprep.errors import ConfigError
from tests.test_data_review import stopped
from tests.test_data_review2 import BAD, _batches, _build, _loader, _stream


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("drop") / "out"
    return out, _build(out, 19, BAD, 4)


@pytest.mark.parametrize("workers", [0, 2])
def test_drop_yields_every_good_sample_once_and_nothing_else(built, workers):
    out, keys = built
    loader = _loader(out, workers, on_error="drop")
    got = [k for b in _batches(loader) for k in b]
    assert sorted(got) == sorted(set(keys) - BAD)  # no repeats, no bad ones
    assert loader.skipped == len(BAD)


@pytest.mark.parametrize("workers", [0, 2])
def test_drop_resumes_exactly(built, workers):
    out, _ = built
    ref = _loader(out, workers, on_error="drop")
    ref.set_epoch(1)
    reference = [k for b in _batches(ref) for k in b]
    for stop in range(1, len(reference) // 2):
        first = _loader(out, workers, on_error="drop")
        first.set_epoch(1)
        seen, state = stopped(first, stop)
        resumed = _loader(out, workers, on_error="drop")
        resumed.load_state_dict(state)
        assert seen + [k for b in _batches(resumed) for k in b] == reference, stop


def test_drop_is_refused_for_several_ranks(built):
    out, _ = built
    with pytest.raises(ConfigError, match="on_error: 'drop' would leave the 2 ranks"):
        _stream(out, world=2, rank=0, on_error="drop")
