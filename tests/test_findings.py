"""Chapter 08: the study's points, their frontier, the findings box and the Pareto figure.

Checked on small hand-made frames with exact answers: three training seeds whose random and dense
returns differ, so that normalization, the t interval over seeds and de-duplication across
chapters can each be computed by hand.
"""

from __future__ import annotations

import math
import re
from html.parser import HTMLParser

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from scipy import stats

from rlcomp.analysis import findings
from rlcomp.analysis.findings import (
    POINT_COLUMNS,
    env_findings,
    file_bytes_table,
    findings_html,
    frontier_html,
    model_words,
    pareto_figure,
    pareto_front,
    point_group,
    study_points,
    write_points,
)
from rlcomp.analysis.plotting import BOOK_WIDTH_IN, readability_problems
from rlcomp.chapters import chapter_path
from rlcomp.experiments.plans import BEYOND, FINE_TUNING, PRUNING, QUANTIZATION

LL, HC = "LunarLander-v3", "HalfCheetah-v5"
SEEDS = (0, 1, 2)
RANDOM = (-100.0, -50.0, 0.0)
DENSE = (100.0, 150.0, 200.0)
"""Per seed: the random policy's and the dense agent's returns (dense - random = 200 each)."""


def returns_for(percent: tuple[float, float, float]) -> tuple[float, ...]:
    """The raw returns whose normalized returns (%) are ``percent``, seed by seed."""
    return tuple(r + p / 100.0 * (d - r) for r, d, p in zip(RANDOM, DENSE, percent, strict=True))


# spec, fine-tuned, normalized return per seed (%), file bytes, model bytes,
# policy seconds per decision per seed (None: not measured), time ratio per seed
POSTER = [
    ("dense", False, (100.0, 100.0, 100.0), 100_000, 99_500, (20e-6, 22e-6, 24e-6),
     (1.0, 1.0, 1.0)),
    ("dense", True, (101.0, 99.0, 100.0), 100_000, 99_500, None, None),
    ("prune=0.5", False, (90.0, 96.0, 99.0), 60_000, 59_500, (21e-6, 21e-6, 21e-6),
     (1.0, 0.95, 0.9)),
    ("prune=0.9", True, (50.0, 60.0, 70.0), 20_000, 19_500, None, None),
    ("lowrank=0.5", True, (80.0, 80.0, 80.0), 90_000, 89_500, None, None),
    ("quant=8", False, (98.0, 97.0, 99.0), 30_000, 29_500, (50e-6, 52e-6, 54e-6),
     (2.4, 2.5, 2.6)),
    ("lowrank=0.9", False, (-60.0, -50.0, -40.0), 25_000, 24_500, (30e-6, 30e-6, 30e-6),
     (1.5, 1.5, 1.5)),
]
BEYOND_MODELS = [
    ("dense", False, (100.0, 100.0, 100.0), 100_000, 99_500, (20e-6, 20e-6, 20e-6),
     (1.0, 1.0, 1.0)),
    # also in chapter 03 above: kept from there, whatever chapter 06 measured
    ("quant=8", False, (50.0, 50.0, 50.0), 30_000, 29_500, (50e-6, 50e-6, 50e-6),
     (2.5, 2.5, 2.5)),
    ("distill=8x8", False, (94.0, 96.0, 98.0), 1_200, 700, (10e-6, 10e-6, 10e-6),
     (0.5, 0.5, 0.5)),
    ("distill=8x8+quant=8", False, (90.0, 94.0, 95.0), 900, 300, (40e-6, 40e-6, 40e-6),
     (2.0, 2.0, 2.0)),
    ("quant=4", False, (95.0, 95.0, 95.0), 16_000, 15_500, (45e-6, 45e-6, 45e-6),
     (2.2, 2.2, 2.2)),
    ("prune=0.9", False, (20.0, 30.0, 40.0), 20_000, 19_500, (18e-6, 18e-6, 18e-6),
     (0.9, 0.9, 0.9)),
    ("prune=0.9,schedule=gradual", True, (97.0, 97.0, 97.0), 20_000, 19_500, None, None),
]


