"""The sweep driver: skip what the store has, run the rest, store each result as it arrives.

Each job is claimed in the store just before it is dispatched (``ResultStore.claim``), so several
sweeps of one grid on one store share the work: each job runs once, and every sweep returns when
all its jobs are stored (waiting for those another live sweep runs; taking over those whose
sweep died). An interrupted sweep gives up its claims; a killed one's claims go stale.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass

import pandas as pd

from rlcomp.experiments.executors import EXECUTORS, WAIT, run_local, run_ray
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
    jobs_run_elsewhere: int = 0
    """Jobs that another sweep, running at the same time on the same store, ran."""

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
        store: the results store; other sweeps may run on it at the same time (each job is
            claimed before it is dispatched, so it runs once among them).
        executor: ``local`` (process pool) or ``ray``.
        workers: parallel jobs (default: one per core).
        address: Ray cluster address (``ray`` only; None starts a local instance).
        progress: called as ``progress(done, to_run)`` after each stored result.

    Raises:
        ValueError: for an unknown executor or a ``workers`` that is not an integer >= 1,
            before anything runs.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {executor!r}")
    if workers is None:
        workers = default_workers()
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
    start = time.perf_counter()
    jobs = sweep.jobs()
    have = store.keys()
    todo = list({job.key: job for job in jobs if job.key not in have}.values())
    feed = _ClaimingFeed(todo, store)
    done = 0

    def on_result(job: Job, result: dict) -> None:
        nonlocal done
        store.put(job.checkpoint_digest, job.spec, job.finetune, job.eval_seed, job.probe,
                  checkpoint=os.path.basename(job.checkpoint), env=job.env_id, algo=job.algo,
                  train_seed=job.train_seed, metrics=result["metrics"], extra=result["extra"])
        feed.claimed.discard(job.key)
        done += 1
        if progress is not None:
            progress(done, len(todo))

    try:
        if todo:
            if executor == "local":
                run_local(feed, min(workers, len(todo)), on_result)
            else:
                run_ray(feed, workers, on_result, address=address)
    finally:
        store.release(feed.claimed)
    return SweepSummary(jobs_total=len(jobs), jobs_skipped=len(jobs) - len(todo),
                        jobs_run=done, seconds=time.perf_counter() - start, executor=executor,
                        workers=workers, store=str(store.path), jobs_run_elsewhere=feed.elsewhere)


class _ClaimingFeed:
    """Hands out the jobs to run, each claimed in the store just before it is dispatched."""

    def __init__(self, jobs: list[Job], store: ResultStore) -> None:
        self.queue = list(jobs)
        self.store = store
        self.claimed: set[str] = set()
        """Keys this sweep holds claims on and has not stored yet."""
        self.elsewhere = 0

    def __call__(self) -> Job | str | None:
        """The next job, claimed; ``WAIT`` while others run the rest; None when none is left."""
        if not self.queue:
            return None
        stored, busy = self.store.keys(), self.store.claimed()
        for job in list(self.queue):
            if job.key in stored:
                self.queue.remove(job)
                self.elsewhere += 1
            elif job.key not in busy and self.store.claim(job.key):
                self.queue.remove(job)
                self.claimed.add(job.key)
                return job
            elif self.store.has(job.key):
                self.queue.remove(job)
                self.elsewhere += 1
        return WAIT if self.queue else None


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
