"""The figures and reader tables of chapters 00 (setup), 06 (beyond the poster) and 07 (choose).

Each figure function is drawn on a small hand-made frame and must pass the book's readability
check (:func:`rlcomp.analysis.plotting.readability_problems`: text >= 9 pt at page width, no two
texts overlapping), be as wide as the text column, keep its titles, axis names and legends inside
the figure, and draw its series in the book's palette with a distinct marker each (greyscale).
Each display function must show its numbers with units: kB, ``x`` for factors, % and s.
"""

from __future__ import annotations

import re

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_hex, to_rgba
from matplotlib.container import ErrorbarContainer
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from test_choosing import CANDIDATES, chapter06, summary
from test_frontier import HC, LL, tidy_frame

from rlcomp.analysis import choosing, frontier, training
from rlcomp.analysis.plotting import PAGE_WIDTH_IN, PALETTE, readability_problems, readable


@pytest.fixture(autouse=True)
def close_figures():
    """The figure functions make pyplot figures (the notebooks close them after gluing)."""
    yield
    plt.close("all")


def is_grey(color) -> bool:
    """Black or a grey (reference lines: bounds, targets, frontier lines)."""
    r, g, b, _ = to_rgba(color)
    return r == g == b


def frame_texts(fig: Figure) -> list:
    """Titles, axis names, legend entries and the figure's title: texts that must not be cut."""
    texts = [fig._suptitle] if fig._suptitle is not None else []
    for legend in [*fig.legends, *(ax.get_legend() for ax in fig.axes)]:
        if legend is not None:
            texts += legend.get_texts()
    for ax in fig.axes:
        texts += [ax.title, ax.xaxis.label, ax.yaxis.label]
    return [t for t in texts if t.get_visible() and t.get_text().strip()]


def assert_reads_well(fig: Figure) -> None:
    assert fig.get_figwidth() == pytest.approx(PAGE_WIDTH_IN)
    assert readability_problems(fig) == []
    assert readable(fig) is fig
    renderer = fig._get_renderer()
    box = fig.bbox
    for text in frame_texts(fig):
        extent = text.get_window_extent(renderer)
        assert box.x0 - 1 <= extent.x0 and extent.x1 <= box.x1 + 1, text.get_text()
        assert box.y0 - 1 <= extent.y0 and extent.y1 <= box.y1 + 1, text.get_text()


def series(ax) -> dict[str, tuple[str, str]]:
    """Colour and marker of each labelled point series of ``ax`` (error bars or marker lines)."""
    out = {}
    for container in ax.containers:
        if isinstance(container, ErrorbarContainer) and not container.get_label().startswith("_"):
            line = container.lines[0]
            out[container.get_label()] = (to_hex(line.get_color()), line.get_marker())
    return out


def assert_palette_and_markers(ax) -> None:
    drawn = series(ax)
    assert drawn, "no labelled series"
    assert {c for c, _ in drawn.values()} <= {p.lower() for p in PALETTE}
    markers = [m for _, m in drawn.values()]
    assert len(set(markers)) == len(markers), "two series share a marker (greyscale)"
    for line in ax.get_lines():
        if not line.get_label().startswith("_") and line.get_marker() in ("None", "", None):
            assert is_grey(line.get_color()), line.get_label()


# Chapter 06 --------------------------------------------------------------------------------------

def test_the_frontier_panels_read_well_and_group_the_families():
    frame = pd.concat([tidy_frame(LL), tidy_frame(HC)], ignore_index=True)
    fig = frontier.frontier_panels(frame, LL)
    assert_reads_well(fig)
    top, middle, bottom = fig.axes[:3]
    assert set(series(top)) == {"prune", "int8", "prune+int8"}
    assert set(series(middle)) == {"int4 QAT"}
    assert set(series(bottom)) == {"distill", "distill+int8"}
    for ax in (top, middle, bottom):
        assert_palette_and_markers(ax)
        assert ax.get_xscale() == "log" and ax.get_ylim() == top.get_ylim()
    assert bottom.get_xlabel() == "Model bytes (log scale)"
    assert top.get_ylabel() == "Return (% of dense)"
    ticks = [t.get_text() for t in bottom.get_xticklabels()
             if bottom.get_xlim()[0] <= t.get_position()[0] <= bottom.get_xlim()[1]]
    assert ticks and all(re.fullmatch(r"[\d.]+ (B|kB|MB)", t) for t in ticks), ticks
    shared = [t.get_text() for t in fig.legends[0].get_texts()]
    assert {"dense", "95% of dense", "smallest that keeps 95%", "300x smaller than dense",
            "500x smaller than dense"} == set(shared)


