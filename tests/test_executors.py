"""The local executor: a fresh process per job, one core per slot, errors and feeds.

The jobs here run small module-level runners (``run_local(..., runner=...)``) that record the
process they ran in; the sweep tests (``test_sweep.py``, ``test_faults.py``) run real jobs.
"""

from __future__ import annotations

import os
import time

import pytest

from rlcomp.experiments.executors import (
    WAIT,
    RemoteTraceback,
    WorkerDied,
    run_local,
    slot_cores,
)
from rlcomp.experiments.sweep import Job

CAN_PIN = hasattr(os, "sched_getaffinity")


def job(i: int, seconds: float = 0.0) -> Job:
    """A job whose ``probe`` tells the test runners what to do."""
    return Job(checkpoint="none", checkpoint_digest="d", env_id="LunarLander-v3", algo="ddqn",
               train_seed=0, spec="dense", finetune=None, eval_seed=i,
               probe={"seconds": seconds, "env": "RLCOMP_TEST_VALUE"}, key=f"job{i}")


def where(job: Job) -> dict:
    """Runner: the process and cores it ran on, and when (system-wide monotonic clock)."""
    start = time.monotonic()
    time.sleep(job.probe["seconds"])
    cores = sorted(os.sched_getaffinity(0)) if CAN_PIN else []
    return {"metrics": {}, "extra": {"pid": os.getpid(), "cores": cores, "start": start,
                                     "end": time.monotonic(), "cwd": os.getcwd(),
                                     "env": os.environ.get(job.probe["env"])}}


def fail(job: Job) -> dict:
    """Runner: job 1 raises, the others take a while."""
    if job.eval_seed == 1:
        raise ValueError(f"job {job.key} is bad")
    time.sleep(5)
    return where(job)


def die(job: Job) -> dict:
    """Runner: the process ends without a word."""
    os._exit(3)


def collect(jobs, workers: int, runner=where) -> list[tuple[Job, dict]]:
    results: list[tuple[Job, dict]] = []
    run_local(jobs, workers, lambda j, r: results.append((j, r)), runner=runner)
    return results


def test_each_job_runs_in_its_own_fresh_process():
    results = collect([job(i) for i in range(4)], workers=1)
    assert [j.eval_seed for j, _ in results] == [0, 1, 2, 3]
    pids = [r["extra"]["pid"] for _, r in results]
    assert len(set(pids)) == 4 and os.getpid() not in pids


@pytest.mark.skipif(not CAN_PIN or len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores")
def test_concurrent_jobs_are_pinned_to_different_cores():
    results = collect([job(i, seconds=0.4) for i in range(6)], workers=2)
    extras = [r["extra"] for _, r in results]
    assert all(len(e["cores"]) == 1 for e in extras)
    assert {e["cores"][0] for e in extras} <= set(slot_cores(2))
    overlapping = 0
    for a in extras:
        for b in extras:
            if a["pid"] < b["pid"] and a["start"] < b["end"] and b["start"] < a["end"]:
                overlapping += 1
                assert a["cores"] != b["cores"], (a, b)
    assert overlapping >= 2  # the two slots did run at the same time
    assert len({e["pid"] for e in extras}) == 6


def test_slot_cores_give_each_slot_its_own_core_while_there_are_enough():
    cores = slot_cores(3)
    if not CAN_PIN:
        assert cores == [None] * 3
        return
    allowed = sorted(os.sched_getaffinity(0))
    assert cores == [allowed[i % len(allowed)] for i in range(3)]
    assert len(set(slot_cores(len(allowed)))) == len(allowed)


def test_a_job_sees_the_drivers_current_directory_and_environment(tmp_path, monkeypatch):
    collect([job(0)], workers=1)  # the forkserver exists before the changes below
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("RLCOMP_TEST_VALUE", "now")
    (_, result), = collect([job(1)], workers=1)
    assert result["extra"]["cwd"] == str(tmp_path)
    assert result["extra"]["env"] == "now"


def test_a_feed_that_waits_is_asked_again():
    answers = [WAIT, job(0), WAIT, WAIT, job(1), None]
    asked = []

    def feed():
        asked.append(1)
        return answers.pop(0) if answers else None

    results = collect(feed, workers=1)
    assert [j.eval_seed for j, _ in results] == [0, 1]
    assert len(asked) >= 6


def test_a_jobs_exception_is_reraised_with_its_type_and_the_others_are_stopped():
    start = time.monotonic()
    results: list = []
    with pytest.raises(ValueError, match="job job1 is bad") as info:
        run_local([job(0), job(1), job(2)], 2, lambda j, r: results.append(j), runner=fail)
    assert isinstance(info.value.__cause__, RemoteTraceback)
    assert "ValueError" in str(info.value.__cause__)
    assert results == []  # job 0 was killed, not waited for; job 2 never started
    assert time.monotonic() - start < 4


def test_a_process_that_dies_is_reported():
    with pytest.raises(WorkerDied, match="exit code 3"):
        collect([job(0)], workers=1, runner=die)


def test_an_error_in_the_callback_stops_the_running_jobs():
    def on_result(j, r):
        raise KeyboardInterrupt

    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_local([job(0), job(1, seconds=30)], 2, on_result, runner=where)
    assert time.monotonic() - start < 20


def _result(job):
    return {"job": job}


def test_a_job_whose_driver_is_gone_ends_quietly(capfd):
    """Interrupted driver: the job's send meets a closed pipe and must not print a traceback."""
    import multiprocessing as mp
    import signal

    from rlcomp.experiments import executors

    receive, send = mp.Pipe(duplex=False)
    receive.close()
    handler = signal.getsignal(signal.SIGINT)
    try:
        executors._job_process(_result, "job-1", None, os.getcwd(), dict(os.environ), send)
    finally:
        signal.signal(signal.SIGINT, handler)
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_an_interrupt_lost_where_it_landed_still_stops_the_sweep():
    """Ctrl-C raised inside a finalizer is printed and dropped by Python ("Exception ignored");
    the executor remembers it and raises it at its next step instead of running the other jobs."""
    import signal

    seen: list[str] = []

    def on_result(j, r):
        seen.append(j.key)
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs here
        except KeyboardInterrupt:
            pass  # what a finalizer does with it

    with pytest.raises(KeyboardInterrupt):
        run_local([job(i) for i in range(4)], 1, on_result, runner=where)
    assert seen == ["job0"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_programs_own_interrupt_handler_is_left_alone():
    import signal

    calls: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: calls.append(signum))
    try:
        def on_result(j, r):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)

        results = []
        run_local([job(0), job(1)], 1, lambda j, r: (on_result(j, r), results.append(j)),
                  runner=where)
        assert len(results) == 2 and calls == [signal.SIGINT, signal.SIGINT]
    finally:
        signal.signal(signal.SIGINT, previous)