def tidy_frame(models, env: str = LL) -> pd.DataFrame:
    """A chapter's tidy frame: the random policy and ``models`` on three seeds."""
    rows = []

    def add(spec, finetuned, seed, metric, value):
        rows.append({"checkpoint": f"{env}__{seed}", "env": env, "algo": "x", "train_seed": seed,
                     "spec": spec, "finetuned": finetuned, "eval_seed": 0, "metric": metric,
                     "value": float(value)})

    for seed in SEEDS:
        add("random", False, seed, "return_mean", RANDOM[seed])
    for spec, finetuned, percent, file_bytes, model_bytes, seconds, ratio in models:
        for seed, value in enumerate(returns_for(percent)):
            add(spec, finetuned, seed, "return_mean", value)
            add(spec, finetuned, seed, "bytes", file_bytes)
            add(spec, finetuned, seed, "model_bytes", model_bytes)
            if seconds is not None:
                add(spec, finetuned, seed, "policy_seconds_per_decision", seconds[seed])
                add(spec, finetuned, seed, "policy_time_ratio", ratio[seed])
    return pd.DataFrame(rows)


def frames(envs=(LL,)) -> dict[str, pd.DataFrame]:
    """Chapter 03 (the poster's models) and chapter 06 (beyond) for each of ``envs``."""
    return {QUANTIZATION: pd.concat([tidy_frame(POSTER, env) for env in envs]),
            BEYOND: pd.concat([tidy_frame(BEYOND_MODELS, env) for env in envs])}


def t_interval(values) -> tuple[float, float, float]:
    values = np.asarray(values, float)
    half = stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / math.sqrt(len(values))
    return values.mean(), values.mean() - half, values.mean() + half


def point(points: pd.DataFrame, spec: str, finetuned: bool = False, env: str = LL) -> pd.Series:
    rows = points[(points["env"] == env) & (points["spec"] == spec)
                  & (points["finetuned"] == finetuned)]
    assert len(rows) == 1, (spec, finetuned, len(rows))
    return rows.iloc[0]


@pytest.fixture
def points() -> pd.DataFrame:
    return study_points(frames())


# Points ------------------------------------------------------------------------------------------

def test_points_have_exactly_the_columns_and_one_row_per_model(points):
    assert tuple(points.columns) == POINT_COLUMNS
    # 7 + 7 models, less the dense agent's fine-tuned control, less two duplicates (dense, int8)
    assert len(points) == 7 + 7 - 1 - 2
    assert not points.duplicated(["env", "spec", "finetuned"]).any()


def test_normalized_return_is_the_mean_over_seeds_with_its_t_interval(points):
    row = point(points, "prune=0.5")
    estimate, low, high = t_interval([90.0, 96.0, 99.0])
    assert row["normalized_return"] == pytest.approx(estimate)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((low, high))
    assert row["n_seeds"] == 3
    dense = point(points, "dense")
    assert (dense["normalized_return"], dense["ci_low"], dense["ci_high"]) == pytest.approx(
        (100.0, 100.0, 100.0))


def test_policy_time_is_in_microseconds_with_intervals_and_nan_where_not_measured(points):
    row = point(points, "quant=8")
    estimate, low, high = t_interval([50.0, 52.0, 54.0])
    assert (row["policy_us"], row["policy_us_low"], row["policy_us_high"]) == pytest.approx(
        (estimate, low, high))
    estimate, low, high = t_interval([2.4, 2.5, 2.6])
    assert (row["time_ratio"], row["time_ratio_low"], row["time_ratio_high"]) == pytest.approx(
        (estimate, low, high))
    assert point(points, "quant=8")["time_spec"] == "quant=8"


def test_a_fine_tuned_point_has_the_time_of_its_naive_counterpart(points):
    naive = point(points, "prune=0.9")
    for spec in ("prune=0.9", "prune=0.9,schedule=gradual"):
        tuned = point(points, spec, True)
        assert tuned["time_spec"] == "prune=0.9"
        assert tuned[list(findings.TIME_COLUMNS)].tolist() == pytest.approx(
            naive[list(findings.TIME_COLUMNS)].tolist())
    alone = point(points, "lowrank=0.5", True)  # no naive lowrank=0.5 measured
    assert math.isnan(alone["policy_us"]) and alone["time_spec"] == ""


