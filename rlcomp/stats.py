"""Summary statistics of per-run scores, and confidence intervals over training seeds.

The unit of replication is the training seed (rliable's "run"): a figure's mean and its 95%
interval say how a result varies from one trained agent to another. Episodes enter only through
each seed's value (the mean of that seed's episodes, or of its rows in the results table): more
episodes make each seed's value less noisy, they never add replicates.

The default interval is the Student-t interval of the mean over the per-seed values
(:func:`t_interval`, ``n - 1`` degrees of freedom). Its coverage at the study's size (5 seeds x
100 episodes) on skewed returns with failure episodes is measured by simulation in
``benchmarks/interval_coverage.py`` (which prints the coverage of the nominal 95% interval); the
percentile bootstrap over seeds covers far less than its nominal level at 3 to 5 seeds (it is
about ``[min, max]`` there), so it is kept only for the IQM (:func:`bootstrap_ci`), for which
there is no t interval. :func:`interval` picks the method by name; :func:`aggregate` applies it to
every group of the tidy results table. :func:`normalized` puts returns on a common scale per
environment and seed, ``(x - random) / (dense - random)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import pandas as pd


def iqm(values: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean: the mean left after cutting ``int(0.25 * n)`` values from each end.

    This is ``scipy.stats.trim_mean(values, 0.25)``, the convention of rliable
    (Agarwal et al., 2021).
    """
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if x.size == 0:
        raise ValueError("iqm of an empty sequence")
    cut = int(0.25 * x.size)
    return float(x[cut : x.size - cut].mean())


