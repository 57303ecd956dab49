"""The findings (chapter 08): every model of the study as one point, its frontier, and the box.

Each chapter that runs a sweep (01 to 04 and 06, :data:`rlcomp.experiments.plans.CHAPTERS`)
measures models; :func:`study_points` makes one **point** per environment, spec and naive or
fine-tuned, from all of them:

- ``normalized_return``: ``100 * (x - random) / (dense - random)`` per environment and training
  seed, with the anchors of the point's own chapter (:func:`rlcomp.analysis.frontier.spec_points`,
  which uses :func:`rlcomp.analysis.claims.normalized_returns`), as the mean over training seeds
  with its 95% t interval (``ci_low``, ``ci_high``) over ``n_seeds`` seeds;
- ``file_bytes`` (the whole ``.safetensors`` file) and ``model_bytes`` (its tensor payload), the
  largest over seeds, and each as a factor against the dense float32 model's;
- ``policy_us``: the policy's time per decision (metric ``policy_seconds_per_decision``: eager
  PyTorch, batch 1, a fresh process pinned to one core) in microseconds, mean over seeds with its
  t interval, and ``time_ratio``: the same time over the dense policy's, measured in A/B pairs in
  that process (metric ``policy_time_ratio``), mean over seeds with its t interval. The
  microseconds are this machine's at the moment of the job; the ratio is the figure to compare.
  Jobs time the naive model of each spec only (fine-tuning keeps the layers and the storage, so
  the time too): a fine-tuned point shows the time of the naive model with the same layers and
  storage (:func:`timing_spec`, column ``time_spec``); NaN where that was not measured either.

A spec measured in several chapters (``dense``, ``quant=8``, ``lowrank=0.5``...) is kept once,
from the first chapter in the order 01, 02, 03, 04, 06 (column ``chapter``); ``also_in`` names the
others. The dense agent's fine-tuned control (chapter 04) is no compression and is left out.

Points are grouped (column ``group``, :func:`point_group`) into the poster's methods (pruning, low
rank, int8, each naive or fine-tuned; ``combined`` for compositions of them) and the methods
beyond the poster (fewer bits, gradual pruning, distillation), by their
:func:`rlcomp.analysis.frontier.method_family`.

:func:`pareto_front` keeps the points no other point beats on both size (or time) and return;
:func:`env_findings` picks, per environment, the models the findings box (:func:`findings_html`)
reports; :func:`pareto_figure` draws every point and the frontiers. The rule for *keeping the
return* is chapter 06's (:data:`rlcomp.analysis.frontier.KEEP`): the **mean** normalized return
over training seeds is at least 95%; the interval is shown beside it so that a reader sees how
sure that is.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from rlcomp.analysis.book_data import csv_bytes
from rlcomp.analysis.frontier import KEEP, is_distill_family, is_poster_family, method_family
from rlcomp.analysis.frontier import spec_points as chapter_points
from rlcomp.analysis.plotting import book_figure, colour, marker, shared_legend
from rlcomp.analysis.selection import DEFAULT_INTERVALS
from rlcomp.analysis.tables import interval_cell
from rlcomp.compress.specs import (
    DistillSpec,
    LowRankSpec,
    PruneSpec,
    QuantSpec,
    canonical_spec,
    parse_spec,
)
from rlcomp.envs import STUDY_ENVS
from rlcomp.experiments.plans import (
    BEYOND,
    CHAPTERS,
    FINDINGS,
    FINE_TUNING,
    LOW_RANK,
    PRUNING,
    QUANTIZATION,
)
from rlcomp.files import atomic_write
from rlcomp.stats import IntervalSettings, aggregate

KEEP_FRACTION = KEEP / 100.0
"""A model keeps the return when its mean normalized return is at least this fraction of the
dense agent's gain over random actions (chapter 06's rule,
:data:`~rlcomp.analysis.frontier.KEEP`)."""

GROUPS = ("pruning", "low rank", "int8", "combined", "fewer bits", "distillation",
          "gradual pruning", "dense")
"""The groups of points, in legend order: the poster's methods alone (pruning, low rank, int8)
and composed (``combined``), then fewer bits, distillation and gradual pruning; the dense agent
last. The poster's methods fine-tuned are ``GROUP, fine-tuned``."""

FINE_TUNED = ", fine-tuned"
"""The suffix of a poster's group whose models were fine-tuned."""

POINT_COLUMNS = ("env", "group", "family", "poster", "model", "spec", "finetuned", "chapter",
                 "also_in", "normalized_return", "ci_low", "ci_high", "n_seeds", "file_bytes",
                 "model_bytes", "file_factor", "model_factor", "policy_us", "policy_us_low",
                 "policy_us_high", "time_ratio", "time_ratio_low", "time_ratio_high", "time_spec")
