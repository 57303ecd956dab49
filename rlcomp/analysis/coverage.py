"""Simulated coverage of the nominal 95% interval over training seeds, at the study's size.

The book's verdicts rest on intervals over training seeds: each seed's value is the mean of its
evaluation episodes, and the interval is taken over those per-seed values. :func:`simulate_coverage`
simulates many studies of ``seeds`` (5) seeds x ``episodes`` (100) episodes and counts how often
the interval contains the true value, for the default method (:func:`rlcomp.stats.t_interval`:
the Student-t interval of the mean of the seed means) and, for comparison, the percentile
bootstrap over seeds (``rlcomp.stats.bootstrap_ci`` on the seed means, as ``aggregate`` and
``difference_ci`` call it with ``method="percentile"``). The true value is the population mean of
what the interval estimates: the expected per-seed mean (exact, from the scenario's parameters,
:data:`EXACT_TRUTH`) or, in (d), the expected per-seed relative difference (one large simulation
of ``truth_seeds`` seeds, run once; its Monte Carlo error is reported and is far below the widths).
``benchmarks/interval_coverage.py`` prints the result; the methods chapter shows it.

The scenarios are shaped like the committed checkpoints (``checkpoints/*.json``, ``final_eval``:
5 seeds x 100 episodes per environment). There, LunarLander seed means are 252..270 (sd 8.5),
successful episodes have sd ~33 and skewness ~-1.6, and 1 to 9 of 100 episodes per seed fail
(-191..99); HalfCheetah seed means are 5217..6275 (sd 400), episodes have sd 40..140 and 0 to 2
of 100 are failures near -100. ``Gamma(k, s)`` has shape ``k`` and scale ``s``; a left-skewed
noise ``2s - Gamma(2, s)`` has mean 0, sd ``s * sqrt(2)`` and skewness -1.41.

(a) ``lunarlander``: seed level ``253 + Gamma(4, 3.5)`` (mean 267, sd 7, skewness +1); a seed's
    failure rate ``Beta(2, 38)`` (mean 5%, sd 3.4%); a successful episode is the level plus
    ``2s - Gamma(2, s)`` with ``s = 23.3`` (sd 33); a failed one is ``Uniform(-250, 100)``.
    True value ``0.95 * 267 + 0.05 * (-75) = 249.9``.
(b) ``halfcheetah``: seed level ``6600 - Gamma(4, 200)`` (mean 5800, sd 400, skewness -1);
    failure rate ``Beta(1, 49)`` (mean 2%); a successful episode is the level plus
    ``2s - Gamma(2, s)`` with ``s = 70.7`` (sd 100); a failed one (flipped cheetah) is
    ``Uniform(-300, 1000)``. True value ``0.98 * 5800 + 0.02 * 350 = 5691``.
(c) ``destroyed`` (bimodal, the hard case): a compressed agent that is destroyed on a seed with
    probability 0.2. A healthy seed is as (a) with level ``186 + Gamma(4, 3.5)`` (mean 200); a
    destroyed seed's episodes are ``Normal(-100 + Normal(0, 20), 60)``. True value
    ``0.8 * (0.95 * 200 + 0.05 * (-75)) + 0.2 * (-100) = 129``. With 5 seeds, a third of the
    studies (0.8^5) contain no destroyed seed, so no interval over 5 seeds can cover this well;
    it is reported under ``coverage_bimodal`` and not in ``coverage``. The claims judge a
    destroyed agent apart (:data:`rlcomp.analysis.claims.HURT_RANGE` keeps agents whose
    normalized return fell below 20% out of the fine-tuning claim).
(d) ``relative-diff``: the paired relative difference the claims use, per seed
    ``100 * (compressed - dense) / |dense|`` of the two seed means. The dense agent is as (a);
    the compressed agent of the same seed has level ``dense level - Gamma(2, 5)`` (a shift of
    mean -10, sd 7, varying by seed) and failure rate ``dense rate + Beta(1, 49)``; its episodes
    are drawn independently of the dense ones (the study evaluates both on the same episode
    seeds, which correlates them and narrows the true spread; independence is the harder case).

``coverage`` in the summary is the default method's coverage, the minimum over the scenarios that
represent our data, (a), (b) and (d) (:data:`OURS`); ``coverage_bimodal`` is (c). With ``sims``
studies the coverage has a Monte Carlo standard error of about ``sqrt(0.95 * 0.05 / sims)``
(:func:`monte_carlo_se`): 0.0015 at 20000, 0.0034 at 4000, too coarse to tell 0.935 from 0.93.
The bootstrap comparison uses ``reps`` resamples per study. The same ``seed`` gives the same
result.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from scipy import stats as scipy_stats

from rlcomp.stats import t_interval

CONFIDENCE = 0.95
"""Nominal coverage of the intervals checked."""

OURS = ("lunarlander", "halfcheetah", "relative-diff")
"""The scenarios that represent our data; ``coverage`` is the minimum over these."""

BIMODAL = "destroyed"
"""The hard case, reported apart as ``coverage_bimodal``."""

METHODS = ("t", "percentile")
"""The interval methods compared: the default t interval and the percentile bootstrap."""

BOOK_SIMS = {"smoke": 200, "full": 2000}
"""Simulated studies per scenario on the methods page, per profile (the benchmark's default,
20,000, takes about 15 s on one core and is what ``benchmarks/interval_coverage.py`` runs)."""

ROW_KEYS = ("scenario", "method", "coverage", "width", "truth", "truth_se", "mean_estimate")
"""The keys of each row :func:`simulate_coverage` returns (one row per scenario and method)."""


def _left_skewed(rng: np.random.Generator, scale: float, size: tuple[int, ...]) -> np.ndarray:
    """``2 * scale - Gamma(2, scale)``: mean 0, sd ``scale * sqrt(2)``, skewness -1.41."""
    return 2.0 * scale - rng.gamma(2.0, scale, size=size)


def _agent_episodes(rng: np.random.Generator, level: np.ndarray, fail_rate: np.ndarray,
                    episodes: int, noise_scale: float, fail_low: float,
                    fail_high: float) -> np.ndarray:
    """Episodes (..., episodes): level plus skewed noise, or a uniform failure return."""
    shape = (*level.shape, episodes)
    success = level[..., None] + _left_skewed(rng, noise_scale, shape)
    failed = rng.random(shape) < fail_rate[..., None]
    return np.where(failed, rng.uniform(fail_low, fail_high, size=shape), success)


def _lunarlander_agent(rng: np.random.Generator, size: tuple[int, ...], episodes: int,
                       offset: float = 253.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(episodes, level, fail rate) of LunarLander-like agents, as in scenario (a)."""
    level = offset + rng.gamma(4.0, 3.5, size=size)
    fail_rate = rng.beta(2.0, 38.0, size=size)
    return _agent_episodes(rng, level, fail_rate, episodes, 23.3, -250.0, 100.0), level, fail_rate