def test_the_frontier_panels_of_an_environment_without_models_still_read():
    fig = frontier.frontier_panels(tidy_frame(LL), HC)
    assert_reads_well(fig)
    assert any(t.get_text() == "no results" for t in fig.axes[0].texts)


def test_the_bytes_axis_labels_its_ticks_in_bytes():
    assert [frontier.bytes_tick(v) for v in (500, 2_000, 100_000, 1_000_000)] == [
        "500 B", "2 kB", "100 kB", "1 MB"]


def test_the_frontier_tables_show_units():
    table = frontier.frontier_table(tidy_frame())
    shown = frontier.frontier_display(table).loc[(LL, "distill+int8")]
    assert shown["model size"] == "0.020 kB" and shown["file size"] == "0.100 kB"
    assert shown["smaller than dense"] == "50x"
    assert shown["return, % of dense [95% CI]"] == "95.0% [82.3, 107.7]"
    assert shown["training (environment steps)"] == "200,000"
    assert shown["training CPU time"] == "76.0 s"
    int8 = frontier.frontier_display(table).loc[(LL, "int8")]
    assert (int8["smaller than dense"], int8["training CPU time"]) == ("4.0x", "none")
    names = " ".join(frontier.frontier_display(table).columns)
    assert "_" not in names
    target = frontier.target_display(frontier.target_table(table)).loc[LL]
    assert (target["model size"], target["smaller than dense"], target["return, % of dense"]) \
        == ("0.020 kB", "50x", "95.0%")
    costs = frontier.distill_cost_display(frontier.distill_cost_table(tidy_frame()))
    row = costs.loc[(LL, "16 x 16")]
    assert row["CPU time per distillation [95% CI]"].startswith("32.0 s [")
    assert (row["longest CPU time"], row["wall-clock time"]) == ("34.0 s", "33.0 s")


def test_the_frontier_display_shows_the_policy_time_where_it_was_measured():
    frame = tidy_frame()
    timed = frame[frame["metric"] == "return_mean"].assign(metric="policy_seconds_per_decision",
                                                           value=12.34e-6)
    ratio = timed.assign(metric="policy_time_ratio", value=0.5)
    points = frontier.spec_points(pd.concat([frame, timed, ratio], ignore_index=True))
    shown = frontier.frontier_display(points)
    assert set(shown["policy time per decision"]) == {"12.3 µs"}
    assert set(shown["policy time vs dense"]) == {"0.50x"}
    assert "policy time per decision" not in frontier.frontier_display(
        frontier.spec_points(frame)).columns


@pytest.mark.parametrize(("value", "text"), [(276_496, "276.5 kB"), (4_250, "4.25 kB"),
                                             (304, "0.304 kB"), (float("nan"), "")])
def test_sizes_are_in_kilobytes(value, text):
    assert frontier.size_cell(value) == text


# Chapter 07 --------------------------------------------------------------------------------------

def search(objective_values: bool = True):
    data = summary()
    for c in data["frontier"]:
        c["objective_value"] = c["bytes"]
    data["objective_value"] = data["bytes"]
    candidates = [dict(c, objective_value=c.get("bytes")) for c in CANDIDATES]
    return data, candidates


def test_the_search_figure_reads_well():
    data, candidates = search()
    fig = choosing.search_figure(data, candidates)
    assert_reads_well(fig)
    ax = fig.axes[0]
    assert_palette_and_markers(ax)
    assert set(series(ax)) == {"accepted", "dropped"}
    assert ax.get_xlabel() == "Model bytes (log scale)" and ax.get_xscale() == "log"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:2] == ["accepted", "dropped"]
    assert "recommended: quant=8" in labels and "bound: 95% of dense" in labels


def test_the_search_figure_of_a_dense_recommendation_rings_the_dense_policy():
    data, candidates = search()
    dense = data["frontier"][-1]
    data.update(name="dense", objective_value=dense["bytes"], normalized_return=100.0)
    fig = choosing.search_figure(data, candidates)
    assert_reads_well(fig)
    ring = [line for line in fig.axes[0].get_lines() if line.get_label().startswith("recommended")]
    assert list(ring[0].get_xdata()) == [276_496]


