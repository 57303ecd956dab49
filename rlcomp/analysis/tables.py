"""The chapters' text tables and notes: every cell formatted, an estimate with its interval.

What a chapter's sweep ran (:func:`sweep_note`), a figure's numbers side by side
(:func:`wide_table`), models side by side (:func:`spec_table`), naive vs fine-tuned
(:func:`finetune_table`), what fine-tuning cost (:func:`finetune_cost_table`), latency ratios
(:func:`latency_ratios`), and :func:`portable`, the part of a table every CPU agrees on (what the
regression baseline checks). The rows come from :mod:`rlcomp.analysis.selection`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import pandas as pd

from rlcomp.analysis.selection import (
    DEFAULT_INTERVALS,
    QUANT_MODELS,
    over_seeds,
    select,
    spec_order,
    with_eval_cpu_seconds,
)
from rlcomp.analysis.verdict_rules import difference_ci
from rlcomp.envs import CHAOTIC_ENVS
from rlcomp.experiments.driver import SweepSummary
from rlcomp.experiments.sweep import Sweep
from rlcomp.stats import IntervalSettings

LEVEL_WORDS = {"prune": "pruned", "lowrank": "rank reduced"}
"""How a level column reads when its levels name a table's columns."""


def interval_cell(estimate: float, low: float, high: float, fmt: str) -> str:
    """``fmt`` of the estimate, with the interval in brackets unless it is a point or missing."""
    if pd.isna(estimate):
        return ""
    if pd.isna(low) or pd.isna(high) or low == high == estimate:
        return fmt.format(estimate)
    return f"{fmt.format(estimate)} [{fmt.format(low)}, {fmt.format(high)}]"


def _envs(frame: pd.DataFrame, envs: Sequence[str] | None) -> list[str]:
    return list(envs) if envs is not None else sorted(frame["env"].unique())


def sweep_note(sweep: Sweep, run: SweepSummary) -> str:
    """One Markdown paragraph: the sweep's size and settings, and what this execution ran."""
    seeds = sorted({int(name.rsplit("__", 1)[-1]) for name in sweep.checkpoints})
    finetune = [s for s in sweep.finetune_steps if s]
    budget = f"; fine-tuning budgets {', '.join(f'{s:,}' for s in finetune)} steps" if finetune \
        else ""
    return (f"This chapter's sweep: {len(sweep.checkpoints)} checkpoints (training seeds "
            f"{', '.join(map(str, seeds))}) x {len(sweep.specs)} compression specs x "
            f"{len(sweep.eval_seeds)} evaluation seed(s){budget}, {sweep.episodes} evaluation "
            f"episodes per job: {run.jobs_total} jobs. This execution found "
            f"{run.jobs_skipped} in the store and ran {run.jobs_run} "
            f"({run.seconds:.0f} s, {run.workers} workers).")


def wide_table(tables: Mapping[str, pd.DataFrame], level: str, column: str = "variant",
               decimals: int = 1) -> pd.DataFrame:
    """Figure tables side by side: one row per level (in %), one column per env and line.

    Args:
        tables: environment -> the table a figure function returned (``column``, ``level``,
            ``estimate``, ``ci_low``, ``ci_high``).
        level: the level column (``prune`` or ``lowrank``).
        column: the column naming the lines.
        decimals: decimals of the numbers.
    """
    parts = []
    for env, table in tables.items():
        if table.empty:
            continue
        cells = table.assign(
            text=[interval_cell(e, lo, hi, f"{{:.{decimals}f}}")
                  for e, lo, hi in zip(table["estimate"], table["ci_low"], table["ci_high"],
                                       strict=True)],
            pct=(100 * table[level]).round(1))
        if column in LEVEL_WORDS:
            cells[column] = [f"{100 * v:g}% {LEVEL_WORDS[column]}" for v in cells[column]]
        wide = cells.pivot_table(index="pct", columns=column, values="text", aggfunc="first",
                                 sort=False)
        wide.columns = pd.MultiIndex.from_product([[env], list(wide.columns)])
        parts.append(wide)
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, axis=1).sort_index().fillna("")
    out.index.name = f"% {level}"
    return out


