"""Compressors: pure functions ``compress(model, spec) -> new model``.

Pruning (unstructured global/per layer, structured), low rank and 8-bit quantization (PTQ, QAT)
are registered here; ``finetune`` continues training while a compression holds, ``storage``
writes and reads the compact files, ``export`` builds ONNX graphs.
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
