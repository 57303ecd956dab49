"""The sweep driver: skip what the store has, run the rest, store each result as it arrives."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from rlcomp.experiments.executors import EXECUTORS, run_local, run_ray
from rlcomp.experiments.store import ResultStore
from rlcomp.experiments.sweep import Job, Sweep


@dataclass
class SweepSummary:
    """What a sweep run did."""

    jobs_total: int
    jobs_skipped: int
    jobs_run: int
    seconds: float
    executor: str
    workers: int
    store: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def default_workers() -> int:
    """One worker per core this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def run_sweep(sweep: Sweep, store: ResultStore, *, executor: str = "local",
              workers: int | None = None, address: str | None = None,
              progress: Callable[[int, int], None] | None = None) -> SweepSummary:
    """Run the jobs of ``sweep`` that ``store`` does not have yet, storing each as it finishes.

    Args:
        sweep: a validated sweep.
        store: the results store; only this process writes it.
        executor: ``local`` (process pool) or ``ray``.
        workers: parallel jobs (default: one per core).
        address: Ray cluster address (``ray`` only; None starts a local instance).
        progress: called as ``progress(done, to_run)`` after each stored result.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    workers = workers or default_workers()
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    start = time.perf_counter()
    jobs = sweep.jobs()
    have = store.keys()
    todo = [job for job in jobs if job.key not in have]
    todo = list({job.key: job for job in todo}.values())
    done = 0

    def on_result(job: Job, result: dict) -> None:
        nonlocal done
        store.put(job.checkpoint_digest, job.spec, job.finetune, job.eval_seed, job.probe,
                  checkpoint=os.path.basename(job.checkpoint), env=job.env_id, algo=job.algo,
                  train_seed=job.train_seed, metrics=result["metrics"], extra=result["extra"])
        done += 1
        if progress is not None:
            progress(done, len(todo))

    if todo:
        if executor == "local":
            run_local(todo, min(workers, len(todo)), on_result)
        else:
            run_ray(todo, workers, on_result, address=address)
    return SweepSummary(jobs_total=len(jobs), jobs_skipped=len(jobs) - len(todo),
                        jobs_run=done, seconds=time.perf_counter() - start, executor=executor,
                        workers=workers, store=str(store.path))


def results_of(sweep: Sweep, store: ResultStore) -> pd.DataFrame:
    """The tidy rows of ``store`` that belong to the jobs of ``sweep``."""
    keys = {job.key for job in sweep.jobs()}
    frame = store.load()
    return frame[frame["key"].isin(keys)].reset_index(drop=True)


def run_and_load(sweep: Sweep, store_path: str | os.PathLike,
                 workers: int | None = None) -> tuple[pd.DataFrame, SweepSummary]:
    """Run what the store lacks of ``sweep``, then return its tidy rows and what the run did."""
    with ResultStore(store_path) as store:
        summary = run_sweep(sweep, store, workers=workers)
        return results_of(sweep, store), summary
