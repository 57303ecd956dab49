"""Exact answers, computed by hand, for the learning targets and summary statistics.

Every number below is a dyadic fraction, so float arithmetic is exact and the comparisons are
equalities, not tolerances.
"""

import json

import numpy as np
import pytest
import torch
from torch import nn

from rlcomp.agents.ddqn import DDQNConfig, double_dqn_target, epsilon_at
from rlcomp.agents.pg import gae
from rlcomp.stats import iqm, summarize_returns


def reward_to_go(rewards: np.ndarray, dones: np.ndarray, gamma: float,
                 last_values: np.ndarray | None = None) -> np.ndarray:
    """Reference: discounted return from each step to the end of its episode (or rollout).

    GAE with lambda = 1 must equal this minus the values; the agent itself needs only GAE.
    """
    T = rewards.shape[0]
    out = np.zeros_like(rewards, dtype=np.float64)
    running = np.zeros(rewards.shape[1:]) if last_values is None else np.asarray(last_values, float)
    for t in reversed(range(T)):
        running = rewards[t] + gamma * running * (1.0 - dones[t])
        out[t] = running
    return out


def linear(weight):
    """A bias-free linear Q-network with the given (actions x features) weight."""
    w = torch.tensor(weight, dtype=torch.float32)
    net = nn.Linear(w.shape[1], w.shape[0], bias=False)
    with torch.no_grad():
        net.weight.copy_(w)
    return net


# Online network: Q_online(s) = (s0, s1), so it picks the larger feature.
ONLINE = [[1.0, 0.0], [0.0, 1.0]]
# Target network: Q_target(s) = (2 s1, 3 s0), whose own argmax is always the other action here.
TARGET = [[0.0, 2.0], [3.0, 0.0]]
NEXT_OBS = [[1.0, 3.0], [4.0, 2.0], [5.0, 1.0]]
REWARDS = [0.5, -1.0, 2.0]
TERMINATED = [0.0, 0.0, 1.0]
GAMMA = 0.5


def test_double_dqn_target_online_chooses_target_scores():
    online, target = linear(ONLINE), linear(TARGET)
    y = double_dqn_target(online, target, torch.tensor(REWARDS), torch.tensor(NEXT_OBS),
                          torch.tensor(TERMINATED), GAMMA)
    # Row 0: online (1, 3) picks a=1; target (6, 3) scores it 3:   0.5 + 0.5 * 3 = 2.0
    # Row 1: online (4, 2) picks a=0; target (4, 12) scores it 4: -1.0 + 0.5 * 4 = 1.0
    # Row 2: terminated, no bootstrap:                             2.0
    assert torch.equal(y, torch.tensor([2.0, 1.0, 2.0]))
    assert not y.requires_grad


def test_double_dqn_target_differs_from_dqn_max():
    online, target = linear(ONLINE), linear(TARGET)
    rewards, next_obs = torch.tensor(REWARDS), torch.tensor(NEXT_OBS)
    terminated = torch.tensor(TERMINATED)
    double = double_dqn_target(online, target, rewards, next_obs, terminated, GAMMA)
    # Plain DQN scores max_a Q_target: row 0: 0.5 + 0.5 * 6 = 3.5, row 1: -1 + 0.5 * 12 = 5.0.
    dqn = rewards + GAMMA * (1.0 - terminated) * target(next_obs).max(dim=1).values
    assert torch.equal(dqn.detach(), torch.tensor([3.5, 5.0, 2.0]))
    assert not torch.equal(double, dqn.detach())
    # With the target network as chooser too, Double DQN is plain DQN.
    same = double_dqn_target(target, target, rewards, next_obs, terminated, GAMMA)
    assert torch.equal(same, dqn.detach())


def test_double_dqn_target_swapped_networks():
    # The target network now chooses (its argmax) and the online network scores.
    online, target = linear(ONLINE), linear(TARGET)
    y = double_dqn_target(target, online, torch.tensor(REWARDS), torch.tensor(NEXT_OBS),
                          torch.tensor(TERMINATED), GAMMA)
    # Row 0: target (6, 3) picks a=0, online scores s0 = 1:  0.5 + 0.5 * 1 = 1.0
    # Row 1: target (4, 12) picks a=1, online scores s1 = 2: -1.0 + 0.5 * 2 = 0.0
    assert torch.equal(y, torch.tensor([1.0, 0.0, 2.0]))


# A rollout of T=3 steps in N=2 environments; environment 0's episode ends with step 1.
RW = np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
VAL = np.array([[1.0, 2.0], [2.0, 4.0], [4.0, 8.0]])
DONE = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
LAST = np.array([8.0, 16.0])


def test_reward_to_go_without_bootstrap():
    # env 0: G2 = 5; G1 = 3 (episode ends); G0 = 1 + 0.5 * 3 = 2.5
    # env 1: G2 = 6; G1 = 4 + 0.5 * 6 = 7; G0 = 2 + 0.5 * 7 = 5.5
    expected = np.array([[2.5, 5.5], [3.0, 7.0], [5.0, 6.0]])
    np.testing.assert_array_equal(reward_to_go(RW, DONE, 0.5), expected)


def test_reward_to_go_with_bootstrap():
    # env 0: G2 = 5 + 0.5 * 8 = 9; G1 = 3 (the new episode's value does not leak back); G0 = 2.5
    # env 1: G2 = 6 + 0.5 * 16 = 14; G1 = 4 + 0.5 * 14 = 11; G0 = 2 + 0.5 * 11 = 7.5
    expected = np.array([[2.5, 7.5], [3.0, 11.0], [9.0, 14.0]])
    np.testing.assert_array_equal(reward_to_go(RW, DONE, 0.5, last_values=LAST), expected)


