"""Where jobs run: fresh local processes (the default) or a Ray cluster.

Both executors take the jobs and a callback, and call the callback in the driver process with each
job's result as soon as it arrives, so the driver can store it at once: killing a sweep loses only
the jobs in flight. Ray schedules one CPU per job.

The local executor runs every job in a fresh process, never reusing one for a second job, so that
what a job measures of its process (RAM %, resident bytes) does not depend on the jobs before it.
It keeps ``workers`` slots, and each slot its own core: a job's process is pinned to the core of
the slot it runs in, so two jobs never share a core while there are at least as many cores as
workers (more workers than cores share them round robin), and runs one PyTorch thread (the
poster's "isolated processor"; ``run_job`` sets the threads). The processes are forked from a
``forkserver`` that has imported the job code (PyTorch, Gymnasium, rlcomp) once, so a job starts
in milliseconds instead of the seconds a fresh interpreter takes to import them; each job gets the
driver's current working directory and environment variables. Where there is no forkserver the
processes are spawned.

Jobs are taken one at a time, only when a slot is free (so the driver can claim each job just
before it runs): either from a list, or from a *feed*, a function that returns the next job,
``WAIT`` when the remaining jobs are being run elsewhere (ask again shortly), or None when no job
is left. Job processes ignore SIGINT; on an interrupt (or any error) in the driver the executor
starts no more jobs, kills the running ones and re-raises. An interrupt is also remembered: one
that Python could not raise where it landed (in a finalizer, which only prints "Exception ignored")
is raised at the executor's next step, so an interrupted sweep never goes on to finish. A job's
exception is re-raised in the driver with its type (the job's traceback as its cause).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.connection import wait as wait_ready

from rlcomp.experiments.sweep import Job

OnResult = Callable[[Job, dict], None]
"""Called in the driver with a finished job and its result."""

WAIT = "wait"
"""What a feed returns while the jobs left are being run by another process."""

Feed = Callable[[], "Job | str | None"]
"""Returns the next job to run, ``WAIT``, or None when no job is left."""

EXECUTORS = ("local", "ray")

POLL_SECONDS = 0.2
"""How often an executor asks a feed that said ``WAIT`` again."""

PRELOAD = ("__main__", "rlcomp.experiments.executors", "rlcomp.experiments.jobs")
"""Modules the forkserver imports once for all job processes: the driver's main script (which
a job's process would otherwise import again, as with spawn) and what every job imports
(PyTorch, Gymnasium, NumPy, rlcomp), and no more, so that a job's resident memory is that of a
process that imported what it needed."""

Runner = Callable[[Job], dict]
"""What a job's process runs: a job in, its result (plain, picklable data) out."""

EXIT_SECONDS = 10.0
"""How long the driver waits for a finished job's process to exit before it kills it."""


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a job's process (the cause of the re-raised one)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class WorkerDied(RuntimeError):
    """A job's process ended without a result (killed, or crashed in native code)."""


def _context() -> mp.context.BaseContext:
    """The forkserver context with :data:`PRELOAD` where there is one; spawn otherwise."""
    if "forkserver" in mp.get_all_start_methods():
        context = mp.get_context("forkserver")
        context.set_forkserver_preload(list(PRELOAD))
        return context
    return mp.get_context("spawn")


def slot_cores(workers: int) -> list[int | None]:
    """The core of each of ``workers`` slots: this process's cores in order, round robin.

    None for every slot where the platform cannot pin (no ``sched_setaffinity``).
    """
    if not hasattr(os, "sched_getaffinity"):
        return [None] * workers
    cores = sorted(os.sched_getaffinity(0))
    return [cores[i % len(cores)] for i in range(workers)]


def _run(job: Job) -> dict:
    from rlcomp.experiments.jobs import run_job

    return run_job(job)


