"""Bootstrap intervals, row selection, figures, tables and claim verdicts on tiny hand-made inputs.

The synthetic tidy frame below has three training seeds whose values are the true value times
0.75, 1 and 1.25, and two evaluation seeds per job times 0.875 and 1.125: every mean over seeds
is the true value, so the figures' numbers can be checked against :func:`truth`.
"""

import inspect
import json
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from rlcomp.analysis import figures, figures_bars, selection, tables  # noqa: E402
from rlcomp.analysis.claims import POSTER_CLAIMS, POSTER_STORAGE_MB, Claim, assess  # noqa: E402
from rlcomp.analysis.verdict_rules import (  # noqa: E402
    CONFIRMED,
    NOT_RESOLVED,
    REFUTED,
    describe,
    difference_ci,
    rule_text,
    verdict,
    verdict_increases,
    verdict_no_change,
    verdict_reduces,
)
from rlcomp.experiments.store import COLUMNS  # noqa: E402
from rlcomp.stats import (  # noqa: E402
    EMPTY,
    Interval,
    IntervalSettings,
    aggregate,
    bootstrap_ci,
    iqm,
    t_interval,
)

LL, HC = "LunarLander-v3", "HalfCheetah-v5"
SEED_FACTOR = {0: 0.75, 1: 1.0, 2: 1.25}
EVAL_FACTOR = {0: 0.875, 1: 1.125}
LEVELS = (0.0, 0.25, 0.5)
METRICS = ("return_mean", "eval_seconds", "seconds_per_step", "ram_percent", "cpu_percent",
           "bytes", "theoretical_bytes", "latency_eager_median_s", "latency_onnx_median_s")
BONUS = {"prune[layer]": -8.0, "prune[structured]": -32.0, "lowrank[keep_io]": 8.0,
         "quant": -4.0}
FINETUNE = json.dumps({"steps": 1000})


def truth(env, metric, method, prune=0.0, lowrank=0.0, finetuned=False):
    """The value every mean over seeds must give."""
    k = 1.0 if env == LL else 16.0
    quant = method == "quant"
    if metric == "return_mean":
        return k * (200 - 160 * prune - 80 * lowrank + 16 * finetuned + BONUS.get(method, 0.0))
    if metric == "eval_seconds":
        return k * (8 - 4 * lowrank - 2 * prune)
    if metric == "seconds_per_step":
        return (8 - 4 * lowrank) / 1024
    if metric == "ram_percent":
        return 2 - lowrank
    if metric == "cpu_percent":
        return 64 - 16 * lowrank - 8 * prune
    if metric == "bytes":
        return 80_000.0 if quant else 280_000.0
    if metric == "theoretical_bytes":
        return 70_000.0 if quant else 280_000.0
    eager = (2.0 if quant else 1.0 - lowrank) / 1024
    return eager if metric == "latency_eager_median_s" else eager / 2


def jobs():
    """(spec, method, prune, lowrank, quant, finetuned) of every synthetic job."""
    out = [("dense", "dense", 0.0, 0.0, math.nan, False),
           ("quant=8", "quant", 0.0, 0.0, 8.0, False)]
    for level in LEVELS[1:]:
        out += [(f"prune={level}", "prune", level, 0.0, math.nan, ft) for ft in (False, True)]
        out += [(f"lowrank={level}", "lowrank", 0.0, level, math.nan, ft) for ft in (False, True)]
        out += [(f"prune={level},scope=layer", "prune[layer]", level, 0.0, math.nan, False),
                (f"prune={level},structured=true", "prune[structured]", level, 0.0, math.nan,
                 False),
                (f"lowrank={level},keep_io=true", "lowrank[keep_io]", 0.0, level, math.nan,
                 False)]
        out += [(f"lowrank={r}+prune={level}", "lowrank+prune", level, r, math.nan, False)
                for r in LEVELS[1:]]
    return out