"""The columns of :func:`study_points` and of ``points.csv``: ``group`` (:data:`GROUPS`),
``family`` (:func:`~rlcomp.analysis.frontier.method_family`), ``poster`` (whether only the
poster's methods made it), ``model`` (the spec in words), ``chapter`` (where the point comes from)
and ``also_in`` (other chapters that measured it, ``;``-separated), the normalized return (%) with
its interval and seeds, the file and model bytes with their factors against dense, the policy
time per decision (µs) and its ratio to dense, each with its interval, and ``time_spec``: the
naive model whose policy time the point shows (:func:`timing_spec`; empty where none was
measured)."""

STRIP_BELOW = -20.0
"""Normalized returns (%) below this are drawn in a grey strip at the bottom of the figure."""

RETURN_FIGURES = {PRUNING: "fig-pruning-return", LOW_RANK: "fig-lowrank-keep-io",
                  QUANTIZATION: "fig-quant-return", FINE_TUNING: "fig-finetune-evaltime"}
"""The figure of each chapter that shows its models' returns (chapter 06: one per environment,
:data:`FRONTIER_FIGURES`; chapter 02's compositions: :data:`GRID_FIGURE`)."""

GRID_FIGURE = "fig-lowrank-grid-return"
"""Chapter 02's figure of the returns of rank reduction composed with pruning."""

FRONTIER_FIGURES = {"LunarLander-v3": "fig-frontier-lunarlander",
                    "HalfCheetah-v5": "fig-frontier-halfcheetah"}
"""Chapter 06's figure of each environment (return against model bytes, every model)."""

TIME_FIGURES = {LOW_RANK: "fig-lowrank-cpu", QUANTIZATION: "fig-quant-cpu"}
"""The figures that show the policy's time per decision against dense (chapter 02: rank
reduction, chapter 03: int8 and its compositions)."""

CHAPTER_TITLES = {PRUNING: "Pruning", LOW_RANK: "Low rank", QUANTIZATION: "Quantization",
                  FINE_TUNING: "Fine-tuning", BEYOND: "Beyond the poster"}
"""The title of each chapter a finding links to (the words of the link)."""

PARETO_FIGURE = "fig-pareto"
"""The name of this chapter's figure (:func:`pareto_figure`) and of its glued output."""

INT8 = "quant=8"
"""The poster's 8-bit quantization (post-training, per output channel)."""


# Groups and words --------------------------------------------------------------------------------

def point_group(family: str) -> str:
    """The group (:data:`GROUPS`) of a method family, ``, fine-tuned`` for the poster's fine-tuned.

    Distilled students (alone or quantized) are ``distillation``; a family with an int4 or int2
    step ``fewer bits``; gradual pruning ``gradual pruning``; the poster's methods alone
    ``pruning``, ``low rank``, ``int8`` (8-bit quantization-aware training is int8 fine-tuned) and
    composed ``combined``.
    """
    if family == "dense":
        return "dense"
    tuned = family.endswith(FINE_TUNED) or family == "int8 QAT"
    steps = family.removesuffix(FINE_TUNED).replace("int8 QAT", "int8").split("+")
    if is_distill_family(family):
        return "distillation"
    if any(s.startswith(("int4", "int2")) for s in steps):
        return "fewer bits"
    if "gradual prune" in steps:
        return "gradual pruning"
    if not is_poster_family("+".join(steps)):
        return "combined"
    base = {"prune": "pruning", "lowrank": "low rank", "int8": "int8"}
    group = base[steps[0]] if len(steps) == 1 else "combined"
    return group + (FINE_TUNED if tuned else "")


def base_group(group: str) -> str:
    """A group without its ``, fine-tuned`` suffix."""
    return group.removesuffix(FINE_TUNED)


def _percent(value: float) -> str:
    return f"{100 * value:g}%"


def _step_words(step, finetuned: bool) -> str:
    if isinstance(step, PruneSpec):
        how = ("gradually " if finetuned and step.schedule == "gradual" else "")
        what = " of neurons" if step.structured else (" per layer" if step.scope == "layer"
                                                      else "")
        return f"{how}pruned {_percent(step.amount)}{what}"
    if isinstance(step, LowRankSpec):
        whole = ", input and output layers whole" if step.keep_io else ""
        return f"rank reduced {_percent(step.reduction)}{whole}"
    if isinstance(step, QuantSpec):
        words = f"int{step.bits}"
        if step.mixed:
            words += " (first and last layers int8)"
        if step.group:
            words += f" in groups of {step.group}"
        return words + (" QAT" if finetuned and step.mode == "qat" else "")
    if isinstance(step, DistillSpec):
        return f"{step.hidden} student"
    return step.method


