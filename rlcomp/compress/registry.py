"""``compress(model, spec) -> new model``: one entry point and a registry of compressors."""

from __future__ import annotations

import copy
from collections.abc import Callable

from torch import nn

from rlcomp.compress.specs import Spec, format_spec, parse_spec

Compressor = Callable[[nn.Module, Spec], nn.Module]
"""Transforms a private copy of a model in place (or builds a new one) and returns the result."""

COMPRESSORS: dict[type, Compressor] = {}
"""Compressor of each spec type."""


def register(spec_type: type) -> Callable[[Compressor], Compressor]:
    """Register the function that applies specs of ``spec_type``."""

    def decorate(fn: Compressor) -> Compressor:
        COMPRESSORS[spec_type] = fn
        return fn

    return decorate


def as_specs(spec: Spec | tuple[Spec, ...] | str) -> tuple[Spec, ...]:
    """A spec, a composition or spec text, as the tuple of specs to apply left to right."""
    if isinstance(spec, str):
        return parse_spec(spec)
    if isinstance(spec, tuple):
        return spec
    return (spec,)


def compress(model: nn.Module, spec: Spec | tuple[Spec, ...] | str) -> nn.Module:
    """Apply ``spec`` (one spec, a composition, or its text) to a copy of ``model``.

    The input model is never changed.

    Raises:
        ValueError: for bad spec text, or a method with no compressor yet.
    """
    specs = as_specs(spec)
    for s in specs:
        if s.method == "distill":
            raise ValueError(f"{format_spec(s)} trains a student on the environment, which a "
                             "network alone cannot: use rlcomp.retrain.pipeline."
                             "compressed_policy (or the rlcomp compress command)")
        if type(s) not in COMPRESSORS:
            raise ValueError(f"no compressor for {format_spec(s)} yet")
    out = copy.deepcopy(model)
    for s in specs:
        out = COMPRESSORS[type(s)](out, s)
    return out