def level_of(method, prune, lowrank):
    """The tidy frame's ``level``: the single step's level, NaN for a composition."""
    return {"dense": 0.0, "quant": 8.0, "lowrank+prune": math.nan}.get(method, prune or lowrank)


def synthetic_frame():
    rows = []
    for env in (LL, HC):
        for spec, method, prune, lowrank, quant, ft in jobs():
            for seed, sf in SEED_FACTOR.items():
                for eval_seed, ef in EVAL_FACTOR.items():
                    for metric in METRICS:
                        value = truth(env, metric, method, prune, lowrank, ft)
                        if "bytes" not in metric:
                            value *= sf * ef
                        rows.append({
                            "checkpoint": f"{env}__{seed}", "env": env, "algo": "x",
                            "train_seed": seed, "method": method,
                            "level": level_of(method, prune, lowrank),
                            "finetuned": ft, "metric": metric, "value": value, "spec": spec,
                            "eval_seed": eval_seed, "finetune": FINETUNE if ft else "{}",
                            "probe": "{}", "prune": prune, "lowrank": lowrank, "quant": quant,
                            "key": f"{env}{spec}{ft}{seed}{eval_seed}"})
    return pd.DataFrame(rows, columns=list(COLUMNS))


@pytest.fixture(scope="module")
def frame():
    return synthetic_frame()


@pytest.fixture
def ax():
    fig, axes = plt.subplots()
    yield axes
    plt.close(fig)


# Bootstrap -------------------------------------------------------------------------------------

def test_bootstrap_constant_values_give_a_point():
    assert bootstrap_ci([2.5, 2.5, 2.5]) == Interval(2.5, 2.5, 2.5, 3)
    assert bootstrap_ci([2.5, 2.5, 2.5], "iqm") == Interval(2.5, 2.5, 2.5, 3)


def test_bootstrap_known_mean_and_bounds():
    # Means of three draws from {1, 2, 3} reach 1 and 3 with probability 1/27 each (> 2.5%).
    assert bootstrap_ci([1.0, 2.0, 3.0]) == Interval(2.0, 1.0, 3.0, 3)
    low, high = bootstrap_ci([0.0, 4.0], reps=4000)[1:3]
    assert (low, high) == (0.0, 4.0)


def test_bootstrap_iqm_estimate_is_iqm():
    values = [0.0, 1.0, 2.0, 3.0, 100.0]
    interval = bootstrap_ci(values, "iqm")
    assert interval.estimate == iqm(values) == 2.0
    assert interval.ci_low <= interval.estimate <= interval.ci_high < 100.0


def test_bootstrap_is_deterministic():
    values = np.random.default_rng(1).normal(size=8)
    assert bootstrap_ci(values, random_state=3) == bootstrap_ci(values, random_state=3)
    assert bootstrap_ci(values, random_state=3) != bootstrap_ci(values, random_state=4)
    wide, narrow = bootstrap_ci(values, confidence=0.99), bootstrap_ci(values, confidence=0.5)
    assert wide.ci_low < narrow.ci_low <= narrow.ci_high < wide.ci_high


def test_bootstrap_single_seed_interval_is_the_estimate():
    assert bootstrap_ci([4.0]) == Interval(4.0, 4.0, 4.0, 1)


def test_bootstrap_episodes_resample_within_and_across_seeds():
    # Each seed's episodes are equal: resampling within seeds alone never changes the mean ...
    assert bootstrap_ci([[1.0, 1.0], [3.0, 3.0]], resample_seeds=False) == Interval(2, 2, 2, 2)
    # ... resampling the seeds too does: both seeds drawn as seed 0 (or seed 1) give 1 (or 3).
    assert bootstrap_ci([[1.0, 1.0], [3.0, 3.0]]) == Interval(2.0, 1.0, 3.0, 2)
    # One seed with episodes: the interval covers its episodes only; ragged seeds are fine.
    one = bootstrap_ci(np.array([[0.0, 10.0, 20.0, 30.0]]))
    assert one.estimate == 15.0 and one.ci_low < 15.0 < one.ci_high and one.n_seeds == 1
    ragged = bootstrap_ci([[1.0], [2.0, 2.0, 2.0]])
    assert ragged.estimate == 1.75 and ragged.n_seeds == 2


