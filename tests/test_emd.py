"""The adjacent-frame EMD of Table 5 (ila.emd) against cases with known answers."""

import numpy as np
import pytest
import torch

from ila.emd import EMDNotOptimal, EMDOptions, adjacent_frame_emd, frame_clouds, wasserstein1


def _cloud(n=20, d=6, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d))


def test_identical_and_permuted_clouds_are_at_distance_zero():
    x = _cloud()
    assert wasserstein1(x, x) == pytest.approx(0, abs=1e-6)
    assert wasserstein1(x, x[np.random.default_rng(1).permutation(len(x))]) == pytest.approx(0, abs=1e-6)


def test_a_shifted_cloud_is_at_the_shift_length_under_w1():
    """W1 of a translate is the translation's length (the identity coupling attains the duality bound); squared
    Euclidean costs, ot.dist's default, would give its square."""
    x = _cloud()
    shift = np.array([3.0, 4.0, 0, 0, 0, 0])  # length 5
    assert wasserstein1(x, x + shift) == pytest.approx(5.0, abs=1e-9)


def test_the_solver_stopping_early_is_an_error_not_a_number():
    x, y = _cloud(300, 8, 0), _cloud(300, 8, 1) + 1
    with pytest.raises(EMDNotOptimal, match="raise emd num_itermax"):
        wasserstein1(x, y, num_itermax=100)


def test_adjacent_frames_average_and_normalisation():
    base = torch.tensor(_cloud(16, 8))
    frames = torch.stack([base, base * 3.0, base * 3.0 + 1.0])  # [T=3, N, D]
    raw = adjacent_frame_emd(frame_clouds(frames, EMDOptions(normalize=False)), EMDOptions(normalize=False))
    norm_opts = EMDOptions()
    normed_clouds = frame_clouds(frames, norm_opts)
    # A rescaled frame is the same cloud once tokens are L2-normalised: only the shifted pair counts.
    expected = (0 + wasserstein1(normed_clouds[1], normed_clouds[2])) / 2
    assert adjacent_frame_emd(normed_clouds, norm_opts) == pytest.approx(expected)
    assert raw > adjacent_frame_emd(normed_clouds, norm_opts)
    with pytest.raises(ValueError, match="metric"):
        EMDOptions(metric="manhattan").validate()
