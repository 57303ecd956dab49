"""Beyond the poster (chapter 06): the smallest policy file that keeps the return, per method.

Every compressed model of a sweep is a point: its **model bytes** (the ``model_bytes`` metric, the
compressed file's tensor payload: everything the policy needs, as stored, without the safetensors
header) against its **normalized return**, ``100 * (x - random) / (dense - random)`` per
environment and training seed (:func:`rlcomp.analysis.claims.normalized_returns`), averaged over
seeds with the t interval the verdicts use (:data:`rlcomp.analysis.selection.DEFAULT_INTERVALS`).
:func:`spec_points` makes the points; :func:`frontier_figure` draws them into an axes and
:func:`frontier_panels` as the chapter's page-wide figure (one row per group of families).

Models are grouped into **method families** (:func:`method_family`): the steps of the spec, each
named by its method (``prune``, ``lowrank``, ``int8``/``int4``/``int2``, ``distill``), joined by
``+`` in the order they apply; ``gradual prune`` and ``int4 QAT`` where the spec prunes gradually
or trains with quantization *and* was fine-tuned (without fine-tuning both are their one-shot
counterparts), and ``, fine-tuned`` after any other fine-tuned spec. The poster's own methods are
pruning, rank reduction and 8-bit quantization, alone, composed, or fine-tuned
(:func:`is_poster_family`).

:func:`frontier_table` keeps one row per environment and family: the smallest model (fewest model
bytes) whose mean normalized return is at least :data:`KEEP` (95%); for a family none of whose
models gets there, its best-returning model, whose ``normalized_return`` then shows by how much it
falls short. The rule is on the mean over training seeds; ``ci_low`` and ``ci_high`` say how sure
it is. ``factor`` is the dense float32 model's model bytes over the model's; ``env_steps`` and
``cpu_seconds`` are what making it cost in training (distillation plus fine-tuning; 0 for a pure
compression), means over seeds.

The issue's targets are constants here (:data:`FACTOR_TARGETS`, :data:`DISTILL_CPU_TARGET`), fixed
before the full-profile data was read; :func:`target_table` and :func:`distill_cost_table` set the
measured numbers beside them. :func:`write_frontier` writes the table as ``book/data/frontier.csv``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from rlcomp.analysis.book_data import csv_bytes
from rlcomp.analysis.claims import normalized_returns
from rlcomp.analysis.plotting import (
    PAGE_WIDTH_IN,
    book_style,
    colour,
    error_bars,
    finish_axes,
    marker,
)
from rlcomp.analysis.selection import DEFAULT_INTERVALS
from rlcomp.analysis.tables import interval_cell
from rlcomp.compress.specs import DistillSpec, PruneSpec, QuantSpec, parse_spec
from rlcomp.envs import STUDY_ENVS
from rlcomp.experiments.plans import ChapterResults
from rlcomp.experiments.store import RANDOM_POLICY
from rlcomp.files import atomic_write
from rlcomp.stats import IntervalSettings, aggregate

KEEP = 95.0
"""A model *keeps the return* when its mean normalized return over training seeds is at least this
(% of the dense agent's gain over random actions)."""

FRONTIER_COLUMNS = ("env", "method", "spec", "bytes", "file_bytes", "factor", "normalized_return",
                    "ci_low", "ci_high", "n_seeds", "env_steps", "cpu_seconds")
"""The columns of :func:`frontier_table` and of ``frontier.csv``: ``method`` is the family,
``bytes`` the model bytes, ``file_bytes`` the whole file (largest over seeds, both), ``factor`` the
dense model's model bytes over ``bytes``, ``normalized_return`` the mean over seeds (%) with its
95% t interval ``ci_low``, ``ci_high`` over ``n_seeds`` seeds, ``env_steps`` and ``cpu_seconds``
the training cost (means over seeds)."""

POINT_COLUMNS = ("env", "method", "spec", "finetuned", "bytes", "file_bytes", "factor",
                 "normalized_return", "ci_low", "ci_high", "n_seeds", "env_steps", "cpu_seconds",
                 "policy_seconds", "policy_time_ratio")
"""The columns of :func:`spec_points`: the frontier table's, whether a model was fine-tuned, and
the policy's time per decision (``policy_seconds``, s) and its ratio to the dense policy's
(``policy_time_ratio``), means over seeds (NaN where the jobs did not time the policy)."""


class FactorTarget(NamedTuple):
    """A compression factor to reach while keeping the return (:data:`KEEP`)."""

    target: float
    stretch: float


FACTOR_TARGETS = {"LunarLander-v3": FactorTarget(300.0, 500.0),
                  "HalfCheetah-v5": FactorTarget(100.0, 300.0)}
"""The issue's targets per environment: model bytes at least ``target`` (stretch: ``stretch``)
times smaller than the dense float32 model's, at >= 95% normalized return."""

DISTILL_CPU_TARGET = 120.0
"""The issue's cost target: one distillation (one training seed's student) takes at most this many
CPU seconds on one core (jobs run PyTorch on one thread)."""

TRAINING_STEPS = ("distill_env_steps", "finetune_env_steps")
"""The metrics whose sum is a model's training cost in environment steps."""

TRAINING_CPU = ("distill_cpu_seconds", "finetune_cpu_seconds")
"""The metrics whose sum is a model's training cost in CPU seconds."""

FAMILY_ORDER = ("dense", "prune", "lowrank", "int8", "prune+int8", "lowrank+int8",
                "prune, fine-tuned", "int4", "int2", "int4 QAT", "int2 QAT", "gradual prune",
                "distill", "distill+int8", "distill+int4", "distill+int2")
"""The order of families in tables and legends (others follow, sorted)."""

POSTER_STEPS = {"prune", "lowrank", "int8"}
"""The poster's methods: pruning, rank reduction, 8-bit quantization."""


# Method families ---------------------------------------------------------------------------------

def method_family(spec: str, finetuned: bool = False) -> str:
    """The method family of a spec, naive or fine-tuned (see the module docstring).

    Examples: ``prune=0.5+quant=8`` is ``prune+int8``; ``quant=4,mixed=true,mode=qat`` fine-tuned is
    ``int4 QAT`` (naive: ``int4``); ``prune=0.9,schedule=gradual`` fine-tuned is ``gradual prune``;
    ``prune=0.9`` fine-tuned is ``prune, fine-tuned``; ``distill=16x16+quant=8`` is
    ``distill+int8``; ``dense`` and ``random`` are themselves.
    """
    if spec == RANDOM_POLICY:
        return RANDOM_POLICY
    words, trained_in = [], False
    for step in parse_spec(spec):
        if isinstance(step, PruneSpec):
            gradual = finetuned and step.schedule == "gradual"
            trained_in = trained_in or gradual
            words.append("gradual prune" if gradual else "prune")
        elif isinstance(step, QuantSpec):
            qat = finetuned and step.mode == "qat"
            trained_in = trained_in or qat
            words.append(f"int{step.bits}" + (" QAT" if qat else ""))
        else:
            words.append(step.method)
    name = "+".join(words) or "dense"
    return f"{name}, fine-tuned" if finetuned and not trained_in else name


def is_poster_family(family: str) -> bool:
    """Whether a family uses the poster's methods only, naive or fine-tuned.

    The poster's methods are pruning, rank reduction and int8 (:data:`POSTER_STEPS`); dense is no
    compression and no such family.
    """
    steps = family.removesuffix(", fine-tuned").split("+")
    return family != "dense" and all(step in POSTER_STEPS for step in steps)


def is_distill_family(family: str) -> bool:
    """Whether a family trains a distilled student."""
    return family.split("+")[0].removesuffix(", fine-tuned") == "distill"


def _family_rank(family: str) -> tuple[int, str]:
    order = {name: i for i, name in enumerate(FAMILY_ORDER)}
    return (order.get(family, len(order)), family)


def _env_rank(env: str) -> tuple[int, str]:
    return (STUDY_ENVS.index(env) if env in STUDY_ENVS else len(STUDY_ENVS), env)


# Points: one per model --------------------------------------------------------------------------

KEYS = ["env", "spec", "finetuned"]
"""What makes one model: a compression of one environment's agents, naive or fine-tuned."""


def _largest(frame: pd.DataFrame, metric: str) -> pd.Series:
    rows = frame[frame["metric"] == metric]
    return rows.groupby(KEYS)["value"].max()


def _training(frame: pd.DataFrame, metrics: Sequence[str]) -> pd.Series:
    """Per model, the mean over seeds of the sum of ``metrics`` (each the mean of a seed's jobs)."""
    rows = frame[frame["metric"].isin(list(metrics))]
    per_metric = rows.groupby([*KEYS, "train_seed", "metric"])["value"].mean()
    per_seed = per_metric.groupby(level=[*KEYS, "train_seed"]).sum()
    return per_seed.groupby(level=KEYS).mean()


def _seed_mean(frame: pd.DataFrame, metric: str) -> pd.Series:
    """Per model, the mean over seeds of ``metric`` (each the mean of a seed's jobs)."""
    rows = frame[frame["metric"] == metric]
    return rows.groupby([*KEYS, "train_seed"])["value"].mean().groupby(level=KEYS).mean()


def spec_points(frame: pd.DataFrame,
                intervals: IntervalSettings = DEFAULT_INTERVALS) -> pd.DataFrame:
    """Every model of ``frame`` (the random policy left out): its sizes, return and training cost.

    Args:
        frame: the tidy frame of a sweep with ``random`` and ``dense`` jobs on every seed
            (the anchors of normalized returns).
        intervals: the interval over seeds of the normalized return.

    Returns:
        :data:`POINT_COLUMNS`, sorted by environment, family and model bytes.

    Raises:
        ValueError: if a model has no ``model_bytes`` (results stored before jobs measured it).
    """
    models = frame[frame["spec"] != RANDOM_POLICY]
    per_seed = normalized_returns(frame, models)
    returns = aggregate(per_seed, KEYS, None, **asdict(intervals))
    returns = returns.rename(columns={"estimate": "normalized_return"}).set_index(KEYS)
    points = returns.join(_largest(models, "model_bytes").rename("bytes"), how="left")
    points = points.join(_largest(models, "bytes").rename("file_bytes"), how="left")
    missing = points[points["bytes"].isna()]
    if len(missing):
        names = ", ".join(sorted({f"{e}: {s}" for e, s, _ in missing.index}))
        raise ValueError(f"no model_bytes for {names}: these results were stored before jobs "
                         "measured model_bytes; run the sweep into a store without them")
    points["env_steps"] = _training(models, TRAINING_STEPS).reindex(points.index).fillna(0.0)
    points["cpu_seconds"] = _training(models, TRAINING_CPU).reindex(points.index).fillna(0.0)
    points["policy_seconds"] = _seed_mean(models, "policy_seconds_per_decision").reindex(
        points.index)
    points["policy_time_ratio"] = _seed_mean(models, "policy_time_ratio").reindex(points.index)
    points = points.reset_index()
    dense = points[(points["spec"] == "dense") & ~points["finetuned"].astype(bool)]
    dense_bytes = dense.set_index("env")["bytes"]
    points["factor"] = points["env"].map(dense_bytes) / points["bytes"]
    points["method"] = [method_family(s, bool(f)) for s, f in
                        zip(points["spec"], points["finetuned"], strict=True)]
    for column in ("bytes", "file_bytes", "n_seeds"):
        points[column] = points[column].astype("int64")
    points["env_steps"] = points["env_steps"].round().astype("int64")
    points["finetuned"] = points["finetuned"].astype(bool)
    order = sorted(range(len(points)), key=lambda i: (
        _env_rank(points["env"].iat[i]), _family_rank(points["method"].iat[i]),
        points["bytes"].iat[i], points["spec"].iat[i]))
    return points.iloc[order][list(POINT_COLUMNS)].reset_index(drop=True)


# The table: one row per family -------------------------------------------------------------------

def _pick(group: pd.DataFrame, keep: float) -> int:
    """The index of the smallest model that keeps the return, else of the best-returning one."""
    kept = group[group["normalized_return"] >= keep]
    if len(kept):
        return kept.sort_values(["bytes", "normalized_return", "spec"],
                                ascending=[True, False, True], kind="stable").index[0]
    return group.sort_values(["normalized_return", "bytes", "spec"], ascending=[False, True, True],
                             na_position="last", kind="stable").index[0]


def frontier_table(frame: pd.DataFrame, keep: float = KEEP,
                   intervals: IntervalSettings = DEFAULT_INTERVALS) -> pd.DataFrame:
    """Per environment and method family, the smallest model that keeps ``keep`` % of the return.

    A family none of whose models keeps it is represented by its best-returning model (its
    ``normalized_return`` lies below ``keep``). The dense model is the family ``dense`` (factor 1).

    Args:
        frame: the tidy frame (see :func:`spec_points`).
        keep: the normalized return (%) the mean over seeds must reach.
        intervals: the interval over seeds of the normalized return.

    Returns:
        Exactly :data:`FRONTIER_COLUMNS`, environments in the study's order, families in
        :data:`FAMILY_ORDER`.
    """
    points = spec_points(frame, intervals)
    picked = [_pick(group, keep) for _, group in points.groupby(["env", "method"], sort=False)]
    table = points.loc[picked, list(FRONTIER_COLUMNS)]
    order = sorted(range(len(table)), key=lambda i: (_env_rank(table["env"].iat[i]),
                                                     _family_rank(table["method"].iat[i])))
    return table.iloc[order].reset_index(drop=True)


def write_frontier(frame: pd.DataFrame, out_dir: str | Path, keep: float = KEEP) -> Path:
    """Write :func:`frontier_table` as ``frontier.csv`` into ``out_dir`` (whole or not at all).

    The same results give the same bytes (:func:`rlcomp.analysis.book_data.csv_bytes`).

    Returns:
        The path written.
    """
    path = Path(out_dir) / "frontier.csv"
    atomic_write(path, csv_bytes(frontier_table(frame, keep)))
    return path


def kept(table: pd.DataFrame, keep: float = KEEP) -> pd.DataFrame:
    """The rows of a frontier table that keep the return."""
    return table[table["normalized_return"] >= keep]


def _best(table: pd.DataFrame, env: str, which, keep: float) -> pd.Series | None:
    rows = kept(table[(table["env"] == env) & table["method"].map(which)], keep)
    if rows.empty:
        return None
    return rows.sort_values(["factor", "normalized_return"], ascending=False,
                            kind="stable").iloc[0]


def _envs(table: pd.DataFrame) -> list[str]:
    return sorted(table["env"].unique(), key=_env_rank)


def target_table(table: pd.DataFrame, keep: float = KEEP,
                 targets: dict[str, FactorTarget] = FACTOR_TARGETS) -> pd.DataFrame:
    """Per environment, the smallest model that keeps the return, beside the issue's targets.

    Args:
        table: a :func:`frontier_table`.
        keep: the normalized return (%) a model must keep.
        targets: the factor targets per environment.

    Returns:
        Columns ``env, method, spec, bytes, factor, normalized_return, target, stretch,
        target_met, stretch_met``; an environment where nothing keeps the return has NaN in the
        model's columns and is not met.
    """
    records = []
    for env in _envs(table):
        goal = targets.get(env, FactorTarget(math.nan, math.nan))
        best = _best(table, env, lambda f: f != "dense", keep)
        factor = math.nan if best is None else float(best["factor"])
        records.append({
            "env": env,
            "method": None if best is None else best["method"],
            "spec": None if best is None else best["spec"],
            "bytes": math.nan if best is None else float(best["bytes"]),
            "factor": factor,
            "normalized_return": math.nan if best is None else float(best["normalized_return"]),
            "target": goal.target, "stretch": goal.stretch,
            "target_met": bool(factor >= goal.target), "stretch_met": bool(factor >= goal.stretch),
        })
    return pd.DataFrame.from_records(records, columns=[
        "env", "method", "spec", "bytes", "factor", "normalized_return", "target", "stretch",
        "target_met", "stretch_met"])


def distillation_gain(table: pd.DataFrame, keep: float = KEEP) -> pd.DataFrame:
    """Per environment, the poster's best compression that keeps the return against distillation's.

    "Best" is the largest factor among the kept rows of the poster's families
    (:func:`is_poster_family`) and of the distilled students' (:func:`is_distill_family`);
    ``gain`` is distillation's factor over the poster's (NaN when either keeps nothing).

    Returns:
        Columns ``env, poster_method, poster_spec, poster_factor, distill_method, distill_spec,
        distill_factor, gain``.
    """
    records = []
    for env in _envs(table):
        poster = _best(table, env, is_poster_family, keep)
        student = _best(table, env, is_distill_family, keep)
        record = {"env": env}
        for name, row in (("poster", poster), ("distill", student)):
            record[f"{name}_method"] = None if row is None else row["method"]
            record[f"{name}_spec"] = None if row is None else row["spec"]
            record[f"{name}_factor"] = math.nan if row is None else float(row["factor"])
        record["gain"] = record["distill_factor"] / record["poster_factor"]
        records.append(record)
    return pd.DataFrame.from_records(records, columns=[
        "env", "poster_method", "poster_spec", "poster_factor", "distill_method", "distill_spec",
        "distill_factor", "gain"])


def distill_cost_table(frame: pd.DataFrame,
                       intervals: IntervalSettings = DEFAULT_INTERVALS) -> pd.DataFrame:
    """What each distillation cost, per environment and student (all jobs that distil it).

    A composition (``distill=16x16+quant=8``) distils its student again, so it counts as one more
    distillation of that student.

    Returns:
        One row per environment and student (hidden widths), columns ``env, student,
        distillations, env_steps, gradient_steps, cpu_seconds, ci_low, ci_high, max_cpu_seconds,
        wall_seconds`` (means over seeds, the CPU seconds with their t interval, and the largest
        CPU seconds of any one distillation).
    """
    rows = frame[frame["metric"].isin(["distill_env_steps", "distill_gradient_steps",
                                       "distill_cpu_seconds", "distill_wall_seconds"])]
    columns = ["env", "student", "distillations", "env_steps", "gradient_steps", "cpu_seconds",
               "ci_low", "ci_high", "max_cpu_seconds", "wall_seconds"]
    if rows.empty:
        return pd.DataFrame(columns=columns)
    students = {s: next(step.hidden for step in parse_spec(s) if isinstance(step, DistillSpec))
                for s in rows["spec"].unique()}
    rows = rows.assign(student=rows["spec"].map(students))
    records = []
    for (env, student), mine in rows.groupby(["env", "student"], sort=False):
        cpu = mine[mine["metric"] == "distill_cpu_seconds"]
        spread = aggregate(cpu, [], None, **asdict(intervals))
        means = {m: mine[mine["metric"] == m].groupby("train_seed")["value"].mean().mean()
                 for m in ("distill_env_steps", "distill_gradient_steps", "distill_wall_seconds")}
        records.append({
            "env": env, "student": student, "distillations": len(cpu),
            "env_steps": means["distill_env_steps"],
            "gradient_steps": means["distill_gradient_steps"],
            "cpu_seconds": spread["estimate"].iat[0], "ci_low": spread["ci_low"].iat[0],
            "ci_high": spread["ci_high"].iat[0], "max_cpu_seconds": float(cpu["value"].max()),
            "wall_seconds": means["distill_wall_seconds"]})
    table = pd.DataFrame.from_records(records, columns=columns)
    widths = table["student"].map(lambda s: tuple(-int(w) for w in s.split("x")))
    order = sorted(range(len(table)), key=lambda i: (_env_rank(table["env"].iat[i]),
                                                     widths.iat[i]))
    return table.iloc[order].reset_index(drop=True)


# Words and display --------------------------------------------------------------------------------

def _factor_text(factor: float) -> str:
    return f"{factor:,.0f}x" if factor >= 10 else f"{factor:.2f}x"


def factor_cell(factor: float) -> str:
    """A compression factor as a reader meets it: ``336x``, ``4.0x``; empty when missing."""
    if factor is None or not math.isfinite(float(factor)):
        return ""
    return f"{factor:,.0f}x" if factor >= 10 else f"{factor:.1f}x"


def size_cell(n_bytes: float) -> str:
    """Bytes in kilobytes (1 kB = 1000 bytes): ``276.5 kB``, ``4.25 kB``, ``0.304 kB``.

    Three significant digits or more (to the byte below 10 kB); empty when missing.
    """
    if n_bytes is None or not math.isfinite(float(n_bytes)):
        return ""
    kb = float(n_bytes) / 1000.0
    decimals = 1 if kb >= 10 else 2 if kb >= 1 else 3
    return f"{kb:,.{decimals}f} kB"


def percent_cell(estimate: float, low: float = math.nan, high: float = math.nan) -> str:
    """A percentage with one decimal and its interval: ``96.4% [93.1, 99.7]``."""
    text = interval_cell(estimate, low, high, "{:.1f}")
    if not text:
        return ""
    head, _, rest = text.partition(" ")
    return f"{head}%" + (f" {rest}" if rest else "")


def seconds_cell(seconds: float, low: float = math.nan, high: float = math.nan,
                 zero: str | None = None) -> str:
    """Seconds with one decimal and their interval: ``32.0 s [19.3, 44.7]``.

    ``zero`` (if given) stands for no time at all.
    """
    if zero is not None and seconds == 0:
        return zero
    text = interval_cell(seconds, low, high, "{:,.1f}")
    if not text:
        return ""
    head, _, rest = text.partition(" ")
    return f"{head} s" + (f" {rest}" if rest else "")


def microseconds_cell(seconds: float) -> str:
    """A time per decision in microseconds, three significant digits or more: ``10.8 µs``."""
    if seconds is None or not math.isfinite(float(seconds)):
        return ""
    us = float(seconds) * 1e6
    decimals = 0 if us >= 100 else 1 if us >= 10 else 2
    return f"{us:,.{decimals}f} µs"


def _count_cell(n: float, none: str = "none") -> str:
    return none if n == 0 else f"{n:,.0f}"


RETURN_HEADING = "return, % of dense [95% CI]"
"""The column of a normalized return with its interval in the chapters' tables."""


def frontier_display(table: pd.DataFrame, keep: float = KEEP) -> pd.DataFrame:
    """A frontier table (or :func:`spec_points`) for a page: every number with its unit.

    Indexed by environment and method family: the model (its spec), its model bytes and whole
    file in kB, its factor against the dense model, its normalized return with the interval over
    seeds, whether it keeps ``keep`` %, the training seeds, and what training it took (environment
    steps, CPU seconds). Points with a timed policy add its time per decision (µs) and the ratio
    to the dense policy's.
    """
    out = pd.DataFrame({
        "environment": table["env"], "method": table["method"], "model": table["spec"],
        "model size": [size_cell(v) for v in table["bytes"]],
        "file size": [size_cell(v) for v in table["file_bytes"]],
        "smaller than dense": [factor_cell(v) for v in table["factor"]],
        RETURN_HEADING: [percent_cell(e, lo, hi) for e, lo, hi in zip(
            table["normalized_return"], table["ci_low"], table["ci_high"], strict=True)],
        f"keeps {keep:g}%": ["yes" if v >= keep else "no" for v in table["normalized_return"]],
        "training seeds": table["n_seeds"],
        "training (environment steps)": [_count_cell(v) for v in table["env_steps"]],
        "training CPU time": [seconds_cell(v, zero="none") for v in table["cpu_seconds"]],
    })
    if "policy_seconds" in table and table["policy_seconds"].notna().any():
        out["policy time per decision"] = [microseconds_cell(v) for v in table["policy_seconds"]]
        out["policy time vs dense"] = [
            "" if pd.isna(v) else f"{v:.2f}x" for v in table["policy_time_ratio"]]
    return out.set_index(["environment", "method"])


def short_markdown(table: pd.DataFrame, keep: float = KEEP) -> str:
    """One bullet per environment: the families none of whose models keeps the return."""
    lines = []
    for env in _envs(table):
        mine = table[table["env"] == env]
        short = mine[~(mine["normalized_return"] >= keep)]
        if short.empty:
            lines.append(f"- **{env}**: every family has a model that keeps {keep:g}%.")
            continue
        names = "; ".join(f"{r.method} (best `{r.spec}`: {r.normalized_return:.1f}%)"
                          for r in short.itertuples(index=False))
        lines.append(f"- **{env}**: {names}.")
    return "\n".join(lines)


def distill_cost_display(costs: pd.DataFrame) -> pd.DataFrame:
    """A :func:`distill_cost_table` for a page, indexed by environment and student.

    Steps as counts, CPU and wall times in seconds (the CPU time per distillation with its
    interval over seeds, and the longest of any one).
    """
    out = pd.DataFrame({
        "environment": costs["env"],
        "student (hidden units)": costs["student"].map(lambda s: s.replace("x", " x ")),
        "distillations": costs["distillations"],
        "environment steps": [f"{v:,.0f}" for v in costs["env_steps"]],
        "gradient steps": [f"{v:,.0f}" for v in costs["gradient_steps"]],
        "CPU time per distillation [95% CI]": [seconds_cell(e, lo, hi) for e, lo, hi in zip(
            costs["cpu_seconds"], costs["ci_low"], costs["ci_high"], strict=True)],
        "longest CPU time": [seconds_cell(v) for v in costs["max_cpu_seconds"]],
        "wall-clock time": [seconds_cell(v) for v in costs["wall_seconds"]],
    })
    return out.set_index(["environment", "student (hidden units)"])


def sweeps_note(results: ChapterResults) -> str:
    """A Markdown list of a chapter's sweeps (its own and its parts').

    Each bullet: the sweep's size and settings, and what this execution ran of it.
    """
    lines = []
    for sweep, run in [(results.sweep, results.run), *results.parts]:
        seeds = sorted({int(Path(name).name.rsplit("__", 1)[-1]) for name in sweep.checkpoints})
        tuned = [s for s in sweep.finetune_steps if s]
        how = (f"fine-tuned for {', '.join(f'{s:,}' for s in tuned)} environment steps" if tuned
               else "not fine-tuned")
        lines.append(
            f"- `{sweep.path.name}`: {len(sweep.checkpoints)} checkpoints (training seeds "
            f"{', '.join(map(str, seeds))}) x {len(sweep.specs)} specs, {how}, "
            f"{sweep.episodes} evaluation episodes per job: {run.jobs_total} jobs. This "
            f"execution found {run.jobs_skipped} in the store and ran {run.jobs_run} "
            f"({run.seconds:.0f} s, {run.workers} workers).")
    return "This chapter's sweeps:\n\n" + "\n".join(lines)


def target_display(targets: pd.DataFrame, keep: float = KEEP) -> pd.DataFrame:
    """A :func:`target_table` for a page, indexed by environment.

    Sizes in kB, factors as ``336x``, the normalized return in %, each target with whether it is
    met.
    """
    out = pd.DataFrame({
        "environment": targets["env"],
        f"smallest model keeping {keep:g}%": [s if isinstance(s, str) else "none"
                                              for s in targets["spec"]],
        "method": targets["method"].fillna(""),
        "model size": [size_cell(v) for v in targets["bytes"]],
        "smaller than dense": [factor_cell(v) for v in targets["factor"]],
        "return, % of dense": [percent_cell(v) for v in targets["normalized_return"]],
        "target": [f"{factor_cell(t)}: {_met(m)}" for t, m in zip(
            targets["target"], targets["target_met"], strict=True)],
        "stretch target": [f"{factor_cell(t)}: {_met(m)}" for t, m in zip(
            targets["stretch"], targets["stretch_met"], strict=True)],
    })
    return out.set_index("environment")


def target_markdown(targets: pd.DataFrame, keep: float = KEEP) -> str:
    """One bullet per environment: the smallest model that keeps the return against the targets."""
    lines = []
    for row in targets.itertuples(index=False):
        goal = (f"the target ({factor_cell(row.target)}) is **{_met(row.target_met)}**, the "
                f"stretch target ({factor_cell(row.stretch)}) is **{_met(row.stretch_met)}**")
        if row.spec is None:
            lines.append(f"- **{row.env}**: no compressed model keeps {keep:g}% of the dense "
                         f"agent's normalized return; {goal}.")
            continue
        lines.append(f"- **{row.env}**: the smallest model that keeps at least {keep:g}% is "
                     f"`{row.spec}` ({row.method}): {size_cell(row.bytes)} of model bytes, "
                     f"{factor_cell(row.factor)} smaller than the dense float32 model, at "
                     f"{row.normalized_return:.1f}% normalized return; {goal}.")
    return "\n".join(lines)


def _met(met: bool) -> str:
    return "met" if met else "not met"


def gain_markdown(gains: pd.DataFrame, keep: float = KEEP) -> str:
    """One bullet per environment: distillation's best factor over the poster's best."""
    lines = []
    for row in gains.itertuples(index=False):
        poster = ("none of the poster's methods keeps the return" if row.poster_spec is None
                  else f"the poster's methods reach {factor_cell(row.poster_factor)} "
                       f"(`{row.poster_spec}`, {row.poster_method})")
        student = ("no distilled student keeps the return" if row.distill_spec is None
                   else f"a distilled student reaches {factor_cell(row.distill_factor)} "
                        f"(`{row.distill_spec}`)")
        ratio = "" if math.isnan(row.gain) else f": **{row.gain:,.1f} times smaller**"
        lines.append(f"- **{row.env}**: keeping {keep:g}% of the return, {poster}; {student}"
                     f"{ratio}.")
    return "\n".join(lines)


def distill_cost_markdown(costs: pd.DataFrame, target: float = DISTILL_CPU_TARGET) -> str:
    """One bullet per environment: the longest distillation against the CPU-seconds target."""
    lines = []
    for env, mine in costs.groupby("env", sort=False):
        longest = float(mine["max_cpu_seconds"].max())
        count = int(mine["distillations"].sum())
        mean = float((mine["cpu_seconds"] * mine["distillations"]).sum() / count)
        lines.append(f"- **{env}**: the longest of {count} distillations took {longest:,.1f} CPU "
                     f"seconds (mean {mean:,.1f}); the target (at most {target:g} CPU seconds on "
                     f"one core per seed) is **{_met(longest <= target)}**.")
    return "\n".join(lines) if lines else "No distillation in these results."


def bytes_table(frame: pd.DataFrame, *, trained: bool = False) -> pd.DataFrame:
    """Model and file bytes of each model, one column per environment and size.

    Args:
        frame: the tidy frame.
        trained: keep the models made by training (distilled or fine-tuned) too; by default only
            the compressions of the trained agents themselves, whose files are the same on every
            machine.

    Returns:
        A frame indexed by ``spec``, with columns ``(env, model bytes)``, ``(env, file bytes)``
        and ``(env, factor)``.
    """
    models = frame[frame["spec"] != RANDOM_POLICY]
    if not trained:
        models = models[~models["finetuned"].astype(bool)
                        & ~models["spec"].map(lambda s: any(isinstance(step, DistillSpec)
                                                            for step in parse_spec(s)))]
    sizes = pd.concat([_largest(models, "model_bytes").rename("model bytes"),
                       _largest(models, "bytes").rename("file bytes")], axis=1)
    sizes = sizes.reset_index()
    dense = sizes[sizes["spec"] == "dense"].set_index("env")["model bytes"]
    columns: dict = {}
    specs: list[str] = []
    for env in sorted(sizes["env"].unique(), key=_env_rank):
        mine = sizes[sizes["env"] == env].sort_values(["model bytes", "spec"], ascending=[False,
                                                                                          True])
        specs += [s for s in mine["spec"] if s not in specs]
        mine = mine.drop_duplicates("spec").set_index("spec")
        columns[(env, "model bytes")] = {s: f"{v:,.0f}" for s, v in mine["model bytes"].items()}
        columns[(env, "file bytes")] = {s: f"{v:,.0f}" for s, v in mine["file bytes"].items()}
        columns[(env, "factor")] = {s: _factor_text(dense.get(env, math.nan) / v)
                                    for s, v in mine["model bytes"].items()}
    out = pd.DataFrame(columns).reindex(specs).fillna("")
    out.index.name = "spec"
    return out


# The figure ---------------------------------------------------------------------------------------

FIGURE_HEIGHT_IN = 7.6
"""Height (inches) of :func:`frontier_panels`: three rows of about two inches and the legend."""


def is_beyond_family(family: str) -> bool:
    """Whether a family goes beyond the poster without distilling: fewer bits, QAT, gradual."""
    return family not in ("dense", RANDOM_POLICY) and not is_poster_family(family) \
        and not is_distill_family(family)


PANELS = (("The poster's methods: pruning, rank reduction, int8", is_poster_family),
          ("Fewer bits, quantization-aware training, gradual pruning", is_beyond_family),
          ("Distilled students, alone and quantized", is_distill_family))
"""The rows of :func:`frontier_panels`: a title and which families it shows."""

def is_reference_label(label: str) -> bool:
    """Whether a legend entry of :func:`frontier_figure` is a reference, not a family.

    The references are the dense star, the ring, the ``keep`` line and the target sizes;
    :func:`frontier_panels` gives them one legend below its rows.
    """
    return (label == "dense" or label.startswith("smallest that keeps")
            or label.endswith(("smaller than dense", "% of dense")))


def bytes_tick(value: float, _position: float | None = None) -> str:
    """A tick label of a bytes axis: ``500 B``, ``2 kB``, ``100 kB``, ``1 MB``."""
    for unit, size in (("MB", 1e6), ("kB", 1e3)):
        if value >= size:
            return f"{value / size:g} {unit}"
    return f"{value:g} B"


def set_bytes_axis(ax: Axes, low: float, high: float) -> None:
    """A log x axis from ``low`` to ``high`` bytes with labelled ticks that never collide.

    Ticks at every power of ten, or at 1, 2 and 5 times them when the axis spans less than two
    decades; minor ticks unlabelled. The limits are set, so no tick outside them is drawn.
    """
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    ax.set_xlim(low, high)
    subs = (1.0,) if math.log10(high / low) >= 2 else (1.0, 2.0, 5.0)
    ax.xaxis.set_major_locator(LogLocator(base=10.0, subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(bytes_tick))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _bytes_limits(points: pd.DataFrame, env: str,
                  targets: dict[str, FactorTarget]) -> tuple[float, float]:
    sizes = list(points["bytes"].astype(float))
    dense = points[points["method"] == "dense"]
    goal = targets.get(env)
    if goal is not None and len(dense):
        sizes += [float(dense["bytes"].iat[0]) / f for f in (goal.target, goal.stretch)]
    if not sizes:
        return 100.0, 1e6
    return min(sizes) / 1.6, max(sizes) * 1.6


def frontier_figure(frame: pd.DataFrame, env: str, ax: Axes, *, keep: float = KEEP,
                    ymin: float = -25.0, intervals: IntervalSettings = DEFAULT_INTERVALS,
                    targets: dict[str, FactorTarget] = FACTOR_TARGETS,
                    title: str | None = None, families=None, legend: bool = True) -> pd.DataFrame:
    """Normalized return against model bytes (log scale) for the models of one environment.

    One colour and marker of the book's palette per method family (in :data:`FAMILY_ORDER`), error
    bars the 95% t intervals over seeds; the dense model is a black star, the dashed line is
    ``keep`` % and the dotted vertical lines are the sizes the issue's target and stretch factors
    ask for. The model of each family that :func:`frontier_table` picks, if it keeps the return,
    is ringed in black. Models whose mean lies below ``ymin`` are drawn hollow on the bottom edge,
    without error bars.

    Args:
        frame: the tidy frame (see :func:`spec_points`).
        env: the environment.
        ax: the axes to draw into.
        keep: the normalized return (%) of the dashed line.
        ymin: the bottom of the y axis (%).
        intervals: the interval over seeds.
        targets: the factor targets (vertical lines), per environment.
        title: axes title (default the environment).
        families: which families to draw (a predicate on the family's name); all by default.
        legend: draw a legend to the right of the axes (outside the data).

    Returns:
        The points drawn (:data:`POINT_COLUMNS`), the dense model always among them.
    """
    mine = frame[frame["env"] == env]
    points = spec_points(mine, intervals) if len(mine) else pd.DataFrame(
        columns=list(POINT_COLUMNS))
    if families is not None:
        points = points[(points["method"] == "dense") | points["method"].map(families)]
    picks = {(r.method, r.spec) for r in frontier_table(mine, keep, intervals).itertuples()
             if r.normalized_return >= keep} if len(points) else set()
    top, ringed_once = 105.0, False
    shown = [f for f in points["method"].unique() if f != "dense"]
    for i, family in enumerate(shown):
        group = points[points["method"] == family]
        color, symbol = colour(i), marker(i)
        low = group["normalized_return"] < ymin
        above = group[~low]
        ax.errorbar(above["bytes"], above["normalized_return"], yerr=error_bars(
            above.rename(columns={"normalized_return": "estimate"})), fmt=symbol, ms=5,
            color=color, capsize=2, elinewidth=0.8, label=family)
        if len(above):
            top = max(top, float(np.nanmax(above[["normalized_return", "ci_high"]])) + 3.0)
        if low.any():
            ax.plot(group.loc[low, "bytes"], np.full(int(low.sum()), ymin), symbol, ms=5,
                    mfc="white", color=color, clip_on=False)
        ringed = group[[(family, s) in picks for s in group["spec"]]]
        if len(ringed):
            ax.plot(ringed["bytes"], ringed["normalized_return"], "o", ms=12, mfc="none",
                    mec="k", mew=0.9, label=None if ringed_once else
                    f"smallest that keeps {keep:g}%")
            ringed_once = True
    dense = points[points["method"] == "dense"]
    if len(dense):
        ax.plot(dense["bytes"], dense["normalized_return"], "*", ms=12, color="k", zorder=5,
                label="dense")
    ax.axhline(keep, color="0.3", ls="--", lw=0.9, label=f"{keep:g}% of dense")
    goal = targets.get(env)
    if goal is not None and len(dense):
        for factor, style in ((goal.target, ":"), (goal.stretch, (0, (1, 3)))):
            ax.axvline(float(dense["bytes"].iat[0]) / factor, color="0.4", ls=style, lw=1.0,
                       label=f"{_factor_text(factor)} smaller than dense")
    set_bytes_axis(ax, *_bytes_limits(points, env, targets))
    ax.set_ylim(ymin - 4.0, top)
    finish_axes(ax, "Model bytes (log scale)", "Return (% of dense)", title or env,
                empty=points.empty, legend=False)
    if legend and not points.empty:
        handles, labels = ax.get_legend_handles_labels()
        order = sorted(range(len(labels)), key=lambda k: labels[k] != "dense")
        ax.legend([handles[k] for k in order], [labels[k] for k in order], loc="center left",
                  bbox_to_anchor=(1.01, 0.5), frameon=False)
    return points


def frontier_panels(frame: pd.DataFrame, env: str, *, keep: float = KEEP, ymin: float = -25.0,
                    intervals: IntervalSettings = DEFAULT_INTERVALS,
                    targets: dict[str, FactorTarget] = FACTOR_TARGETS) -> Figure:
    """The frontier of one environment as a page-wide figure in the book style.

    One row per group of families (:data:`PANELS`), sharing the bytes axis and the return range.

    Each row has the dense star, the ``keep`` line and the target sizes, and its families'
    legend beside it; the reference lines have one legend below the rows.

    Returns:
        The figure (:data:`~rlcomp.analysis.plotting.PAGE_WIDTH_IN` wide); pass it through
        :func:`~rlcomp.analysis.plotting.readable` before showing it, and close it
        (``plt.close``) after.
    """
    import matplotlib.pyplot as plt

    with book_style():
        fig = plt.figure(figsize=(PAGE_WIDTH_IN, FIGURE_HEIGHT_IN), layout="constrained")
        axes = fig.subplots(len(PANELS), 1, sharex=True)
        references: dict[str, object] = {}
        tops = []
        for ax, (name, which) in zip(axes, PANELS, strict=True):
            frontier_figure(frame, env, ax, keep=keep, ymin=ymin, intervals=intervals,
                            targets=targets, title=name, families=which, legend=False)
            tops.append(ax.get_ylim()[1])
            families = []
            for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
                if is_reference_label(label):
                    references.setdefault(label, handle)
                else:
                    families.append((handle, label))
            if families:
                ax.legend(*zip(*families, strict=True), loc="center left",
                          bbox_to_anchor=(1.01, 0.5), frameon=False)
            if ax is not axes[-1]:
                ax.set_xlabel("")
        for ax in axes:
            ax.set_ylim(ymin - 4.0, max(tops))
        if references:
            fig.legend(list(references.values()), list(references), loc="outside lower center",
                       ncols=3, frameon=False)
        fig.suptitle(env)
    return fig
