"""What the figure functions share: axis names, interval bands, error bars, finishing an axes.

Used by :mod:`rlcomp.analysis.figures` and :mod:`rlcomp.analysis.figures_bars`; it holds no figure
of its own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes

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


def label(metric: str, relative: bool = False) -> str:
    """The axis name of ``metric`` (as a percentage of dense when ``relative``)."""
    if relative:
        return RELATIVE_LABELS.get(metric, f"{metric} (% of dense)")
    return LABELS.get(metric, metric)


def error_bars(table: pd.DataFrame, prefix: str = "") -> np.ndarray:
    """Error-bar lengths (2 x n) from estimates and interval ends; NaN and negatives become 0."""
    est = table[f"{prefix}estimate"].to_numpy(float)
    below = est - table[f"{prefix}ci_low"].to_numpy(float)
    above = table[f"{prefix}ci_high"].to_numpy(float) - est
    return np.clip(np.nan_to_num(np.vstack([below, above])), 0.0, None)


def draw_band(ax: Axes, x: pd.Series, table: pd.DataFrame, label: str, color: str) -> None:
    """A line of means with markers and its interval as a translucent band."""
    ax.plot(x, table["estimate"], marker="o", ms=3, lw=1.2, color=color, label=label)
    ax.fill_between(x, table["ci_low"], table["ci_high"], color=color, alpha=0.2, lw=0)


def finish_axes(ax: Axes, xlabel: str, ylabel: str, title: str | None, empty: bool,
                legend: bool = True) -> None:
    """Name the axes, set the title, and say "no results" or draw the legend."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    if empty:
        ax.text(0.5, 0.5, "no results", ha="center", va="center", transform=ax.transAxes)
    elif legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize="x-small")
