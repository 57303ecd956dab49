"""The study's figures: one function per figure, each drawing into a given matplotlib ``ax``.

Every function takes the tidy results frame (:meth:`rlcomp.experiments.store.ResultStore.load`)
and an axes, keeps one environment's rows, aggregates a metric over training seeds with
:func:`rlcomp.analysis.stats.aggregate` (the mean and its 95% percentile bootstrap interval unless
``boot`` says otherwise), draws the means with interval bands (lines), error bars (points, bars) or
annotated cells (heatmaps), names the axes as the poster does, and returns the aggregated frame it
drew so that a chapter can print the numbers beside the figure.

Conventions shared by all functions:

- ``env`` names the environment; it may be left out when the frame holds only one. The title is
  the environment unless ``title`` is given.
- Levels stay fractions (0..1) in the returned frames; the axes show them x 100 (``% pruned``,
  ``% rank reduced``). Estimates are in the units of the axis: the stored units, except latency
  (milliseconds) and storage (megabytes, 10^6 bytes).
- Only naive (not fine-tuned) results are drawn unless ``finetuned`` says otherwise; the dense
  model's naive rows are the 0% point of every line and cell either way. Fig 4 and Fig 10 draw
  naive and fine-tuned results side by side.
- A selection without results draws a note saying so and returns an empty frame with the columns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

from rlcomp.analysis.stats import AGGREGATE_COLUMNS, Bootstrap, aggregate

DEFAULT_BOOT = Bootstrap()
"""Mean over training seeds with a 95% percentile bootstrap interval (2000 resamples, seed 0)."""

LABELS = {
    "return_mean": "Return",
    "return_iqm": "Return (IQM)",
    "eval_seconds": "Eval time (s)",
    "seconds_per_step": "Eval time per step (s)",
    "policy_share": "Policy share of eval time",
    "cpu_percent": "CPU %",
    "cpu_seconds_per_step": "CPU seconds per step",
    "ram_percent": "% RAM",
    "rss_bytes": "Resident memory (bytes)",
    "episode_length_mean": "Episode length",
}
"""Axis name of each metric (the poster's names where it has one); other metrics show their name."""

RELATIVE_LABELS = {
    "eval_seconds": "% eval time (of dense)",
    "seconds_per_step": "% eval time per step (of dense)",
}
"""Axis name of a metric shown as a percentage of the dense model's value."""

LEVEL_LABELS = {"prune": "% pruned", "lowrank": "% rank reduced"}
"""Axis name of each level column."""

PRUNE_VARIANTS = {"global": "prune", "per-layer": "prune[layer]",
                  "structured": "prune[structured]"}
"""Fig 3's lines: legend name -> ``method`` of the tidy frame."""

LOWRANK_VARIANTS = {"all layers": "lowrank", "input/output kept": "lowrank[keep_io]"}
"""Lines of :func:`rank_return`: legend name -> ``method``."""

GRID_METHODS = ("dense", "prune", "lowrank", "lowrank+prune", "prune+lowrank")
"""Methods of the pruned x rank-reduced grid (Fig 5 to 9): global pruning, low rank, both."""

LATENCY_MODELS = {"dense": "dense", "int8": "quant=8", "low rank 50%": "lowrank=0.5"}
"""Bars of :func:`latency_bars`: legend name -> canonical spec text as stored."""

RUNTIMES = {"eager": "PyTorch eager", "onnx": "ONNX Runtime"}
"""Runtimes of :func:`latency_bars`: the runtime in the metric name -> legend name."""

STORAGE_BARS = {"dense": "fp32 (dense)", "int8": "int8 file", "theoretical": "int8 theoretical"}
"""Bars of :func:`quant_storage`: key (also the key of ``reported``) -> tick label."""


def label(metric: str, relative: bool = False) -> str:
    """The axis name of ``metric`` (as a percentage of dense when ``relative``)."""
    if relative:
        return RELATIVE_LABELS.get(metric, f"{metric} (% of dense)")
    return LABELS.get(metric, metric)


def resolve_env(frame: pd.DataFrame, env: str | None) -> str | None:
    """``env``, or the frame's only environment when ``env`` is None (None for an empty frame).

    Raises:
        ValueError: ``env`` is None and the frame holds several environments.
    """
    if env is not None:
        return env
    envs = sorted(frame["env"].unique())
    if len(envs) > 1:
        raise ValueError(f"the frame holds several environments ({', '.join(envs)}); pass env=")
    return envs[0] if envs else None


def select(frame: pd.DataFrame, *, env: str | None = None, methods: Sequence[str] | None = None,
           finetuned: bool | None = False, metric: str | None = None) -> pd.DataFrame:
    """The rows of one environment, some methods, naive or fine-tuned, and one metric.

    Args:
        frame: the tidy frame.
        env: the environment (see :func:`resolve_env`).
        methods: keep these ``method`` values; None keeps all.
        finetuned: keep naive (False) or fine-tuned (True) results, and the dense model's naive
            rows either way; None keeps all.
        metric: keep this metric; None keeps all.
    """
    rows = frame[frame["env"] == resolve_env(frame, env)]
    if metric is not None:
        rows = rows[rows["metric"] == metric]
    if methods is not None:
        rows = rows[rows["method"].isin(list(methods))]
    if finetuned is not None:
        naive_dense = (rows["method"] == "dense") & ~rows["finetuned"]
        rows = rows[(rows["finetuned"] == finetuned) | naive_dense]
    return rows


def relative_to_dense(frame: pd.DataFrame, metric: str,
                      seed_column: str = "train_seed") -> pd.DataFrame:
    """The rows of ``metric`` with each value as a percentage of its seed's dense value.

    The dense value of a training seed is the mean of the naive dense rows of that environment
    and seed; rows of a seed without dense rows are dropped. The ratio is taken per seed, before
    any aggregation over seeds.
    """
    rows = frame[frame["metric"] == metric]
    dense = rows[(rows["method"] == "dense") & ~rows["finetuned"]]
    base = dense.groupby(["env", seed_column], as_index=False)["value"].mean()
    joined = rows.merge(base.rename(columns={"value": "_dense"}), on=["env", seed_column])
    return joined.assign(value=100.0 * joined["value"] / joined["_dense"]).drop(columns="_dense")


def _aggregate(rows: pd.DataFrame, by: list[str], metric: str | None,
               boot: Bootstrap, scale: float = 1.0) -> pd.DataFrame:
    table = aggregate(rows, by, metric, **asdict(boot))
    if scale != 1.0:
        table[["estimate", "ci_low", "ci_high"]] *= scale
    return table


def _errors(table: pd.DataFrame, prefix: str = "") -> np.ndarray:
    """Error-bar lengths (2 x n) from estimates and interval ends; NaN and negatives become 0."""
    est = table[f"{prefix}estimate"].to_numpy(float)
    below = est - table[f"{prefix}ci_low"].to_numpy(float)
    above = table[f"{prefix}ci_high"].to_numpy(float) - est
    return np.clip(np.nan_to_num(np.vstack([below, above])), 0.0, None)


def _band(ax: Axes, x: pd.Series, table: pd.DataFrame, label: str, color: str) -> None:
    """A line of means with markers and its interval as a translucent band."""
    ax.plot(x, table["estimate"], marker="o", ms=3, lw=1.2, color=color, label=label)
    ax.fill_between(x, table["ci_low"], table["ci_high"], color=color, alpha=0.2, lw=0)


def _finish(ax: Axes, xlabel: str, ylabel: str, title: str | None, empty: bool,
            legend: bool = True) -> None:
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if empty:
        ax.text(0.5, 0.5, "no results", ha="center", va="center", transform=ax.transAxes)
    elif legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="x-small")


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(columns=list(columns))


