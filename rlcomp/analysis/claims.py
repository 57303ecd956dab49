"""The study's claims, and the test of each on the tidy results frame with its rule and margin.

A claim is a sentence of the poster tied to a figure (:class:`Claim`, :data:`POSTER_CLAIMS`, and
:data:`KEEP_IO_CLAIM`, the poster's proposed remedy). One function per claim (named after it,
e.g. :func:`quant_storage` for ``quant-storage``) takes the tidy frame (of one chapter's sweep or
of the whole store), measures the claim's effect and returns a :class:`ClaimResult`: the
measurement, the rule and its margin, and so the verdict. The rules and margins are fixed here,
before any number is seen; every difference is paired by environment and training seed, in
percent of the baseline where the two environments' scales differ.

How a measurement becomes a verdict (the paired difference and the three rules) is in
:mod:`rlcomp.analysis.verdict_rules`; the chapters show each result under its figure and the book
tabulates them all (:mod:`rlcomp.analysis.verdict_table`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from rlcomp.analysis.selection import GRID_METHODS
from rlcomp.analysis.verdict_rules import describe, difference_ci, verdict
from rlcomp.envs import STUDY_ENVS
from rlcomp.stats import EMPTY, Interval


@dataclass(frozen=True)
class Claim:
    """One claim of the study and where the study shows it."""

    id: str
    """Short stable name, e.g. ``quant-cpu-ram``."""
    text: str
    """The claim in the study's words (or close to them)."""
    figure: str
    """The study's figure, e.g. ``Fig 3``, or ``text``."""


POSTER_CLAIMS = (
    Claim("pruning-hurts-more", "All compression lowers performance, but pruning has more of an "
          "effect than rank reduction.", "Fig 3, 6"),
    Claim("rank-resources", "Rank reduction has a much more significant effect on RAM, CPU "
          "utilization and evaluation time.", "Fig 5, 7, 9"),
    Claim("return-evaltime", "Performance rises with evaluation time.", "Fig 4"),
    Claim("evaltime-drop-30", "Across most pruning levels evaluation time falls sharply around "
          "30% rank reduction.", "Fig 5"),
    Claim("finetune-deviation", "Fine-tuning lowers the spread of performance at a given eval "
          "time but raises it at a given RAM usage.", "Fig 4, 10"),
    Claim("minor-compression-gain", "Performance occasionally rises with minor compression "
          "(< 20%).", "Fig 3"),
    Claim("finetune-no-gain", "Fine-tuned compression gives no significant gain over naive "
          "compression, at a much higher cost.", "Fig 4, 10"),
    Claim("quant-cpu-ram", "8-bit quantization does not change CPU or RAM utilization.", "text"),
    Claim("quant-storage", "8-bit quantization shrinks the stored model from 0.3 MB to 0.1 MB "
          "(0.075 MB theoretical).", "text"),
)
"""The poster's claims, in its order."""

KEEP_IO_CLAIM = Claim(
    "keep-io-remedy", "Setting minimum ranks for the input/output layers would mitigate the "
    "steeper drop-off in performance at higher levels of rank reduction.", "Conclusion")
"""The study's proposed improvement (its conclusion's future direction), measured in chapter 02."""

CLAIMS = {claim.id: claim for claim in POSTER_CLAIMS}
"""The poster's claims by id."""

POSTER_STORAGE_MB = {"dense": 0.3, "int8": 0.1, "theoretical": 0.075}
"""The poster's reported storage in MB, keyed as
:data:`rlcomp.analysis.figures_bars.STORAGE_BARS`."""


@dataclass(frozen=True)
class ClaimResult:
    """A claim with what we measured, the rule applied and the verdict."""

    claim: Claim
    """The claim."""
    measured: Interval
    """The measured difference (or other effect) and its interval."""
    rule: str
    """``no change``, ``reduces`` or ``increases``."""
    threshold: float = 0.0
    """The rule's tolerance or margin, in ``unit``."""
    unit: str = ""
    """Unit of the measurement, e.g. ``pp`` or ``%``."""
    confidence: float = 0.95
    """Coverage of the interval."""
    what: str = ""
    """What was measured, e.g. ``CPU %, int8 - dense``."""

    @property
    def verdict(self) -> str:
        """The verdict by the rule."""
        return verdict(self.measured, self.rule, self.threshold)


