"""Training throughput of the two agents with their recorded settings, against the time targets.

Trains each agent for a short slice of its budget (after the point where gradient steps start) on
one thread, and projects the seconds of a full run: the issue's targets are 600 s per LunarLander
Double DQN seed and 1800 s per HalfCheetah PPO seed, on one core. The last line is JSON with the
projected fraction of each target (below 1 means within it). Run pinned to a core for a clean
figure: ``taskset -c 0 .venv/bin/python benchmarks/train_throughput.py``.
"""

from __future__ import annotations

import argparse
import json
import time

from rlcomp.agents.ddqn import DDQNConfig, train_ddqn
from rlcomp.agents.pg import PGConfig, train_pg

TARGET_SECONDS = {"ddqn": 600.0, "pg": 1800.0}


def seconds_per_step(algo: str, steps: int) -> float:
    """CPU seconds per environment step of a short run with the default settings."""
    if algo == "ddqn":
        # learning_starts=0 so that every step of the slice pays for gradient steps.
        config = DDQNConfig(total_steps=steps, learning_starts=0, eval_interval=10**9,
                            final_eval_episodes=1)
        start = time.process_time()
        train_ddqn(config)
    else:
        config = PGConfig(total_steps=steps, eval_interval=10**9, final_eval_episodes=1)
        start = time.process_time()
        train_pg(config)
    return (time.process_time() - start) / steps


def main() -> None:
    """Run the benchmark and print its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ddqn-steps", type=int, default=20_000)
    parser.add_argument("--pg-steps", type=int, default=10_240)
    args = parser.parse_args()
    figures = {}
    for algo, steps, full in (("ddqn", args.ddqn_steps, DDQNConfig().total_steps),
                              ("pg", args.pg_steps, PGConfig().total_steps)):
        per_step = seconds_per_step(algo, steps)
        projected = per_step * full
        figures[f"{algo}_steps_per_second"] = 1.0 / per_step
        figures[f"{algo}_projected_seconds"] = projected
        figures[f"{algo}_fraction_of_target"] = projected / TARGET_SECONDS[algo]
        target = TARGET_SECONDS[algo]
        print(f"{algo}: {1.0 / per_step:.0f} steps/s, full run ~{projected:.0f} s "
              f"({projected / target:.2f} of the {target:.0f} s target)")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