def _percent(values: pd.Series | Sequence[float]) -> list[str]:
    return [f"{100 * v:g}" for v in values]


# Lines over one level --------------------------------------------------------------------------

def level_lines(frame: pd.DataFrame, ax: Axes, *, env: str | None = None, level: str = "prune",
                variants: Mapping[str, str] = PRUNE_VARIANTS, metric: str = "return_mean",
                finetuned: bool = False, boot: Bootstrap = DEFAULT_BOOT,
                xlabel: str | None = None, ylabel: str | None = None,
                title: str | None = None) -> pd.DataFrame:
    """A metric against one compression level, one line per variant of the method.

    Each line joins the variant's levels with the dense model at level 0.

    Args:
        frame: the tidy frame.
        ax: the axes to draw into.
        env: the environment.
        level: the level column on the x axis (``prune`` or ``lowrank``).
        variants: legend name -> ``method``; variants without results are left out.
        metric: the metric on the y axis.
        finetuned: naive (False) or fine-tuned (True) results.
        boot: the statistic and bootstrap settings.
        xlabel: x axis name (default from :data:`LEVEL_LABELS`).
        ylabel: y axis name (default from :data:`LABELS`).
        title: axes title (default the environment).

    Returns:
        Columns ``variant, <level>, estimate, ci_low, ci_high, n_seeds``.
    """
    env = resolve_env(frame, env)
    rows = select(frame, env=env, methods=[*variants.values(), "dense"], finetuned=finetuned,
                  metric=metric)
    tables = []
    for i, (name, method) in enumerate(variants.items()):
        mine = rows[rows["method"].isin([method, "dense"])]
        if not (mine["method"] == method).any():
            continue
        table = _aggregate(mine, [level], None, boot)
        table.insert(0, "variant", name)
        _band(ax, 100 * table[level], table, name, f"C{i}")
        tables.append(table)
    _finish(ax, xlabel or LEVEL_LABELS.get(level, level), ylabel or label(metric),
            title or env, empty=not tables)
    if not tables:
        return _empty(["variant", level, *AGGREGATE_COLUMNS])
    return pd.concat(tables, ignore_index=True)


