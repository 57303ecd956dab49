"""Beyond the poster (chapter 06): the smallest policy file that keeps the return, per method.

Every compressed model of a sweep is a point: its **model bytes** (the ``model_bytes`` metric, the
compressed file's tensor payload: everything the policy needs, as stored, without the safetensors
header) against its **normalized return**, ``100 * (x - random) / (dense - random)`` per
environment and training seed (:func:`rlcomp.analysis.claims.normalized_returns`), averaged over
seeds with the t interval the verdicts use (:data:`rlcomp.analysis.selection.DEFAULT_INTERVALS`).
:func:`spec_points` makes the points; :func:`frontier_figure` draws them.

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

import matplotlib as mpl
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.lines import Line2D

from rlcomp.analysis.book_data import csv_bytes
from rlcomp.analysis.claims import normalized_returns
from rlcomp.analysis.plotting import error_bars, finish_axes
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
                 "normalized_return", "ci_low", "ci_high", "n_seeds", "env_steps", "cpu_seconds")
"""The columns of :func:`spec_points`: the frontier table's, and whether a model was fine-tuned."""


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


def frontier_display(table: pd.DataFrame, keep: float = KEEP) -> pd.DataFrame:
    """A frontier table formatted for a page: one row per environment and family.

    Adds ``keeps {keep}%`` (``yes`` or ``no``) so that a family that falls short reads as such.
    """
    out = pd.DataFrame({
        "env": table["env"], "method": table["method"], "spec": table["spec"],
        "model bytes": [f"{v:,}" for v in table["bytes"]],
        "file bytes": [f"{v:,}" for v in table["file_bytes"]],
        "factor": [_factor_text(v) for v in table["factor"]],
        "normalized return (%)": [interval_cell(e, lo, hi, "{:.1f}") for e, lo, hi in zip(
            table["normalized_return"], table["ci_low"], table["ci_high"], strict=True)],
        f"keeps {keep:g}%": ["yes" if v >= keep else "no" for v in table["normalized_return"]],
        "seeds": table["n_seeds"],
        "training env steps": [f"{v:,}" for v in table["env_steps"]],
        "training CPU s": [f"{v:,.1f}" for v in table["cpu_seconds"]],
    })
    return out.set_index(["env", "method"])


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
    """A :func:`distill_cost_table` formatted for a page, indexed by environment and student."""
    out = pd.DataFrame({
        "env": costs["env"], "student": costs["student"],
        "distillations": costs["distillations"],
        "env steps": [f"{v:,.0f}" for v in costs["env_steps"]],
        "gradient steps": [f"{v:,.0f}" for v in costs["gradient_steps"]],
        "CPU s": [interval_cell(e, lo, hi, "{:.1f}") for e, lo, hi in zip(
            costs["cpu_seconds"], costs["ci_low"], costs["ci_high"], strict=True)],
        "max CPU s": [f"{v:.1f}" for v in costs["max_cpu_seconds"]],
        "wall s": [f"{v:.1f}" for v in costs["wall_seconds"]],
    })
    return out.set_index(["env", "student"])


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
    """A :func:`target_table` formatted for a page, indexed by environment."""
    out = pd.DataFrame({
        "env": targets["env"],
        f"smallest model keeping {keep:g}%": [s if isinstance(s, str) else "none"
                                              for s in targets["spec"]],
        "method": targets["method"].fillna(""),
        "model bytes": ["" if math.isnan(v) else f"{v:,.0f}" for v in targets["bytes"]],
        "factor": ["" if math.isnan(v) else _factor_text(v) for v in targets["factor"]],
        "normalized return (%)": ["" if math.isnan(v) else f"{v:.1f}"
                                  for v in targets["normalized_return"]],
        "target": [f"{_factor_text(t)}: {_met(m)}" for t, m in zip(
            targets["target"], targets["target_met"], strict=True)],
        "stretch": [f"{_factor_text(t)}: {_met(m)}" for t, m in zip(
            targets["stretch"], targets["stretch_met"], strict=True)],
    })
    return out.set_index("env")


def target_markdown(targets: pd.DataFrame, keep: float = KEEP) -> str:
    """One bullet per environment: the smallest model that keeps the return against the targets."""
    lines = []
    for row in targets.itertuples(index=False):
        goal = (f"the target ({_factor_text(row.target)}) is **{_met(row.target_met)}**, the "
                f"stretch target ({_factor_text(row.stretch)}) is **{_met(row.stretch_met)}**")
        if row.spec is None:
            lines.append(f"- **{row.env}**: no compressed model keeps {keep:g}% of the dense "
                         f"agent's normalized return; {goal}.")
            continue
        lines.append(f"- **{row.env}**: the smallest model that keeps at least {keep:g}% is "
                     f"`{row.spec}` ({row.method}): {row.bytes:,.0f} model bytes, "
                     f"{_factor_text(row.factor)} smaller than the dense float32 model, at "
                     f"{row.normalized_return:.1f}% normalized return; {goal}.")
    return "\n".join(lines)


def _met(met: bool) -> str:
    return "met" if met else "not met"


