"""Where jobs run: a local process pool (the default) or a Ray cluster.

Both executors take the jobs and a callback, and call the callback in the driver process with each
job's result as soon as it arrives, so the driver can store it at once: killing a sweep loses only
the jobs in flight. Local workers each pin themselves to one core and one torch thread (the
poster's "isolated processor"); Ray schedules one CPU per job.

Jobs are taken one at a time, only when a worker is free (so the driver can claim each job just
before it runs): either from a list, or from a *feed*, a function that returns the next job,
``WAIT`` when the remaining jobs are being run elsewhere (ask again shortly), or None when no job
is left. Workers ignore SIGINT; on an interrupt (or any error) in the driver the executor cancels
the jobs not started, stops the workers and re-raises.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

from rlcomp.experiments.sweep import Job

OnResult = Callable[[Job, dict], None]
"""Called in the driver with a finished job and its result."""

WAIT = "wait"
"""What a feed returns while the jobs left are being run by another process."""

Feed = Callable[[], "Job | str | None"]
"""Returns the next job to run, ``WAIT``, or None when no job is left."""

EXECUTORS = ("local", "ray")

POLL_SECONDS = 0.2
"""How often a waiting executor asks its feed again."""


def _init_worker(counter) -> None:
    """Pin this worker to its own core (``run_job`` sets torch's threads itself); ignore SIGINT.

    The driver alone handles an interrupt: it stops the workers itself.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    with counter.get_lock():
        index = counter.value
        counter.value += 1
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if cores:
        os.sched_setaffinity(0, {cores[index % len(cores)]})


def _run(job: Job) -> dict:
    from rlcomp.experiments.jobs import run_job

    return run_job(job)


def as_feed(jobs: Sequence[Job] | Feed) -> Feed:
    """A feed of ``jobs`` (a feed is returned as it is)."""
    if callable(jobs):
        return jobs
    remaining = iter(list(jobs))
    return lambda: next(remaining, None)


def _fill(pending: dict, feed: Feed, workers: int, submit: Callable[[Job], object]) -> bool:
    """Submit jobs from ``feed`` until ``workers`` run; True when the feed has no job left."""
    while len(pending) < workers:
        job = feed()
        if job is None:
            return True
        if job == WAIT:
            return False
        pending[submit(job)] = job
    return False


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel the jobs not started and end the workers now, without waiting for their jobs."""
    processes = list((getattr(pool, "_processes", None) or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.kill()
    for process in processes:
        process.join(timeout=10)


def run_local(jobs: Sequence[Job] | Feed, workers: int, on_result: OnResult) -> None:
    """Run ``jobs`` (a list or a feed) on a pool of ``workers`` fresh processes (spawned)."""
    feed = as_feed(jobs)
    context = mp.get_context("spawn")
    counter = context.Value("i", 0)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                               initargs=(counter,))
    pending: dict = {}
    try:
        while True:
            exhausted = _fill(pending, feed, workers, lambda job: pool.submit(_run, job))
            if not pending:
                if exhausted:
                    break
                time.sleep(POLL_SECONDS)
                continue
            done, _ = wait(pending, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                job = pending.pop(future)
                on_result(job, future.result())
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown(wait=True)


def run_ray(jobs: Sequence[Job] | Feed, workers: int, on_result: OnResult,
            address: str | None = None) -> None:
    """Run ``jobs`` (a list or a feed) as Ray tasks, one CPU each.

    Args:
        jobs: the jobs, or a feed of them.
        workers: CPUs of the local Ray instance started when ``address`` is None; also the
            number of tasks in flight.
        on_result: called in the driver for each finished job.
        address: an existing cluster (``ray://host:10001`` or ``auto``); None starts a local one.
    """
    import ray

    feed = as_feed(jobs)
    started = False
    if not ray.is_initialized():
        kwargs = {"num_cpus": workers} if address is None else {"address": address}
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False,
                 runtime_env={"env_vars": {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
                                           "PYTHONHASHSEED": "0"}}, **kwargs)
        started = True
    in_flight = workers if address is None else max(
        workers, int(ray.cluster_resources().get("CPU", workers)))
    pending: dict = {}
    try:
        remote = ray.remote(num_cpus=1, max_retries=0)(_run)
        while True:
            exhausted = _fill(pending, feed, in_flight, remote.remote)
            if not pending:
                if exhausted:
                    break
                time.sleep(POLL_SECONDS)
                continue
            done, _ = ray.wait(list(pending), num_returns=1, timeout=POLL_SECONDS)
            for ref in done:
                job = pending.pop(ref)
                on_result(job, ray.get(ref))
    except BaseException:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise
    finally:
        if started:
            ray.shutdown()
