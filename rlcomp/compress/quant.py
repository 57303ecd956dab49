"""Symmetric integer quantization of every Linear layer at 8, 4 or 2 bits: PTQ and QAT.

Weights: at ``b`` bits the integers run over ``-qmax..qmax``, ``qmax = 2**(b-1) - 1`` (127, 7, 1;
symmetric, so the code ``-2**(b-1)`` is never used). Each output channel ``i`` (``group=0``) gets
the scale ``s_i = max_j |W_ij| / qmax`` (1 where the row is all zero) and the integer weights
``q_ij = clamp(round(W_ij / s_i), -qmax, qmax)``, so every weight is off by at most half a step
``s_i / 2``. With ``group=G`` each row is cut into groups of ``G`` consecutive inputs from column 0
and each group gets its own scale by the same rule; when ``G`` does not divide the input width the
last group of every row is shorter (the remaining ``in mod G`` columns), so the scales form an
``out x ceil(in / G)`` matrix. Biases: at every weight width one scale per layer,
``max_i |b_i| / 127``, and int8 values (the same rule at 8 bits): biases are under 1% of the
parameters, so fewer bits would save little. So an int8 network holds one byte per parameter plus
one float32 scale per output channel and per bias vector: the poster's "theoretical" 8-bit size,
plus under 1% of scales.

In memory the integers of every width are int8 tensors, one byte each; the compact file packs
int4 two and int2 four to a byte (:mod:`rlcomp.compress.storage`). Mixed precision
(``mixed=true``) quantizes the first and last layers exactly as ``quant=8`` does (int8, a scale
per output channel) and the others at ``bits`` and ``group``; a layer is a top-level module of the
network holding Linear weights, so a factorized layer counts as one (both its factors).

This is a small implementation of our own, not torchao's: torchao's ``Int8WeightOnlyConfig``
works on CPU but keeps biases in float (so its model is not one byte per parameter), and it is not
clearly faster for these 256-wide MLPs at batch 1 (``benchmarks/compressed_latency.py`` measures
both, with dense, in eager PyTorch and ONNX Runtime). Both int8 versions dequantize on every call
in eager PyTorch, hence slower than dense there; in ONNX Runtime the int8 weights are dequantized
once when the session starts and a decision costs what dense costs. The int8 values and scales
here are exactly what the compact file stores and what the ONNX export carries (int4, int2 and
grouped layers are exported as their dequantized float weights, see :mod:`.export`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rlcomp.compress.layers import check_layer_count
from rlcomp.compress.registry import register
from rlcomp.compress.specs import QUANT_BITS, QuantSpec

QMAX = 127
"""The largest int8 magnitude."""


def qmax_of(bits: int) -> int:
    """The largest integer magnitude at ``bits`` bits, symmetric: ``2**(bits - 1) - 1``."""
    return 2 ** (bits - 1) - 1


def expand_scale(scale: torch.Tensor, group: int, in_features: int) -> torch.Tensor:
    """Per-weight scales (broadcastable to ``out x in``) of per-channel or per-group scales."""
    if group == 0:
        return scale[:, None]
    return scale.repeat_interleave(group, dim=1)[:, :in_features]


def _group_amax(w: torch.Tensor, group: int) -> torch.Tensor:
    """``max |w|`` of each group of ``group`` consecutive columns of each row (last one shorter)."""
    out_features, in_features = w.shape
    padded = F.pad(w.abs(), (0, -in_features % group))
    return padded.reshape(out_features, -1, group).amax(dim=2)


def quantize_weight(weight: torch.Tensor, bits: int = 8,
                    group: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric ``bits``-bit values (as int8) and float32 scales of a weight matrix.

    Args:
        weight: an ``out x in`` matrix.
        bits: 8, 4 or 2.
        group: 0 for a scale per output channel (shape ``[out]``), else the group size (scales
            of shape ``[out, ceil(in / group)]``).
    """
    w = weight.detach().to(torch.float32)
    qmax = qmax_of(bits)
    amax = _group_amax(w, group) if group else w.abs().amax(dim=1)
    scale = amax / qmax
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.clamp(torch.round(w / expand_scale(scale, group, w.shape[1])), -qmax, qmax)
    return q.to(torch.int8), scale


