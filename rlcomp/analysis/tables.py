"""The chapters' text tables and notes: every cell formatted, an estimate with its interval.

What a chapter's sweep ran (:func:`sweep_note`), a figure's numbers side by side
(:func:`wide_table`), models side by side (:func:`spec_table`), naive vs fine-tuned
(:func:`finetune_table`), what fine-tuning cost (:func:`finetune_cost_table`), latency ratios
(:func:`latency_ratios`), and :func:`portable`, the part of a table every CPU agrees on (what the
regression baseline checks). The rows come from :mod:`rlcomp.analysis.selection`.

Every number is shown in a reader's unit: :data:`METRIC_DISPLAY` maps a stored metric (seconds,
bytes, fractions) to its name, unit, factor and format (``latency_onnx_median_s`` 1.08e-5 reads
"ONNX latency (µs)" 10.8), and :func:`metric_display` falls back to the metric's own name for a
metric it does not list. Sizes, counts and returns of the portable environments stay exact from
CPU to CPU at these precisions (integers, and bytes times a power of ten).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

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

LEVEL_HEADERS = {"prune": "% pruned", "lowrank": "% rank reduced"}
"""How a level column reads when its levels are a table's rows."""


@dataclass(frozen=True)
class Display:
    """How a stored metric is shown: its name, its unit, the factor to it and the number format."""

    name: str
    """What the number is, in words (e.g. ``ONNX latency``)."""
    unit: str = ""
    """The unit shown after the name (e.g. ``µs``); empty for a count or a return."""
    scale: float = 1.0
    """Factor from the stored unit to ``unit`` (e.g. ``1e6`` for seconds -> µs)."""
    fmt: str = "{:,.3g}"
    """Format of a number in ``unit``."""

    @property
    def header(self) -> str:
        """The column header: the name with its unit in brackets, e.g. ``ONNX latency (µs)``."""
        return f"{self.name} ({self.unit})" if self.unit else self.name

    def cell(self, estimate: float, low: float = math.nan, high: float = math.nan) -> str:
        """An estimate and its interval (stored units) in this unit and format."""
        return interval_cell(self.scale * estimate, self.scale * low, self.scale * high, self.fmt)


def _counts(name: str) -> Display:
    return Display(name, "", 1.0, "{:,.0f}")


def _seconds(name: str, unit: str = "s", fmt: str = "{:,.2f}") -> Display:
    return Display(name, unit, {"s": 1.0, "ms": 1e3, "µs": 1e6}[unit], fmt)


def _bytes(name: str, unit: str = "kB", fmt: str = "{:,.1f}") -> Display:
    return Display(name, unit, {"kB": 1e-3, "MB": 1e-6}[unit], fmt)


def _fraction(name: str) -> Display:
    return Display(name, "%", 100.0, "{:.1f}")