def assess(claim: Claim, measured: Interval, rule: str, threshold: float = 0.0, unit: str = "",
           what: str = "", confidence: float = 0.95) -> ClaimResult:
    """A :class:`ClaimResult` (checks the rule and threshold at once).

    Raises:
        ValueError: for an unknown rule or a negative threshold.
    """
    verdict(measured, rule, threshold)
    return ClaimResult(claim, measured, rule, threshold, unit, confidence, what)


# Margins, and the methods they concern -----------------------------------------------------------

RESOURCE_TOLERANCE_PCT = 5.0
"""A resource measure "does not change" if the CI of its change lies within +-5% of dense."""

KEEP_IO_TOLERANCE_PCT = 10.0
"""The return "holds" while its change from dense stays above -10% of the dense return."""

LOWRANK_ALL, LOWRANK_KEEP_IO = "lowrank", "lowrank[keep_io]"
"""The ``method`` of rank reduction of every layer, and of the hidden layers only."""


# The rows a claim compares -----------------------------------------------------------------------

def _rows(frame: pd.DataFrame, spec: str, finetuned: bool = False) -> pd.DataFrame:
    return frame[(frame["spec"] == spec) & (frame["finetuned"] == finetuned)]


def _pooled(frame: pd.DataFrame, specs: list[str], finetuned: bool = False) -> pd.DataFrame:
    rows = frame[frame["spec"].isin(specs) & (frame["finetuned"] == finetuned)]
    return rows


def _percent_of_dense(frame: pd.DataFrame, rows: pd.DataFrame) -> pd.DataFrame:
    """``rows``' returns in % of the absolute dense return of the same environment and seed."""
    dense = _rows(frame, "dense")
    base = dense[dense["metric"] == "return_mean"].groupby(["env", "train_seed"])["value"]
    base = base.mean().abs().rename("base")
    rows = rows[rows["metric"] == "return_mean"].join(base, on=["env", "train_seed"], how="inner")
    return rows.assign(value=100.0 * rows["value"] / rows["base"])


def _naive_at(frame: pd.DataFrame, methods: tuple[str, ...], lowrank: float) -> pd.DataFrame:
    rows = frame[frame["method"].isin(list(methods)) & ~frame["finetuned"].astype(bool)]
    return rows[(rows["lowrank"] - lowrank).abs() < 1e-9]


# One function per claim --------------------------------------------------------------------------

def minor_compression_gain(frame: pd.DataFrame, spec: str = "prune=0.1") -> ClaimResult:
    """Return at light pruning (default 10%, global) against dense, in % of dense."""
    measured = difference_ci(_rows(frame, spec), _rows(frame, "dense"), "return_mean",
                             relative=True)
    return assess(CLAIMS["minor-compression-gain"], measured, "increases", 0.0, "%",
                  f"return change at {spec} vs dense")


def pruning_hurts_more(frame: pd.DataFrame, levels: tuple[float, ...] = (0.5, 0.9)) -> ClaimResult:
    """Return of pruning minus return of rank reduction at the same levels, in % of dense."""
    dense = _rows(frame, "dense")
    pruned = _pooled(frame, [f"prune={v:g}" for v in levels])
    ranked = _pooled(frame, [f"lowrank={v:g}" for v in levels])
    if pruned.empty or ranked.empty or dense.empty:
        measured = EMPTY
    else:
        measured = difference_ci(_percent_of_dense(frame, pruned),
                                 _percent_of_dense(frame, ranked), "return_mean")
    levels_text = ", ".join(f"{100 * v:g}%" for v in levels)
    return assess(CLAIMS["pruning-hurts-more"], measured, "reduces", 0.0, "% of dense",
                  f"return of pruning minus rank reduction at {levels_text}")