@pytest.mark.parametrize("spec, naive", [
    ("prune=0.9,schedule=gradual", "prune=0.9"),
    ("quant=4,mixed=true,mode=qat", "quant=4,mixed=true"),
    ("prune=0.5+quant=8,mode=qat", "prune=0.5+quant=8"),
    ("lowrank=0.5", "lowrank=0.5"),
    ("dense", "dense"),
])
def test_timing_spec(spec, naive):
    assert findings.timing_spec(spec) == naive


def test_sizes_and_factors_against_dense(points):
    row = point(points, "distill=8x8+quant=8")
    assert (row["file_bytes"], row["model_bytes"]) == (900, 300)
    assert row["file_factor"] == pytest.approx(100_000 / 900)
    assert row["model_factor"] == pytest.approx(99_500 / 300)


def test_a_model_measured_in_two_chapters_is_kept_once_from_the_first(points):
    row = point(points, "quant=8")
    assert row["chapter"] == QUANTIZATION and row["also_in"] == BEYOND
    assert row["normalized_return"] == pytest.approx(98.0)  # chapter 03's, not 06's 50%
    assert point(points, "dense")["chapter"] == QUANTIZATION
    assert point(points, "distill=8x8")["also_in"] == ""


def test_the_dense_control_fine_tuned_is_no_point(points):
    assert not ((points["spec"] == "dense") & points["finetuned"]).any()


def test_chapter_order_decides_not_the_order_of_the_mapping():
    swapped = dict(reversed(list(frames().items())))
    assert point(study_points(swapped), "quant=8")["chapter"] == QUANTIZATION


def test_unknown_chapter_is_refused():
    with pytest.raises(ValueError, match="chapters that run a sweep"):
        study_points({"05-verdicts": tidy_frame(POSTER)})


@pytest.mark.parametrize("family, group", [
    ("dense", "dense"),
    ("prune", "pruning"),
    ("prune, fine-tuned", "pruning, fine-tuned"),
    ("lowrank", "low rank"),
    ("lowrank, fine-tuned", "low rank, fine-tuned"),
    ("int8", "int8"),
    ("int8, fine-tuned", "int8, fine-tuned"),
    ("int8 QAT", "int8, fine-tuned"),
    ("prune+int8", "combined"),
    ("lowrank+prune", "combined"),
    ("int4", "fewer bits"),
    ("int2 QAT", "fewer bits"),
    ("gradual prune", "gradual pruning"),
    ("distill", "distillation"),
    ("distill+int4", "distillation"),
])
def test_point_group(family, group):
    assert point_group(family) == group


def test_points_carry_group_family_and_whether_the_poster_made_them(points):
    assert point(points, "prune=0.9", True)[["group", "family", "poster"]].tolist() == [
        "pruning, fine-tuned", "prune, fine-tuned", True]
    assert point(points, "prune=0.9,schedule=gradual", True)[["group", "poster"]].tolist() == [
        "gradual pruning", False]
    assert point(points, "distill=8x8+quant=8")["group"] == "distillation"


@pytest.mark.parametrize("spec, finetuned, words", [
    ("dense", False, "dense"),
    ("prune=0.5+quant=8", False, "pruned 50% + int8"),
    ("prune=0.9", True, "pruned 90%, fine-tuned"),
    ("prune=0.95,schedule=gradual", True, "gradually pruned 95%"),
    ("prune=0.5,structured=true", False, "pruned 50% of neurons"),
    ("lowrank=0.6,keep_io=true", False, "rank reduced 60%, input and output layers whole"),
    ("quant=4,mixed=true,mode=qat", True, "int4 (first and last layers int8) QAT"),
    ("distill=16x16,steps=2000+quant=8", False, "16x16 student + int8"),
])
def test_model_words(spec, finetuned, words):
    assert model_words(spec, finetuned) == words


