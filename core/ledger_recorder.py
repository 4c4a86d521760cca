"""One job's writes to the ledger, made so that the ledger can never end a job.

A :class:`Job` holds a :class:`JobRecorder` (or none, when the client has no ledger) and tells it
what happened: created, accepted by the backend, phase changes, the backend's ids, the end. Each call is one
short transaction (:class:`~vidbridge.Ledger`); a failure (disk full, a locked or broken file) is
logged as a warning and counted in ``Ledger.failures``: the job goes on.

For pools and other routers (a job whose server is chosen after it was created, or that moves to
another server): call :meth:`JobRecorder.moved` with the new backend and endpoint before the
first network call to it, so that ``job.ref`` and the ledger name the same server.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .httperrors import redact_url

if TYPE_CHECKING:  # pragma: no cover
    from .ledger import Ledger
    from .models import Artifact, GenerationRequest
    from .refs import JobRef

__all__ = ["JobRecorder"]

log = logging.getLogger("vidbridge.ledger")


class JobRecorder:
    """Writes the events of job ``job_id`` to ``ledger``; its methods never raise.

    :ivar attempt: the attempt being recorded (1 = first submission).
    """

    def __init__(self, ledger: Ledger, job_id: str, *, backend: str, endpoint: str, attempt: int = 1) -> None:
        self.ledger = ledger
        self.job_id = job_id
        self.backend = backend
        self.endpoint = redact_url(endpoint)
        self.attempt = attempt
        self._last_ref: str | None = None

    def __repr__(self) -> str:
        return f"<JobRecorder {self.job_id} attempt {self.attempt} -> {self.ledger.path}>"

    def _safely(self, what: str, write: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return write(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - a ledger problem must never end a job
            self.ledger.count_failure()
            log.warning("job ledger %s: could not record %s of %s (the job goes on): %s",
                        self.ledger.path, what, self.job_id, exc)
            return None

    def created(self, request: GenerationRequest | None, *, status: str, message: str | None = None,
                reason: str = "submit", output_dir: str | None = None) -> None:
        """The job exists (submitted locally, nothing sent yet), or starts attempt :attr:`attempt`."""
        self._safely("its creation", self.ledger.record_job, self.job_id, backend=self.backend,
                     endpoint=self.endpoint, status=status, message=message, attempt=self.attempt, reason=reason,
                     request=None if request is None else request.model_dump(mode="json"), output_dir=output_dir)

    def attached(self, ref: JobRef) -> None:
        """The job was attached by reference: give it a row if it has none; learn its attempt."""
        attempt = self._safely("its attachment", self.ledger.record_attached, self.job_id, backend=self.backend,
                               endpoint=self.endpoint, ref=ref)
        if attempt is not None:
            self.attempt = attempt

    def submitted(self, ref: JobRef) -> None:
        """The backend accepted the request (``ref``: its ids, if it gave any).

        Not written before the submit call on purpose: that write would sit between the local
        queue and the backend, where a cancel costs no request. A job killed during its submit is
        therefore recorded as not (yet) accepted; resume treats it like any other: it asks the
        backend, and resubmits only when told to.
        """
        self._last_ref = ref.to_json()
        self._safely("its submission", self.ledger.update_job, self.job_id, attempt=self.attempt, submitted=True,
                     ref=ref)

    def phase(self, status: str, message: str | None, ref: JobRef) -> None:
        """A phase change (with the reference as it is now)."""
        self._last_ref = ref.to_json()
        self._safely(f"phase {status}", self.ledger.update_job, self.job_id, attempt=self.attempt, status=status,
                     message=message, ref=ref)

    def ref(self, ref: JobRef) -> None:
        """The backend's ids changed (written only when they did)."""
        text = ref.to_json()
        if text == self._last_ref or not ref.data:
            return
        self._last_ref = text
        self._safely("its reference", self.ledger.update_job, self.job_id, attempt=self.attempt, ref=ref)

    def new_attempt(self, number: int, *, reason: str, request: GenerationRequest | None, status: str,
                    message: str, previous_error: dict[str, Any] | None = None) -> None:
        """Attempt ``number`` of the same job starts (a resubmission); the current one ends failed
        with ``previous_error``."""
        self._safely(f"the end of attempt {self.attempt}", self.ledger.end_attempt, self.job_id, self.attempt,
                     status="failed", error=previous_error)
        self.attempt = number
        self._last_ref = None
        self.created(request, status=status, message=message, reason=reason)

    def moved(self, *, backend: str, endpoint: str) -> None:
        """The job now runs on another server (pools): later writes and ``job.ref`` name it."""
        self.backend, self.endpoint = backend, redact_url(endpoint)
        self._safely("its new endpoint", self.ledger.update_job, self.job_id, backend=backend, endpoint=self.endpoint)

    def finished(self, status: str, *, message: str | None, error: dict[str, Any] | None,
                 artifacts: Sequence[Artifact], ref: JobRef, cached: bool = False,
                 reused_from: str | None = None, reuse_key: str | None = None) -> None:
        """The job ended: its status, error and artifacts in one transaction."""
        self._safely(f"its end ({status})", self.ledger.finish_job, self.job_id, attempt=self.attempt, status=status,
                     message=message, error=error, artifacts=artifacts, ref=ref, outputs=_names(artifacts),
                     cached=cached, reused_from=reused_from, reuse_key=reuse_key)

    def fetched(self, artifacts: Sequence[Artifact]) -> None:
        """A later ``job.fetch`` downloaded these artifacts."""
        self._safely("its artifacts", self.ledger.record_artifacts, self.job_id, attempt=self.attempt,
                     artifacts=artifacts, outputs=_names(artifacts))

    def outputs(self, names: Sequence[str]) -> None:
        """The server-side names of the outputs (``job.outputs()``)."""
        self._safely("its outputs", self.ledger.update_job, self.job_id, outputs=list(names))


def _names(artifacts: Sequence[Artifact]) -> list[str] | None:
    names = [item.provenance.original_name for item in artifacts if item.provenance.original_name]
    return names or None
