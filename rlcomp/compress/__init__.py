"""Compressors: pure functions ``compress(model, spec) -> new model``.

Implemented so far: pruning (unstructured global/per layer, structured), low rank and 8-bit
quantization (PTQ, QAT). Compact storage and ONNX export are still to come (issue 3).
"""

from rlcomp.compress import lowrank, prune, quant  # noqa: F401  (registers the compressors)
from rlcomp.compress.lowrank import FactorizedLinear, kept_rank
from rlcomp.compress.quant import FakeQuantLinear, QuantizedLinear, quantize_per_channel
from rlcomp.compress.registry import COMPRESSORS, compress
from rlcomp.compress.specs import LowRankSpec, PruneSpec, QuantSpec, format_spec, parse_spec

__all__ = [
    "COMPRESSORS",
    "FactorizedLinear",
    "FakeQuantLinear",
    "LowRankSpec",
    "PruneSpec",
    "QuantSpec",
    "QuantizedLinear",
    "compress",
    "format_spec",
    "kept_rank",
    "parse_spec",
    "quantize_per_channel",
]