# The frontier ------------------------------------------------------------------------------------

def toy(rows) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["env", "spec", "x", "normalized_return"])


def test_pareto_front_keeps_exactly_the_non_dominated_points_per_env():
    pts = toy([
        (LL, "a", 1.0, 10.0),
        (LL, "b", 2.0, 5.0),     # dominated by a (larger x, lower return)
        (LL, "c", 2.0, 50.0),
        (LL, "d", 3.0, 50.0),    # dominated by c (same return, larger x)
        (LL, "e", 2.0, 50.0),    # ties c in both: kept with it
        (LL, "f", 2.0, 40.0),    # dominated by c (same x, lower return)
        (LL, "g", 5.0, 90.0),
        (LL, "h", math.nan, 99.0),  # no x: takes no part
        (HC, "i", 9.0, 5.0),     # another environment: its own frontier
    ])
    front = pareto_front(pts, "x")
    assert front["spec"].tolist() == ["a", "c", "e", "g", "i"]
    assert front["env"].tolist() == [LL] * 4 + [HC]
    assert set(front.index) == {0, 2, 4, 6, 8}


def test_pareto_front_returns_increase_along_x():
    rng = np.random.default_rng(0)
    pts = toy([(LL, str(i), float(x), float(y)) for i, (x, y) in
               enumerate(zip(rng.integers(1, 20, 60), rng.integers(-50, 110, 60), strict=True))])
    front = pareto_front(pts, "x")
    assert np.all(np.diff(front["x"]) > 0) and np.all(np.diff(front["normalized_return"]) > 0)
    for _, p in pts.iterrows():  # every point off the front is beaten by one on it
        if p.name not in front.index:
            assert ((front["x"] <= p["x"]) & (front["normalized_return"] >= p["normalized_return"])
                    ).any()


# The findings ------------------------------------------------------------------------------------

def test_env_findings_choices(points):
    (found,) = env_findings(points)
    # distill=8x8+quant=8 (900 B) keeps 93.0% on average: below 95%, so not the smallest kept;
    # distill=8x8 keeps 96.0% (its lower bound is below 95%: the rule is on the mean)
    assert found.smallest["spec"] == "distill=8x8"
    assert found.smallest["ci_low"] < 95.0
    assert found.fastest["spec"] == "distill=8x8"  # 10 µs, faster than dense's 22 µs
    assert found.poster_best["spec"] == "quant=8"  # 30 kB; prune=0.5 keeps 95% but is 60 kB
    assert found.int8["spec"] == "quant=8"
    assert found.dense["spec"] == "dense"


def test_env_findings_dense_is_never_the_finding_and_a_stricter_keep_finds_less(points):
    (found,) = env_findings(points, keep=0.975)
    assert found.smallest["spec"] == "quant=8"  # 98.0%; distill=8x8's 96.0% no longer keeps
    assert found.poster_best["spec"] == "quant=8"
    (found,) = env_findings(points, keep=0.99)
    assert found.smallest is None and found.fastest is None and found.poster_best is None
    assert found.poster_closest["spec"] == "quant=8"  # the best-returning of the poster's


def test_findings_html_has_numbers_units_intervals_and_links(points):
    box = findings_html(env_findings(points))
    found = env_findings(points)[0]
    text = re.sub(r"<[^>]+>", "", box)
    # the smallest: 1.2 kB, 83× smaller than the dense 100.0 kB, 96.0% [lo, hi]
    low, high = found.smallest["ci_low"], found.smallest["ci_high"]
    assert f"a 1.2 kB file ({100_000 / 1200:,.0f}× smaller than the dense 100.0 kB file)" in text
    assert f"96.0% [{low:.1f}, {high:.1f}] of the dense return" in text
    # int8's time: µs with interval and the ratio to dense
    estimate, lo, hi = t_interval([2.4, 2.5, 2.6])
    assert f"{estimate:.2f}× the dense policy's time per decision [{lo:.2f}, {hi:.2f}]" in text
    assert re.search(r"52\.0 µs \[\d+\.\d, \d+\.\d\] per decision", text)
    assert "3 training seeds" in text
    links = re.findall(r'href="([^"]+)"', box)
    assert "06-beyond-the-poster.html#fig-frontier-lunarlander" in links
    assert "03-quantization.html#fig-quant-cpu" in links
    assert "03-quantization.html#fig-quant-return" in links
    assert "08-findings.html#fig-pareto" in links
    assert box.count("08-findings.html#fig-pareto") == 4  # every finding links to the figure


