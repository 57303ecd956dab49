"""Each algorithm really learns a small task: a return threshold on its final evaluation.

The settings were tuned so that seed 0 passes with a wide margin and other seeds pass too (see
the comments); training is deterministic on one thread, so a passing seed passes every time on the
same machine. On one core the three take about 25, 10 and 8 CPU seconds.
"""

import numpy as np
import pytest

from rlcomp.agents.train import TRAINERS, make_config

# Double DQN on CartPole-v1 (max return 500, random policy about 20), with the Stable-Baselines3
# zoo's CartPole schedule: 128 gradient steps after every 256 environment steps, target copied
# after each round. Seeds 0, 1 and 2 all reach 500 on every final-evaluation episode.
DDQN_CARTPOLE = dict(
    env_id="CartPole-v1", total_steps=40_000, hidden=(64, 64), lr=2.3e-3, batch_size=64,
    buffer_size=100_000, learning_starts=1_000, train_freq=256, gradient_steps=128,
    target_update_interval=256, eps_fraction=0.16, eps_end=0.04, eval_interval=2_000,
    eval_episodes=10, final_eval_episodes=20,
)

# Policy gradient on InvertedPendulum-v5 (max return 1000; the first evaluation, after 4k steps,
# mostly scores 40-70). PPO: seeds 0-5 all reach 1000 on every final-evaluation episode, by 8k-16k
# steps.
PG_PENDULUM = dict(
    env_id="InvertedPendulum-v5", total_steps=20_480, hidden=(64, 64), num_envs=4,
    rollout_steps=256, lr=1e-3, gamma=0.99, gae_lambda=0.95, clip=0.2, update_epochs=10,
    minibatch_size=64, ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5, log_std_init=-0.5,
    eval_interval=4_096, eval_episodes=5, final_eval_episodes=20,
)

# Vanilla policy gradient (clip=None): one pass of four minibatches per rollout. Less stable than
# PPO, so the kept snapshot matters; seeds 0-5 score 1000, 1000, 1000, 1000, 1000 and 718.
VANILLA_PENDULUM = {
    **PG_PENDULUM, "total_steps": 40_960, "clip": None, "update_epochs": 1,
    "minibatch_size": 256,
}


def train(algo, settings, seed=0):
    config = make_config(algo, seed=seed, **settings)
    result = TRAINERS[algo](config)
    final = result.final_eval
    assert len(final["returns"]) == config.final_eval_episodes
    assert final["mean_return"] == pytest.approx(np.mean(final["returns"]))
    return result


@pytest.mark.slow
def test_ddqn_solves_cartpole():
    result = train("ddqn", DDQN_CARTPOLE)
    assert result.final_eval["episodes"] >= 20
    assert result.final_eval["mean_return"] >= 195.0
    assert result.final_eval["iqm_return"] >= 195.0
    # It learned during training, not only at the end: an early evaluation was far below.
    assert min(result.curve["eval_mean_return"]) < 195.0


@pytest.mark.slow
def test_ppo_balances_inverted_pendulum():
    result = train("pg", PG_PENDULUM)
    assert result.final_eval["episodes"] >= 20
    assert result.final_eval["mean_return"] >= 900.0
    assert min(result.curve["eval_mean_return"]) < 900.0


@pytest.mark.slow
def test_vanilla_policy_gradient_learns_inverted_pendulum():
    result = train("pg", VANILLA_PENDULUM)
    assert result.final_eval["mean_return"] >= 300.0
