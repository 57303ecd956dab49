"""Sweep scaling: the same 16-job sweep with 1 and 2 workers, then re-run when finished.

Targets: 2 workers >= 1.8 x faster than 1 (``speedup_2_workers``), and re-running a finished sweep
<= 2% of the first run's time (``rerun_fraction``). Times are wall seconds of ``run_sweep`` from the
driver's side (the start-up of each job's fresh process included). Also printed: the start-up of a
job's process, from its dispatch to its first line (``startup_seconds``) and to a LunarLander
environment made (``startup_env_seconds``, which imports Box2D), medians of 5. The last line
printed is JSON.

Run: ``.venv/bin/python benchmarks/sweep_scaling.py [--episodes N]``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from rlcomp.experiments.driver import run_sweep
from rlcomp.experiments.executors import run_local
from rlcomp.experiments.store import ResultStore
from rlcomp.experiments.sweep import Job, load_sweep

CHECKPOINT = "checkpoints/LunarLander-v3__ddqn__0"
SPECS = [f"prune={p / 20:g}" for p in range(8)] + [f"lowrank={r / 10:g}" for r in range(1, 9)]


def sweep_file(directory: Path, episodes: int) -> Path:
    path = directory / "scaling.yaml"
    path.write_text(json.dumps({"checkpoints": [CHECKPOINT], "specs": SPECS,
                                "episodes": episodes, "eval_seeds": [0],
                                "probes": {"latency": True, "isolated_memory": False}}))
    return path


def started(job: Job) -> dict:
    """A job's runner: seconds from its dispatch to this line, and to an environment made."""
    first = time.monotonic() - job.probe["sent"]
    import gymnasium as gym

    gym.make(job.env_id).close()
    return {"metrics": {"first_line": first, "env_made": time.monotonic() - job.probe["sent"]},
            "extra": {}}


def startup(repeats: int = 5) -> tuple[float, float]:
    """Median seconds from a job's dispatch to its first line and to an environment made."""
    count = iter(range(repeats))

    def feed() -> Job | None:
        i = next(count, None)
        return None if i is None else Job(
            checkpoint=CHECKPOINT, checkpoint_digest="", env_id="LunarLander-v3", algo="ddqn",
            train_seed=0, spec="dense", finetune=None, eval_seed=i,
            probe={"sent": time.monotonic()}, key=f"startup{i}")

    runs: list[dict] = []
    run_local(feed, 1, lambda job, result: runs.append(result["metrics"]), runner=started)
    return (statistics.median(r["first_line"] for r in runs),
            statistics.median(r["env_made"] for r in runs))


def timed(path: Path, store_path: Path, workers: int) -> tuple[float, int]:
    with ResultStore(store_path) as store:
        start = time.perf_counter()
        summary = run_sweep(load_sweep(path), store, workers=workers)
        return time.perf_counter() - start, summary.jobs_run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100,
                        help="episodes per job (default 100, as the full profile)")
    args = parser.parse_args()
    startup(1)  # the forkserver starts (imports once)
    first_line, env_made = startup()
    print(f"job start-up: {first_line:.3f} s to its first line, {env_made:.3f} s to an "
          "environment made (median of 5)")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = sweep_file(tmp, args.episodes)
        one, run1 = timed(path, tmp / "one.sqlite", workers=1)
        print(f"1 worker : {run1} jobs in {one:.2f} s")
        two, run2 = timed(path, tmp / "two.sqlite", workers=2)
        print(f"2 workers: {run2} jobs in {two:.2f} s  (speedup {one / two:.2f}, target >= 1.8)")
        rerun, run3 = timed(path, tmp / "two.sqlite", workers=2)
        print(f"re-run   : {run3} jobs in {rerun:.3f} s  ({rerun / two:.2%} of the first run, "
              "target <= 2%)")
    print(json.dumps({"jobs": len(SPECS), "episodes": args.episodes, "seconds_1_worker": one,
                      "seconds_2_workers": two, "seconds_rerun": rerun,
                      "speedup_2_workers": one / two, "rerun_fraction": rerun / two,
                      "startup_seconds": first_line, "startup_env_seconds": env_made}))


if __name__ == "__main__":
    main()
