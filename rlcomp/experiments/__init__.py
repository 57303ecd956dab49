"""Experiments: the results store, sweep files, jobs, executors (local pool, Ray), the driver.

``store`` (SQLite: keys, idempotent writes, the tidy frame), ``sweep`` (YAML grid -> jobs),
``jobs`` (one job in a worker), ``executors``, ``driver`` (skip, run, store as results arrive),
``plans`` (the book's sweeps per profile).
"""

from rlcomp.experiments.store import (
    COLUMNS,
    DEFAULT_PATH,
    SCHEMA_VERSION,
    ResultStore,
    StoreError,
    canonical_json,
    job_key,
    spec_columns,
)

__all__ = [
    "COLUMNS",
    "DEFAULT_PATH",
    "SCHEMA_VERSION",
    "ResultStore",
    "StoreError",
    "canonical_json",
    "job_key",
    "spec_columns",
]
