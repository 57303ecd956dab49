"""Compressors: pure functions ``compress(model, spec) -> new model``, their files and exports.

``specs`` (frozen dataclasses, their canonical text, and their names in the results table),
``registry`` (spec type -> compressor), ``prune`` (unstructured global/per layer, structured),
``lowrank``, ``quant`` (8-bit PTQ and QAT), ``layers`` (the layers compressed networks are made
of), ``storage`` (the compact compressed files, and loading either a checkpoint or a compressed
file), ``export`` (ONNX graphs). Fine-tuning lives in :mod:`rlcomp.retrain`.
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
