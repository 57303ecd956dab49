"""Racing: candidates get evaluation episodes in blocks and leave as soon as their interval decides.

Every candidate plays the same sequence of episode seeds, in blocks that end at the *looks*
(:attr:`RacingPlan.looks`, cumulative episodes: 25, 50, 100, 200, 300 by default). After each
block its normalized return and interval are computed from all its episodes so far, paired with
the dense and random policies' episodes on the same seeds (:func:`~rlcomp.choose.ratio.
normalized_interval`), and the *drop rule* decides:

- **dropped**: the interval's upper end is below the bound ``keep = 100 * (1 - max_drop)``: the
  candidate misses the return bound.
- **accepted**: the lower end is at least ``keep``, after at least
  :attr:`RacingPlan.min_accept` episodes: the candidate keeps the return. (The minimum guards
  against a few identical episodes making a point interval.)
- **undecided**: neither, after the last look.
- otherwise it races on.

Error over the looks: a candidate's interval is looked at up to ``K = len(looks)`` times, so each
look uses the two-sided confidence ``1 - (1 - confidence) / K`` (Bonferroni): over all its looks,
the chance that a candidate whose true normalized return is at least ``keep`` is ever dropped is
at most ``(1 - confidence) / 2`` (2.5% by default), and so is the chance that one below ``keep``
is ever accepted. The intervals reported are these per-look intervals, simultaneous over the
looks. The guarantee is per candidate; the recommendation picks the accepted candidate with the
best objective among many, and ``benchmarks/choose_racing_coverage.py`` measures how often its
lower bound fails by simulation.

Dominance: once a candidate is accepted, a racing candidate whose objective is no better cannot
become the recommendation, so it is *retired*: it gets no more episodes and keeps its interval so
far. The dense policy is a member from the start, accepted by definition (normalized return 100).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from rlcomp.choose.ratio import RatioInterval, normalized_interval

RACING, ACCEPTED, DROPPED, UNDECIDED, RETIRED = (
    "racing", "accepted", "dropped", "undecided", "retired")
"""A candidate's state in the race."""

DENSE = "dense"
"""The name of the dense policy's entry."""


@dataclass(frozen=True)
class Block:
    """Episodes ``offset .. offset + size - 1`` of the seed sequence every candidate plays."""

    index: int
    offset: int
    size: int


@dataclass(frozen=True)
class RacingPlan:
    """When the race looks at a candidate, and how sure each look must be."""

    looks: tuple[int, ...] = (25, 50, 100, 200, 300)
    """Cumulative episodes at which a candidate's interval is looked at (increasing)."""
    confidence: float = 0.95
    """Two-sided confidence over all looks together (each look gets a Bonferroni share)."""
    min_accept: int = 100
    """Episodes a candidate needs before it can be accepted (capped at the last look)."""

    def __post_init__(self) -> None:
        looks = tuple(self.looks)
        if not looks or any(isinstance(n, bool) or not isinstance(n, int) or n < 2
                            for n in looks):
            raise ValueError(f"looks must be integers >= 2, got {self.looks!r}")
        if any(b <= a for a, b in zip(looks, looks[1:], strict=False)):
            raise ValueError(f"looks must increase, got {self.looks!r}")
        object.__setattr__(self, "looks", looks)
        if not 0.0 < self.confidence < 1.0:
            raise ValueError(f"confidence must be in (0, 1), got {self.confidence}")
        if isinstance(self.min_accept, bool) or not isinstance(self.min_accept, int) \
                or self.min_accept < 1:
            raise ValueError(f"min_accept must be an integer >= 1, got {self.min_accept!r}")

    @property
    def max_episodes(self) -> int:
        """Episodes of a candidate that races to the last look."""
        return self.looks[-1]

    @property
    def look_confidence(self) -> float:
        """The two-sided confidence of one look: ``1 - (1 - confidence) / len(looks)``."""
        return 1.0 - (1.0 - self.confidence) / len(self.looks)

    @property
    def blocks(self) -> list[Block]:
        """The blocks of episodes between consecutive looks."""
        starts = (0, *self.looks[:-1])
        return [Block(i, s, e - s) for i, (s, e) in enumerate(zip(starts, self.looks,
                                                                   strict=True))]


def decide(interval: RatioInterval, keep: float, plan: RacingPlan) -> str:
    """The drop rule: ``dropped``, ``accepted``, ``undecided`` or ``racing`` (module doc)."""
    if interval.ci_high < keep:
        return DROPPED
    if interval.ci_low >= keep and interval.episodes >= min(plan.min_accept, plan.max_episodes):
        return ACCEPTED
    if interval.episodes >= plan.max_episodes:
        return UNDECIDED
    return RACING


