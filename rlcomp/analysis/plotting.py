"""What the figure functions share: palette, style, axis names, bands and the readability check.

Also error bars and finishing an axes; every figure of the book passes :func:`readable`.

Used by :mod:`rlcomp.analysis.figures`, :mod:`rlcomp.analysis.figures_bars` and the other figure
modules; it holds no figure of its own.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import matplotlib as mpl
import numpy as np
import pandas as pd
from cycler import cycler
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.text import Text

PALETTE_NAME = "Okabe-Ito"
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
"""The book's one qualitative palette (Okabe and Ito, *Color Universal Design*, 2008).

Told apart by readers with any common colour-vision deficiency; series also differ in marker, so
greyscale works."""

MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
"""Marker of the i-th series, beside its colour (readable in greyscale)."""

SEQUENTIAL_CMAP = "cividis"
"""The book's sequential colour map (perceptually uniform, colour-blind safe, monotone in grey)."""

PAGE_WIDTH_PX = 660
"""Width (CSS px) at which the book shows a figure that fills the text column, at a 1280 px window
(measured in Chromium on the built site)."""

SCREEN_DPI = 96
"""CSS pixels per inch."""

FIGURE_DPI = 100
"""The resolution the notebooks render figures at (matplotlib's inline default)."""

PAGE_WIDTH_IN = PAGE_WIDTH_PX / SCREEN_DPI
"""A figure this wide (inches) shows at its own size in the text column; a wider one is shrunk."""

MIN_LABEL_PT = 9.0
"""The smallest text a figure may show, in points as the reader sees it on the page."""

BOOK_STYLE = {
    "axes.prop_cycle": cycler(color=PALETTE),
    "image.cmap": SEQUENTIAL_CMAP,
    "font.size": 10.0,
    "axes.titlesize": 10.5,
    "axes.labelsize": 10.0,
    "xtick.labelsize": 9.5,
    "ytick.labelsize": 9.5,
    "legend.fontsize": 9.5,
    "figure.titlesize": 11.0,
    "figure.dpi": FIGURE_DPI,
    "savefig.dpi": FIGURE_DPI,
}
"""rcParams of every figure of the book (:func:`use_book_style`)."""


def use_book_style() -> None:
    """Set the book's palette, colour map and text sizes for every figure drawn after this call."""
    mpl.rcParams.update(BOOK_STYLE)


@contextmanager
def book_style() -> Iterator[None]:
    """The book's style inside a ``with`` block only."""
    with mpl.rc_context(BOOK_STYLE):
        yield


def colour(i: int) -> str:
    """The i-th colour of :data:`PALETTE` (cycling)."""
    return PALETTE[i % len(PALETTE)]


def marker(i: int) -> str:
    """The i-th marker of :data:`MARKERS` (cycling)."""
    return MARKERS[i % len(MARKERS)]


def page_scale(fig: Figure) -> float:
    """How much the page shrinks (< 1) or keeps (about 1) ``fig``'s text in the text column."""
    width_in = fig.get_figwidth()
    shown_px = min(PAGE_WIDTH_PX, width_in * FIGURE_DPI)
    return shown_px / (width_in * SCREEN_DPI)


def _visible_texts(fig: Figure) -> list[Text]:
    texts = []
    for text in fig.findobj(Text):
        if not text.get_visible() or not text.get_text().strip():
            continue
        if not all(a.get_visible() for a in _ancestors(text)):
            continue
        texts.append(text)
    return texts


def _ancestors(text: Text) -> list:
    chain, artist = [], text
    while getattr(artist, "axes", None) is not None and artist.axes is not artist:
        artist = artist.axes
        chain.append(artist)
    return chain


def readability_problems(fig: Figure, min_pt: float = MIN_LABEL_PT,
                         slack_px: float = 1.0) -> list[str]:
    """What makes ``fig`` hard to read on the page.

    Text smaller than ``min_pt`` points as shown at page width, and pairs of texts whose boxes
    overlap (by more than ``slack_px`` pixels each way).

    Args:
        fig: a drawn or undrawn figure (it is drawn here).
        min_pt: the smallest size the reader may meet, in points on the page.
        slack_px: overlaps this small (anti-aliasing, touching boxes) are not counted.

    Returns:
        One sentence per problem; empty when the figure is readable.
    """
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()
    scale = page_scale(fig)
    problems = []
    texts = _visible_texts(fig)
    boxes = []
    for text in texts:
        shown = text.get_fontsize() * scale
        if shown < min_pt - 1e-9:
            problems.append(f"text {text.get_text()!r} is {shown:.1f} pt on the page "
                            f"(< {min_pt:g} pt)")
        box = text.get_window_extent(renderer)
        boxes.append(box)
    for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2):
        dx = min(a.x1, b.x1) - max(a.x0, b.x0)
        dy = min(a.y1, b.y1) - max(a.y0, b.y0)
        if dx > slack_px and dy > slack_px:
            problems.append(f"texts {texts[i].get_text()!r} and {texts[j].get_text()!r} overlap")
    return problems


def readable(fig: Figure) -> Figure:
    """``fig`` itself if :func:`readability_problems` finds nothing; raise otherwise.

    Every chapter passes its figures through this before showing them, so an unreadable figure
    stops the chapter (and the test suite, which runs the chapters).

    Raises:
        ValueError: naming the problems.
    """
    problems = readability_problems(fig)
    if problems:
        raise ValueError("unreadable figure: " + "; ".join(problems[:6])
                         + (f"; and {len(problems) - 6} more" if len(problems) > 6 else ""))
    return fig

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
