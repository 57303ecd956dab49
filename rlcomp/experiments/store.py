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

Claims: before a sweep runs a job it *claims* the job's key (``claim``), in a transaction, so two
sweeps of one grid on one store run each job once between them. A claim names the claiming
process (pid, its start time, host); ``put`` removes it with the result, ``release`` when the job is
given up. A claim whose process has died (on this host) is stale and may be taken over, so a killed
sweep's jobs are run again by the next one.

Schema: ``PRAGMA application_id`` marks the file as an rlcomp store and ``PRAGMA user_version``
holds the schema version (``SCHEMA_VERSION``); see ``SCHEMA`` for the tables. Version 1 stores
(without the ``claims`` table) are read as they are and upgraded in place when opened for writing.

Opening checks the file before anything runs: not SQLite, another program's database, damaged
pages (``PRAGMA quick_check``), a newer schema, or (for writing) a file this process cannot write
are each refused with a one-line ``StoreError``. A read-only open leaves no ``-wal``/``-shm`` files
behind that were not there before.
"""

from __future__ import annotations

import hashlib
import json
import math
import operator
import os
import socket
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import fields
from datetime import UTC, datetime
from numbers import Real
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from rlcomp.compress.specs import SPEC_TYPES, Spec, format_spec, parse_spec

DEFAULT_PATH = "results/rlcomp.sqlite"
"""Where the store lives unless told otherwise (relative to the working directory)."""

SCHEMA_VERSION = 2
"""The schema version this code writes (``PRAGMA user_version``)."""

READABLE_VERSIONS = (1, 2)
"""Schema versions this code reads; version 1 lacks the ``claims`` table (added on writing)."""

APPLICATION_ID = 0x726C6370
"""``PRAGMA application_id`` of an rlcomp store (ASCII ``rlcp``)."""

SCHEMA = (
    """CREATE TABLE results (
    id INTEGER PRIMARY KEY,
    key TEXT NOT NULL UNIQUE,        -- job_key() of the five key fields below
    checkpoint_digest TEXT NOT NULL, -- sha256 of the checkpoint's tensor file
    spec TEXT NOT NULL,              -- canonical spec text, 'dense' for none
    finetune TEXT NOT NULL,          -- canonical JSON object of fine-tune settings, '{}' if naive
    eval_seed INTEGER NOT NULL,
    probe TEXT NOT NULL,             -- canonical JSON object of probe settings
    checkpoint TEXT NOT NULL,        -- checkpoint name
    env TEXT NOT NULL,
    algo TEXT NOT NULL,
    train_seed INTEGER NOT NULL,
    extra TEXT NOT NULL,             -- JSON object: per-episode values, provenance, ...
    created TEXT NOT NULL            -- UTC time of writing, ISO 8601
)""",
    """CREATE TABLE metrics (
    result_id INTEGER NOT NULL REFERENCES results (id),
    metric TEXT NOT NULL,
    value REAL,                      -- NULL stands for NaN
    PRIMARY KEY (result_id, metric)
) WITHOUT ROWID""",
    "CREATE INDEX results_env ON results (env)",
)
"""The DDL of schema version 1, one statement per item."""

CLAIMS_SCHEMA = """CREATE TABLE IF NOT EXISTS claims (
    key TEXT PRIMARY KEY,            -- job_key() of a job being run
    pid INTEGER NOT NULL,            -- the claiming process
    started REAL NOT NULL,           -- its start time (seconds since the epoch), against pid reuse
    host TEXT NOT NULL,
    claimed TEXT NOT NULL            -- UTC time of claiming, ISO 8601
)"""
"""The table schema version 2 adds: jobs claimed by a running sweep."""

METHODS = tuple(SPEC_TYPES)
"""The compression methods; each has a level column in the tidy frame."""

COLUMNS = ("checkpoint", "env", "algo", "train_seed", "method", "level", "finetuned", "metric",
           "value", "spec", "eval_seed", "finetune", "probe", *METHODS, "key")
"""The columns of ``ResultStore.load``, in order."""

_DTYPES = {**dict.fromkeys(("checkpoint", "env", "algo", "method", "metric", "spec", "finetune",
                            "probe", "key"), "str"),
           "train_seed": "int64", "level": "float64", "finetuned": "bool", "value": "float64",
           "eval_seed": "int64", **dict.fromkeys(METHODS, "float64")}

_ABSENT_LEVEL = {"prune": 0.0, "lowrank": 0.0, "quant": math.nan}


class StoreError(ValueError):
    """A file that is not a results store, has a schema this code cannot read, or is read-only."""


def _sidecars(path: Path) -> tuple[Path, Path]:
    """The write-ahead log and shared-memory files SQLite keeps beside a WAL-mode database."""
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def _can_write(path: Path) -> bool:
    """Whether this process can open ``path`` for writing (root included: immutable files fail)."""
    try:
        with open(path, "r+b"):
            return True
    except OSError:
        return False


def _process_identity(pid: int) -> float | None:
    """The start time of process ``pid``, or None if no such process runs."""
    import psutil

    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return None
        return process.create_time()
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return None


def _claim_is_live(pid: int, started: float, host: str) -> bool:
    """Whether the process that made a claim still runs (claims of other hosts count as live)."""
    if host != socket.gethostname():
        return True
    now = _process_identity(pid)
    return now is not None and abs(now - started) < 1.0


def _plain(value: object) -> object:
    """JSON fallback: numpy scalars and arrays become Python numbers and lists."""
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def canonical_json(value: object) -> str:
    """Compact JSON with sorted keys and no NaN or infinity: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=False,
                      default=_plain)