def summarize_returns(returns: Sequence[float]) -> dict[str, float | None]:
    """Mean, standard deviation (population), IQM, min and max of episodic returns.

    The standard error of the mean is ``None`` for a single return (undefined; JSON has no NaN).
    """
    x = np.asarray(returns, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no returns to summarize")
    return {
        "mean_return": float(x.mean()),
        "std_return": float(x.std()),
        "iqm_return": iqm(x),
        "min_return": float(x.min()),
        "max_return": float(x.max()),
        "sem_return": float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else None,
    }


def normalized(x: float | np.ndarray, random: float | np.ndarray,
               dense: float | np.ndarray) -> float | np.ndarray:
    """A return on the scale random policy 0, dense model 1: ``(x - random) / (dense - random)``.

    Apply it per environment and training seed (``random`` and ``dense`` of that environment, and
    of that seed for the dense model) before aggregating over seeds. Elementwise with numpy
    broadcasting; a float for scalar inputs, an array otherwise.

    Raises:
        ValueError: where ``dense == random`` (the scale is undefined).
    """
    x_, random_, dense_ = (np.asarray(v, dtype=np.float64) for v in (x, random, dense))
    span = dense_ - random_
    if np.any(span == 0):
        raise ValueError("normalized needs dense != random; they are equal, so the scale is "
                         "undefined")
    out = (x_ - random_) / span
    return float(out) if out.ndim == 0 else out


STATISTICS = ("mean", "iqm")
"""The statistics :func:`interval`, :func:`bootstrap_ci` and :func:`aggregate` compute."""

METHODS = ("t", "percentile")
"""Interval methods: ``t`` (Student-t over seed values, the default; mean only) and
``percentile`` (percentile bootstrap over seeds; mean or IQM)."""


class Interval(NamedTuple):
    """A point estimate with its confidence interval over training seeds."""

    estimate: float
    """The statistic of the data as measured."""
    ci_low: float
    """Lower end of the interval (t or percentile bootstrap, as the caller chose)."""
    ci_high: float
    """Upper end of the interval."""
    n_seeds: int
    """Training seeds behind the estimate (0 when there were none)."""


EMPTY = Interval(math.nan, math.nan, math.nan, 0)
"""The interval of no data: NaN estimate and bounds, zero seeds."""


@dataclass(frozen=True)
class IntervalSettings:
    """How intervals over seeds are made, passed whole to the figure functions (``intervals=``).

    ``dataclasses.asdict(IntervalSettings())`` gives the keyword arguments of :func:`aggregate`.
    """

    method: str = "t"
    """``t`` (Student-t over seed values; mean only) or ``percentile`` (bootstrap)."""
    statistic: str = "mean"
    """``mean`` or ``iqm`` over training seeds (``iqm`` needs ``percentile``)."""
    confidence: float = 0.95
    """Coverage of the interval, in (0, 1)."""
    reps: int = 2000
    """Bootstrap resamples (``percentile`` only)."""
    random_state: int = 0
    """Seed of the resampling; the same seed gives the same interval (``percentile`` only)."""

    def __post_init__(self) -> None:
        _check(self.statistic, self.confidence, self.reps, self.method)


def _check(statistic: str, confidence: float, reps: int, method: str = "percentile") -> None:
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if statistic not in STATISTICS:
        raise ValueError(f"statistic must be one of {', '.join(STATISTICS)}, got {statistic!r}")
    if method == "t" and statistic != "mean":
        raise ValueError(f"the t interval is for the mean only, got statistic={statistic!r}; "
                         "use method='percentile' for the IQM")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise ValueError(f"reps must be an integer >= 1, got {reps!r}")


def _statistic(samples: np.ndarray, statistic: str) -> np.ndarray:
    """``statistic`` along the last axis (the IQM cuts ``int(0.25 * n)`` values each end)."""
    if statistic == "mean":
        return samples.mean(axis=-1)
    ordered = np.sort(samples, axis=-1)
    n = ordered.shape[-1]
    cut = int(0.25 * n)
    return ordered[..., cut : n - cut].mean(axis=-1)


def _per_seed_groups(
        values_by_seed: Sequence | np.ndarray) -> tuple[np.ndarray | None, list[np.ndarray]]:
    """(per-seed values, None) for one number per seed, or (None, per-seed episode arrays)."""
    if isinstance(values_by_seed, np.ndarray) and values_by_seed.ndim == 2:
        groups = list(values_by_seed.astype(np.float64))
    elif isinstance(values_by_seed, np.ndarray) and values_by_seed.ndim == 1:
        return values_by_seed.astype(np.float64), []
    elif len(values_by_seed) and all(np.ndim(v) == 1 for v in values_by_seed):
        groups = [np.asarray(v, dtype=np.float64) for v in values_by_seed]
    else:
        x = np.asarray(values_by_seed, dtype=np.float64)
        if x.ndim != 1:
            raise ValueError("values_by_seed must hold one number per seed, or one sequence of "
                             f"episode values per seed; got an array of shape {x.shape}")
        return x, []
    if any(g.size == 0 for g in groups):
        raise ValueError("every seed needs at least one episode value")
    return None, groups


def _seed_means(values_by_seed: Sequence | np.ndarray) -> np.ndarray:
    """One value per seed: the numbers as given, or each seed's mean over its episodes."""
    flat, groups = _per_seed_groups(values_by_seed)
    if flat is None:
        if any(np.isnan(g).any() for g in groups):
            raise ValueError("values_by_seed contains NaN; drop or fill missing values first")
        flat = np.array([g.mean() for g in groups])
    if np.isnan(flat).any():
        raise ValueError("values_by_seed contains NaN; drop or fill missing values first")
    return flat


def t_interval(values_by_seed: Sequence | np.ndarray, confidence: float = 0.95) -> Interval:
    """The mean over training seeds and its Student-t interval (``n - 1`` degrees of freedom).

    The training seed is the unit: with one number per seed those are the values; with episode
    values per seed (a sequence of 1-D sequences, or a 2-D array seeds x episodes) each seed is
    first reduced to the mean of its episodes, so episodes only make each seed's value less noisy
    and never count as replicates. The estimate is the mean of the ``n`` per-seed values ``x``
    and the interval ``mean(x) -+ t_{(1 + confidence) / 2, n - 1} * sd(x) / sqrt(n)`` (``sd``
    with ``ddof=1``). With episode values this estimate is the mean of the seed means, which
    differs from the mean of the pooled episodes (:func:`bootstrap_ci`'s estimate) when seeds
    have unequal episode counts.

    One seed: no spread to measure, so the interval is the estimate itself (``ci_low ==
    estimate == ci_high``), which says "one seed", not "no uncertainty". Per-seed values that are
    all equal also give a point interval.

    Args:
        values_by_seed: one number per training seed, or per-seed sequences of episode values.
        confidence: coverage of the interval, in (0, 1).

    Returns:
        ``Interval(estimate, ci_low, ci_high, n_seeds)``.

    Raises:
        ValueError: for no seeds, an empty seed, NaN values or a bad confidence.
    """
    from scipy import stats as scipy_stats

    _check("mean", confidence, 1, "t")
    x = _seed_means(values_by_seed)
    n = x.size
    if n == 0:
        raise ValueError("t_interval needs at least one seed")
    estimate = float(x.mean())
    if n == 1 or np.all(x == x[0]):
        return Interval(estimate, estimate, estimate, n)
    half = float(scipy_stats.t.ppf((1.0 + confidence) / 2.0, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return Interval(estimate, estimate - half, estimate + half, n)


def interval(values_by_seed: Sequence | np.ndarray, method: str = "t", statistic: str = "mean",
             confidence: float = 0.95, reps: int = 2000,
             random_state: int | np.random.Generator = 0) -> Interval:
    """The statistic over training seeds with its interval by ``method``.

    ``t``: :func:`t_interval` (the default; ``mean`` only, episodes enter through per-seed means).
    ``percentile``: :func:`bootstrap_ci` (``mean`` or ``iqm``; ``reps`` and ``random_state``
    apply only here).

    Args:
        values_by_seed: one number per training seed, or per-seed sequences of episode values.
        method: one of :data:`METHODS`.
        statistic: ``mean`` or ``iqm`` (``iqm`` needs ``percentile``).
        confidence: coverage of the interval, in (0, 1).
        reps: bootstrap resamples.
        random_state: seed (or generator) of the resampling.

    Returns:
        ``Interval(estimate, ci_low, ci_high, n_seeds)``.

    Raises:
        ValueError: for an unknown method, ``t`` with the IQM, a bad setting or bad values.
    """
    _check(statistic, confidence, reps, method)
    if method == "t":
        return t_interval(values_by_seed, confidence)
    return bootstrap_ci(values_by_seed, statistic, confidence, reps, random_state)


def bootstrap_ci(values_by_seed: Sequence | np.ndarray, statistic: str = "mean",
                 confidence: float = 0.95, reps: int = 2000,
                 random_state: int | np.random.Generator = 0, *,
                 resample_seeds: bool = True) -> Interval:
    """The statistic of per-seed values and its stratified percentile bootstrap interval.

    Not the default interval: at 3 to 5 seeds it covers well below its nominal level (see the
    module docstring); use it for the IQM, which has no t interval.

    What is resampled (the training seed is the unit, as a run is in rliable):

    - **One number per seed** (a 1-D sequence, e.g. each seed's mean return): the ``n`` seeds are
      drawn ``n`` times with replacement, ``reps`` times; the statistic (``mean``, or the IQM,
      which cuts ``int(0.25 * n)`` values from each end) of each resample forms the bootstrap
      distribution.
    - **Episode values per seed** (a sequence of 1-D sequences, or a 2-D array seeds x episodes):
      each seed is a stratum. A resample draws the ``n`` seeds with replacement (unless
      ``resample_seeds`` is False) and then, within each drawn seed, that seed's ``m`` episodes
      ``m`` times with replacement; the statistic is taken over the pooled episodes of the
      resample (so seeds with more episodes weigh more). With ``resample_seeds=False`` this is
      rliable's ``StratifiedBootstrap`` with the seeds as tasks.

    The estimate is the statistic of the data as given (all values pooled); the interval is the
    ``(1 - confidence) / 2`` and ``(1 + confidence) / 2`` quantiles (linear interpolation) of the
    bootstrap distribution. The same ``random_state`` gives the same interval.

    A single seed with one number has no spread to resample: the interval is the estimate itself
    (``ci_low == estimate == ci_high``), which says "one seed", not "no uncertainty". A single seed
    with episode values gets an interval over its episodes only. Values that are all equal give a
    point interval.

    Args:
        values_by_seed: one number per training seed, or per-seed sequences of episode values.
        statistic: ``mean`` or ``iqm``.
        confidence: coverage of the interval, in (0, 1).
        reps: bootstrap resamples.
        random_state: seed (or generator) of the resampling.
        resample_seeds: with episode values, whether seeds are resampled too (two-stage).

    Returns:
        ``Interval(estimate, ci_low, ci_high, n_seeds)``.

    Raises:
        ValueError: for no seeds, an empty seed, NaN values or a bad setting.
    """
    _check(statistic, confidence, reps)
    flat, groups = _per_seed_groups(values_by_seed)
    n = len(flat) if flat is not None else len(groups)
    if n == 0:
        raise ValueError("bootstrap_ci needs at least one seed")
    pooled = flat if flat is not None else np.concatenate(groups)
    if np.isnan(pooled).any():
        raise ValueError("values_by_seed contains NaN; drop or fill missing values first")
    estimate = float(_statistic(pooled, statistic))
    rng = np.random.default_rng(random_state)
    if flat is not None:
        if n == 1:
            return Interval(estimate, estimate, estimate, 1)
        boot = _statistic(flat[rng.integers(0, n, size=(reps, n))], statistic)
    else:
        boot = np.empty(reps)
        for r in range(reps):
            drawn = rng.integers(0, n, size=n) if resample_seeds else range(n)
            parts = [groups[s][rng.integers(0, groups[s].size, size=groups[s].size)]
                     for s in drawn]
            boot[r] = _statistic(np.concatenate(parts), statistic)
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(boot, [alpha, 1.0 - alpha])
    return Interval(estimate, float(low), float(high), n)


AGGREGATE_COLUMNS = ("estimate", "ci_low", "ci_high", "n_seeds")
"""The columns :func:`aggregate` adds after the group keys."""


def aggregate(frame: pd.DataFrame, by: str | Sequence[str], metric: str | None = "return_mean",
              statistic: str = "mean", confidence: float = 0.95, reps: int = 2000,
              random_state: int = 0, seed_column: str = "train_seed",
              method: str = "t") -> pd.DataFrame:
    """One row per group: the statistic over training seeds of a metric, with its interval.

    Each seed's value is the mean of that seed's rows in the group (over evaluation seeds,
    probes and any other rows that share the group keys); seeds whose value is NaN are left out.
    The estimate and interval over those per-seed values come from :func:`interval` with the
    given settings: by default the t interval of the mean (one seed: the interval is the
    estimate).

    Args:
        frame: the tidy frame (``ResultStore.load``), or any frame with ``metric``, ``value``
            and ``seed_column`` columns.
        by: the group keys (columns of ``frame``), e.g. ``["method", "prune"]``; ``[]`` for one
            group. NaN keys form groups of their own.
        metric: keep only rows of this metric; ``None`` when the frame holds one metric already.
        statistic: ``mean`` or ``iqm`` over seeds (``iqm`` needs ``method="percentile"``).
        confidence: coverage of the interval.
        reps: bootstrap resamples (``percentile``).
        random_state: seed of the resampling, the same for every group (``percentile``).
        seed_column: the column of the training seed.
        method: ``t`` (Student-t over seed values) or ``percentile`` (bootstrap over seeds).

    Returns:
        Columns ``*by, estimate, ci_low, ci_high, n_seeds``, sorted by the keys; no rows for an
        empty selection.
    """
    import pandas as pd

    _check(statistic, confidence, reps, method)
    keys = [by] if isinstance(by, str) else list(by)
    if seed_column in keys:
        raise ValueError(f"{seed_column!r} is the unit of replication and cannot be a group key")
    rows = frame if metric is None else frame[frame["metric"] == metric]
    per_seed = (rows.groupby([*keys, seed_column], dropna=False, sort=True)["value"].mean()
                .dropna().reset_index())
    records = []
    if keys:
        groups = per_seed.groupby(keys, dropna=False, sort=True)
    else:
        groups = [((), per_seed)] if len(per_seed) else []
    for key, group in groups:
        measured = interval(group["value"].to_numpy(), method, statistic, confidence, reps,
                            random_state)
        records.append({**dict(zip(keys, key, strict=True)), **measured._asdict()})
    table = pd.DataFrame.from_records(records, columns=[*keys, *AGGREGATE_COLUMNS])
    return table.astype({"n_seeds": "int64"})


@dataclass(frozen=True)
class LinearFit:
    """An ordinary least-squares line ``y = intercept + slope * x`` with its 95% intervals.

    Made by :func:`linear_fit`; the intervals are the classical ones of the normal linear model
    (Student-t with ``n - 2`` degrees of freedom).
    """

    slope: float
    """Change of y per unit of x."""
    intercept: float
    """y at x = 0."""
    slope_ci: tuple[float, float]
    """Confidence interval of the slope: ``slope -+ t * stderr``."""
    n: int
    """Points fitted."""
    residual_sd: float
    """Standard deviation of the residuals around the line (``n - 2`` degrees of freedom)."""
    x_mean: float
    """Mean of the fitted x."""
    x_ss: float
    """Sum of squared deviations of x from its mean."""
    t_quantile: float
    """The t quantile of the intervals (``(1 + confidence) / 2``, ``n - 2`` degrees of freedom)."""

    def predict(self, x: float | np.ndarray) -> np.ndarray:
        """The line at ``x``."""
        return self.intercept + self.slope * np.asarray(x, dtype=np.float64)

    def band(self, x: float | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Lower and upper ends of the confidence band of the line (the mean of y) at ``x``.

        ``predict(x) -+ t * residual_sd * sqrt(1 / n + (x - x_mean)^2 / x_ss)``: narrowest at the
        mean of x, where it is the interval of the mean of y.
        """
        x_ = np.asarray(x, dtype=np.float64)
        half = self.t_quantile * self.residual_sd * np.sqrt(
            1.0 / self.n + (x_ - self.x_mean) ** 2 / self.x_ss)
        centre = self.predict(x_)
        return centre - half, centre + half


def linear_fit(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray,
               confidence: float = 0.95) -> LinearFit:
    """The ordinary least-squares line of ``y`` on ``x``, its slope interval and confidence band.

    The slope and intercept are those of ``scipy.stats.linregress``; the slope's interval is
    ``slope -+ t_{(1 + confidence) / 2, n - 2} * stderr``.

    Args:
        x: the explanatory values.
        y: the responses, as many as ``x``.
        confidence: coverage of the intervals, in (0, 1).

    Returns:
        The :class:`LinearFit`.

    Raises:
        ValueError: for fewer than 3 points, unequal lengths, NaN values, x all equal or a bad
            confidence.
    """
    from scipy import stats as scipy_stats

    _check("mean", confidence, 1, "t")
    x_ = np.asarray(x, dtype=np.float64).ravel()
    y_ = np.asarray(y, dtype=np.float64).ravel()
    if x_.size != y_.size:
        raise ValueError(f"x and y must have the same length, got {x_.size} and {y_.size}")
    if x_.size < 3:
        raise ValueError(f"linear_fit needs at least 3 points, got {x_.size}")
    if np.isnan(x_).any() or np.isnan(y_).any():
        raise ValueError("linear_fit got NaN values; drop them first")
    x_ss = float(((x_ - x_.mean()) ** 2).sum())
    if x_ss == 0.0:
        raise ValueError("linear_fit needs x values that differ; all are equal")
    n = x_.size
    slope = float(((x_ - x_.mean()) * (y_ - y_.mean())).sum() / x_ss)
    intercept = float(y_.mean() - slope * x_.mean())
    residuals = y_ - (intercept + slope * x_)
    residual_sd = float(math.sqrt((residuals ** 2).sum() / (n - 2)))
    t_quantile = float(scipy_stats.t.ppf((1.0 + confidence) / 2.0, n - 2))
    half = t_quantile * residual_sd / math.sqrt(x_ss)
    return LinearFit(slope, intercept, (slope - half, slope + half), n, residual_sd,
                     float(x_.mean()), x_ss, t_quantile)