def model_words(spec: str, finetuned: bool = False) -> str:
    """A spec in words: ``prune=0.5+quant=8`` is ``pruned 50% + int8``; ``dense`` is ``dense``.

    ``, fine-tuned`` follows a fine-tuned model, unless its words already say how it was trained
    (gradual pruning, QAT).
    """
    if spec == "dense":
        return "dense" + (FINE_TUNED if finetuned else "")
    steps = parse_spec(spec)
    words = " + ".join(_step_words(s, finetuned) for s in steps)
    trained_in = finetuned and any(
        (isinstance(s, PruneSpec) and s.schedule == "gradual")
        or (isinstance(s, QuantSpec) and s.mode == "qat") for s in steps)
    return words + (FINE_TUNED if finetuned and not trained_in else "")


# Points ------------------------------------------------------------------------------------------

KEYS = ["env", "spec", "finetuned"]


def _over_seeds(frame: pd.DataFrame, metric: str, scale: float,
                intervals: IntervalSettings) -> pd.DataFrame:
    rows = frame[frame["metric"] == metric]
    table = aggregate(rows, KEYS, None, **asdict(intervals)) if len(rows) else pd.DataFrame(
        columns=[*KEYS, "estimate", "ci_low", "ci_high", "n_seeds"])
    table = table.astype({"finetuned": bool})
    table[["estimate", "ci_low", "ci_high"]] = table[["estimate", "ci_low", "ci_high"]].astype(
        float) * scale
    return table.set_index(KEYS)[["estimate", "ci_low", "ci_high"]]


def _one_chapter(frame: pd.DataFrame, intervals: IntervalSettings) -> pd.DataFrame:
    points = chapter_points(frame, intervals).rename(columns={"bytes": "model_bytes"})
    points = points[~((points["spec"] == "dense") & points["finetuned"])]
    points = points.set_index(KEYS)
    for metric, name, scale in (("policy_seconds_per_decision", "policy_us", 1e6),
                                ("policy_time_ratio", "time_ratio", 1.0)):
        time = _over_seeds(frame, metric, scale, intervals)
        time.columns = [name, f"{name}_low", f"{name}_high"]
        points = points.join(time, how="left")
    return points.reset_index()


def timing_spec(spec: str) -> str:
    """The naive spec whose policy time a fine-tuned ``spec`` has: the same layers and storage.

    Fine-tuning keeps the network's layers and how they are stored, so a fine-tuned model decides
    as fast as its naive counterpart; gradual pruning ends with the one-shot pruned network's
    layout (``schedule=oneshot``) and quantization-aware training with the post-training quantized
    one's (``mode=ptq``). Example: ``prune=0.9,schedule=gradual`` -> ``prune=0.9``.
    """
    if spec in ("dense", "random"):
        return spec
    steps = []
    for step in parse_spec(spec):
        if isinstance(step, PruneSpec) and step.schedule != "oneshot":
            step = replace(step, schedule="oneshot")
        elif isinstance(step, QuantSpec) and step.mode != "ptq":
            step = replace(step, mode="ptq")
        steps.append(step)
    return canonical_spec(tuple(steps))


TIME_COLUMNS = ("policy_us", "policy_us_low", "policy_us_high", "time_ratio", "time_ratio_low",
                "time_ratio_high")


def _fill_times(points: pd.DataFrame) -> pd.DataFrame:
    """Give each fine-tuned point its naive counterpart's policy time (see :func:`timing_spec`)."""
    points = points.copy()
    measured = points["policy_us"].notna()
    points["time_spec"] = np.where(measured, points["spec"], "")
    naive = points[~points["finetuned"] & measured].set_index(["env", "spec"])
    for i in points.index[points["finetuned"] & ~measured]:
        key = (points.at[i, "env"], timing_spec(points.at[i, "spec"]))
        if key in naive.index:
            for column in TIME_COLUMNS:
                points.at[i, column] = naive.at[key, column]
            points.at[i, "time_spec"] = key[1]
    return points


def _env_rank(env: str) -> tuple[int, str]:
    return (STUDY_ENVS.index(env) if env in STUDY_ENVS else len(STUDY_ENVS), env)


