"""Small text tables and notes for the chapters: what was run, and the numbers behind a figure."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from rlcomp.analysis.figures import interval_cell
from rlcomp.envs import CHAOTIC_ENVS
from rlcomp.experiments.driver import SweepSummary
from rlcomp.experiments.sweep import Sweep

LEVEL_WORDS = {"prune": "pruned", "lowrank": "rank reduced"}
"""How a level column reads when its levels name a table's columns."""


def sweep_note(sweep: Sweep, run: SweepSummary) -> str:
    """One Markdown paragraph: the sweep's size and settings, and what this execution ran."""
    seeds = sorted({int(name.rsplit("__", 1)[-1]) for name in sweep.checkpoints})
    finetune = [s for s in sweep.finetune_steps if s]
    budget = f"; fine-tuning budgets {', '.join(f'{s:,}' for s in finetune)} steps" if finetune \
        else ""
    return (f"This chapter's sweep: {len(sweep.checkpoints)} checkpoints (training seeds "
            f"{', '.join(map(str, seeds))}) x {len(sweep.specs)} compression specs x "
            f"{len(sweep.eval_seeds)} evaluation seed(s){budget}, {sweep.episodes} evaluation "
            f"episodes per job: {run.jobs_total} jobs. This execution found "
            f"{run.jobs_skipped} in the store and ran {run.jobs_run} "
            f"({run.seconds:.0f} s, {run.workers} workers).")


def wide_table(tables: Mapping[str, pd.DataFrame], level: str, column: str = "variant",
               decimals: int = 1) -> pd.DataFrame:
    """Figure tables side by side: one row per level (in %), one column per env and line.

    Args:
        tables: environment -> the table a figure function returned (``column``, ``level``,
            ``estimate``, ``ci_low``, ``ci_high``).
        level: the level column (``prune`` or ``lowrank``).
        column: the column naming the lines.
        decimals: decimals of the numbers.
    """
    parts = []
    for env, table in tables.items():
        if table.empty:
            continue
        cells = table.assign(
            text=[interval_cell(e, lo, hi, f"{{:.{decimals}f}}")
                  for e, lo, hi in zip(table["estimate"], table["ci_low"], table["ci_high"],
                                       strict=True)],
            pct=(100 * table[level]).round(1))
        if column in LEVEL_WORDS:
            cells[column] = [f"{100 * v:g}% {LEVEL_WORDS[column]}" for v in cells[column]]
        wide = cells.pivot_table(index="pct", columns=column, values="text", aggfunc="first",
                                 sort=False)
        wide.columns = pd.MultiIndex.from_product([[env], list(wide.columns)])
        parts.append(wide)
    if not parts:
        return pd.DataFrame()
    out = pd.concat(parts, axis=1).sort_index().fillna("")
    out.index.name = f"% {level}"
    return out


def portable(table: pd.DataFrame, chaotic: Sequence[str] = CHAOTIC_ENVS) -> pd.DataFrame:
    """The part of a chapter table that is the same on every x86-64 CPU (``chaotic`` envs left out).

    The returns of :data:`~rlcomp.envs.CHAOTIC_ENVS` (HalfCheetah) are the same from run to run on
    one machine but not across CPU vendors, so the regression baseline's checked cells show the
    other environments only (``tests/test_portable_regression.py`` checks the chaotic ones'
    policies tightly and their returns within a measured band).

    Args:
        table: environments as the first level of its columns (the chapters' wide tables) or as an
            index level named ``env`` (the setup chapter's tables).
        chaotic: the environments to leave out.

    Raises:
        ValueError: if the table names its environments neither way.
    """
    if "env" in (table.index.names or []):
        envs = table.index.get_level_values("env")
        return table[~envs.isin(list(chaotic))]
    columns = table.columns
    if isinstance(columns, pd.MultiIndex) or table.empty:
        envs = columns.get_level_values(0) if len(columns) else pd.Index([])
        return table.loc[:, ~envs.isin(list(chaotic))]
    raise ValueError("portable needs environments as the first column level or an 'env' index")
