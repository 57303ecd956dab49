"""The study's claims, and the test of each, per environment, with its rule and margin.

A claim is a sentence of the poster tied to a figure (:class:`Claim`, :data:`POSTER_CLAIMS`, and
:data:`KEEP_IO_CLAIM`, the poster's proposed remedy). One function per claim (named after it,
e.g. :func:`quant_storage` for ``quant-storage``) takes the tidy frame of ONE environment (of a
chapter's sweep), measures what the poster's sentence says and returns a :class:`ClaimResult`:
the measurement with its interval over training seeds, the rule and its margin, and so the
verdict. :func:`per_environment` runs a claim's function on each environment of a frame; a claim
over both environments is judged by :func:`combined_verdict`.

How the measurements are made:

- The unit of replication is the training seed: every measurement is one number per seed (a
  paired difference, a ratio, a correlation...), and its interval is the t interval over the
  seeds (:func:`rlcomp.stats.interval`; coverage checked by ``benchmarks/interval_coverage.py``).
- Returns are normalized per environment and training seed as
  ``100 * (x - random) / (dense - random)`` (% of the dense agent's gain over random actions;
  dense is 100, random 0), with the random policy evaluated on the same evaluation episodes
  (the sweep's ``random`` jobs). Raw returns never cross environments.
- Costs are the policy's own where the poster's sentence is about the model: policy time per
  decision as the ratio to dense from interleaved A/B runs in a fresh pinned process
  (``policy_time_ratio``) and the isolated resident footprint (``isolated_footprint_bytes``).
  The poster's own measures (evaluation wall time, CPU %, RAM %) are measured by the same rules
  too, and labelled *environment-dominated* (:data:`rlcomp.rollout.ENVIRONMENT_DOMINATED`): the
  simulator's time and memory make most of them, and they drift with the machine between runs,
  so the rule's reading is shown (:attr:`ClaimResult.reading`) and their verdict is ``not
  judged`` (:data:`~rlcomp.analysis.verdict_rules.NOT_JUDGED`).

Every margin is a constant of this module (:data:`MARGINS`), fixed before any full-profile number
was read, and quoted on the verdict page. How a measurement becomes a verdict is in
:mod:`rlcomp.analysis.verdict_rules`; the book tabulates the results with
:mod:`rlcomp.analysis.verdict_table`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from rlcomp import rollout
from rlcomp.analysis.verdict_rules import (
    CONFIRMED,
    ENVIRONMENT_DEPENDENT,
    NOT_JUDGED,
    NOT_RESOLVED,
    REFUTED,
    describe,
    difference_ci,
    verdict,
)
from rlcomp.envs import STUDY_ENVS
from rlcomp.stats import EMPTY, Interval, interval


@dataclass(frozen=True)
class Claim:
    """One claim of the study and where the study shows it."""

    id: str
    """Short stable name, e.g. ``quant-cpu-ram``."""
    text: str
    """The poster's words, quoted exactly (a sentence or the part of one that states the claim;
    the poster's own figure references at its end are left to :attr:`figure`)."""
    figure: str
    """Where the poster says it: its figures, e.g. ``Fig 3, 6``, or the section of its text."""


POSTER_CLAIMS = (
    Claim("pruning-hurts-more", "All compression lowers performance, but pruning has more of an "
          "effect than rank reduction", "Fig 3, 6"),
    Claim("rank-resources", "On the other hand, rank reduction has a much more significant effect "
          "on working memory (RAM), CPU utilization, and evaluation time", "Fig 5, 7, 9"),
    Claim("return-evaltime", "As a byproduct of this, we observed a positive relationship between "
          "performance and evaluation time", "Fig 4"),
    Claim("evaltime-drop-30", "Across most pruning levels there was a sharp fall in evaluation "
          "time around 30% rank reduction", "Fig 5"),
    Claim("finetune-deviation", "Fine-tuning causes lower deviation between performance for a "
          "given eval time (Fig. 4), but higher deviation for a given RAM usage (Fig. 10)",
          "Fig 4, 10"),
    Claim("minor-compression-gain", "Occasionally, we saw performance rise with minor compression "
          "amounts (in the range of <20%).", "Fig 3"),
    Claim("finetune-no-gain", "Interestingly, fine-tuned compression did not give significant "
          "gains as opposed to naive compression, while taking significantly more resources to "
          "further train the RL agent.", "conclusion"),
    Claim("quant-cpu-ram", "We did not notice a significant difference in average cpu "
          "utilization or RAM utilization after compressing the model with in-training "
          "quantization.", "quantization section"),
    Claim("quant-storage", "However, we did notice benefits in the memory required to store the "
          "model weights, from 0.3MB to 0.1MB (compared to the 0.075MB theoretical storage "
          "required).", "quantization section"),
)
"""The poster's claims, in its order."""

