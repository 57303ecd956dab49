"""Episode redraws of chaotic environments: how often a verdict is reached again."""

import numpy as np
import pandas as pd
import pytest

from rlcomp.analysis.redraws import redraw_agreement

CHAOTIC, CALM = "HalfCheetah-v5", "LunarLander-v3"


def _frame(means: dict[str, tuple[str, float]]) -> pd.DataFrame:
    rows = [{"key": key, "env": env, "metric": "return_mean", "value": value}
            for key, (env, value) in means.items()]
    rows.append({"key": "a", "env": CHAOTIC, "metric": "eval_seconds", "value": 1.0})
    return pd.DataFrame(rows)


def _measure(frames):
    """Per environment: 'confirmed' if the jobs' mean return is above 0, else 'refuted'."""
    frame = pd.concat(frames.values())
    returns = frame[frame["metric"] == "return_mean"].drop_duplicates("key")
    out = []
    for env, group in returns.groupby("env"):
        out.append({"claim": "c", "env": env, "measure": "return",
                    "verdict": "confirmed" if group["value"].mean() > 0 else "refuted"})
    return pd.DataFrame(out)


def test_steady_episodes_always_agree_and_values_are_not_changed():
    returns = {"a": np.full(10, 2.0), "b": np.full(10, -1.0)}
    frame = _frame({"a": (CHAOTIC, 2.0), "b": (CHAOTIC, -1.0), "c": (CALM, -5.0)})
    before = frame.copy()
    table = redraw_agreement({"ch": frame}, returns, _measure, draws=20)
    assert table.set_index("env")["agreement"].to_dict() == {CHAOTIC: 1.0, CALM: 1.0}
    pd.testing.assert_frame_equal(frame, before)


def test_a_verdict_near_its_margin_agrees_in_about_half_the_redraws():
    # Mean exactly 0.05 above the margin 0, episodes of +-1: a redraw lands below about half
    # the time (the redrawn mean's sd is 1/sqrt(400) = 0.05, one sd above the margin: 16% below).
    episodes = np.tile([1.0, -1.0], 200) + 0.05
    returns = {"a": episodes}
    frame = _frame({"a": (CHAOTIC, float(episodes.mean())), "c": (CALM, 1.0)})
    table = redraw_agreement({"ch": frame, "other": frame}, returns, _measure, draws=400, seed=1)
    agreement = table.set_index("env")["agreement"]
    assert agreement[CALM] == 1.0
    assert 0.75 < agreement[CHAOTIC] < 0.92  # the normal approximation says 0.84
    again = redraw_agreement({"ch": frame, "other": frame}, returns, _measure, draws=400, seed=1)
    pd.testing.assert_frame_equal(table, again)


@pytest.mark.parametrize("draws", [0, -1, 1.5, True])
def test_bad_draw_counts_are_refused(draws):
    with pytest.raises(ValueError, match="draws"):
        redraw_agreement({"ch": _frame({"a": (CHAOTIC, 1.0)})}, {"a": np.ones(3)}, _measure,
                         draws=draws)


def test_a_job_without_returns_is_refused():
    with pytest.raises(ValueError, match="no per-episode returns"):
        redraw_agreement({"ch": _frame({"a": (CHAOTIC, 1.0)})}, {}, _measure, draws=2)
