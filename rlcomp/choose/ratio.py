"""A candidate's normalized return and its interval, from evaluation episodes paired on seeds.

For one user's policy the unit of replication is the evaluation episode: the question is how this
policy, not a training procedure, behaves on the environment's episodes, so each seeded episode is
one independent draw (DESIGN.md's unit for the study, the training seed, does not apply here).
The candidate, the dense policy and the random policy play the same episode seeds, so episode
``i`` gives a triple ``(x_i, d_i, r_i)`` and the triples are independent and identically
distributed. The normalized return is

    ``NR = 100 * (mean(x) - mean(r)) / (mean(d) - mean(r))``,

a ratio of two paired means, ``mean(a) / mean(b)`` with ``a_i = x_i - r_i`` and
``b_i = d_i - r_i``. Its interval is Fieller's: the set of ratios ``theta`` that the paired t test
of ``mean(a - theta * b) = 0`` (``n - 1`` degrees of freedom) does not reject at the given
confidence. So ``NR >= K`` is rejected exactly when the t test says ``mean(x - k * d - (1 - k)
* r) < 0`` with ``k = K / 100``, a linear statement about paired episodes that needs no
approximation of the ratio; pairing removes most of the episode-to-episode variation that the
candidate and the dense policy share (the same terrain and push of each seed). The interval is
unbounded when ``mean(d) - mean(r)`` itself is not significantly nonzero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RatioInterval:
    """A normalized return (%) with its interval over paired episodes."""

    estimate: float
    """``100 * (mean(x) - mean(r)) / (mean(d) - mean(r))`` over the episodes."""
    ci_low: float
    """Lower end of Fieller's interval (``-inf`` when unbounded)."""
    ci_high: float
    """Upper end (``inf`` when unbounded)."""
    episodes: int
    """Paired episodes behind the estimate."""
    confidence: float
    """Two-sided confidence of the interval."""


def t_quantile(q: float, df: int) -> float:
    """The ``q`` quantile of Student's t with ``df`` degrees of freedom (``scipy.stats.t.ppf``).

    Computed by ``scipy.special.stdtrit``, which gives the same numbers without importing
    ``scipy.stats`` (two seconds of a run that finds everything in the store).
    """
    from scipy.special import stdtrit

    return float(stdtrit(df, q))


def _as_array(name: str, values) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    if not np.isfinite(x).all():
        raise ValueError(f"{name} returns must be finite numbers")
    return x


def normalized_interval(candidate, dense, random, confidence: float = 0.95) -> RatioInterval:
    """The normalized return of ``candidate`` with its Fieller interval (see the module doc).

    Args:
        candidate: the candidate's episode returns, episode ``i`` on seed ``i`` of the block.
        dense: the dense policy's returns on the same seeds (at least as many; the first
            ``len(candidate)`` are used).
        random: the random policy's returns on the same seeds (likewise).
        confidence: two-sided confidence, in (0, 1).

    Returns:
        The estimate and interval in percent of the dense policy's gain over random actions.

    Raises:
        ValueError: for no episodes, fewer reference episodes than candidate episodes, a bad
            confidence, non-finite returns, or references whose means are equal.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    x = _as_array("candidate", candidate)
    n = x.size
    if n == 0:
        raise ValueError("a normalized return needs at least one episode")
    d, r = _as_array("dense", dense), _as_array("random", random)
    if d.size < n or r.size < n:
        raise ValueError(f"the references cover {min(d.size, r.size)} episodes, the candidate "
                         f"{n}: pairing needs the same seeds")
    d, r = d[:n], r[:n]
    a, b = x - r, d - r
    a_mean, b_mean = a.mean(), b.mean()
    if b_mean == 0:
        raise ValueError("the dense and random policies have the same mean return on these "
                         "episodes: the normalized scale is undefined")
    estimate = 100.0 * a_mean / b_mean
    if n == 1:
        return RatioInterval(estimate, -math.inf, math.inf, n, confidence)
    cov = np.cov(np.stack([a, b]), ddof=1) / n
    t2 = t_quantile(0.5 + confidence / 2.0, n - 1) ** 2
    quad = b_mean ** 2 - t2 * cov[1, 1]
    if quad <= 0:
        return RatioInterval(estimate, -math.inf, math.inf, n, confidence)
    half_b = a_mean * b_mean - t2 * cov[0, 1]
    const = a_mean ** 2 - t2 * cov[0, 0]
    disc = max(half_b ** 2 - quad * const, 0.0)
    low, high = (half_b - math.sqrt(disc)) / quad, (half_b + math.sqrt(disc)) / quad
    return RatioInterval(estimate, 100.0 * low, 100.0 * high, n, confidence)


def mean_interval(values, confidence: float = 0.95) -> tuple[float, float, float]:
    """The mean of episode returns and its Student-t interval: ``(mean, low, high)``.

    One episode (or equal values) gives a point interval.
    """
    x = _as_array("episode", values)
    if x.size == 0:
        raise ValueError("a mean needs at least one episode")
    mean = float(x.mean())
    if x.size == 1 or np.all(x == x[0]):
        return mean, mean, mean
    half = t_quantile(0.5 + confidence / 2.0, x.size - 1) * x.std(ddof=1) / math.sqrt(x.size)
    return mean, mean - half, mean + half