METRIC_DISPLAY = {
    "return_mean": Display("Return", "", 1.0, "{:,.1f}"),
    "return_iqm": Display("Return (IQM)", "", 1.0, "{:,.1f}"),
    "return_std": Display("Return, standard deviation", "", 1.0, "{:,.1f}"),
    "return_min": Display("Lowest return", "", 1.0, "{:,.1f}"),
    "return_max": Display("Highest return", "", 1.0, "{:,.1f}"),
    "normalized_return": Display("Normalized return", "% of dense", 1.0, "{:.1f}"),
    "episode_length_mean": Display("Episode length", "steps", 1.0, "{:,.0f}"),
    "bytes": _bytes("Model file"),
    "model_bytes": _bytes("Model in memory"),
    "tensor_bytes": _bytes("Tensors"),
    "theoretical_bytes": _bytes("Theoretical size"),
    "weight_bytes_read": _bytes("Weights read per decision"),
    "isolated_footprint_bytes": _bytes("Isolated footprint", fmt="{:,.0f}"),
    "isolated_peak_footprint_bytes": _bytes("Isolated peak footprint", fmt="{:,.0f}"),
    "isolated_model_rss_bytes": _bytes("Resident memory with the model", "MB"),
    "isolated_baseline_rss_bytes": _bytes("Resident memory without the model", "MB"),
    "isolated_model_peak_bytes": _bytes("Peak memory with the model", "MB"),
    "isolated_baseline_peak_bytes": _bytes("Peak memory without the model", "MB"),
    "rss_bytes": _bytes("Resident memory", "MB"),
    "rss_peak_bytes": _bytes("Peak resident memory", "MB"),
    "params": _counts("Parameters"),
    "weights": _counts("Weights"),
    "biases": _counts("Biases"),
    "nonzero_weights": _counts("Nonzero weights"),
    "scales": _counts("Quantization scales"),
    "macs_per_decision": _counts("MACs per decision"),
    "macs_nonzero_per_decision": _counts("Nonzero MACs per decision"),
    "flops": _counts("FLOPs per decision"),
    "sparse_flops": _counts("Sparse FLOPs per decision"),
    "sparsity": _fraction("Sparsity"),
    "policy_share": _fraction("Policy share of eval time"),
    "distill_agreement": _fraction("Agreement with the teacher"),
    "latency_onnx_median_s": _seconds("ONNX latency", "µs", "{:,.1f}"),
    "latency_onnx_p95_s": _seconds("ONNX latency, p95", "µs", "{:,.1f}"),
    "latency_eager_median_s": _seconds("PyTorch latency", "µs", "{:,.1f}"),
    "latency_eager_p95_s": _seconds("PyTorch latency, p95", "µs", "{:,.1f}"),
    "seconds_per_step": _seconds("Eval time per step", "µs", "{:,.1f}"),
    "cpu_seconds_per_step": _seconds("CPU time per step", "µs", "{:,.1f}"),
    "policy_seconds_per_decision": _seconds("Policy time per decision", "µs", "{:,.1f}"),
    "dense_policy_seconds_per_decision": _seconds("Dense policy time per decision", "µs",
                                                  "{:,.1f}"),
    "policy_time_ratio": Display("Policy time per decision", "x dense", 1.0, "{:.2f}"),
    "cpu_percent": Display("CPU utilization", "%", 1.0, "{:.1f}"),
    "ram_percent": Display("RAM", "% of the machine", 1.0, "{:.2f}"),
    "eval_seconds": _seconds("Eval wall time"),
    "eval_cpu_seconds": _seconds("Eval CPU time"),
    "compress_cpu_seconds": _seconds("Compression CPU time", "ms", "{:,.1f}"),
    "finetune_cpu_seconds": _seconds("Fine-tune CPU time", fmt="{:,.1f}"),
    "finetune_wall_seconds": _seconds("Fine-tune wall time", fmt="{:,.1f}"),
    "distill_cpu_seconds": _seconds("Distillation CPU time", fmt="{:,.1f}"),
    "distill_wall_seconds": _seconds("Distillation wall time", fmt="{:,.1f}"),
    "env_steps": _counts("Eval env steps"),
    "finetune_env_steps": _counts("Fine-tune env steps"),
    "finetune_updates": _counts("Fine-tune updates"),
    "distill_env_steps": _counts("Distillation env steps"),
    "distill_gradient_steps": _counts("Distillation gradient steps"),
    "finetune_env_steps_per_second": Display("Fine-tune env steps per second", "steps/s", 1.0,
                                             "{:,.0f}"),
    "distill_env_steps_per_second": Display("Distillation env steps per second", "steps/s",
                                            1.0, "{:,.0f}"),
    "resource_samples": _counts("Resource samples"),
    "isolated_decisions": _counts("Decisions timed in isolation"),
    "policy_time_decisions": _counts("Decisions per timing"),
    "policy_time_pairs": _counts("Timing pairs"),
}
"""How each stored metric is shown in a table: seconds in s, ms or µs, bytes in kB or MB,
fractions in %, returns to one decimal, counts as integers with thousands separators."""