def test_reward_to_go_last_step_done_ignores_bootstrap():
    rewards, dones = np.array([[1.0], [2.0]]), np.array([[0.0], [1.0]])
    # G1 = 2 (done), G0 = 1 + 0.5 * 2 = 2, whatever last_values is.
    out = reward_to_go(rewards, dones, 0.5, last_values=np.array([1000.0]))
    np.testing.assert_array_equal(out, np.array([[2.0], [2.0]]))


def test_gae_by_hand():
    # TD errors delta_t = r_t + 0.5 V_{t+1} (1 - done_t) - V_t:
    #   env 0: d2 = 5 + 4 - 4 = 5, d1 = 3 + 0 - 2 = 1, d0 = 1 + 1 - 1 = 1
    #   env 1: d2 = 6 + 8 - 8 = 6, d1 = 4 + 4 - 4 = 4, d0 = 2 + 2 - 2 = 2
    # A_t = d_t + (gamma lam = 0.25) (1 - done_t) A_{t+1}:
    #   env 0: A2 = 5, A1 = 1 + 0 = 1, A0 = 1 + 0.25 * 1 = 1.25
    #   env 1: A2 = 6, A1 = 4 + 0.25 * 6 = 5.5, A0 = 2 + 0.25 * 5.5 = 3.375
    expected = np.array([[1.25, 3.375], [1.0, 5.5], [5.0, 6.0]])
    np.testing.assert_array_equal(gae(RW, VAL, DONE, LAST, 0.5, 0.5), expected)


def test_gae_lambda_one_is_reward_to_go_minus_values():
    # By hand: env 0: (2.5 - 1, 3 - 2, 9 - 4); env 1: (7.5 - 2, 11 - 4, 14 - 8).
    expected = np.array([[1.5, 5.5], [1.0, 7.0], [5.0, 6.0]])
    out = gae(RW, VAL, DONE, LAST, 0.5, 1.0)
    np.testing.assert_array_equal(out, expected)
    np.testing.assert_array_equal(out, reward_to_go(RW, DONE, 0.5, last_values=LAST) - VAL)


def test_gae_lambda_zero_is_one_step_td_error():
    expected = np.array([[1.0, 2.0], [1.0, 4.0], [5.0, 6.0]])  # the deltas above
    np.testing.assert_array_equal(gae(RW, VAL, DONE, LAST, 0.5, 0.0), expected)


def test_gae_shape_and_dtype():
    out = gae(RW.astype(np.float32), VAL, DONE, LAST, 0.99, 0.95)
    assert out.shape == (3, 2)
    assert out.dtype == np.float64


def test_epsilon_schedule_endpoints():
    config = DDQNConfig(total_steps=1000, eps_start=1.0, eps_end=0.25, eps_fraction=0.1)
    assert epsilon_at(0, config) == 1.0
    assert epsilon_at(50, config) == 0.625  # halfway through the 100 decay steps
    assert epsilon_at(100, config) == 0.25
    assert epsilon_at(101, config) == 0.25
    assert epsilon_at(1000, config) == 0.25


def test_epsilon_schedule_defaults():
    config = DDQNConfig()
    decay_end = int(config.eps_fraction * config.total_steps)
    assert epsilon_at(0, config) == config.eps_start
    assert epsilon_at(decay_end, config) == pytest.approx(config.eps_end)
    assert epsilon_at(config.total_steps, config) == pytest.approx(config.eps_end)
    steps = range(0, config.total_steps, 997)
    values = [epsilon_at(s, config) for s in steps]
    assert all(a >= b for a, b in zip(values, values[1:], strict=False))


def test_iqm_mean_of_middle_half():
    # n = 8 drops 2 from each end: mean(3, 4, 100, 200) = 307 / 4
    assert iqm([1, 2, 3, 4, 100, 200, 300, 400]) == 76.75
    assert iqm([400, 3, 200, 1, 100, 2, 300, 4]) == 76.75  # order does not matter
    assert iqm(np.array([[1.0, 2.0], [3.0, 4.0]])) == 2.5  # n = 4: mean(2, 3)
    assert iqm([1, 2, 3, 4, 1000]) == 3.0  # n = 5 drops int(1.25) = 1 each end: mean(2, 3, 4)
    assert iqm([7.0]) == 7.0
    assert iqm([1.0, 5.0, 9.0]) == 5.0  # n = 3 drops nothing


def test_iqm_empty_raises():
    with pytest.raises(ValueError, match="empty"):
        iqm([])


def test_summarize_returns_by_hand():
    s = summarize_returns([1.0, 3.0, 5.0, 7.0])
    assert s["mean_return"] == 4.0
    assert s["std_return"] == pytest.approx(5.0**0.5)  # population: sqrt((9 + 1 + 1 + 9) / 4)
    assert s["iqm_return"] == 4.0
    assert (s["min_return"], s["max_return"]) == (1.0, 7.0)
    assert s["sem_return"] == pytest.approx((20 / 3) ** 0.5 / 2)  # sample std / sqrt(4)
    with pytest.raises(ValueError):
        summarize_returns([])


def test_summarize_single_return_is_json_safe():
    s = summarize_returns([5.0])
    assert s["mean_return"] == s["iqm_return"] == s["min_return"] == s["max_return"] == 5.0
    assert s["std_return"] == 0.0
    assert s["sem_return"] is None  # undefined for one value; NaN would not be valid JSON
    json.dumps(s, allow_nan=False)