def study_points(frames: Mapping[str, pd.DataFrame],
                 intervals: IntervalSettings = DEFAULT_INTERVALS) -> pd.DataFrame:
    """Every model of the chapters' results as one point (see the module docstring).

    Args:
        frames: chapter name -> its tidy results frame (``ChapterResults.frame``), each with
            ``random`` and naive ``dense`` jobs on every seed (the anchors of its normalized
            returns) and ``model_bytes`` on every model.
        intervals: the interval over training seeds.

    Returns:
        :data:`POINT_COLUMNS`, one row per environment, spec and naive or fine-tuned, sorted by
        environment, group and file bytes.

    Raises:
        ValueError: if ``frames`` names a chapter that runs no sweep, or holds no dense model.
    """
    unknown = [c for c in frames if c not in CHAPTERS]
    if unknown:
        raise ValueError(f"frames must be keyed by the chapters that run a sweep "
                         f"({', '.join(CHAPTERS)}), got {unknown}")
    parts = []
    for chapter in [c for c in CHAPTERS if c in frames]:
        mine = _one_chapter(frames[chapter], intervals)
        parts.append(mine.assign(chapter=chapter))
    every = pd.concat(parts, ignore_index=True)
    where = every.groupby(KEYS, sort=False)["chapter"].agg(list)
    points = every.drop_duplicates(KEYS, keep="first").copy()
    points["also_in"] = [";".join(where[k][1:]) for k in
                         zip(points["env"], points["spec"], points["finetuned"], strict=True)]
    dense = points[(points["spec"] == "dense") & ~points["finetuned"]].set_index("env")
    if dense.empty:
        raise ValueError("no naive dense model in the frames: nothing to compare with")
    points["file_factor"] = points["env"].map(dense["file_bytes"]) / points["file_bytes"]
    points["model_factor"] = points["env"].map(dense["model_bytes"]) / points["model_bytes"]
    points = _fill_times(points)
    points["family"] = [method_family(s, bool(f)) for s, f in
                        zip(points["spec"], points["finetuned"], strict=True)]
    points["group"] = points["family"].map(point_group)
    points["poster"] = [is_poster_family(f.replace("int8 QAT", "int8"))
                        for f in points["family"]]
    points["model"] = [model_words(s, bool(f)) for s, f in
                       zip(points["spec"], points["finetuned"], strict=True)]
    rank = {g: i for i, g in enumerate(GROUPS)}
    order = sorted(range(len(points)), key=lambda i: (
        _env_rank(points["env"].iat[i]), rank.get(base_group(points["group"].iat[i]), len(rank)),
        bool(points["finetuned"].iat[i]), points["file_bytes"].iat[i], points["spec"].iat[i]))
    return points.iloc[order][list(POINT_COLUMNS)].reset_index(drop=True)


def write_points(points: pd.DataFrame, path: str | Path) -> Path:
    """Write ``points`` as CSV to ``path`` (whole or not at all; same points, same bytes).

    Returns:
        The path written.
    """
    path = Path(path)
    atomic_write(path, csv_bytes(points[list(POINT_COLUMNS)]))
    return path


# The frontier ------------------------------------------------------------------------------------

def pareto_front(points: pd.DataFrame, x: str) -> pd.DataFrame:
    """The points no other point of their environment beats: smaller ``x`` and higher return.

    A point is dominated when another point of the same environment has ``x`` at most its own and
    a mean normalized return at least its own, one of the two strictly. Points equal in both are
    all kept (none beats the other). Points without ``x`` (NaN) or return take no part.

    Args:
        points: :func:`study_points` (or any frame with ``env``, ``x`` and
            ``normalized_return``).
        x: the column to make small (``file_bytes``, ``model_bytes``, ``policy_us``...).

    Returns:
        The non-dominated rows of ``points``, per environment by increasing ``x`` (so their
        returns increase too), with the original index.
    """
    kept = []
    for _, mine in points.dropna(subset=[x, "normalized_return"]).groupby("env", sort=False):
        mine = mine.sort_values([x, "normalized_return"], ascending=[True, False],
                                kind="stable")
        best = -math.inf
        xs = mine[x].to_numpy(float)
        ys = mine["normalized_return"].to_numpy(float)
        i = 0
        while i < len(mine):
            j = i
            while j < len(mine) and xs[j] == xs[i]:
                j += 1
            top = ys[i]  # the best return at this x (sorted descending within equal x)
            if top > best:
                kept.extend(mine.index[k] for k in range(i, j) if ys[k] == top)
                best = top
            i = j
    front = points.loc[kept]
    order = sorted(range(len(front)), key=lambda i: (_env_rank(front["env"].iat[i]),
                                                     front[x].iat[i]))
    return front.iloc[order]


# The findings ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EnvFindings:
    """What the findings box says about one environment (rows of :func:`study_points`)."""

    env: str
    keep: float
    """The fraction of the dense agent's normalized return a model must keep (mean over seeds)."""
    dense: pd.Series
    """The dense agent."""
    smallest: pd.Series | None
    """The compressed model with the smallest file that keeps the return (None: none keeps it)."""
    fastest: pd.Series | None
    """The compressed model with the lowest policy time per decision against dense's (the A/B
    ratio) that keeps the return."""
    poster_best: pd.Series | None
    """The smallest file of the poster's own methods that keeps the return."""
    poster_closest: pd.Series | None
    """The best-returning model of the poster's methods, for when none of them keeps it."""
    int8: pd.Series | None
    """The poster's int8 model (naive), whose policy time the box compares with dense's."""


def _first(rows: pd.DataFrame, by: list[str], ascending: list[bool]) -> pd.Series | None:
    rows = rows.dropna(subset=[by[0]])
    if rows.empty:
        return None
    return rows.sort_values([*by, "spec"], ascending=[*ascending, True], kind="stable").iloc[0]