class _Balance(HTMLParser):
    VOID = {"br", "img", "hr"}

    def __init__(self):
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack.pop() == tag, tag


@pytest.mark.parametrize("make", [
    lambda p: findings_html(env_findings(p)),
    lambda p: findings_html(env_findings(p, keep=0.99)),
    frontier_html,
])
def test_html_is_well_formed(points, make):
    parser = _Balance()
    parser.feed(make(points))
    assert parser.stack == []


def test_findings_html_says_when_nothing_keeps_the_return(points):
    text = re.sub(r"<[^>]+>", "", findings_html(env_findings(points, keep=0.99)))
    assert "no compressed model keeps 99%" in text
    assert "none keeps 99%; the closest is int8 at 98.0%" in text


class _Cells(HTMLParser):
    """The text of each table's caption and of each row's cells."""

    def __init__(self):
        super().__init__()
        self.tables: list[tuple[str, list[list[str]]]] = []
        self.where = None

    def handle_starttag(self, tag, attrs):
        if tag == "table":
            self.tables.append(("", []))
        elif tag == "caption":
            self.where = "caption"
        elif tag == "tr":
            self.tables[-1][1].append([])
        elif tag in ("td", "th"):
            self.tables[-1][1][-1].append("")
            self.where = "cell"
        elif tag == "br" and self.where == "cell":
            self.tables[-1][1][-1][-1] += " | "

    def handle_endtag(self, tag):
        if tag in ("caption", "td", "th"):
            self.where = None

    def handle_data(self, data):
        if self.where == "caption":
            self.tables[-1] = (self.tables[-1][0] + data, self.tables[-1][1])
        elif self.where == "cell":
            self.tables[-1][1][-1][-1] += data


def test_frontier_html_lists_the_frontiers_with_units():
    pts = study_points(frames((LL, HC)))
    parser = _Cells()
    parser.feed(frontier_html(pts))
    assert [caption for caption, _ in parser.tables] == [LL, HC]
    caption, rows = parser.tables[0]
    head, *body = rows
    assert head == list(findings.FRONTIER_HEADERS)
    assert "(kB" in head[2] and "(%)" in head[3] and "(µs" in head[4]
    on = {cells[0].split(" | ")[0]: cells[1] for cells in body}
    assert on["8x8 student"] == "size and time"
    assert on["8x8 student + int8"] == "size"      # smallest file, slower than dense
    assert "pruned 50%" not in on                   # beaten on size by int8, on time by gradual
    files = [float(cells[2].split(" | ")[0]) for cells in body]
    assert files == sorted(files)
    int8 = next(cells for cells in body if cells[0].startswith("int8 |"))
    estimate, low, high = t_interval([2.4, 2.5, 2.6])
    assert int8[4].endswith(f"{estimate:.2f}× [{low:.2f}, {high:.2f}]")
    assert int8[2] == f"30.0 | {100_000 / 30_000:.1f}×" and int8[5] == "Quantization"


def test_file_bytes_table_leaves_out_trained_models(points):
    table = file_bytes_table(points)
    specs = set(table.index.get_level_values("spec"))
    assert "quant=8" in specs and "dense" in specs
    assert not specs & {"distill=8x8", "distill=8x8+quant=8", "prune=0.9,schedule=gradual",
                        "lowrank=0.5"}  # distilled, gradual and fine-tuned only: left out
    assert len(table) == len(specs) == 6  # the naive prune=0.9 once, not its fine-tuned twin
    assert table.loc[(LL, "quant=8"), "file bytes"] == 30_000