def fig3_pruning_return(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
                        variants: Mapping[str, str] = PRUNE_VARIANTS,
                        metric: str = "return_mean", **options) -> pd.DataFrame:
    """Fig 3: % pruned vs return, one line per pruning variant (global, per-layer, structured).

    ``options`` go to :func:`level_lines` (``finetuned``, ``boot``, labels, ``title``).
    """
    return level_lines(frame, ax, env=env, level="prune", variants=variants, metric=metric,
                       **options)


def rank_return(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
                variants: Mapping[str, str] = LOWRANK_VARIANTS, metric: str = "return_mean",
                **options) -> pd.DataFrame:
    """% rank reduced vs return, one line per low-rank variant (all layers, input/output kept).

    The poster's proposed remedy for the steep fall at high rank reduction (keep the input and
    output layers whole) beside the plain method. ``options`` go to :func:`level_lines`.
    """
    return level_lines(frame, ax, env=env, level="lowrank", variants=variants, metric=metric,
                       **options)


# Lines over rank reduction, one per pruning level ---------------------------------------------

def rank_lines(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
               metric: str = "eval_seconds", prune_levels: Sequence[float] | None = None,
               methods: Sequence[str] = GRID_METHODS, finetuned: bool = False,
               boot: Bootstrap = DEFAULT_BOOT, ylabel: str | None = None,
               title: str | None = None) -> pd.DataFrame:
    """A metric against % rank reduced, one line per pruning level of the grid.

    Args:
        frame: the tidy frame.
        ax: the axes to draw into.
        env: the environment.
        metric: the metric on the y axis.
        prune_levels: the pruning levels to draw (fractions); None draws every level present.
        methods: the methods of the grid (:data:`GRID_METHODS`).
        finetuned: naive (False) or fine-tuned (True) results.
        boot: the statistic and bootstrap settings.
        ylabel: y axis name (default from :data:`LABELS`).
        title: axes title (default the environment).

    Returns:
        Columns ``prune, lowrank, estimate, ci_low, ci_high, n_seeds``.
    """
    env = resolve_env(frame, env)
    rows = select(frame, env=env, methods=methods, finetuned=finetuned, metric=metric)
    table = _aggregate(rows, ["prune", "lowrank"], None, boot)
    if prune_levels is not None:
        wanted = np.asarray(prune_levels, dtype=float)
        table = table[[bool(np.isclose(p, wanted).any()) for p in table["prune"]]]
    for i, (prune, line) in enumerate(table.groupby("prune", sort=True)):
        _band(ax, 100 * line["lowrank"], line, f"{100 * prune:g}% pruned", f"C{i % 10}")
    _finish(ax, LEVEL_LABELS["lowrank"], ylabel or label(metric), title or env,
            empty=table.empty)
    return table.reset_index(drop=True)


def fig5_rank_evaltime(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
                       metric: str = "eval_seconds", **options) -> pd.DataFrame:
    """Fig 5: % rank reduced vs eval time (s), one line per pruning level.

    Eval time is the wall time of all evaluation episodes, the poster's measure; it carries the
    episodes' lengths (see :func:`fig5_rank_steptime`). ``options`` go to :func:`rank_lines`.
    """
    return rank_lines(frame, ax, env=env, metric=metric, **options)


def fig5_rank_steptime(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
                       metric: str = "seconds_per_step", **options) -> pd.DataFrame:
    """Fig 5's cleaner measure: % rank reduced vs eval time per environment step.

    Per step, the time no longer depends on how long the episodes last (a better lander lands
    sooner). ``options`` go to :func:`rank_lines`.
    """
    return rank_lines(frame, ax, env=env, metric=metric, **options)