def env_findings(points: pd.DataFrame, keep: float = KEEP_FRACTION) -> list[EnvFindings]:
    """Per environment, the models the findings box reports.

    The rule for keeping the return is on the **mean** normalized return over training seeds
    (at least ``100 * keep`` %), as in chapter 06; the interval is reported beside it. Among the
    compressed models (not dense) that keep it: the smallest file (ties: the higher return), the
    lowest policy time per decision against dense's (``time_ratio``, measured A/B in one process,
    which jobs at different moments make comparable, unlike their µs; ties: the higher return),
    and the smallest file of
    the poster's own methods (pruning, rank reduction, int8, alone, composed or fine-tuned); if
    none of the poster's keeps it, its best-returning model. The int8 model is ``quant=8`` naive.

    Args:
        points: :func:`study_points`.
        keep: the fraction of the return to keep (0.95).

    Returns:
        One :class:`EnvFindings` per environment, in the study's order.
    """
    out = []
    for env in sorted(points["env"].unique(), key=_env_rank):
        mine = points[points["env"] == env]
        dense = mine[(mine["spec"] == "dense") & ~mine["finetuned"].astype(bool)]
        if dense.empty:
            raise ValueError(f"{env}: no naive dense point")
        compressed = mine[mine["spec"] != "dense"]
        kept = compressed[compressed["normalized_return"] >= 100.0 * keep - 1e-9]
        poster = compressed[compressed["poster"].astype(bool)]
        int8 = compressed[(compressed["spec"] == INT8) & ~compressed["finetuned"].astype(bool)]
        out.append(EnvFindings(
            env=env, keep=keep, dense=dense.iloc[0],
            smallest=_first(kept, ["file_bytes", "normalized_return"], [True, False]),
            fastest=_first(kept, ["time_ratio", "normalized_return"], [True, False]),
            poster_best=_first(kept[kept["poster"].astype(bool)],
                               ["file_bytes", "normalized_return"], [True, False]),
            poster_closest=_first(poster, ["normalized_return", "file_bytes"], [False, True]),
            int8=None if int8.empty else int8.iloc[0]))
    return out


# Words: the box ----------------------------------------------------------------------------------

def _kb(value: float) -> str:
    kb = value / 1000.0
    return f"{kb:,.1f} kB" if kb >= 1 else f"{kb:.2f} kB"


def _factor(value: float) -> str:
    return f"{value:,.0f}×" if value >= 10 else f"{value:.1f}×"


def _cell(estimate: float, low: float, high: float, fmt: str, unit: str = "") -> str:
    """``fmt`` of the estimate with its unit, the interval in brackets unless it is a point."""
    text = fmt.format(estimate) + unit
    if pd.isna(low) or pd.isna(high) or low == high == estimate:
        return text
    return f"{text} [{fmt.format(low)}, {fmt.format(high)}]"


def _ratio_words(row: pd.Series) -> str:
    """The policy time against dense's: ``0.42× the dense policy's time [0.41, 0.43]``."""
    if pd.isna(row["time_ratio"]):
        return "policy time not measured"
    cell = _cell(row["time_ratio"], row["time_ratio_low"], row["time_ratio_high"], "{:.2f}")
    number, _, interval = cell.partition(" ")
    return (f"{number}× the dense policy's time per decision"
            f"{' ' + interval if interval else ''}")


def _return_words(row: pd.Series) -> str:
    cell = _cell(row["normalized_return"], row["ci_low"], row["ci_high"], "{:.1f}", "%")
    return f"{cell} of the dense return"


def _us(row: pd.Series) -> str:
    if pd.isna(row["policy_us"]):
        return "not measured"
    return _cell(row["policy_us"], row["policy_us_low"], row["policy_us_high"], "{:.1f}", " µs")


def figure_link(row: pd.Series, *, time: bool = False) -> tuple[str, str] | None:
    """(page and anchor, chapter title) of the figure that shows a point's return (or time).

    None where its chapter has no such figure (e.g. chapter 06 draws no policy time).
    """
    chapter = row["chapter"]
    if time:
        name = TIME_FIGURES.get(chapter)
    elif chapter == BEYOND:
        name = FRONTIER_FIGURES.get(row["env"])
    elif chapter == LOW_RANK and "+" in row["family"]:
        name = GRID_FIGURE
    else:
        name = RETURN_FIGURES.get(chapter)
    return None if name is None else (f"{chapter}.html#{name}",
                                      CHAPTER_TITLES.get(chapter, chapter))


def _link(target: tuple[str, str] | None, what: str = "figure") -> str:
    """A link to a figure, its words ``<what> in <chapter title>``; empty for no figure."""
    if target is None:
        return ""
    return f'<a href="{html.escape(target[0])}">{html.escape(what)} in {html.escape(target[1])}</a>'


