"""Each of the study's claims, measured on the tidy results frame, with its verdict.

One function per claim; each takes the tidy frame (of one chapter's sweep or of the whole store)
and returns a :class:`~rlcomp.analysis.claims.ClaimResult`. The chapters show each under its
figure; the book's introduction tabulates them all. The rules and thresholds are fixed here,
before any number is seen, and every difference is paired by environment and training seed, in
percent of the baseline where the two environments' scales differ.
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

from rlcomp.analysis.claims import POSTER_CLAIMS, ClaimResult, assess, difference_ci
from rlcomp.analysis.stats import EMPTY

CLAIMS = {claim.id: claim for claim in POSTER_CLAIMS}

RESOURCE_TOLERANCE_PCT = 5.0
"""A resource measure "does not change" if the CI of its change lies within +-5% of dense."""


def _rows(frame: pd.DataFrame, spec: str, finetuned: bool = False) -> pd.DataFrame:
    return frame[(frame["spec"] == spec) & (frame["finetuned"] == finetuned)]


def _pooled(frame: pd.DataFrame, specs: list[str], finetuned: bool = False) -> pd.DataFrame:
    rows = frame[frame["spec"].isin(specs) & (frame["finetuned"] == finetuned)]
    return rows


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
        base = dense[dense["metric"] == "return_mean"].groupby(["env", "train_seed"])["value"]
        base = base.mean().abs().rename("base")

        def scaled(rows: pd.DataFrame) -> pd.DataFrame:
            rows = rows[rows["metric"] == "return_mean"].join(base, on=["env", "train_seed"])
            return rows.assign(value=100.0 * rows["value"] / rows["base"])

        measured = difference_ci(scaled(pruned), scaled(ranked), "return_mean")
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
    base = dense[dense["metric"] == "return_mean"].groupby(["env", "train_seed"])["value"]
    base = base.mean().abs().rename("base")

    def scaled(rows: pd.DataFrame) -> pd.DataFrame:
        rows = rows[rows["metric"] == "return_mean"].join(base, on=["env", "train_seed"])
        return rows.assign(value=100.0 * rows["value"] / rows["base"])

    measured = difference_ci(scaled(tuned), scaled(naive), "return_mean")
    return assess(CLAIMS["finetune-no-gain"], measured, "no change", 5.0, "% of dense",
                  f"fine-tuned minus naive return over {len(specs)} specs")


CLAIM_FUNCTIONS: dict[str, Callable[[pd.DataFrame], ClaimResult]] = {
    "minor-compression-gain": minor_compression_gain,
    "pruning-hurts-more": pruning_hurts_more,
    "rank-resources": rank_resources,
    "evaltime-drop-30": evaltime_drop_30,
    "quant-cpu-ram": quant_cpu_ram,
    "quant-storage": quant_storage,
    "finetune-no-gain": finetune_no_gain,
}
"""The claims measured so far, by id."""
