"""The job ledger's SQLite schema and its migrations.

The schema version is SQLite's ``PRAGMA user_version``: 0 for a new file, then the number of
migrations applied. :data:`MIGRATIONS` is append-only: migration ``n`` (1-based) takes a ledger
from version ``n - 1`` to ``n``; a released migration is never edited (write a new one). Each
runs inside the one ``BEGIN IMMEDIATE`` transaction of :func:`migrate`, so a process killed
mid-migration leaves the previous version intact, and two processes opening a new ledger at once
migrate it once (the second waits, then finds it current).

Version 1::

    jobs       one row per vidbridge job id: timestamps, backend, endpoint (no user info), the
               request (JSON), status (a phase, or "interrupted"), message, ref (JobRef JSON),
               server output names (JSON list), error (JSON), attempt, reuse_key, cached,
               output_dir, reused_from
    artifacts  the verified files of a job's latest completed attempt: path, size, sha256,
               media type, server's name, provenance (JSON)
    attempts   one row per attempt (1 = the first submission, 2 = a resubmission): when it
               started and ended, why it started, how it ended, its ref and error
"""

from __future__ import annotations

import sqlite3
from typing import Callable

__all__ = ["MIGRATIONS", "SCHEMA_VERSION", "migrate", "schema_version"]

_V1 = """
CREATE TABLE jobs (
    id          TEXT PRIMARY KEY,
    created     REAL NOT NULL,
    updated     REAL NOT NULL,
    backend     TEXT NOT NULL,
    endpoint    TEXT NOT NULL,
    request     TEXT,
    status      TEXT NOT NULL,
    message     TEXT,
    ref         TEXT,
    outputs     TEXT NOT NULL DEFAULT '[]',
    error       TEXT,
    attempt     INTEGER NOT NULL DEFAULT 1,
    reuse_key   TEXT,
    cached      INTEGER NOT NULL DEFAULT 0,
    output_dir  TEXT,
    reused_from TEXT
);
CREATE INDEX jobs_by_updated ON jobs (updated);
CREATE INDEX jobs_by_status ON jobs (status, updated);
CREATE INDEX jobs_by_reuse_key ON jobs (reuse_key, updated) WHERE reuse_key IS NOT NULL;
CREATE TABLE artifacts (
    job_id        TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    position      INTEGER NOT NULL,
    attempt       INTEGER NOT NULL,
    path          TEXT NOT NULL,
    size          INTEGER NOT NULL,
    sha256        TEXT NOT NULL,
    media_type    TEXT,
    original_name TEXT,
    provenance    TEXT,
    PRIMARY KEY (job_id, position)
);
CREATE TABLE attempts (
    job_id  TEXT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    number  INTEGER NOT NULL,
    started REAL NOT NULL,
    ended   REAL,
    reason  TEXT NOT NULL,
    status  TEXT NOT NULL,
    submitted INTEGER NOT NULL DEFAULT 0,
    ref     TEXT,
    error   TEXT,
    PRIMARY KEY (job_id, number)
);
"""


def _script(sql: str) -> Callable[[sqlite3.Connection], None]:
    def apply(connection: sqlite3.Connection) -> None:
        # one statement at a time: executescript() would COMMIT the migration's transaction
        for statement in filter(None, (part.strip() for part in sql.split(";"))):
            connection.execute(statement)

    return apply


#: The migrations, in order; ``MIGRATIONS[n - 1]`` takes the ledger from version n-1 to n.
MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    _script(_V1),
)

#: The version this vidbridge writes.
SCHEMA_VERSION = len(MIGRATIONS)


def schema_version(connection: sqlite3.Connection) -> int:
    """The ledger's ``PRAGMA user_version``."""
    return int(connection.execute("PRAGMA user_version").fetchone()[0])


class NewerSchemaError(Exception):
    """The ledger was written by a newer vidbridge (its version is above :data:`SCHEMA_VERSION`)."""


def migrate(connection: sqlite3.Connection, *, target: int | None = None) -> int:
    """Bring the ledger to version ``target`` (default: :data:`SCHEMA_VERSION`) in one
    transaction; returns the version found.

    :raises NewerSchemaError: the file is of a later version than this vidbridge knows.
    """
    target = SCHEMA_VERSION if target is None else target
    connection.execute("BEGIN IMMEDIATE")
    try:
        found = schema_version(connection)
        if found > SCHEMA_VERSION:
            raise NewerSchemaError(f"schema version {found}, newer than {SCHEMA_VERSION} (this vidbridge)")
        for number in range(found + 1, target + 1):
            MIGRATIONS[number - 1](connection)
        if target > found:
            connection.execute(f"PRAGMA user_version = {int(target)}")
        connection.execute("COMMIT")
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    return found