def fig7_rank_ram(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
                  metric: str = "ram_percent", **options) -> pd.DataFrame:
    """Fig 7: % rank reduced vs % RAM, one line per pruning level.

    Pass ``metric`` an isolated-memory metric (with ``ylabel``) for the model's own footprint
    against the runtime's baseline. ``options`` go to :func:`rank_lines`.
    """
    return rank_lines(frame, ax, env=env, metric=metric, **options)


def fig9_rank_cpu(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
                  metric: str = "cpu_percent", **options) -> pd.DataFrame:
    """Fig 9: % rank reduced vs CPU %, one line per pruning level.

    ``metric="cpu_seconds_per_step"`` gives the CPU cost per decision instead of a utilisation.
    ``options`` go to :func:`rank_lines`.
    """
    return rank_lines(frame, ax, env=env, metric=metric, **options)


# Pruned x rank-reduced heatmaps ----------------------------------------------------------------

def _text_color(rgba: tuple[float, ...]) -> str:
    luminance = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]
    return "black" if luminance > 0.5 else "white"


def grid_heatmap(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
                 metric: str = "return_mean", methods: Sequence[str] = GRID_METHODS,
                 finetuned: bool = False, boot: Bootstrap = DEFAULT_BOOT, annotate: bool = True,
                 fmt: str = "{:.0f}", cmap: str = "viridis", colorbar: bool = True,
                 clabel: str | None = None, title: str | None = None) -> pd.DataFrame:
    """A metric over the grid of % pruned (x) by % rank reduced (y), one cell per pair of levels.

    Cells show the estimate over seeds (annotated with ``fmt``); their intervals are in the
    returned frame. Pairs without results stay blank.

    Args:
        frame: the tidy frame.
        ax: the axes to draw into.
        env: the environment.
        metric: the metric of the cells.
        methods: the methods of the grid (:data:`GRID_METHODS`).
        finetuned: naive (False) or fine-tuned (True) results.
        boot: the statistic and bootstrap settings.
        annotate: write each cell's estimate into it.
        fmt: format of the annotations.
        cmap: matplotlib colormap.
        colorbar: draw a colorbar beside the axes.
        clabel: the colorbar's name (default from :data:`LABELS`).
        title: axes title (default the environment).

    Returns:
        Columns ``prune, lowrank, estimate, ci_low, ci_high, n_seeds``.
    """
    env = resolve_env(frame, env)
    rows = select(frame, env=env, methods=methods, finetuned=finetuned, metric=metric)
    table = _aggregate(rows, ["prune", "lowrank"], None, boot)
    _finish(ax, LEVEL_LABELS["prune"], LEVEL_LABELS["lowrank"], title or env, empty=table.empty,
            legend=False)
    if table.empty:
        return table
    cells = table.pivot(index="lowrank", columns="prune", values="estimate")
    values = cells.to_numpy(float)
    image = ax.imshow(np.ma.masked_invalid(values), origin="lower", aspect="auto", cmap=cmap)
    ax.set_xticks(range(cells.shape[1]), _percent(cells.columns))
    ax.set_yticks(range(cells.shape[0]), _percent(cells.index))
    if annotate:
        for (i, j), value in np.ndenumerate(values):
            if not math.isnan(value):
                ax.text(j, i, fmt.format(value), ha="center", va="center", fontsize="x-small",
                        color=_text_color(image.cmap(image.norm(value))))
    if colorbar:
        ax.figure.colorbar(image, ax=ax, label=clabel or label(metric))
    return table


def fig6_grid_return(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
                     metric: str = "return_mean", **options) -> pd.DataFrame:
    """Fig 6: % pruned x % rank reduced vs return (heatmap, annotated cells).

    ``options`` go to :func:`grid_heatmap`.
    """
    return grid_heatmap(frame, ax, env=env, metric=metric, **options)


def fig8_grid_cpu(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
                  metric: str = "cpu_percent", **options) -> pd.DataFrame:
    """Fig 8: % pruned x % rank reduced vs CPU % (heatmap, annotated cells).

    ``options`` go to :func:`grid_heatmap`.
    """
    return grid_heatmap(frame, ax, env=env, metric=metric, **options)


# Naive vs fine-tuned scatter -------------------------------------------------------------------

POINT_KEYS = ["spec", "method", "finetuned"]
"""What makes one point of :func:`naive_vs_finetuned`: a compression, naive or fine-tuned."""