def lunarlander(rng: np.random.Generator, size: tuple[int, ...], episodes: int) -> np.ndarray:
    """Scenario (a): per-seed means of LunarLander-like agents, shaped ``size``."""
    return _lunarlander_agent(rng, size, episodes)[0].mean(axis=-1)


def halfcheetah(rng: np.random.Generator, size: tuple[int, ...], episodes: int) -> np.ndarray:
    """Scenario (b): per-seed means of HalfCheetah-like agents, shaped ``size``."""
    level = 6600.0 - rng.gamma(4.0, 200.0, size=size)
    fail_rate = rng.beta(1.0, 49.0, size=size)
    return _agent_episodes(rng, level, fail_rate, episodes, 70.7, -300.0, 1000.0).mean(axis=-1)


def destroyed(rng: np.random.Generator, size: tuple[int, ...], episodes: int) -> np.ndarray:
    """Scenario (c): per-seed means of an agent destroyed on a seed with probability 0.2."""
    healthy = _lunarlander_agent(rng, size, episodes, offset=186.0)[0].mean(axis=-1)
    broken_level = -100.0 + rng.normal(0.0, 20.0, size=size)
    broken = broken_level + rng.normal(0.0, 60.0, size=(*size, episodes)).mean(axis=-1)
    return np.where(rng.random(size) < 0.2, broken, healthy)


