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

from rlcomp.analysis.plotting import (
    CELL_LABEL,
    LEVEL_LABELS,
    MIN_LABEL_PT,
    MOVABLE,
    SEQUENTIAL_CMAP,
    colour,
    display_scale,
    draw_band,
    error_bars,
    finish_axes,
    label,
    marker,
    page_scale,
)
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
from rlcomp.stats import AGGREGATE_COLUMNS, IntervalSettings, linear_fit

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
        draw_band(ax, 100 * table[level], table, name, colour(i), display_scale(metric),
                  marker(i))
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
        draw_band(ax, 100 * line["lowrank"], line, f"{100 * prune:g}% pruned", colour(i),
                  display_scale(metric), marker(i))
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

def label_size(ax: Axes) -> float:
    """The font size (points) of a label in ``ax`` shown at :data:`MIN_LABEL_PT` on the page."""
    return MIN_LABEL_PT / page_scale(ax.figure)


def _text_color(rgba: tuple[float, ...]) -> str:
    luminance = 0.299 * rgba[0] + 0.587 * rgba[1] + 0.114 * rgba[2]
    return "black" if luminance > 0.5 else "white"


def grid_heatmap(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
                 metric: str = "return_mean", methods: Sequence[str] = GRID_METHODS,
                 finetuned: bool = False, intervals: IntervalSettings = DEFAULT_INTERVALS,
                 annotate: bool = True,
                 fmt: str = "{:.0f}", cmap: str = SEQUENTIAL_CMAP, colorbar: bool = True,
                 clabel: str | None = None, title: str | None = None) -> pd.DataFrame:
    """A metric over the grid of % pruned (x) by % rank reduced (y), one cell per pair of levels.

    Cells show the estimate over seeds (annotated with ``fmt`` at the book's smallest text size;
    :func:`rlcomp.analysis.plotting.declutter` removes the numbers when a cell is too narrow for
    them); their intervals are in the returned frame. Pairs without results stay blank.

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
    values = display_scale(metric) * cells.to_numpy(float)
    image = ax.imshow(np.ma.masked_invalid(values), origin="lower", aspect="auto", cmap=cmap)
    ax.set_xticks(range(cells.shape[1]), _percent(cells.columns))
    ax.set_yticks(range(cells.shape[0]), _percent(cells.index))
    if annotate:
        for (i, j), value in np.ndenumerate(values):
            if not math.isnan(value):
                ax.text(j, i, fmt.format(value), ha="center", va="center",
                        fontsize=label_size(ax), gid=CELL_LABEL,
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


SCATTER_GROUPS = {"naive": (False, "o", 0), "fine-tuned": (True, "s", 1)}
"""The two kinds of compressed points of :func:`naive_vs_finetuned`: name -> (finetuned, marker,
colour index)."""


def naive_vs_finetuned(frame: pd.DataFrame, ax: Axes, *, env: str | None = None,
                       x_metric: str = "eval_seconds", y_metric: str = "return_mean",
                       relative_x: bool = False, methods: Sequence[str] | None = None,
                       intervals: IntervalSettings = DEFAULT_INTERVALS, xlabel: str | None = None,
                       ylabel: str | None = None, title: str | None = None,
                       fit: bool = False) -> pd.DataFrame:
    """One point per compressed model, naive and fine-tuned in two colours, with x and y intervals.

    The dense model is a star. Both coordinates are aggregated over training seeds separately.
    With ``fit``, each kind of point (naive, fine-tuned) gets its ordinary least-squares line
    over the compressions' means (:func:`rlcomp.stats.linear_fit`, the dense model left out) with
    the line's 95% confidence band (cut at the limits the points set); :func:`fit_slopes` lists
    the slopes with their 95% intervals.

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
        fit: draw the fitted lines and bands (kinds with fewer than 3 distinct x get none).

    Returns:
        Columns ``spec, method, finetuned``, then ``x_estimate, x_ci_low, x_ci_high, x_n_seeds``
        and the same four for ``y_``, in stored units; ``attrs["display_scale"]`` holds the
        factors (x, y) the axes show them with, and with ``fit`` ``attrs["fits"]`` maps each
        kind fitted to its :class:`rlcomp.stats.LinearFit` (in the axes' units).
    """
    env = resolve_env(frame, env)
    rows = select(frame, env=env, methods=methods, finetuned=None)
    x_rows = (relative_to_dense(rows, x_metric) if relative_x
              else rows[rows["metric"] == x_metric])
    xs = over_seeds(x_rows, POINT_KEYS, None, intervals)
    ys = over_seeds(rows, POINT_KEYS, y_metric, intervals)
    table = xs.merge(ys, on=POINT_KEYS, suffixes=("_x", "_y"))
    table.columns = [*POINT_KEYS, *(f"{axis}_{c}" for axis in "xy" for c in AGGREGATE_COLUMNS)]
    x_scale, y_scale = display_scale(x_metric, relative_x), display_scale(y_metric)
    dense = table["method"] == "dense"
    groups = [(name, shape, 5, colour(i), (table["finetuned"] == tuned) & ~dense)
              for name, (tuned, shape, i) in SCATTER_GROUPS.items()]
    groups.append(("dense", "*", 10, "k", dense))
    for name, shape, size, color, mask in groups:
        points = table[mask]
        if not points.empty:
            ax.errorbar(x_scale * points["x_estimate"], y_scale * points["y_estimate"],
                        xerr=x_scale * error_bars(points, "x_"),
                        yerr=y_scale * error_bars(points, "y_"), fmt=shape, ms=size,
                        color=color, capsize=2, elinewidth=0.7, alpha=0.85, label=name)
    fits = {}
    if fit:
        ax.autoscale_view()
        ax.set_autoscale_on(False)  # the points set the limits; a wide band is cut at the edges
        for name, _, _, color, mask in groups[:-1]:
            points = table[mask].dropna(subset=["x_estimate", "y_estimate"])
            if points["x_estimate"].nunique() < 3:
                continue
            fits[name] = _draw_fit(ax, x_scale * points["x_estimate"].to_numpy(float),
                                   y_scale * points["y_estimate"].to_numpy(float), name, color)
    finish_axes(ax, xlabel or label(x_metric, relative_x), ylabel or label(y_metric), title or env,
            empty=table.empty)
    table.attrs["display_scale"] = (x_scale, y_scale)
    if fit:
        table.attrs["fits"] = fits
    return table


def _draw_fit(ax: Axes, x: np.ndarray, y: np.ndarray, name: str, color: str):
    """The OLS line of ``y`` on ``x`` over the range of ``x`` with its 95% band; returns the fit."""
    line = linear_fit(x, y)
    at = np.linspace(x.min(), x.max(), 50)
    low, high = line.band(at)
    ax.plot(at, line.predict(at), color=color, lw=1.2, ls="--",
            label=f"{name}: OLS line, 95% band")
    ax.fill_between(at, low, high, color=color, alpha=0.15, lw=0)
    return line


def fit_slopes(panels: Mapping[str, pd.DataFrame], unit: str = "unit of x") -> str:
    """The slopes of the lines :func:`naive_vs_finetuned` fitted, as a Markdown list.

    Args:
        panels: a name of each panel (environment and x measure) -> the table it returned with
            ``fit=True``.
        unit: what one unit of the x axes is, for the sentence "return per ...".

    Returns:
        One item per panel: each kind's slope with its 95% interval and its number of points.
    """
    items = []
    for name, table in panels.items():
        fits = table.attrs.get("fits", {})
        parts = [f"{kind} {fit.slope:.3g} [{fit.slope_ci[0]:.3g}, {fit.slope_ci[1]:.3g}] "
                 f"({fit.n} points)" for kind, fit in fits.items()]
        items.append(f"- {name}: " + ("; ".join(parts) if parts else "too few points to fit"))
    return (f"Slopes of the fitted lines (return per {unit}, 95% confidence interval):\n\n"
            + "\n".join(items))


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
    if method == "dense" or method.startswith("quant") or level is None or pd.isna(level):
        return prefix
    return f"{prefix}{100 * float(level):g}"


def label_points(ax: Axes, table: pd.DataFrame, frame: pd.DataFrame,
                 fontsize: float | str | None = None) -> None:
    """Write each compressed point's short label (:func:`short_spec`) beside it.

    Points of the same colour at the same place share one label (``int8/QAT``). The labels are
    movable (:data:`rlcomp.analysis.plotting.MOVABLE`): :func:`rlcomp.analysis.plotting.declutter`
    moves a label that collides to another side of its point, or removes it; every point stays
    identified by its marker and colour.

    Args:
        ax: the axes :func:`naive_vs_finetuned` drew into.
        table: the table it returned.
        frame: the tidy frame it drew (for each spec's level).
        fontsize: size of the labels (default: the book's smallest size on the page).
    """
    levels = frame.drop_duplicates("spec").set_index("spec")["level"]
    x_scale, y_scale = table.attrs.get("display_scale", (1.0, 1.0))
    points = table[table["method"] != "dense"]
    for finetuned, _, i in SCATTER_GROUPS.values():
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
            ax.annotate("/".join(texts), (x_scale * x, y_scale * y), xytext=(4, 3),
                        textcoords="offset points", fontsize=fontsize or label_size(ax),
                        color=colour(i), gid=MOVABLE, in_layout=False)


def fixed_episode_length(frame: pd.DataFrame, env: str) -> float | None:
    """The episode length every evaluation of ``env`` in ``frame`` had, or None when they differ.

    Read from the metric ``episode_length_mean`` over every model, level and seed of ``env``;
    None also when the frame holds no such rows.
    """
    lengths = frame.loc[(frame["env"] == env) & (frame["metric"] == "episode_length_mean"),
                        "value"].dropna()
    if lengths.empty or not np.allclose(lengths, lengths.iloc[0]):
        return None
    return float(lengths.iloc[0])


def fixed_length_note(frame: pd.DataFrame, envs: Sequence[str]) -> str:
    """A sentence for each environment whose episodes all last the same number of steps.

    Its eval-time panels then differ between levels only by the time per step: the wall time of
    all episodes is that time times a fixed number of steps. Empty when no environment is so.
    """
    notes = []
    for env in envs:
        length = fixed_episode_length(frame, env)
        if length is not None:
            notes.append(
                f"In {env} every evaluation episode of every model lasts {length:,.0f} steps "
                "(metric `episode_length_mean`, the same in every job), so its episode-length "
                "panel is flat and its eval time is its time per step times a fixed number of "
                "steps: the eval-time panels show the time per step alone, and repeat one "
                "another.")
    return " ".join(notes)


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
    ax.legend(handles=handles)
    return mine
