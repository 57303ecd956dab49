"""Figures a reader can read: the readability check, decluttering, fitted lines, every figure.

The synthetic frame below has the full profile's shape (5 training seeds, ten rank levels, a
5 x 5 grid, three pruning variants, quantization, naive and fine-tuned), with returns of the
environments' real ranges, so that label collisions grow as they do in the book.
"""

import itertools
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
from matplotlib.text import Text  # noqa: E402
from scipy import stats as scipy_stats  # noqa: E402

from rlcomp.analysis import figures, figures_bars, plotting  # noqa: E402
from rlcomp.analysis.claims import POSTER_STORAGE_MB  # noqa: E402
from rlcomp.analysis.plotting import (  # noqa: E402
    book_figure,
    declutter,
    readability_problems,
    readable,
    shared_legend,
)
from rlcomp.experiments.store import COLUMNS  # noqa: E402
from rlcomp.stats import LinearFit, linear_fit  # noqa: E402

LL, HC = "LunarLander-v3", "HalfCheetah-v5"
SEEDS = range(5)
RANKS = tuple(round(0.1 * i, 1) for i in range(10))
GRID = (0.0, 0.2, 0.4, 0.6, 0.8)
PRUNES = (0.0, 0.5, 0.7, 0.9)
FINETUNED_LEVELS = (0.3, 0.5, 0.7)
SCALE = {LL: (-700.0, 280.0), HC: (-500.0, 6000.0)}


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


# The readability check --------------------------------------------------------------------------

def test_readable_passes_a_plain_figure_and_returns_it():
    fig, axes = book_figure(1, 2)
    for ax in axes[0]:
        ax.plot([0, 1, 2], [3, 1, 2], label="a line")
        ax.set_xlabel("x (s)")
    assert readable(shared_legend(fig)) is fig


def test_small_text_is_reported():
    fig, axes = book_figure()
    axes[0, 0].text(0.5, 0.5, "tiny", fontsize=6)
    problems = readability_problems(fig)
    assert any("'tiny' is 6.0 pt" in p for p in problems)
    with pytest.raises(ValueError, match="tiny"):
        readable(fig)


def test_text_shrunk_by_a_wide_figure_is_reported():
    fig, ax = plt.subplots(figsize=(2 * plotting.PAGE_WIDTH_IN, 3))
    ax.set_title("shrunk to half", fontsize=12)
    assert any("'shrunk to half' is 6.0 pt" in p for p in readability_problems(fig))


def test_overlapping_texts_are_reported():
    fig, axes = book_figure()
    axes[0, 0].text(0.5, 0.5, "first label", fontsize=10)
    axes[0, 0].text(0.52, 0.5, "second label", fontsize=10)
    problems = readability_problems(fig)
    assert problems == ["texts 'first label' and 'second label' overlap"]
    with pytest.raises(ValueError, match="overlap"):
        readable(fig)


def log_axis_figure():
    """A log-log axes zoomed in: matplotlib keeps many tick labels it never draws."""
    fig, axes = book_figure(height=3)
    ax = axes[0, 0]
    ax.plot([1, 2, 3], [1e-1, 1e3, 1e5])
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(2, 3)
    return fig


def test_tick_labels_outside_the_view_are_not_counted():
    fig = log_axis_figure()
    renderer = fig.canvas.get_renderer()
    fig.draw_without_rendering()
    every = [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]
    boxes = [t.get_window_extent(renderer) for t in every]
    undrawn_overlaps = [(a, b) for a, b in itertools.combinations(boxes, 2)
                        if min(a.x1, b.x1) - max(a.x0, b.x0) > 1
                        and min(a.y1, b.y1) - max(a.y0, b.y0) > 1]
    assert undrawn_overlaps  # the false positive the check must not report
    drawn, _ = plotting.drawn_texts(fig)
    assert len(drawn) < len(every)
    assert readability_problems(fig) == []


def test_drawn_texts_leave_out_hidden_and_empty_texts():
    fig, axes = book_figure()
    shown = axes[0, 0].text(0.1, 0.1, "shown")
    axes[0, 0].text(0.5, 0.5, "hidden").set_visible(False)
    axes[0, 0].text(0.5, 0.5, "  ")
    texts, _ = plotting.drawn_texts(fig)
    assert shown in texts
    assert {t.get_text() for t in texts}.isdisjoint({"hidden", "  "})


# Decluttering -----------------------------------------------------------------------------------

