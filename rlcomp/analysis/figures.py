"""The poster's figures (Fig 3 to 10): one function per figure, each drawing into a given ``ax``.

Lines over a compression level, heatmaps over the pruned x rank-reduced grid, naive vs
fine-tuned scatters, and the agents' training curves (chapter 00). Bar charts (storage, latency,
models side by side, fine-tuning cost) are in :mod:`rlcomp.analysis.figures_bars`; the rows a
figure draws are picked and aggregated by :mod:`rlcomp.analysis.selection`.

Every function takes the tidy results frame (:meth:`rlcomp.experiments.store.ResultStore.load`)
and an axes, keeps one environment's rows, aggregates a metric over training seeds with
:func:`rlcomp.stats.aggregate` (the mean and its 95% t interval over seed means unless
``intervals`` says otherwise), draws the means with interval bands (lines), error bars (points,
bars) or annotated cells (heatmaps), names the axes as the poster does, and returns the
aggregated frame it drew so that a chapter can print the numbers beside the figure.

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

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D
from matplotlib.ticker import EngFormatter

from rlcomp.analysis.plotting import LEVEL_LABELS, draw_band, error_bars, finish_axes, label
from rlcomp.analysis.selection import (
    DEFAULT_INTERVALS,
    GRID_METHODS,
    grid_over_seeds,
    over_seeds,
    relative_to_dense,
    resolve_env,
    select,
)
from rlcomp.analysis.training import TARGETS
from rlcomp.stats import AGGREGATE_COLUMNS, IntervalSettings

PRUNE_VARIANTS = {"global": "prune", "per-layer": "prune[layer]",
                  "structured": "prune[structured]"}
"""Fig 3's lines: legend name -> ``method`` of the tidy frame."""

LOWRANK_VARIANTS = {"all layers": "lowrank", "input/output kept": "lowrank[keep_io]"}
"""Lines of :func:`rank_return`: legend name -> ``method``."""


def _empty(columns: Sequence[str]) -> pd.DataFrame:
    return pd.DataFrame(columns=list(columns))


def _percent(values: pd.Series | Sequence[float]) -> list[str]:
    return [f"{100 * v:g}" for v in values]


# Lines over one level ---------------------------------------------------------------------------

