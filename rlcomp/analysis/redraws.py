"""How much each verdict rests on the particular episodes a chaotic environment dealt.

On another CPU a chaotic environment (:data:`~rlcomp.envs.CHAOTIC_ENVS`, HalfCheetah) plays other
episodes from the same policies and seeds: a last-bit difference grows until the trajectory is a
different one. So each job's mean return there is one draw from its policy's distribution of
returns, and a verdict whose interval ends near its margin may move on another machine.
:func:`redraw_agreement` estimates how often: it redraws every chaotic job's episodes (a bootstrap
of its stored per-episode returns, with replacement, the same draw for a job wherever it appears),
measures every claim again, and reports for each verdict the share of redraws that reach the same
verdict.

What it does not redraw: the costs (measured again on any machine anyway), and fine-tuning itself
(another CPU would also fine-tune along another trajectory and end at another model), so for
claims on fine-tuned returns the agreement is an upper bound.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import numpy as np
import pandas as pd

from rlcomp.envs import CHAOTIC_ENVS

KEYS = ["claim", "env", "measure"]
"""The columns that identify a row of the verdict table."""

REDRAWN_METRIC = "return_mean"
"""The metric the return claims read, replaced in each redraw by the redrawn episodes' mean."""


def redraw_agreement(
    frames: Mapping[str, pd.DataFrame],
    returns: Mapping[str, np.ndarray],
    measure: Callable[[Mapping[str, pd.DataFrame]], pd.DataFrame],
    draws: int = 200,
    seed: int = 0,
    envs: tuple[str, ...] = CHAOTIC_ENVS,
) -> pd.DataFrame:
    """Each verdict with the share of episode redraws of ``envs`` that reach it again.

    Args:
        frames: each chapter's tidy results (with the store's ``key`` column).
        returns: per-episode returns of every job of ``envs`` in ``frames``, by job key.
        measure: frames -> verdict table (columns ``claim, env, measure, verdict`` at least),
            e.g. ``lambda f: verdicts_frame(all_claims(f))``.
        draws: redraws, at least 1.
        seed: seed of the redraws.
        envs: the environments whose episodes are redrawn.

    Returns:
        The verdict table measured on ``frames`` with a column ``agreement``: the share of
        redraws giving the same verdict (1.0 for every row of other environments when no claim
        mixes environments).

    Raises:
        ValueError: for ``draws < 1``, or a job of ``envs`` without its returns.
    """
    if isinstance(draws, bool) or not isinstance(draws, int) or draws < 1:
        raise ValueError(f"draws must be an integer >= 1, got {draws!r}")
    keys = sorted({key for frame in frames.values()
                   for key in frame.loc[_redrawn(frame, envs), "key"]})
    missing = [key for key in keys if key not in returns or len(returns[key]) == 0]
    if missing:
        raise ValueError(f"{len(missing)} jobs have no per-episode returns (first: {missing[0]})")
    base = measure(frames).reset_index(drop=True)
    same = np.zeros(len(base))
    rng = np.random.default_rng(seed)
    for _ in range(draws):
        means = {key: float(np.mean(rng.choice(returns[key], size=len(returns[key]))))
                 for key in keys}
        redrawn = {}
        for chapter, frame in frames.items():
            frame = frame.copy()
            rows = _redrawn(frame, envs)
            frame.loc[rows, "value"] = frame.loc[rows, "key"].map(means).to_numpy()
            redrawn[chapter] = frame
        again = measure(redrawn)
        merged = base[KEYS].merge(again[[*KEYS, "verdict"]], on=KEYS, how="left")
        same += (merged["verdict"].to_numpy() == base["verdict"].to_numpy())
    return base.assign(agreement=same / draws)


def _redrawn(frame: pd.DataFrame, envs: tuple[str, ...]) -> pd.Series:
    return frame["env"].isin(envs) & (frame["metric"] == REDRAWN_METRIC)
