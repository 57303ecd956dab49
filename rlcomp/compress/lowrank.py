"""Low-rank approximation: each Linear layer keeps the top singular values of its weight matrix."""

from __future__ import annotations

import math

import torch
from torch import nn

from rlcomp.compress.layers import FactorizedLinear, check_layer_count, linear_from_tensors
from rlcomp.compress.quant import is_quantized
from rlcomp.compress.registry import register
from rlcomp.compress.specs import LowRankSpec


def kept_rank(full_rank: int, reduction: float) -> int:
    """``max(1, ceil((1 - reduction) * full_rank))``, the rank a layer keeps."""
    return max(1, math.ceil((1.0 - reduction) * full_rank - 1e-9))


def low_rank_layer(layer: nn.Linear, reduction: float) -> nn.Module:
    """The best rank-``k`` approximation of ``layer`` (Eckart-Young): two factors when smaller.

    The SVD runs in float64; the factors are rounded to float32 once, when the layer is built.
    """
    weight = layer.weight.detach().to(torch.float64)
    k = kept_rank(min(weight.shape), reduction)
    if k == min(weight.shape):
        return layer  # full rank: the layer is its own best approximation, bit for bit
    u, s, vh = torch.linalg.svd(weight, full_matrices=False)
    out_f, in_f = weight.shape
    if k * (in_f + out_f) < in_f * out_f:
        return FactorizedLinear.from_tensors(s[:k, None] * vh[:k], u[:, :k], layer.bias)
    return linear_from_tensors((u[:, :k] * s[:k]) @ vh[:k], layer.bias)


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
    reductions = [spec.reduction] * len(positions)
    if spec.layers:
        check_layer_count("lowrank", spec.layers, model)
        reductions = list(spec.layers)
    elif spec.keep_io:
        reductions[0] = reductions[-1] = 0.0
    for i, reduction in zip(positions, reductions, strict=True):
        if reduction > 0:
            model[i] = low_rank_layer(model[i], reduction)
    return model