def _links(*links: str) -> str:
    shown = [s for s in dict.fromkeys(links) if s]
    pareto = f'<a href="{FINDINGS}.html#{PARETO_FIGURE}">Pareto figure</a>'
    return " (" + ", ".join([*shown, pareto]) + ")"


def _model(row: pd.Series) -> str:
    return f"<i>{html.escape(row['model'])}</i>"


def _env_name(env: str) -> str:
    return f"<b>{html.escape(env)}</b>"


def _smallest_text(f: EnvFindings) -> str:
    row, dense = f.smallest, f.dense
    if row is None:
        return f"{_env_name(f.env)}: no compressed model keeps {100 * f.keep:g}%"
    link = _link(figure_link(row))
    return (f"{_env_name(f.env)}: {_model(row)}, a {_kb(row['file_bytes'])} file "
            f"({_factor(row['file_factor'])} smaller than the dense {_kb(dense['file_bytes'])} "
            "file), "
            f"{_return_words(row)}, {_ratio_words(row)}" + _links(link))


def _fastest_text(f: EnvFindings) -> str:
    row, dense = f.fastest, f.dense
    if row is None:
        return (f"{_env_name(f.env)}: no compressed model that keeps {100 * f.keep:g}% had its "
                "policy time measured")
    links = [_link(figure_link(row, time=True), "time"), _link(figure_link(row), "return")]
    return (f"{_env_name(f.env)}: {_model(row)}, {_us(row)} per decision (dense: "
            f"{_us(dense)}), {_ratio_words(row)}, {_return_words(row)}" + _links(*links))


def _poster_text(f: EnvFindings) -> str:
    row = f.poster_best
    if row is None:
        closest = f.poster_closest
        if closest is None:
            return f"{_env_name(f.env)}: none of the poster's methods was measured"
        link = _link(figure_link(closest))
        return (f"{_env_name(f.env)}: none keeps {100 * f.keep:g}%; the closest is "
                f"{_model(closest)} at {_return_words(closest)}, a "
                f"{_kb(closest['file_bytes'])} file" + _links(link))
    link = _link(figure_link(row))
    smallest = f.smallest
    beaten = ""
    if smallest is not None and smallest["file_bytes"] < row["file_bytes"]:
        beaten = (f"; the smallest file of any method is "
                  f"{_factor(row['file_bytes'] / smallest['file_bytes'])} smaller still")
    return (f"{_env_name(f.env)}: {_model(row)}, a {_kb(row['file_bytes'])} file "
            f"({_factor(row['file_factor'])} smaller than dense), {_return_words(row)}{beaten}"
            + _links(link))


def _int8_text(f: EnvFindings) -> str:
    row = f.int8
    if row is None or pd.isna(row["time_ratio"]):
        return f"{_env_name(f.env)}: not measured"
    link = _link(figure_link(row, time=True))
    return (f"{_env_name(f.env)}: {_us(row)} per decision (dense: {_us(f.dense)}), "
            f"{_ratio_words(row)}, while its file is {_factor(row['file_factor'])} smaller"
            + _links(link))


def findings_html(findings: Sequence[EnvFindings]) -> str:
    """The "what we found" box: one bullet per finding, one sentence per environment in it.

    Every number carries its unit and, where it varies between training seeds, its 95% t interval
    in brackets; every sentence links to the chapter's figure that shows the model and to the
    Pareto figure (links relative to the site's pages). The box is a ``div`` with the theme's
    admonition classes and ``findings-box``.
    """
    if not findings:
        return '<div class="admonition findings-box"><p>No results.</p></div>'
    keep = f"{100 * findings[0].keep:g}%"
    seeds = sorted({int(f.dense["n_seeds"]) for f in findings})
    seed_words = (" or ".join(str(s) for s in seeds) + " training seeds with 95% t intervals in "
                  "brackets" if seeds != [1] else "one training seed (no interval)")
    items = [
        (f"Smallest file that keeps at least {keep} of the return", _smallest_text),
        (f"Fastest policy that keeps at least {keep}", _fastest_text),
        (f"The poster's own methods (pruning, rank reduction, int8; naive or fine-tuned): the "
         f"smallest file that keeps {keep}", _poster_text),
        ("int8, the poster's quantization, against the dense policy", _int8_text),
    ]
    bullets = []
    for title, text in items:
        parts = "".join(f"<li>{text(f)}.</li>" for f in findings)
        bullets.append(f"<li><b>{html.escape(title)}</b>:<ul>{parts}</ul></li>")
    note = (f"Returns are normalized (0% = a random policy, 100% = the uncompressed agent), means "
            f"over {seed_words}; a model keeps "
            f"the return when its mean is at least {keep}. Policy time is one decision in eager "
            "PyTorch at batch 1 on one core; the ratio to dense is measured in interleaved A/B "
            "pairs.")
    return ('<div class="admonition tip findings-box">'
            '<p class="admonition-title">Which compression to choose</p>'
            f"<ul>{''.join(bullets)}</ul><p>{html.escape(note)}</p></div>")


