"""How a measurement becomes a verdict: the paired difference and the three comparison rules.

A measurement is a paired difference between two sets of results with its interval over training
seeds (:func:`difference_ci`): by default the t interval over the paired per-seed differences
(the training seed is the unit; episodes and evaluation seeds enter through each seed's mean, see
:mod:`rlcomp.stats`). A verdict turns the interval into ``confirmed``,
``refuted`` or ``not resolved`` by one of three rules, decided before looking at the numbers:

- ``no change`` ("X does not change Y", tolerance ``t`` >= 0): confirmed if the whole interval of
  the difference lies within ``[-t, t]``; refuted if it lies wholly outside (``high < -t`` or
  ``low > t``); otherwise not resolved.
- ``reduces`` ("X reduces Y", margin ``m`` >= 0): confirmed if the whole interval lies below
  ``-m`` (``high < -m``); refuted if it lies wholly at or above ``-m`` (``low >= -m``: no
  reduction of at least ``m``); otherwise not resolved.
- ``increases`` ("X increases Y"): the mirror image, confirmed if ``low > m``, refuted if
  ``high <= m``.

A measurement without seeds (NaN) is never resolved. A measure that mostly measures the simulator
and the machine is reported with the rule's reading but ``not judged`` (:data:`NOT_JUDGED`).
:func:`rule_text` and :func:`describe` put a rule and a measurement in words. Which claim is
tested by which rule and margin is in :mod:`rlcomp.analysis.claims`; the book's verdict table is
drawn by :mod:`rlcomp.analysis.verdict_table`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from rlcomp.stats import EMPTY, Interval, interval

CONFIRMED = "confirmed"
"""The interval supports the claim by its rule."""

REFUTED = "refuted"
"""The interval contradicts the claim by its rule."""

NOT_RESOLVED = "not resolved"
"""The interval is too wide, or straddles the rule's boundary, or there is no measurement."""

ENVIRONMENT_DEPENDENT = "environment-dependent"
"""A claim over several environments that one confirms and another refutes."""

NOT_JUDGED = "not judged"
"""The published verdict of an environment-dominated measure (eval wall time, CPU %, RAM %).

Its interval over training seeds holds the seeds' spread but not the machine's own drift between
runs (load, frequency, page cache), which moves every job of a run together: repeated full runs on
one machine moved some of these verdicts while none resting on returns, policy time, footprints
or sizes moved. So the rule's reading on the run is shown beside the estimate, and no verdict
rests on it."""


def difference_ci(frame_a: pd.DataFrame, frame_b: pd.DataFrame, metric: str | None = "return_mean",
                  *, statistic: str = "mean", relative: bool = False,
                  pair_on: Sequence[str] = ("env", "train_seed"), confidence: float = 0.95,
                  reps: int = 2000, random_state: int = 0, method: str = "t") -> Interval:
    """The paired difference A - B over training seeds, with its interval.

    Each side's value for a seed is the mean of its rows of ``metric`` for that seed (over
    evaluation seeds, levels or whatever else the frame holds). Seeds present on both sides are
    paired; the interval is taken over the per-seed differences ``a - b`` (or
    ``100 * (a - b) / |b|`` when ``relative``), so it keeps the pairing: by default the t interval
    over the paired per-seed differences (:func:`rlcomp.stats.t_interval`), or with
    ``method="percentile"`` their percentile bootstrap by seed (needed for the IQM).

    Args:
        frame_a: tidy rows of the treatment (e.g. quantized).
        frame_b: tidy rows of the baseline (e.g. dense).
        metric: the metric compared; None when both frames hold one metric already.
        statistic: ``mean`` or ``iqm`` of the per-seed differences (``iqm`` needs
            ``method="percentile"``).
        relative: differences in percent of the baseline.
        pair_on: the columns that identify a seed on both sides.
        confidence: coverage of the interval.
        reps: bootstrap resamples (``percentile``).
        random_state: seed of the resampling (``percentile``).
        method: ``t`` or ``percentile`` (:data:`rlcomp.stats.METHODS`).

    Returns:
        ``Interval(estimate, ci_low, ci_high, n_seeds)``; all NaN with 0 seeds when no seed is on
        both sides.
    """
    keys = list(pair_on)
    sides = []
    for side in (frame_a, frame_b):
        rows = side if metric is None else side[side["metric"] == metric]
        sides.append(rows.groupby(keys)["value"].mean())
    pairs = pd.concat(sides, axis=1, keys=["a", "b"], join="inner").dropna()
    if pairs.empty:
        return EMPTY
    diff = pairs["a"] - pairs["b"]
    if relative:
        diff = 100.0 * diff / pairs["b"].abs()
    return interval(diff.to_numpy(), method, statistic, confidence, reps, random_state)


