"""What the job ledger holds, as read back: :class:`JobRecord` (with its :class:`AttemptRecord`
and :class:`ArtifactRecord` entries), and the statuses a job can have there.

Statuses (:data:`LEDGER_STATUSES`): the job phases (``queued`` ... ``completed``, ``failed``,
``cancelled``) and ``interrupted``, which is not a :class:`~vidbridge.Phase` (a live job never is
interrupted: only its ledger record, once the process that followed it is gone and the backend
cannot find the work again).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from .models import ErrorInfo, Phase
from .refs import JobRef

__all__ = ["JobRecord", "ArtifactRecord", "AttemptRecord", "LEDGER_STATUSES", "FINISHED_STATUSES", "STATUS_GROUPS",
           "INTERRUPTED"]

#: The ledger status of a job whose work the backend cannot find again (not a :class:`Phase`).
INTERRUPTED = "interrupted"
#: Every status a ledger row can have.
LEDGER_STATUSES: tuple[str, ...] = (*(phase.value for phase in Phase), INTERRUPTED)
#: Statuses that end a job.
FINISHED_STATUSES = frozenset({Phase.COMPLETED.value, Phase.FAILED.value, Phase.CANCELLED.value})
#: ``status`` filters of :meth:`Ledger.jobs` besides the statuses themselves.
STATUS_GROUPS = {"unfinished": tuple(s for s in LEDGER_STATUSES if s not in FINISHED_STATUSES),
                 "finished": tuple(sorted(FINISHED_STATUSES))}


class ArtifactRecord(BaseModel):
    """A verified file of a completed job, as the ledger holds it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    path: Path
    size: int
    sha256: str
    media_type: str | None = None
    original_name: str | None = None
    attempt: int = 1


class AttemptRecord(BaseModel):
    """One attempt of a job: 1 is the first submission, 2 a resubmission.

    :ivar reason: why it started: ``submit``, ``resubmit`` (asked by the user), ``lost`` (the
        backend lost attempt 1 with no possible output), ``reuse`` (served from an earlier job).
    :ivar submitted: True once the request was handed to the backend (it may have reached it).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    number: int
    started: float
    ended: float | None = None
    reason: str
    status: str
    submitted: bool = False
    ref: JobRef | None = None
    error: ErrorInfo | None = None


class JobRecord(BaseModel):
    """A job as the ledger holds it (:meth:`Client.jobs`, :meth:`Client.resume`, ``vidbridge jobs``).

    :ivar id: the job id (the one ``generate`` prints and statuses carry).
    :ivar status: a :class:`Phase` value, or ``"interrupted"`` (see :mod:`vidbridge.ledger`).
    :ivar endpoint: the server's URL (no user info, query or fragment: nothing secret).
    :ivar request: the request as submitted (JSON), ``None`` for a job only attached here.
    :ivar ref: the job's reference (:meth:`Client.attach`), with the backend's ids once known.
    :ivar outputs: the server-side names of its outputs, once known.
    :ivar attempt: the current attempt number.
    :ivar reuse_key: set for requests that may be reused (``reuse=True``, fixed seed).
    :ivar cached: the artifacts were reused from the earlier job ``reused_from``.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    created: float
    updated: float
    backend: str
    endpoint: str
    status: str
    message: str | None = None
    request: dict[str, Any] | None = None
    ref: JobRef | None = None
    outputs: tuple[str, ...] = ()
    error: ErrorInfo | None = None
    attempt: int = 1
    reuse_key: str | None = None
    cached: bool = False
    output_dir: str | None = None
    reused_from: str | None = None
    artifacts: tuple[ArtifactRecord, ...] = ()
    attempts: tuple[AttemptRecord, ...] = Field(default_factory=tuple)

    @property
    def finished(self) -> bool:
        """True for completed, failed and cancelled jobs (``interrupted`` is not finished)."""
        return self.status in FINISHED_STATUSES

    def to_summary(self) -> dict[str, Any]:
        """The JSON form of ``vidbridge jobs list``/``show`` (everything, plus ``finished``)."""
        return {**self.model_dump(mode="json"), "finished": self.finished}