def test_the_choose_tables_show_units():
    shown = choosing.frontier_display(summary())
    assert list(shown["model size"]) == ["18.0 kB", "69.1 kB", "276.5 kB"]
    assert list(shown["smaller than dense"]) == ["15x", "4.0x", "1.0x"]
    assert shown["return, % of dense [95% CI]"].iloc[1] == "99.0% [96.0, 102.0]"
    headline = choosing.headline_display([summary()]).iloc[0]
    assert (headline["model size"], headline["dense model size"]) == ("69.1 kB", "276.5 kB")
    assert (headline["smaller than dense"], headline["ONNX parity"]) == ("4.0x", "passed")
    table = chapter06([("LunarLander-v3", "int8", "quant=8", 69_124, 99.0)])
    rows = choosing.comparison_table([summary(), summary("HalfCheetah-v5", "c")], table)
    compared = choosing.comparison_display(rows)
    assert list(compared["choose's factor / chapter 06's"]) == ["1.00x", "-"]
    assert list(compared["its model size"]) == ["69.1 kB", "-"]
    for view in (shown, headline.to_frame().T, compared):
        assert not any("_" in str(c) for c in view.columns)


# Chapter 00 --------------------------------------------------------------------------------------

def curves(envs=(LL, HC), seeds=(0, 1, 2, 3, 4)) -> pd.DataFrame:
    rows = []
    for env, algo, variant, scale in ((LL, "ddqn", "n/a", 1.0), (HC, "pg", "PPO clip 0.1", 20.0)):
        if env not in envs:
            continue
        for seed in seeds:
            steps = np.linspace(1_000, 300_000, 60)
            for kind, every in (("episode", 1), ("selection eval", 6)):
                for step in steps[::every]:
                    rows.append({"env": env, "algo": algo, "variant": variant, "train_seed": seed,
                                 "curve": kind, "step": int(step),
                                 "return": scale * (step / 1_000 - 50 + seed)})
    return pd.DataFrame(rows, columns=training.CURVE_COLUMNS)


def test_the_training_figure_reads_well():
    fig = training.training_figure(curves())
    assert_reads_well(fig)
    left, right = fig.axes
    assert left.get_title() == "LunarLander-v3, Double DQN"
    assert right.get_title() == "HalfCheetah-v5, PPO clip 0.1"
    assert left.get_xlabel() == "Environment steps" and left.get_ylabel() == "Return"
    labels = [t.get_text() for t in fig.legends[0].get_texts()]
    assert labels[:5] == [f"seed {s}" for s in range(5)] and "target" in labels
    seeds = [h for h in fig.legends[0].legend_handles[:5]]
    assert {to_hex(h.get_color()) for h in seeds} <= {p.lower() for p in PALETTE}
    assert len({h.get_marker() for h in seeds}) == 5
    targets = [line for line in left.get_lines() if list(line.get_ydata()) == [240.0, 240.0]]
    assert targets, "the target return is drawn"


def test_the_training_figure_without_checkpoints_says_so():
    fig = training.training_figure(curves(envs=(LL,)))
    assert_reads_well(fig)
    assert any(t.get_text() == "no checkpoints" for t in fig.axes[1].texts)
    assert isinstance(fig.legends[0].legend_handles[0], Line2D)


def test_the_setup_tables_show_words_and_units():
    table = pd.DataFrame([{
        "env": LL, "algo": "ddqn", "variant": "n/a", "train_seed": 0, "train_steps": 300_000,
        "selected_step": 170_000, "eval_episodes": 100, "return_mean": 252.6123,
        "return_std": 61.849, "return_iqm": 267.91, "train_wall_seconds": 774.4,
        "train_cpu_seconds": 438.2, "target": "mean return >= 240 within 300k steps and 600 s",
        "meets_target": False, "name": "x"}], columns=training.TABLE_COLUMNS)
    returns = training.returns_display(table).loc[(LL, 0)]
    assert returns["algorithm"] == "Double DQN"
    assert returns["training (environment steps)"] == "300,000"
    assert (returns["mean return"], returns["standard deviation"],
            returns["interquartile mean"]) == ("252.6", "61.8", "267.9")
    cost = training.cost_display(table).loc[(LL, 0)]
    assert (cost["wall-clock time"], cost["CPU time"], cost["meets target"]) == (
        "774 s", "438 s", "no")
    head = training.headline_display(table)
    assert head.index.names == ["environment", "training seed"]
    assert head.loc[(LL, 0), "mean return"] == "252.6"
    for view in (training.returns_display(table), training.cost_display(table), head):
        assert not any("_" in c for c in view.columns)


@pytest.mark.parametrize(("value", "text"), [(25e-6, "25.0 µs"), (3.456e-6, "3.46 µs"),
                                             (123.4e-6, "123 µs"), (None, "")])
def test_times_per_decision_are_in_microseconds(value, text):
    assert frontier.microseconds_cell(value) == text


def test_factors_read_as_times_smaller():
    assert [frontier.factor_cell(v) for v in (336.2, 4.19, 1.0, float("nan"))] == [
        "336x", "4.2x", "1.0x", ""]
