import numpy as np
import pytest
import torch

from ila.data.sampling import eval_indices, train_indices


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("strategy", ["segment", "uniform"])
@pytest.mark.parametrize("n,t", [(16, 8), (300, 8), (100, 16), (7, 8), (3, 16), (1, 8), (8, 8)])
def test_indices_in_bounds_and_ordered(strategy, n, t):
    for seed in range(20):
        for idx in (train_indices(n, t, strategy, _g(seed)), eval_indices(n, t, strategy)):
            assert len(idx) == t
            assert all(0 <= i < n for i in idx)
            assert idx == sorted(idx)


@pytest.mark.parametrize("n,t", [(16, 8), (300, 8), (100, 16), (8, 8)])
def test_segment_training_takes_one_frame_per_segment(n, t):
    seen = set()
    for seed in range(50):
        idx = train_indices(n, t, "segment", _g(seed))
        for k, i in enumerate(idx):
            assert k * n / t - 1 < i < (k + 1) * n / t, (k, i)
        seen.add(tuple(idx))
    if n > t:
        assert len(seen) > 1  # offsets are random


def test_segment_offsets_are_independent_but_uniform_shares_one_stride():
    n, t = 160, 8
    seg_diffs, uni_diffs = set(), set()
    for seed in range(30):
        seg_diffs.update(np.diff(train_indices(n, t, "segment", _g(seed))).tolist())
        uni_diffs.update(np.diff(train_indices(n, t, "uniform", _g(seed))).tolist())
    assert uni_diffs == {20}
    assert len(seg_diffs) > 5


def test_centre_and_multi_clip_views_are_deterministic():
    assert eval_indices(16, 8, "segment") == [1, 3, 5, 7, 9, 11, 13, 15]
    clips = [eval_indices(160, 8, "segment", k, 4) for k in range(4)]
    assert [c[0] for c in clips] == [2, 7, 12, 17]
    assert clips == [eval_indices(160, 8, "segment", k, 4) for k in range(4)]


def test_more_frames_than_video_repeats_frames():
    idx = eval_indices(3, 8, "segment")
    assert set(idx) == {0, 1, 2} and len(idx) == 8


def test_same_generator_seed_same_indices_and_bad_args():
    assert train_indices(300, 8, "segment", _g(5)) == train_indices(300, 8, "segment", _g(5))
    with pytest.raises(ValueError):
        train_indices(10, 8, "dense", _g())
    with pytest.raises(ValueError):
        eval_indices(0, 8, "segment")
    with pytest.raises(ValueError):
        eval_indices(10, 8, "segment", clip=4, num_clips=4)
