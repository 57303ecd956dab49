"""8-bit quantization of every parameter, symmetric: post-training (PTQ) and in-training (QAT).

Weights: each output channel ``i`` gets the scale ``s_i = max_j |W_ij| / 127`` (1 where the row is
all zero) and the integer weights ``q_ij = clamp(round(W_ij / s_i), -127, 127)``, so every weight is
off by at most half a step ``s_i / 2``. Biases: one scale per layer, ``max_i |b_i| / 127``, the same
rule. So a quantized network holds one byte per parameter plus one float32 scale per output channel
and per bias vector: the poster's "theoretical" 8-bit size, plus under 1% of scales.

This is a small implementation of our own, not torchao's: torchao's ``Int8WeightOnlyConfig``
works on CPU but keeps biases in float (so its model is not one byte per parameter), and it is not
clearly faster for these 256-wide MLPs at batch 1 (``benchmarks/compressed_latency.py`` measures
both, with dense, in eager PyTorch and ONNX Runtime). Both int8 versions dequantize on every call
in eager PyTorch, hence slower than dense there; in ONNX Runtime the int8 weights are dequantized
once when the session starts and a decision costs what dense costs. The int8 values and scales
here are exactly what the compact file stores and what the ONNX export carries.
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


def quantize_tensor(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 values of a whole tensor and its float32 scale (a 0-d tensor)."""
    v = values.detach().to(torch.float32)
    scale = v.abs().max() / QMAX if v.numel() else torch.tensor(1.0)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.clamp(torch.round(v / scale), -QMAX, QMAX).to(torch.int8)
    return q, scale


class QuantizedLinear(nn.Module):
    """A Linear layer computing with int8 weights (scale per output channel) and int8 biases."""

    def __init__(self, qweight: torch.Tensor, scale: torch.Tensor,
                 qbias: torch.Tensor | None = None, bias_scale: torch.Tensor | None = None):
        super().__init__()
        if (qbias is None) != (bias_scale is None):
            raise ValueError("qbias and bias_scale go together")
        self.register_buffer("qweight", qweight.detach().to(torch.int8).contiguous())
        self.register_buffer("scale", scale.detach().to(torch.float32).contiguous())
        self.register_buffer("qbias", None if qbias is None
                             else qbias.detach().to(torch.int8).contiguous())
        if bias_scale is not None:
            bias_scale = bias_scale.detach().to(torch.float32).reshape(())
        self.register_buffer("bias_scale", bias_scale)

    @classmethod
    def from_linear(cls, layer: nn.Linear) -> QuantizedLinear:
        """The int8 version of a float Linear layer."""
        q, scale = quantize_per_channel(layer.weight)
        qbias, bias_scale = (None, None) if layer.bias is None else quantize_tensor(layer.bias)
        return cls(q, scale, qbias, bias_scale)

    @property
    def in_features(self) -> int:
        return self.qweight.shape[1]

    @property
    def out_features(self) -> int:
        return self.qweight.shape[0]

    @property
    def bias(self) -> torch.Tensor | None:
        """The float biases this layer computes with."""
        if self.qbias is None:
            return None
        return self.qbias.to(torch.float32) * self.bias_scale

    def dequantized_weight(self) -> torch.Tensor:
        """The float weights this layer computes with."""
        return self.qweight.to(torch.float32) * self.scale[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.dequantized_weight(), self.bias)


def _fake_quantized(values: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
    """``quantized`` in the forward pass, identity gradient to ``values`` (straight-through)."""
    if torch.is_grad_enabled() and values.requires_grad:
        return values + (quantized - values).detach()
    return quantized


class FakeQuantLinear(nn.Linear):
    """A trainable Linear computing with its parameters rounded to int8 (straight-through gradient).

    The forward pass uses exactly the weights and biases of :class:`QuantizedLinear`; the backward
    pass treats the rounding as identity, so the float parameters keep learning while the network
    always acts as its int8 version.
    """

    def quantized(self) -> QuantizedLinear:
        """The int8 layer this one currently computes as."""
        return QuantizedLinear.from_linear(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, scale = quantize_per_channel(self.weight)
        weight = _fake_quantized(self.weight, q.to(torch.float32) * scale[:, None])
        bias = None
        if self.bias is not None:
            qb, bias_scale = quantize_tensor(self.bias)
            bias = _fake_quantized(self.bias, qb.to(torch.float32) * bias_scale)
        return F.linear(x, weight, bias)


def is_quantized(model: nn.Module) -> bool:
    """Whether ``model`` holds int8 (:class:`QuantizedLinear`) or fake-quantized layers."""
    return any(isinstance(m, QuantizedLinear | FakeQuantLinear) for m in model.modules())


def _replace_linears(module: nn.Module, make) -> None:
    for name, child in module.named_children():
        if type(child) is nn.Linear:
            setattr(module, name, make(child))
        else:
            _replace_linears(child, make)


@register(QuantSpec)
def _quant(model: nn.Module, spec: QuantSpec) -> nn.Module:
    if is_quantized(model):
        raise ValueError("the network is already quantized")
    if spec.mode == "ptq":
        make = QuantizedLinear.from_linear
    else:

        def make(layer: nn.Linear) -> nn.Module:
            fq = FakeQuantLinear(layer.in_features, layer.out_features, bias=layer.bias is not None)
            fq.load_state_dict(layer.state_dict())
            return fq

    if type(model) is nn.Linear:
        return make(model)
    _replace_linears(model, make)
    return model
