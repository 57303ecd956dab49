"""The candidates choose races: chapter 06's families, and per-layer levels from a sensitivity pass.

**Sensitivity pass.** Each layer of the teacher alone is pruned, rank-cut or quantized at a few
levels (:data:`SENSITIVITY_LEVELS`; quantizing one layer to 4 or 2 bits keeps the others at 8, as
every quantized candidate has them; rank cuts start at 0.6, since a square layer keeps its dense
form, and so its size, up to a cut of one half) and the variant's decisions are compared with the
teacher's on recorded observations (states of the teacher's own episodes). The *action loss* of a
variant (:func:`action_loss`) is, for a greedy policy, the teacher's own value lost by taking the
variant's action, ``mean(max_a Q(s, a) - Q(s, a_variant))`` over the states, as a share of the
teacher's mean spread ``mean(max_a Q - min_a Q)`` (a flipped action between near-equal values costs
nothing; a plain disagreement count misleads there); for a policy acting with its mean, the root
mean square of the action difference as a share of the teacher's action spread (per-dimension
standard deviation over the states). No episode is run: the pass takes about a second.

**Per-layer candidates.** For each tolerance (:data:`TOLERANCES`) every layer gets the most
aggressive level whose action loss alone is within it, giving ``prune=..,layers=..``,
``lowrank=..,layers=..`` and ``quant=..,layers=..`` candidates (one level everywhere is written as
the equivalent global spec), and the compositions prune-then-quantize and rank-cut-then-quantize
at the same tolerance. The losses of layers do not simply add, so these are hypotheses; the race
says which keep the return.

**The book's families** (chapter 06): global pruning, low rank (all layers, or the inner ones),
8-bit and fewer-bit quantization and their compositions (:data:`BOOK_SPECS`); distilled students
alone, with int8 and with mixed int4 (:func:`student_specs`); and fine-tuned ones: gradual pruning
and quantization-aware training (:data:`FINETUNED_SPECS`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from rlcomp.compress.layers import layer_units
from rlcomp.compress.registry import compress
from rlcomp.compress.specs import DISTILL_STEPS, DistillSpec, canonical_spec, parse_spec
from rlcomp.policy import Policy

FAMILIES = ("prune", "lowrank", "quant", "distill", "finetune")
"""The method families choose can try; ``--families`` picks among them."""

SENSITIVITY_LEVELS: dict[str, tuple[float, ...]] = {
    "prune": (0.3, 0.5, 0.7, 0.8, 0.9, 0.95),
    "lowrank": (0.6, 0.75, 0.9, 0.95),
    "quant": (4, 2),
}
"""Levels at which each layer alone is compressed, least to most aggressive."""

TOLERANCES = (0.005, 0.01, 0.02, 0.04)
"""Action losses (shares of the teacher's spread) a layer's level may cost, one candidate each."""

BOOK_SPECS: dict[str, tuple[str, ...]] = {
    "prune": ("prune=0.3", "prune=0.5", "prune=0.7", "prune=0.9"),
    "lowrank": ("lowrank=0.5", "lowrank=0.6,keep_io=true"),
    "quant": ("quant=8", "quant=4", "quant=4,group=32", "quant=4,mixed=true",
              "quant=2,mixed=true"),
    "prune+quant": ("prune=0.3+quant=8", "prune=0.5+quant=8", "prune=0.9+quant=8"),
    "lowrank+quant": ("lowrank=0.6,keep_io=true+quant=8",),
}
"""The teacher's compressions of chapter 06, by the families they need."""

STUDENTS = ("8x8", "16x16", "32x32", "64x64")
"""Hidden widths of the distilled students, as chapter 06 tries them."""

STUDENT_TAILS = ("", "+quant=8", "+quant=4,mixed=true")
"""What follows each student: nothing, int8, mixed int4."""

FINETUNED_SPECS = ("prune=0.9,schedule=gradual", "quant=4,mixed=true,mode=qat",
                   "quant=2,mixed=true,mode=qat")
"""Specs that fine-tuning makes (gradual pruning, quantization-aware training)."""


@dataclass(frozen=True)
class Candidate:
    """A compression to race: its canonical spec and fine-tuning budget, and where it came from."""

    spec: str
    """Canonical spec text."""
    finetune_steps: int = 0
    """Environment steps of fine-tuning after the spec (0: none)."""
    origin: str = "book"
    """``book`` (chapter 06's families), ``sensitivity`` (per-layer levels) or ``student``."""
    note: str = ""
    """How it was made, for the report."""

    @property
    def name(self) -> str:
        """The spec, with the fine-tuning budget when there is one (unique per candidate)."""
        return f"{self.spec} ~ finetune={self.finetune_steps}" if self.finetune_steps else self.spec

    @property
    def student(self) -> str | None:
        """The spec up to and including its distillation step, or None without one."""
        specs = parse_spec(self.spec)
        at = [i for i, s in enumerate(specs) if isinstance(s, DistillSpec)]
        return canonical_spec(specs[: at[0] + 1]) if at else None

    @property
    def tail(self) -> str:
        """The steps after the distillation (``dense`` for none), or the whole spec without one."""
        specs = parse_spec(self.spec)
        at = [i for i, s in enumerate(specs) if isinstance(s, DistillSpec)]
        return canonical_spec(specs[at[0] + 1:] if at else specs)

    @property
    def trains(self) -> bool:
        """Whether making it trains on the environment (distillation or fine-tuning)."""
        return self.finetune_steps > 0 or self.student is not None


@dataclass(frozen=True)
class LayerSensitivity:
    """The action loss of one layer compressed alone at one level."""

    method: str
    layer: int
    level: float
    loss: float


def _decisions(policy: Policy, obs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(network outputs, actions)`` of a policy on observation rows."""
    x = obs if policy.obs_norm is None else policy.obs_norm(obs)
    with torch.no_grad():
        out = policy.net(torch.as_tensor(np.asarray(x, dtype=np.float32))).numpy()
    return out, policy.act(obs)


def action_loss(teacher: Policy, variant: Policy, obs: np.ndarray) -> float:
    """The variant's action loss against the teacher on ``obs`` (see the module docstring)."""
    values, actions = _decisions(teacher, obs)
    other = variant.act(obs)
    if teacher.action == "argmax":
        rows = np.arange(len(obs))
        regret = values.max(axis=1) - values[rows, np.asarray(other, dtype=np.int64)]
        spread = float((values.max(axis=1) - values.min(axis=1)).mean())
        return float(regret.mean() / spread) if spread > 0 else 0.0
    scale = np.asarray(actions, dtype=np.float64).std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    diff = (np.asarray(other, dtype=np.float64) - actions) / scale
    return float(np.sqrt((diff ** 2).mean()))


def _layer_spec(method: str, layer: int, level: float, n_layers: int) -> str:
    if method == "quant":
        bits = [8] * n_layers
        bits[layer] = int(level)
        return f"quant={min(bits)},layers={'/'.join(map(str, bits))}"
    levels = [0.0] * n_layers
    levels[layer] = float(level)
    return f"{method}={level},layers={'/'.join(map(repr, levels))}"


def sensitivity_pass(teacher: Policy, obs: np.ndarray,
                     methods: Iterable[str] = ("prune", "lowrank", "quant"),
                     ) -> list[LayerSensitivity]:
    """The action loss of each layer compressed alone at each of :data:`SENSITIVITY_LEVELS`.

    A level that does not apply to a layer (for example a rank cut of a layer too small to
    factorize) is left out.
    """
    n_layers = len(layer_units(teacher.net))
    found = []
    for method in methods:
        for layer in range(n_layers):
            for level in SENSITIVITY_LEVELS[method]:
                spec = _layer_spec(method, layer, level, n_layers)
                try:
                    net = compress(teacher.net, spec)
                except ValueError:
                    continue
                loss = action_loss(teacher, dataclasses.replace(teacher, net=net), obs)
                found.append(LayerSensitivity(method, layer, float(level), loss))
    return found


def _levels_within(sensitivities: Sequence[LayerSensitivity], method: str, n_layers: int,
                   tolerance: float) -> list[float]:
    """Each layer's most aggressive level whose loss is within ``tolerance`` (none: no change)."""
    none = 8.0 if method == "quant" else 0.0
    levels = [none] * n_layers
    for s in sensitivities:
        if s.method != method or s.loss > tolerance:
            continue
        stronger = s.level < levels[s.layer] if method == "quant" else s.level > levels[s.layer]
        if stronger:
            levels[s.layer] = s.level
    return levels


def _per_layer_text(method: str, levels: list[float]) -> str | None:
    """The spec giving each layer its level (a global spec when all are equal); None for none."""
    if method == "quant":
        bits = [int(b) for b in levels]
        if len(set(bits)) == 1:
            return f"quant={bits[0]}"
        return f"quant={min(bits)},layers={'/'.join(map(str, bits))}"
    if all(v == 0 for v in levels):
        return None
    if len(set(levels)) == 1:
        return f"prune={levels[0]},scope=layer" if method == "prune" else f"lowrank={levels[0]}"
    return f"{method}={max(levels)},layers={'/'.join(map(repr, levels))}"


def per_layer_candidates(sensitivities: Sequence[LayerSensitivity], n_layers: int,
                         families: Iterable[str] = FAMILIES,
                         tolerances: Sequence[float] = TOLERANCES) -> list[Candidate]:
    """The per-layer candidates of each tolerance, and their compositions with quantization."""
    families = set(families)
    found: dict[str, Candidate] = {}
    for tol in tolerances:
        texts = {m: _per_layer_text(m, _levels_within(sensitivities, m, n_layers, tol))
                 for m in ("prune", "lowrank", "quant") if m in families}
        made = [texts.get("prune"), texts.get("lowrank"), texts.get("quant")]
        quant = texts.get("quant")
        for first in ("prune", "lowrank"):
            if texts.get(first) and quant:
                made.append(f"{texts[first]}+{quant}")
        for text in made:
            if text is None:
                continue
            spec = canonical_spec(text)
            found.setdefault(spec, Candidate(spec, origin="sensitivity",
                                             note=f"per-layer levels within action loss {tol:g}"))
    return list(found.values())


def student_specs(students: Sequence[str] = STUDENTS,
                  distill_steps: int = DISTILL_STEPS) -> list[Candidate]:
    """Each student alone, with int8 and with mixed int4 (the spec's steps if not the default)."""
    steps = "" if distill_steps == DISTILL_STEPS else f",steps={distill_steps}"
    return [Candidate(canonical_spec(f"distill={hidden}{steps}{tail}"), origin="student",
                      note=f"a {hidden} student distilled from the teacher")
            for hidden in students for tail in STUDENT_TAILS]


def book_candidates(families: Iterable[str] = FAMILIES, students: Sequence[str] = STUDENTS,
                    distill_steps: int = DISTILL_STEPS, finetune_steps: int = 10_000,
                    can_finetune: bool = True) -> list[Candidate]:
    """The candidates of chapter 06's method families that ``families`` enables."""
    families = set(families)
    found = []
    for need, texts in BOOK_SPECS.items():
        if set(need.split("+")) <= families:
            found += [Candidate(canonical_spec(t), note="chapter 06's family") for t in texts]
    if "distill" in families:
        found += student_specs(students, distill_steps)
    if "finetune" in families and can_finetune and finetune_steps > 0:
        found += [Candidate(canonical_spec(t), finetune_steps, note="fine-tuned while compressed")
                  for t in FINETUNED_SPECS
                  if ("prune" if t.startswith("prune") else "quant") in families]
    return found