@dataclass
class Entry:
    """One candidate in the race."""

    name: str
    objective: float
    """Smaller is better (model bytes, seconds, multiply-accumulates)."""
    returns: list[float] = field(default_factory=list)
    status: str = RACING
    interval: RatioInterval | None = None

    @property
    def episodes(self) -> int:
        return len(self.returns)


class Race:
    """The state of a race: its entries, the references, and the drop rule applied after each block.

    Args:
        plan: looks, confidence and acceptance minimum.
        keep: the return bound, in percent of the dense policy's gain over random actions.
        dense: the dense policy's returns on the seed sequence (at least ``plan.max_episodes``).
        random: the random policy's returns on the same seeds.
        dense_objective: the dense policy's objective (its entry's).
    """

    def __init__(self, plan: RacingPlan, keep: float, dense: Sequence[float],
                 random: Sequence[float], dense_objective: float) -> None:
        if len(dense) < plan.max_episodes or len(random) < plan.max_episodes:
            raise ValueError(f"the references need {plan.max_episodes} episodes, got "
                             f"{len(dense)} and {len(random)}")
        self.plan, self.keep = plan, keep
        self.dense, self.random = list(dense), list(random)
        self.entries: dict[str, Entry] = {}
        reference = Entry(DENSE, dense_objective, list(self.dense[:plan.max_episodes]), ACCEPTED)
        reference.interval = normalized_interval(reference.returns, self.dense, self.random,
                                                 plan.look_confidence)
        self.entries[DENSE] = reference

    def add(self, name: str, objective: float) -> Entry:
        """Enter a candidate (retired at once if an accepted one already dominates it)."""
        if name in self.entries:
            raise ValueError(f"{name} is already in the race")
        if not math.isfinite(objective):
            raise ValueError(f"{name}: the objective must be a finite number, got {objective}")
        entry = Entry(name, objective)
        self.entries[name] = entry
        self.retire_dominated()
        return entry

    def best(self) -> Entry:
        """The accepted entry with the best objective (the dense one when none is better).

        Ties go to the higher lower bound, then to the name, so the choice is deterministic.
        """
        accepted = [e for e in self.entries.values() if e.status == ACCEPTED]
        return min(accepted, key=lambda e: (e.objective, -e.interval.ci_low, e.name))

    def dominated(self, objective: float) -> bool:
        """Whether an accepted entry's objective is at least as good as ``objective``."""
        return self.best().objective <= objective

    def retire_dominated(self) -> list[Entry]:
        """Retire the racing entries an accepted one dominates; return them."""
        limit = self.best().objective
        retired = [e for e in self.entries.values()
                   if e.status == RACING and e.objective >= limit]
        for e in retired:
            e.status = RETIRED
        return retired

    def next_block(self, name: str) -> Block:
        """The block a racing entry plays next."""
        entry = self.entries[name]
        if entry.status != RACING:
            raise ValueError(f"{name} is {entry.status}, not racing")
        return next(b for b in self.plan.blocks if b.offset == entry.episodes)

    def due(self, below: float | None = None) -> list[Entry]:
        """The racing entries (with objective below ``below``, if given), best objective first."""
        racing = [e for e in self.entries.values() if e.status == RACING
                  and (below is None or e.objective < below)]
        return sorted(racing, key=lambda e: (e.objective, e.name))

    def record(self, name: str, returns: Sequence[float]) -> str:
        """Add a block's returns to a racing entry, apply the drop rule; return its new status."""
        block = self.next_block(name)
        if len(returns) != block.size:
            raise ValueError(f"{name}: block {block.index} has {block.size} episodes, got "
                             f"{len(returns)} returns")
        entry = self.entries[name]
        entry.returns.extend(float(r) for r in returns)
        entry.interval = normalized_interval(entry.returns, self.dense, self.random,
                                             self.plan.look_confidence)
        entry.status = decide(entry.interval, self.keep, self.plan)
        if entry.status == ACCEPTED:
            self.retire_dominated()
        return entry.status

    @property
    def episodes_used(self) -> int:
        """Episodes the candidates played (the dense reference not counted)."""
        return sum(e.episodes for n, e in self.entries.items() if n != DENSE)

    @property
    def episodes_if_exhaustive(self) -> int:
        """Episodes had every candidate that played at least one block played to the last look."""
        played = [e for n, e in self.entries.items() if n != DENSE and e.episodes]
        return len(played) * self.plan.max_episodes
