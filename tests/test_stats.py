"""ila.stats against cases with known answers."""

import numpy as np
import pytest
from scipy import stats as sps

from ila.stats import kendall_tau, mean_ci, paired_difference, proportion_vs_chance


def test_mean_ci_is_the_student_t_interval():
    ci = mean_ci([1.0, 2.0, 3.0])
    half = sps.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)
    assert ci.mean == 2.0 and ci.n == 3
    assert ci.low == pytest.approx(2 - half) and ci.high == pytest.approx(2 + half)
    single = mean_ci([0.4])
    assert single.mean == 0.4 and single.low is None and single.half_width is None
    with pytest.raises(ValueError):
        mean_ci([])


def test_paired_difference_known_cases():
    rng = np.random.default_rng(0)
    ref = (rng.random((3, 300)) < 0.5).astype(float)
    same = paired_difference(ref, ref)
    assert same.diff == 0 and same.low == 0 and same.high == 0 and same.p_value == 1.0
    better = paired_difference(np.ones_like(ref), np.zeros_like(ref))
    assert better.diff == 1 and better.low == better.high == 1 and better.p_value < 0.001 and better.significant()
    # Two independent coins: no effect, so the interval covers 0 and the test does not reject.
    other = (rng.random((3, 300)) < 0.5).astype(float)
    null = paired_difference(other, ref)
    assert null.low < 0 < null.high and null.p_value > 0.05 and not null.significant()
    assert (null.n_videos, null.n_seeds) == (300, 3)
    # A real 10-point gain on 300 videos is found.
    gain = np.where(rng.random((3, 300)) < 0.2, 1.0, ref)
    found = paired_difference(gain, ref)
    assert found.low > 0 and found.p_value < 0.01
    assert paired_difference(gain, ref) == found  # fixed seed: the same interval and p-value every time


def test_paired_difference_needs_the_same_videos_and_seeds():
    ref = np.zeros((3, 200))
    with pytest.raises(ValueError, match="one shape"):
        paired_difference(ref[:, :50], ref)
    with pytest.raises(ValueError, match="one shape"):
        paired_difference(ref[0], ref[0])


def test_proportion_vs_chance():
    assert proportion_vs_chance(np.ones((2, 100))).p_value < 0.001
    rng = np.random.default_rng(1)
    coin = (rng.random((3, 400)) < 0.5).astype(float)
    res = proportion_vs_chance(coin)
    assert res.p_value > 0.05 and res.low < 0 < res.high


def test_kendall_tau():
    assert kendall_tau([1, 2, 3, 4], [10, 20, 30, 40]).tau == pytest.approx(1.0)
    rev = kendall_tau([1, 2, 3, 4], [40, 30, 20, 10])
    assert rev.tau == pytest.approx(-1.0) and rev.n == 4
    assert kendall_tau([1, 2, None, 3, 4], [10, None, 30, 40, 50]).n == 3  # rows without both numbers left out
    assert kendall_tau([1, 2], [1, 2]).tau is None


def test_weighted_contrast_is_a_difference_of_group_accuracies():
    """The temporal score's test: accuracy on group T minus accuracy on group S, compared between two rows."""
    rng = np.random.default_rng(3)
    groups = np.array(["T"] * 200 + ["S"] * 100 + [""] * 50)
    weights = np.where(groups == "T", 1 / 200, np.where(groups == "S", -1 / 100, 0.0))
    ref = (rng.random((3, 350)) < 0.6).astype(float)
    # The row gains on every temporal video it got wrong, nothing elsewhere: its score rises by ref's T error rate.
    row = np.where(groups == "T", 1.0, ref)
    d = paired_difference(row, ref, weights=weights)
    expected = (1 - ref[:, groups == "T"]).mean()
    assert d.diff == pytest.approx(expected) and d.low > 0 and d.p_value < 0.001
    # Only the group means enter: a change on ungrouped videos moves nothing.
    noise = np.where(groups == "", 1 - ref, ref)
    same = paired_difference(noise, ref, weights=weights)
    assert same.diff == 0 and same.low == same.high == 0
    # Equal gains on both groups cancel (a static improvement is not a temporal one).
    both = np.where(groups != "", 1.0, ref)
    both_gain = paired_difference(both, ref, weights=weights)
    assert both_gain.diff == pytest.approx((1 - ref[:, groups == "T"]).mean() - (1 - ref[:, groups == "S"]).mean())
    with pytest.raises(ValueError, match="weights"):
        paired_difference(row, ref, weights=weights[:10])