@pytest.mark.parametrize("bad, message", [
    ([], "at least one seed"), ([1.0, math.nan], "NaN"), ([[1.0], []], "at least one episode"),
])
def test_bootstrap_rejects_bad_values(bad, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_ci(bad)


@pytest.mark.parametrize("kwargs, message", [
    ({"statistic": "median"}, "statistic"), ({"confidence": 1.0}, "confidence"),
    ({"reps": 0}, "reps"),
])
def test_bootstrap_rejects_bad_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bootstrap_ci([1.0, 2.0], **kwargs)
    with pytest.raises(ValueError, match=message):
        IntervalSettings(**kwargs)


def tidy(values, metric="m", **columns):
    """Tidy rows: ``values`` maps train seed -> list of values (one row each)."""
    rows = [{"train_seed": s, "metric": metric, "value": v, "env": "E", **columns}
            for s, vs in values.items() for v in vs]
    return pd.DataFrame(rows)


def test_aggregate_means_within_seed_then_over_seeds():
    rows = pd.concat([tidy({0: [1.0, 3.0], 1: [4.0], 2: [math.nan]}, g="a"),
                      tidy({0: [6.0]}, g="b"), tidy({0: [99.0]}, metric="other", g="a")])
    table = aggregate(rows, ["g"], "m")
    assert list(table.columns) == ["g", "estimate", "ci_low", "ci_high", "n_seeds"]
    # Group a: seeds 2 and 4, t interval 3 -+ t(0.975, 1 df) * sd / sqrt(2) with sd = sqrt(2).
    half = 12.706204736174694
    assert table.to_dict("records") == [
        {"g": "a", "estimate": 3.0, "ci_low": pytest.approx(3 - half),
         "ci_high": pytest.approx(3 + half), "n_seeds": 2},
        {"g": "b", "estimate": 6.0, "ci_low": 6.0, "ci_high": 6.0, "n_seeds": 1}]
    percentile = aggregate(rows, ["g"], "m", method="percentile")
    assert percentile[["ci_low", "ci_high"]].iloc[0].tolist() == [2.0, 4.0]
    # One group: seed 0's rows are 1, 3 and 6 (mean 10/3), seed 1's is 4, seed 2's is NaN.
    whole = aggregate(rows, [], "m")
    assert whole.loc[0, "estimate"] == pytest.approx((10 / 3 + 4) / 2)
    assert whole.loc[0, "n_seeds"] == 2


def test_aggregate_keeps_nan_keys_and_rejects_the_seed_as_key():
    rows = tidy({0: [1.0], 1: [3.0]}, quant=math.nan)
    table = aggregate(rows, "quant", "m")
    assert math.isnan(table.loc[0, "quant"]) and table.loc[0, "estimate"] == 2.0
    assert aggregate(rows.iloc[:0], "quant", "m").empty
    assert aggregate(rows.iloc[:0], [], "m").empty
    with pytest.raises(ValueError, match="train_seed"):
        aggregate(rows, ["train_seed"], "m")


# Figures ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("env", [LL, HC])
def test_fig3_pruning_return(frame, ax, env):
    table = figures.fig3_pruning_return(frame, ax, env=env)
    assert list(table.columns) == ["variant", "prune", "estimate", "ci_low", "ci_high", "n_seeds"]
    assert list(table["variant"].unique()) == ["global", "per-layer", "structured"]
    method = {"global": "prune", "per-layer": "prune[layer]", "structured": "prune[structured]"}
    for row in table.itertuples():
        m = "dense" if row.prune == 0 else method[row.variant]
        assert row.estimate == pytest.approx(truth(env, "return_mean", m, row.prune))
        assert row.ci_low < row.estimate < row.ci_high and row.n_seeds == 3
    assert (ax.get_xlabel(), ax.get_ylabel(), ax.get_title()) == ("% pruned", "Return", env)
    assert list(ax.lines[0].get_xdata()) == [0.0, 25.0, 50.0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "global", "per-layer", "structured"]


def test_fig3_fine_tuned_lines_start_at_naive_dense(frame, ax):
    table = figures.fig3_pruning_return(frame, ax, env=LL, finetuned=True)
    assert list(table["variant"].unique()) == ["global"]  # no fine-tuned per-layer results
    assert table["estimate"].tolist() == pytest.approx([200.0, 200 - 40 + 16, 200 - 80 + 16])


def test_rank_return_variants(frame, ax):
    table = figures.rank_return(frame, ax, env=HC)
    keep = table[(table["variant"] == "input/output kept") & (table["lowrank"] == 0.5)]
    assert keep["estimate"].item() == pytest.approx(16 * (200 - 40 + 8))
    assert ax.get_xlabel() == "% rank reduced"


@pytest.mark.parametrize("env", [LL, HC])
def test_fig4_relative_eval_time_naive_vs_finetuned(frame, ax, env):
    table = figures.fig4_evaltime_return(frame, ax, env=env)
    assert {"x_estimate", "y_estimate", "x_ci_low", "y_ci_high"} <= set(table.columns)
    dense = table[table["method"] == "dense"].iloc[0]
    assert dense["x_estimate"] == pytest.approx(100.0) and dense["x_ci_low"] == pytest.approx(100)
    point = table[(table["spec"] == "lowrank=0.5") & table["finetuned"]].iloc[0]
    assert point["x_estimate"] == pytest.approx(100 * 6 / 8)
    assert point["y_estimate"] == pytest.approx(truth(env, "return_mean", "lowrank", 0, 0.5, True))
    assert ax.get_xlabel() == "% eval time (of dense)" and ax.get_ylabel() == "Return"
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["naive", "fine-tuned", "dense"]


def test_fig4_absolute_per_step(frame, ax):
    table = figures.fig4_evaltime_return(frame, ax, env=LL, x_metric="seconds_per_step",
                                         relative=False)
    assert table.loc[table["spec"] == "dense", "x_estimate"].item() == pytest.approx(8 / 1024)
    assert ax.get_xlabel() == "Eval time per step (µs)"


@pytest.mark.parametrize("function, metric, ylabel", [
    (figures.fig5_rank_evaltime, "eval_seconds", "Eval time (s)"),
    (figures.fig5_rank_steptime, "seconds_per_step", "Eval time per step (µs)"),
    (figures.fig7_rank_ram, "ram_percent", "% RAM"),
    (figures.fig9_rank_cpu, "cpu_percent", "CPU %"),
])
@pytest.mark.parametrize("env", [LL, HC])
def test_rank_lines(frame, ax, env, function, metric, ylabel):
    table = function(frame, ax, env=env)
    assert list(table.columns) == ["prune", "lowrank", "estimate", "ci_low", "ci_high", "n_seeds"]
    assert len(table) == 9 and len(ax.lines) == 3
    for row in table.itertuples():
        method = {(False, False): "dense", (True, False): "prune", (False, True): "lowrank",
                  (True, True): "lowrank+prune"}[(row.prune > 0, row.lowrank > 0)]
        assert row.estimate == pytest.approx(truth(env, metric, method, row.prune, row.lowrank))
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("% rank reduced", ylabel)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [
        "0% pruned", "25% pruned", "50% pruned"]


def test_rank_lines_prune_levels(frame, ax):
    table = figures.fig5_rank_evaltime(frame, ax, env=LL, prune_levels=[0.0, 0.5])
    assert sorted(table["prune"].unique()) == [0.0, 0.5] and len(ax.lines) == 2


@pytest.mark.parametrize("function, metric, label", [
    (figures.fig6_grid_return, "return_mean", "Return"),
    (figures.fig8_grid_cpu, "cpu_percent", "CPU %"),
])
@pytest.mark.parametrize("env", [LL, HC])
def test_grid_heatmaps(frame, ax, env, function, metric, label):
    table = function(frame, ax, env=env)
    assert len(table) == 9 and set(table["n_seeds"]) == {3}
    cell = table[(table["prune"] == 0.25) & (table["lowrank"] == 0.5)]
    assert cell["estimate"].item() == pytest.approx(
        truth(env, metric, "lowrank+prune", 0.25, 0.5))
    image = ax.images[0].get_array()
    assert image[2, 1] == pytest.approx(cell["estimate"].item())  # row: rank, column: pruned
    assert len(ax.texts) == 9
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("% pruned", "% rank reduced")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "25", "50"]
    assert ax.figure.axes[-1].get_ylabel() == label  # the colorbar


