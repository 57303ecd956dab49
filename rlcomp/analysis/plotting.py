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
from matplotlib.backend_bases import RendererBase
from matplotlib.figure import Figure
from matplotlib.text import Annotation, Text
from matplotlib.transforms import Bbox

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


def _is_shown(text: Text) -> bool:
    if not text.get_visible() or not text.get_text().strip():
        return False
    return all(a.get_visible() for a in _ancestors(text))


def _ancestors(text: Text) -> list:
    chain, artist = [], text
    while getattr(artist, "axes", None) is not None and artist.axes is not artist:
        artist = artist.axes
        chain.append(artist)
    return chain


def drawn_texts(fig: Figure) -> tuple[list[Text], RendererBase]:
    """The texts a draw of ``fig`` really renders, in drawing order, and the renderer it used.

    ``fig.findobj(Text)`` also returns texts matplotlib never draws, such as tick labels of ticks
    outside the view limits (many on a log axis), annotations clipped away, and empty or hidden
    texts; those cannot collide with anything. Here the figure is drawn once while
    :meth:`Text.draw` records every text it is asked to draw; the shown, non-empty ones are kept.
    """
    recorded: list[Text] = []
    original = Text.draw

    def recording_draw(self: Text, renderer: RendererBase) -> None:
        recorded.append(self)
        return original(self, renderer)

    Text.draw = recording_draw  # type: ignore[method-assign]
    try:
        renderer = fig._get_renderer()
        fig.draw(renderer)
    finally:
        Text.draw = original  # type: ignore[method-assign]
    seen: set[int] = set()
    texts = []
    for text in recorded:
        if id(text) in seen or not _is_shown(text):
            continue
        if isinstance(text, Annotation) and not text._check_xy(renderer):
            continue
        seen.add(id(text))
        texts.append(text)
    return texts, renderer


def _overlap(a: Bbox, b: Bbox, slack_px: float) -> bool:
    dx = min(a.x1, b.x1) - max(a.x0, b.x0)
    dy = min(a.y1, b.y1) - max(a.y0, b.y0)
    return dx > slack_px and dy > slack_px


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
    texts, renderer = drawn_texts(fig)
    scale = page_scale(fig)
    problems = []
    boxes = []
    for text in texts:
        shown = text.get_fontsize() * scale
        if shown < min_pt - 1e-9:
            problems.append(f"text {text.get_text()!r} is {shown:.1f} pt on the page "
                            f"(< {min_pt:g} pt)")
        boxes.append(text.get_window_extent(renderer))
    for (i, a), (j, b) in itertools.combinations(enumerate(boxes), 2):
        if _overlap(a, b, slack_px):
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
    "seconds_per_step": "Eval time per step (µs)",
    "policy_share": "Policy share of eval time",
    "policy_time_ratio": "Policy time per decision / dense",
    "cpu_percent": "CPU %",
    "cpu_seconds_per_step": "CPU time per step (µs)",
    "ram_percent": "% RAM",
    "rss_bytes": "Resident memory (MiB)",
    "isolated_footprint_bytes": "Isolated footprint (kB)",
    "bytes": "Model file (kB)",
    "theoretical_bytes": "Theoretical size (kB)",
    "latency_onnx_median_s": "ONNX time per decision, median (µs)",
    "latency_onnx_p95_s": "ONNX time per decision, p95 (µs)",
    "latency_eager_median_s": "PyTorch time per decision, median (µs)",
    "latency_eager_p95_s": "PyTorch time per decision, p95 (µs)",
    "episode_length_mean": "Episode length (steps)",
}
"""Axis name of each metric with its unit as drawn (the poster's names where it has one); other
metrics show their name."""

DISPLAY_SCALES = {
    "seconds_per_step": 1e6,
    "cpu_seconds_per_step": 1e6,
    "latency_onnx_median_s": 1e6,
    "latency_onnx_p95_s": 1e6,
    "latency_eager_median_s": 1e6,
    "latency_eager_p95_s": 1e6,
    "bytes": 1e-3,
    "theoretical_bytes": 1e-3,
    "isolated_footprint_bytes": 1e-3,
    "rss_bytes": 2.0**-20,
}
"""Factor from a metric's stored unit to the unit of its axis name (s -> µs, bytes -> kB or MiB);
metrics not listed are drawn as stored. Figures scale what they draw only; the frames they return
stay in stored units."""

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


def display_scale(metric: str, relative: bool = False) -> float:
    """The factor from ``metric``'s stored unit to its axis unit (1 for a percentage of dense)."""
    return 1.0 if relative else DISPLAY_SCALES.get(metric, 1.0)


def error_bars(table: pd.DataFrame, prefix: str = "") -> np.ndarray:
    """Error-bar lengths (2 x n) from estimates and interval ends; NaN and negatives become 0."""
    est = table[f"{prefix}estimate"].to_numpy(float)
    below = est - table[f"{prefix}ci_low"].to_numpy(float)
    above = table[f"{prefix}ci_high"].to_numpy(float) - est
    return np.clip(np.nan_to_num(np.vstack([below, above])), 0.0, None)


def draw_band(ax: Axes, x: pd.Series, table: pd.DataFrame, label: str, color: str,
              scale: float = 1.0, marker: str = "o") -> None:
    """A line of means with markers and its interval as a translucent band (values x ``scale``)."""
    ax.plot(x, scale * table["estimate"], marker=marker, ms=3.5, lw=1.2, color=color, label=label)
    ax.fill_between(x, scale * table["ci_low"], scale * table["ci_high"], color=color, alpha=0.2,
                    lw=0)


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
        ax.legend()


# Whole figures: the book's width, one legend, no colliding labels --------------------------------