def rank_resources(frame: pd.DataFrame, spec: str = "lowrank=0.9",
                   metric: str = "cpu_seconds_per_step") -> ClaimResult:
    """Change of a resource measure under strong rank reduction, in % of dense (reduces?)."""
    measured = difference_ci(_rows(frame, spec), _rows(frame, "dense"), metric, relative=True)
    return assess(CLAIMS["rank-resources"], measured, "reduces", RESOURCE_TOLERANCE_PCT, "%",
                  f"{metric} change at {spec} vs dense")


def evaltime_drop_30(frame: pd.DataFrame, metric: str = "eval_seconds") -> ClaimResult:
    """Eval time at 40% rank reduction minus at 20%, in % of dense (a sharp fall near 30%?)."""
    measured = difference_ci(_rows(frame, "lowrank=0.4"), _rows(frame, "lowrank=0.2"), metric,
                             relative=True)
    return assess(CLAIMS["evaltime-drop-30"], measured, "reduces", RESOURCE_TOLERANCE_PCT, "%",
                  f"{metric} at lowrank=0.4 vs lowrank=0.2")


def evaltime_drop_30_across_pruning(frame: pd.DataFrame, metric: str = "eval_seconds",
                                    low: float = 0.2, high: float = 0.4) -> ClaimResult:
    """Eval time at 40% rank reduction minus at 20%, over every pruning level, in % (reduces?).

    :func:`evaltime_drop_30` compares unpruned models only; the study's claim is "across most
    pruning levels". Here each side is the mean over the pruning levels present at both rank
    levels (per environment and training seed), and the change is in % of the 20% side.
    """
    a = _naive_at(frame, GRID_METHODS, high)
    b = _naive_at(frame, GRID_METHODS, low)
    common = set(a["prune"].round(6)) & set(b["prune"].round(6))
    a, b = a[a["prune"].round(6).isin(common)], b[b["prune"].round(6).isin(common)]
    measured = difference_ci(a, b, metric, relative=True) if common else EMPTY
    return assess(CLAIMS["evaltime-drop-30"], measured, "reduces", RESOURCE_TOLERANCE_PCT, "%",
                  f"{metric} at {100 * high:g}% vs {100 * low:g}% rank reduction, mean over "
                  f"{len(common)} pruning level{'s' if len(common) != 1 else ''}")


def quant_cpu_ram(frame: pd.DataFrame, metric: str = "cpu_seconds_per_step") -> ClaimResult:
    """Change of a resource measure under 8-bit quantization, in % of dense (no change?)."""
    measured = difference_ci(_rows(frame, "quant=8"), _rows(frame, "dense"), metric,
                             relative=True)
    return assess(CLAIMS["quant-cpu-ram"], measured, "no change", RESOURCE_TOLERANCE_PCT, "%",
                  f"{metric} change, quant=8 vs dense")


def quant_storage(frame: pd.DataFrame) -> ClaimResult:
    """Our int8 file's size in % of the dense file's (the study: 0.1 / 0.3 MB = 33%)."""
    measured = difference_ci(_rows(frame, "quant=8"), _rows(frame, "dense"), "bytes",
                             relative=True)
    return assess(CLAIMS["quant-storage"], measured, "reduces", 50.0, "%",
                  "file bytes change, quant=8 vs dense (the study: -67%)")


def finetune_no_gain(frame: pd.DataFrame) -> ClaimResult:
    """Fine-tuned minus naive return over every compressed spec fine-tuned, in % of dense."""
    tuned = frame[frame["finetuned"] & (frame["spec"] != "dense")]
    specs = sorted(tuned["spec"].unique())
    naive = _pooled(frame, specs)
    dense = _rows(frame, "dense")
    if tuned.empty or naive.empty or dense.empty:
        return assess(CLAIMS["finetune-no-gain"], EMPTY, "no change", 5.0, "% of dense",
                      "fine-tuned minus naive return")
    measured = difference_ci(_percent_of_dense(frame, tuned), _percent_of_dense(frame, naive),
                             "return_mean")
    return assess(CLAIMS["finetune-no-gain"], measured, "no change", 5.0, "% of dense",
                  f"fine-tuned minus naive return over {len(specs)} specs")


# The study's remedy: input and output layers at full rank (chapter 02) ---------------------------

