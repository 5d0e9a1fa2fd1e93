"""Statistics for comparing table rows: seeds, confidence intervals, paired tests over videos, rank agreement.

A row is trained with several seeds and every seed is evaluated on the same validation videos. Two kinds of
uncertainty follow, and the tables report both:

* across seeds (how much a row's score moves when only the seed changes): the mean of the seeds' scores with a
  Student-t 95% interval (:func:`mean_ci`);
* across videos, for a difference between two rows: per video, the difference of the two rows' outcomes averaged
  over seeds (seed ``s`` of one row paired with seed ``s`` of the other), then a paired bootstrap over videos for the
  interval and a sign-flip permutation test for the p-value (:func:`paired_difference`). Resampling whole videos
  keeps a video's seeds together, so neither the videos nor the seeds are treated as more independent than they are.

Every random draw comes from a fixed seed: the same inputs give the same intervals and p-values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

CONFIDENCE = 0.95
RESAMPLES = 10_000


@dataclass
class MeanCI:
    mean: float
    low: float | None  # None with a single seed: no spread to estimate
    high: float | None
    n: int

    @property
    def half_width(self) -> float | None:
        return None if self.low is None else (self.high - self.low) / 2


def mean_ci(values, confidence: float = CONFIDENCE) -> MeanCI:
    """Mean of per-seed values with a Student-t interval."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    if x.size == 0:
        raise ValueError("mean_ci: no values")
    if x.size == 1:
        return MeanCI(float(x[0]), None, None, 1)
    half = stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    return MeanCI(float(x.mean()), float(x.mean() - half), float(x.mean() + half), int(x.size))


@dataclass
class PairedDifference:
    diff: float  # mean over videos of (row - reference), each video's outcome averaged over seeds (or the contrast)
    low: float
    high: float
    p_value: float  # two-sided, sign-flip permutation over videos
    n_videos: int
    n_seeds: int

    def significant(self, alpha: float = 1 - CONFIDENCE) -> bool:
        return self.p_value < alpha


def paired_difference(row: np.ndarray, reference: np.ndarray, confidence: float = CONFIDENCE,
                      resamples: int = RESAMPLES, seed: int = 0, weights: np.ndarray | None = None) -> PairedDifference:
    """``row``, ``reference``: outcomes ``[seeds, videos]`` (e.g. 1 = correct) on the same videos in the same order,
    seed ``s`` of one paired with seed ``s`` of the other.

    The statistic is the mean per-video difference, or with ``weights [videos]`` the contrast ``sum(w * d)`` (e.g.
    the temporal score, accuracy on one group of videos minus accuracy on another: ``w = 1/n_T`` on the first group,
    ``-1/n_S`` on the second, 0 elsewhere). The bootstrap then resamples videos within each set of equal weight, so
    every resample keeps the groups' sizes and the contrast its meaning."""
    row, reference = np.asarray(row, dtype=float), np.asarray(reference, dtype=float)
    if row.shape != reference.shape or row.ndim != 2:
        raise ValueError(f"paired_difference: expected two [seeds, videos] arrays of one shape, got {row.shape} "
                         f"and {reference.shape}")
    per_video = (row - reference).mean(0)
    n = per_video.size
    rng = np.random.default_rng(seed)
    alpha = 1 - confidence
    if weights is None:
        boot = per_video[rng.integers(0, n, size=(resamples, n))].mean(1)
        estimate = float(per_video.mean())
        signs = rng.choice([-1.0, 1.0], size=(resamples, n))
        null = np.abs((signs * per_video).mean(1))
    else:
        w = np.asarray(weights, dtype=float)
        if w.shape != (n,):
            raise ValueError(f"paired_difference: expected {n} weights, got shape {w.shape}")
        boot = np.zeros(resamples)
        for value in np.unique(w[w != 0]):
            members = np.flatnonzero(w == value)
            boot += value * per_video[members[rng.integers(0, members.size, size=(resamples, members.size))]].sum(1)
        estimate = float(w @ per_video)
        signs = rng.choice([-1.0, 1.0], size=(resamples, n))
        null = np.abs((signs * per_video) @ w)
    low, high = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    p = (1 + np.count_nonzero(null >= abs(estimate) - 1e-12)) / (resamples + 1)
    return PairedDifference(estimate, float(low), float(high), float(p), n, row.shape[0])


def proportion_vs_chance(hits: np.ndarray, chance: float = 0.5, confidence: float = CONFIDENCE,
                         resamples: int = RESAMPLES, seed: int = 0) -> PairedDifference:
    """A rate (e.g. twin-order accuracy) against chance: ``hits [seeds, videos]`` of 0/1, bootstrap over videos,
    and the sign-flip test of the per-video excess over ``chance``."""
    hits = np.asarray(hits, dtype=float)
    return paired_difference(hits, np.full_like(hits, chance), confidence, resamples, seed)


@dataclass
class RankAgreement:
    tau: float | None
    p_value: float | None
    n: int


def kendall_tau(ours, paper) -> RankAgreement:
    """Kendall's tau-b between our row order and the paper's (rows where both have a number)."""
    pairs = [(a, b) for a, b in zip(ours, paper, strict=False) if a is not None and b is not None]
    if len(pairs) < 3:
        return RankAgreement(None, None, len(pairs))
    res = stats.kendalltau([a for a, _ in pairs], [b for _, b in pairs])
    tau = None if np.isnan(res.statistic) else float(res.statistic)
    p = None if np.isnan(res.pvalue) else float(res.pvalue)
    return RankAgreement(tau, p, len(pairs))