BOOK_WIDTH_IN = PAGE_WIDTH_IN
"""The width of every figure of the book (inches): the text column, so text keeps its size."""

DROPPABLE = "rlcomp-droppable"
"""``gid`` of a text :func:`declutter` may remove where it collides (numbers on bars)."""

MOVABLE = "rlcomp-movable"
"""``gid`` of a point's label (an annotation offset in points) :func:`declutter` may move to
another of :data:`LABEL_OFFSETS` or remove."""

CELL_LABEL = "rlcomp-cell"
"""``gid`` of a heatmap cell's number: :func:`declutter` removes all of an axes' cell numbers
when one does not fit its cell or they collide."""

LABEL_OFFSETS = ((4, 3, "left", "bottom"), (4, -3, "left", "top"),
                 (-4, 3, "right", "bottom"), (-4, -3, "right", "top"))
"""Places :func:`declutter` tries for a droppable annotation: offset (points) from its point and
its alignment, in order."""


def book_figure(nrows: int = 1, ncols: int = 1, height: float = 3.2,
                **options) -> tuple[Figure, np.ndarray]:
    """A figure of the book's width (:data:`BOOK_WIDTH_IN`) in the book style, with its axes.

    Sets the book style (:func:`use_book_style`) for what is drawn next, and lays the axes out
    with the constrained layout.

    Args:
        nrows: rows of axes.
        ncols: columns of axes.
        height: the figure's height in inches.
        options: passed to :func:`matplotlib.pyplot.subplots` (``sharex``, ``gridspec_kw``...).

    Returns:
        The figure and a 2-D array of its axes (``nrows x ncols``).
    """
    import matplotlib.pyplot as plt

    use_book_style()
    return plt.subplots(nrows, ncols, figsize=(BOOK_WIDTH_IN, height), layout="constrained",
                        squeeze=False, **options)


def shared_legend(fig: Figure, title: str | None = None, max_columns: int = 6) -> Figure:
    """One legend for the whole figure, below the axes, instead of one in each axes.

    Collects the entries of every axes (the first of each label), removes the axes' own legends
    and puts the entries in as many columns as fit the figure's width.

    Args:
        fig: a figure whose axes have legend entries.
        title: a title above the legend.
        max_columns: the most columns tried.

    Returns:
        ``fig``.
    """
    handles: dict[str, object] = {}
    for ax in fig.axes:
        for handle, name in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(name, handle)
        if ax.get_legend() is not None:
            ax.get_legend().remove()
    if not handles:
        return fig
    renderer = fig._get_renderer()
    for columns in range(min(max_columns, len(handles)), 0, -1):
        legend = fig.legend(list(handles.values()), list(handles), loc="outside lower center",
                            ncols=columns, title=title, frameon=False)
        if legend.get_window_extent(renderer).width <= 0.98 * fig.bbox.width or columns == 1:
            break
        legend.remove()
    return fig


def _cell_width_px(ax: Axes) -> float:
    origin = ax.transData.transform((0.0, 0.0))
    return float(abs(ax.transData.transform((1.0, 0.0))[0] - origin[0]))


def declutter(fig: Figure, slack_px: float = 1.0) -> Figure:
    """Move or remove the labels of ``fig`` that collide, so that :func:`readable` passes.

    Labels are placed in drawing order. A point's label (``gid`` :data:`MOVABLE`) tries the
    places of :data:`LABEL_OFFSETS` and must stay inside its axes; where every place overlaps a
    text already placed, it is removed, and its point stays identified by marker and colour. A
    number on a bar (``gid`` :data:`DROPPABLE`) is removed where it overlaps. Heatmap numbers
    (``gid`` :data:`CELL_LABEL`) are kept only when every one of the axes fits its cell,
    otherwise all of them are removed (the figure's table carries the values). Other texts are
    never touched.

    Returns:
        ``fig``.
    """
    texts, renderer = drawn_texts(fig)
    removed: set[int] = set()
    cells: dict[int, list[Text]] = {}
    for text in texts:
        if text.get_gid() == CELL_LABEL:
            cells.setdefault(id(text.axes), []).append(text)
    for mine in cells.values():
        width = _cell_width_px(mine[0].axes) - 2 * slack_px
        boxes = [t.get_window_extent(renderer) for t in mine]
        if any(b.width > width for b in boxes) or any(
                _overlap(a, b, slack_px) for a, b in itertools.combinations(boxes, 2)):
            removed.update(id(t) for t in mine)
            for text in mine:
                text.remove()
    placed = [t.get_window_extent(renderer) for t in texts
              if t.get_gid() not in (DROPPABLE, MOVABLE) and id(t) not in removed]
    for text in texts:
        if text.get_gid() not in (DROPPABLE, MOVABLE):
            continue
        spot = _free_spot(text, renderer, placed, slack_px)
        if spot is None:
            text.remove()
        else:
            placed.append(spot)
    return fig


def _free_spot(text: Text, renderer: RendererBase, placed: list[Bbox],
               slack_px: float) -> Bbox | None:
    """Where ``text`` can stand without covering a placed text (it is moved there), or None."""
    if text.get_gid() != MOVABLE:
        box = text.get_window_extent(renderer)
        return None if any(_overlap(box, other, slack_px) for other in placed) else box
    inside = text.axes.get_window_extent(renderer)
    for dx, dy, ha, va in LABEL_OFFSETS:
        text.xyann = (dx, dy)
        text.set_horizontalalignment(ha)
        text.set_verticalalignment(va)
        box = text.get_window_extent(renderer)
        if not (inside.x0 <= box.x0 and box.x1 <= inside.x1
                and inside.y0 <= box.y0 and box.y1 <= inside.y1):
            continue
        if not any(_overlap(box, other, slack_px) for other in placed):
            return box
    return None