FRONTIER_HEADERS = ("model (group)", "on the frontier of", "file (kB, × smaller than dense)",
                    "normalized return (%)", "policy time per decision (µs, × dense)", "chapter")
"""The columns of :func:`frontier_html`."""


def _frontier_row(row: pd.Series, on: str) -> list[str]:
    """The cells of one model in :func:`frontier_html` (HTML, escaped)."""
    def text(value) -> str:
        return html.escape(str(value))

    time = "not measured"
    if not pd.isna(row["policy_us"]):
        time = text(interval_cell(row["policy_us"], row["policy_us_low"], row["policy_us_high"],
                                  "{:.1f}"))
        ratio = _cell(row["time_ratio"], row["time_ratio_low"], row["time_ratio_high"],
                      "{:.2f}")
        number, _, interval = ratio.partition(" ")
        time += f"<br>{text(number)}×{' ' + text(interval) if interval else ''}"
    return [f"{text(row['model'])}<br><small>{text(row['group'])}</small>", text(on),
            f"{row['file_bytes'] / 1000:,.1f}<br>{text(_factor(row['file_factor']))}",
            text(interval_cell(row["normalized_return"], row["ci_low"], row["ci_high"],
                               "{:.1f}")),
            time, text(CHAPTER_TITLES.get(row["chapter"], row["chapter"]))]