def test_declutter_moves_then_drops_colliding_point_labels():
    fig, axes = book_figure()
    ax = axes[0, 0]
    ax.plot([0, 10], [0, 10], "o")
    labels = [ax.annotate(f"point {i}", (5, 5), xytext=(4, 3), textcoords="offset points",
                          gid=plotting.MOVABLE) for i in range(6)]
    assert readability_problems(fig)
    declutter(fig)
    kept = [t for t in labels if t.axes is not None]
    assert len(kept) == len(plotting.LABEL_OFFSETS)  # one per side of the point, the rest gone
    assert {tuple(t.xyann) for t in kept} == {o[:2] for o in plotting.LABEL_OFFSETS}
    assert readability_problems(fig) == []


def test_declutter_drops_cell_numbers_that_do_not_fit():
    fig, axes = book_figure(1, 2)
    for ax, text in zip(axes[0], ("1", "-123456789"), strict=True):
        ax.imshow(np.arange(16.0).reshape(4, 4))
        for i, j in itertools.product(range(4), range(4)):
            ax.text(j, i, text, ha="center", va="center", gid=plotting.CELL_LABEL,
                    fontsize=10)
    declutter(fig)
    assert len(axes[0, 0].texts) == 16 and len(axes[0, 1].texts) == 0
    assert readability_problems(fig) == []


def test_shared_legend_replaces_the_axes_legends():
    fig, axes = book_figure(1, 2)
    for ax in axes[0]:
        for i in range(7):
            ax.plot([0, 1], [i, i], label=f"a series named {i}")
        ax.legend()
    shared_legend(fig)
    assert all(ax.get_legend() is None for ax in axes[0])
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        f"a series named {i}" for i in range(7)]
    assert fig.legends[0].get_window_extent().width <= fig.bbox.width
    assert readability_problems(fig) == []


# linear_fit -------------------------------------------------------------------------------------

def test_linear_fit_matches_scipy_linregress():
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 100, 12)
    y = 2.0 - 0.3 * x + rng.normal(0, 5, 12)
    fit = linear_fit(x, y)
    ref = scipy_stats.linregress(x, y)
    t = scipy_stats.t.ppf(0.975, 10)
    assert isinstance(fit, LinearFit) and fit.n == 12
    assert fit.slope == pytest.approx(ref.slope, rel=1e-12)
    assert fit.intercept == pytest.approx(ref.intercept, rel=1e-12)
    assert fit.slope_ci == pytest.approx((ref.slope - t * ref.stderr, ref.slope + t * ref.stderr),
                                         rel=1e-10)
    assert fit.predict([0.0, 10.0]) == pytest.approx([ref.intercept,
                                                      ref.intercept + 10 * ref.slope])


def test_linear_fit_band_is_the_interval_of_the_mean_response():
    rng = np.random.default_rng(4)
    x = rng.uniform(-5, 5, 20)
    y = 1.0 + 0.5 * x + rng.normal(0, 1, 20)
    fit = linear_fit(x, y, confidence=0.9)
    ref = scipy_stats.linregress(x, y)
    # at the mean of x, the band is the t interval of the mean of y around the line
    residual_sd = math.sqrt(((y - ref.intercept - ref.slope * x) ** 2).sum() / 18)
    half = scipy_stats.t.ppf(0.95, 18) * residual_sd / math.sqrt(20)
    low, high = fit.band(x.mean())
    assert (float(low), float(high)) == pytest.approx((y.mean() - half, y.mean() + half))
    # it is narrowest there, and its half-width at x0 is t * s * sqrt(1/n + (x0 - mean)^2 / Sxx)
    at = np.array([x.mean() - 4, x.mean(), x.mean() + 4])
    low, high = fit.band(at)
    width = high - low
    assert width[1] < width[0] and width[1] < width[2]
    assert fit.slope_ci[1] - fit.slope_ci[0] == pytest.approx(
        2 * scipy_stats.t.ppf(0.95, 18) * ref.stderr)


def test_linear_fit_on_an_exact_line_has_a_point_band():
    fit = linear_fit([0, 1, 2, 3], [1, 3, 5, 7])
    assert (fit.slope, fit.intercept, *fit.slope_ci) == pytest.approx((2.0, 1.0, 2.0, 2.0))
    low, high = fit.band([10.0])
    assert low == pytest.approx([21.0]) and high == pytest.approx([21.0])


@pytest.mark.parametrize("x, y, message", [
    ([1, 2], [1, 2], "at least 3 points"),
    ([1, 2, 3], [1, 2], "same length"),
    ([1, 1, 1], [1, 2, 3], "differ"),
    ([1, 2, math.nan], [1, 2, 3], "NaN"),
])
def test_linear_fit_rejects_bad_input(x, y, message):
    with pytest.raises(ValueError, match=message):
        linear_fit(x, y)


