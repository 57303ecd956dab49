"""Experiments: the SQLite results store (keys, idempotent writes, the tidy frame).

Sweeps (grid -> jobs) and executors (local pool, Ray) are still to come.
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
