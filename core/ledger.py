"""The job ledger: every job of this user, in one SQLite file shared by all their processes.

A job is written when :meth:`Session.submit` creates it (before its first network call), then at
every phase change, when the backend gives its ids (``job.ref``), and at its end with its verified
artifacts (path, size, SHA-256) or its error. :meth:`Client.jobs` and ``vidbridge jobs`` read it;
:meth:`Client.resume` finishes a job another process started (see :mod:`vidbridge.resume`).

Where: ``<user data dir>/vidbridge/jobs.sqlite3`` (platformdirs), or the file ``VIDBRIDGE_LEDGER``
names (``off`` or an empty value: no ledger), or ``Client(ledger=PATH)`` (``ledger=None``: none).

How it stays safe with several processes and a ``kill -9`` at any moment: WAL journal (readers
never block the writer), ``busy_timeout`` (a writer waits for another instead of failing), and
one short ``BEGIN IMMEDIATE`` transaction per write, so every row change of one event (a job's
end: its status, error and artifacts) is applied entirely or not at all. ``synchronous=NORMAL``:
a committed write survives the process being killed; only an operating-system crash or power cut
may lose the last writes (never corrupting the file).

Statuses (:data:`LEDGER_STATUSES`): the job phases (``queued`` ... ``completed``, ``failed``,
``cancelled``) and ``interrupted``: the process that followed the job is gone and the backend
cannot find the work again (``error.reason`` says why); :meth:`Client.resume` with
``resubmit=True`` runs it again as its next attempt.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

from .errors import InvalidRequestError, LedgerError
from .ledger_records import (
    FINISHED_STATUSES,
    INTERRUPTED,
    LEDGER_STATUSES,
    STATUS_GROUPS,
    ArtifactRecord,
    AttemptRecord,
    JobRecord,
)
from .ledger_schema import NewerSchemaError, migrate
from .models import Artifact, ErrorInfo, Phase
from .refs import JobRef

__all__ = [
    "Ledger",
    "JobRecord",
    "ArtifactRecord",
    "AttemptRecord",
    "LEDGER_STATUSES",
    "FINISHED_STATUSES",
    "STATUS_GROUPS",
    "INTERRUPTED",
    "default_ledger_path",
    "resolve_ledger",
]

log = logging.getLogger("vidbridge.ledger")

#: Seconds a writer waits for another process's write before giving up.
BUSY_TIMEOUT = 10.0

_ENV = "VIDBRIDGE_LEDGER"
_OFF = {"", "off", "none", "0", "false"}


def default_ledger_path() -> Path | None:
    """The ledger file: ``$VIDBRIDGE_LEDGER`` if set (``None`` when it says ``off`` or is empty),
    else ``<platformdirs user data dir>/vidbridge/jobs.sqlite3``."""
    override = os.environ.get(_ENV)
    if override is not None:
        return None if override.strip().lower() in _OFF else Path(override).expanduser()
    import platformdirs

    return Path(platformdirs.user_data_dir("vidbridge", appauthor=False)) / "jobs.sqlite3"


#: Marks "no ``ledger`` argument given" (``None`` means "no ledger").
DEFAULT: Any = object()


def resolve_ledger(value: Any = DEFAULT) -> Ledger | None:
    """The :class:`Ledger` a ``ledger=`` argument names: :data:`DEFAULT` the default file,
    ``None`` none, a path that file, a :class:`Ledger` itself.

    :raises InvalidRequestError: anything else.
    """
    if value is DEFAULT:
        path = default_ledger_path()
        return None if path is None else Ledger(path)
    if value is None or isinstance(value, Ledger):
        return value
    if isinstance(value, (str, os.PathLike)) and str(value).strip():
        return Ledger(value)
    raise InvalidRequestError(f"ledger must be a path, a vidbridge Ledger or None (got {type(value).__name__})",
                              field="ledger", allowed="a file path, a Ledger, or None (no ledger)")


def _json(value: Any) -> str | None:
    return None if value is None else json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


class Ledger:
    """A job ledger file (see the module docstring). Thread-safe; opened on first use.

    :param path: the SQLite file (its folder is created).
    :ivar failures: how many writes failed (each logged as a warning; no job fails for it).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).expanduser()
        self.failures = 0
        self._lock = threading.RLock()
        self._connection: sqlite3.Connection | None = None
        self._pid = os.getpid()
        self._closed = False

    def __repr__(self) -> str:
        return f"<vidbridge.Ledger {self.path}>"

    # -- connection -----------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self._closed:
            raise LedgerError(f"the job ledger {self.path} is closed", path=str(self.path))
        if self._connection is not None and self._pid != os.getpid():
            # a forked child must not use its parent's connection (SQLite forbids it: it could
            # corrupt the file); it is left alone, not closed, and the child opens its own
            self._connection = None
        if self._connection is not None:
            return self._connection
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT, isolation_level=None,
                                         check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise LedgerError(f"cannot open the job ledger {self.path}: {exc}", path=str(self.path)) from exc
        try:
            connection.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
            connection.execute("PRAGMA journal_mode = WAL")
            connection.execute("PRAGMA synchronous = NORMAL")
            connection.execute("PRAGMA foreign_keys = ON")
            migrate(connection)
        except NewerSchemaError as exc:
            connection.close()
            raise LedgerError(f"the job ledger {self.path} has {exc}: upgrade vidbridge, or choose another "
                              f"file with {_ENV}", path=str(self.path)) from None
        except sqlite3.Error as exc:
            connection.close()
            raise LedgerError(f"the job ledger {self.path} cannot be used: {exc}", path=str(self.path)) from exc
        self._connection, self._pid = connection, os.getpid()
        return connection

    @contextlib.contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction (``BEGIN IMMEDIATE``: takes the write lock at once)."""
        with self._lock:
            connection = self._connect()
            try:
                connection.execute("BEGIN IMMEDIATE")
                try:
                    yield connection
                except BaseException:
                    connection.execute("ROLLBACK")
                    raise
                connection.execute("COMMIT")
            except sqlite3.Error as exc:
                raise LedgerError(f"writing the job ledger {self.path}: {exc}", path=str(self.path)) from exc

    def _read(self, sql: str, parameters: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            connection = self._connect()
            try:
                cursor = connection.execute(sql, parameters)
                names = [column[0] for column in cursor.description]
                return [dict(zip(names, row)) for row in cursor.fetchall()]
            except sqlite3.Error as exc:
                raise LedgerError(f"reading the job ledger {self.path}: {exc}", path=str(self.path)) from exc

    @contextlib.contextmanager
    def _snapshot(self) -> Iterator[None]:
        """One read transaction: a record's job row, artifacts and attempts come from one state
        of the file even while another process writes."""
        with self._lock:
            connection = self._connect()
            try:
                connection.execute("BEGIN")
            except sqlite3.Error as exc:
                raise LedgerError(f"reading the job ledger {self.path}: {exc}", path=str(self.path)) from exc
            try:
                yield
            finally:
                connection.execute("COMMIT")

    def count_failure(self) -> None:
        """Count one failed write (see :attr:`failures`)."""
        with self._lock:
            self.failures += 1

    def close(self) -> None:
        """Close the file. Idempotent; later use raises :class:`LedgerError`."""
        with self._lock:
            self._closed = True
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    # -- writes (one transaction each) ----------------------------------------------------------

    def record_job(self, job_id: str, *, backend: str, endpoint: str, status: str,
                   request: Mapping[str, Any] | None = None, message: str | None = None,
                   attempt: int = 1, reason: str = "submit", reuse_key: str | None = None,
                   output_dir: str | None = None, ref: JobRef | None = None) -> None:
        """Insert a job (or, for a job already known, start its attempt ``attempt``: an attached
        job keeps its request)."""
        now = time.time()
        with self._write() as db:
            db.execute(
                "INSERT INTO jobs (id, created, updated, backend, endpoint, request, status, message, ref, "
                "attempt, reuse_key, output_dir) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT (id) DO UPDATE SET updated = excluded.updated, backend = excluded.backend, "
                "endpoint = excluded.endpoint, request = coalesce(excluded.request, request), "
                "status = excluded.status, message = excluded.message, ref = coalesce(excluded.ref, ref), "
                "attempt = excluded.attempt, reuse_key = coalesce(excluded.reuse_key, reuse_key), "
                "output_dir = coalesce(excluded.output_dir, output_dir), error = NULL",
                (job_id, now, now, backend, endpoint, _json(request), status, message,
                 None if ref is None else ref.to_json(), attempt, reuse_key, output_dir))
            db.execute("INSERT OR IGNORE INTO attempts (job_id, number, started, reason, status) "
                       "VALUES (?, ?, ?, ?, ?)", (job_id, attempt, now, reason, status))

    def update_job(self, job_id: str, *, attempt: int | None = None, status: str | None = None,
                   message: str | None = None, ref: JobRef | None = None,
                   outputs: Sequence[str] | None = None, endpoint: str | None = None,
                   backend: str | None = None, submitted: bool = False) -> None:
        """Change some fields of a job (and of its current attempt)."""
        changes: dict[str, Any] = {"updated": time.time()}
        for name, value in (("status", status), ("message", message), ("endpoint", endpoint),
                            ("backend", backend)):
            if value is not None:
                changes[name] = value
        if ref is not None:
            changes["ref"] = ref.to_json()
        if outputs is not None:
            changes["outputs"] = _json(list(outputs))
        with self._write() as db:
            db.execute(f"UPDATE jobs SET {', '.join(f'{name} = ?' for name in changes)} WHERE id = ?",
                       (*changes.values(), job_id))
            if attempt is not None and (status is not None or ref is not None or submitted):
                db.execute("UPDATE attempts SET status = coalesce(?, status), ref = coalesce(?, ref), "
                           "submitted = max(submitted, ?) WHERE job_id = ? AND number = ?",
                           (status, changes.get("ref"), int(submitted), job_id, attempt))

    def finish_job(self, job_id: str, *, attempt: int, status: str, message: str | None = None,
                   error: Mapping[str, Any] | None = None, artifacts: Sequence[Artifact] = (),
                   ref: JobRef | None = None, outputs: Sequence[str] | None = None,
                   cached: bool = False, reused_from: str | None = None, reuse_key: str | None = None) -> None:
        """Record a job's end: status, error, artifacts, all in one transaction."""
        now = time.time()
        ref_json = None if ref is None else ref.to_json()
        with self._write() as db:
            db.execute(
                "UPDATE jobs SET updated = ?, status = ?, message = ?, error = ?, ref = coalesce(?, ref), "
                "outputs = coalesce(?, outputs), cached = ?, reused_from = coalesce(?, reused_from), "
                "reuse_key = coalesce(?, reuse_key) WHERE id = ?",
                (now, status, message, _json(None if error is None else dict(error)), ref_json,
                 None if outputs is None else _json(list(outputs)), int(cached), reused_from, reuse_key, job_id))
            db.execute("UPDATE attempts SET ended = ?, status = ?, error = ?, ref = coalesce(?, ref) "
                       "WHERE job_id = ? AND number = ?",
                       (now, status, _json(None if error is None else dict(error)), ref_json, job_id, attempt))
            if artifacts:
                self._replace_artifacts(db, job_id, attempt, artifacts)

    def record_artifacts(self, job_id: str, *, attempt: int, artifacts: Sequence[Artifact],
                         outputs: Sequence[str] | None = None) -> None:
        """Replace a job's artifacts (a later ``job.fetch``)."""
        with self._write() as db:
            self._replace_artifacts(db, job_id, attempt, artifacts)
            db.execute("UPDATE jobs SET updated = ?, outputs = coalesce(?, outputs) WHERE id = ?",
                       (time.time(), None if outputs is None else _json(list(outputs)), job_id))

    @staticmethod
    def _replace_artifacts(db: sqlite3.Connection, job_id: str, attempt: int, artifacts: Sequence[Artifact]) -> None:
        db.execute("DELETE FROM artifacts WHERE job_id = ?", (job_id,))
        db.executemany(
            "INSERT INTO artifacts (job_id, position, attempt, path, size, sha256, media_type, original_name, "
            "provenance) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(job_id, position, attempt, str(Path(item.path).absolute()), item.size, item.sha256, item.media_type,
              item.provenance.original_name, item.provenance.model_dump_json())
             for position, item in enumerate(artifacts)])

    def record_attached(self, job_id: str, *, backend: str, endpoint: str, ref: JobRef) -> int:
        """Make sure an attached job has a row (a job submitted elsewhere gets one without a
        request); returns its current attempt number."""
        now = time.time()
        with self._write() as db:
            db.execute("INSERT OR IGNORE INTO jobs (id, created, updated, backend, endpoint, status, ref) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", (job_id, now, now, backend, endpoint, Phase.QUEUED.value,
                                                        ref.to_json()))
            db.execute("INSERT OR IGNORE INTO attempts (job_id, number, started, reason, status, submitted) "
                       "VALUES (?, 1, ?, 'attach', ?, 1)", (job_id, now, Phase.QUEUED.value))
            return int(db.execute("SELECT attempt FROM jobs WHERE id = ?", (job_id,)).fetchone()[0])

    def end_attempt(self, job_id: str, number: int, *, status: str, error: Mapping[str, Any] | None) -> None:
        """Close attempt ``number`` (a resubmission follows it)."""
        with self._write() as db:
            db.execute("UPDATE attempts SET ended = coalesce(ended, ?), status = ?, error = ? "
                       "WHERE job_id = ? AND number = ?",
                       (time.time(), status, _json(None if error is None else dict(error)), job_id, number))

    def mark_interrupted(self, job_id: str, error: Mapping[str, Any], message: str) -> None:
        """Record that the job's work cannot be found again (status ``interrupted``)."""
        with self._write() as db:
            db.execute("UPDATE jobs SET updated = ?, status = ?, message = ?, error = ? WHERE id = ?",
                       (time.time(), INTERRUPTED, message, _json(dict(error)), job_id))
            db.execute("UPDATE attempts SET status = ?, error = ? WHERE job_id = ? AND number = "
                       "(SELECT attempt FROM jobs WHERE id = ?)", (INTERRUPTED, _json(dict(error)), job_id, job_id))

    def prune(self, older_than: float) -> int:
        """Delete finished jobs (and interrupted ones) not updated for ``older_than`` seconds;
        returns how many. Unfinished jobs are kept: they may still be resumed. Files are kept."""
        if not (older_than >= 0):
            raise InvalidRequestError("older_than must be >= 0 seconds", field="older_than", allowed=">= 0")
        keep = STATUS_GROUPS["unfinished"]
        placeholders = ", ".join("?" for _ in keep)
        with self._write() as db:
            cursor = db.execute(f"DELETE FROM jobs WHERE updated < ? AND (status NOT IN ({placeholders}) "
                                "OR status = ?)", (time.time() - older_than, *keep, INTERRUPTED))
            return cursor.rowcount

    # -- reads ----------------------------------------------------------------------------------

    def get(self, job_id: str) -> JobRecord | None:
        """The record of ``job_id``, or ``None``."""
        with self._snapshot():
            rows = self._read("SELECT * FROM jobs WHERE id = ?", (job_id,))
            return self._records(rows)[0] if rows else None

    def jobs(self, status: str | None = None, limit: int | None = 50) -> list[JobRecord]:
        """Records, most recently updated first.

        :param status: one of :data:`LEDGER_STATUSES`, or ``"unfinished"`` / ``"finished"``.
        :param limit: at most this many (``None``: all).
        :raises InvalidRequestError: an unknown status or a limit below 1.
        """
        statuses = _statuses(status)
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise InvalidRequestError(f"limit must be an integer >= 1 (got {limit!r})", field="limit",
                                      allowed="an integer >= 1, or None for all")
        where = "" if statuses is None else f"WHERE status IN ({', '.join('?' for _ in statuses)})"
        with self._snapshot():
            rows = self._read(f"SELECT * FROM jobs {where} ORDER BY updated DESC, id LIMIT ?",
                              (*(statuses or ()), -1 if limit is None else limit))
            return self._records(rows)

    def reusable(self, reuse_key: str, limit: int = 5) -> list[JobRecord]:
        """Completed jobs recorded with ``reuse_key``, newest first."""
        with self._snapshot():
            rows = self._read("SELECT * FROM jobs WHERE reuse_key = ? AND status = ? ORDER BY updated DESC LIMIT ?",
                              (reuse_key, Phase.COMPLETED.value, limit))
            return self._records(rows)

    def _records(self, rows: list[dict[str, Any]]) -> list[JobRecord]:
        if not rows:
            return []
        ids = [row["id"] for row in rows]
        marks = ", ".join("?" for _ in ids)
        artifacts: dict[str, list[ArtifactRecord]] = {}
        for item in self._read(f"SELECT * FROM artifacts WHERE job_id IN ({marks}) ORDER BY job_id, position", ids):
            artifacts.setdefault(item["job_id"], []).append(ArtifactRecord(
                path=Path(item["path"]), size=item["size"], sha256=item["sha256"], media_type=item["media_type"],
                original_name=item["original_name"], attempt=item["attempt"]))
        attempts: dict[str, list[AttemptRecord]] = {}
        for item in self._read(f"SELECT * FROM attempts WHERE job_id IN ({marks}) ORDER BY job_id, number", ids):
            attempts.setdefault(item["job_id"], []).append(AttemptRecord(
                number=item["number"], started=item["started"], ended=item["ended"], reason=item["reason"],
                status=item["status"], submitted=bool(item["submitted"]),
                ref=None if item["ref"] is None else JobRef.from_json(item["ref"]),
                error=None if item["error"] is None else ErrorInfo(**_loads(item["error"]))))
        return [JobRecord(
            id=row["id"], created=row["created"], updated=row["updated"], backend=row["backend"],
            endpoint=row["endpoint"], status=row["status"], message=row["message"], request=_loads(row["request"]),
            ref=None if row["ref"] is None else JobRef.from_json(row["ref"]), outputs=tuple(_loads(row["outputs"])),
            error=None if row["error"] is None else ErrorInfo(**_loads(row["error"])), attempt=row["attempt"],
            reuse_key=row["reuse_key"], cached=bool(row["cached"]), output_dir=row["output_dir"],
            reused_from=row["reused_from"], artifacts=tuple(artifacts.get(row["id"], ())),
            attempts=tuple(attempts.get(row["id"], ()))) for row in rows]

    def provenance(self, job_id: str) -> list[dict[str, Any]]:
        """The stored provenance (JSON) of each artifact of ``job_id``, in order."""
        rows = self._read("SELECT provenance FROM artifacts WHERE job_id = ? ORDER BY position", (job_id,))
        return [_loads(row["provenance"]) or {} for row in rows]


def _statuses(status: str | None) -> tuple[str, ...] | None:
    if status is None:
        return None
    if status in STATUS_GROUPS:
        return STATUS_GROUPS[status]
    if status in LEDGER_STATUSES:
        return (status,)
    raise InvalidRequestError(f"unknown job status {status!r}", field="status",
                              allowed=", ".join([*LEDGER_STATUSES, *STATUS_GROUPS]))