# Every figure function on a frame of the full profile's shape -----------------------------------

def jobs():
    """(spec, method, level, prune, lowrank, quant, finetuned) of every synthetic job."""
    out = [("dense", "dense", 0.0, 0.0, 0.0, math.nan, False),
           ("dense", "dense", 0.0, 0.0, 0.0, math.nan, True),
           ("quant=8", "quant", 8.0, 0.0, 0.0, 8.0, False),
           ("quant=8", "quant", 8.0, 0.0, 0.0, 8.0, True),
           ("quant=8,mode=qat", "quant[qat]", 8.0, 0.0, 0.0, 8.0, False),
           ("quant=8,mode=qat", "quant[qat]", 8.0, 0.0, 0.0, 8.0, True),
           ("prune=0.5+quant=8", "prune+quant", math.nan, 0.5, 0.0, 8.0, False),
           ("lowrank=0.5+quant=8", "lowrank+quant", math.nan, 0.0, 0.5, 8.0, False),
           ("lowrank=0.75", "lowrank", 0.75, 0.0, 0.75, math.nan, False)]
    for level in PRUNES[1:]:
        out += [(f"prune={level}", "prune", level, level, 0.0, math.nan, False),
                (f"prune={level},scope=layer", "prune[layer]", level, level, 0.0, math.nan,
                 False),
                (f"prune={level},structured=true", "prune[structured]", level, level, 0.0,
                 math.nan, False)]
    for level in RANKS[1:]:
        out += [(f"lowrank={level}", "lowrank", level, 0.0, level, math.nan, False),
                (f"lowrank={level},keep_io=true", "lowrank[keep_io]", level, 0.0, level,
                 math.nan, False)]
    for prune, rank in itertools.product(GRID[1:], GRID[1:]):
        out.append((f"lowrank={rank}+prune={prune}", "lowrank+prune", math.nan, prune, rank,
                    math.nan, False))
    for level in GRID[1:]:
        out.append((f"prune={level}", "prune", level, level, 0.0, math.nan, False))
    for level in FINETUNED_LEVELS:
        out += [(f"prune={level}", "prune", level, level, 0.0, math.nan, True),
                (f"lowrank={level}", "lowrank", level, 0.0, level, math.nan, True)]
    return list(dict.fromkeys(out))


def values(env, prune, lowrank, quant, finetuned, rng):
    """Every metric of one job of one seed: plausible sizes with seed-to-seed noise."""
    worst, best = SCALE[env]
    keep = (1 - prune) * (1 - lowrank)
    ret = worst + (best - worst) * keep ** 2 + 0.05 * (best - worst) * finetuned
    steps = 1000.0 if env == HC else 100 + 500 * keep
    per_step = 1e-4 * (1 + 0.3 * rng.random())
    byte_count = 280_000 * keep / (4 if quant == 8 else 1)
    latency = 8e-6 * (1 + lowrank) * (2 if quant == 8 else 1)
    return {"return_mean": ret + rng.normal(0, 0.05 * abs(best - worst)),
            "eval_seconds": 100 * steps * per_step, "seconds_per_step": per_step,
            "episode_length_mean": steps, "env_steps": 100 * steps,
            "ram_percent": 2.1 + 0.1 * rng.random(), "cpu_percent": 95 + 5 * rng.random(),
            "cpu_seconds_per_step": per_step * 0.9, "bytes": byte_count,
            "theoretical_bytes": byte_count * 0.9, "isolated_footprint_bytes": 3e5 * keep,
            "latency_onnx_median_s": latency, "latency_eager_median_s": 3 * latency,
            "policy_time_ratio": 1 + lowrank + rng.normal(0, 0.02),
            "finetune_cpu_seconds": 300 * (1 + rng.random()) if finetuned else math.nan,
            "finetune_wall_seconds": 320 * (1 + rng.random()) if finetuned else math.nan}


def synthetic_frame():
    rng = np.random.default_rng(0)
    rows = []
    for env in (LL, HC):
        for spec, method, level, prune, lowrank, quant, finetuned in jobs():
            for seed in SEEDS:
                for metric, value in values(env, prune, lowrank, quant, finetuned, rng).items():
                    if math.isnan(value):
                        continue
                    rows.append({
                        "checkpoint": f"{env}__{seed}", "env": env, "algo": "x",
                        "train_seed": seed, "method": method, "level": level,
                        "finetuned": finetuned, "metric": metric, "value": value, "spec": spec,
                        "eval_seed": 0, "finetune": "{}", "probe": "{}", "prune": prune,
                        "lowrank": lowrank, "quant": quant,
                        "key": f"{env}{spec}{finetuned}{seed}"})
    return pd.DataFrame(rows, columns=list(COLUMNS))


