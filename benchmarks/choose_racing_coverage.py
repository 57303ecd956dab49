"""How often racing wrongly drops a good candidate, and how often the recommendation's bound fails.

``rlcomp choose`` races candidates (:class:`rlcomp.choose.racing.Race`, the real code): after each
block of episodes (looks at 25, 50, 100, 200 and 300) a candidate's normalized return gets its
Fieller interval at the per-look confidence ``1 - 0.05 / 5`` (Bonferroni over the looks); it is
dropped when the upper end is below the bound ``keep = 95``, accepted when the lower end is at
least 95 after 100 episodes, retired when an accepted candidate has a smaller objective. This
script simulates many races on LunarLander-like returns and counts:

- ``wrong_drop``: of the candidates whose true normalized return is at least ``keep``, the share
  that racing dropped (the drop rule promises at most 2.5% per candidate over all looks);
- ``wrong_drop_at_bound``: the same for candidates exactly at the bound (the worst case);
- ``recommendation_below_ci_low``: how often the recommended candidate's true normalized return
  is below the lower end of its reported interval (the per-candidate promise is 2.5% on that
  side; the recommendation is the best of many, which can only make it worse);
- ``recommendation_below_keep``: how often the recommended candidate truly misses the bound;
- ``racing_share``: episodes played over those of evaluating every candidate to 300.

The episode model (shaped like the committed LunarLander checkpoints and a measured random
policy: dense mean 257.6, sd 49.8, 3 of 300 episodes below 0; random mean -189.6, sd 111): each
episode seed ``i`` has a shared difficulty ``z_i ~ N(0, 1)``. The dense policy lands with
probability 0.97, scoring ``270 + 15 z_i + (2s - Gamma(2, s))`` (``s = 20``: left-skewed, sd 28),
and fails otherwise, scoring ``Uniform(-250, 100)``. The random policy scores
``-190 - 2r + Gamma(2, r)`` (``r = 78``: right-skewed, sd 110), independently. A candidate acts
exactly like the dense policy on an episode with probability ``same`` (its return is then the
dense one, as identical decisions give identical episodes); otherwise it lands with probability
``1 - f`` scoring ``L + 15 z_i + (2s - Gamma(2, s))``, else fails. Its true normalized return is
exact from these parameters; ``f`` grows as the return falls (``0.03 + 0.3 * (1 - NR / 100)``,
bad candidates crash more) and ``L`` is solved for.

Scenarios (each a field of candidates by increasing objective):

(a) ``field``: a LunarLander-like search: bad small candidates (true NR -50 to 85), a few near
    the bound (90 to 97), good large ones (98 to 102).
(b) ``at-bound``: every candidate truly at 95 or 96, most similar to dense (``same = 0.5``).
(c) ``just-below``: ten small candidates truly at 90 to 94.5 and one large good one (the hard
    case for the recommendation: many chances to accept a candidate below the bound).

The last line is JSON with the worst figure of each kind over the scenarios and each scenario's
figures. The same ``--seed`` gives the same output.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from rlcomp.choose.racing import ACCEPTED, DROPPED, RACING, Race, RacingPlan

KEEP = 95.0
DENSE_LAND, DENSE_LEVEL, FAIL_MEAN = 0.97, 270.0, -75.0
SKEW = 20.0
RANDOM_MEAN, RANDOM_SKEW = -190.0, 78.0
DENSE_MEAN = DENSE_LAND * DENSE_LEVEL + (1 - DENSE_LAND) * FAIL_MEAN

SCENARIOS = {
    "field": [(-50, 0.0), (10, 0.0), (40, 0.1), (70, 0.2), (85, 0.2), (90, 0.3), (93, 0.3),
              (95, 0.4), (97, 0.4), (98, 0.5), (99, 0.5), (100, 0.6), (100, 0.7), (101, 0.3),
              (102, 0.3), (100, 0.9), (99, 0.8), (101, 0.5), (100, 0.5), (98, 0.6)],
    "at-bound": [(95, 0.5), (96, 0.5), (95, 0.5), (96, 0.5), (95, 0.5), (96, 0.5), (95, 0.3),
                 (96, 0.3), (95, 0.7), (96, 0.7)],
    "just-below": [(90, 0.3), (91, 0.3), (92, 0.3), (92.5, 0.4), (93, 0.4), (93.5, 0.4),
                   (94, 0.5), (94, 0.5), (94.5, 0.5), (94.5, 0.6), (100, 0.5)],
}
"""Each scenario's candidates, by increasing objective: (true normalized return, ``same``)."""


def _landed(rng: np.random.Generator, level: float, z: np.ndarray) -> np.ndarray:
    return level + 15.0 * z + 2.0 * SKEW - rng.gamma(2.0, SKEW, size=z.shape)