def keep_io_levels(frame: pd.DataFrame) -> list[float]:
    """The rank-reduction levels (> 0) with naive results for both low-rank variants."""
    naive = frame[~frame["finetuned"].astype(bool)]
    levels = [set(naive.loc[naive["method"] == m, "lowrank"].round(6))
              for m in (LOWRANK_ALL, LOWRANK_KEEP_IO)]
    return sorted(v for v in levels[0] & levels[1] if v > 0)


def keep_io_remedy(frame: pd.DataFrame, level: float | None = None) -> ClaimResult:
    """Return with input/output layers at full rank minus with every layer reduced (increases?).

    At ``level`` (default: the highest rank reduction both variants have), paired by environment
    and training seed, in % of the dense return.
    """
    levels = keep_io_levels(frame)
    level = levels[-1] if level is None and levels else level
    if level is None:
        return assess(KEEP_IO_CLAIM, EMPTY, "increases", 0.0, "% of dense",
                      "return with input/output kept minus all layers reduced")
    keep = _percent_of_dense(frame, _naive_at(frame, (LOWRANK_KEEP_IO,), level))
    plain = _percent_of_dense(frame, _naive_at(frame, (LOWRANK_ALL,), level))
    measured = difference_ci(keep, plain, "return_mean") if not (keep.empty or plain.empty) \
        else EMPTY
    return assess(KEEP_IO_CLAIM, measured, "increases", 0.0, "% of dense",
                  f"return with input/output kept minus all layers reduced, at {100 * level:g}% "
                  "rank reduction")


def _holds_up_to(changes: dict[float, Interval], tolerance: float) -> float:
    """The highest level up to which every mean change stays at or above ``-tolerance``."""
    held = 0.0
    for level in sorted(changes):
        if not changes[level].estimate >= -tolerance:
            break
        held = level
    return held


def _keep_io_verdict(plain: Interval, keep: Interval, diff: Interval, tolerance: float) -> str:
    if any(math.isnan(v) for v in (plain.ci_low, keep.ci_low, diff.ci_low)):
        return "cannot be judged (no measurement)"
    if plain.ci_low >= -tolerance:
        return "has no steep drop to remove (every layer reduced, the return holds)"
    if keep.ci_low >= -tolerance:
        return "removes the steep drop"
    if diff.ci_low > 0:
        return "lessens the drop but does not remove it"
    if diff.ci_high <= 0:
        return "does not lessen the drop"
    return "may lessen the drop, but the interval does not resolve it"


def keep_io_summary(frame: pd.DataFrame, tolerance: float = KEEP_IO_TOLERANCE_PCT) -> str:
    """Whether keeping the input/output layers at full rank removes the steep drop, per env.

    One Markdown bullet per environment: for each variant, the highest rank reduction up to
    which the mean return stays within ``tolerance`` % of dense, and the change of the return
    at the highest level (% of dense, 95% CI over training seeds); then the verdict at that
    level: the drop is *removed* if the CI of the kept variant's change lies at or above
    ``-tolerance``, *lessened* if the CI of the difference (kept minus all layers) lies above 0,
    *not lessened* if it lies at or below 0.
    """
    levels = keep_io_levels(frame)
    if not levels:
        return "No results for both low-rank variants."
    envs = list(dict.fromkeys(frame["env"]))
    envs = [e for e in STUDY_ENVS if e in envs] + sorted(e for e in envs if e not in STUDY_ENVS)
    lines = []
    for env in envs:
        mine = frame[frame["env"] == env]
        dense = _rows(mine, "dense")
        changes: dict[str, dict[float, Interval]] = {}
        for method in (LOWRANK_ALL, LOWRANK_KEEP_IO):
            changes[method] = {level: difference_ci(_naive_at(mine, (method,), level), dense,
                                                    "return_mean", relative=True)
                               for level in levels}
        top = levels[-1]
        keep = _percent_of_dense(mine, _naive_at(mine, (LOWRANK_KEEP_IO,), top))
        plain = _percent_of_dense(mine, _naive_at(mine, (LOWRANK_ALL,), top))
        diff = difference_ci(keep, plain, "return_mean") if not (keep.empty or plain.empty) \
            else EMPTY
        parts = []
        for method, name in ((LOWRANK_ALL, "every layer reduced"),
                             (LOWRANK_KEEP_IO, "input/output layers at full rank")):
            held = _holds_up_to(changes[method], tolerance)
            holds = (f"the return stays within {tolerance:g}% of dense up to {100 * held:g}% "
                     "rank reduction" if held > 0 else
                     f"the return falls more than {tolerance:g}% below dense already at "
                     f"{100 * levels[0]:g}%")
            parts.append(f"with {name}, {holds} and changes by "
                         f"{describe(changes[method][top], '%')} at {100 * top:g}%")
        verdict_text = _keep_io_verdict(changes[LOWRANK_ALL][top], changes[LOWRANK_KEEP_IO][top],
                                        diff, tolerance)
        lines.append(f"- **{env}**: {parts[0]}; {parts[1]}. At {100 * top:g}% rank reduction, "
                     f"keeping the input and output layers at full rank **{verdict_text}** "
                     f"(difference {describe(diff, 'pp of dense')}).")
    return "\n".join(lines)


