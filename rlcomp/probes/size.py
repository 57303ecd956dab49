"""Size of a (compressed) network: parameters, weights, nonzeros, scales and FLOPs per decision.

Definitions (the ones every chapter uses):

- ``params``: the weight and bias entries the model holds, whatever their type: a Linear layer's
  weight and bias, both factors of a :class:`~rlcomp.compress.FactorizedLinear` (the first factor
  has no bias), the integer weights (8, 4 or 2 bits) and int8 biases of a
  :class:`~rlcomp.compress.QuantizedLinear`.
  A pruned weight that is zero still counts (it is held); structured pruning really removes it.
- ``weights``: the weight entries only (``params`` without biases).
- ``nonzero_weights``: weight entries that are not zero (for quantized layers, nonzero integers).
- ``biases``: bias entries.
- ``scales``: quantization scales (float32: one per output channel, or per group, of a quantized
  weight matrix, one per int8 bias vector), reported apart from ``params``.
- ``flops``: 2 x the multiply-adds of one forward pass at batch size 1, every weight matrix counted
  dense (a pruned layer still multiplies by its zeros; a factorized layer costs both factors).
  Bias additions, activations, the dequantization an eager int8 layer does on every call, and the
  action selection are not counted.
- ``sparse_flops``: 2 x ``nonzero_weights``, the multiply-adds a kernel that skipped zeros would do.
- ``tensor_bytes``: bytes of the weight, bias and scale tensors at their dtypes (no file format);
  int4 and int2 weights (held as int8 in memory) count at their packed width, a layer's weights
  rounded up to whole bytes, as the compact file stores them.
- :func:`theoretical_bytes` (apart from :class:`ModelSize`): bytes of the information in a
  compressed network, parameters x bits / 8, a sparse matrix as bitmask + nonzeros when smaller.

A :class:`~rlcomp.compress.FakeQuantLinear` (QAT) counts as the float layer it is; after training,
PTQ-style conversion to ``QuantizedLinear`` is what holds integer values.

Only :class:`torch.nn.Linear` (including :class:`~rlcomp.compress.FakeQuantLinear` and the
factors of a :class:`~rlcomp.compress.FactorizedLinear`), ``QuantizedLinear`` and modules without
tensors of their own (activations, containers) are understood; anything else raises, so that no
tensor goes uncounted.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import nn

from rlcomp.compress.quant import FakeQuantLinear, QuantizedLinear


@dataclass(frozen=True)
class ModelSize:
    """The size measures of one network; see the module docstring for their definitions."""

    params: int
    weights: int
    nonzero_weights: int
    biases: int
    scales: int
    flops: int
    sparse_flops: int
    tensor_bytes: int

    @property
    def sparsity(self) -> float:
        """Fraction of weight entries that are zero."""
        return 1.0 - self.nonzero_weights / self.weights if self.weights else 0.0

    def to_dict(self) -> dict:
        """JSON-ready fields plus ``sparsity``."""
        return {**asdict(self), "sparsity": self.sparsity}


def _bytes(tensors: tuple[torch.Tensor | None, ...]) -> int:
    return sum(t.numel() * t.element_size() for t in tensors if t is not None)


def _owns_tensors(module: nn.Module) -> bool:
    own = (*module.parameters(recurse=False), *module.buffers(recurse=False))
    return any(t is not None for t in own)


Layer = tuple[torch.Tensor, torch.Tensor | None, tuple[torch.Tensor, ...], int]
"""``(weight, bias, scales, bits of one weight entry as stored)``."""


def _layers(net: nn.Module) -> list[Layer]:
    """The :data:`Layer` of every weight matrix in ``net``, in module order."""
    found: list[Layer] = []
    for name, module in net.named_modules():
        if isinstance(module, nn.Linear):
            found.append((module.weight, module.bias, (), 8 * module.weight.element_size()))
        elif isinstance(module, QuantizedLinear):
            scales = tuple(t for t in (module.scale, module.bias_scale) if t is not None)
            found.append((module.qweight, module.qbias, scales, module.bits))
        elif _owns_tensors(module):
            raise TypeError(f"size: cannot count the tensors of {name or 'the network'} "
                            f"({type(module).__name__})")
    return found


def model_size(net: nn.Module) -> ModelSize:
    """All the size measures of ``net`` at once."""
    layers = _layers(net)
    weights = sum(w.numel() for w, _, _, _ in layers)
    biases = sum(b.numel() for _, b, _, _ in layers if b is not None)
    nonzero = sum(int(torch.count_nonzero(w.detach())) for w, _, _, _ in layers)
    return ModelSize(
        params=weights + biases,
        weights=weights,
        nonzero_weights=nonzero,
        biases=biases,
        scales=sum(t.numel() for _, _, scales, _ in layers for t in scales),
        flops=2 * weights,
        sparse_flops=2 * nonzero,
        tensor_bytes=sum(math.ceil(w.numel() * bits / 8) + _bytes((b, *scales))
                         for w, b, scales, bits in layers),
    )


def theoretical_bytes(net: nn.Module, scales: bool = False) -> int:
    """Bytes of the information in a compressed network, before any container overhead.

    Each stored parameter costs its bits / 8 (4 bytes float32; int8, int4 or int2 weights 1, 1/2
    or 1/4 byte; int8 biases 1 byte); a weight matrix that is cheaper as a bitmask plus its
    nonzeros costs ``numel / 8 + nnz x bits / 8``. File headers are overhead and not counted.

    Args:
        net: the network.
        scales: also count the float32 quantization scales (4 bytes each); by default they are
            overhead and not counted.
    """
    total = 0.0
    for m in net.modules():
        if isinstance(m, FakeQuantLinear):
            m = m.quantized()
        if type(m) is nn.Linear:
            weight, bias, bits, bias_bytes = m.weight, m.bias, 32, 4
        elif isinstance(m, QuantizedLinear):
            weight, bias, bits, bias_bytes = m.qweight, m.qbias, m.bits, 1
            if scales:
                total += 4 * (m.scale.numel() + (0 if m.bias_scale is None else 1))
        else:
            continue
        numel, nnz = weight.numel(), int((weight != 0).sum())
        total += min(numel * bits / 8, numel / 8 + nnz * bits / 8)
        total += 0 if bias is None else bias.numel() * bias_bytes
    return math.ceil(total)