def _unresolvable(measured: Interval) -> bool:
    return any(math.isnan(v) for v in (measured.ci_low, measured.ci_high))


def _threshold(name: str, value: float) -> float:
    if not value >= 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return float(value)


def verdict_no_change(measured: Interval, tolerance: float) -> str:
    """"X does not change Y": confirmed if the interval lies within ``[-tolerance, tolerance]``.

    Refuted if it lies wholly outside (``ci_high < -tolerance`` or ``ci_low > tolerance``);
    otherwise not resolved.
    """
    t = _threshold("tolerance", tolerance)
    if _unresolvable(measured):
        return NOT_RESOLVED
    if -t <= measured.ci_low and measured.ci_high <= t:
        return CONFIRMED
    if measured.ci_high < -t or measured.ci_low > t:
        return REFUTED
    return NOT_RESOLVED


def verdict_reduces(measured: Interval, margin: float = 0.0) -> str:
    """"X reduces Y": confirmed if the interval lies below ``-margin`` (``ci_high < -margin``).

    Refuted if it lies wholly at or above ``-margin`` (``ci_low >= -margin``); otherwise not
    resolved.
    """
    m = _threshold("margin", margin)
    if _unresolvable(measured):
        return NOT_RESOLVED
    if measured.ci_high < -m:
        return CONFIRMED
    if measured.ci_low >= -m:
        return REFUTED
    return NOT_RESOLVED


def verdict_increases(measured: Interval, margin: float = 0.0) -> str:
    """"X increases Y": confirmed if the interval lies above ``margin`` (``ci_low > margin``).

    Refuted if it lies wholly at or below ``margin`` (``ci_high <= margin``); otherwise not
    resolved.
    """
    m = _threshold("margin", margin)
    if _unresolvable(measured):
        return NOT_RESOLVED
    if measured.ci_low > m:
        return CONFIRMED
    if measured.ci_high <= m:
        return REFUTED
    return NOT_RESOLVED


def verdict_at_most(measured: Interval, margin: float = 0.0) -> str:
    """"X does not raise Y by more than ``margin``": confirmed if ``ci_high <= margin``.

    Refuted if the interval lies wholly above ``margin`` (``ci_low > margin``); otherwise not
    resolved. (The mirror of :func:`verdict_increases`: it confirms what that refutes.)
    """
    m = _threshold("margin", margin)
    if _unresolvable(measured):
        return NOT_RESOLVED
    if measured.ci_high <= m:
        return CONFIRMED
    if measured.ci_low > m:
        return REFUTED
    return NOT_RESOLVED


RULES = {"no change": verdict_no_change, "reduces": verdict_reduces,
         "increases": verdict_increases, "at most": verdict_at_most}
"""The verdict rules by name (see the module docstring)."""


def verdict(measured: Interval, rule: str, threshold: float = 0.0) -> str:
    """The verdict on ``measured`` by the rule named ``rule`` (tolerance or margin ``threshold``).

    Raises:
        ValueError: for an unknown rule or a negative threshold.
    """
    if rule not in RULES:
        raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")
    return RULES[rule](measured, threshold)


def rule_text(rule: str, threshold: float = 0.0, unit: str = "",
              confidence: float = 0.95) -> str:
    """The rule in words, e.g. ``confirmed if the 95% CI lies within ±0.5 pp``."""
    ci = f"the {100 * confidence:.3g}% CI"
    t = f"{threshold:g}{' ' + unit if unit else ''}"
    if rule == "no change":
        return f"confirmed if {ci} lies within ±{t}"
    if rule == "reduces":
        return f"confirmed if {ci} lies below {'-' + t if threshold else '0'}"
    if rule == "increases":
        return f"confirmed if {ci} lies above {t if threshold else '0'}"
    if rule == "at most":
        return f"confirmed if {ci} lies at or below {t if threshold else '0'}"
    raise ValueError(f"rule must be one of {', '.join(RULES)}, got {rule!r}")


def describe(measured: Interval, unit: str = "", digits: int = 3,
             confidence: float = 0.95) -> str:
    """The measurement in words, e.g. ``-12.5 [-20.1, -4.53] pp (95% CI, 3 seeds)``."""
    if measured.n_seeds == 0 or math.isnan(measured.estimate):
        return "not measured"
    g = f"{{:.{digits}g}}"
    unit = f" {unit}" if unit else ""
    seeds = f"{measured.n_seeds} seed{'s' if measured.n_seeds != 1 else ''}"
    return (f"{g.format(measured.estimate)} [{g.format(measured.ci_low)}, "
            f"{g.format(measured.ci_high)}]{unit} ({100 * confidence:.3g}% CI, {seeds})")