def quantize_per_channel(weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric per-output-channel int8 values and float32 scales of a weight matrix."""
    return quantize_weight(weight)


def quantize_tensor(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Symmetric int8 values of a whole tensor and its float32 scale (a 0-d tensor)."""
    v = values.detach().to(torch.float32)
    scale = v.abs().max() / QMAX if v.numel() else torch.tensor(1.0)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    q = torch.clamp(torch.round(v / scale), -QMAX, QMAX).to(torch.int8)
    return q, scale


def _check_width(bits: int, group: int) -> None:
    if bits not in QUANT_BITS:
        raise ValueError(f"bits must be 8, 4 or 2, got {bits!r}")
    if isinstance(group, bool) or not isinstance(group, int) or group < 0:
        raise ValueError(f"group must be an integer >= 0, got {group!r}")


class QuantizedLinear(nn.Module):
    """A Linear layer computing with integer weights (8, 4 or 2 bits, held as int8) and int8 biases.

    ``bits`` and ``group`` are plain attributes (not in the state dict); ``scale`` has shape
    ``[out]`` for ``group=0`` and ``[out, ceil(in / group)]`` otherwise.
    """

    def __init__(self, qweight: torch.Tensor, scale: torch.Tensor,
                 qbias: torch.Tensor | None = None, bias_scale: torch.Tensor | None = None,
                 *, bits: int = 8, group: int = 0):
        super().__init__()
        if (qbias is None) != (bias_scale is None):
            raise ValueError("qbias and bias_scale go together")
        _check_width(bits, group)
        out_features, in_features = qweight.shape
        scale_shape = (out_features, -(-in_features // group)) if group else (out_features,)
        if tuple(scale.shape) != scale_shape:
            raise ValueError(f"scale must have shape {scale_shape}, got {tuple(scale.shape)}")
        self.bits, self.group = bits, group
        self.register_buffer("qweight", qweight.detach().to(torch.int8).contiguous())
        self.register_buffer("scale", scale.detach().to(torch.float32).contiguous())
        self.register_buffer("qbias", None if qbias is None
                             else qbias.detach().to(torch.int8).contiguous())
        if bias_scale is not None:
            bias_scale = bias_scale.detach().to(torch.float32).reshape(())
        self.register_buffer("bias_scale", bias_scale)

    @classmethod
    def from_linear(cls, layer: nn.Linear, bits: int = 8, group: int = 0) -> QuantizedLinear:
        """The quantized version of a float Linear layer."""
        q, scale = quantize_weight(layer.weight, bits, group)
        qbias, bias_scale = (None, None) if layer.bias is None else quantize_tensor(layer.bias)
        return cls(q, scale, qbias, bias_scale, bits=bits, group=group)

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
        return self.qweight.to(torch.float32) * expand_scale(self.scale, self.group,
                                                             self.in_features)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bits={self.bits}, group={self.group}")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.dequantized_weight(), self.bias)


def _fake_quantized(values: torch.Tensor, quantized: torch.Tensor) -> torch.Tensor:
    """``quantized`` in the forward pass, identity gradient to ``values`` (straight-through)."""
    if torch.is_grad_enabled() and values.requires_grad:
        return values + (quantized - values).detach()
    return quantized


class FakeQuantLinear(nn.Linear):
    """A trainable Linear computing with its parameters rounded (straight-through gradient).

    The forward pass uses exactly the weights and biases of the :class:`QuantizedLinear` of the
    same ``bits`` and ``group`` (plain attributes, not in the state dict); the backward pass treats
    the rounding as identity, so the float parameters keep learning while the network always acts
    as its quantized version.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True, *,
                 bits: int = 8, group: int = 0) -> None:
        super().__init__(in_features, out_features, bias=bias)
        _check_width(bits, group)
        self.bits, self.group = bits, group

    def quantized(self) -> QuantizedLinear:
        """The quantized layer this one currently computes as."""
        return QuantizedLinear.from_linear(self, self.bits, self.group)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, bits={self.bits}, group={self.group}"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        q, scale = quantize_weight(self.weight, self.bits, self.group)
        dequantized = q.to(torch.float32) * expand_scale(scale, self.group, self.in_features)
        weight = _fake_quantized(self.weight, dequantized)
        bias = None
        if self.bias is not None:
            qb, bias_scale = quantize_tensor(self.bias)
            bias = _fake_quantized(self.bias, qb.to(torch.float32) * bias_scale)
        return F.linear(x, weight, bias)


def is_quantized(model: nn.Module) -> bool:
    """Whether ``model`` holds quantized (:class:`QuantizedLinear`) or fake-quantized layers."""
    return any(isinstance(m, QuantizedLinear | FakeQuantLinear) for m in model.modules())


def _replace_linears(module: nn.Module, make) -> None:
    for name, child in module.named_children():
        if type(child) is nn.Linear:
            setattr(module, name, make(child))
        else:
            _replace_linears(child, make)


def _edge_linears(model: nn.Module) -> set[int]:
    """Ids of the Linear modules of the network's first and last layers (see the module doc)."""
    if isinstance(model, nn.Sequential):
        units = [m for m in model if any(type(x) is nn.Linear for x in m.modules())]
    else:
        units = [m for m in model.modules() if type(m) is nn.Linear]
    return {id(x) for unit in units[:1] + units[-1:] for x in unit.modules()
            if type(x) is nn.Linear}


def _layer_bits(model: nn.Module, spec: QuantSpec) -> dict[int, int]:
    """Bits of each Linear module (by id) under ``spec.layers``, one width per layer."""
    units = check_layer_count("quant", spec.layers, model)
    return {id(x): bits for unit, bits in zip(units, spec.layers, strict=True)
            for x in unit.modules() if type(x) is nn.Linear}


def _fake_quant_layer(layer: nn.Linear, bits: int, group: int) -> FakeQuantLinear:
    fq = FakeQuantLinear(layer.in_features, layer.out_features, bias=layer.bias is not None,
                         bits=bits, group=group)
    fq.load_state_dict(layer.state_dict())
    return fq


@register(QuantSpec)
def _quant(model: nn.Module, spec: QuantSpec) -> nn.Module:
    if is_quantized(model):
        raise ValueError("the network is already quantized")
    edges = _edge_linears(model) if spec.mixed else set()
    bits_of = _layer_bits(model, spec) if spec.layers else {}

    def make(layer: nn.Linear) -> nn.Module:
        bits, group = (8, 0) if id(layer) in edges else (bits_of.get(id(layer), spec.bits),
                                                          spec.group)
        if spec.mode == "ptq":
            return QuantizedLinear.from_linear(layer, bits, group)
        return _fake_quant_layer(layer, bits, group)

    if type(model) is nn.Linear:
        return make(model)
    _replace_linears(model, make)
    return model
