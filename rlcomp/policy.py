"""The acting side of a trained agent: the network that compression acts on, plus what wraps it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import nn

from rlcomp.nets import ObsNormalizer, as_tensor


@dataclass
class Policy:
    """A deterministic policy for evaluation.

    Attributes:
        net: the network that compression acts on; maps (normalised) observations to Q-values
            (``action="argmax"``) or to action means (``action="mean"``).
        action: ``"argmax"`` for a greedy discrete policy, ``"mean"`` for a Gaussian policy's mean.
        obs_norm: observation normalisation applied before ``net``, if the agent trained with one.
        action_low: lower action bounds for ``"mean"`` policies; actions are clipped to them.
        action_high: upper action bounds for ``"mean"`` policies.
    """

    net: nn.Module
    action: Literal["argmax", "mean"]
    obs_norm: ObsNormalizer | None = None
    action_low: np.ndarray | None = None
    action_high: np.ndarray | None = None

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Actions for a batch of observations shaped ``(n, obs_dim)``."""
        x = self.obs_norm(obs) if self.obs_norm is not None else obs
        with torch.no_grad():
            out = self.net(as_tensor(x))
        if self.action == "argmax":
            return out.argmax(dim=-1).numpy()
        actions = out.numpy()
        if self.action_low is not None and self.action_high is not None:
            actions = np.clip(actions, self.action_low, self.action_high)
        return actions


class RandomPolicy:
    """Uniformly random actions: the lower anchor of normalized returns.

    A normalized return is ``(x - random) / (dense - random)``
    (:func:`rlcomp.stats.normalized`), with ``random`` this policy's mean return over the same
    evaluation episodes. Actions come from ``numpy.random.default_rng(seed)``, one draw per row of
    each call, so the same seed and the same calls give the same actions.

    Args:
        n_actions: the number of actions of a discrete space, or None for a continuous one.
        low: lower action bounds of a continuous space.
        high: upper action bounds of a continuous space.
        seed: seed of the action draws.

    Raises:
        ValueError: for neither or both kinds of action space, or bounds that are not finite.
    """

    def __init__(self, n_actions: int | None = None, low: np.ndarray | None = None,
                 high: np.ndarray | None = None, seed: int = 0) -> None:
        continuous = low is not None and high is not None
        if (n_actions is None) == (not continuous):
            raise ValueError("give either n_actions (discrete) or low and high (continuous)")
        if n_actions is not None and n_actions < 1:
            raise ValueError(f"n_actions must be >= 1, got {n_actions}")
        if continuous:
            low, high = np.asarray(low, dtype=np.float32), np.asarray(high, dtype=np.float32)
            if not (np.isfinite(low).all() and np.isfinite(high).all()):
                raise ValueError("a random policy needs finite action bounds")
        self.n_actions, self.low, self.high = n_actions, low, high
        self._rng = np.random.default_rng(seed)

    @classmethod
    def for_env(cls, env_id: str, seed: int = 0) -> RandomPolicy:
        """The random policy of an environment's action space."""
        import gymnasium as gym

        from rlcomp.envs import make_env

        env = make_env(env_id)
        try:
            space = env.action_space
            if isinstance(space, gym.spaces.Discrete):
                return cls(n_actions=int(space.n), seed=seed)
            return cls(low=space.low, high=space.high, seed=seed)
        finally:
            env.close()

    def act(self, obs: np.ndarray) -> np.ndarray:
        """One random action per row of ``obs``."""
        rows = len(obs)
        if self.n_actions is not None:
            return self._rng.integers(0, self.n_actions, size=rows)
        return self._rng.uniform(self.low, self.high, size=(rows, *self.low.shape)).astype(
            np.float32)
