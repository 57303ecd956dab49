"""The results store's file: its schema, the checks at opening, and the upgrade from version 1.

``PRAGMA application_id`` marks the file as an rlcomp store and ``PRAGMA user_version`` holds the
schema version (:data:`SCHEMA_VERSION`); see :data:`SCHEMA` and :data:`CLAIMS_SCHEMA` for the
tables. Version 1 stores (without the ``claims`` table) are read as they are and upgraded in place
when opened for writing.

Opening checks the file before anything runs: not SQLite, another program's database, damaged
pages (``PRAGMA quick_check``), a newer schema, or (for writing) a file this process cannot write
are each refused with a one-line :class:`StoreError`. A read-only open leaves no ``-wal``/``-shm``
files behind that were not there before.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote

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


class StoreError(ValueError):
    """A file that is not a results store, has a schema this code cannot read, or is read-only."""


def sidecars(path: Path) -> tuple[Path, Path]:
    """The write-ahead log and shared-memory files SQLite keeps beside a WAL-mode database."""
    return path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")


def can_write(path: Path) -> bool:
    """Whether this process can open ``path`` for writing (root included: immutable files fail)."""
    try:
        with open(path, "r+b"):
            return True
    except OSError:
        return False


def sqlite_uri(path: Path, readonly: bool, leftovers: set[Path]) -> str:
    """The SQLite URI to open ``path`` with; creates the folder of a new writable store.

    Args:
        path: the store's file.
        readonly: open for reading only (the file must exist).
        leftovers: the ``-wal``/``-shm`` files that were there before this open.
    """
    if readonly:
        if not path.is_file():
            raise StoreError(f"{path}: no results store there")
        # A file nobody can write cannot change under us: read it without -wal/-shm files.
        immutable = not leftovers and not can_write(path)
        query = "immutable=1" if immutable else "mode=ro"
    else:
        if path.is_dir():
            raise StoreError(f"{path}: is a directory, not a results store")
        above = next((p for p in path.absolute().parents if p.exists()), None)
        if above is not None and not above.is_dir():
            raise StoreError(f"{path}: {above} is a file, not a folder")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{path}: cannot create its folder "
                             f"({exc.strerror or exc})") from None
        query = "mode=rwc"
    return f"file:{quote(str(path.resolve()))}?{query}"


def file_state(conn: sqlite3.Connection, path: Path) -> tuple[int, int, int]:
    """(application_id, user_version, number of schema objects) of the open file."""
    try:
        app = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        count = conn.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise  # another process holds it: not a verdict on the contents
        raise StoreError(f"{path}: cannot read as a results store ({exc})") from None
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{path}: not an SQLite database, or a damaged one ({exc})") from None
    return app, version, count


def check_version(path: Path, app: int, version: int) -> None:
    """Refuse another program's database, or a schema version this code does not read."""
    if app != APPLICATION_ID:
        raise StoreError(f"{path}: an SQLite database but not an rlcomp results store "
                         f"(application_id {app:#x}, expected {APPLICATION_ID:#x})")
    if version not in READABLE_VERSIONS:
        newer = " (written by a newer rlcomp?)" if version > SCHEMA_VERSION else ""
        raise StoreError(f"{path}: results store schema version {version} is not "
                         f"supported; this rlcomp reads version {SCHEMA_VERSION}{newer}")


def check_pages(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse a store whose pages are damaged (``PRAGMA quick_check``)."""
    try:
        rows = conn.execute("PRAGMA quick_check(3)").fetchall()
    except sqlite3.DatabaseError as exc:
        rows = [(str(exc),)]
    if rows != [("ok",)]:
        lines = [line for (text,) in rows for line in str(text).splitlines()
                 if line.strip() and not line.startswith("***")]
        detail = lines[0] if lines else "quick_check failed"
        raise StoreError(f"{path}: damaged results store ({detail}); restore it from a copy")


def check_writable(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse, before any work, a store this process cannot write (read-only or immutable)."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(f"PRAGMA user_version={file_state(conn, path)[1]}")
        finally:
            conn.execute("ROLLBACK")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise StoreError(f"{path}: locked by another process for too long") from None
        raise StoreError(f"{path}: cannot write the results store ({exc})") from None


def create_or_upgrade(conn: sqlite3.Connection, path: Path) -> None:
    """Inside a write transaction: create a new store's tables, or add version 2's to version 1."""
    app, version, count = file_state(conn, path)
    if (app, version, count) == (0, 0, 0):
        for statement in SCHEMA:
            conn.execute(statement)
        conn.execute(f"PRAGMA application_id={APPLICATION_ID}")
    else:  # another process created it meanwhile, or an older version
        check_version(path, app, version)
    if version != SCHEMA_VERSION:
        conn.execute(CLAIMS_SCHEMA)
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")


def remove_new_sidecars(path: Path, leftovers: set[Path]) -> None:
    """Remove the ``-wal``/``-shm`` files a closed read-only connection created and left behind."""
    new = [p for p in sidecars(path) if p.exists() and p not in leftovers]
    if not new:
        return
    if can_write(path):  # the last writable connection to close removes them
        try:
            conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=rw",
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
