"""Faults: a sweep killed (SIGKILL) or interrupted (SIGINT) part-way, and two sweeps at once.

Each ends with the store an uninterrupted run writes: the same keys, the same values, no key
twice, ``PRAGMA integrity_check`` ok, and no claim left behind. Values are compared for the
metrics that depend only on the job (returns, episode lengths, steps, sizes, bytes); the
timing and resource metrics (eval seconds, seconds per step, policy share, CPU %, CPU seconds per
step, RAM %, resident bytes, their peak and the number of samples) and the ``extra`` column (job
seconds, provenance) measure the run itself and differ between any two runs, interrupted or not.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from rlcomp.experiments.driver import run_sweep
from rlcomp.experiments.store import ResultStore
from rlcomp.experiments.sweep import load_sweep

ROOT = Path(__file__).resolve().parents[1]
LUNAR = ROOT / "checkpoints" / "LunarLander-v3__ddqn__0"
JOBS = 8
SPECS = ", ".join(["dense", "prune=0.3", "prune=0.5", "prune=0.7", "prune=0.9", "lowrank=0.3",
                   "lowrank=0.6", "quant=8"])
YAML = (f"checkpoints: [{LUNAR}]\nspecs: [{SPECS}]\nepisodes: 2\neval_seeds: [0]\n"
        "probes: {latency: false}\n")
TIMING = {"eval_seconds", "seconds_per_step", "policy_share", "cpu_percent",
          "cpu_seconds_per_step", "ram_percent", "rss_bytes", "rss_peak_bytes",
          "resource_samples", "compress_cpu_seconds"}
"""Metrics that measure the run rather than the job (excluded from value comparisons)."""


def _values(path: Path) -> dict[tuple[str, str], float]:
    """(key, metric) -> value of every job-determined metric in a store."""
    with ResultStore(path, readonly=True) as store:
        frame = store.load()
    frame = frame[~frame["metric"].isin(TIMING)]
    return {(k, m): v for k, m, v in zip(frame["key"], frame["metric"], frame["value"],
                                         strict=True)}


def _check_store(path: Path, reference: dict) -> int:
    """Assert ``path`` holds what the uninterrupted run holds; returns the rows compared."""
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        keys = [k for (k,) in conn.execute("SELECT key FROM results")]
        claims = conn.execute("SELECT count(*) FROM claims").fetchone()[0]
    conn.close()
    assert len(keys) == len(set(keys)) == JOBS
    assert claims == 0
    values = _values(path)
    assert values == reference
    return len(values)


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The values of an uninterrupted run of the sweep."""
    tmp = tmp_path_factory.mktemp("reference")
    (tmp / "s.yaml").write_text(YAML)
    with ResultStore(tmp / "r.sqlite") as store:
        summary = run_sweep(load_sweep(tmp / "s.yaml"), store, workers=2)
    assert summary.jobs_run == JOBS
    return _values(tmp / "r.sqlite")


def _start(tmp: Path, workers: int = 1, name: str = "r.sqlite") -> subprocess.Popen:
    """``rlcomp sweep`` in its own process group (as a shell job would be)."""
    (tmp / "s.yaml").write_text(YAML)
    command = [sys.executable, "-m", "rlcomp.cli", "sweep", str(tmp / "s.yaml"), "--store",
               str(tmp / name), "--workers", str(workers), "--quiet", "--json"]
    return subprocess.Popen(command, cwd=ROOT, start_new_session=True, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            preexec_fn=_interruptible)


