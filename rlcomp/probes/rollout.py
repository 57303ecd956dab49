"""Episodic returns of a deterministic policy over seeded evaluation episodes."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from rlcomp.agents.policy import Policy
from rlcomp.analysis.stats import summarize_returns
from rlcomp.envs import make_env


@dataclass
class EvalResult:
    """Per-episode outcome of an evaluation; episode ``i`` was reset with seed ``seed + i``."""

    returns: list[float]
    lengths: list[int]
    seed: int
    eval_seconds: float
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """A JSON-ready dictionary: summary statistics plus per-episode values."""
        return {
            **summarize_returns(self.returns),
            "episodes": len(self.returns),
            "seed": self.seed,
            "returns": [float(r) for r in self.returns],
            "lengths": [int(n) for n in self.lengths],
            "eval_seconds": self.eval_seconds,
        }


def evaluate_policy(
    policy: Policy,
    env_id: str,
    episodes: int,
    seed: int,
    num_envs: int = 16,
) -> EvalResult:
    """Run ``episodes`` episodes of ``policy``, ``num_envs`` at a time, one forward pass a step.

    Episode ``i`` starts from ``reset(seed=seed + i)``, so the set of episodes does not depend on
    ``num_envs``.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    start = time.perf_counter()
    envs = [make_env(env_id) for _ in range(min(num_envs, episodes))]
    returns = np.zeros(episodes)
    lengths = np.zeros(episodes, dtype=np.int64)
    next_episode = 0
    slots: list[int | None] = [None] * len(envs)
    obs = [None] * len(envs)

    def start_episode(slot: int) -> None:
        nonlocal next_episode
        if next_episode < episodes:
            obs[slot], _ = envs[slot].reset(seed=seed + next_episode)
            slots[slot] = next_episode
            next_episode += 1
        else:
            slots[slot] = None

    for s in range(len(envs)):
        start_episode(s)
    while any(ep is not None for ep in slots):
        active = [s for s, ep in enumerate(slots) if ep is not None]
        actions = policy.act(np.stack([obs[s] for s in active]))
        for s, action in zip(active, actions, strict=True):
            ep = slots[s]
            obs[s], reward, terminated, truncated, _ = envs[s].step(action)
            returns[ep] += float(reward)
            lengths[ep] += 1
            if terminated or truncated:
                start_episode(s)
    for env in envs:
        env.close()
    return EvalResult(
        returns=returns.tolist(),
        lengths=lengths.tolist(),
        seed=seed,
        eval_seconds=time.perf_counter() - start,
    )