def naive_vs_finetuned(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
                       x_metric: str = "eval_seconds", y_metric: str = "return_mean",
                       relative_x: bool = False, methods: Sequence[str] | None = None,
                       boot: Bootstrap = DEFAULT_BOOT, xlabel: str | None = None,
                       ylabel: str | None = None, title: str | None = None) -> pd.DataFrame:
    """One point per compressed model, naive and fine-tuned in two colours, with x and y intervals.

    The dense model is a star. Both coordinates are aggregated over training seeds separately.

    Args:
        frame: the tidy frame.
        ax: the axes to draw into.
        env: the environment.
        x_metric: the metric on the x axis.
        y_metric: the metric on the y axis.
        relative_x: show x as a percentage of the same seed's dense value
            (:func:`relative_to_dense`).
        methods: keep these methods (None: all of the environment's results).
        boot: the statistic and bootstrap settings.
        xlabel: x axis name (default from :data:`LABELS` or :data:`RELATIVE_LABELS`).
        ylabel: y axis name (default from :data:`LABELS`).
        title: axes title (default the environment).

    Returns:
        Columns ``spec, method, finetuned``, then ``x_estimate, x_ci_low, x_ci_high, x_n_seeds``
        and the same four for ``y_``.
    """
    env = resolve_env(frame, env)
    rows = select(frame, env=env, methods=methods, finetuned=None)
    x_rows = (relative_to_dense(rows, x_metric) if relative_x
              else rows[rows["metric"] == x_metric])
    xs = _aggregate(x_rows, POINT_KEYS, None, boot)
    ys = _aggregate(rows, POINT_KEYS, y_metric, boot)
    table = xs.merge(ys, on=POINT_KEYS, suffixes=("_x", "_y"))
    table.columns = [*POINT_KEYS, *(f"{axis}_{c}" for axis in "xy" for c in AGGREGATE_COLUMNS)]
    dense = table["method"] == "dense"
    groups = (("naive", "o", 5, "C0", ~table["finetuned"] & ~dense),
              ("fine-tuned", "s", 5, "C1", table["finetuned"] & ~dense),
              ("dense", "*", 9, "k", dense))
    for name, marker, size, color, mask in groups:
        points = table[mask]
        if not points.empty:
            ax.errorbar(points["x_estimate"], points["y_estimate"], xerr=_errors(points, "x_"),
                        yerr=_errors(points, "y_"), fmt=marker, ms=size, color=color, capsize=2,
                        elinewidth=0.7, alpha=0.85, label=name)
    _finish(ax, xlabel or label(x_metric, relative_x), ylabel or label(y_metric), title or env,
            empty=table.empty)
    return table


def fig4_evaltime_return(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
                         x_metric: str = "eval_seconds", relative: bool = True,
                         **options) -> pd.DataFrame:
    """Fig 4: % eval time (of the dense model's) vs return, naive vs fine-tuned.

    ``x_metric="seconds_per_step"`` removes the episode-length confound. ``options`` go to
    :func:`naive_vs_finetuned` (``methods``, ``boot``, labels, ``title``).
    """
    return naive_vs_finetuned(frame, ax, env=env, x_metric=x_metric, relative_x=relative,
                              **options)


def fig10_ram_return(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
                     x_metric: str = "ram_percent", relative: bool = False,
                     **options) -> pd.DataFrame:
    """Fig 10: % RAM vs return, naive vs fine-tuned.

    ``options`` go to :func:`naive_vs_finetuned`.
    """
    return naive_vs_finetuned(frame, ax, env=env, x_metric=x_metric, relative_x=relative,
                              **options)


# Bars ------------------------------------------------------------------------------------------

def _grouped_bars(ax: Axes, table: pd.DataFrame, group: str, groups: list[str], hue: str,
                  hues: list[str], hatched: Sequence[str] = (), fmt: str = "{:.3g}") -> None:
    """Bars of ``estimate`` with interval error bars: one cluster per group, one bar per hue.

    Hues in ``hatched`` (numbers reported elsewhere, not measured) are hatched and lighter.
    """
    width = 0.8 / max(len(hues), 1)
    for j, name in enumerate(hues):
        bars = table[table[hue] == name].set_index(group).reindex(groups).dropna(
            subset=["estimate"])
        if bars.empty:
            continue
        at = np.array([groups.index(g) for g in bars.index]) + (j - (len(hues) - 1) / 2) * width
        drawn = ax.bar(at, bars["estimate"], width, yerr=_errors(bars), capsize=3,
                       color=f"C{j}", hatch="//" if name in hatched else None,
                       alpha=0.6 if name in hatched else 1.0, label=name)
        ax.bar_label(drawn, labels=[fmt.format(v) for v in bars["estimate"]],
                     fontsize="x-small", padding=2)
    ax.set_xticks(range(len(groups)), list(groups))


