"""Which rows of the tidy results frame a figure, table or claim uses, and their aggregation.

The tidy frame is :meth:`rlcomp.experiments.store.ResultStore.load`'s: one row per job and metric.
The functions here pick rows (one environment, some methods, naive or fine-tuned, one metric),
derive rows (a metric in % of the dense model's; evaluation CPU seconds), order specs, and
aggregate over training seeds with the study's default interval (:func:`over_seeds`). The sets
of methods and models that several figures, tables and claims compare are named here too.
Nothing here draws or formats: figures are in :mod:`rlcomp.analysis.figures` and
:mod:`rlcomp.analysis.figures_bars`, text tables in :mod:`rlcomp.analysis.tables`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict

import pandas as pd

from rlcomp.stats import IntervalSettings, aggregate

DEFAULT_INTERVALS = IntervalSettings()
"""Mean over training seeds with a 95% t interval over the per-seed means."""

GRID_METHODS = ("dense", "prune", "lowrank", "lowrank+prune", "prune+lowrank")
"""Methods of the pruned x rank-reduced grid (Fig 5 to 9): global pruning, low rank, both."""

QUANT_MODELS = {"dense": "dense", "int8": "quant=8", "pruned 50% + int8": "prune=0.5+quant=8",
                "low rank 50% + int8": "lowrank=0.5+quant=8", "low rank 75%": "lowrank=0.75"}
"""The models of the quantization chapter: legend name -> canonical spec text as stored."""

METHOD_ORDER = ("dense", "prune", "prune[layer]", "prune[structured]", "lowrank",
                "lowrank[keep_io]", "quant", "quant[qat]")
"""The order of specs' methods in tables and bars (:func:`spec_order`)."""


def resolve_env(frame: pd.DataFrame, env: str | None) -> str | None:
    """``env``, or the frame's only environment when ``env`` is None (None for an empty frame).

    Raises:
        ValueError: ``env`` is None and the frame holds several environments.
    """
    if env is not None:
        return env
    envs = sorted(frame["env"].unique())
    if len(envs) > 1:
        raise ValueError(f"the frame holds several environments ({', '.join(envs)}); pass env=")
    return envs[0] if envs else None


def select(frame: pd.DataFrame, *, env: str | None = None, methods: Sequence[str] | None = None,
           finetuned: bool | None = False, metric: str | None = None) -> pd.DataFrame:
    """The rows of one environment, some methods, naive or fine-tuned, and one metric.

    Args:
        frame: the tidy frame.
        env: the environment (see :func:`resolve_env`).
        methods: keep these ``method`` values; None keeps all.
        finetuned: keep naive (False) or fine-tuned (True) results, and the dense model's naive
            rows either way; None keeps all.
        metric: keep this metric; None keeps all.
    """
    rows = frame[frame["env"] == resolve_env(frame, env)]
    if metric is not None:
        rows = rows[rows["metric"] == metric]
    if methods is not None:
        rows = rows[rows["method"].isin(list(methods))]
    if finetuned is not None:
        naive_dense = (rows["method"] == "dense") & ~rows["finetuned"]
        rows = rows[(rows["finetuned"] == finetuned) | naive_dense]
    return rows


def relative_to_dense(frame: pd.DataFrame, metric: str,
                      seed_column: str = "train_seed") -> pd.DataFrame:
    """The rows of ``metric`` with each value as a percentage of its seed's dense value.

    The dense value of a training seed is the mean of the naive dense rows of that environment
    and seed; rows of a seed without dense rows are dropped. The ratio is taken per seed, before
    any aggregation over seeds.
    """
    rows = frame[frame["metric"] == metric]
    dense = rows[(rows["method"] == "dense") & ~rows["finetuned"]]
    base = dense.groupby(["env", seed_column], as_index=False)["value"].mean()
    joined = rows.merge(base.rename(columns={"value": "_dense"}), on=["env", seed_column])
    return joined.assign(value=100.0 * joined["value"] / joined["_dense"]).drop(columns="_dense")


def over_seeds(rows: pd.DataFrame, by: list[str], metric: str | None,
               intervals: IntervalSettings = DEFAULT_INTERVALS, scale: float = 1.0) -> pd.DataFrame:
    """``metric`` aggregated over training seeds per ``by`` group, with its interval.

    :func:`rlcomp.stats.aggregate` with the settings of ``intervals``; ``scale`` multiplies the
    estimate and its interval (e.g. ``1e-6`` for bytes -> MB). Columns: ``by``, then
    ``estimate, ci_low, ci_high, n_seeds``.
    """
    table = aggregate(rows, by, metric, **asdict(intervals))
    if scale != 1.0:
        table[["estimate", "ci_low", "ci_high"]] *= scale
    return table


def spec_order(frame: pd.DataFrame) -> list[str]:
    """The specs of ``frame`` by :data:`METHOD_ORDER` (others after), then by level, then text."""
    specs = frame.drop_duplicates("spec")[["spec", "method", "level"]]
    rank = {m: i for i, m in enumerate(METHOD_ORDER)}
    keys = [(rank.get(m, len(rank)), m, -math.inf if pd.isna(lv) else float(lv), s)
            for s, m, lv in zip(specs["spec"], specs["method"], specs["level"], strict=True)]
    return [k[-1] for k in sorted(keys)]


def with_eval_cpu_seconds(rows: pd.DataFrame) -> pd.DataFrame:
    """``rows`` plus one ``eval_cpu_seconds`` row per job (CPU seconds per step x env steps)."""
    per_step = rows[rows["metric"] == "cpu_seconds_per_step"].set_index("key")
    steps = rows[rows["metric"] == "env_steps"].set_index("key")["value"]
    derived = per_step.assign(metric="eval_cpu_seconds",
                              value=per_step["value"] * steps.reindex(per_step.index))
    return pd.concat([rows, derived.reset_index()[rows.columns]], ignore_index=True)


def without_finetuned_dense(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` without the dense model's fine-tuned rows (the control of the fine-tuning sweep).

    :func:`rlcomp.analysis.figures.naive_vs_finetuned` draws every dense row as the dense star, so
    a fine-tuned dense control would appear as a second star; this keeps only the naive dense
    agent there (the control stays in :func:`rlcomp.analysis.tables.finetune_table`).
    """
    return frame[~((frame["method"] == "dense") & frame["finetuned"])]


def grid_over_seeds(frame: pd.DataFrame, *, env: str | None, methods: Sequence[str],
                    finetuned: bool, metric: str,
                    intervals: IntervalSettings = DEFAULT_INTERVALS,
                    ) -> tuple[str | None, pd.DataFrame]:
    """The environment meant by ``env`` and ``metric`` over seeds per (prune, lowrank) pair.

    What the poster's grid figures (Fig 5, 6, 8) draw, as lines or as a heatmap.
    """
    env = resolve_env(frame, env)
    rows = select(frame, env=env, methods=methods, finetuned=finetuned, metric=metric)
    return env, over_seeds(rows, ["prune", "lowrank"], None, intervals)
