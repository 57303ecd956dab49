"""Bar figures, one function per figure, each drawing into a given matplotlib ``ax``.

Storage of the int8 model beside the poster's reported sizes (its quantization text), latency of
one decision per runtime, any metric of some models side by side, and what fine-tuning cost
beside evaluating. The conventions are those of :mod:`rlcomp.analysis.figures` (``env``,
``finetuned``, ``intervals``, ``title``; each returns the aggregated frame it drew).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from rlcomp.analysis.figures import label_size, short_spec
from rlcomp.analysis.plotting import DROPPABLE, colour, error_bars, finish_axes, label
from rlcomp.analysis.selection import (
    DEFAULT_INTERVALS,
    QUANT_MODELS,
    over_seeds,
    resolve_env,
    select,
    spec_order,
    with_eval_cpu_seconds,
)
from rlcomp.stats import AGGREGATE_COLUMNS, IntervalSettings

STORAGE_BARS = {"dense": "fp32 (dense)", "int8": "int8 file", "theoretical": "int8 theoretical"}
"""Bars of :func:`storage_bars`: key (also the key of ``reported``) -> tick label."""

LATENCY_MODELS = {"dense": "dense", "int8": "quant=8", "low rank 50%": "lowrank=0.5"}
"""Bars of :func:`latency_bars`: legend name -> canonical spec text as stored."""

RUNTIMES = {"eager": "PyTorch eager", "onnx": "ONNX Runtime"}
"""Runtimes of :func:`latency_bars`: the runtime in the metric name -> legend name."""


def _grouped_bars(ax: Axes, table: pd.DataFrame, group: str, groups: list[str], hue: str,
                  hues: list[str], hatched: Sequence[str] = (), fmt: str = "{:.3g}") -> None:
    """Bars of ``estimate`` with interval error bars: one cluster per group, one bar per hue.

    Hues in ``hatched`` (numbers reported elsewhere, not measured) are hatched and lighter. The
    numbers on the bars are at the book's smallest size and droppable
    (:func:`rlcomp.analysis.plotting.declutter` removes those that collide).
    """
    width = 0.8 / max(len(hues), 1)
    for j, name in enumerate(hues):
        bars = table[table[hue] == name].set_index(group).reindex(groups).dropna(
            subset=["estimate"])
        if bars.empty:
            continue
        at = np.array([groups.index(g) for g in bars.index]) + (j - (len(hues) - 1) / 2) * width
        drawn = ax.bar(at, bars["estimate"], width, yerr=error_bars(bars), capsize=3,
                       color=colour(j), hatch="//" if name in hatched else None,
                       alpha=0.6 if name in hatched else 1.0, label=name)
        for text in ax.bar_label(drawn, labels=[fmt.format(v) for v in bars["estimate"]],
                                 fontsize=label_size(ax), padding=2):
            text.set_gid(DROPPABLE)
    ax.set_xticks(range(len(groups)), list(groups))
    ax.margins(y=0.15)  # room above the tallest bar for its number, below the title


def storage_bars(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
                 quant_method: str = "quant", bits: int = 8,
                 reported: Mapping[str, float] | None = None, reported_label: str = "poster",
                 metric: str = "bytes", theoretical_metric: str = "theoretical_bytes",
                 finetuned: bool | None = None, intervals: IntervalSettings = DEFAULT_INTERVALS,
                 title: str | None = None) -> pd.DataFrame:
    """Storage in MB: the dense file, our int8 file and the int8 theoretical size.

    Beside each measured bar, optionally, the study's reported figure (the poster's 0.3 MB ->
    0.1 MB against 0.075 MB theoretical, :data:`rlcomp.analysis.claims.POSTER_STORAGE_MB`), hatched.

    Args:
        frame: the tidy frame.
        ax: the axes to draw into.
        env: the environment.
        quant_method: the ``method`` of the quantized model (``quant`` or ``quant[qat]``).
        bits: the ``quant`` level.
        reported: megabytes reported elsewhere, keyed as :data:`STORAGE_BARS`; None draws none.
        reported_label: legend name of the reported bars.
        metric: the metric of a model file's bytes.
        theoretical_metric: the metric of parameters x bits / 8.
        finetuned: naive (False), fine-tuned (True) or all (None) results.
        intervals: the interval method, statistic and settings.
        title: axes title (default the environment).

    Returns:
        Columns ``bar, label, source`` (``measured`` or ``reported_label``), ``estimate, ci_low,
        ci_high, n_seeds`` in MB (reported rows: no interval, 0 seeds).
    """
    env = resolve_env(frame, env)
    rows = select(frame, env=env, finetuned=finetuned)
    quant = rows[(rows["method"] == quant_method) & (rows["quant"] == bits)]
    parts = {"dense": (rows[rows["method"] == "dense"], metric), "int8": (quant, metric),
             "theoretical": (quant, theoretical_metric)}
    records = []
    for bar, (part, name) in parts.items():
        table = over_seeds(part, [], name, intervals, scale=1e-6)
        records += [{"bar": bar, "source": "measured", **r} for r in table.to_dict("records")]
    for bar, megabytes in (reported or {}).items():
        if bar not in STORAGE_BARS:
            raise ValueError(f"reported keys must be among {', '.join(STORAGE_BARS)}, got {bar!r}")
        records.append({"bar": bar, "source": reported_label, "estimate": float(megabytes),
                        "ci_low": math.nan, "ci_high": math.nan, "n_seeds": 0})
    table = pd.DataFrame.from_records(records, columns=["bar", "source", *AGGREGATE_COLUMNS])
    table.insert(1, "label", table["bar"].map(STORAGE_BARS))
    measured = (table["source"] == "measured").any()
    _grouped_bars(ax, table, "label", list(STORAGE_BARS.values()), "source",
                  ["measured", reported_label], hatched=[reported_label])
    finish_axes(ax, "", "Storage (MB)", title or env, empty=not measured)
    return table


def latency_bars(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
                 models: Mapping[str, str] = LATENCY_MODELS,
                 runtimes: Mapping[str, str] = RUNTIMES, quantile: str = "median",
                 finetuned: bool = False, intervals: IntervalSettings = DEFAULT_INTERVALS,
                 title: str | None = None) -> pd.DataFrame:
    """Latency of one batch-1 decision, per model, in eager PyTorch and in ONNX Runtime.

    The cleaner measure beside eval time and CPU %: the policy's own cost per decision, without
    the environment, in the runtime a deployment would use.

    Args:
        frame: the tidy frame.
        ax: the axes to draw into.
        env: the environment.
        models: legend name -> canonical spec text (as stored in the ``spec`` column).
        runtimes: runtime in the metric name (``latency_<runtime>_<quantile>_s``) -> legend name.
        quantile: ``median`` or ``p95``.
        finetuned: naive (False) or fine-tuned (True) results.
        intervals: the interval method, statistic and settings.
        title: axes title (default the environment).

    Returns:
        Columns ``model, spec, runtime, estimate, ci_low, ci_high, n_seeds`` in milliseconds
        (drawn in microseconds).
    """
    env = resolve_env(frame, env)
    rows = select(frame, env=env, finetuned=finetuned)
    rows = rows[rows["spec"].isin(list(models.values()))]
    names = {spec: name for name, spec in models.items()}
    tables = []
    for runtime, runtime_name in runtimes.items():
        table = over_seeds(rows, ["spec"], f"latency_{runtime}_{quantile}_s", intervals, scale=1e3)
        table.insert(0, "model", table["spec"].map(names))
        table.insert(2, "runtime", runtime_name)
        tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    rank = table["model"].map({name: i for i, name in enumerate(models)})
    table = table.iloc[np.argsort(rank.to_numpy(), kind="stable")].reset_index(drop=True)
    in_us = table.copy()
    in_us[["estimate", "ci_low", "ci_high"]] *= 1e3
    _grouped_bars(ax, in_us, "model", list(models), "runtime", list(runtimes.values()),
                  fmt="{:.3g}")
    finish_axes(ax, "", f"Latency per decision, {quantile} (µs)", title or env, empty=table.empty)
    return table


def spec_bars(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
              models: Mapping[str, str] = QUANT_MODELS, metric: str = "return_mean",
              finetuned: bool = False, scale: float = 1.0,
              intervals: IntervalSettings = DEFAULT_INTERVALS,
              fmt: str = "{:,.4g}", wrap: int = 11, ylabel: str | None = None,
              title: str | None = None) -> pd.DataFrame:
    """One bar per model: the mean of a metric over training seeds, with its interval.

    Args:
        frame: the tidy frame.
        ax: the axes to draw into.
        env: the environment.
        models: legend name -> canonical spec text (as stored in the ``spec`` column); models
            without results are left out.
        metric: the metric of the bars.
        finetuned: naive (False) or fine-tuned (True) results (the dense model's naive rows
            either way).
        scale: factor applied to the estimates (e.g. ``1e-6`` for bytes -> MB).
        intervals: the interval method, statistic and settings.
        fmt: format of the numbers written on the bars.
        wrap: tick labels are wrapped at this many characters.
        ylabel: y axis name (default from :data:`LABELS`).
        title: axes title (default the environment).

    Returns:
        Columns ``model, spec, estimate, ci_low, ci_high, n_seeds`` (scaled), in the order of
        ``models``.
    """
    import textwrap

    env = resolve_env(frame, env)
    rows = select(frame, env=env, finetuned=finetuned)
    rows = rows[rows["spec"].isin(list(models.values()))]
    table = over_seeds(rows, ["spec"], metric, intervals, scale=scale)
    table.insert(0, "model", table["spec"].map({spec: name for name, spec in models.items()}))
    rank = table["model"].map({name: i for i, name in enumerate(models)})
    table = table.iloc[np.argsort(rank.to_numpy(), kind="stable")].reset_index(drop=True)
    hue = f"_{metric}"
    drawn = [m for m in models if m in set(table["model"])]
    _grouped_bars(ax, table.assign(hue=hue), "model", drawn, "hue", [hue], fmt=fmt)
    ax.set_xticks(range(len(drawn)), [textwrap.fill(m, wrap) for m in drawn])
    ax.axhline(0.0, color="0.3", lw=0.6)
    finish_axes(ax, "", ylabel or label(metric), title or env, empty=table.empty)
    return table


def finetune_cost_bars(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
                       measure: str = "cpu_seconds",
                       intervals: IntervalSettings = DEFAULT_INTERVALS,
                       log: bool | None = None, title: str | None = None) -> pd.DataFrame:
    """Seconds spent fine-tuning each model beside seconds spent evaluating it (log scale).

    Models are named by :func:`rlcomp.analysis.figures.short_spec` (``P50``, ``R50``, ``int8``,
    ``QAT``, ``dense``) so that the names stand level at the book's text size.

    Args:
        frame: the tidy frame.
        ax: the axes to draw into.
        env: the environment.
        measure: ``cpu_seconds`` (CPU time of the process) or ``wall_seconds``.
        intervals: the interval method, statistic and settings.
        log: a logarithmic y axis; None chooses one when the bars span more than a factor 20.
        title: axes title (default the environment).

    Returns:
        Columns ``spec, part`` (``fine-tuning`` or ``evaluation``), ``estimate, ci_low, ci_high,
        n_seeds`` in seconds, for the fine-tuned jobs.
    """
    metrics = {"cpu_seconds": ("finetune_cpu_seconds", "eval_cpu_seconds", "CPU seconds"),
               "wall_seconds": ("finetune_wall_seconds", "eval_seconds", "Wall seconds")}
    if measure not in metrics:
        raise ValueError(f"measure must be one of {', '.join(metrics)}, got {measure!r}")
    tune_metric, eval_metric, ylabel = metrics[measure]
    env = resolve_env(frame, env)
    rows = frame[(frame["env"] == env) & frame["finetuned"]]
    rows = with_eval_cpu_seconds(rows) if measure == "cpu_seconds" else rows
    parts = {"fine-tuning": tune_metric, "evaluation": eval_metric}
    tables = []
    for part, metric in parts.items():
        table = over_seeds(rows, ["spec"], metric, intervals)
        table.insert(1, "part", part)
        tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    specs = spec_order(rows)
    _grouped_bars(ax, table, "spec", specs, "part", list(parts))
    first = rows.drop_duplicates("spec").set_index("spec")
    ax.set_xticks(range(len(specs)), [short_spec(first.at[spec, "method"], first.at[spec, "level"])
                                      for spec in specs])
    positive = table.loc[table["estimate"] > 0, "estimate"]
    if log is None:
        log = not positive.empty and positive.max() > 20 * positive.min()
    if log and not positive.empty:
        ax.set_yscale("log")
    finish_axes(ax, "", ylabel, title or env, empty=table.empty)
    return table
