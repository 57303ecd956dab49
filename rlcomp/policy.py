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