def _job_process(runner: Runner, job: Job, core: int | None, cwd: str,
                 environ: dict[str, str], conn: Connection) -> None:
    """A job's process: ignore SIGINT, pin to ``core``, run the job, send its result or error."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if core is not None:
        os.sched_setaffinity(0, {core})
    if os.environ != environ:
        os.environ.clear()
        os.environ.update(environ)
    os.chdir(cwd)
    try:
        message = ("ok", runner(job))
    except BaseException as exc:  # every failure goes back to the driver
        if not isinstance(exc, Exception):  # SystemExit must not end the driver
            exc = RuntimeError(f"job {getattr(job, 'key', job)} raised {exc!r}")
        message = ("error", exc, traceback.format_exc())
    try:
        conn.send(message)
    except (BrokenPipeError, ConnectionResetError):
        return  # the driver is gone (interrupted): nobody is left to tell
    except Exception as exc:  # an exception or result that does not pickle
        try:
            conn.send(("error", RuntimeError(f"job {getattr(job, 'key', job)}: cannot send "
                                             f"its outcome: {exc!r}"),
                       traceback.format_exc()))
        except (BrokenPipeError, ConnectionResetError):
            return
    conn.close()


@dataclass
class _Running:
    """A job in its process, on one slot."""

    job: Job
    process: mp.process.BaseProcess
    conn: Connection


def _start(context: mp.context.BaseContext, runner: Runner, job: Job,
           core: int | None) -> _Running:
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_job_process, name="rlcomp-job",
                              args=(runner, job, core, os.getcwd(), dict(os.environ), send))
    process.start()
    send.close()
    return _Running(job, process, receive)


def _finish(running: _Running) -> dict:
    """The result of a job whose connection is ready; raises the job's error."""
    try:
        message = running.conn.recv()
    except (EOFError, OSError):
        message = None
    finally:
        running.conn.close()
    running.process.join(EXIT_SECONDS)
    if running.process.is_alive():
        running.process.kill()
        running.process.join()
    if message is None:
        raise WorkerDied(f"the process of job {getattr(running.job, 'key', running.job)} ended "
                         f"without a result (exit code {running.process.exitcode})")
    if message[0] == "error":
        raise message[1] from RemoteTraceback(message[2])
    return message[1]


def _kill(running: dict[int, _Running]) -> None:
    """End the running jobs' processes now."""
    for item in running.values():
        if item.process.is_alive():
            item.process.kill()
    for item in running.values():
        item.process.join(timeout=10)
        item.conn.close()


class _Interrupts:
    """Whether SIGINT arrived while :func:`run_local` ran (see :func:`_remember_interrupts`)."""

    def __init__(self) -> None:
        self.seen = False

    def check(self) -> None:
        """Raise ``KeyboardInterrupt`` if SIGINT arrived, even if its first raise was lost."""
        if self.seen:
            raise KeyboardInterrupt


@contextmanager
def _remember_interrupts() -> Iterator[_Interrupts]:
    """Record SIGINT (and raise ``KeyboardInterrupt`` as Python's own handler does).

    Installed only in the main thread over Python's default handler; elsewhere (another thread,
    a program's own handler) interrupts are left as they are and never recorded.
    """
    interrupts = _Interrupts()
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGINT) is not signal.default_int_handler):
        yield interrupts
        return

    def on_sigint(signum: int, frame: object) -> None:
        interrupts.seen = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    try:
        yield interrupts
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)


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


def run_local(jobs: Sequence[Job] | Feed, workers: int, on_result: OnResult, *,
              runner: Runner = _run) -> None:
    """Run ``jobs`` (a list or a feed), each in a fresh process, ``workers`` at a time.

    Args:
        jobs: the jobs, or a feed of them.
        workers: jobs in flight; each slot has its own core (see :func:`slot_cores`).
        on_result: called in the driver for each finished job, as it finishes.
        runner: what a job's process calls with the job (``run_job`` by default); a module-level
            function, which the process imports by name.

    Raises:
        WorkerDied: if a job's process ends without a result.
        Exception: a job's own exception, re-raised.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    feed = as_feed(jobs)
    context = _context()
    cores = slot_cores(workers)
    running: dict[int, _Running] = {}
    with _remember_interrupts() as interrupts:
        try:
            _run_slots(feed, workers, on_result, runner, context, cores, running, interrupts)
        except BaseException:
            _kill(running)
            raise


def _run_slots(feed: Feed, workers: int, on_result: OnResult, runner: Runner,
               context: mp.context.BaseContext, cores: list[int | None],
               running: dict[int, _Running], interrupts: _Interrupts) -> None:
    """The loop of :func:`run_local`: fill free slots from ``feed``, hand on finished results."""
    exhausted = False
    while True:
        interrupts.check()
        waiting = False
        while not exhausted and len(running) < workers:
            job = feed()
            if job is None:
                exhausted = True
            elif job == WAIT:
                waiting = True
                break
            else:
                slot = min(set(range(workers)) - running.keys())
                running[slot] = _start(context, runner, job, cores[slot])
        if not running:
            if exhausted:
                break
            time.sleep(POLL_SECONDS)
            continue
        by_conn = {item.conn: slot for slot, item in running.items()}
        ready = wait_ready(list(by_conn), timeout=POLL_SECONDS if waiting else None)
        for conn in ready:
            item = running.pop(by_conn[conn])
            on_result(item.job, _finish(item))
            interrupts.check()
    interrupts.check()


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