def _agent(rng: np.random.Generator, level: float, fail: float, z: np.ndarray) -> np.ndarray:
    crashed = rng.random(z.shape) < fail
    return np.where(crashed, rng.uniform(-250.0, 100.0, z.shape), _landed(rng, level, z))


def candidate_params(true_nr: float, same: float) -> tuple[float, float]:
    """``(landing level L, failure rate f)`` giving a candidate the true normalized return."""
    target = RANDOM_MEAN + true_nr / 100.0 * (DENSE_MEAN - RANDOM_MEAN)
    own = (target - same * DENSE_MEAN) / (1.0 - same)
    fail = float(np.clip(0.03 + 0.3 * (1.0 - true_nr / 100.0), 0.03, 0.6))
    return (own - fail * FAIL_MEAN) / (1.0 - fail), fail


def simulate(rng: np.random.Generator, field: list[tuple[float, float]], plan: RacingPlan) -> dict:
    """One race over ``field``; what became of each candidate and of the recommendation."""
    n = plan.max_episodes
    z = rng.standard_normal(n)
    dense = _agent(rng, DENSE_LEVEL, 1.0 - DENSE_LAND, z)
    random = RANDOM_MEAN - 2.0 * RANDOM_SKEW + rng.gamma(2.0, RANDOM_SKEW, n)
    returns = {}
    race = Race(plan, KEEP, dense, random, dense_objective=1e9)
    for k, (true_nr, same) in enumerate(field):
        level, fail = candidate_params(true_nr, same)
        own = _agent(rng, level, fail, z)
        returns[k] = np.where(rng.random(n) < same, dense, own)
        race.add(str(k), float(k + 1))
    while race.due():
        for entry in race.due():
            if entry.status != RACING:
                continue
            block = race.next_block(entry.name)
            race.record(entry.name, returns[int(entry.name)][block.offset:block.offset
                                                              + block.size])
    best = race.best()
    truth = {str(k): nr for k, (nr, _) in enumerate(field)} | {"dense": 100.0}
    return {"dropped_good": [truth[k] >= KEEP and e.status == DROPPED
                             for k, e in race.entries.items() if k != "dense"],
            "good": [truth[k] >= KEEP for k in race.entries if k != "dense"],
            "at_bound_dropped": [e.status == DROPPED for k, e in race.entries.items()
                                 if k != "dense" and truth[k] == KEEP],
            "rec_below_low": truth[best.name] < best.interval.ci_low,
            "rec_below_keep": truth[best.name] < KEEP,
            "rec_is_dense": best.name == "dense",
            "accepted": sum(e.status == ACCEPTED for e in race.entries.values()) - 1,
            "share": race.episodes_used / (len(field) * n)}


def run_scenario(name: str, sims: int, rng: np.random.Generator, plan: RacingPlan) -> dict:
    runs = [simulate(rng, SCENARIOS[name], plan) for _ in range(sims)]
    good = sum(sum(r["good"]) for r in runs)
    at_bound = sum(len(r["at_bound_dropped"]) for r in runs)
    return {
        "wrong_drop": sum(sum(r["dropped_good"]) for r in runs) / good if good else None,
        "wrong_drop_at_bound": (sum(sum(r["at_bound_dropped"]) for r in runs) / at_bound
                                if at_bound else None),
        "recommendation_below_ci_low": float(np.mean([r["rec_below_low"] for r in runs])),
        "recommendation_below_keep": float(np.mean([r["rec_below_keep"] for r in runs])),
        "recommendation_is_dense": float(np.mean([r["rec_is_dense"] for r in runs])),
        "racing_share": float(np.mean([r["share"] for r in runs])),
        "candidates": len(SCENARIOS[name]), "sims": sims,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sims", type=int, default=1000, help="races per scenario")
    parser.add_argument("--seed", type=int, default=0, help="seed of the simulation")
    args = parser.parse_args(argv)
    plan = RacingPlan()
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    scenarios = {}
    for name in SCENARIOS:
        scenarios[name] = run_scenario(name, args.sims, rng, plan)
        print(f"{name}: {json.dumps(scenarios[name])}")

    def worst(key: str) -> float:
        return max(s[key] for s in scenarios.values() if s[key] is not None)

    summary = {"wrong_drop": worst("wrong_drop"),
               "wrong_drop_at_bound": worst("wrong_drop_at_bound"),
               "recommendation_below_ci_low": worst("recommendation_below_ci_low"),
               "recommendation_below_keep": worst("recommendation_below_keep"),
               "racing_share_field": scenarios["field"]["racing_share"],
               "promise_per_side": (1 - plan.confidence) / 2, "looks": list(plan.looks),
               "look_confidence": plan.look_confidence, "sims": args.sims,
               "seconds": time.perf_counter() - started, "scenarios": scenarios}
    print(json.dumps(summary))
    return summary


if __name__ == "__main__":
    main()
