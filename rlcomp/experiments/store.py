"""The results store: one SQLite file of measured results, read back as one tidy DataFrame.

A result is keyed by five fields, the *key fields*:

- ``checkpoint_digest``: the sha256 of the checkpoint's tensor file (``Checkpoint.digest``);
- ``spec``: the compression, as canonical spec text (``format_spec``; ``dense`` for none);
- ``finetune``: the fine-tune settings, a JSON object (``None`` or ``{}``: naive, not fine-tuned);
- ``eval_seed``: the evaluation seed;
- ``probe``: the probe settings, a JSON object (for example episodes, num_envs, isolation).

``job_key`` hashes them into one hex string, the same for equal fields in any process on any
machine, so a sweep can tell which of its jobs are already in the store. Settings are compared as
canonical JSON (sorted keys, compact): ``{"episodes": 10}`` and ``{"episodes": 10.0}`` are different
keys, so build them the same way every time.

Writing a key twice is a no-op: ``put`` returns False and changes nothing. Each ``put`` is one
transaction, so a crash or kill leaves either the whole result or none of it.

Concurrency: one process writes (the sweep driver; workers hand their results to it); any number
of processes may read at the same time, even while it writes (write-ahead log, WAL). Should a second
writer appear anyway, SQLite serializes the two (each waits up to ``timeout`` seconds) and a key is
still stored once. One ``ResultStore`` may be shared by the threads of a process (calls are
serialized by a lock). Keep the file on a local disk: WAL does not work over network file systems.

Durability (``synchronous=NORMAL``): a killed or crashed process never loses a committed result;
a power failure may lose the last few, never the file's consistency. Running the sweep again
redoes exactly the lost jobs.

Claims (:mod:`rlcomp.experiments.job_claims`): before a sweep runs a job it claims the job's key, so
two sweeps of one grid on one store run each job once between them; ``put`` removes the claim with
the result, ``release`` when the job is given up, and a dead process's claim is taken over.

The file (:mod:`rlcomp.experiments.schema`): its tables, the checks at opening (each refusal a
one-line ``StoreError``) and the upgrade of version 1 stores. The tidy frame's method and level
columns come from :func:`rlcomp.compress.specs.spec_columns`.
"""

from __future__ import annotations

import hashlib
import json
import operator
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, datetime
from numbers import Real
from pathlib import Path

import pandas as pd

from rlcomp.compress.specs import METHODS, Spec, canonical_spec, spec_columns
from rlcomp.experiments import job_claims, schema
from rlcomp.experiments.schema import StoreError

DEFAULT_PATH = "results/rlcomp.sqlite"

RANDOM_POLICY = "random"
"""The spec text of a job that evaluates uniformly random actions instead of the checkpoint's
policy: the lower anchor of normalized returns, measured per checkpoint on the same evaluation
episodes. Its tidy rows have ``method="random"`` and NaN levels."""


def _canonical(spec: str | Spec | tuple[Spec, ...]) -> str:
    return RANDOM_POLICY if spec == RANDOM_POLICY else canonical_spec(spec)


def _spec_columns(spec: str) -> dict[str, str | float]:
    if spec == RANDOM_POLICY:
        return {"method": RANDOM_POLICY, "level": float("nan"),
                **dict.fromkeys(METHODS, float("nan"))}
    return spec_columns(spec)
"""Where the store lives unless told otherwise (relative to the working directory)."""

COLUMNS = ("checkpoint", "env", "algo", "train_seed", "method", "level", "finetuned", "metric",
           "value", "spec", "eval_seed", "finetune", "probe", *METHODS, "key")
"""The columns of ``ResultStore.load``, in order."""

_DTYPES = {**dict.fromkeys(("checkpoint", "env", "algo", "method", "metric", "spec", "finetune",
                            "probe", "key"), "str"),
           "train_seed": "int64", "level": "float64", "finetuned": "bool", "value": "float64",
           "eval_seed": "int64", **dict.fromkeys(METHODS, "float64")}

