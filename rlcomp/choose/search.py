"""The search: one teacher, a return bound, an objective and a time budget -> a recommendation.

Steps (:func:`choose`):

1. **References.** The dense and the random policy play every episode seed a candidate may play
   (:attr:`RacingPlan.max_episodes`, 300 by default, seeds from :data:`EVAL_SEED` on): the
   dense return with its t interval, and the anchors of the normalized return.
2. **Sensitivity pass and candidates** (:mod:`rlcomp.choose.candidates`): per-layer levels from
   the teacher's recorded states, and chapter 06's families.
3. **Cheap candidates** (pure compressions) are made, measured (:mod:`rlcomp.choose.build`) and
   entered in the race; **expensive ones** (students, fine-tuning) wait in order of their objective,
   measured on stand-ins of their shape.
4. **Racing** (:mod:`rlcomp.choose.racing`): every entered candidate plays the first block; then,
   as long as time remains, the candidates whose objective is better than the next expensive
   candidate's race on, one block each per round, until they are decided; only then is the next
   expensive candidate trained, unless an accepted candidate already beats its objective (then it
   is skipped: it could not become the recommendation) or it would not finish within the time
   left. When no expensive candidate is left, the rest race to the end.
5. **Result**: the recommendation (the accepted candidate with the best objective; the dense
   policy when none is better), the Pareto frontier, and for every candidate its status,
   interval, episodes and seeds, and what was not tried or not finished, and why.

Honest stopping: the budget covers the whole run. The search stops starting work once
``budget - reserve`` seconds have passed (the reserve is for the artifacts) and never starts a
training it expects not to finish by then; work already started finishes, so a run overruns
the search's share by at most one evaluation block or one training.

Every evaluation block and build goes through the results store (:mod:`rlcomp.choose.ledger`),
so a second run with the same inputs reuses all of them. Deterministic: the same teacher, settings
and seed give the same candidates, returns, decisions and recommendation (the ONNX latency
objective is a measurement, stored once and reused).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from rlcomp.checkpoint import Checkpoint
from rlcomp.choose.build import Builder, file_bytes
from rlcomp.choose.candidates import (
    FAMILIES,
    SENSITIVITY_LEVELS,
    STUDENTS,
    TOLERANCES,
    Candidate,
    LayerSensitivity,
    book_candidates,
    per_layer_candidates,
    sensitivity_pass,
)
from rlcomp.choose.frontier import pareto_front
from rlcomp.choose.ledger import Ledger, LedgerCounts
from rlcomp.choose.observations import (
    RECORD_SEED,
    decode_observations,
    encode_observations,
    record_observations,
)
from rlcomp.choose.racing import (
    ACCEPTED,
    DENSE,
    DROPPED,
    RACING,
    RETIRED,
    UNDECIDED,
    Race,
    RacingPlan,
)
from rlcomp.choose.ratio import mean_interval
from rlcomp.compress.layers import layer_units
from rlcomp.compress.specs import DISTILL_STEPS, DistillSpec, parse_spec
from rlcomp.envs import configure_torch
from rlcomp.experiments.store import RANDOM_POLICY, ResultStore
from rlcomp.policy import Policy, RandomPolicy
from rlcomp.rollout import evaluate_policy

OBJECTIVES = {"bytes": "model_bytes", "latency": "latency_onnx_median_s",
              "macs": "macs_per_decision"}
"""Each objective and the build metric it minimizes: model bytes (the compressed file's tensor
payload), the median batch-1 decision time in ONNX Runtime (seconds), multiply-accumulates per
decision."""

EVAL_SEED = 500_000
"""Seed of choose's first evaluation episode for seed 0; seed ``s`` starts at
``EVAL_SEED + s * SEEDS_PER_RUN`` (apart from the book's evaluation seeds 0-99 and the training
runs' selection seeds from 1,000,000)."""

SEEDS_PER_RUN = 10_000
"""Episode seeds reserved for each choose seed (the most a candidate can play)."""

DISTILL_RATE = 2_500.0
"""Environment steps per second assumed for a distillation before one has been timed."""

FINETUNE_RATE = 400.0
"""Environment steps per second assumed for fine-tuning before one has been timed."""

NOT_TRIED, SKIPPED, FAILED, UNFINISHED = "not tried", "skipped", "failed", "not finished"
"""States of a candidate that was not raced to a decision."""


class ChooseError(ValueError):
    """A search that cannot be run as asked (one line, for the user)."""


@dataclass(frozen=True)
class ChooseConfig:
    """What the search looks for and how long it may take."""

    max_drop: float = 0.05
    """The recommendation keeps ``1 - max_drop`` of the dense policy's normalized return."""
    objective: str = "bytes"
    """``bytes``, ``latency`` or ``macs`` (:data:`OBJECTIVES`), smaller is better."""
    budget_seconds: float = 480.0
    """Wall seconds of the whole run, artifacts included."""
    seed: int = 0
    """Seed of distillation and fine-tuning, and of the evaluation episodes' block."""
    plan: RacingPlan = field(default_factory=RacingPlan)
    """Looks, confidence and acceptance minimum of the race."""
    families: tuple[str, ...] = FAMILIES
    """Method families to try (:data:`~rlcomp.choose.candidates.FAMILIES`)."""
    students: tuple[str, ...] = STUDENTS
    """Hidden widths of distilled students."""
    distill_steps: int = DISTILL_STEPS
    """Environment steps of each distillation."""
    finetune_steps: int = 10_000
    """Environment steps of each fine-tuning."""
    tolerances: tuple[float, ...] = TOLERANCES
    """Action losses of the per-layer candidates."""
    observations: int = 1000
    """Recorded observations (sensitivity pass and ONNX parity)."""
    reserve_seconds: float = 30.0
    """Seconds of the budget kept for the artifacts at the end."""

    def __post_init__(self) -> None:
        if isinstance(self.max_drop, bool) or not isinstance(self.max_drop, int | float) \
                or not 0.0 < self.max_drop < 1.0:
            raise ValueError(f"max_drop must be a number in (0, 1), got {self.max_drop!r}")
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective must be one of {', '.join(OBJECTIVES)}, "
                             f"got {self.objective!r}")
        for name in ("budget_seconds", "reserve_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) \
                    or not math.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        for name in ("seed", "finetune_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
        if isinstance(self.observations, bool) or not isinstance(self.observations, int) \
                or self.observations < 1:
            raise ValueError(f"observations must be an integer >= 1, got {self.observations!r}")
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown or not self.families:
            raise ValueError(f"families must be some of {', '.join(FAMILIES)}, "
                             f"got {','.join(self.families) or 'none'}")
        for hidden in self.students:
            DistillSpec(hidden, steps=self.distill_steps)
        if self.plan.max_episodes > SEEDS_PER_RUN:
            raise ValueError(f"a candidate may play at most {SEEDS_PER_RUN} episodes, the last "
                             f"look asks for {self.plan.max_episodes}")

    @property
    def keep(self) -> float:
        """The return bound in percent: ``100 * (1 - max_drop)``."""
        return 100.0 * (1.0 - self.max_drop)

    @property
    def first_seed(self) -> int:
        """Seed of the first evaluation episode."""
        return EVAL_SEED + self.seed * SEEDS_PER_RUN


@dataclass
class CandidateResult:
    """One candidate's outcome: its costs, its interval, and what became of it."""

    name: str
    spec: str
    finetune_steps: int
    origin: str
    note: str
    status: str
    """``accepted``, ``dropped``, ``undecided``, ``retired`` (raced, then beaten by an accepted
    candidate with a better objective), ``not finished`` (racing when time ran out), ``not
    tried``, ``skipped`` (could not beat the recommendation) or ``failed``; ``dense`` for the
    reference."""
    reason: str
    metrics: dict = field(default_factory=dict)
    objective: float = math.nan
    episodes: int = 0
    normalized_return: float = math.nan
    ci_low: float = math.nan
    ci_high: float = math.nan
    first_seed: int | None = None
    mean_return: float = math.nan
    """The candidate's mean return over its episodes."""

    def to_dict(self, objective: str, dense_bytes: float) -> dict:
        """JSON-ready fields (numbers that are not finite become None)."""
        def num(v):
            return float(v) if v is not None and math.isfinite(v) else None

        bytes_ = self.metrics.get("model_bytes")
        return {
            "name": self.name, "spec": self.spec, "finetune_steps": self.finetune_steps,
            "origin": self.origin, "status": self.status, "reason": self.reason,
            "objective": objective, "objective_value": num(self.objective),
            "bytes": None if bytes_ is None else int(bytes_),
            "file_bytes": None if "bytes" not in self.metrics else int(self.metrics["bytes"]),
            "dense_bytes": int(dense_bytes),
            "factor": num(dense_bytes / bytes_) if bytes_ else None,
            "latency_onnx_s": num(self.metrics.get("latency_onnx_median_s")),
            "macs": None if "macs_per_decision" not in self.metrics
            else int(self.metrics["macs_per_decision"]),
            "normalized_return": num(self.normalized_return), "ci_low": num(self.ci_low),
            "ci_high": num(self.ci_high), "mean_return": num(self.mean_return),
            "episodes": self.episodes,
            "seeds": None if not self.episodes
            else [self.first_seed, self.first_seed + self.episodes - 1],
            "training": {k: v for k, v in self.metrics.items()
                         if k.startswith(("distill_", "finetune_"))},
            "note": self.note,
        }


@dataclass
class Reference:
    """A reference policy's mean return with its t interval over its episodes."""

    mean: float
    ci_low: float
    ci_high: float
    episodes: int
    first_seed: int
    returns: list[float]

    def to_dict(self) -> dict:
        return {"mean_return": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high,
                "episodes": self.episodes,
                "seeds": [self.first_seed, self.first_seed + self.episodes - 1]}


@dataclass
class ChooseResult:
    """Everything the search found (see :func:`choose`)."""

    config: ChooseConfig
    teacher: dict
    dense: Reference
    random: Reference
    candidates: list[CandidateResult]
    recommended: CandidateResult
    frontier: list[CandidateResult]
    episodes_used: int
    episodes_if_exhaustive: int
    counts: LedgerCounts
    seconds: float
    phases: dict[str, float]
    budget_exhausted: bool
    observations: np.ndarray
    sensitivity: list[LayerSensitivity]
    artifact_bytes: bytes
    """The recommended policy's compressed file."""

    @property
    def dense_candidate(self) -> CandidateResult:
        """The dense policy's entry."""
        return next(c for c in self.candidates if c.name == DENSE)

    @property
    def dense_bytes(self) -> float:
        """The dense policy's model bytes."""
        return self.dense_candidate.metrics["model_bytes"]

    @property
    def not_done(self) -> list[CandidateResult]:
        """The candidates not raced to a decision (not tried, skipped, failed, not finished)."""
        return [c for c in self.candidates if c.status in (NOT_TRIED, SKIPPED, FAILED,
                                                           UNFINISHED)]


@dataclass(frozen=True)
class Progress:
    """What the search is doing, for a progress bar."""

    phase: str
    seconds: float
    budget: float
    best: str
    best_objective: float
    best_return: float
    episodes_used: int


def _evaluate(policy: Policy | RandomPolicy, env_id: str, episodes: int, seed: int):
    result = evaluate_policy(policy, env_id, episodes, seed)
    return list(result.returns), list(result.lengths), result.eval_seconds


class _Search:
    """The state of one run of :func:`choose` (see the module docstring)."""

    def __init__(self, ckpt: Checkpoint, store: ResultStore, config: ChooseConfig,
                 progress: Callable[[Progress], None] | None) -> None:
        self.ckpt, self.config = ckpt, config
        self.started = time.perf_counter()
        self.deadline = self.started + max(0.0, config.budget_seconds - config.reserve_seconds)
        self.ledger = Ledger(store, ckpt, config.seed)
        self.builder = Builder(ckpt, self.ledger)
        self.metric = OBJECTIVES[config.objective]
        self.progress = progress
        self.phases: dict[str, float] = {}
        self.results: dict[str, CandidateResult] = {}
        self.candidates: dict[str, Candidate] = {}
        self.policies: dict[str, Policy] = {}
        self.rates = {"distill": DISTILL_RATE, "finetune": FINETUNE_RATE}
        self.budget_exhausted = False
        self.race: Race | None = None
        self.phase = "references"

    # --- time -------------------------------------------------------------------------------

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def time_left(self) -> float:
        return self.deadline - time.perf_counter()

    def _timed(self, phase: str, seconds: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds

    def report(self) -> None:
        if self.progress is None:
            return
        if self.race is None:
            self.progress(Progress(self.phase, self.elapsed(), self.config.budget_seconds,
                                   DENSE, math.nan, 100.0, 0))
            return
        best = self.race.best()
        self.progress(Progress(self.phase, self.elapsed(), self.config.budget_seconds, best.name,
                               best.objective, best.interval.estimate,
                               self.race.episodes_used))

    # --- references -------------------------------------------------------------------------

    def reference(self, spec: str) -> Reference:
        env_id, first = self.ckpt.env_id, self.config.first_seed
        returns: list[float] = []
        for block in self.config.plan.blocks:
            seed = first + block.offset

            def run(seed=seed, size=block.size):
                policy = (self.builder.teacher if spec == DENSE
                          else RandomPolicy.for_env(env_id, seed=seed))
                return _evaluate(policy, env_id, size, seed)

            returns += self.ledger.block(spec, 0, False, seed, block.size, run)
        mean, low, high = mean_interval(returns)
        return Reference(mean, low, high, len(returns), first, returns)

    # --- candidates -------------------------------------------------------------------------

    def enter(self, candidate: Candidate, metrics: dict) -> None:
        value = float(metrics[self.metric])
        self.results[candidate.name] = CandidateResult(
            candidate.name, candidate.spec, candidate.finetune_steps, candidate.origin,
            candidate.note, RACING, "", metrics, value, first_seed=self.config.first_seed)
        self.race.add(candidate.name, value)

    def set_status(self, candidate: Candidate, status: str, reason: str,
                   metrics: dict | None = None) -> None:
        result = self.results.get(candidate.name)
        if result is None:
            metrics = metrics or {}
            result = CandidateResult(candidate.name, candidate.spec, candidate.finetune_steps,
                                     candidate.origin, candidate.note, status, reason, metrics,
                                     float(metrics.get(self.metric, math.nan)))
            self.results[candidate.name] = result
        result.status, result.reason = status, reason

    def policy(self, name: str) -> Policy:
        if name not in self.policies:
            self.policies[name] = self.builder.policy(self.candidates[name])
        return self.policies[name]

    def play_block(self, name: str) -> None:
        """Evaluate the next block of a racing candidate (from the store if it has it)."""
        candidate = self.candidates[name]
        block = self.race.next_block(name)
        seed = self.config.first_seed + block.offset
        started = time.perf_counter()
        returns = self.ledger.block(
            candidate.spec, candidate.finetune_steps, candidate.trains, seed, block.size,
            lambda: _evaluate(self.policy(name), self.ckpt.env_id, block.size, seed))
        self.race.record(name, returns)
        self._timed("racing", time.perf_counter() - started)
        self.report()

    def play_round(self, entries) -> bool:
        """One block for each entry (best objective first); False when time ran out."""
        for entry in entries:
            if entry.status != RACING:
                continue
            if self.time_left() <= 0:
                self.budget_exhausted = True
                return False
            self.play_block(entry.name)
        return True

    def training_estimate(self, candidate: Candidate) -> float:
        """Seconds ``candidate`` is expected to train now (0 when the store has it)."""
        if self.builder.is_stored(candidate):
            return 0.0
        if candidate.finetune_steps:
            return candidate.finetune_steps / self.rates["finetune"]
        student = next(s for s in parse_spec(candidate.student) if isinstance(s, DistillSpec))
        return student.steps / self.rates["distill"]

    def train_and_enter(self, candidate: Candidate) -> None:
        """Make an expensive candidate (training unless stored) and enter it in the race."""
        kind = "finetune" if candidate.finetune_steps else "distill"
        self.phase = f"training {candidate.name}"
        self.report()
        started = time.perf_counter()
        try:
            metrics, reused = self.builder.build(candidate)
        except ValueError as exc:
            self.set_status(candidate, FAILED, str(exc).splitlines()[0])
            return
        finally:
            self._timed("training", time.perf_counter() - started)
        steps = metrics.get(f"{kind}_env_steps")
        wall = metrics.get(f"{kind}_wall_seconds")
        if not reused and steps and wall:
            self.rates[kind] = steps / wall
        self.enter(candidate, metrics)

    # --- the run ----------------------------------------------------------------------------

    def run(self) -> ChooseResult:
        config, ckpt = self.config, self.ckpt
        configure_torch()
        started = time.perf_counter()
        self.report()
        dense = self.reference(DENSE)
        random = self.reference(RANDOM_POLICY)
        self._timed("references", time.perf_counter() - started)
        if dense.mean <= random.mean:
            raise ChooseError(f"the policy's mean return {dense.mean:.2f} is not above random "
                              f"actions' {random.mean:.2f} over {dense.episodes} episodes: "
                              "there is no return to keep")

        started = time.perf_counter()
        self.phase = "sensitivity pass"
        self.report()
        teacher = self.builder.teacher
        recording = {"count": config.observations, "seed": RECORD_SEED, "stride": 4}
        obs = decode_observations(self.ledger.teacher_data(
            "observations", recording, lambda: encode_observations(
                record_observations(teacher, ckpt.env_id, config.observations))))
        methods = [m for m in ("prune", "lowrank", "quant") if m in config.families]
        pass_settings = {"observations": recording, "levels": {
            m: list(SENSITIVITY_LEVELS[m]) for m in methods}}
        sensitivity = [LayerSensitivity(**s) for s in self.ledger.teacher_data(
            "sensitivity", pass_settings,
            lambda: [dataclasses.asdict(s) for s in sensitivity_pass(teacher, obs, methods)])]
        can_finetune = ckpt.algo in ("ddqn", "pg")
        listed = book_candidates(config.families, config.students, config.distill_steps,
                                 config.finetune_steps, can_finetune)
        listed += per_layer_candidates(sensitivity, len(layer_units(teacher.net)),
                                       config.families, config.tolerances)
        for c in listed:
            self.candidates.setdefault(c.name, c)
        self._timed("sensitivity", time.perf_counter() - started)

        started = time.perf_counter()
        self.phase = "measuring candidates"
        dense_candidate = Candidate("dense", origin="reference", note="the policy as given")
        self.candidates[DENSE] = dense_candidate
        dense_metrics, _ = self.builder.build(dense_candidate)
        self.race = Race(config.plan, config.keep, dense.returns, random.returns,
                         float(dense_metrics[self.metric]))
        self.results[DENSE] = CandidateResult(
            DENSE, "dense", 0, "reference", dense_candidate.note, "dense",
            "the reference (normalized return 100 by definition)", dense_metrics,
            float(dense_metrics[self.metric]), dense.episodes, 100.0, 100.0, 100.0,
            config.first_seed, dense.mean)
        pending: list[tuple[float, str]] = []
        for name, candidate in self.candidates.items():
            if name == DENSE:
                continue
            try:
                if candidate.trains:
                    metrics = self.builder.planned_costs(candidate)
                    pending.append((float(metrics[self.metric]), name))
                    self.set_status(candidate, NOT_TRIED, "", metrics)
                else:
                    metrics, _ = self.builder.build(candidate)
                    self.enter(candidate, metrics)
            except ValueError as exc:
                self.set_status(candidate, FAILED, str(exc).splitlines()[0])
        pending.sort()
        self._timed("measuring", time.perf_counter() - started)

        self.phase = "racing: first block"
        if self.play_round(self.race.due()):
            self.search(pending)
        return self.finish(dense, random, obs, sensitivity, pending)

    def search(self, pending: list[tuple[float, str]]) -> None:
        """Race and train under the budget (see the module docstring)."""
        while True:
            while pending and self.race.dominated(pending[0][0]):
                _, name = pending.pop(0)
                best = self.race.best()
                self.set_status(self.candidates[name], SKIPPED,
                                f"could not beat {best.name} ({self.config.objective} "
                                f"{best.objective:g})")
            below = pending[0][0] if pending else None
            due = self.race.due(below)
            if due:
                self.phase = "racing"
                if not self.play_round(due):
                    return
                continue
            if pending:
                if self.time_left() <= 0:
                    self.budget_exhausted = True
                    return
                _, name = pending.pop(0)
                candidate = self.candidates[name]
                estimate = self.training_estimate(candidate)
                if estimate > self.time_left():
                    self.set_status(candidate, NOT_TRIED,
                                    f"training would take about {estimate:.0f} s, "
                                    f"{max(self.time_left(), 0):.0f} s of the budget were left")
                    self.budget_exhausted = True
                    continue
                self.train_and_enter(candidate)
                continue
            return

    def finish(self, dense: Reference, random: Reference, obs: np.ndarray,
               sensitivity: list[LayerSensitivity],
               pending: list[tuple[float, str]]) -> ChooseResult:
        keep = self.config.keep
        for _, name in pending:
            self.set_status(self.candidates[name], NOT_TRIED, "the time budget ran out first")
        best = self.race.best()
        for name, entry in self.race.entries.items():
            if name == DENSE:
                continue
            result = self.results[name]
            result.episodes = entry.episodes
            if entry.returns:
                result.mean_return = float(np.mean(entry.returns))
            if entry.interval is not None:
                result.normalized_return = entry.interval.estimate
                result.ci_low, result.ci_high = entry.interval.ci_low, entry.interval.ci_high
            result.status, result.reason = _status(entry, keep, best, self.config.objective,
                                                   self.config.plan.max_episodes)
        candidates = sorted(self.results.values(), key=lambda r: (r.objective, r.name))
        raced = [r for r in candidates if r.episodes > 0]
        frontier = pareto_front(raced, lambda r: r.objective, lambda r: r.normalized_return)
        return ChooseResult(
            config=self.config,
            teacher={"name": self.ckpt.name, "path": str(self.ckpt.path),
                     "env_id": self.ckpt.env_id, "algo": self.ckpt.algo,
                     "digest": self.ckpt.digest},
            dense=dense, random=random, candidates=candidates,
            recommended=self.results[best.name], frontier=frontier,
            episodes_used=self.race.episodes_used,
            episodes_if_exhaustive=self.race.episodes_if_exhaustive,
            counts=self.ledger.counts, seconds=self.elapsed(), phases=dict(self.phases),
            budget_exhausted=self.budget_exhausted, observations=obs, sensitivity=sensitivity,
            artifact_bytes=self.artifact(best.name))

    def artifact(self, name: str) -> bytes:
        """The compressed file of a candidate."""
        candidate = self.candidates[name]
        return file_bytes(self.ckpt, self.policy(name), candidate.spec,
                          candidate.finetune_steps)


def _status(entry, keep: float, best, objective: str, max_episodes: int) -> tuple[str, str]:
    """The final status of a race entry and the reason, in words."""
    interval = entry.interval
    if entry.status == ACCEPTED:
        return ACCEPTED, f"lower bound {interval.ci_low:.1f} >= {keep:g}"
    if entry.status == DROPPED:
        return DROPPED, f"upper bound {interval.ci_high:.1f} < {keep:g}"
    if entry.status == UNDECIDED:
        return UNDECIDED, f"the interval still straddles {keep:g} after {max_episodes} episodes"
    if entry.status == RETIRED:
        beaten = f"could not beat {best.name} ({objective} {best.objective:g})"
        if not entry.episodes:
            return SKIPPED, beaten
        return RETIRED, f"{beaten}; stopped after {entry.episodes} episodes"
    return UNFINISHED, f"racing when the time budget ran out ({entry.episodes} episodes)"


def choose(ckpt: Checkpoint, store: ResultStore, config: ChooseConfig | None = None,
           progress: Callable[[Progress], None] | None = None) -> ChooseResult:
    """Search compressions of ``ckpt``'s policy for the best objective that keeps the return.

    Args:
        ckpt: the teacher (any checkpoint our loaders read, imported ones included).
        store: the results store every evaluation and build goes through (opened for writing).
        config: bound, objective, budget, seed and search settings.
        progress: called after each block and before each training.

    Returns:
        The recommendation, the frontier and every candidate's outcome (see :class:`ChooseResult`).

    Raises:
        ChooseError: when the policy is not better than random actions.
        ValueError: for bad settings.
    """
    return _Search(ckpt, store, config or ChooseConfig(), progress).run()