def test_fig10_ram_return(frame, ax):
    table = figures.fig10_ram_return(frame, ax, env=LL)
    point = table[(table["spec"] == "lowrank=0.25") & ~table["finetuned"]].iloc[0]
    assert point["x_estimate"] == pytest.approx(1.75)
    assert point["y_estimate"] == pytest.approx(200 - 20)
    assert (ax.get_xlabel(), ax.get_ylabel()) == ("% RAM", "Return")


def test_storage_bars_with_reported_figures(frame, ax):
    table = figures_bars.storage_bars(frame, ax, env=LL, reported=POSTER_STORAGE_MB)
    measured = table[table["source"] == "measured"].set_index("bar")["estimate"]
    assert measured.to_dict() == pytest.approx({"dense": 0.28, "int8": 0.08, "theoretical": 0.07})
    reported = table[table["source"] == "poster"].set_index("bar")["estimate"]
    assert reported.to_dict() == POSTER_STORAGE_MB
    assert ax.get_ylabel() == "Storage (MB)" and len(ax.patches) == 6
    assert [t.get_text() for t in ax.get_xticklabels()] == list(figures_bars.STORAGE_BARS.values())
    with pytest.raises(ValueError, match="reported keys"):
        figures_bars.storage_bars(frame, ax, env=LL, reported={"fp16": 0.2})