def gain_markdown(gains: pd.DataFrame, keep: float = KEEP) -> str:
    """One bullet per environment: distillation's best factor over the poster's best."""
    lines = []
    for row in gains.itertuples(index=False):
        poster = ("none of the poster's methods keeps the return" if row.poster_spec is None
                  else f"the poster's methods reach {_factor_text(row.poster_factor)} "
                       f"(`{row.poster_spec}`, {row.poster_method})")
        student = ("no distilled student keeps the return" if row.distill_spec is None
                   else f"a distilled student reaches {_factor_text(row.distill_factor)} "
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

POSTER_MARKER, BEYOND_MARKER, DISTILL_MARKER = "o", "s", "D"
"""Markers of the poster's families, of the other compressions, and of distilled students."""

_TAB20 = mpl.colormaps["tab20"].colors
FAMILY_COLORS = {
    "prune": _TAB20[0], "prune+int8": _TAB20[18], "prune, fine-tuned": _TAB20[1],
    "lowrank": _TAB20[2], "lowrank+int8": _TAB20[16], "int8": _TAB20[4],
    "int4": _TAB20[8], "int4 QAT": _TAB20[9], "int2": _TAB20[10], "int2 QAT": _TAB20[11],
    "gradual prune": _TAB20[12],
    "distill": "#d62728", "distill+int8": "#ff9896", "distill+int4": "#7f0000",
    "distill+int2": "#e377c2",
}
"""The colour of each family in :func:`frontier_figure` (related families in related colours,
distilled students in reds); other families are grey."""


def _family_color(family: str) -> tuple | str:
    return FAMILY_COLORS.get(family, "0.5")


def _marker(family: str) -> str:
    if is_distill_family(family):
        return DISTILL_MARKER
    return POSTER_MARKER if is_poster_family(family) else BEYOND_MARKER


def frontier_figure(frame: pd.DataFrame, env: str, ax: Axes, *, keep: float = KEEP,
                    ymin: float = -25.0, intervals: IntervalSettings = DEFAULT_INTERVALS,
                    targets: dict[str, FactorTarget] = FACTOR_TARGETS,
                    title: str | None = None) -> pd.DataFrame:
    """Normalized return against model bytes (log scale) for every model of one environment.

    One colour per method family (circles: the poster's methods; squares: fewer bits, gradual
    pruning, QAT; diamonds: distilled students), error bars the 95% t intervals over seeds; the
    dense model is a black star, the dashed line is ``keep`` % and the dotted vertical lines are
    the sizes the issue's target and stretch factors ask for. The model of each family that
    :func:`frontier_table` picks, if it keeps the return, is ringed in black. Models whose mean
    lies below ``ymin`` are drawn on the bottom edge as downward triangles, without error bars.

    Args:
        frame: the tidy frame (see :func:`spec_points`).
        env: the environment.
        ax: the axes to draw into.
        keep: the normalized return (%) of the dashed line.
        ymin: the bottom of the y axis (%).
        intervals: the interval over seeds.
        targets: the factor targets (vertical lines), per environment.
        title: axes title (default the environment).

    Returns:
        The points drawn (:data:`POINT_COLUMNS`).
    """
    mine = frame[frame["env"] == env]
    points = spec_points(mine, intervals) if len(mine) else pd.DataFrame(
        columns=list(POINT_COLUMNS))
    handles = []
    picks = {(r.method, r.spec) for r in frontier_table(mine, keep, intervals).itertuples()
             if r.normalized_return >= keep} if len(points) else set()
    top = 105.0
    for family, group in points.groupby("method", sort=False):
        color, marker = _family_color(family), _marker(family)
        if family == "dense":
            ax.plot(group["bytes"], group["normalized_return"], "*", ms=12, color="k",
                    zorder=5)
            handles.append(Line2D([], [], marker="*", ls="", ms=10, color="k", label="dense"))
            continue
        low = group["normalized_return"] < ymin
        shown = group[~low]
        if len(shown):
            ax.errorbar(shown["bytes"], shown["normalized_return"], yerr=error_bars(
                shown.rename(columns={"normalized_return": "estimate"})), fmt=marker, ms=5,
                color=color, capsize=2, elinewidth=0.7, alpha=0.9)
            top = max(top, float(np.nanmax(shown["ci_high"])) + 3.0)
        if low.any():
            ax.plot(group.loc[low, "bytes"], np.full(int(low.sum()), ymin), "v", ms=5,
                    color=color, alpha=0.9, clip_on=False)
        ringed = group[[(family, s) in picks for s in group["spec"]]]
        ax.plot(ringed["bytes"], ringed["normalized_return"], "o", ms=11, mfc="none",
                mec="k", mew=0.8)
        handles.append(Line2D([], [], marker=marker, ls="", ms=5, color=color, label=family))
    ax.axhline(keep, color="0.3", ls="--", lw=0.9)
    handles.append(Line2D([], [], color="0.3", ls="--", lw=0.9, label=f"{keep:g}% of dense"))
    dense = points[(points["method"] == "dense")]
    goal = targets.get(env)
    if goal is not None and len(dense):
        for factor, style in ((goal.target, ":"), (goal.stretch, (0, (1, 3)))):
            ax.axvline(float(dense["bytes"].iat[0]) / factor, color="0.5", ls=style, lw=0.9)
            handles.append(Line2D([], [], color="0.5", ls=style, lw=0.9,
                                  label=f"{_factor_text(factor)} smaller than dense"))
    ax.set_xscale("log")
    ax.set_ylim(ymin - 3.0, top)
    finish_axes(ax, "Model bytes (tensor payload of the file, log scale)",
                "Normalized return (% of dense)", title or env, empty=points.empty,
                legend=False)
    if handles and not points.empty:
        ax.legend(handles=handles, fontsize="x-small", loc="center left",
                  bbox_to_anchor=(1.01, 0.5), frameon=False)
    return points