def spec_table(frame: pd.DataFrame, models: Mapping[str, str] = QUANT_MODELS,
               metrics: Mapping[str, str] | None = None, *, envs: Sequence[str] | None = None,
               finetuned: bool = False, scales: Mapping[str, float] | None = None,
               formats: Mapping[str, str] | None = None,
               intervals: IntervalSettings = DEFAULT_INTERVALS) -> pd.DataFrame:
    """Metrics of some models side by side: one row per model, one column per env and metric.

    Each cell is the mean over training seeds with its interval in brackets (the interval is left
    out when it is a point, e.g. with one seed or for a deterministic size).

    Args:
        frame: the tidy frame.
        models: row name -> canonical spec text; models without results are left out.
        metrics: column name -> metric (default: ``{"return": "return_mean"}``).
        envs: the environments (default: all in the frame, sorted).
        finetuned: naive (False) or fine-tuned (True) results.
        scales: column name -> factor applied to that metric (default 1).
        formats: column name -> format of its numbers (default ``{:.1f}``).
        intervals: the interval method, statistic and settings.

    Returns:
        A frame indexed by ``model``, with columns ``(env, column name)``.
    """
    metrics = dict(metrics or {"return": "return_mean"})
    scales, formats = dict(scales or {}), dict(formats or {})
    columns = {}
    for env in _envs(frame, envs):
        rows = select(frame, env=env, finetuned=finetuned)
        rows = rows[rows["spec"].isin(list(models.values()))]
        for name, metric in metrics.items():
            table = over_seeds(rows, ["spec"], metric, intervals,
                               scale=scales.get(name, 1.0)).set_index("spec")
            columns[(env, name)] = {
                model: interval_cell(*table.loc[spec, ["estimate", "ci_low", "ci_high"]],
                                      formats.get(name, "{:.1f}"))
                for model, spec in models.items() if spec in table.index}
    out = pd.DataFrame(columns)
    out = out.reindex([m for m in models if m in out.index]).fillna("")
    out.index.name = "model"
    return out


def finetune_table(frame: pd.DataFrame, *, envs: Sequence[str] | None = None,
                   metric: str = "return_mean", fmt: str = "{:.1f}",
                   intervals: IntervalSettings = DEFAULT_INTERVALS) -> pd.DataFrame:
    """A metric naive and fine-tuned, per spec, with the paired change fine-tuning made.

    The change is fine-tuned minus naive, paired by training seed
    (:func:`rlcomp.analysis.verdict_rules.difference_ci`, the same interval settings). The dense
    model fine-tuned (no compression held) is the control row.

    Args:
        frame: the tidy frame.
        envs: the environments (default: all in the frame, sorted).
        metric: the metric compared.
        fmt: format of the numbers.
        intervals: the interval method, statistic and settings.

    Returns:
        A frame indexed by ``spec`` (the specs that were fine-tuned), with columns ``(env,
        naive)``, ``(env, fine-tuned)`` and ``(env, change)``.
    """
    columns: dict = {}
    order: list[str] = []
    for env in _envs(frame, envs):
        rows = frame[(frame["env"] == env) & (frame["metric"] == metric)]
        tuned_specs = spec_order(rows[rows["finetuned"]])
        order += [s for s in tuned_specs if s not in order]
        for name, finetuned in (("naive", False), ("fine-tuned", True)):
            table = over_seeds(rows[rows["finetuned"] == finetuned], ["spec"], None,
                               intervals).set_index("spec")
            columns[(env, name)] = {
                s: interval_cell(*table.loc[s, ["estimate", "ci_low", "ci_high"]], fmt)
                for s in tuned_specs if s in table.index}
        columns[(env, "change")] = {}
        for spec in tuned_specs:
            mine = rows[rows["spec"] == spec]
            change = difference_ci(mine[mine["finetuned"]], mine[~mine["finetuned"]], None,
                                   method=intervals.method, statistic=intervals.statistic,
                                   confidence=intervals.confidence, reps=intervals.reps,
                                   random_state=intervals.random_state)
            columns[(env, "change")][spec] = interval_cell(
                change.estimate, change.ci_low, change.ci_high, fmt.replace("{:", "{:+", 1))
    out = pd.DataFrame(columns).reindex(order).fillna("")
    out.index.name = "spec"
    return out


FINETUNE_COSTS = {
    "fine-tune env steps": "finetune_env_steps", "fine-tune updates": "finetune_updates",
    "fine-tune CPU s": "finetune_cpu_seconds", "fine-tune wall s": "finetune_wall_seconds",
    "eval env steps": "env_steps", "eval CPU s": "eval_cpu_seconds",
    "eval wall s": "eval_seconds",
}
"""Columns of :func:`finetune_cost_table`: column name -> metric (``eval_cpu_seconds`` is derived:
``cpu_seconds_per_step x env_steps`` of the same job)."""