def test_storage_bars_without_reported_figures(frame, ax):
    table = figures_bars.storage_bars(frame, ax, env=HC)
    assert set(table["source"]) == {"measured"} and len(ax.patches) == 3


def test_latency_bars(frame, ax):
    table = figures_bars.latency_bars(frame, ax, env=LL)
    assert list(table["model"]) == ["dense", "dense", "int8", "int8", "low rank 50%",
                                    "low rank 50%"]
    got = {(r.model, r.runtime): r.estimate for r in table.itertuples()}
    assert got[("int8", "PyTorch eager")] == pytest.approx(2000 / 1024)
    assert got[("low rank 50%", "ONNX Runtime")] == pytest.approx(250 / 1024)
    assert ax.get_ylabel() == "Latency per decision, median (µs)" and len(ax.patches) == 6


def test_figures_need_env_when_the_frame_has_two(frame, ax):
    with pytest.raises(ValueError, match="several environments"):
        figures.fig3_pruning_return(frame, ax)
    table = figures.fig3_pruning_return(frame[frame["env"] == LL], ax)
    assert ax.get_title() == LL and not table.empty


def figure_functions():
    """Every public function of the figure modules that draws the tidy frame into an ``ax``."""
    return [f for module in (figures, figures_bars) for f in vars(module).values()
            if inspect.isfunction(f) and f.__module__ == module.__name__
            and not f.__name__.startswith("_")
            and list(inspect.signature(f).parameters)[:2] == ["frame", "ax"]]


