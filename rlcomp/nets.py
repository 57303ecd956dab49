"""Network builders shared by the agents, and the observation normaliser."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}
"""The activations an MLP may have between its layers, by name."""


def mlp(sizes: Sequence[int], activation: str = "relu") -> nn.Sequential:
    """A multilayer perceptron: ``mlp([8, 256, 256, 4])`` is Linear-ReLU-Linear-ReLU-Linear.

    Args:
        sizes: the input width, the hidden widths and the output width.
        activation: the layer between two Linear layers, a name in :data:`ACTIVATIONS`.
    """
    if len(sizes) < 2 or any(int(s) < 1 for s in sizes):
        raise ValueError(f"layer sizes must be at least two positive integers, got {list(sizes)}")
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {activation!r}")
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(int(n_in), int(n_out)))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def activation_name(net: nn.Module) -> str | None:
    """The name of the first activation of :data:`ACTIVATIONS` in ``net``; None if it has none."""
    for module in net.modules():
        for name, cls in ACTIVATIONS.items():
            if type(module) is cls:
                return name
    return None


class RunningMeanStd:
    """Running mean and variance of a stream of vectors (parallel algorithm of Chan et al.)."""

    def __init__(self, shape: tuple[int, ...] = (), epsilon: float = 1e-4) -> None:
        self.mean = np.zeros(shape, dtype=np.float64)
        self.var = np.ones(shape, dtype=np.float64)
        self.count = float(epsilon)

    def update(self, batch: np.ndarray) -> None:
        """Fold a batch shaped ``(n, *shape)`` into the statistics."""
        batch = np.asarray(batch, dtype=np.float64)
        b_mean, b_var, b_count = batch.mean(axis=0), batch.var(axis=0), batch.shape[0]
        delta = b_mean - self.mean
        total = self.count + b_count
        self.mean = self.mean + delta * b_count / total
        m2 = self.var * self.count + b_var * b_count + delta**2 * self.count * b_count / total
        self.var = m2 / total
        self.count = total


class ObsNormalizer:
    """Frozen observation normalisation ``clip((obs - mean) / sqrt(var + eps), -clip, clip)``.

    It sits outside the network that gets compressed, so compression never touches it.
    """

    def __init__(self, mean: np.ndarray, var: np.ndarray, clip: float = 10.0, eps: float = 1e-8):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.var = np.asarray(var, dtype=np.float64)
        self.std = np.sqrt(self.var + eps)
        self.clip = float(clip)
        self.eps = float(eps)

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        return np.clip((obs - self.mean) / self.std, -self.clip, self.clip).astype(np.float32)


def as_tensor(obs: np.ndarray) -> torch.Tensor:
    """Observations as a float32 tensor."""
    return torch.as_tensor(np.asarray(obs, dtype=np.float32))
