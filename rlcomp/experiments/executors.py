"""Where jobs run: a local process pool (the default) or a Ray cluster.

Both executors take the jobs and a callback, and call the callback in the driver process with each
job's result as soon as it arrives, so the driver can store it at once: killing a sweep loses only
the jobs in flight. Local workers each pin themselves to one core and one torch thread (the
poster's "isolated processor"); Ray schedules one CPU per job.
"""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from rlcomp.experiments.sweep import Job

OnResult = Callable[[Job, dict], None]
"""Called in the driver with a finished job and its result."""

EXECUTORS = ("local", "ray")


def _init_worker(counter) -> None:
    """Pin this worker to its own core (``run_job`` sets torch's threads itself)."""
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if cores:
        os.sched_setaffinity(0, {cores[index % len(cores)]})


def _run(job: Job) -> dict:
    from rlcomp.experiments.jobs import run_job

    return run_job(job)


def run_local(jobs: Sequence[Job], workers: int, on_result: OnResult) -> None:
    """Run ``jobs`` on a pool of ``workers`` fresh processes (spawned, not forked)."""
    context = mp.get_context("spawn")
    counter = context.Value("i", 0)
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                             initargs=(counter,)) as pool:
        pending = {pool.submit(_run, job): job for job in jobs}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    job = pending.pop(future)
                    on_result(job, future.result())
        except BaseException:
            for future in pending:
                future.cancel()
            raise


def run_ray(jobs: Sequence[Job], workers: int, on_result: OnResult,
            address: str | None = None) -> None:
    """Run ``jobs`` as Ray tasks, one CPU each.

    Args:
        jobs: the jobs.
        workers: CPUs of the local Ray instance started when ``address`` is None.
        on_result: called in the driver for each finished job.
        address: an existing cluster (``ray://host:10001`` or ``auto``); None starts a local one.
    """
    import ray

    started = False
    if not ray.is_initialized():
        kwargs = {"num_cpus": workers} if address is None else {"address": address}
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                                           "PYTHONHASHSEED": "0"}}, **kwargs)
        started = True
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_run)
        pending = {remote.remote(job): job for job in jobs}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                job = pending.pop(ref)
                on_result(job, ray.get(ref))
    finally:
        if started:
            ray.shutdown()