def _interruptible() -> None:
    """In the child before exec: Ctrl-C ends it, as in a terminal, even when this test runs
    where SIGINT is ignored (a shell's background job), which the child would inherit."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stored(path: Path) -> int:
    if not path.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as conn:
            count = conn.execute("SELECT count(*) FROM results").fetchone()[0]
        conn.close()
        return count
    except sqlite3.Error:
        return 0


def _wait_for_rows(proc: subprocess.Popen, path: Path, rows: int, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while _stored(path) < rows:
        assert proc.poll() is None, "the sweep ended before it could be stopped: " + (
            proc.stderr.read())
        assert time.monotonic() < deadline, "the sweep stored too little in time"
        time.sleep(0.05)


def _rerun(tmp: Path) -> dict:
    done = subprocess.run([sys.executable, "-m", "rlcomp.cli", "sweep", str(tmp / "s.yaml"),
                           "--store", str(tmp / "r.sqlite"), "--workers", "2", "--quiet",
                           "--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return json.loads(done.stdout)


def _all_gone(pids: list[int], timeout: float = 15) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive = [p for p in pids if psutil.pid_exists(p)
                 and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
        if not alive:
            return True
        time.sleep(0.1)
    return False


def test_sigkill_part_way_then_rerun_equals_an_uninterrupted_run(tmp_path, reference):
    proc = _start(tmp_path)
    _wait_for_rows(proc, tmp_path / "r.sqlite", 2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    before = _stored(tmp_path / "r.sqlite")
    assert 2 <= before < JOBS
    summary = _rerun(tmp_path)
    assert (summary["jobs_skipped"], summary["jobs_run"]) == (before, JOBS - before)
    rows = _check_store(tmp_path / "r.sqlite", reference)
    print(f"SIGKILL: {JOBS} jobs, {before} stored before the kill, {summary['jobs_run']} run on "
          f"rerun, {rows} values equal, integrity ok")


def test_sigint_exits_with_one_line_stops_workers_and_rerun_completes(tmp_path, reference):
    proc = _start(tmp_path)
    _wait_for_rows(proc, tmp_path / "r.sqlite", 2)
    children = [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    assert children, "the sweep has no worker processes"
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole foreground group gets it
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert err.strip("\n").splitlines() == ["rlcomp: interrupted"], err
    assert out == ""
    assert _all_gone(children), "pool workers survived the interrupt"
    before = _stored(tmp_path / "r.sqlite")
    assert 2 <= before < JOBS
    summary = _rerun(tmp_path)
    assert (summary["jobs_skipped"], summary["jobs_run"]) == (before, JOBS - before)
    rows = _check_store(tmp_path / "r.sqlite", reference)
    print(f"SIGINT: {JOBS} jobs, {before} stored before the interrupt, {summary['jobs_run']} run "
          f"on rerun, {rows} values equal, integrity ok")


def test_two_sweeps_at_once_run_each_job_once(tmp_path, reference):
    procs = [_start(tmp_path), _start(tmp_path)]
    summaries = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert err == ""
        summaries.append(json.loads(out))
    runs = [s["jobs_run"] for s in summaries]
    assert sum(runs) == JOBS, summaries
    for summary in summaries:
        assert summary["jobs_total"] == JOBS
        assert summary["jobs_skipped"] + summary["jobs_run"] + summary["jobs_run_elsewhere"] == JOBS
    rows = _check_store(tmp_path / "r.sqlite", reference)
    print(f"concurrent: jobs run {runs[0]} + {runs[1]} = {sum(runs)}, {rows} values equal")


def test_a_stale_claim_is_taken_over_and_a_live_one_is_not(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as store:
        assert store.claim("k1") and store.claim("k1")  # a process may renew its own claim
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
        store._conn.execute("UPDATE claims SET pid = ?", (int(dead.stdout),))
        assert store.claimed() == set()
        assert store.claim("k1")  # the claimant died: taken over
        parent = psutil.Process(os.getppid())
        store._conn.execute("UPDATE claims SET pid = ?, started = ?",
                            (parent.pid, parent.create_time()))
        assert store.claimed() == {"k1"}
        assert not store.claim("k1")  # a live process holds it
        store.put("digest", "dense", None, 0, {"episodes": 1}, checkpoint="c",
                  env="LunarLander-v3", algo="ddqn", train_seed=0, metrics={"m": 1.0})
        store.release(["k1"])
