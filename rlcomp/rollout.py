"""Episodic returns of a deterministic policy over seeded evaluation episodes, and what they cost.

A pool of plain environments steps in lockstep; each step the observations of the live
environments go through the policy in one batched forward pass of :data:`BATCH_ROWS` rows (padded;
a pool larger than that is run ``BATCH_ROWS`` rows at a time). Episode ``i`` is reset with
``seed + i`` whichever environment runs it, so the episodes do not depend on the pool's size. Nor
do the returns, to the last bit: PyTorch's CPU kernels round differently for different batch sizes
(for the study's 8-256-256-4 network, batches below 11 rows give other last bits than 16 rows),
but a row's result depends neither on its position nor on the other rows of a batch of a given
size, and every forward pass here has the same size.

Speed: overhead dominates the forward pass of these small networks (measured for the LunarLander
Q-network, between environment steps: about 60 us for 1 row, 120 us for 16, 190 us for 64), so the
default pool fills the 64 rows; with fewer environments the padding rows are wasted work. Besides
its own time, each forward pass evicts the environments' data from the caches, which slows the
environment steps that follow (by about 15% here). ``benchmarks/eval_throughput.py`` compares the
whole loop with the environment alone and with a one-environment loop.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import psutil
import torch

from rlcomp.envs import make_env
from rlcomp.policy import Policy
from rlcomp.stats import summarize_returns

BATCH_ROWS = 64
"""Rows of every forward pass: a pool of up to 64 environments is padded to 64 rows, a larger one is
run 64 rows at a time. One shape for every pass makes the arithmetic the same for every pool."""


@dataclass
class EvalResult:
    """Per-episode outcome of an evaluation and its costs; episode ``i`` used seed ``seed + i``.

    Attributes:
        returns: undiscounted return of each episode.
        lengths: environment steps of each episode.
        seed: seed of episode 0.
        eval_seconds: wall seconds of the whole evaluation (environment creation included), the
            poster's "eval time".
        env_steps: environment steps over all episodes (``sum(lengths)``).
        policy_seconds: wall seconds inside ``policy.act``.
        env_seconds: wall seconds inside ``env.step`` and ``env.reset``.
        cpu_seconds: CPU seconds (user + system, all threads) of this process during the
            evaluation.
        ram_percent: resident memory of this process as a percentage of physical memory, sampled
            at the end of the evaluation (psutil ``memory_percent()``, the poster's RAM %).
        rss_bytes: resident bytes of this process, sampled with ``ram_percent``.
        num_envs: environments in the pool (``min(num_envs, episodes)``).
        extra: free-form additions.
    """

    returns: list[float]
    lengths: list[int]
    seed: int
    eval_seconds: float
    env_steps: int = 0
    policy_seconds: float = 0.0
    env_seconds: float = 0.0
    cpu_seconds: float = 0.0
    ram_percent: float = 0.0
    rss_bytes: int = 0
    num_envs: int = 1
    extra: dict = field(default_factory=dict)

    @property
    def seconds_per_step(self) -> float:
        """Wall seconds per environment step: eval time without the episode-length confound."""
        return self.eval_seconds / self.env_steps if self.env_steps else 0.0

    @property
    def policy_share(self) -> float:
        """Fraction of the policy-plus-environment time spent inside ``policy.act``."""
        busy = self.policy_seconds + self.env_seconds
        return self.policy_seconds / busy if busy > 0 else 0.0

    @property
    def cpu_percent(self) -> float:
        """CPU seconds over wall seconds x 100 (the poster's CPU %; 100 is one busy core)."""
        return 100.0 * self.cpu_seconds / self.eval_seconds if self.eval_seconds > 0 else 0.0

    @property
    def cpu_seconds_per_step(self) -> float:
        """CPU seconds per environment step."""
        return self.cpu_seconds / self.env_steps if self.env_steps else 0.0

    def costs(self) -> dict:
        """Time and resource figures of the evaluation, JSON-ready."""
        return {
            "env_steps": int(self.env_steps),
            "seconds_per_step": self.seconds_per_step,
            "policy_seconds": self.policy_seconds,
            "env_seconds": self.env_seconds,
            "policy_share": self.policy_share,
            "cpu_seconds": self.cpu_seconds,
            "cpu_seconds_per_step": self.cpu_seconds_per_step,
            "cpu_percent": self.cpu_percent,
            "ram_percent": self.ram_percent,
            "rss_bytes": int(self.rss_bytes),
            "num_envs": int(self.num_envs),
        }

    def summary(self) -> dict:
        """A JSON-ready dictionary: summary statistics, per-episode values and :meth:`costs`."""
        return {
            **summarize_returns(self.returns),
            "episodes": len(self.returns),
            "seed": self.seed,
            "returns": [float(r) for r in self.returns],
            "lengths": [int(n) for n in self.lengths],
            "eval_seconds": self.eval_seconds,
            **self.costs(),
        }


def _act_fixed_rows(policy: Policy, obs: np.ndarray) -> np.ndarray:
    """``policy.act`` on ``obs``, :data:`BATCH_ROWS` rows (of a multiple of that) at a time."""
    if len(obs) == BATCH_ROWS:
        return policy.act(obs)
    return np.concatenate([policy.act(obs[i : i + BATCH_ROWS])
                           for i in range(0, len(obs), BATCH_ROWS)])


def evaluate_policy(
    policy: Policy,
    env_id: str,
    episodes: int,
    seed: int,
    num_envs: int = 64,
) -> EvalResult:
    """Run ``episodes`` episodes of ``policy``, ``num_envs`` at a time, one forward pass a step.

    Episode ``i`` starts from ``reset(seed=seed + i)``; the returns and lengths are bit-identical
    for every ``num_envs`` (see the module docstring). The evaluation runs under
    ``torch.inference_mode``; set PyTorch's threads beforehand
    (:func:`rlcomp.envs.configure_torch`).

    Args:
        policy: the deterministic policy; ``act`` gets ``(rows, obs_dim)`` arrays whose rows past
            the live environments are padding.
        env_id: a Gymnasium id (already resolved).
        episodes: number of episodes, at least 1.
        seed: seed of episode 0.
        num_envs: environments stepping in lockstep; up to :data:`BATCH_ROWS`, more are faster
            (they share each forward pass) and the results are the same.

    Returns:
        Per-episode returns and lengths with the wall, CPU and memory figures of the evaluation.
    """
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    process = psutil.Process()
    perf = time.perf_counter
    start, cpu_start = perf(), time.process_time()
    n_slots = min(num_envs, episodes)
    all_envs = [make_env(env_id) for _ in range(n_slots)]
    space = all_envs[0].observation_space
    obs = np.zeros((BATCH_ROWS * math.ceil(n_slots / BATCH_ROWS), *space.shape),
                   dtype=space.dtype or np.float32)
    # Python ints make Discrete.contains (checked by every LunarLander step) cheap.
    discrete = isinstance(all_envs[0].action_space, gym.spaces.Discrete)
    returns = [0.0] * episodes
    lengths = [0] * episodes
    policy_seconds = env_seconds = 0.0

    # The live environments are envs[0:n], their observations obs[0:n] and their episodes
    # episode_of[0:n]; an environment without a next episode leaves, and the rest move up.
    envs = list(all_envs)
    episode_of = list(range(n_slots))
    next_episode = n_slots
    t0 = perf()
    for slot, env in enumerate(envs):
        obs[slot] = env.reset(seed=seed + slot)[0]
    env_seconds += perf() - t0

    with torch.inference_mode():
        while envs:
            rows = BATCH_ROWS * math.ceil(len(envs) / BATCH_ROWS)
            t0 = perf()
            actions = _act_fixed_rows(policy, obs[:rows])
            policy_seconds += perf() - t0
            if discrete:
                actions = actions.tolist()
            ended = False
            for slot, env in enumerate(envs):
                t0 = perf()
                ob, reward, terminated, truncated, _ = env.step(actions[slot])
                env_seconds += perf() - t0
                ep = episode_of[slot]
                returns[ep] += float(reward)
                lengths[ep] += 1
                if terminated or truncated:
                    if next_episode < episodes:
                        t0 = perf()
                        ob = env.reset(seed=seed + next_episode)[0]
                        env_seconds += perf() - t0
                        episode_of[slot] = next_episode
                        next_episode += 1
                    else:
                        episode_of[slot] = -1
                        ended = True
                obs[slot] = ob
            if ended:
                keep = [s for s, ep in enumerate(episode_of) if ep >= 0]
                obs[: len(keep)] = obs[keep]
                envs = [envs[s] for s in keep]
                episode_of = [episode_of[s] for s in keep]

    rss_bytes = process.memory_info().rss
    ram_percent = process.memory_percent()
    for env in all_envs:
        env.close()
    cpu_seconds = time.process_time() - cpu_start
    return EvalResult(
        returns=returns,
        lengths=lengths,
        seed=seed,
        eval_seconds=perf() - start,
        env_steps=sum(lengths),
        policy_seconds=policy_seconds,
        env_seconds=env_seconds,
        cpu_seconds=cpu_seconds,
        ram_percent=ram_percent,
        rss_bytes=rss_bytes,
        num_envs=n_slots,
    )
