"""The Pareto frontier of the candidates: normalized return against the objective."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

T = TypeVar("T")


def pareto_front(points: Sequence[T], objective: Callable[[T], float],
                 value: Callable[[T], float]) -> list[T]:
    """The points no other point beats (as small an objective and as large a value, one strictly).

    Args:
        points: anything that ``objective`` and ``value`` read.
        objective: a point's objective; smaller is better.
        value: a point's value (its normalized return); larger is better.

    Returns:
        The frontier, by increasing objective (ties keep their input order); equal points are
        all kept.
    """
    keyed = [(objective(p), value(p), i, p) for i, p in enumerate(points)]
    front = [(o, v, i, p) for o, v, i, p in keyed
             if not any((o2 <= o and v2 >= v) and (o2 < o or v2 > v) for o2, v2, _, _ in keyed)]
    return [p for _, _, _, p in sorted(front, key=lambda t: (t[0], t[2]))]
