"""Summary statistics of per-run scores."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def iqm(values: Sequence[float] | np.ndarray) -> float:
    """Interquartile mean: the mean left after cutting ``int(0.25 * n)`` values from each end.

    This is ``scipy.stats.trim_mean(values, 0.25)``, the convention of rliable
    (Agarwal et al., 2021).
    """
    x = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if x.size == 0:
        raise ValueError("iqm of an empty sequence")
    cut = int(0.25 * x.size)
    return float(x[cut : x.size - cut].mean())


def summarize_returns(returns: Sequence[float]) -> dict[str, float | None]:
    """Mean, standard deviation (population), IQM, min and max of episodic returns.

    The standard error of the mean is ``None`` for a single return (undefined; JSON has no NaN).
    """
    x = np.asarray(returns, dtype=np.float64)
    if x.size == 0:
        raise ValueError("no returns to summarize")
    return {
        "mean_return": float(x.mean()),
        "std_return": float(x.std()),
        "iqm_return": iqm(x),
        "min_return": float(x.min()),
        "max_return": float(x.max()),
        "sem_return": float(x.std(ddof=1) / math.sqrt(x.size)) if x.size > 1 else None,
    }