KEEP_IO_CLAIM = Claim(
    "keep-io-remedy", "A future improvement in methodology is to mitigate the steeper drop-off in "
    "performance from higher levels of rank reduction than pruning - a potential improvement "
    "would be to set minimum ranks for input/output network layers.", "conclusion")
"""The study's proposed improvement (its conclusion's future direction), measured in chapter 02."""

CLAIMS = {claim.id: claim for claim in (*POSTER_CLAIMS, KEEP_IO_CLAIM)}
"""Every claim by id."""

POSTER_STORAGE_MB = {"dense": 0.3, "int8": 0.1, "theoretical": 0.075}
"""The poster's reported storage in MB, keyed as
:data:`rlcomp.analysis.figures_bars.STORAGE_BARS`."""


# Margins: fixed here, before any full-profile number was read ------------------------------------

MARGINS = {
    "pruning-hurts-more": 5.0,
    "all-compression-lowers": 0.0,
    "rank-resources": 10.0,
    "return-evaltime": 0.3,
    "evaltime-drop-30": 50.0,
    "evaltime-drop-30-sharp": 10.0,
    "finetune-deviation": 1.0,
    "minor-compression-gain": 1.0,
    "finetune-no-gain": 10.0,
    "finetune-cost": 10.0,
    "quant-cpu-ram": 10.0,
    "quant-storage": 50.0,
    "keep-io-remedy": 5.0,
}
"""Each test's margin, in the unit of its measurement:

- ``pruning-hurts-more``: pruning's normalized return must lie at least 5 pp (of the dense
  agent's gain over random) below rank reduction's at the same levels;
- ``all-compression-lowers``: the mean normalized return of the compressed models lies below
  dense (margin 0 pp);
- ``rank-resources``: rank reduction's effect on a cost (|change from dense| in %) must exceed
  pruning's at the same levels by more than 10 pp to be "much more significant";
- ``return-evaltime``: a "positive relationship" is a correlation above 0.3;
- ``evaltime-drop-30``: "most pruning levels" is more than 50% of them; a fall is *sharp* if one
  step between consecutive measured rank-reduction levels (10% apart without pruning, 20% on the
  grid with pruning) takes at least 10% (``evaltime-drop-30-sharp``) off the time of the
  unreduced model, and it is *around 30%* if the largest such step ends at 30% or 40%;
- ``finetune-deviation``: the spread of normalized return must differ by more than 1 pp;
- ``minor-compression-gain``: a rise is more than 1 pp of normalized return above dense;
- ``finetune-no-gain``: "no significant gain" is a gain of at most 10 pp; ``finetune-cost``: "much
  more resources" is more than 10 times the CPU seconds of naive compression;
- ``quant-cpu-ram``: "no significant difference" is a change within ±10%;
- ``quant-storage``: the int8 file must be more than 50% smaller (the study: 67%);
- ``keep-io-remedy``: keeping the input/output layers at full rank must add more than 5 pp.
"""

MINOR_LEVEL = 0.2
"""The poster's "minor compression": levels below 20%."""

HURT_RANGE = (20.0, 95.0)
"""A compression that *hurt but did not destroy* the agent: its naive normalized return (mean over
training seeds) lies in this range (%). Fine-tuning's gain is judged on these."""

AROUND_30 = (0.3, 0.4)
"""Rank-reduction levels at which a step "ends around 30%": 0.2 -> 0.3 and 0.3 -> 0.4 on the
10%-spaced curve, 0.2 -> 0.4 on the 20%-spaced grid."""


LOWRANK_ALL, LOWRANK_KEEP_IO = "lowrank", "lowrank[keep_io]"
"""The ``method`` of rank reduction of every layer, and of the hidden layers only."""

PRUNE_GLOBAL = "prune"
"""The ``method`` of global magnitude pruning."""

MEASURE_NAMES = {
    "return": "normalized return",
    "return_all": "normalized return of every compressed model",
    "return_vs_rank": "normalized return of pruning minus rank reduction",
    "policy_time_ratio": "policy time per decision",
    "isolated_footprint_bytes": "isolated footprint",
    "eval_seconds": "evaluation wall time",
    "ram_percent": "RAM %",
    "cpu_percent": "CPU %",
    "bytes": "file bytes",
    "finetune_cpu_seconds": "CPU seconds",
}
"""Words for each measured quantity: the ``measure`` column of ``book/data/verdicts.csv``, which
also keys its rows (``rlcomp.verdicts_check``), so these stay as they are."""