# Spread of return at a given cost (Fig 4, 10) ----------------------------------------------------

DEVIATION_RULES = {"eval_seconds": "reduces", "seconds_per_step": "reduces",
                   "ram_percent": "increases", "rss_bytes": "increases"}
"""The rule of :func:`finetune_deviation` for each x metric: the study says fine-tuning lowers
the spread of return at a given eval time (Fig 4) and raises it at a given RAM usage (Fig 10)."""


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


def finetune_deviation(frame: pd.DataFrame, x_metric: str = "eval_seconds") -> ClaimResult:
    """Spread of return at a given ``x_metric``, fine-tuned minus naive, in pp of dense.

    The rule, fixed before any number was seen: for each environment and training seed, take the
    compressed specs that were fine-tuned (dense left out) and, separately for their naive and
    fine-tuned models, the points (x = ``x_metric``, y = return in % of that seed's |dense
    return|). The spread of return "at a given x" is the residual standard deviation of the
    least-squares line y ~ x through those points (a spec is a point; at least three specs). The
    measurement is the fine-tuned spread minus the naive spread, paired by environment and seed
    and bootstrapped over those pairs. The claim's rule follows :data:`DEVIATION_RULES`:
    ``reduces`` for eval time (Fig 4), ``increases`` for RAM (Fig 10), margin 0.

    Raises:
        ValueError: for an ``x_metric`` without a rule.
    """
    if x_metric not in DEVIATION_RULES:
        raise ValueError(f"x_metric must be one of {', '.join(DEVIATION_RULES)}, "
                         f"got {x_metric!r}")
    rule = DEVIATION_RULES[x_metric]
    what = f"spread of return around its line in {x_metric}, fine-tuned minus naive"
    specs = sorted(frame.loc[frame["finetuned"] & (frame["spec"] != "dense"), "spec"].unique())
    dense = _rows(frame, "dense")
    dense = dense[dense["metric"] == "return_mean"].groupby(["env", "train_seed"])["value"]
    base = dense.mean().abs().rename("base")
    rows = frame[frame["spec"].isin(specs) & frame["metric"].isin(["return_mean", x_metric])]
    points = (rows.groupby(["env", "train_seed", "finetuned", "spec", "metric"])["value"].mean()
              .unstack("metric"))
    records = {False: [], True: []}
    if not points.empty and {"return_mean", x_metric} <= set(points.columns):
        points = points.dropna().join(base, on=["env", "train_seed"]).dropna()
        points = points.assign(y=100.0 * points["return_mean"] / points["base"])
        for (env, seed, finetuned), group in points.groupby(["env", "train_seed", "finetuned"]):
            spread = _residual_spread(group[x_metric], group["y"])
            if spread == spread:
                records[bool(finetuned)].append({"env": env, "train_seed": seed,
                                                 "value": spread})
    tuned, naive = (pd.DataFrame(records[k], columns=["env", "train_seed", "value"])
                    for k in (True, False))
    measured = difference_ci(tuned, naive, None) if len(tuned) and len(naive) else EMPTY
    return assess(CLAIMS["finetune-deviation"], measured, rule, 0.0, "pp of dense", what)
