"""8-bit weight quantization, symmetric per output channel: post-training (PTQ) and QAT.

Each output channel ``i`` gets the scale ``s_i = max_j |W_ij| / 127`` (1 where the row is all zero)
and the integer weights ``q_ij = clamp(round(W_ij / s_i), -127, 127)``, so every weight is off by
at most half a step ``s_i / 2``. Biases stay float32. This is a small implementation of our own:
these MLPs are too small for a library kernel to matter, and the int8 values and scales are exactly
what the compact file stores. (torchao and ONNX Runtime integer kernels are issue 3's next step.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rlcomp.compress.registry import register
from rlcomp.compress.specs import QuantSpec

QMAX = 127


def quantize_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8 values and float32 scales of a weight matrix."""
    w = weight.detach().to(torch.float32)
    scale = w.abs().amax(dim=1) / QMAX
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.clamp(torch.round(w / scale[:, None]), -QMAX, QMAX).to(torch.int8)
    return q, scale


class QuantizedLinear(nn.Module):
    """A Linear layer whose weights are int8 values times a float32 scale per output channel."""

    def __init__(self, qweight: torch.Tensor, scale: torch.Tensor, bias: torch.Tensor | None):
        super().__init__()
        self.register_buffer("qweight", qweight.to(torch.int8))
        self.register_buffer("scale", scale.to(torch.float32))
        self.register_buffer("bias", None if bias is None else bias.detach().clone())

    @property
    def in_features(self) -> int:
        return self.qweight.shape[1]

    @property
    def out_features(self) -> int:
        return self.qweight.shape[0]

    def dequantized_weight(self) -> torch.Tensor:
        """The float weights this layer computes with."""
        return self.qweight.to(torch.float32) * self.scale[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.dequantized_weight(), self.bias)


class FakeQuantLinear(nn.Linear):
    """A trainable Linear computing with its weights rounded to int8 (straight-through gradient).

    The forward pass uses the quantized weights; the backward pass treats the rounding as identity,
    so float weights keep learning while the network always acts as its int8 version.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, scale = quantize_per_channel(self.weight)
        w_q = q.to(self.weight.dtype) * scale[:, None]
        return F.linear(x, self.weight + (w_q - self.weight).detach(), self.bias)


def _replace_linears(module: nn.Module, make) -> None:
    for name, child in module.named_children():
        if type(child) is nn.Linear:
            setattr(module, name, make(child))
        else:
            _replace_linears(child, make)


@register(QuantSpec)
def _quant(model: nn.Module, spec: QuantSpec) -> nn.Module:
    if spec.mode == "ptq":

        def make(layer: nn.Linear) -> nn.Module:
            q, scale = quantize_per_channel(layer.weight)
            return QuantizedLinear(q, scale, layer.bias)

    else:

        def make(layer: nn.Linear) -> nn.Module:
            fq = FakeQuantLinear(layer.in_features, layer.out_features, bias=layer.bias is not None)
            fq.load_state_dict(layer.state_dict())
            return fq

    if type(model) is nn.Linear:
        return make(model)
    _replace_linears(model, make)
    return model