MEASURE_WORDS = {
    "policy_time_ratio": "policy's time per decision",
    "isolated_footprint_bytes": "model's own memory (isolated footprint)",
    "eval_seconds": "evaluation wall time",
    "ram_percent": "share of the machine's RAM",
    "cpu_percent": "CPU utilization",
}
"""How a measured cost reads in the sentences of :attr:`ClaimResult.what`."""

RETURN_DIFFERENCE = "pp"
"""The unit of a difference of normalized returns: percentage points (the dense agent is 100%,
uniformly random actions 0%)."""


def _words(metric: str) -> str:
    return MEASURE_WORDS.get(metric, MEASURE_NAMES.get(metric, metric))


@dataclass(frozen=True)
class ClaimResult:
    """A claim with what we measured on one environment, the rule applied and the verdict."""

    claim: Claim
    """The claim."""
    measured: Interval
    """The measured effect and its interval over training seeds."""
    rule: str
    """A rule of :data:`rlcomp.analysis.verdict_rules.RULES`."""
    threshold: float = 0.0
    """The rule's tolerance or margin, in ``unit``."""
    unit: str = ""
    """Unit of the measurement as it follows a number, e.g. ``pp`` or ``%``; empty for a
    correlation."""
    confidence: float = 0.95
    """Coverage of the interval."""
    what: str = ""
    """What was measured, in plain words (no spec texts or variable names)."""
    env: str = ""
    """The environment measured."""
    measure: str = ""
    """The quantity measured (see :data:`MEASURE_NAMES`)."""
    environment_dominated: bool = False
    """Whether the measure is mostly the simulator's (``rollout.ENVIRONMENT_DOMINATED``)."""

    @property
    def reading(self) -> str:
        """What the rule reads from this run's interval."""
        return verdict(self.measured, self.rule, self.threshold)

    @property
    def verdict(self) -> str:
        """The published verdict: the reading, or ``not judged`` if environment-dominated."""
        return NOT_JUDGED if self.environment_dominated else self.reading


def assess(claim: Claim, measured: Interval, rule: str, threshold: float = 0.0, unit: str = "",
           what: str = "", confidence: float = 0.95, *, measure: str = "",
           env: str = "") -> ClaimResult:
    """A :class:`ClaimResult` (checks the rule and threshold at once).

    Raises:
        ValueError: for an unknown rule or a negative threshold.
    """
    verdict(measured, rule, threshold)
    dominated = measure in rollout.ENVIRONMENT_DOMINATED
    return ClaimResult(claim, measured, rule, threshold, unit, confidence, what, env,
                       MEASURE_NAMES.get(measure, measure), dominated)


def per_environment(measure: Callable[[pd.DataFrame], ClaimResult],
                    frame: pd.DataFrame) -> list[ClaimResult]:
    """``measure`` on each environment of ``frame`` (study environments first), env recorded."""
    present = list(dict.fromkeys(frame["env"]))
    envs = [e for e in STUDY_ENVS if e in present] + sorted(e for e in present
                                                            if e not in STUDY_ENVS)
    out = []
    for env in envs:
        result = measure(frame[frame["env"] == env])
        out.append(ClaimResult(**{**result.__dict__, "env": env}))
    return out


def combined_verdict(results: Sequence[ClaimResult]) -> str:
    """One verdict over environments.

    Confirmed (or refuted, or not judged) only if every environment's verdict is;
    ``environment-dependent`` when one confirms and another refutes; otherwise not resolved.
    """
    verdicts = {r.verdict for r in results}
    if len(verdicts) == 1:
        return verdicts.pop()
    if {CONFIRMED, REFUTED} <= verdicts:
        return ENVIRONMENT_DEPENDENT
    return NOT_RESOLVED


# The rows a claim compares -----------------------------------------------------------------------

def _rows(frame: pd.DataFrame, spec: str, finetuned: bool = False) -> pd.DataFrame:
    return frame[(frame["spec"] == spec) & (frame["finetuned"] == finetuned)]


def _per_seed(rows: pd.DataFrame, metric: str) -> pd.Series:
    """Each training seed's mean of ``metric`` over ``rows`` (indexed by env and seed)."""
    picked = rows[rows["metric"] == metric]
    return picked.groupby(["env", "train_seed"])["value"].mean()


