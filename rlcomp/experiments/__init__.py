"""Experiments: the results store, sweep files, jobs, executors (local pool, Ray), the driver.

``store`` (SQLite: keys, idempotent writes, the tidy frame), ``schema`` (the store's tables, the
checks at opening, the upgrade of old stores), ``job_claims`` (concurrent sweeps run each job once),
``sweep`` (YAML grid -> jobs), ``jobs`` (one job in a worker), ``executors``, ``driver`` (skip,
run, store as results arrive), ``plans`` (the book's sweeps per profile).
"""

from rlcomp.experiments.schema import SCHEMA_VERSION, StoreError
from rlcomp.experiments.store import (
    COLUMNS,
    DEFAULT_PATH,
    ResultStore,
    canonical_json,
    job_key,
)

__all__ = [
    "COLUMNS",
    "DEFAULT_PATH",
    "SCHEMA_VERSION",
    "ResultStore",
    "StoreError",
    "canonical_json",
    "job_key",
]
