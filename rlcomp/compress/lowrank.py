"""Low-rank approximation: each Linear layer keeps the top singular values of its weight matrix."""

from __future__ import annotations

import math

import torch
from torch import nn

from rlcomp.compress.quant import is_quantized
from rlcomp.compress.registry import register
from rlcomp.compress.specs import LowRankSpec


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

    @property
    def in_features(self) -> int:
        return self.first.in_features

    @property
    def out_features(self) -> int:
        return self.second.out_features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.second(self.first(x))


def kept_rank(full_rank: int, reduction: float) -> int:
    """``max(1, ceil((1 - reduction) * full_rank))``, the rank a layer keeps."""
    return max(1, math.ceil((1.0 - reduction) * full_rank - 1e-9))


def low_rank_layer(layer: nn.Linear, reduction: float) -> nn.Module:
    """The best rank-``k`` approximation of ``layer`` (Eckart-Young): two factors when smaller."""
    weight = layer.weight.detach().to(torch.float64)
    k = kept_rank(min(weight.shape), reduction)
    if k == min(weight.shape):
        return layer  # full rank: the layer is its own best approximation, bit for bit
    u, s, vh = torch.linalg.svd(weight, full_matrices=False)
    out_f, in_f = weight.shape
    if k * (in_f + out_f) < in_f * out_f:
        new = FactorizedLinear(in_f, k, out_f)
        new.first.weight.data = (s[:k, None] * vh[:k]).to(layer.weight.dtype)
        new.second.weight.data = u[:, :k].contiguous().to(layer.weight.dtype)
        new.second.bias.data = layer.bias.detach().clone()
        return new
    dense = nn.Linear(in_f, out_f)
    dense.weight.data = ((u[:, :k] * s[:k]) @ vh[:k]).to(layer.weight.dtype)
    dense.bias.data = layer.bias.detach().clone()
    return dense


@register(LowRankSpec)
def _lowrank(model: nn.Module, spec: LowRankSpec) -> nn.Module:
    if not isinstance(model, nn.Sequential):
        raise ValueError("lowrank works on an MLP (nn.Sequential of Linear and activations)")
    if is_quantized(model):
        raise ValueError("lowrank on a quantized network is not supported; factorize first, as in "
                         "lowrank=0.5+quant=8")
    positions = [i for i, m in enumerate(model) if isinstance(m, nn.Linear)]
    if len(positions) != sum(isinstance(m, nn.Linear | FactorizedLinear) for m in model):
        raise ValueError("lowrank on a network that is already factorized is not supported")
    for n, i in enumerate(positions):
        if spec.keep_io and n in (0, len(positions) - 1):
            continue
        model[i] = low_rank_layer(model[i], spec.reduction)
    return model