def _plain(value: object) -> object:
    """JSON fallback: numpy scalars and arrays become Python numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def canonical_json(value: object) -> str:
    """Compact JSON with sorted keys and no NaN or infinity: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False,
                      default=_plain)


def _settings(name: str, value: Mapping | None, none_ok: bool) -> str:
    if value is None and none_ok:
        value = {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{name} settings must be a mapping, got {type(value).__name__}")
    try:
        return canonical_json(dict(value))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} settings must be plain JSON values: {exc}") from None


def _integer(name: str, value: int) -> int:
    if isinstance(value, bool):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    try:
        return operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {value!r}") from None


def _text(name: str, value: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{name} must be a non-empty string, got {value!r}")
    return value


def _key_fields(checkpoint_digest: str, spec: str | Spec | tuple[Spec, ...],
                finetune: Mapping | None, eval_seed: int, probe: Mapping) -> dict:
    """The five key fields in canonical form (settings as canonical JSON text)."""
    return {"checkpoint_digest": _text("checkpoint digest", checkpoint_digest),
            "spec": _canonical(spec),
            "finetune": _settings("finetune", finetune, none_ok=True),
            "eval_seed": _integer("eval_seed", eval_seed),
            "probe": _settings("probe", probe, none_ok=False)}


def _digest(fields_: dict) -> str:
    document = {**fields_, "finetune": json.loads(fields_["finetune"]),
                "probe": json.loads(fields_["probe"])}
    return hashlib.sha256(canonical_json(document).encode()).hexdigest()


def job_key(checkpoint_digest: str, spec: str | Spec | tuple[Spec, ...],
            finetune: Mapping | None, eval_seed: int, probe: Mapping) -> str:
    """The store key of a result: sha256 (hex) of the canonical JSON of its five key fields.

    Args:
        checkpoint_digest: ``Checkpoint.digest`` of the trained agent.
        spec: spec text (any form ``parse_spec`` accepts; canonicalized) or spec objects.
        finetune: fine-tune settings; ``None`` and ``{}`` both mean naive (the same key).
        eval_seed: evaluation seed.
        probe: probe settings (episodes, num_envs, isolation, ...).

    Returns:
        64 hex digits, stable across processes, machines and Python versions.

    Raises:
        ValueError: for a bad spec, a non-JSON setting or an empty digest.
        TypeError: for settings that are not mappings or a seed that is not an integer.
    """
    return _digest(_key_fields(checkpoint_digest, spec, finetune, eval_seed, probe))


def _metric_values(metrics: Mapping[str, float]) -> list[tuple[str, float]]:
    if not isinstance(metrics, Mapping) or not metrics:
        raise ValueError("metrics must be a non-empty mapping of metric name to number")
    rows = []
    for name, value in metrics.items():
        _text("metric name", name)
        if isinstance(value, bool) or not isinstance(value, Real):
            raise TypeError(f"metric {name!r} must be a number, got {value!r}")
        rows.append((name, float(value)))
    return rows


def _matching(column: str, wanted: str | Iterable[str] | None) -> tuple[str, list[str]]:
    if wanted is None:
        return "", []
    values = [wanted] if isinstance(wanted, str) else list(wanted)
    return f" AND {column} IN ({','.join('?' * len(values))})", values


class ResultStore:
    """The SQLite results store (see the module docstring for keys and concurrency).

    Args:
        path: the store's file; created, with its folder, when missing (unless ``readonly``).
        readonly: open for reading only (notebooks); the file must exist, ``put`` is refused.
        timeout: seconds to wait for another writer's lock before giving up.

    Raises:
        StoreError: the file is not SQLite, is another program's database, has a schema version
            this code does not read, or (``readonly``) does not exist.

    Use it as a context manager, or call ``close()``.
    """

    def __init__(self, path: str | Path = DEFAULT_PATH, *, readonly: bool = False,
                 timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._lock = threading.RLock()
        self._leftovers = {p for p in schema.sidecars(self.path) if p.exists()}
        target = schema.sqlite_uri(self.path, readonly, self._leftovers)
        try:
            self._conn = sqlite3.connect(target, uri=True, timeout=timeout, isolation_level=None,
                                         check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open as a results store ({exc})") from None
        try:
            self._open()
        except BaseException:
            self._conn.close()
            schema.remove_new_sidecars(self.path, self._leftovers)
            raise

    def _open(self) -> None:
        """Check the file (see :mod:`~rlcomp.experiments.schema`), set it up, create its tables."""
        app, version, count = schema.file_state(self._conn, self.path)
        empty = (app, version, count) == (0, 0, 0)
        if empty and self.readonly:
            raise StoreError(f"{self.path}: an empty SQLite file, not a results store")
        if not empty:
            schema.check_version(self.path, app, version)
            schema.check_pages(self._conn, self.path)
        if not self.readonly:
            with self._lock:
                schema.check_writable(self._conn, self.path)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        if not self.readonly:
            with self._write() as conn:
                schema.create_or_upgrade(conn, self.path)

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: committed at the end, rolled back on any exception.

        The body may end the transaction itself (``ROLLBACK``) to leave the store unchanged.
        """
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
                if self._conn.in_transaction:
                    self._conn.execute("COMMIT")
            except BaseException:
                if self._conn.in_transaction:
                    self._conn.execute("ROLLBACK")
                raise

    def put(self, checkpoint_digest: str, spec: str | Spec | tuple[Spec, ...],
            finetune: Mapping | None, eval_seed: int, probe: Mapping, *, checkpoint: str,
            env: str, algo: str, train_seed: int, metrics: Mapping[str, float],
            extra: Mapping | None = None) -> bool:
        """Store one result in one transaction, unless its key is already stored.

        Args:
            checkpoint_digest: first key field (see ``job_key``).
            spec: second key field.
            finetune: third key field (``None`` or ``{}``: naive).
            eval_seed: fourth key field.
            probe: fifth key field.
            checkpoint: the checkpoint's name.
            env: environment id (``Checkpoint.meta["env_id"]``).
            algo: algorithm (``Checkpoint.meta["algo"]``).
            train_seed: training seed (``Checkpoint.meta["seed"]``).
            metrics: metric name -> number (NaN allowed); at least one.
            extra: JSON object kept beside the metrics (per-episode returns and lengths,
                provenance); numpy arrays and scalars are converted.

        Returns:
            True if the result was written; False if its key was already there (nothing changed,
            even if the other arguments differ).

        Raises:
            StoreError: the store was opened read-only.
            ValueError, TypeError: for a bad argument, before anything is written.
        """
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only; cannot put")
        key_fields = _key_fields(checkpoint_digest, spec, finetune, eval_seed, probe)
        key = _digest(key_fields)
        names = [_text("checkpoint", checkpoint), _text("env", env), _text("algo", algo),
                 _integer("train_seed", train_seed)]
        rows = _metric_values(metrics)
        extra = {} if extra is None else extra
        if not isinstance(extra, Mapping):
            raise TypeError(f"extra must be a mapping, got {type(extra).__name__}")
        try:
            extra_text = json.dumps(dict(extra), allow_nan=False, default=_plain)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"extra must be plain JSON values: {exc}") from None
        created = datetime.now(UTC).isoformat(timespec="seconds")
        with self._write() as conn:
            cursor = conn.execute(
                "INSERT OR IGNORE INTO results (key, checkpoint_digest, spec, finetune, eval_seed,"
                " probe, checkpoint, env, algo, train_seed, extra, created)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (key, *key_fields.values(), *names, extra_text, created))
            if cursor.rowcount == 0:
                conn.execute("ROLLBACK")
                return False
            result_id = cursor.lastrowid
            conn.execute("DELETE FROM claims WHERE key = ?", (key,))
            conn.executemany("INSERT INTO metrics (result_id, metric, value) VALUES (?, ?, ?)",
                             [(result_id, name, value) for name, value in rows])
        return True

    def claim(self, key: str) -> bool:
        """Claim the job ``key`` for this process before running it, in one transaction.

        Returns:
            True if this process now holds the claim; False if the result is stored already or
            another live process holds the claim. A claim whose process has died is taken over.

        Raises:
            StoreError: the store was opened read-only.
        """
        if self.readonly:
            raise StoreError(f"{self.path}: opened read-only; cannot claim")
        pid, started = job_claims.this_process()
        with self._write() as conn:
            return job_claims.take_claim(conn, key, pid, started)

    def release(self, keys: Iterable[str]) -> None:
        """Give up this process's claims on ``keys`` (jobs not run after all)."""
        if self.readonly:
            return
        rows = job_claims.own_claims(keys)
        if rows:
            with self._write() as conn:
                job_claims.release_claims(conn, rows)

    def claimed(self) -> set[str]:
        """The keys claimed by live processes (jobs being run now)."""
        with self._lock:
            return job_claims.live_claims(self._conn)

    def has(self, key: str) -> bool:
        """Whether a result with this ``job_key`` is stored."""
        with self._lock:
            row = self._conn.execute("SELECT 1 FROM results WHERE key = ?", (key,)).fetchone()
        return row is not None

    __contains__ = has

    def keys(self) -> set[str]:
        """The ``job_key`` of every stored result."""
        with self._lock:
            return {key for (key,) in self._conn.execute("SELECT key FROM results")}

    def __len__(self) -> int:
        """The number of stored results (jobs, not metric rows)."""
        with self._lock:
            return self._conn.execute("SELECT count(*) FROM results").fetchone()[0]

    def extra(self, key: str) -> dict:
        """The ``extra`` JSON object stored with a result.

        Raises:
            KeyError: no result has this key.
        """
        with self._lock:
            row = self._conn.execute("SELECT extra FROM results WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise KeyError(key)
        return json.loads(row[0])

    def load(self, env: str | Iterable[str] | None = None,
             metric: str | Iterable[str] | None = None) -> pd.DataFrame:
        """The tidy frame: one row per (result, metric), columns ``COLUMNS``.

        ``checkpoint, env, algo, train_seed, method, level, finetuned, metric, value`` as in the
        design, then ``spec`` (canonical text), ``eval_seed``, ``finetune`` and ``probe`` (canonical
        JSON, ``{}`` for naive), a level column per method (see ``spec_columns``) and ``key``
        (``job_key``, for ``extra``). ``finetuned`` is True when the fine-tune settings are not
        empty. Rows are sorted by env, checkpoint, spec, finetune, eval_seed, probe and metric.

        Args:
            env: keep only these environment ids (one or several).
            metric: keep only these metrics (one or several).
        """
        env_sql, env_args = _matching("r.env", env)
        metric_sql, metric_args = _matching("m.metric", metric)
        query = ("SELECT r.checkpoint, r.env, r.algo, r.train_seed, r.spec, r.finetune, m.metric,"
                 " m.value, r.eval_seed, r.probe, r.key FROM results r"
                 " JOIN metrics m ON m.result_id = r.id WHERE 1" + env_sql + metric_sql +
                 " ORDER BY r.env, r.checkpoint, r.spec, r.finetune, r.eval_seed, r.probe,"
                 " m.metric")
        with self._lock:
            rows = self._conn.execute(query, env_args + metric_args).fetchall()
        frame = pd.DataFrame.from_records(rows, columns=[
            "checkpoint", "env", "algo", "train_seed", "spec", "finetune", "metric", "value",
            "eval_seed", "probe", "key"])
        described = {spec: _spec_columns(spec) for spec in frame["spec"].unique()}
        for column in ("method", "level", *METHODS):
            frame[column] = [described[spec][column] for spec in frame["spec"]]
        frame["finetuned"] = frame["finetune"] != "{}"
        frame["value"] = frame["value"].astype("float64")  # SQL NULL (NaN) arrives as None
        return frame[list(COLUMNS)].astype(_DTYPES)

    def close(self) -> None:
        """Close the connection (idempotent); a read-only store leaves no new -wal/-shm files."""
        with self._lock:
            self._conn.close()
            if self.readonly:
                schema.remove_new_sidecars(self.path, self._leftovers)

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = ", readonly=True" if self.readonly else ""
        return f"ResultStore({str(self.path)!r}{mode})"
