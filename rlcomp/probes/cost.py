"""Machine-independent cost of one decision: multiply-accumulates and bytes of weights read.

These counts say what a compression should change before any clock says what did. They are
computed from the network in memory, for one batch-1 forward pass of our eager implementation:

- ``macs``: the multiply-accumulates the forward pass executes. A Linear layer (float, or
  :class:`~rlcomp.compress.FakeQuantLinear`) costs ``in x out``; a pruned layer is a dense Linear
  holding zeros, so it still costs ``in x out``; a :class:`~rlcomp.compress.FactorizedLinear` of
  rank ``k`` costs ``k x (in + out)`` (its two factors, each counted as the layer it is); a
  :class:`~rlcomp.compress.QuantizedLinear` costs ``in x out`` (it dequantizes, then multiplies
  in float32).
- ``macs_nonzero``: the same with the zero weights skipped, one per nonzero weight (int8 zeros
  included: a weight that rounds to zero is zero): what a sparse kernel would execute.
- ``weight_bytes_read``: bytes of the tensors the forward pass reads, each once, at its stored
  type: float32 weights and biases 4 bytes an entry, int8 weights and biases 1 byte, the float32
  scales of an int8 layer (one per output channel, one per bias vector) 4 bytes. Zeros of a
  pruned layer are read like any other weight. Not counted: activations, and the float32 copy of
  the weights that an int8 layer writes and reads again on every call in eager PyTorch (that is
  why it is slower there, see :mod:`rlcomp.compress.quant`).

Bias additions, activation functions and the action rule (argmax, clipping) are elementwise and
not counted. So is the observation normaliser: it sits outside the network (``Policy.obs_norm``)
and does ``obs_dim`` subtractions and divisions, no matrix work.

Understood modules: ``nn.Linear`` (and subclasses such as ``FakeQuantLinear``),
``QuantizedLinear``, ``FactorizedLinear``, ``nn.Sequential`` (its children in turn) and modules
with neither tensors nor children (activations). Anything else raises :class:`TypeError`, so that
no matrix work goes uncounted.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from rlcomp.compress.layers import FactorizedLinear
from rlcomp.compress.quant import QuantizedLinear


@dataclass(frozen=True)
class DecisionCost:
    """Counts of one batch-1 forward pass; see the module docstring for their definitions."""

    macs: int
    """Multiply-accumulates executed (zeros included)."""
    macs_nonzero: int
    """Multiply-accumulates with the zero weights skipped."""
    weight_bytes_read: int
    """Bytes of weights, biases, scales and factors read."""

    def metrics(self) -> dict[str, float]:
        """The counts as floats under the results store's names."""
        return {"macs_per_decision": float(self.macs),
                "macs_nonzero_per_decision": float(self.macs_nonzero),
                "weight_bytes_read": float(self.weight_bytes_read)}

    def to_dict(self) -> dict:
        """JSON-ready fields."""
        return asdict(self)


def _tensor_bytes(module: nn.Module) -> int:
    """Bytes of the module's own parameters and buffers at their types."""
    own = (*module.parameters(recurse=False), *module.buffers(recurse=False))
    return sum(t.numel() * t.element_size() for t in own if t is not None)


def _is_elementwise(module: nn.Module) -> bool:
    """A module with neither tensors nor children of its own (an activation)."""
    return _tensor_bytes(module) == 0 and next(module.children(), None) is None


def _count(module: nn.Module, name: str) -> tuple[int, int, int]:
    """``(macs, macs_nonzero, bytes)`` of ``module`` and everything inside it."""
    if isinstance(module, nn.Linear):
        weight = module.weight.detach()
        return weight.numel(), int(torch.count_nonzero(weight)), _tensor_bytes(module)
    if isinstance(module, QuantizedLinear):
        weight = module.qweight
        return weight.numel(), int(torch.count_nonzero(weight)), _tensor_bytes(module)
    if isinstance(module, FactorizedLinear | nn.Sequential):
        if _tensor_bytes(module):
            raise TypeError(f"decision cost: {name} ({type(module).__name__}) holds tensors of "
                            "its own")
        macs = nonzero = read = 0
        for key, child in module.named_children():
            m, z, b = _count(child, f"{name}.{key}" if name else key)
            macs, nonzero, read = macs + m, nonzero + z, read + b
        return macs, nonzero, read
    if _is_elementwise(module):
        return 0, 0, 0
    raise TypeError(f"decision cost: cannot count {name or 'the network'} "
                    f"({type(module).__name__}); known: Linear, QuantizedLinear, "
                    "FactorizedLinear, Sequential and parameter-free activations")


def decision_cost(net: nn.Module) -> DecisionCost:
    """Multiply-accumulates and bytes of weights read by one batch-1 forward pass of ``net``.

    Raises:
        TypeError: naming the first module (and its type) that the counts do not understand.
    """
    macs, nonzero, read = _count(net, "")
    return DecisionCost(macs=macs, macs_nonzero=nonzero, weight_bytes_read=read)