def level_lines(frame: pd.DataFrame, ax: Axes, *, env: str | None = None, level: str = "prune",
                variants: Mapping[str, str] = PRUNE_VARIANTS, metric: str = "return_mean",
                finetuned: bool = False, intervals: IntervalSettings = DEFAULT_INTERVALS,
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
        intervals: the interval method, statistic and settings.
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
        table = over_seeds(mine, [level], None, intervals)
        table.insert(0, "variant", name)
        draw_band(ax, 100 * table[level], table, name, f"C{i}")
        tables.append(table)
    finish_axes(ax, xlabel or LEVEL_LABELS.get(level, level), ylabel or label(metric),
            title or env, empty=not tables)
    if not tables:
        return _empty(["variant", level, *AGGREGATE_COLUMNS])
    return pd.concat(tables, ignore_index=True)


def fig3_pruning_return(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
                        variants: Mapping[str, str] = PRUNE_VARIANTS,
                        metric: str = "return_mean", **options) -> pd.DataFrame:
    """Fig 3: % pruned vs return, one line per pruning variant (global, per-layer, structured).

    ``options`` go to :func:`level_lines` (``finetuned``, ``intervals``, labels, ``title``).
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


# Lines over rank reduction, one per pruning level -----------------------------------------------

def rank_lines(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
               metric: str = "eval_seconds", prune_levels: Sequence[float] | None = None,
               methods: Sequence[str] = GRID_METHODS, finetuned: bool = False,
               intervals: IntervalSettings = DEFAULT_INTERVALS, ylabel: str | None = None,
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
        intervals: the interval method, statistic and settings.
        ylabel: y axis name (default from :data:`LABELS`).
        title: axes title (default the environment).

    Returns:
        Columns ``prune, lowrank, estimate, ci_low, ci_high, n_seeds``.
    """
    env, table = grid_over_seeds(frame, env=env, methods=methods, finetuned=finetuned,
                                 metric=metric, intervals=intervals)
    if prune_levels is not None:
        wanted = np.asarray(prune_levels, dtype=float)
        table = table[[bool(np.isclose(p, wanted).any()) for p in table["prune"]]]
    for i, (prune, line) in enumerate(table.groupby("prune", sort=True)):
        draw_band(ax, 100 * line["lowrank"], line, f"{100 * prune:g}% pruned", f"C{i % 10}")
    finish_axes(ax, LEVEL_LABELS["lowrank"], ylabel or label(metric), title or env,
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


# Pruned x rank-reduced heatmaps -----------------------------------------------------------------

def _text_color(rgba: tuple[float, ...]) -> str:
    luminance = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]
    return "black" if luminance > 0.5 else "white"


def grid_heatmap(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
                 metric: str = "return_mean", methods: Sequence[str] = GRID_METHODS,
                 finetuned: bool = False, intervals: IntervalSettings = DEFAULT_INTERVALS,
                 annotate: bool = True,
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
        intervals: the interval method, statistic and settings.
        annotate: write each cell's estimate into it.
        fmt: format of the annotations.
        cmap: matplotlib colormap.
        colorbar: draw a colorbar beside the axes.
        clabel: the colorbar's name (default from :data:`LABELS`).
        title: axes title (default the environment).

    Returns:
        Columns ``prune, lowrank, estimate, ci_low, ci_high, n_seeds``.
    """
    env, table = grid_over_seeds(frame, env=env, methods=methods, finetuned=finetuned,
                                 metric=metric, intervals=intervals)
    finish_axes(ax, LEVEL_LABELS["prune"], LEVEL_LABELS["lowrank"], title or env, empty=table.empty,
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


# Naive vs fine-tuned scatter --------------------------------------------------------------------

POINT_KEYS = ["spec", "method", "finetuned"]
"""What makes one point of :func:`naive_vs_finetuned`: a compression, naive or fine-tuned."""


def naive_vs_finetuned(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
                       x_metric: str = "eval_seconds", y_metric: str = "return_mean",
                       relative_x: bool = False, methods: Sequence[str] | None = None,
                       intervals: IntervalSettings = DEFAULT_INTERVALS, xlabel: str | None = None,
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
        intervals: the interval method, statistic and settings.
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
    xs = over_seeds(x_rows, POINT_KEYS, None, intervals)
    ys = over_seeds(rows, POINT_KEYS, y_metric, intervals)
    table = xs.merge(ys, on=POINT_KEYS, suffixes=("_x", "_y"))
    table.columns = [*POINT_KEYS, *(f"{axis}_{c}" for axis in "xy" for c in AGGREGATE_COLUMNS)]
    dense = table["method"] == "dense"
    groups = (("naive", "o", 5, "C0", ~table["finetuned"] & ~dense),
              ("fine-tuned", "s", 5, "C1", table["finetuned"] & ~dense),
              ("dense", "*", 9, "k", dense))
    for name, marker, size, color, mask in groups:
        points = table[mask]
        if not points.empty:
            ax.errorbar(points["x_estimate"], points["y_estimate"], xerr=error_bars(points, "x_"),
                        yerr=error_bars(points, "y_"), fmt=marker, ms=size, color=color, capsize=2,
                        elinewidth=0.7, alpha=0.85, label=name)
    finish_axes(ax, xlabel or label(x_metric, relative_x), ylabel or label(y_metric), title or env,
            empty=table.empty)
    return table


def fig4_evaltime_return(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
                         x_metric: str = "eval_seconds", relative: bool = True,
                         **options) -> pd.DataFrame:
    """Fig 4: % eval time (of the dense model's) vs return, naive vs fine-tuned.

    ``x_metric="seconds_per_step"`` removes the episode-length confound. ``options`` go to
    :func:`naive_vs_finetuned` (``methods``, ``intervals``, labels, ``title``).
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


# Training curves (chapter 00) ---------------------------------------------------------------------

def training_curves(curves: pd.DataFrame, ax: Axes, *, env: str,
                    window: int = 20) -> pd.DataFrame:
    """The training curves of every seed trained on ``env``: return against environment steps.

    Solid lines are training-episode returns smoothed by a trailing mean over ``window`` episodes;
    markers joined by dashed lines are the selection evaluations; the dotted line is the target.

    Args:
        curves: from :func:`rlcomp.analysis.training.curve_table`.
        ax: the axes to draw into.
        env: the environment whose curves to draw.
        window: episodes in the trailing mean of the training returns.

    Returns:
        The rows of ``curves`` drawn (those of ``env``).
    """
    ax.set_title(env)
    mine = curves[curves["env"] == env]
    if mine.empty:
        ax.text(0.5, 0.5, f"no committed checkpoints for {env}", ha="center", va="center",
                transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return mine
    handles = []
    runs = mine.groupby(["algo", "variant", "train_seed"], sort=True)
    for i, ((algo, variant, seed), run) in enumerate(runs):
        color = f"C{i % 10}"
        name = f"{variant}, seed {seed}" if algo == "pg" else f"seed {seed}"
        episodes = run[run["curve"] == "episode"]
        smooth = episodes["return"].rolling(window, min_periods=1).mean()
        ax.plot(episodes["step"], smooth, color=color, lw=1.2)
        evals = run[run["curve"] == "selection eval"]
        ax.plot(evals["step"], evals["return"], color=color, ls="--", marker="o", ms=3, lw=0.8)
        handles.append(Line2D([], [], color=color, lw=1.2, label=name))
    handles += [
        Line2D([], [], color="0.3", lw=1.2, label=f"training episodes (mean of {window})"),
        Line2D([], [], color="0.3", ls="--", marker="o", ms=3, lw=0.8,
               label="selection evaluations"),
    ]
    target = TARGETS.get(env)
    if target is not None:
        ax.axhline(target.min_return, color="0.4", ls=":", lw=1)
        handles.append(Line2D([], [], color="0.4", ls=":", lw=1, label="target"))
    ax.xaxis.set_major_formatter(EngFormatter(sep=""))
    ax.set_xlabel("environment steps")
    ax.set_ylabel("return")
    ax.legend(handles=handles, fontsize="x-small")
    return mine