def quant_storage(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
                  quant_method: str = "quant", bits: int = 8,
                  reported: Mapping[str, float] | None = None, reported_label: str = "poster",
                  metric: str = "bytes", theoretical_metric: str = "theoretical_bytes",
                  finetuned: bool | None = None, boot: Bootstrap = DEFAULT_BOOT,
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
        boot: the statistic and bootstrap settings.
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
        table = _aggregate(part, [], name, boot, scale=1e-6)
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
    _finish(ax, "", "Storage (MB)", title or env, empty=not measured)
    return table


def latency_bars(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
                 models: Mapping[str, str] = LATENCY_MODELS,
                 runtimes: Mapping[str, str] = RUNTIMES, quantile: str = "median",
                 finetuned: bool = False, boot: Bootstrap = DEFAULT_BOOT,
                 title: str | None = None) -> pd.DataFrame:
    """Latency of one batch-1 decision in ms, per model, in eager PyTorch and in ONNX Runtime.

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
        boot: the statistic and bootstrap settings.
        title: axes title (default the environment).

    Returns:
        Columns ``model, spec, runtime, estimate, ci_low, ci_high, n_seeds`` in milliseconds.
    """
    env = resolve_env(frame, env)
    rows = select(frame, env=env, finetuned=finetuned)
    rows = rows[rows["spec"].isin(list(models.values()))]
    names = {spec: name for name, spec in models.items()}
    tables = []
    for runtime, runtime_name in runtimes.items():
        table = _aggregate(rows, ["spec"], f"latency_{runtime}_{quantile}_s", boot, scale=1e3)
        table.insert(0, "model", table["spec"].map(names))
        table.insert(2, "runtime", runtime_name)
        tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    rank = table["model"].map({name: i for i, name in enumerate(models)})
    table = table.iloc[np.argsort(rank.to_numpy(), kind="stable")].reset_index(drop=True)
    _grouped_bars(ax, table, "model", list(models), "runtime", list(runtimes.values()))
    _finish(ax, "", f"Latency per decision, {quantile} (ms)", title or env, empty=table.empty)
    return table


FIGURES = {
    "fig3": fig3_pruning_return, "fig4": fig4_evaltime_return, "fig5": fig5_rank_evaltime,
    "fig6": fig6_grid_return, "fig7": fig7_rank_ram, "fig8": fig8_grid_cpu,
    "fig9": fig9_rank_cpu, "fig10": fig10_ram_return, "quant_storage": quant_storage,
}
"""The poster's figures (and its quantization text) by name."""


# Models side by side, and naive vs fine-tuned tables (chapters 03 and 04) -----------------------

QUANT_MODELS = {"dense": "dense", "int8": "quant=8", "pruned 50% + int8": "prune=0.5+quant=8",
                "low rank 50% + int8": "lowrank=0.5+quant=8", "low rank 75%": "lowrank=0.75"}
"""The models of the quantization chapter: legend name -> canonical spec text as stored."""

METHOD_ORDER = ("dense", "prune", "prune[layer]", "prune[structured]", "lowrank",
                "lowrank[keep_io]", "quant", "quant[qat]")
"""The order of methods in the tables of :func:`finetune_table` and :func:`finetune_cost_table`."""


def interval_cell(estimate: float, low: float, high: float, fmt: str) -> str:
    """``fmt`` of the estimate, with the interval in brackets unless it is a point or missing."""
    if pd.isna(estimate):
        return ""
    if pd.isna(low) or pd.isna(high) or low == high == estimate:
        return fmt.format(estimate)
    return f"{fmt.format(estimate)} [{fmt.format(low)}, {fmt.format(high)}]"


def _spec_order(frame: pd.DataFrame) -> list[str]:
    """The specs of ``frame`` by :data:`METHOD_ORDER` (others after), then by level, then text."""
    specs = frame.drop_duplicates("spec")[["spec", "method", "level"]]
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    keys = [(rank.get(m, len(rank)), m, -math.inf if pd.isna(lv) else float(lv), s)
            for s, m, lv in zip(specs["spec"], specs["method"], specs["level"], strict=True)]
    return [k[-1] for k in sorted(keys)]


def _envs(frame: pd.DataFrame, envs: Sequence[str] | None) -> list[str]:
    return list(envs) if envs is not None else sorted(frame["env"].unique())


def spec_bars(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
              models: Mapping[str, str] = QUANT_MODELS, metric: str = "return_mean",
              finetuned: bool = False, scale: float = 1.0, boot: Bootstrap = DEFAULT_BOOT,
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
        boot: the statistic and bootstrap settings.
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
    table = _aggregate(rows, ["spec"], metric, boot, scale=scale)
    table.insert(0, "model", table["spec"].map({spec: name for name, spec in models.items()}))
    rank = table["model"].map({name: i for i, name in enumerate(models)})
    table = table.iloc[np.argsort(rank.to_numpy(), kind="stable")].reset_index(drop=True)
    hue = f"_{metric}"
    drawn = [m for m in models if m in set(table["model"])]
    _grouped_bars(ax, table.assign(hue=hue), "model", drawn, "hue", [hue], fmt=fmt)
    ax.set_xticks(range(len(drawn)), [textwrap.fill(m, wrap) for m in drawn], fontsize="small")
    ax.axhline(0.0, color="0.3", lw=0.6)
    _finish(ax, "", ylabel or label(metric), title or env, empty=table.empty)
    return table


def spec_table(frame: pd.DataFrame, models: Mapping[str, str] = QUANT_MODELS,
               metrics: Mapping[str, str] | None = None, *, envs: Sequence[str] | None = None,
               finetuned: bool = False, scales: Mapping[str, float] | None = None,
               formats: Mapping[str, str] | None = None,
               boot: Bootstrap = DEFAULT_BOOT) -> pd.DataFrame:
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
        boot: the statistic and bootstrap settings.

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
            table = _aggregate(rows, ["spec"], metric, boot,
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
                   boot: Bootstrap = DEFAULT_BOOT) -> pd.DataFrame:
    """A metric naive and fine-tuned, per spec, with the paired change fine-tuning made.

    The change is fine-tuned minus naive, paired by training seed
    (:func:`rlcomp.analysis.claims.difference_ci`, the same bootstrap settings). The dense model
    fine-tuned (no compression held) is the control row.

    Args:
        frame: the tidy frame.
        envs: the environments (default: all in the frame, sorted).
        metric: the metric compared.
        fmt: format of the numbers.
        boot: the statistic and bootstrap settings.

    Returns:
        A frame indexed by ``spec`` (the specs that were fine-tuned), with columns ``(env,
        naive)``, ``(env, fine-tuned)`` and ``(env, change)``.
    """
    from rlcomp.analysis.claims import difference_ci

    columns: dict = {}
    order: list[str] = []
    for env in _envs(frame, envs):
        rows = frame[(frame["env"] == env) & (frame["metric"] == metric)]
        tuned_specs = _spec_order(rows[rows["finetuned"]])
        order += [s for s in tuned_specs if s not in order]
        for name, finetuned in (("naive", False), ("fine-tuned", True)):
            table = _aggregate(rows[rows["finetuned"] == finetuned], ["spec"], None,
                               boot).set_index("spec")
            columns[(env, name)] = {
                s: interval_cell(*table.loc[s, ["estimate", "ci_low", "ci_high"]], fmt)
                for s in tuned_specs if s in table.index}
        columns[(env, "change")] = {}
        for spec in tuned_specs:
            mine = rows[rows["spec"] == spec]
            change = difference_ci(mine[mine["finetuned"]], mine[~mine["finetuned"]], None,
                                   statistic=boot.statistic, confidence=boot.confidence,
                                   reps=boot.reps, random_state=boot.random_state)
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


def _with_eval_cpu_seconds(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` plus one ``eval_cpu_seconds`` row per job (CPU seconds per step x env steps)."""
    per_step = rows[rows["metric"] == "cpu_seconds_per_step"].set_index("key")
    steps = rows[rows["metric"] == "env_steps"].set_index("key")["value"]
    derived = per_step.assign(metric="eval_cpu_seconds",
                              value=per_step["value"] * steps.reindex(per_step.index))
    return pd.concat([rows, derived.reset_index()[rows.columns]], ignore_index=True)


def finetune_cost_table(frame: pd.DataFrame, *, envs: Sequence[str] | None = None,
                        costs: Mapping[str, str] = FINETUNE_COSTS,
                        fmt: str = "{:,.3g}") -> pd.DataFrame:
    """What fine-tuning cost beside what evaluating the fine-tuned model cost, per spec.

    Means over training seeds of the fine-tuned jobs' costs as the sweep stored them
    (``finetune_*`` from :func:`rlcomp.compress.finetune.finetune`) and of the same jobs'
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
        rows = _with_eval_cpu_seconds(frame[(frame["env"] == env) & frame["finetuned"]])
        for spec in _spec_order(rows):
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


def finetune_cost_bars(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
                       measure: str = "cpu_seconds", boot: Bootstrap = DEFAULT_BOOT,
                       log: bool | None = None, title: str | None = None) -> pd.DataFrame:
    """Seconds spent fine-tuning each model beside seconds spent evaluating it (log scale).

    Args:
        frame: the tidy frame.
        ax: the axes to draw into.
        env: the environment.
        measure: ``cpu_seconds`` (CPU time of the process) or ``wall_seconds``.
        boot: the statistic and bootstrap settings.
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
    rows = _with_eval_cpu_seconds(rows) if measure == "cpu_seconds" else rows
    parts = {"fine-tuning": tune_metric, "evaluation": eval_metric}
    tables = []
    for part, metric in parts.items():
        table = _aggregate(rows, ["spec"], metric, boot)
        table.insert(1, "part", part)
        tables.append(table)
    table = pd.concat(tables, ignore_index=True)
    specs = _spec_order(rows)
    _grouped_bars(ax, table, "spec", specs, "part", list(parts))
    ax.set_xticks(range(len(specs)), specs, rotation=25, ha="right", fontsize="small")
    positive = table.loc[table["estimate"] > 0, "estimate"]
    if log is None:
        log = not positive.empty and positive.max() > 20 * positive.min()
    if log and not positive.empty:
        ax.set_yscale("log")
    _finish(ax, "", ylabel, title or env, empty=table.empty)
    return table


def latency_ratios(tables: Mapping[str, pd.DataFrame], baseline: str = "dense",
                   fmt: str = "{:.2f}x") -> pd.DataFrame:
    """Each model's latency as a multiple of the baseline model's, per environment and runtime.

    Args:
        tables: environment -> the table :func:`latency_bars` returned.
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


def without_finetuned_dense(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` without the dense model's fine-tuned rows (the control of the fine-tuning sweep).

    :func:`naive_vs_finetuned` draws every dense row as the dense star, so a fine-tuned dense
    control would appear as a second star; this keeps only the naive dense agent there (the
    control stays in :func:`finetune_table`).
    """
    return frame[~((frame["method"] == "dense") & frame["finetuned"])]


SHORT_METHODS = {"prune": "P", "prune[layer]": "PL", "prune[structured]": "PS", "lowrank": "R",
                 "lowrank[keep_io]": "RK", "quant": "int8", "quant[qat]": "QAT"}
"""Short point labels of :func:`label_points`: method -> prefix (levels follow in %, except for
quantization)."""


def short_spec(method: str, level: float | None) -> str:
    """A short label of a single compression: ``P90`` (pruned 90%), ``R50``, ``int8``, ``QAT``."""
    prefix = SHORT_METHODS.get(method, method)
    if method.startswith("quant") or level is None or pd.isna(level):
        return prefix
    return f"{prefix}{100 * float(level):g}"


def label_points(ax: Axes, table: pd.DataFrame, frame: pd.DataFrame,
                 fontsize: str = "xx-small") -> None:
    """Write each compressed point's short label (:func:`short_spec`) beside it.

    Points of the same colour at the same place share one label (``int8/QAT``).

    Args:
        ax: the axes :func:`naive_vs_finetuned` drew into.
        table: the table it returned.
        frame: the tidy frame it drew (for each spec's level).
        fontsize: size of the labels.
    """
    levels = frame.drop_duplicates("spec").set_index("spec")["level"]
    points = table[table["method"] != "dense"]
    for finetuned, color in ((False, "C0"), (True, "C1")):
        mine = points[points["finetuned"] == finetuned]
        places: dict[tuple[float, float], list[str]] = {}
        for spec, method, x, y in zip(mine["spec"], mine["method"], mine["x_estimate"],
                                      mine["y_estimate"], strict=True):
            if pd.isna(x) or pd.isna(y):
                continue
            text = short_spec(method, levels.get(spec))
            places.setdefault((float(x), float(y)), [])
            if text not in places[(float(x), float(y))]:
                places[(float(x), float(y))].append(text)
        for (x, y), texts in places.items():
            ax.annotate("/".join(texts), (x, y), xytext=(4, 3 if finetuned else -7),
                        textcoords="offset points", fontsize=fontsize, color=color)