def test_write_points_round_trips_and_is_stable(points, tmp_path):
    path = write_points(points, tmp_path / "data" / "points.csv")
    back = pd.read_csv(path, keep_default_na=False, na_values=[""])
    assert tuple(back.columns) == POINT_COLUMNS
    assert back["spec"].tolist() == points["spec"].tolist()
    assert np.allclose(back["normalized_return"], points["normalized_return"])
    first = path.read_bytes()
    write_points(points, path)
    assert path.read_bytes() == first


# The figure --------------------------------------------------------------------------------------

def test_pareto_figure_is_readable_book_wide_and_draws_the_frontiers():
    pts = study_points(frames((LL, HC)))
    fig = pareto_figure(pts)
    try:
        assert readability_problems(fig) == []
        assert fig.get_figwidth() == pytest.approx(BOOK_WIDTH_IN)
        axes = [ax for ax in fig.axes if ax.get_xscale() == "log"]
        assert len(axes) == 4
        for ax, (env, column, scale) in zip(axes, [
                (LL, "file_bytes", 1e-3), (LL, "policy_us", 1.0),
                (HC, "file_bytes", 1e-3), (HC, "policy_us", 1.0)], strict=True):
            assert ax.get_title() == env
            steps = [ln for ln in ax.get_lines() if ln.get_drawstyle() == "steps-post"]
            assert len(steps) == 1
            front = pareto_front(pts[pts["env"] == env], column)
            assert np.allclose(steps[0].get_xdata(), front[column] * scale)
        assert len(fig.legends) == 1
        names = [t.get_text() for t in fig.legends[0].get_texts()]
        assert {"pruning", "int8", "fewer bits", "distillation", "gradual pruning",
                "dense", "frontier"} <= set(names)
    finally:
        plt.close(fig)


def test_pareto_figure_puts_low_returns_in_the_strip():
    pts = study_points(frames())
    fig = pareto_figure(pts)
    try:
        low = point(pts, "lowrank=0.9")  # -50%: below the strip's edge
        ys = np.concatenate([np.asarray(ln.get_ydata(), float) for ln in fig.axes[0].get_lines()
                             if len(ln.get_xdata()) and ln.get_drawstyle() == "default"])
        assert low["normalized_return"] < findings.STRIP_BELOW
        assert findings.STRIP_Y in ys and low["normalized_return"] not in ys
        assert fig.axes[0].get_ylim()[0] < findings.STRIP_Y < findings.STRIP_BELOW
    finally:
        plt.close(fig)


def test_every_figure_a_finding_links_to_is_named_in_its_chapter():
    """The box's links cannot go stale: each target is a ``:name:`` of its chapter's source."""
    targets = [*findings.RETURN_FIGURES.items(), *findings.TIME_FIGURES.items(),
               (findings.LOW_RANK, findings.GRID_FIGURE),
               *((BEYOND, name) for name in findings.FRONTIER_FIGURES.values()),
               (findings.FINDINGS, findings.PARETO_FIGURE)]
    assert {c for c, _ in targets} >= {PRUNING, QUANTIZATION, FINE_TUNING, BEYOND}
    for chapter, name in targets:
        source = chapter_path(chapter).read_text()
        assert f":name: {name}\n" in source, f"{chapter} has no figure {name}"


def test_pareto_figure_top_makes_room_for_intervals_up_to_a_limit_and_for_every_mean():
    pts = study_points(frames())
    wide = pts.assign(ci_high=np.where(pts["spec"] == "quant=8", 400.0, pts["ci_high"]))
    high = wide.assign(normalized_return=np.where(wide["spec"] == "quant=4", 170.0,
                                                  wide["normalized_return"]))
    room = max(110.0, pts["ci_high"].max() + 5.0)  # prune=0.5's interval reaches above 105
    for table, top in ((pts, room), (wide, findings.Y_TOP), (high, 175.0)):
        fig = pareto_figure(table)
        try:
            assert fig.axes[0].get_ylim()[1] == pytest.approx(top)
        finally:
            plt.close(fig)
