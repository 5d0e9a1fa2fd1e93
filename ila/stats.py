"""Statistics for comparing table rows, with a training run as the unit of replication.

What the tables claim is about a *method*: "row A scores higher than row B" should hold for another training of each
(another initialisation of the new layers, another data order, other augmentations) and on other videos of the same
kind. A row is trained with several seeds and every seed is evaluated on the same validation videos, so a difference
between two rows has two sources of sampling error, and both must enter its interval and its test:

* **seeds**: how much the difference moves from one pair of trainings to the next;
* **videos**: which videos happened to be in the validation set.

The design is crossed (every seed sees every video) and paired (seed ``s`` of one row with seed ``s`` of the other,
video ``v`` with video ``v``). Write the paired differences ``D[s, v]`` as a two-way random-effects model,
``D = mu + a_s + b_v + e_sv`` (seed effect, video effect, and the seed-by-video rest: on which videos a particular
training flips its answer). The estimate is the mean ``mean(D)``; its variance is

    Var = s2_a / S + s2_b / V + s2_e / (S V)

and the balanced two-way ANOVA gives it without bias from the mean squares of seeds, videos and residual:
``Var_hat = (MS_seed + MS_video - MS_resid) / (S V)``. The interval is ``mean +- t * sqrt(Var_hat)`` and the test a
t test, with Satterthwaite's degrees of freedom for that combination of mean squares (computed with the seed term at
its upper 75% confidence bound, which keeps the test honest at 2-3 seeds: see :func:`_satterthwaite`); with a large
seed effect they approach ``S - 1``, as they must: then there are only S independent trainings to learn from.

Why this and not the alternatives the issue offered:

* the bootstrap over videos of seed-averaged differences (this module's previous method) leaves ``s2_a`` out: it
  answers "do these S trained models differ on more videos like these" and, once seeds differ, its intervals are far
  too narrow (``tests/test_stats.py`` shows it covering the true difference in well under 93% of simulated tables);
* a two-level bootstrap (seeds, then videos) cannot be trusted at 2-3 seeds: resampling 3 values has 10 distinct
  outcomes, so its quantiles are coarse and too narrow (a bootstrap of S values underestimates the spread by a
  factor (S-1)/S before any quantile error);
* a t interval over the S per-seed differences alone leaves ``s2_b / V`` out (the videos are the same for every
  seed), which matters when the seed effect is small;
* a mixed model fitted by REML gives the same variance estimate for a balanced design and would need statsmodels.

The simulation tests (``tests/test_stats.py``) check the claim that matters: over thousands of tables generated with
known seed and video variances, the 95% interval covers the true difference 93-97% of the time and the test rejects a
true null at most 5% of the time (plus Monte Carlo error), at the seed counts the profiles use.

Contrasts (Table 13's temporal score, accuracy on one group of videos minus accuracy on another) use per-video
weights; the video term is then taken within each group of equal weight, so that only the groups' own spread enters.
With one seed the seed variance cannot be estimated and no interval, test or MDE is given (``None``): the paper
profiles train one seed per row, and say so in their tables.

Memory: everything is a sum over the ``[seeds, videos]`` array (no resampling), so a comparison costs a few copies of
that array: 20,000 videos x 5 seeds is under 1 MB each (tested).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from ila.defaults import MAX_SEEDS

CONFIDENCE = 0.95
POWER = 0.80  # for the minimum detectable difference
SEED_TERM_QUANTILE = 0.25  # the seed term enters the degrees of freedom at its upper 75% bound (_satterthwaite)


@dataclass
class MeanCI:
    mean: float
    low: float | None  # None with a single seed: no spread to estimate
    high: float | None
    n: int

    @property
    def half_width(self) -> float | None:
        return None if self.low is None else (self.high - self.low) / 2


def mean_ci(values, confidence: float = CONFIDENCE, bounds: tuple[float, float] | None = None) -> MeanCI:
    """Mean of per-seed values with a Student-t interval over seeds (the spread between trainings alone).

    ``bounds``: the range of the quantity (e.g. ``(0, 100)`` for a rate in %): the interval is cut to it, since no
    training can score outside it (a t interval of 97, 99, 100 otherwise reaches past 100)."""
    x = np.asarray([v for v in values if v is not None], dtype=float)
    if x.size == 0:
        raise ValueError("mean_ci: no values")
    if x.size == 1:
        return MeanCI(float(x[0]), None, None, 1)
    half = stats.t.ppf(0.5 + confidence / 2, x.size - 1) * x.std(ddof=1) / np.sqrt(x.size)
    low, high = float(x.mean() - half), float(x.mean() + half)
    if bounds is not None:
        low, high = max(low, bounds[0]), min(high, bounds[1])
    return MeanCI(float(x.mean()), low, high, int(x.size))


@dataclass(frozen=True)
class VarianceComponents:
    """The estimate's variance split by source, each already weighted as in the estimate (a contrast's weights
    included), so that the standard error at other seed and video counts follows: see :meth:`se_at`."""

    seed: float  # s2_a: between trainings, per training
    video: float  # s2_b: between videos, per video
    residual: float  # s2_e: seed-by-video, per (training, video) cell
    n_seeds: int
    n_videos: int

    def se_at(self, seeds: int, videos: int | None = None) -> float:
        """Standard error of the estimate with ``seeds`` trainings per row and ``videos`` validation videos (the
        groups' proportions kept)."""
        scale = self.n_videos / (videos or self.n_videos)
        return float(np.sqrt(self.seed / seeds + scale * (self.video + self.residual / seeds) / self.n_videos))

    def mde_at(self, seeds: int, videos: int | None = None, confidence: float = CONFIDENCE,
               power: float = POWER) -> float:
        """Minimum detectable difference at that design, with ``seeds - 1`` degrees of freedom (the value the
        Satterthwaite df approaches when trainings differ; it makes the answer an upper bound)."""
        return minimum_detectable(self.se_at(seeds, videos), max(seeds - 1, 1), confidence, power)


def seeds_for_mde(components: VarianceComponents, target: float, videos: int | None = None,
                  most: int = MAX_SEEDS) -> int | None:
    """The fewest seeds per row (2 or more) whose projected MDE (:meth:`VarianceComponents.mde_at`) at ``videos``
    validation videos (None: as measured) is at most ``target``; None when even ``most`` seeds do not reach it."""
    return next((n for n in range(2, most + 1) if components.mde_at(n, videos) <= target), None)


def median_seeds(needed: list[int | None]) -> int | None:
    """The seeds the median comparison needs (the upper middle of an even count: a whole number of seeds, erring
    towards more); None where that comparison needs more than were tried (``seeds_for_mde``'s None)."""
    if not needed:
        raise ValueError("median_seeds: no comparisons")
    known = sorted(n if n is not None else float("inf") for n in needed)
    middle = known[len(known) // 2]
    return None if middle == float("inf") else int(middle)


@dataclass
class Difference:
    diff: float  # mean over seeds and videos of (row - reference), or the weighted contrast
    low: float | None  # None with one seed: the seed variance can't be estimated
    high: float | None
    p_value: float | None  # two-sided t test of "no difference"
    se: float | None
    df: float | None
    mde: float | None  # the difference this design detects with 80% power at 5%, from the measured variances
    n_videos: int
    n_seeds: int
    components: VarianceComponents | None = None

    def significant(self, alpha: float = 1 - CONFIDENCE) -> bool:
        return self.p_value is not None and self.p_value < alpha


def minimum_detectable(se: float, df: float, confidence: float = CONFIDENCE, power: float = POWER) -> float:
    """The true difference a two-sided t test at ``1 - confidence`` detects with probability ``power``
    (the usual approximation ``(t_{1-alpha/2} + t_{power}) * se``)."""
    return float((_t_quantile(0.5 + confidence / 2, df) + _t_quantile(power, df)) * se)


def _t_quantile(q: float, df: float) -> float:
    # scipy.special's ufuncs: the same values as scipy.stats.t.ppf / chi2.ppf at a hundredth of the call overhead,
    # which the simulation tests (tens of thousands of tables) feel
    return float(special.stdtrit(df, q))


def _weighted_groups(weights: np.ndarray | None, n: int) -> list[tuple[float, np.ndarray]]:
    """(weight, member videos) for each set of videos of equal nonzero weight; a plain mean is one group."""
    if weights is None:
        return [(1.0 / n, np.arange(n))]
    w = np.asarray(weights, dtype=float)
    if w.shape != (n,):
        raise ValueError(f"expected {n} per-video weights, got shape {w.shape}")
    return [(float(value), np.flatnonzero(w == value)) for value in np.unique(w[w != 0])]


def _two_way(d: np.ndarray) -> tuple[float, float]:
    """Mean squares of videos and of the seed-by-video residual of ``d [seeds, videos]`` (balanced two-way ANOVA)."""
    s, v = d.shape
    video_means = d.mean(0)
    ms_video = s * video_means.var(ddof=1) if v > 1 else 0.0
    if v > 1 and s > 1:
        resid = d - d.mean(1, keepdims=True) - video_means + video_means.mean()
        ms_resid = float(np.einsum("ij,ij->", resid, resid)) / ((s - 1) * (v - 1))
    else:
        ms_resid = 0.0
    return float(ms_video), ms_resid


def _satterthwaite(terms: list[tuple[float, float]]) -> float:
    """Degrees of freedom of a sum of mean-square terms ``(value, df)``, the first being the seed term.

    Plain Satterthwaite is liberal here: with 2-3 seeds the seed term has 1-2 df, and when it happens to come out
    small the df come out large exactly when the variance is underestimated (simulated: 88-92% coverage at 2-3 seeds
    with both seed and video variance). So the df are computed with the seed term at its upper 75% confidence bound
    (``term * (S-1) / chi2_{0.25, S-1}``), the variance itself unchanged. ``tests/test_stats.py`` checks the
    result: 94-96% coverage over the regimes simulated, at 2, 3 and 5 seeds."""
    seed_term, seed_df = terms[0]
    chi2_quantile = special.chdtri(seed_df, 1 - SEED_TERM_QUANTILE)  # = scipy.stats.chi2.ppf(0.25, seed_df)
    upper = [(seed_term * seed_df / chi2_quantile, seed_df), *terms[1:]]
    total = sum(t for t, _ in upper)
    return float(total**2 / sum(t * t / k for t, k in upper))


def crossed_mean(d: np.ndarray, confidence: float = CONFIDENCE, weights: np.ndarray | None = None) -> Difference:
    """Interval and two-sided test for the mean (or weighted contrast) of ``d [seeds, videos]``, with seeds and
    videos as crossed random factors (module docstring)."""
    d = np.asarray(d, dtype=float)
    if d.ndim != 2 or d.shape[1] == 0:
        raise ValueError(f"expected a [seeds, videos] array, got shape {d.shape}")
    n_seeds, n_videos = d.shape
    groups = _weighted_groups(weights, n_videos)
    per_seed = sum(w * d[:, idx].sum(1) for w, idx in groups)  # the measure on each training
    estimate = float(per_seed.mean())
    if n_seeds < 2:
        return Difference(estimate, None, None, None, None, None, None, n_videos, 1)
    # Var_hat = var_s(T_s)/S + sum_g w_g^2 n_g (MS_video,g - MS_resid,g)/S; each term with its degrees of freedom for
    # Satterthwaite. var_s(T_s) already holds the seed effect and the residual's share.
    terms = [(per_seed.var(ddof=1) / n_seeds, n_seeds - 1)]
    video_part = residual_part = 0.0
    for w, idx in groups:
        ms_video, ms_resid = _two_way(d[:, idx])
        factor = w * w * idx.size / n_seeds
        residual_part += factor * ms_resid
        if ms_video > ms_resid and idx.size > 1:  # a negative variance component is taken as zero
            terms += [(factor * ms_video, idx.size - 1), (-factor * ms_resid, (n_seeds - 1) * (idx.size - 1))]
            video_part += factor * (ms_video - ms_resid)
    var = sum(t for t, _ in terms)
    components = VarianceComponents(
        seed=max(terms[0][0] - residual_part, 0.0) * n_seeds,
        video=video_part * n_videos,
        residual=residual_part * n_seeds * n_videos,
        n_seeds=n_seeds, n_videos=n_videos)  # fmt: skip
    if var <= 1e-300:  # every training and every video gave the same difference
        p = 1.0 if abs(estimate) < 1e-12 else 0.0
        return Difference(estimate, estimate, estimate, p, 0.0, float("inf"), 0.0, n_videos, n_seeds, components)
    df = _satterthwaite(terms)
    se = float(np.sqrt(var))
    half = _t_quantile(0.5 + confidence / 2, df) * se
    p = float(2 * special.stdtr(df, -abs(estimate) / se))
    mde = minimum_detectable(se, df, confidence)
    return Difference(estimate, float(estimate - half), float(estimate + half), p, se, float(df), mde, n_videos,
                      n_seeds, components)


def paired_difference(row: np.ndarray, reference: np.ndarray, confidence: float = CONFIDENCE,
                      weights: np.ndarray | None = None) -> Difference:
    """``row``, ``reference``: outcomes ``[seeds, videos]`` (e.g. 1 = correct) on the same videos in the same order,
    seed ``s`` of one paired with seed ``s`` of the other. The statistic is the mean per-video difference, or with
    ``weights [videos]`` the contrast ``sum(w * d)`` (e.g. the temporal score: ``w = 1/n_T`` on the temporal group,
    ``-1/n_S`` on the static one, 0 elsewhere)."""
    row, reference = np.asarray(row, dtype=float), np.asarray(reference, dtype=float)
    if row.shape != reference.shape or row.ndim != 2:
        raise ValueError(f"paired_difference: expected two [seeds, videos] arrays of one shape, got {row.shape} "
                         f"and {reference.shape}")
    return crossed_mean(row - reference, confidence, weights)


def proportion_vs_chance(hits: np.ndarray, chance: float = 0.5, confidence: float = CONFIDENCE) -> Difference:
    """A rate (e.g. twin-order accuracy) against chance: ``hits [seeds, videos]`` of 0/1; the difference is the rate
    minus ``chance``, with seeds and videos as in :func:`paired_difference`."""
    return crossed_mean(np.asarray(hits, dtype=float) - chance, confidence)


@dataclass
class RankAgreement:
    tau: float | None
    p_value: float | None
    n: int


def kendall_tau(ours, paper) -> RankAgreement:
    """Kendall's tau-b between our row order and the paper's (rows where both have a number)."""
    pairs = [(a, b) for a, b in zip(ours, paper, strict=True) if a is not None and b is not None]
    if len(pairs) < 3:
        return RankAgreement(None, None, len(pairs))
    res = stats.kendalltau([a for a, _ in pairs], [b for _, b in pairs])
    tau = None if np.isnan(res.statistic) else float(res.statistic)
    p = None if np.isnan(res.pvalue) else float(res.pvalue)
    return RankAgreement(tau, p, len(pairs))