def relative_diff(rng: np.random.Generator, size: tuple[int, ...], episodes: int) -> np.ndarray:
    """Scenario (d): per-seed ``100 * (compressed - dense) / |dense|`` of the seed means."""
    dense, level, fail_rate = _lunarlander_agent(rng, size, episodes)
    c_level = level - rng.gamma(2.0, 5.0, size=size)
    c_rate = np.minimum(1.0, fail_rate + rng.beta(1.0, 49.0, size=size))
    compressed = _agent_episodes(rng, c_level, c_rate, episodes, 23.3, -250.0, 100.0)
    d, c = dense.mean(axis=-1), compressed.mean(axis=-1)
    return 100.0 * (c - d) / np.abs(d)


Scenario = Callable[[np.random.Generator, tuple[int, ...], int], np.ndarray]
"""A simulator of per-seed values: ``(rng, size, episodes) -> array shaped size``."""

SCENARIOS: dict[str, Scenario] = {
    "lunarlander": lunarlander, "halfcheetah": halfcheetah, "relative-diff": relative_diff,
    "destroyed": destroyed}
"""Scenario name -> simulator of per-seed values, shaped ``size`` (studies x seeds)."""

SCENARIO_UNITS = {"lunarlander": "return", "halfcheetah": "return", "relative-diff": "%",
                  "destroyed": "return"}
"""The unit of each scenario's per-seed value (and so of its interval's width)."""

SCENARIO_WORDS = {
    "lunarlander": "LunarLander-like returns: left-skewed episodes, a few failed landings per seed",
    "halfcheetah": "HalfCheetah-like returns: widely spread seed levels, rare flipped-cheetah "
                   "episodes",
    "relative-diff": "paired relative change of a compressed agent from dense, per seed",
    "destroyed": "a compressed agent destroyed on some seeds and not others (bimodal)",
}
"""Each scenario in a reader's words (the module docstring gives the parameters)."""

EXACT_TRUTH = {
    "lunarlander": 0.95 * (253.0 + 14.0) + 0.05 * -75.0,
    "halfcheetah": 0.98 * (6600.0 - 800.0) + 0.02 * 350.0,
    "destroyed": 0.8 * (0.95 * (186.0 + 14.0) + 0.05 * -75.0) + 0.2 * -100.0,
}
"""Expected per-seed mean of (a) to (c), from the parameters (level and failure rate are
independent, so the expected mean is ``(1 - E rate) * E level + E rate * E failure``)."""


def simulated_truth(scenario: str, seeds: int, episodes: int,
                    rng: np.random.Generator) -> tuple[float, float]:
    """(mean, its standard error) of the per-seed value over ``seeds`` simulated seeds."""
    chunk, total, total_sq, done = 20_000, 0.0, 0.0, 0
    while done < seeds:
        n = min(chunk, seeds - done)
        values = SCENARIOS[scenario](rng, (n,), episodes)
        total, total_sq, done = total + values.sum(), total_sq + (values ** 2).sum(), done + n
    mean = total / seeds
    return mean, math.sqrt(max(total_sq / seeds - mean ** 2, 0.0) / seeds)


