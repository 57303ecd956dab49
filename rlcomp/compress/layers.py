"""The float layers compressed networks are made of, built one way by compressors and the loader.

A layer built from tensors always holds contiguous copies: PyTorch picks its matrix-multiply code
path by memory layout, so a transposed view and a contiguous copy of the same values can give
results that differ in the last bits. With one builder, the model ``compress`` returns and the
model loaded from its file compute bit for bit the same.
"""

from __future__ import annotations

import torch
from torch import nn


def linear_from_tensors(weight: torch.Tensor, bias: torch.Tensor | None) -> nn.Linear:
    """A float32 ``nn.Linear`` holding contiguous copies of ``weight`` (out x in) and ``bias``."""
    out_features, in_features = weight.shape
    layer = nn.Linear(in_features, out_features, bias=bias is not None)
    layer.weight.data = weight.detach().to(torch.float32).clone(
        memory_format=torch.contiguous_format)
    if bias is not None:
        layer.bias.data = bias.detach().to(torch.float32).clone(
            memory_format=torch.contiguous_format)
    return layer


class FactorizedLinear(nn.Module):
    """``y = second(first(x))``: a rank-``k`` layer run as two thin factors (``first``: no bias)."""

    def __init__(self, in_features: int, rank: int, out_features: int) -> None:
        super().__init__()
        self.first = nn.Linear(in_features, rank, bias=False)
        self.second = nn.Linear(rank, out_features)

    @classmethod
    def of(cls, first: nn.Module, second: nn.Module) -> FactorizedLinear:
        """The layer ``second(first(x))`` made of two given layers (e.g. int8 ones)."""
        layer = cls(first.in_features, first.out_features, second.out_features)
        layer.first, layer.second = first, second
        return layer

    @classmethod
    def from_tensors(cls, first: torch.Tensor, second: torch.Tensor,
                     bias: torch.Tensor | None) -> FactorizedLinear:
        """The layer ``x -> second @ (first @ x) + bias`` with float32 factors (contiguous)."""
        return cls.of(linear_from_tensors(first, None), linear_from_tensors(second, bias))

    @property
    def in_features(self) -> int:
        return self.first.in_features

    @property
    def out_features(self) -> int:
        return self.second.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))


def layer_units(model: nn.Module) -> list[nn.Module]:
    """The network's layers as per-layer options (``layers=``) count them, in order.

    Each top-level module of an ``nn.Sequential`` that holds tensors (weights: a factorized or
    quantized layer counts as one; activations hold none); any other model is one layer.
    """
    if not isinstance(model, nn.Sequential):
        return [model]
    return [m for m in model
            if any(True for _ in m.parameters()) or any(b is not None for b in m.buffers())]


def check_layer_count(method: str, levels: tuple, model: nn.Module) -> list[nn.Module]:
    """The layers of ``model`` (:func:`layer_units`), refusing a count other than ``levels``'.

    Raises:
        ValueError: naming both counts.
    """
    units = layer_units(model)
    if len(levels) != len(units):
        raise ValueError(f"{method} layers= gives {len(levels)} levels; the network has "
                         f"{len(units)} layers")
    return units