def test_the_figure_modules_hold_the_poster_figures():
    names = {f.__name__ for f in figure_functions()}
    assert {"fig3_pruning_return", "fig4_evaltime_return", "fig5_rank_evaltime",
            "fig6_grid_return", "fig7_rank_ram", "fig8_grid_cpu", "fig9_rank_cpu",
            "fig10_ram_return", "storage_bars", "latency_bars", "spec_bars",
            "finetune_cost_bars"} <= names


@pytest.mark.parametrize("function", figure_functions(), ids=lambda f: f.__name__)
def test_empty_selection_says_so(frame, ax, function):
    table = function(frame, ax, env="Pong-v5")
    assert table.empty or (table["source"] != "measured").all()
    assert any(t.get_text() == "no results" for t in ax.texts)


def test_interval_settings_reach_the_figure(frame, ax):
    settings = IntervalSettings(method="percentile", statistic="iqm", reps=100)
    table = figures.fig9_rank_cpu(frame, ax, env=LL, intervals=settings)
    assert table["estimate"].tolist() == pytest.approx(
        figures.fig9_rank_cpu(frame, ax, env=LL)["estimate"].tolist())  # 3 seeds: IQM = mean


# Selection and tables --------------------------------------------------------------------------

def test_select_keeps_the_naive_dense_rows_beside_fine_tuned_ones(frame):
    rows = selection.select(frame, env=LL, methods=["dense", "prune"], finetuned=True,
                            metric="return_mean")
    assert set(rows["env"]) == {LL} and set(rows["metric"]) == {"return_mean"}
    assert not rows.loc[rows["method"] == "dense", "finetuned"].any()
    assert rows.loc[rows["method"] == "prune", "finetuned"].all()


def test_relative_to_dense_divides_by_the_same_seeds_dense_value(frame):
    rows = selection.relative_to_dense(frame[(frame["env"] == HC) & ~frame["finetuned"]],
                                       "eval_seconds")
    means = rows.groupby("spec")["value"].mean()
    assert means["dense"] == pytest.approx(100.0)
    assert means["lowrank=0.5"] == pytest.approx(100.0 * (8 - 2) / 8)


def test_spec_order_follows_the_method_order_then_the_level(frame):
    order = selection.spec_order(frame)
    assert order[:3] == ["dense", "prune=0.25", "prune=0.5"]
    assert order.index("lowrank=0.5") < order.index("quant=8")


def test_interval_cell():
    assert tables.interval_cell(1.0, 0.5, 1.5, "{:.1f}") == "1.0 [0.5, 1.5]"
    assert tables.interval_cell(2.0, 2.0, 2.0, "{:.1f}") == "2.0"
    assert tables.interval_cell(math.nan, 0.0, 1.0, "{:.1f}") == ""


def test_spec_table_and_latency_ratios(frame, ax):
    table = tables.spec_table(frame, {"dense": "dense", "int8": "quant=8"},
                              {"file bytes": "bytes"}, envs=[LL],
                              formats={"file bytes": "{:,.0f}"})
    assert table[(LL, "file bytes")].to_dict() == {"dense": "280,000", "int8": "80,000"}
    ratios = tables.latency_ratios({LL: figures_bars.latency_bars(frame, ax, env=LL)})
    assert ratios.loc["int8", (LL, "PyTorch eager")] == "2.00x"
    assert ratios.loc["dense", (LL, "ONNX Runtime")] == "1.00x"


# Claims ----------------------------------------------------------------------------------------

def test_difference_ci_is_paired_by_seed():
    # Seeds differ a lot, but A is always B + 1: paired, the interval is the point 1.
    b = tidy({0: [10.0], 1: [50.0], 2: [90.0]})
    a = tidy({0: [11.0], 1: [51.0], 2: [91.0], 3: [0.0]})  # seed 3 has no partner
    assert difference_ci(a, b, "m") == Interval(1.0, 1.0, 1.0, 3)
    assert difference_ci(a, b, "m", relative=True).estimate == pytest.approx(
        (10.0 + 2.0 + 100 / 90) / 3)
    assert difference_ci(a, tidy({7: [1.0]}), "m") == EMPTY