def frontier_html(points: pd.DataFrame) -> str:
    """The models on either frontier (file size, policy time) as HTML, one table per environment.

    Each table (class ``frontier-table``, the environment as its caption) lists the models of
    :func:`pareto_front` by file size or by policy time, by increasing file size:
    :data:`FRONTIER_HEADERS`: the model in words with its group, which frontier it is on
    (``size``, ``time`` or both), its file (kB) and factor against dense, its normalized return
    (%, 95% t interval), its policy time per decision (µs with its interval, and against dense,
    × with its interval), and the chapter it comes from.
    """
    by_size = set(pareto_front(points, "file_bytes").index)
    by_time = set(pareto_front(points, "policy_us").index)
    head = "".join(f"<th>{html.escape(h)}</th>" for h in FRONTIER_HEADERS)
    tables = []
    for env in sorted(points["env"].unique(), key=_env_rank):
        mine = points[(points["env"] == env) & points.index.isin(by_size | by_time)]
        mine = mine.sort_values(["file_bytes", "normalized_return"], ascending=[True, False],
                                kind="stable")
        body = []
        for i, row in mine.iterrows():
            on = " and ".join(w for w, s in (("size", by_size), ("time", by_time)) if i in s)
            body.append("<tr>" + "".join(f"<td>{c}</td>" for c in _frontier_row(row, on))
                        + "</tr>")
        tables.append(f'<table class="frontier-table"><caption>{html.escape(env)}</caption>'
                      f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")
    return "".join(tables)


def file_bytes_table(points: pd.DataFrame) -> pd.DataFrame:
    """File and model bytes of the compressions of the committed agents (no training involved).

    These files are the same on every machine (distilled and fine-tuned models depend on the
    processor's arithmetic, and are left out), so the regression baseline can check them.

    Returns:
        Indexed by ``env`` and ``spec``, columns ``file bytes``, ``model bytes``.
    """
    pure = points[~points["finetuned"].astype(bool)
                  & (points["group"] != "distillation")]
    table = pure[["env", "spec", "file_bytes", "model_bytes"]].rename(
        columns={"file_bytes": "file bytes", "model_bytes": "model bytes"})
    return table.set_index(["env", "spec"]).sort_index()


# The figure --------------------------------------------------------------------------------------

PANELS = (("file_bytes", 1e-3, "Policy file (kB, log scale)"),
          ("policy_us", 1.0, "Policy time per decision (µs, log scale)"))
"""The columns of :func:`pareto_figure`: the point's x column, its scale to the axis unit, and
the axis name."""

STRIP_Y = -30.0
"""Where points below :data:`STRIP_BELOW` are drawn (in the grey strip)."""

Y_BOTTOM = -40.0
"""The bottom of the return axis (%)."""

Y_TOP = 150.0
"""The highest top of the return axis (%) that wide intervals may ask for (longer error bars are
cut there; every mean stays inside the axes)."""


def _style(group: str) -> dict:
    i = GROUPS.index(base_group(group)) if base_group(group) in GROUPS else len(GROUPS) - 2
    tuned = group.endswith(FINE_TUNED)
    return {"color": colour(i), "marker": marker(i), "mec": colour(i) if tuned else "0.15",
            "mfc": "white" if tuned else colour(i), "mew": 1.1 if tuned else 0.5}


def _log_ticks(ax, values: np.ndarray) -> None:
    values = values[np.isfinite(values) & (values > 0)]
    if len(values) == 0:
        return
    span = math.log10(values.max() / values.min()) if len(values) > 1 else 0.0
    subs = (1.0,) if span > 1.6 else ((1.0, 3.0) if span > 0.8 else (1.0, 2.0, 5.0))
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    low, high = values.min() / 1.6, values.max() * 1.6
    ax.set_xlim(low, high)


def _draw_panel(ax, mine: pd.DataFrame, column: str, scale: float, keep: float) -> None:
    shown = mine.dropna(subset=[column])
    x = shown[column].to_numpy(float) * scale
    for group, rows in shown.groupby("group", sort=False):
        style = _style(group)
        rx = rows[column].to_numpy(float) * scale
        ry = rows["normalized_return"].to_numpy(float)
        low = ry < STRIP_BELOW
        if group == "dense":
            ax.plot(rx, ry, ls="", ms=11, zorder=6, **style)
            continue
        above = rows[~low]
        if len(above):
            yerr = np.clip(np.nan_to_num(np.vstack([
                above["normalized_return"] - above["ci_low"],
                above["ci_high"] - above["normalized_return"]])), 0, None)
            xerr = None
            if column == "policy_us":
                xerr = np.clip(np.nan_to_num(np.vstack([
                    above["policy_us"] - above["policy_us_low"],
                    above["policy_us_high"] - above["policy_us"]])), 0, None) * scale
            ax.errorbar(rx[~low], ry[~low], yerr=yerr, xerr=xerr, ls="", ms=6,
                        elinewidth=0.8, capsize=1.5, ecolor=style["color"], zorder=4, **style)
        if low.any():
            ax.plot(rx[low], np.full(int(low.sum()), STRIP_Y), ls="", ms=6, zorder=4, **style)
    front = pareto_front(shown, column)
    fy = np.maximum(front["normalized_return"].to_numpy(float), STRIP_Y)
    ax.step(front[column].to_numpy(float) * scale, fy, where="post", color="0.25", lw=1.1,
            zorder=3)
    ax.axhspan(Y_BOTTOM, STRIP_BELOW, color="0.9", lw=0, zorder=0)
    ax.axhline(100 * keep, color="0.45", ls="--", lw=0.9, zorder=1)
    ax.set_xscale("log")
    _log_ticks(ax, x)


def pareto_figure(points: pd.DataFrame, keep: float = KEEP_FRACTION) -> Figure:
    """Normalized return against file size and against policy time, every point, both frontiers.

    One row per environment; columns: the file's kB (log scale) and the policy's µs per decision
    (log scale; points without a measured time are left out). Each point is a model with its 95%
    t interval over training seeds as error bars (horizontal too for the time); colour and marker
    say its group (:data:`GROUPS`), an open marker a poster's method fine-tuned, the black star
    the dense agent. The grey line is the frontier (:func:`pareto_front`) drawn as steps: the best
    return reachable within a size or a time. The dashed line is ``keep``; models whose mean is
    below :data:`STRIP_BELOW` % sit in the grey strip at the bottom. Book width, one legend.
    """
    envs = sorted(points["env"].unique(), key=_env_rank)
    fig, axes = book_figure(max(1, len(envs)), len(PANELS), height=2.55 * max(1, len(envs)) + 1.3,
                            sharey=True)
    top = 110.0
    if len(points):  # room for the intervals, up to Y_TOP; always for every mean
        top = max(top, min(Y_TOP, float(np.nanmax(points["ci_high"])) + 5.0),
                  float(np.nanmax(points["normalized_return"])) + 5.0)
    for r, env in enumerate(envs):
        mine = points[points["env"] == env]
        for c, (column, scale, name) in enumerate(PANELS):
            ax = axes[r, c]
            _draw_panel(ax, mine, column, scale, keep)
            ax.set_title(env)
            ax.set_xlabel(name)
    for ax in axes[:, 0]:
        ax.set_ylabel("Return (% of dense)")
    axes[0, 0].set_ylim(Y_BOTTOM, top)
    strip = f"< {STRIP_BELOW:g}".replace("-", "\u2212")
    axes[0, 0].set_yticks([STRIP_Y, 0, 50, 100], [strip, "0", "50", "100"])
    legend_ax = axes[0, 0]
    present = {base_group(g) for g in points["group"]}
    for group in [g for g in GROUPS if g in present]:
        legend_ax.plot([], [], ls="", ms=6, label=group, **_style(group))
    if any(g.endswith(FINE_TUNED) for g in points["group"]):
        legend_ax.plot([], [], ls="", ms=6, label="open: poster's, fine-tuned", marker="o",
                       mfc="white", mec="0.3", mew=1.1)
    legend_ax.plot([], [], color="0.25", lw=1.1, label="frontier")
    legend_ax.plot([], [], color="0.45", ls="--", lw=0.9, label=f"{100 * keep:g}% of dense")
    return shared_legend(fig, max_columns=5)