def normalized_returns(frame: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """``rows``' mean returns as ``100 * (x - random) / (dense - random)`` per env and seed.

    ``random`` and ``dense`` are the same seed's mean returns of the ``random`` and naive dense
    jobs of ``frame``; seeds without both are left out. The result has the tidy columns, with
    ``value`` the normalized return (%) and ``metric`` ``return_mean``.
    """
    anchors = pd.concat([_per_seed(_rows(frame, "random"), "return_mean").rename("random"),
                         _per_seed(_rows(frame, "dense"), "return_mean").rename("dense")],
                        axis=1, join="inner").dropna()
    anchors = anchors[anchors["dense"] != anchors["random"]]
    picked = rows[rows["metric"] == "return_mean"].merge(
        anchors.reset_index(), on=["env", "train_seed"], how="inner")
    value = 100.0 * (picked["value"] - picked["random"]) / (picked["dense"] - picked["random"])
    return picked.drop(columns=["random", "dense"]).assign(value=value)


def _naive(frame: pd.DataFrame, method: str, prune: float | None = None,
           lowrank: float | None = None) -> pd.DataFrame:
    rows = frame[(frame["method"] == method) & ~frame["finetuned"].astype(bool)]
    if prune is not None:
        rows = rows[(rows["prune"] - prune).abs() < 1e-9]
    if lowrank is not None:
        rows = rows[(rows["lowrank"] - lowrank).abs() < 1e-9]
    return rows


def _levels(frame: pd.DataFrame, method: str, column: str, **fixed: float) -> set[float]:
    """The levels (> 0) in ``column`` of ``method``'s naive rows, other levels ``fixed``."""
    return {round(v, 6) for v in _naive(frame, method, **fixed)[column] if v > 0}


def _seed_interval(values: pd.Series, confidence: float = 0.95) -> Interval:
    values = values.dropna()
    return interval(values.to_numpy(), confidence=confidence) if len(values) else EMPTY


def _relative_change(rows: pd.DataFrame, dense: pd.DataFrame, metric: str) -> pd.Series:
    """Per seed, ``100 * (rows / dense - 1)`` of ``metric`` (a ratio metric is already / dense)."""
    if metric == "policy_time_ratio":
        return 100.0 * (_per_seed(rows, metric) - 1.0)
    a, b = _per_seed(rows, metric), _per_seed(dense, metric)
    a, b = a.align(b, join="inner")
    return 100.0 * (a / b - 1.0)


# One function per claim (each on one environment's rows) ----------------------------------------

def minor_compression_gain(frame: pd.DataFrame) -> ClaimResult:
    """Normalized return at the minor levels (< 20%) of every method, minus dense (existence).

    Each minor spec (naive, level below :data:`MINOR_LEVEL`) gets an interval of its normalized
    return minus 100, at the Bonferroni-adjusted confidence ``1 - 0.05 / k`` for ``k`` specs. The
    claim ("occasionally rises") is confirmed if some spec's interval lies above the margin,
    refuted if every spec's lies at or below it. The result reports the spec that decides: the
    one with the highest lower bound if it confirms, else the one with the highest upper bound.
    """
    claim, margin = CLAIMS["minor-compression-gain"], MARGINS["minor-compression-gain"]
    naive = frame[~frame["finetuned"].astype(bool) & (frame["level"] > 0)
                  & (frame["level"] < MINOR_LEVEL)]
    specs = sorted(naive["spec"].unique())
    if not specs:
        return assess(claim, EMPTY, "increases", margin, RETURN_DIFFERENCE,
                      f"no model compressed by less than {100 * MINOR_LEVEL:g}%", measure="return")
    confidence = 1.0 - 0.05 / len(specs)
    found = {spec: _seed_interval(normalized_returns(frame, _rows(frame, spec))
                                  .groupby(["env", "train_seed"])["value"].mean() - 100.0,
                                  confidence) for spec in specs}
    best_low = max(found, key=lambda s: found[s].ci_low)
    spec = best_low if found[best_low].ci_low > margin else max(found,
                                                                key=lambda s: found[s].ci_high)
    adjusted = (f"; its interval widened for {len(specs)} comparisons (Bonferroni)"
                if len(specs) > 1 else "")
    return assess(claim, found[spec], "increases", margin, RETURN_DIFFERENCE,
                  f"normalized return of the best of the {len(specs)} models compressed by less "
                  f"than {100 * MINOR_LEVEL:g}%, minus the dense agent's{adjusted}", confidence,
                  measure="return")


def _common_levels(frame: pd.DataFrame) -> list[float]:
    """Levels at which both pruning alone and rank reduction alone were measured."""
    return sorted(_levels(frame, PRUNE_GLOBAL, "prune", lowrank=0.0)
                  & _levels(frame, LOWRANK_ALL, "lowrank", prune=0.0))


def _mean_over_levels(per_level: list[pd.Series]) -> pd.Series:
    """Per seed, the mean over levels (seeds present at every level only)."""
    if not per_level:
        return pd.Series(dtype=float)
    return pd.concat(per_level, axis=1, join="inner").mean(axis=1)


def pruning_hurts_more(frame: pd.DataFrame) -> ClaimResult:
    """Normalized return of pruning minus rank reduction, mean over their common levels (pp)."""
    claim, margin = CLAIMS["pruning-hurts-more"], MARGINS["pruning-hurts-more"]
    levels = _common_levels(frame)
    diffs = []
    for level in levels:
        pruned = normalized_returns(frame, _naive(frame, PRUNE_GLOBAL, prune=level, lowrank=0.0))
        ranked = normalized_returns(frame, _naive(frame, LOWRANK_ALL, lowrank=level, prune=0.0))
        a, b = pruned.groupby(["env", "train_seed"])["value"].mean(), ranked.groupby(
            ["env", "train_seed"])["value"].mean()
        diffs.append((a - b).dropna())
    measured = _seed_interval(_mean_over_levels(diffs)) if levels else EMPTY
    return assess(claim, measured, "reduces", margin, RETURN_DIFFERENCE,
                  "normalized return pruned minus normalized return rank-reduced at the same "
                  f"levels, {_level_list(levels)}", measure="return_vs_rank")


def all_compression_lowers(frame: pd.DataFrame) -> ClaimResult:
    """Mean normalized return of every naive compressed model of the frame, minus dense (pp)."""
    claim = CLAIMS["pruning-hurts-more"]
    rows = frame[~frame["finetuned"].astype(bool) & ~frame["spec"].isin(["dense", "random"])]
    per_seed = normalized_returns(frame, rows).groupby(["env", "train_seed"])["value"].mean()
    return assess(claim, _seed_interval(per_seed - 100.0), "reduces",
                  MARGINS["all-compression-lowers"], RETURN_DIFFERENCE,
                  f"mean normalized return of all {rows['spec'].nunique()} compressed models, "
                  "minus the dense agent's", measure="return_all")


def _level_list(levels: Sequence[float]) -> str:
    """The levels a measurement averages over, in words: ``at 50%``, ``mean over 10%, 20%``."""
    words = [f"{100 * v:g}%" for v in levels]
    if len(words) == 1:
        return f"at {words[0]}"
    return f"mean over {', '.join(words)}" if words else "at no common level"


def rank_resources(frame: pd.DataFrame, metric: str = "policy_time_ratio") -> ClaimResult:
    """|change of a cost| under rank reduction minus under pruning, at their common levels (pp).

    Per seed and level, each method's change of ``metric`` from dense in %; the measurement is
    the mean over levels of ``|rank reduction's| - |pruning's|``. The claim ("a much more
    significant effect") is confirmed if it exceeds the margin.
    """
    claim, margin = CLAIMS["rank-resources"], MARGINS["rank-resources"]
    levels = _common_levels(frame)
    dense = _rows(frame, "dense")
    diffs = []
    for level in levels:
        ranked = _relative_change(_naive(frame, LOWRANK_ALL, lowrank=level, prune=0.0), dense,
                                  metric)
        pruned = _relative_change(_naive(frame, PRUNE_GLOBAL, prune=level, lowrank=0.0), dense,
                                  metric)
        diffs.append((ranked.abs() - pruned.abs()).dropna())
    measured = _seed_interval(_mean_over_levels(diffs)) if levels else EMPTY
    return assess(claim, measured, "increases", margin, "pp",
                  f"how far rank reduction moves the {_words(metric)} from the dense agent's "
                  "minus how far pruning does (each in % of dense, either direction), "
                  f"{_level_list(levels)}", measure=metric)


def _correlation(x: pd.Series, y: pd.Series) -> float:
    if len(x) < 3 or x.std() == 0 or y.std() == 0:
        return math.nan
    return float(np.corrcoef(x.to_numpy(), y.to_numpy())[0, 1])


def return_evaltime(frame: pd.DataFrame, metric: str = "eval_seconds") -> ClaimResult:
    """Per seed, the correlation of normalized return with ``metric`` over the naive models."""
    claim, margin = CLAIMS["return-evaltime"], MARGINS["return-evaltime"]
    naive = frame[~frame["finetuned"].astype(bool) & ~frame["spec"].isin(["random"])]
    returns = normalized_returns(frame, naive).groupby(["env", "train_seed", "spec"])["value"]
    x = naive[naive["metric"] == metric].groupby(["env", "train_seed", "spec"])["value"].mean()
    points = pd.concat([x.rename("x"), returns.mean().rename("y")], axis=1, join="inner")
    points = points.dropna()
    per_seed = pd.Series({key: _correlation(group["x"], group["y"])
                          for key, group in points.groupby(level=["env", "train_seed"])},
                         dtype=float)
    return assess(claim, _seed_interval(per_seed), "increases", margin, "",
                  f"correlation (Pearson r, -1 to 1) of normalized return with the "
                  f"{_words(metric)}, over {points.index.get_level_values('spec').nunique()} "
                  "models compressed without fine-tuning", measure=metric)


def _largest_step(curve: pd.Series) -> tuple[float, float]:
    """(level, fall in % of the level-0 value) of the largest fall between consecutive levels."""
    curve = curve.sort_index()
    start = curve.iloc[0]
    falls = -100.0 * curve.diff().iloc[1:] / start
    return float(falls.idxmax()), float(falls.max())


def sharp_fall_share(curves: dict[float, pd.Series]) -> float:
    """Share (%) of pruning levels whose eval-time curve over rank reduction falls sharply at 30%.

    ``curves`` maps a pruning level to its curve (rank-reduction level -> time, level 0 first).
    A curve counts if its largest fall between consecutive levels ends at a level of
    :data:`AROUND_30` and takes at least the ``evaltime-drop-30-sharp`` margin (% of the time at
    level 0).
    """
    hits = []
    for curve in curves.values():
        level, fall = _largest_step(curve)
        hits.append(any(abs(level - a) < 1e-9 for a in AROUND_30)
                    and fall >= MARGINS["evaltime-drop-30-sharp"])
    return 100.0 * float(np.mean(hits)) if hits else math.nan


def evaltime_drop_30(frame: pd.DataFrame, metric: str = "eval_seconds") -> ClaimResult:
    """Per seed, the share of pruning levels with a sharp fall of ``metric`` around 30% rank cut.

    See :func:`sharp_fall_share`; the claim ("across most pruning levels") is confirmed if the
    share's interval lies above the margin (50%).
    """
    claim, margin = CLAIMS["evaltime-drop-30"], MARGINS["evaltime-drop-30"]
    naive = frame[~frame["finetuned"].astype(bool) & frame["method"].isin(
        ["dense", PRUNE_GLOBAL, LOWRANK_ALL, f"{LOWRANK_ALL}+{PRUNE_GLOBAL}"])]
    naive = naive[naive["metric"] == metric]
    shares = {}
    for (env, seed), rows in naive.groupby(["env", "train_seed"]):
        curves = {}
        for prune, by_prune in rows.groupby(rows["prune"].round(6)):
            curve = by_prune.groupby(by_prune["lowrank"].round(6))["value"].mean()
            if len(curve) >= 3 and 0.0 in curve.index:
                curves[prune] = curve
        if curves:
            shares[(env, seed)] = sharp_fall_share(curves)
    per_seed = pd.Series(shares, dtype=float)
    return assess(claim, _seed_interval(per_seed), "increases", margin, "% of pruning levels",
                  f"share of pruning levels whose {_words(metric)} falls most steeply (by at "
                  f"least {MARGINS['evaltime-drop-30-sharp']:g}% of the unreduced model's) at "
                  f"{' or '.join(f'{100 * a:g}%' for a in AROUND_30)} rank reduction",
                  measure=metric)


def _residual_spread(x: pd.Series, y: pd.Series) -> float:
    """Residual standard deviation of the least-squares line ``y ~ x`` (n - 2 degrees of freedom).

    NaN for fewer than three points; a constant ``x`` gives the spread around the mean of ``y``.
    """
    n = len(x)
    if n < 3:
        return float("nan")
    dx, dy = x - x.mean(), y - y.mean()
    var = float((dx * dx).sum())
    slope = float((dx * dy).sum()) / var if var > 0 else 0.0
    residual = dy - slope * dx
    return float(((residual * residual).sum() / (n - 2)) ** 0.5)


DEVIATION_RULES = {"eval_seconds": "reduces", "ram_percent": "increases",
                   "isolated_footprint_bytes": "increases"}
"""The rule of :func:`finetune_deviation` for each x metric: the study says fine-tuning lowers
the spread of return at a given eval time (Fig 4) and raises it at a given RAM usage (Fig 10)."""


def finetune_deviation(frame: pd.DataFrame, x_metric: str = "eval_seconds") -> ClaimResult:
    """Spread of normalized return at a given ``x_metric``, fine-tuned minus naive (pp).

    For each training seed, take the compressed specs that were fine-tuned (dense left out) and,
    separately for their naive and fine-tuned models, the points (x = ``x_metric``, y =
    normalized return). The spread "at a given x" is the residual standard deviation of the
    least-squares line y ~ x (a spec is a point; at least three). The measurement is the
    fine-tuned spread minus the naive spread, per seed. The rule follows
    :data:`DEVIATION_RULES` with the ``finetune-deviation`` margin.

    Raises:
        ValueError: for an ``x_metric`` without a rule.
    """
    if x_metric not in DEVIATION_RULES:
        raise ValueError(f"x_metric must be one of {', '.join(DEVIATION_RULES)}, "
                         f"got {x_metric!r}")
    claim, margin = CLAIMS["finetune-deviation"], MARGINS["finetune-deviation"]
    specs = sorted(frame.loc[frame["finetuned"] & ~frame["spec"].isin(["dense", "random"]),
                             "spec"].unique())
    rows = frame[frame["spec"].isin(specs)]
    y = normalized_returns(frame, rows).groupby(["env", "train_seed", "finetuned", "spec"])[
        "value"].mean()
    x = rows[rows["metric"] == x_metric].groupby(["env", "train_seed", "finetuned", "spec"])[
        "value"].mean()
    points = pd.concat([x.rename("x"), y.rename("y")], axis=1, join="inner").dropna()
    spreads = {}
    for (env, seed, tuned), group in points.groupby(level=["env", "train_seed", "finetuned"]):
        spreads[(env, seed, bool(tuned))] = _residual_spread(group["x"], group["y"])
    table = pd.Series(spreads, dtype=float)
    if table.empty:
        diff = table
    else:
        table.index.names = ["env", "train_seed", "finetuned"]
        wide = table.unstack("finetuned")
        diff = (wide[True] - wide[False]) if {True, False} <= set(wide.columns) else \
            pd.Series(dtype=float)
    return assess(claim, _seed_interval(diff), DEVIATION_RULES[x_metric], margin,
                  RETURN_DIFFERENCE,
                  f"scatter of normalized return around a straight line in the "
                  f"{_words(x_metric)} (residual standard deviation), fine-tuned minus without "
                  f"fine-tuning, over {len(specs)} compressed models", measure=x_metric)


def _gain(frame: pd.DataFrame, specs: Sequence[str]) -> pd.Series:
    """Per seed, the mean over ``specs`` of fine-tuned minus naive normalized return (pp)."""
    per_spec = []
    for spec in specs:
        tuned = normalized_returns(frame, _rows(frame, spec, True))
        naive = normalized_returns(frame, _rows(frame, spec, False))
        a = tuned.groupby(["env", "train_seed"])["value"].mean()
        b = naive.groupby(["env", "train_seed"])["value"].mean()
        per_spec.append((a - b).dropna())
    return _mean_over_levels(per_spec)


def hurt_specs(frame: pd.DataFrame) -> list[str]:
    """Fine-tuned compressed specs that the compression hurt but did not destroy.

    Those whose naive normalized return (mean over seeds) lies in :data:`HURT_RANGE`.
    """
    specs = sorted(frame.loc[frame["finetuned"] & ~frame["spec"].isin(["dense", "random"]),
                             "spec"].unique())
    low, high = HURT_RANGE
    kept = []
    for spec in specs:
        mean = normalized_returns(frame, _rows(frame, spec))["value"].mean()
        if low <= mean <= high:
            kept.append(spec)
    return kept


FINETUNE_CONTROLS = {"dense": "the uncompressed agent", "quant=8": "the int8 model"}
"""The controls :func:`finetune_no_gain` reports beside its measurement, in words."""


def finetune_no_gain(frame: pd.DataFrame) -> ClaimResult:
    """Fine-tuned minus naive normalized return on the compressions that hurt (pp), at most 10.

    Judged on :func:`hurt_specs` only (a destroyed agent's "gain" says nothing about
    fine-tuning); the dense and int8 controls' gains are reported beside it.
    """
    claim, margin = CLAIMS["finetune-no-gain"], MARGINS["finetune-no-gain"]
    specs = hurt_specs(frame)
    measured = _seed_interval(_gain(frame, specs)) if specs else EMPTY
    controls = []
    for control, words in FINETUNE_CONTROLS.items():
        gain = _gain(frame, [control])
        if len(gain):
            controls.append(f"{words} gains {describe(_seed_interval(gain), 'pp', 3)}")
    control_text = f"; for comparison, fine-tuning {' and '.join(controls)}" if controls else ""
    return assess(claim, measured, "at most", margin, RETURN_DIFFERENCE,
                  "normalized return gained by fine-tuning (fine-tuned minus without), mean over "
                  f"the {len(specs)} compressed models that compression hurt but did not "
                  f"destroy{control_text}", measure="return")


def finetune_cost(frame: pd.DataFrame) -> ClaimResult:
    """CPU seconds to make a fine-tuned model over those to make the naive one (times)."""
    claim, margin = CLAIMS["finetune-no-gain"], MARGINS["finetune-cost"]
    tuned = frame[frame["finetuned"] & ~frame["spec"].isin(["dense", "random"])]
    naive = frame[~frame["finetuned"].astype(bool) & frame["spec"].isin(tuned["spec"].unique())]
    spent = _per_seed(tuned, "finetune_cpu_seconds") + _per_seed(tuned, "compress_cpu_seconds")
    base = _per_seed(naive, "compress_cpu_seconds")
    spent, base = spent.align(base, join="inner")
    ratio = (spent / base.where(base > 0)).dropna()
    return assess(claim, _seed_interval(ratio), "increases", margin, "x",
                  "CPU time to compress and fine-tune, in multiples of the CPU time to compress "
                  "alone", measure="finetune_cpu_seconds")


def quant_cpu_ram(frame: pd.DataFrame, metric: str = "policy_time_ratio") -> ClaimResult:
    """Change of a cost under 8-bit quantization, in % of dense (within ±10%?)."""
    claim, margin = CLAIMS["quant-cpu-ram"], MARGINS["quant-cpu-ram"]
    change = _relative_change(_rows(frame, "quant=8"), _rows(frame, "dense"), metric)
    return assess(claim, _seed_interval(change), "no change", margin, "%",
                  f"change of the {_words(metric)}, int8 against dense, in % of dense",
                  measure=metric)


def quant_storage(frame: pd.DataFrame) -> ClaimResult:
    """Our int8 file's size change from the dense file's, in % (the study: -67%)."""
    measured = difference_ci(_rows(frame, "quant=8"), _rows(frame, "dense"), "bytes",
                             relative=True)
    poster = 100.0 * (POSTER_STORAGE_MB["int8"] / POSTER_STORAGE_MB["dense"] - 1.0)
    return assess(CLAIMS["quant-storage"], measured, "reduces", MARGINS["quant-storage"], "%",
                  f"change of the stored model's size, int8 against dense, in % of dense (the "
                  f"poster: {poster:.0f}%)", measure="bytes")


# The study's remedy: input and output layers at full rank (chapter 02) ---------------------------

def keep_io_levels(frame: pd.DataFrame) -> list[float]:
    """The rank-reduction levels (> 0) with naive results for both low-rank variants."""
    both = _levels(frame, LOWRANK_ALL, "lowrank") & _levels(frame, LOWRANK_KEEP_IO, "lowrank")
    return sorted(both)


def keep_io_remedy(frame: pd.DataFrame, level: float | None = None) -> ClaimResult:
    """Normalized return with input/output layers at full rank minus every layer reduced (pp).

    At ``level`` (default: the highest rank reduction both variants have), per training seed.
    """
    claim, margin = KEEP_IO_CLAIM, MARGINS["keep-io-remedy"]
    levels = keep_io_levels(frame)
    level = levels[-1] if level is None and levels else level
    if level is None:
        return assess(claim, EMPTY, "increases", margin, RETURN_DIFFERENCE,
                      "normalized return with the input and output layers kept at full rank "
                      "minus with every layer reduced", measure="return")
    keep = normalized_returns(frame, _naive(frame, LOWRANK_KEEP_IO, lowrank=level))
    plain = normalized_returns(frame, _naive(frame, LOWRANK_ALL, lowrank=level, prune=0.0))
    a = keep.groupby(["env", "train_seed"])["value"].mean()
    b = plain.groupby(["env", "train_seed"])["value"].mean()
    return assess(claim, _seed_interval((a - b).dropna()), "increases", margin,
                  RETURN_DIFFERENCE,
                  "normalized return with the input and output layers kept at full rank minus "
                  f"with every layer reduced, at {100 * level:g}% rank reduction",
                  measure="return")


def keep_io_summary(frame: pd.DataFrame) -> str:
    """Per environment, the normalized return of both low-rank variants at each level (Markdown).

    One bullet per environment: for each variant, the highest rank reduction up to which the mean
    normalized return stays at or above ``100 - keep-io margin`` %, and the remedy's verdict at the
    highest level.
    """
    levels = keep_io_levels(frame)
    if not levels:
        return "No results for both low-rank variants."
    floor = 100.0 - MARGINS["keep-io-remedy"]
    lines = []
    for result in per_environment(keep_io_remedy, frame):
        mine = frame[frame["env"] == result.env]
        parts = []
        for method, name, extra in ((LOWRANK_ALL, "every layer reduced", {"prune": 0.0}),
                                    (LOWRANK_KEEP_IO, "input/output layers at full rank", {})):
            held = 0.0
            for level in levels:
                rows = normalized_returns(mine, _naive(mine, method, lowrank=level, **extra))
                if not rows["value"].mean() >= floor:
                    break
                held = level
            parts.append(f"with {name}, the normalized return stays at or above {floor:g}% up "
                         f"to {100 * held:g}% rank reduction")
        lines.append(f"- **{result.env}**: {parts[0]}; {parts[1]}. Keeping the input and output "
                     f"layers adds {describe(result.measured, 'pp')} at {100 * levels[-1]:g}%: "
                     f"**{result.verdict}**.")  # returns: never environment-dominated
    return "\n".join(lines)