def metric_display(metric: str) -> Display:
    """How ``metric`` is shown (:data:`METRIC_DISPLAY`).

    A metric it does not list keeps its name and stored unit, with three significant digits.
    """
    return METRIC_DISPLAY.get(metric, Display(metric))


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
               decimals: int = 1, metric: str | None = None) -> pd.DataFrame:
    """Figure tables side by side: one row per level (in %), one column per env and line.

    Args:
        tables: environment -> the table a figure function returned (``column``, ``level``,
            ``estimate``, ``ci_low``, ``ci_high``).
        level: the level column (``prune`` or ``lowrank``).
        column: the column naming the lines.
        decimals: decimals of the numbers when ``metric`` is None.
        metric: the metric the figure drew: its numbers are shown in its unit and format
            (:func:`metric_display`), the second column level is named after it with its unit and
            the rows read ``% pruned`` or ``% rank reduced``. None shows the numbers as stored
            with ``decimals``.
    """
    display = metric_display(metric) if metric is not None else None
    parts = []
    for env, table in tables.items():
        if table.empty:
            continue
        cells = table.assign(
            text=[display.cell(e, lo, hi) if display else
                  interval_cell(e, lo, hi, f"{{:.{decimals}f}}")
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
    if display is not None:
        out.index = pd.Index([f"{v:g}" for v in out.index],
                             name=LEVEL_HEADERS.get(level, f"% {level}"))
        out.columns.names = [None, display.header]
    return out


def _named_metrics(metrics: Mapping[str, str] | Sequence[str],
                   scales: Mapping[str, float], formats: Mapping[str, str]) -> dict[str, tuple]:
    """Column header -> (metric, :class:`Display`) for :func:`spec_table`.

    A metric given by name alone is shown as :data:`METRIC_DISPLAY` says; a column named by the
    caller keeps its name, gains the metric's unit, and takes the metric's factor and format,
    unless the caller gives its scale or format (then it is shown as the caller says, the unit
    is the caller's to name).
    """
    if not isinstance(metrics, Mapping):
        return {metric_display(m).header: (m, metric_display(m)) for m in metrics}
    out = {}
    for name, metric in metrics.items():
        known = metric_display(metric)
        if name in scales or name in formats:
            out[name] = (metric, Display(name, "", scales.get(name, 1.0),
                                         formats.get(name, "{:.1f}")))
        else:
            shown = Display(name, known.unit, known.scale, known.fmt)
            out[shown.header] = (metric, shown)
    return out


def spec_table(frame: pd.DataFrame, models: Mapping[str, str] = QUANT_MODELS,
               metrics: Mapping[str, str] | Sequence[str] | None = None, *,
               envs: Sequence[str] | None = None,
               finetuned: bool = False, scales: Mapping[str, float] | None = None,
               formats: Mapping[str, str] | None = None,
               intervals: IntervalSettings = DEFAULT_INTERVALS) -> pd.DataFrame:
    """Metrics of some models side by side: one row per model, one column per env and metric.

    Each cell is the mean over training seeds with its interval in brackets (the interval is left
    out when it is a point, e.g. with one seed or for a deterministic size), in the metric's unit
    (:func:`metric_display`).

    Args:
        frame: the tidy frame.
        models: row name -> canonical spec text; models without results are left out.
        metrics: metrics, each column headed by its name and unit, or column name -> metric (the
            unit is added to the name); default ``["return_mean"]``.
        envs: the environments (default: all in the frame, sorted).
        finetuned: naive (False) or fine-tuned (True) results.
        scales: column name -> factor applied to that metric, shown as the caller names it
            (default: the metric's own unit).
        formats: column name -> format of its numbers, likewise.
        intervals: the interval method, statistic and settings.

    Returns:
        A frame indexed by ``model``, with columns ``(env, column name)``.
    """
    named = _named_metrics(metrics or ["return_mean"], scales or {}, formats or {})
    columns = {}
    for env in _envs(frame, envs):
        rows = select(frame, env=env, finetuned=finetuned)
        rows = rows[rows["spec"].isin(list(models.values()))]
        for name, (metric, display) in named.items():
            table = over_seeds(rows, ["spec"], metric, intervals).set_index("spec")
            columns[(env, name)] = {
                model: display.cell(*table.loc[spec, ["estimate", "ci_low", "ci_high"]])
                for model, spec in models.items() if spec in table.index}
    out = pd.DataFrame(columns)
    out = out.reindex([m for m in models if m in out.index]).fillna("")
    out.index.name = "model"
    return out


def finetune_table(frame: pd.DataFrame, *, envs: Sequence[str] | None = None,
                   metric: str = "return_mean", fmt: str | None = None,
                   intervals: IntervalSettings = DEFAULT_INTERVALS) -> pd.DataFrame:
    """A metric naive and fine-tuned, per spec, with the paired change fine-tuning made.

    The change is fine-tuned minus naive, paired by training seed
    (:func:`rlcomp.analysis.verdict_rules.difference_ci`, the same interval settings). The dense
    model fine-tuned (no compression held) is the control row.

    Args:
        frame: the tidy frame.
        envs: the environments (default: all in the frame, sorted).
        metric: the metric compared, shown in its unit (:func:`metric_display`); the second
            column level is named after it.
        fmt: format of the numbers as stored (no unit); None: the metric's unit and format.
        intervals: the interval method, statistic and settings.

    Returns:
        A frame indexed by ``spec`` (the specs that were fine-tuned), with columns ``(env,
        naive)``, ``(env, fine-tuned)`` and ``(env, change)``.
    """
    display = metric_display(metric) if fmt is None else Display(metric, "", 1.0, fmt)
    signed = Display(display.name, display.unit, display.scale,
                     display.fmt.replace("{:", "{:+", 1))
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
                s: display.cell(*table.loc[s, ["estimate", "ci_low", "ci_high"]])
                for s in tuned_specs if s in table.index}
        columns[(env, "change")] = {}
        for spec in tuned_specs:
            mine = rows[rows["spec"] == spec]
            change = difference_ci(mine[mine["finetuned"]], mine[~mine["finetuned"]], None,
                                   method=intervals.method, statistic=intervals.statistic,
                                   confidence=intervals.confidence, reps=intervals.reps,
                                   random_state=intervals.random_state)
            columns[(env, "change")][spec] = signed.cell(change.estimate, change.ci_low,
                                                         change.ci_high)
    out = pd.DataFrame(columns).reindex(order).fillna("")
    out.index.name = "spec"
    if fmt is None and len(out.columns):
        out.columns.names = [None, display.header]
    return out


FINETUNE_COSTS = ("finetune_env_steps", "finetune_updates", "finetune_cpu_seconds",
                  "finetune_wall_seconds", "env_steps", "eval_cpu_seconds", "eval_seconds")
"""Columns of :func:`finetune_cost_table`, as metrics (``eval_cpu_seconds`` is derived:
``cpu_seconds_per_step x env_steps`` of the same job)."""

CPU_RATIO = "CPU time, fine-tune / eval (x)"
"""The last column of :func:`finetune_cost_table`."""


def finetune_cost_table(frame: pd.DataFrame, *, envs: Sequence[str] | None = None,
                        costs: Mapping[str, str] | Sequence[str] = FINETUNE_COSTS,
                        fmt: str | None = None) -> pd.DataFrame:
    """What fine-tuning cost beside what evaluating the fine-tuned model cost, per spec.

    Means over training seeds of the fine-tuned jobs' costs as the sweep stored them
    (``finetune_*`` from :func:`rlcomp.retrain.finetune.finetune`) and of the same jobs'
    evaluation (its episodes' env steps, wall seconds and CPU seconds), and the ratio of
    fine-tuning to evaluation CPU seconds.

    Args:
        frame: the tidy frame.
        envs: the environments (default: all in the frame, sorted).
        costs: metrics, each column headed by its name and unit (:data:`FINETUNE_COSTS`), or
            column name -> metric (the unit is added to the name unless ``fmt`` is given).
        fmt: format of every number as stored (counts stay integers); None: each metric's own
            unit and format (:func:`metric_display`).

    Returns:
        A frame indexed by ``(env, spec)`` with one column per cost and :data:`CPU_RATIO`.
    """
    if isinstance(costs, Mapping):
        named = {name if fmt is not None else
                 Display(name, metric_display(metric).unit).header: metric
                 for name, metric in costs.items()}
    else:
        named = {metric_display(m).header: m for m in costs}
    records = []
    for env in _envs(frame, envs):
        rows = with_eval_cpu_seconds(frame[(frame["env"] == env) & frame["finetuned"]])
        for spec in spec_order(rows):
            mine = rows[rows["spec"] == spec]
            means = {metric: mine[mine["metric"] == metric].groupby("train_seed")["value"]
                     .mean().mean() for metric in named.values()}
            record = {"env": env, "spec": spec}
            for name, metric in named.items():
                display = metric_display(metric)
                if fmt is not None and display.fmt != "{:,.0f}":
                    display = Display(name, "", 1.0, fmt)
                record[name] = display.cell(means[metric])
            ratio = (means.get("finetune_cpu_seconds", math.nan)
                     / means.get("eval_cpu_seconds", math.nan))
            record[CPU_RATIO] = "" if pd.isna(ratio) else f"{ratio:,.1f}"
            records.append(record)
    columns = ["env", "spec", *named, CPU_RATIO]
    return pd.DataFrame.from_records(records, columns=columns).set_index(["env", "spec"])


def latency_ratios(tables: Mapping[str, pd.DataFrame], baseline: str = "dense",
                   fmt: str = "{:.2f}x") -> pd.DataFrame:
    """Each model's latency as a multiple of the baseline model's, per environment and runtime.

    The second column level says so (``Latency (x dense)``).

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
    if len(out.columns):
        out.columns.names = [None, f"Latency (x {baseline})"]
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