@pytest.fixture(scope="module")
def frame():
    return synthetic_frame()


def figure_functions():
    """Every public function of the figure modules that draws the tidy frame into an ``ax``."""
    return [f for module in (figures, figures_bars) for f in vars(module).values()
            if callable(f) and getattr(f, "__module__", None) == module.__name__
            and not f.__name__.startswith("_") and hasattr(f, "__code__")
            and f.__code__.co_varnames[:2] == ("frame", "ax")]


OPTIONS = {"storage_bars": {"reported": POSTER_STORAGE_MB}}

STACKED = {"grid_heatmap", "fig6_grid_return", "fig8_grid_cpu",
           *(f.__name__ for f in figure_functions() if f.__module__ == figures_bars.__name__)}
"""Figures the chapters draw one environment per row, at the full width (bars, heatmaps)."""


@pytest.mark.parametrize("function", figure_functions(), ids=lambda f: f.__name__)
def test_every_figure_is_readable_at_the_book_width(frame, function):
    stacked = function.__name__ in STACKED
    fig, axes = book_figure(*((2, 1) if stacked else (1, 2)), height=5.6 if stacked else 3.6)
    for env, ax in zip((LL, HC), axes.ravel(), strict=True):
        table = function(frame, ax, env=env, **OPTIONS.get(function.__name__, {}))
        assert not table.empty
        assert ax.get_xlabel() or ax.get_xticklabels()  # named axes
    declutter(shared_legend(fig))
    assert readability_problems(fig) == []


@pytest.mark.parametrize("function", [figures.fig4_evaltime_return, figures.fig10_ram_return])
def test_poster_scatters_with_point_labels_and_fitted_lines(frame, function):
    points = frame[~((frame["method"] == "dense") & frame["finetuned"])]
    fig, axes = book_figure(1, 2, height=4.2)
    tables = {}
    for env, ax in zip((LL, HC), axes[0], strict=True):
        tables[env] = function(points, ax, env=env, fit=True)
        figures.label_points(ax, tables[env], points)
    assert readability_problems(fig)  # nine labels per kind collide before decluttering
    declutter(shared_legend(fig))
    assert readability_problems(fig) == []
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "naive: OLS line, 95% band" in legend and "fine-tuned: OLS line, 95% band" in legend
    for env, table in tables.items():
        x_scale, y_scale = table.attrs["display_scale"]
        naive = table[~table["finetuned"] & (table["method"] != "dense")]
        expected = scipy_stats.linregress(x_scale * naive["x_estimate"],
                                          y_scale * naive["y_estimate"])
        assert table.attrs["fits"]["naive"].slope == pytest.approx(expected.slope), env
    assert "naive" in figures.fit_slopes({f"{LL}, x": tables[LL]}, unit="%")


def test_heatmap_numbers_are_at_least_the_book_size(frame):
    fig, axes = book_figure(2, 1, height=5.6)
    cells = sum(figures.fig6_grid_return(frame, ax, env=env)["estimate"].notna().sum()
                for env, ax in zip((LL, HC), axes[:, 0], strict=True))
    declutter(fig)
    numbers = [t for ax in axes[:, 0] for t in ax.texts]
    assert len(numbers) == cells > 2 * len(GRID) ** 2  # every cell keeps its number
    assert min(t.get_fontsize() for t in numbers) * plotting.page_scale(fig) >= 9.0 - 1e-9
    assert readability_problems(fig) == []


def test_scaled_axes_keep_stored_units_in_the_returned_frame(frame):
    fig, axes = book_figure()
    table = figures.fig5_rank_steptime(frame, axes[0, 0], env=LL)
    assert axes[0, 0].get_ylabel() == "Eval time per step (µs)"
    drawn = axes[0, 0].lines[0].get_ydata()
    first = table[table["prune"] == table["prune"].min()]["estimate"].to_numpy()
    assert drawn == pytest.approx(1e6 * first)


def test_fixed_episode_length_is_read_from_the_data(frame):
    assert figures.fixed_episode_length(frame, HC) == 1000.0
    assert figures.fixed_episode_length(frame, LL) is None
    note = figures.fixed_length_note(frame, [LL, HC])
    assert "HalfCheetah-v5" in note and "1,000 steps" in note and LL not in note
    shorter = frame.assign(value=frame["value"].where(
        (frame["metric"] != "episode_length_mean") | (frame["env"] != HC), 400.0))
    assert "400 steps" in figures.fixed_length_note(shorter, [HC])
