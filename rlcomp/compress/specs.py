"""Compression specs: frozen dataclasses that validate themselves, and their canonical text form.

Text form: ``METHOD=LEVEL[,key=value...]``; several joined by ``+`` apply left to right; ``dense``
is no compression. ``parse(str(spec)) == spec`` for every spec.

- ``prune=P`` (0 <= P < 1): the fraction P of all Linear weights (not biases) with the smallest
  magnitudes set to zero, ranked across layers; ``scope=layer`` ranks within each layer;
  ``structured=true`` removes whole hidden neurons instead (the network becomes narrower);
  ``schedule=gradual`` reaches P gradually while fine-tuning (the last step of a spec);
  ``layers=0.9/0.5/0.0`` prunes each layer by its own amount (ranked within the layer), P being
  the largest of them.
- ``lowrank=R`` (0 <= R < 1): each Linear layer of full rank ``r`` keeps rank
  ``max(1, ceil((1 - R) * r))`` of its SVD; ``keep_io=true`` leaves the first and last layer whole;
  ``layers=0.0/0.8/0.0`` gives each layer its own reduction, R being the largest of them.
- ``distill=64x64``: a new MLP student with these hidden widths, trained to act like the network
  so far (the teacher); ``tau=T`` (default 0.01), ``steps=N`` environment steps (default 200,000).
  Not a pure transform: the retraining layer runs it (``compress`` refuses it).
- ``quant=B`` (B in 8, 4, 2): B-bit symmetric weights (int8 biases), a scale per output channel;
  ``group=G`` a scale per G consecutive inputs of each row instead; ``mixed=true`` keeps the first
  and last layers at 8 bits; ``layers=8/4/8`` gives each layer its own width, B being the
  smallest of them; ``mode=qat`` for fake quantization during (fine-)training.

Per-layer levels (``layers=``, one per layer, joined by ``/``): a *layer* is a top-level module
of the network that holds Linear weights (a factorized layer counts as one), in order, as
:func:`rlcomp.compress.layers.layer_units` lists them; the network must have exactly that many.
The spec's level stays the most aggressive of them, so tables and figures still read it as the
spec's level. Specs without ``layers`` are written and keyed as before.

In a composition each step sees the network the previous step made: ``lowrank=0.3+prune=0.5``
factorizes, then prunes half of all weights, the factors' weights included.

Naming for tables and figures: :func:`spec_columns` gives a spec's ``method`` name, its ``level``
and one level column per method (:data:`METHODS`), as the tidy results table shows them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import ClassVar

TRUE_WORDS, FALSE_WORDS = ("true", "1", "yes"), ("false", "0", "no")

PRUNE_SCHEDULES = ("oneshot", "gradual")
"""How pruning reaches its amount: at once, or gradually over fine-tuning."""

QUANT_BITS = (8, 4, 2)
"""The weight widths ``quant`` supports."""


def _level(name: str, value: float, upper_open: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not (math.isfinite(value) and 0.0 <= value < 1.0):
        raise ValueError(f"{name} must be in [0, 1), got {value:g}")
    return value


def _per_layer(method: str, values: object, check) -> tuple:
    """``values`` (a sequence of per-layer levels) as a tuple, each checked by ``check``."""
    if isinstance(values, str) or not isinstance(values, tuple | list):
        raise TypeError(f"{method} layers must be a sequence of per-layer levels, got {values!r}")
    return tuple(check(v) for v in values)


def _set_layers(spec: object, check, level: str, extreme, clash: str | None = None) -> None:
    """Check ``spec.layers`` and store it as a tuple.

    Args:
        spec: a spec being made (its ``method``, ``layers`` and the field named ``level``).
        check: checks one per-layer level and returns it.
        level: the name of the spec's level field, which must be the most aggressive layer's.
        extreme: ``max`` (larger is more aggressive) or ``min``.
        clash: why per-layer levels do not combine with the spec's other options, if they don't.
    """
    method = spec.method
    layers = _per_layer(method, spec.layers, check)
    object.__setattr__(spec, "layers", layers)
    if not layers:
        return
    if clash:
        raise ValueError(clash)
    value = getattr(spec, level)
    if value != extreme(layers):
        word = "largest" if extreme is max else "smallest"
        raise ValueError(f"{method} layers={_format_value(layers)} needs {level} "
                         f"{_format_value(extreme(layers))} (the {word} per-layer level), got "
                         f"{_format_value(value)}")


@dataclass(frozen=True)
class PruneSpec:
    """Magnitude pruning of Linear weights."""

    amount: float
    """Fraction of weights to remove, in [0, 1)."""
    scope: str = "global"
    """``global`` ranks magnitudes across all layers, ``layer`` within each layer."""
    structured: bool = False
    """Remove whole hidden neurons (smallest incoming-weight L2 norms) instead of single weights."""
    schedule: str = "oneshot"
    """``oneshot`` prunes at once; ``gradual`` raises the sparsity to ``amount`` over a
    fine-tuning budget (Zhu & Gupta's cubic schedule, :mod:`rlcomp.retrain.finetune`); without
    fine-tuning it is the one-shot result."""
    layers: tuple[float, ...] = ()
    """Per-layer amounts, each ranked within its layer (empty: ``amount`` everywhere, as
    ``scope`` says); ``amount`` must then be the largest of them."""

    method: ClassVar[str] = "prune"

    def __post_init__(self) -> None:
        object.__setattr__(self, "amount", _level("prune amount", self.amount))
        if self.scope not in ("global", "layer"):
            raise ValueError(f"prune scope must be global or layer, got {self.scope!r}")
        if not isinstance(self.structured, bool):
            raise TypeError(f"prune structured must be true or false, got {self.structured!r}")
        if self.schedule not in PRUNE_SCHEDULES:
            raise ValueError(f"prune schedule must be oneshot or gradual, got {self.schedule!r}")
        if self.schedule == "gradual" and self.structured:
            raise ValueError("prune schedule=gradual removes single weights; it does not "
                             "combine with structured=true")
        clash = [name for name, value, default in (
            ("scope=layer", self.scope, "global"), ("structured=true", self.structured, False),
            ("schedule=gradual", self.schedule, "oneshot")) if value != default]
        _set_layers(self, lambda v: _level("prune layer amount", v), "amount", max,
                    f"prune layers= ranks within each layer at once; it does not combine with "
                    f"{clash[0]}" if clash else None)


@dataclass(frozen=True)
class LowRankSpec:
    """Truncated SVD of each Linear layer's weight matrix."""

    reduction: float
    """Fraction of each layer's rank to drop, in [0, 1)."""
    keep_io: bool = False
    """Leave the first (input) and last (output) layers at full rank."""
    layers: tuple[float, ...] = ()
    """Per-layer reductions (empty: ``reduction`` everywhere); ``reduction`` must then be the
    largest of them (0 keeps a layer whole)."""

    method: ClassVar[str] = "lowrank"

    def __post_init__(self) -> None:
        object.__setattr__(self, "reduction", _level("lowrank reduction", self.reduction))
        if not isinstance(self.keep_io, bool):
            raise TypeError(f"lowrank keep_io must be true or false, got {self.keep_io!r}")
        _set_layers(self, lambda v: _level("lowrank layer reduction", v), "reduction", max,
                    "lowrank layers= sets every layer's reduction; it does not combine with "
                    "keep_io=true (give the first and last layers 0)" if self.keep_io else None)


@dataclass(frozen=True)
class QuantSpec:
    """Symmetric integer quantization of Linear weights (biases always int8)."""

    bits: int = 8
    """Bits per weight: 8, 4 or 2."""
    group: int = 0
    """0: one scale per output channel; ``G`` > 0: one per ``G`` consecutive inputs of each row
    (the last group of a row is shorter when ``G`` does not divide the input width)."""
    mixed: bool = False
    """Quantize the first and last layers as ``quant=8`` does, the others at ``bits``."""
    mode: str = "ptq"
    """``ptq`` after training, ``qat`` fake quantization with a straight-through estimator."""
    layers: tuple[int, ...] = ()
    """Per-layer widths, each 8, 4 or 2 (empty: ``bits`` everywhere, as ``mixed`` says);
    ``bits`` must then be the smallest of them; ``group`` applies to every layer."""

    method: ClassVar[str] = "quant"

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or not isinstance(self.bits, int):
            raise TypeError(f"quant bits must be an integer, got {self.bits!r}")
        if self.bits not in QUANT_BITS:
            raise ValueError(f"quant bits must be 8, 4 or 2, got {self.bits}")
        if isinstance(self.group, bool) or not isinstance(self.group, int):
            raise TypeError(f"quant group must be an integer, got {self.group!r}")
        if self.group < 0:
            raise ValueError("quant group must be 0 (a scale per output channel) or a positive "
                             f"group size, got {self.group}")
        if not isinstance(self.mixed, bool):
            raise TypeError(f"quant mixed must be true or false, got {self.mixed!r}")
        if self.mixed and self.bits == 8:
            raise ValueError("quant mixed=true needs bits 4 or 2 (at 8 bits every layer is "
                             "already 8-bit)")
        if self.mode not in ("ptq", "qat"):
            raise ValueError(f"quant mode must be ptq or qat, got {self.mode!r}")
        _set_layers(self, _layer_bits, "bits", min,
                    "quant layers= sets every layer's width; it does not combine with "
                    "mixed=true" if self.mixed else None)


def _layer_bits(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"quant layer bits must be integers, got {value!r}")
    if value not in QUANT_BITS:
        raise ValueError(f"quant layer bits must be 8, 4 or 2, got {value}")
    return value


DISTILL_STEPS = 200_000
"""Environment steps of a distillation budget by default (:mod:`rlcomp.retrain.distill`)."""


@dataclass(frozen=True)
class DistillSpec:
    """Distillation into a new, smaller MLP student (run by :mod:`rlcomp.retrain.distill`).

    Not a pure transform of a network: it trains the student on the environment, so
    :func:`~rlcomp.compress.registry.compress` refuses it and the retraining layer runs it
    (:func:`rlcomp.retrain.pipeline.compressed_policy`). Steps before it compress the teacher,
    steps after it compress the student.
    """

    hidden: str
    """The student's hidden widths joined by ``x``: ``64x64``, ``16x16``, ``32``."""
    tau: float = 0.01
    """Temperature of the teacher's softmax over Q-values (discrete actions only)."""
    steps: int = DISTILL_STEPS
    """Environment steps of the budget (gradient steps are one per eight of them)."""

    method: ClassVar[str] = "distill"

    def __post_init__(self) -> None:
        if not isinstance(self.hidden, str) or not all(
                part.isdigit() and int(part) >= 1 for part in self.hidden.split("x")):
            raise ValueError(f"distill needs hidden widths like 64x64, got {self.hidden!r}")
        object.__setattr__(self, "hidden", "x".join(str(int(p)) for p in self.hidden.split("x")))
        if isinstance(self.tau, bool) or not isinstance(self.tau, int | float) \
                or not (math.isfinite(self.tau) and self.tau > 0):
            raise ValueError(f"distill tau must be a number > 0, got {self.tau!r}")
        object.__setattr__(self, "tau", float(self.tau))
        if isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps < 8:
            raise ValueError(f"distill steps must be an integer >= 8, got {self.steps!r}")

    @property
    def sizes(self) -> tuple[int, ...]:
        """The hidden widths as integers."""
        return tuple(int(p) for p in self.hidden.split("x"))


Spec = PruneSpec | LowRankSpec | QuantSpec | DistillSpec
"""One compression step."""

SPEC_TYPES: dict[str, type] = {"prune": PruneSpec, "lowrank": LowRankSpec, "quant": QuantSpec,
                               "distill": DistillSpec}
"""Spec class of each method name."""

METHODS = tuple(SPEC_TYPES)
"""The compression methods; each has a level column in the tidy results table."""

_DEFAULTS = {"prune": {"scope": "global", "structured": False, "schedule": "oneshot",
                       "layers": ()},
             "lowrank": {"keep_io": False, "layers": ()},
             "quant": {"group": 0, "mixed": False, "mode": "ptq", "layers": ()},
             "distill": {"tau": 0.01, "steps": DISTILL_STEPS}}


LAYER_SEPARATOR = "/"
"""Joins the per-layer levels of a ``layers=`` option."""


def _format_value(value: object) -> str:
    if isinstance(value, tuple):
        return LAYER_SEPARATOR.join(_format_value(v) for v in value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def format_spec(specs: Spec | tuple[Spec, ...]) -> str:
    """The canonical text of a spec or of a composition (``dense`` for the empty one)."""
    if not isinstance(specs, tuple):
        specs = (specs,)
    if not specs:
        return "dense"
    parts = []
    for spec in specs:
        level_field, *option_fields = fields(spec)
        text = f"{spec.method}={_format_value(getattr(spec, level_field.name))}"
        for f in option_fields:
            value = getattr(spec, f.name)
            if value != _DEFAULTS[spec.method][f.name]:
                text += f",{f.name}={_format_value(value)}"
        parts.append(text)
    return "+".join(parts)


def _parse_value(method: str, key: str, text: str, annotation: str):
    if annotation.startswith("tuple["):
        item = annotation.removeprefix("tuple[").partition(",")[0]
        return tuple(_parse_value(method, key, part.strip(), item)
                     for part in text.split(LAYER_SEPARATOR))
    if annotation == "bool":
        if text.lower() in TRUE_WORDS:
            return True
        if text.lower() in FALSE_WORDS:
            return False
        raise ValueError(f"{method} {key} must be true or false, got {text!r}")
    if annotation == "int":
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{method} {key} must be an integer, got {text!r}") from None
    if annotation == "float":
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{method} {key} must be a number, got {text!r}") from None
    return text


def parse_spec(text: str) -> tuple[Spec, ...]:
    """Parse canonical (or looser) spec text into the sequence of specs it applies, left to right.

    Raises:
        ValueError: naming the bad part and what is accepted.
    """
    if not isinstance(text, str):
        raise TypeError(f"spec must be a string, got {type(text).__name__}")
    text = text.strip()
    if text == "dense":
        return ()
    if not text:
        raise ValueError("empty spec (use 'dense' for no compression)")
    specs = []
    for part in text.split("+"):
        method, sep, rest = part.strip().partition("=")
        method = method.strip()
        if method not in SPEC_TYPES:
            raise ValueError(f"unknown compression method {method!r} in {part!r} "
                             f"(methods: {', '.join(SPEC_TYPES)}, or dense)")
        if not sep or not rest.strip():
            raise ValueError(f"{method} needs a level, as in {method}=0.5")
        cls = SPEC_TYPES[method]
        level_field, *option_fields = fields(cls)
        options = {f.name: f.type for f in option_fields}
        level_text, *pairs = rest.split(",")
        kwargs = {level_field.name: _parse_value(method, level_field.name, level_text.strip(),
                                                 level_field.type)}
        for pair in pairs:
            key, sep, value = pair.partition("=")
            key = key.strip()
            if key not in options:
                raise ValueError(f"{method} has no option {key!r} "
                                 f"(options: {', '.join(options) or 'none'})")
            if not sep:
                raise ValueError(f"{method} option {key!r} needs a value, as in {key}=...")
            if key in kwargs:
                raise ValueError(f"{method} option {key!r} is given twice in {part.strip()!r}")
            kwargs[key] = _parse_value(method, key, value.strip(), options[key])
        specs.append(cls(**kwargs))
    return tuple(specs)


def canonical_spec(spec: str | Spec | tuple[Spec, ...]) -> str:
    """The canonical text of spec text (any form :func:`parse_spec` accepts) or spec objects."""
    if isinstance(spec, str):
        spec = parse_spec(spec)
    return format_spec(spec)


_ABSENT_LEVEL = {"prune": 0.0, "lowrank": 0.0, "quant": math.nan, "distill": math.nan}


def _variant(spec: Spec) -> str:
    """``prune``, or the method with its non-default options: ``prune[layer,structured]``.

    A boolean option and per-layer levels show as the option's name (``prune[layers]``), a number
    as ``name=value`` (``quant[group=32,mixed]``, ``distill[tau=0.1]``), text as its value.
    """
    options = []
    for f in fields(spec)[1:]:
        value = getattr(spec, f.name)
        if value == f.default:
            continue
        if isinstance(value, bool | tuple):
            options.append(f.name)
        elif isinstance(value, int | float):
            options.append(f"{f.name}={value:g}")
        else:
            options.append(str(value))
    return f"{spec.method}[{','.join(options)}]" if options else spec.method


def _numeric_level(spec: Spec) -> float:
    """A step's level as a number; a distillation's is its student's first hidden width."""
    if isinstance(spec, DistillSpec):
        return float(spec.sizes[0])
    return float(getattr(spec, fields(spec)[0].name))


def spec_columns(spec: str | Spec | tuple[Spec, ...]) -> dict[str, str | float]:
    """The tidy frame's description of a compression: method, level and each method's level.

    - ``method``: ``dense``; a method name with its non-default options in brackets (``prune``,
      ``prune[layer]``, ``prune[structured]``, ``lowrank[keep_io]``, ``quant[qat]``,
      ``quant[group=32,mixed]``, ``distill[tau=0.1]``); or, for a composition, the steps'
      names joined by ``+`` (``lowrank+prune``).
    - ``level``: the single step's level (prune amount, lowrank reduction, quant bits, a
      distilled student's first hidden width); 0 for dense; NaN for a composition.
    - one column per method (``prune``, ``lowrank``, ``quant``, ``distill``): that method's level
      in the spec, whatever its options. Absent prune or lowrank is 0 (the same network as no
      step); absent quant or distill is NaN (full precision has no bit count, the teacher no
      student); a method used twice is NaN.

    Example: ``lowrank=0.3+prune=0.5`` gives ``method="lowrank+prune"``, ``level=nan``,
    ``prune=0.5``, ``lowrank=0.3``, ``quant=nan``.
    """
    specs = parse_spec(spec) if isinstance(spec, str) else spec
    if not isinstance(specs, tuple):
        specs = (specs,)
    levels = [_numeric_level(s) for s in specs]
    columns: dict[str, str | float] = {
        "method": "+".join(_variant(s) for s in specs) or "dense",
        "level": levels[0] if len(specs) == 1 else (0.0 if not specs else math.nan),
    }
    for method in METHODS:
        found = [lv for s, lv in zip(specs, levels, strict=True) if s.method == method]
        columns[method] = found[0] if len(found) == 1 else (
            _ABSENT_LEVEL[method] if not found else math.nan)
    return columns
