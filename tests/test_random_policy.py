"""The random policy: the lower anchor of normalized returns."""

import numpy as np
import pytest

from rlcomp.policy import RandomPolicy
from rlcomp.rollout import evaluate_policy


def test_discrete_actions_are_seeded_and_in_range():
    obs = np.zeros((64, 8), dtype=np.float32)
    first = RandomPolicy(n_actions=4, seed=3).act(obs)
    assert first.shape == (64,) and set(first.tolist()) <= {0, 1, 2, 3}
    assert len(set(first.tolist())) == 4  # 64 draws from 4 actions: all appear
    assert np.array_equal(first, RandomPolicy(n_actions=4, seed=3).act(obs))
    assert not np.array_equal(first, RandomPolicy(n_actions=4, seed=4).act(obs))


def test_continuous_actions_stay_within_bounds():
    low, high = np.array([-1.0, 0.0]), np.array([1.0, 0.5])
    actions = RandomPolicy(low=low, high=high, seed=0).act(np.zeros((500, 3)))
    assert actions.shape == (500, 2) and actions.dtype == np.float32
    assert (actions >= low).all() and (actions <= high).all()
    assert actions[:, 1].max() > 0.45 and actions[:, 0].min() < -0.9  # spread over the box


@pytest.mark.parametrize("kwargs", [{}, {"n_actions": 2, "low": [0.0], "high": [1.0]},
                                    {"n_actions": 0}, {"low": [0.0], "high": [np.inf]}])
def test_bad_settings_raise(kwargs):
    with pytest.raises(ValueError):
        RandomPolicy(**kwargs)


def test_random_lunar_lander_crashes_and_is_reproducible():
    policy = RandomPolicy.for_env("LunarLander-v3", seed=0)
    first = evaluate_policy(policy, "LunarLander-v3", 5, 0).returns
    again = evaluate_policy(RandomPolicy.for_env("LunarLander-v3", seed=0), "LunarLander-v3",
                            5, 0).returns
    assert list(first) == list(again)
    assert np.mean(first) < -50  # random landers crash