def t_bounds(values: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Student-t interval of the mean of each row (as :func:`rlcomp.stats.t_interval`)."""
    n = values.shape[-1]
    mean = values.mean(axis=-1)
    half = scipy_stats.t.ppf((1 + confidence) / 2, n - 1) * values.std(axis=-1, ddof=1) / n ** 0.5
    return mean - half, mean + half


def percentile_bounds(values: np.ndarray, confidence: float, reps: int,
                      rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap over seeds of each row's mean (as :func:`rlcomp.stats.bootstrap_ci`)."""
    alpha = (1 - confidence) / 2
    lows, highs = [], []
    for start in range(0, len(values), 200):
        part = values[start:start + 200]
        drawn = rng.integers(0, part.shape[1], size=(len(part), reps, part.shape[1]))
        means = np.take_along_axis(part[:, None, :], drawn, axis=-1).mean(axis=-1)
        low, high = np.quantile(means, [alpha, 1 - alpha], axis=1)
        lows.append(low)
        highs.append(high)
    return np.concatenate(lows), np.concatenate(highs)


def check_against_library(values: np.ndarray, confidence: float = CONFIDENCE) -> None:
    """Fail unless :func:`t_bounds` gives :func:`rlcomp.stats.t_interval`'s bounds on each row.

    Raises:
        AssertionError: when a row's bounds differ (relative tolerance 1e-9).
    """
    low, high = t_bounds(values, confidence)
    for row, lo, hi in zip(values, low, high, strict=True):
        got = t_interval(row, confidence)
        if not (math.isclose(got.ci_low, lo, rel_tol=1e-9)
                and math.isclose(got.ci_high, hi, rel_tol=1e-9)):
            raise AssertionError(f"t_bounds {lo, hi} differs from t_interval {got}")


def monte_carlo_se(coverage: float, sims: int) -> float:
    """Standard error of a coverage measured over ``sims`` simulated studies (binomial)."""
    if sims < 1:
        raise ValueError(f"sims must be >= 1, got {sims}")
    return math.sqrt(coverage * (1.0 - coverage) / sims)


def simulate_coverage(sims: int, seeds: int = 5, episodes: int = 100, reps: int = 1000,
                      truth_seeds: int = 200_000, seed: int = 0) -> tuple[list[dict], dict]:
    """Coverage of the t interval and the percentile bootstrap in every scenario.

    One numpy generator seeded with ``seed`` draws everything in a fixed order (per scenario of
    :data:`SCENARIOS`: the true value where it has no formula, the studies, the bootstrap), so the
    same arguments give the same result.

    Args:
        sims: simulated studies per scenario.
        seeds: training seeds per study (>= 2).
        episodes: evaluation episodes per seed.
        reps: bootstrap resamples per study.
        truth_seeds: seeds simulated once for a true value without a formula.
        seed: seed of the numpy generator.

    Returns:
        The rows (one per scenario and method, keys :data:`ROW_KEYS`; ``coverage`` is a
        fraction, ``width`` the mean width in the scenario's unit) and the summary (``coverage``,
        ``coverage_bimodal``, per-scenario coverages and the settings).

    Raises:
        ValueError: for fewer than 2 seeds or a count below 1.
    """
    if seeds < 2 or sims < 1 or episodes < 1 or reps < 1 or truth_seeds < 1:
        raise ValueError("need seeds >= 2 and sims, episodes, reps, truth_seeds >= 1, got "
                         f"seeds={seeds}, sims={sims}, episodes={episodes}, reps={reps}, "
                         f"truth_seeds={truth_seeds}")
    rng = np.random.default_rng(seed)
    rows = []
    for name, simulate in SCENARIOS.items():
        if name in EXACT_TRUTH:
            truth, truth_se = EXACT_TRUTH[name], 0.0
        else:
            truth, truth_se = simulated_truth(name, truth_seeds, episodes, rng)
        values = simulate(rng, (sims, seeds), episodes)
        check_against_library(values[:5])
        for method, (low, high) in (
                ("t", t_bounds(values, CONFIDENCE)),
                ("percentile", percentile_bounds(values, CONFIDENCE, reps, rng))):
            covered = (low <= truth) & (truth <= high)
            rows.append({"scenario": name, "method": method, "coverage": float(covered.mean()),
                         "width": float((high - low).mean()), "truth": truth,
                         "truth_se": truth_se, "mean_estimate": float(values.mean())})
    by = {(r["scenario"], r["method"]): r["coverage"] for r in rows}
    summary = {
        "coverage": min(by[(s, "t")] for s in OURS),
        "coverage_bimodal": by[(BIMODAL, "t")],
        "coverage_by_scenario": {s: by[(s, "t")] for s in SCENARIOS},
        "percentile_bootstrap_by_scenario": {s: by[(s, "percentile")] for s in SCENARIOS},
        "method": "t", "n_seeds": seeds, "episodes": episodes, "sims": sims,
        "bootstrap_reps": reps, "confidence": CONFIDENCE, "seed": seed,
    }
    return rows, summary