def test_difference_ci_on_the_synthetic_frame(frame):
    rows = frame[(frame["env"] == LL) & ~frame["finetuned"]]
    quant, dense = rows[rows["method"] == "quant"], rows[rows["method"] == "dense"]
    same = difference_ci(quant, dense, "cpu_percent")
    assert same == Interval(0.0, 0.0, 0.0, 3)
    assert verdict_no_change(same, tolerance=1.0) == CONFIRMED
    pruned = rows[rows["spec"] == "prune=0.5"]
    drop = difference_ci(pruned, dense, "return_mean")
    assert drop.estimate == pytest.approx(-80.0) and drop.ci_high < 0
    assert verdict_reduces(drop) == CONFIRMED
    assert verdict_increases(drop) == REFUTED


def test_difference_ci_is_a_t_interval_over_paired_differences():
    a, b = tidy({0: [12.0], 1: [20.0], 2: [33.0]}), tidy({0: [10.0], 1: [20.0], 2: [30.0]})
    assert difference_ci(a, b, "m") == t_interval([2.0, 0.0, 3.0])
    assert difference_ci(a, b, "m", relative=True) == t_interval([20.0, 0.0, 10.0])
    assert difference_ci(a, b, "m", method="percentile") == bootstrap_ci([2.0, 0.0, 3.0])
    with pytest.raises(ValueError, match="percentile"):
        difference_ci(a, b, "m", statistic="iqm")


def claim_frames(diffs):
    """Frames A and B whose per-seed differences are ``diffs``.

    The verdict tests below measure them with the percentile bootstrap, whose interval over three
    seeds is exactly ``[min(diffs), max(diffs)]``, so each case's interval is known by sight.
    """
    base = {s: [100.0 * (s + 1)] for s in range(len(diffs))}
    return tidy({s: [v[0] + d] for (s, v), d in zip(base.items(), diffs, strict=True)}), tidy(base)


@pytest.mark.parametrize("diffs, tolerance, expected", [
    ([-0.5, 0.0, 0.5], 1.0, CONFIRMED),     # within +-1
    ([-1.0, -1.0, 1.0], 1.0, CONFIRMED),    # boundaries count as within
    ([2.0, 3.0, 4.0], 1.0, REFUTED),        # wholly above +1
    ([-4.0, -3.0, -2.0], 1.0, REFUTED),     # wholly below -1
    ([0.0, 0.5, 3.0], 1.0, NOT_RESOLVED),   # straddles +1
    ([0.0, 0.0, 0.0], 0.0, CONFIRMED),      # zero tolerance needs a zero interval
])
def test_verdict_no_change(diffs, tolerance, expected):
    measured = difference_ci(*claim_frames(diffs), "m", method="percentile")
    assert verdict_no_change(measured, tolerance) == expected
    assert verdict(measured, "no change", tolerance) == expected


@pytest.mark.parametrize("diffs, margin, reduces, increases", [
    ([-3.0, -2.0, -1.0], 0.0, CONFIRMED, REFUTED),
    ([1.0, 2.0, 3.0], 0.0, REFUTED, CONFIRMED),
    ([-1.0, 0.0, 1.0], 0.0, NOT_RESOLVED, NOT_RESOLVED),
    ([0.0, 0.0, 0.0], 0.0, REFUTED, REFUTED),         # no change is neither
    ([-3.0, -2.0, -1.0], 2.0, NOT_RESOLVED, REFUTED),  # a reduction, maybe not by 2
    ([-0.5, -0.25, 0.0], 1.0, REFUTED, REFUTED),      # less than the margin for sure
    ([-5.0, -4.0, -3.0], 2.0, CONFIRMED, REFUTED),
])
def test_verdict_reduces_and_increases(diffs, margin, reduces, increases):
    measured = difference_ci(*claim_frames(diffs), "m", method="percentile")
    assert verdict_reduces(measured, margin) == reduces
    flipped = Interval(-measured.estimate, -measured.ci_high, -measured.ci_low, measured.n_seeds)
    assert verdict_increases(flipped, margin) == reduces  # the mirror image
    assert verdict_increases(measured, margin) == increases


