"""Job claims: two sweeps of one grid on one store run each job once between them.

Before a sweep runs a job it *claims* the job's key, in a transaction of the store. A claim names
the claiming process (pid, its start time, host); storing the result removes it, and so does
releasing a job given up. A claim whose process has died (on this host) is stale and may be taken
over, so a killed sweep's jobs are run again by the next one. Claims of other hosts count as live.

The functions here run on a connection inside a transaction the store opened
(:meth:`~rlcomp.experiments.store.ResultStore.claim` and its siblings).
"""

from __future__ import annotations

import os
import socket
import sqlite3
from collections.abc import Iterable
from datetime import UTC, datetime


def process_identity(pid: int) -> float | None:
    """The start time of process ``pid``, or None if no such process runs."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def claim_is_live(pid: int, started: float, host: str) -> bool:
    """Whether the process that made a claim still runs (claims of other hosts count as live)."""
    if host != socket.gethostname():
        return True
    now = process_identity(pid)
    return now is not None and abs(now - started) < 1.0


def this_process() -> tuple[int, float]:
    """``(pid, start time)`` of this process, as its claims record it."""
    pid = os.getpid()
    return pid, process_identity(pid) or 0.0


def take_claim(conn: sqlite3.Connection, key: str, pid: int, started: float) -> bool:
    """Claim ``key`` for process ``pid`` (started at ``started``) of this host.

    Runs inside the caller's write transaction; a claim whose process has died is taken over.

    Returns:
        False if the result is stored already or another live process holds the claim.
    """
    if conn.execute("SELECT 1 FROM results WHERE key = ?", (key,)).fetchone():
        return False
    row = conn.execute("SELECT pid, started, host FROM claims WHERE key = ?", (key,)).fetchone()
    mine = row is not None and tuple(row[::2]) == (pid, socket.gethostname())
    if row is not None and not mine and claim_is_live(*row):
        return False
    conn.execute("INSERT OR REPLACE INTO claims (key, pid, started, host, claimed)"
                 " VALUES (?, ?, ?, ?, ?)",
                 (key, pid, started, socket.gethostname(),
                  datetime.now(UTC).isoformat(timespec="seconds")))
    return True


def own_claims(keys: Iterable[str]) -> list[tuple[str, int, str]]:
    """The ``(key, pid, host)`` rows that name this process's claims on ``keys``."""
    return [(key, os.getpid(), socket.gethostname()) for key in keys]


def release_claims(conn: sqlite3.Connection, rows: list[tuple[str, int, str]]) -> None:
    """Delete the claims :func:`own_claims` named, inside the caller's write transaction."""
    conn.executemany("DELETE FROM claims WHERE key = ? AND pid = ? AND host = ?", rows)


def live_claims(conn: sqlite3.Connection) -> set[str]:
    """The keys claimed by live processes (jobs being run now); none in a version 1 store."""
    try:
        rows = conn.execute("SELECT key, pid, started, host FROM claims").fetchall()
    except sqlite3.OperationalError:  # a version 1 store opened read-only
        return set()
    return {key for key, *owner in rows if claim_is_live(*owner)}