def _canonical_spec(spec: str | Spec | tuple[Spec, ...]) -> str:
    if isinstance(spec, str):
        spec = parse_spec(spec)
    return format_spec(spec)


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
            "spec": _canonical_spec(spec),
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


def _variant(spec: Spec) -> str:
    """``prune``, or the method with its non-default options: ``prune[layer,structured]``."""
    options = []
    for f in fields(spec)[1:]:
        value = getattr(spec, f.name)
        if value != f.default:
            options.append(f.name if isinstance(value, bool) else str(value))
    return f"{spec.method}[{','.join(options)}]" if options else spec.method


def spec_columns(spec: str | Spec | tuple[Spec, ...]) -> dict[str, str | float]:
    """The tidy frame's description of a compression: method, level and each method's level.

    - ``method``: ``dense``; a method name with its non-default options in brackets (``prune``,
      ``prune[layer]``, ``prune[structured]``, ``lowrank[keep_io]``, ``quant[qat]``); or, for a
      composition, the steps' names joined by ``+`` (``lowrank+prune``).
    - ``level``: the single step's level (prune amount, lowrank reduction, quant bits); 0 for
      dense; NaN for a composition.
    - one column per method (``prune``, ``lowrank``, ``quant``): that method's level in the spec,
      whatever its options. Absent prune or lowrank is 0 (the same network as no step); absent
      quant is NaN (full precision has no bit count here); a method used twice is NaN.

    Example: ``lowrank=0.3+prune=0.5`` gives ``method="lowrank+prune"``, ``level=nan``,
    ``prune=0.5``, ``lowrank=0.3``, ``quant=nan``.
    """
    specs = parse_spec(spec) if isinstance(spec, str) else spec
    if not isinstance(specs, tuple):
        specs = (specs,)
    levels = [float(getattr(s, fields(s)[0].name)) for s in specs]
    columns: dict[str, str | float] = {
        "method": "+".join(_variant(s) for s in specs) or "dense",
        "level": levels[0] if len(specs) == 1 else (0.0 if not specs else math.nan),
    }
    for method in METHODS:
        found = [lv for s, lv in zip(specs, levels, strict=True) if s.method == method]
        columns[method] = found[0] if len(found) == 1 else (
            _ABSENT_LEVEL[method] if not found else math.nan)
    return columns


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
        self._sidecars = _sidecars(self.path)
        self._leftovers = {p for p in self._sidecars if p.exists()}
        target = self._target()
        try:
            self._conn = sqlite3.connect(target, uri=True, timeout=timeout, isolation_level=None,
                                         check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"{self.path}: cannot open as a results store ({exc})") from None
        try:
            self._open()
        except BaseException:
            self._conn.close()
            self._remove_new_sidecars()
            raise

    def _target(self) -> str:
        """The SQLite URI to open; creates the folder of a new writable store."""
        if self.readonly:
            if not self.path.is_file():
                raise StoreError(f"{self.path}: no results store there")
            # A file nobody can write cannot change under us: read it without -wal/-shm files.
            immutable = not self._leftovers and not _can_write(self.path)
            query = "immutable=1" if immutable else "mode=ro"
        else:
            if self.path.is_dir():
                raise StoreError(f"{self.path}: is a directory, not a results store")
            above = next((p for p in self.path.absolute().parents if p.exists()), None)
            if above is not None and not above.is_dir():
                raise StoreError(f"{self.path}: {above} is a file, not a folder")
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(f"{self.path}: cannot create its folder "
                                 f"({exc.strerror or exc})") from None
            query = "mode=rwc"
        return f"file:{quote(str(self.path.resolve()))}?{query}"

    def _state(self) -> tuple[int, int, int]:
        """(application_id, user_version, number of schema objects) of the open file."""
        try:
            app = self._conn.execute("PRAGMA application_id").fetchone()[0]
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            count = self._conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise  # another process holds it: not a verdict on the contents
            raise StoreError(f"{self.path}: cannot read as a results store ({exc})") from None
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not an SQLite database, or a damaged one ({exc})"
                             ) from None
        return app, version, count

    def _check(self, app: int, version: int) -> None:
        if app != APPLICATION_ID:
            raise StoreError(f"{self.path}: an SQLite database but not an rlcomp results store "
                             f"(application_id {app:#x}, expected {APPLICATION_ID:#x})")
        if version not in READABLE_VERSIONS:
            newer = " (written by a newer rlcomp?)" if version > SCHEMA_VERSION else ""
            raise StoreError(f"{self.path}: results store schema version {version} is not "
                             f"supported; this rlcomp reads version {SCHEMA_VERSION}{newer}")

    def _check_pages(self) -> None:
        """Refuse a store whose pages are damaged (``PRAGMA quick_check``)."""
        try:
            rows = self._conn.execute("PRAGMA quick_check(3)").fetchall()
        except sqlite3.DatabaseError as exc:
            rows = [(str(exc),)]
        if rows != [("ok",)]:
            lines = [line for (text,) in rows for line in str(text).splitlines()
                     if line.strip() and not line.startswith("***")]
            detail = lines[0] if lines else "quick_check failed"
            raise StoreError(f"{self.path}: damaged results store ({detail}); "
                             "restore it from a copy")

    def _open(self) -> None:
        app, version, count = self._state()
        empty = (app, version, count) == (0, 0, 0)
        if empty and self.readonly:
            raise StoreError(f"{self.path}: an empty SQLite file, not a results store")
        if not empty:
            self._check(app, version)
            self._check_pages()
        if not self.readonly:
            self._check_writable()
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA foreign_keys=ON")
        if not self.readonly:
            self._create()

    def _check_writable(self) -> None:
        """Refuse, before any work, a store this process cannot write (read-only or immutable)."""
        try:
            with self._lock:
                self._conn.execute("BEGIN IMMEDIATE")
                try:
                    self._conn.execute(f"PRAGMA user_version={self._state()[1]}")
                finally:
                    self._conn.execute("ROLLBACK")
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise StoreError(f"{self.path}: locked by another process for too long") from None
            raise StoreError(f"{self.path}: cannot write the results store ({exc})") from None

    def _create(self) -> None:
        """Create the tables of a new store, or add version 2's to a version 1 store."""
        with self._write() as conn:
            app, version, count = self._state()
            if (app, version, count) == (0, 0, 0):
                for statement in SCHEMA:
                    conn.execute(statement)
                conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
            else:  # another process created it meanwhile, or an older version
                self._check(app, version)
            if version != SCHEMA_VERSION:
                conn.execute(CLAIMS_SCHEMA)
                conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _remove_new_sidecars(self) -> None:
        """Remove the ``-wal``/``-shm`` files this object's connection created and left behind."""
        new = [p for p in self._sidecars if p.exists() and p not in self._leftovers]
        if not new:
            return
        if _can_write(self.path):  # the last writable connection to close removes them
            try:
                conn = sqlite3.connect(f"file:{quote(str(self.path.resolve()))}?mode=rw",
                                       uri=True, timeout=1.0)
                try:
                    conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
                finally:
                    conn.close()
            except sqlite3.Error:
                pass
            return
        for p in new:  # nobody can write the store, so nobody else needs them
            p.unlink(missing_ok=True)

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
        pid = os.getpid()
        started = _process_identity(pid) or 0.0
        with self._write() as conn:
            if conn.execute("SELECT 1 FROM results WHERE key = ?", (key,)).fetchone():
                return False
            row = conn.execute("SELECT pid, started, host FROM claims WHERE key = ?",
                               (key,)).fetchone()
            mine = row is not None and tuple(row[::2]) == (pid, socket.gethostname())
            if row is not None and not mine and _claim_is_live(*row):
                return False
            conn.execute("INSERT OR REPLACE INTO claims (key, pid, started, host, claimed)"
                         " VALUES (?, ?, ?, ?, ?)",
                         (key, pid, started, socket.gethostname(),
                          datetime.now(UTC).isoformat(timespec="seconds")))
        return True

    def release(self, keys: Iterable[str]) -> None:
        """Give up this process's claims on ``keys`` (jobs not run after all)."""
        if self.readonly:
            return
        rows = [(key, os.getpid(), socket.gethostname()) for key in keys]
        if rows:
            with self._write() as conn:
                conn.executemany("DELETE FROM claims WHERE key = ? AND pid = ? AND host = ?", rows)

    def claimed(self) -> set[str]:
        """The keys claimed by live processes (jobs being run now)."""
        with self._lock:
            try:
                rows = self._conn.execute("SELECT key, pid, started, host FROM claims").fetchall()
            except sqlite3.OperationalError:  # a version 1 store opened read-only
                return set()
        return {key for key, *owner in rows if _claim_is_live(*owner)}

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
        described = {spec: spec_columns(spec) for spec in frame["spec"].unique()}
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
                self._remove_new_sidecars()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = ", readonly=True" if self.readonly else ""
        return f"ResultStore({str(self.path)!r}{mode})"