def finetune_cost_table(frame: pd.DataFrame, *, envs: Sequence[str] | None = None,
                        costs: Mapping[str, str] = FINETUNE_COSTS,
                        fmt: str = "{:,.3g}") -> pd.DataFrame:
    """What fine-tuning cost beside what evaluating the fine-tuned model cost, per spec.

    Means over training seeds of the fine-tuned jobs' costs as the sweep stored them
    (``finetune_*`` from :func:`rlcomp.retrain.finetune.finetune`) and of the same jobs'
    evaluation (its episodes' env steps, wall seconds and CPU seconds), and the ratio of
    fine-tuning to evaluation CPU seconds.

    Args:
        frame: the tidy frame.
        envs: the environments (default: all in the frame, sorted).
        costs: column name -> metric (:data:`FINETUNE_COSTS`).
        fmt: format of the numbers (step and update counts are written as integers).

    Returns:
        A frame indexed by ``(env, spec)`` with one column per cost and ``CPU fine-tune / eval``.
    """
    records = []
    for env in _envs(frame, envs):
        rows = with_eval_cpu_seconds(frame[(frame["env"] == env) & frame["finetuned"]])
        for spec in spec_order(rows):
            mine = rows[rows["spec"] == spec]
            means = {name: mine[mine["metric"] == metric].groupby("train_seed")["value"].mean()
                     .mean() for name, metric in costs.items()}
            record = {"env": env, "spec": spec}
            for name, value in means.items():
                whole = name.endswith(("steps", "updates"))
                record[name] = "" if pd.isna(value) else (
                    f"{value:,.0f}" if whole else fmt.format(value))
            ratio = (means.get("fine-tune CPU s", math.nan)
                     / means.get("eval CPU s", math.nan))
            record["CPU fine-tune / eval"] = "" if pd.isna(ratio) else f"{ratio:,.1f}x"
            records.append(record)
    columns = ["env", "spec", *costs, "CPU fine-tune / eval"]
    return pd.DataFrame.from_records(records, columns=columns).set_index(["env", "spec"])


def latency_ratios(tables: Mapping[str, pd.DataFrame], baseline: str = "dense",
                   fmt: str = "{:.2f}x") -> pd.DataFrame:
    """Each model's latency as a multiple of the baseline model's, per environment and runtime.

    Args:
        tables: environment -> the table :func:`~rlcomp.analysis.figures_bars.latency_bars`
            returned.
        baseline: the model (legend name) every other is divided by.
        fmt: format of the ratios.

    Returns:
        A frame indexed by ``model``, with columns ``(env, runtime)``; a runtime without the
        baseline is left out.
    """
    columns: dict = {}
    order: list[str] = []
    for env, table in tables.items():
        for runtime, part in table.groupby("runtime", sort=False):
            estimates = part.set_index("model")["estimate"]
            if baseline not in estimates.index:
                continue
            order += [m for m in estimates.index if m not in order]
            columns[(env, runtime)] = {model: fmt.format(value / estimates[baseline])
                                       for model, value in estimates.items()}
    out = pd.DataFrame(columns).reindex(order).fillna("")
    out.index.name = "model"
    return out


def portable(table: pd.DataFrame, chaotic: Sequence[str] = CHAOTIC_ENVS) -> pd.DataFrame:
    """The part of a chapter table that is the same on every x86-64 CPU (``chaotic`` envs left out).

    The returns of :data:`~rlcomp.envs.CHAOTIC_ENVS` (HalfCheetah) are the same from run to run on
    one machine but not across CPU vendors, so the regression baseline's checked cells show the
    other environments only (``tests/test_portable_regression.py`` checks the chaotic ones'
    policies tightly and their returns within a measured band).

    Args:
        table: environments as the first level of its columns (the chapters' wide tables) or as an
            index level named ``env`` (the setup chapter's tables).
        chaotic: the environments to leave out.

    Raises:
        ValueError: if the table names its environments neither way.
    """
    if "env" in (table.index.names or []):
        envs = table.index.get_level_values("env")
        return table[~envs.isin(list(chaotic))]
    columns = table.columns
    if isinstance(columns, pd.MultiIndex) or table.empty:
        envs = columns.get_level_values(0) if len(columns) else pd.Index([])
        return table.loc[:, ~envs.isin(list(chaotic))]
    raise ValueError("portable needs environments as the first column level or an 'env' index")