def test_verdicts_without_a_measurement_are_not_resolved():
    for rule in ("no change", "reduces", "increases", "at most"):
        assert verdict(EMPTY, rule, 1.0) == NOT_RESOLVED
    with pytest.raises(ValueError, match="rule"):
        verdict(Interval(0, 0, 0, 1), "halves")
    with pytest.raises(ValueError, match="tolerance"):
        verdict_no_change(Interval(0, 0, 0, 1), -1.0)


def test_claims_in_words():
    claim = POSTER_CLAIMS[-2]
    cpu = assess(claim, Interval(0.25, -0.5, 1.0, 3), "no change", 2.0, "pp", "CPU %, int8 - dense")
    fewer = assess(Claim("x", "X reduces Y.", "Fig 3"), Interval(-12.5, -20.0, -4.5, 3), "reduces")
    missing = assess(Claim("y", "X raises Y.", "text"), EMPTY, "increases")
    assert [r.verdict for r in (cpu, fewer, missing)] == [CONFIRMED, CONFIRMED, NOT_RESOLVED]
    assert describe(cpu.measured, "pp") == "0.25 [-0.5, 1] pp (95% CI, 3 seeds)"
    assert describe(missing.measured) == "not measured"
    assert rule_text("no change", 2.0, "pp") == "confirmed if the 95% CI lies within ±2 pp"
    assert rule_text("reduces") == "confirmed if the 95% CI lies below 0"
    assert rule_text("at most", 10.0, "pp") == "confirmed if the 95% CI lies at or below 10 pp"
    bonferroni = rule_text("increases", 1.0, "pp", 1 - 0.05 / 3)
    assert bonferroni == "confirmed if the 98.3% CI lies above 1 pp"
    with pytest.raises(ValueError, match="margin"):
        assess(claim, EMPTY, "reduces", -1.0)


def test_figures_read_the_store_frame(tmp_path, ax):
    from rlcomp.experiments.store import ResultStore

    with ResultStore(tmp_path / "r.sqlite") as store:
        for seed in (0, 1, 2):
            for spec, ret, bytes_ in (("dense", 200.0, 280_000), ("prune=0.5", 120.0, 150_000),
                                      ("quant=8", 196.0, 80_000)):
                store.put(f"digest{seed}", spec, None, 0, {"episodes": 2}, checkpoint=f"c{seed}",
                          env=LL, algo="ddqn", train_seed=seed,
                          metrics={"return_mean": ret + seed - 1, "bytes": bytes_,
                                   "theoretical_bytes": bytes_ - 10_000})
            store.put(f"digest{seed}", "prune=0.5", {"steps": 10}, 0, {"episodes": 2},
                      checkpoint=f"c{seed}", env=LL, algo="ddqn", train_seed=seed,
                      metrics={"return_mean": 150.0 + seed - 1})
        frame = store.load()
    table = figures.fig3_pruning_return(frame, ax)
    assert table[["prune", "estimate"]].to_dict("list") == {"prune": [0.0, 0.5],
                                                           "estimate": [200.0, 120.0]}
    tuned = figures.fig3_pruning_return(frame, ax, finetuned=True)
    assert tuned["estimate"].tolist() == [200.0, 150.0]
    storage = figures_bars.storage_bars(frame, ax)
    assert storage.set_index("bar")["estimate"].to_dict() == pytest.approx(
        {"dense": 0.28, "int8": 0.08, "theoretical": 0.07})
    gain = difference_ci(frame[frame["finetuned"]], frame[~frame["finetuned"]
                                                          & (frame["spec"] == "prune=0.5")])
    assert gain == Interval(30.0, 30.0, 30.0, 3)
