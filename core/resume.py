"""Finishing, resubmitting and cancelling ledger jobs from any process (:meth:`Client.resume`,
:meth:`Client.cancel_job`, ``vidbridge jobs resume|cancel``).

Resume never generates twice on its own: it re-attaches through the job's reference, and only
``resubmit=True`` runs the request again (the job's next attempt, same id), and even then only
after the backend said it cannot find the work.

Caveat, said plainly: when the backend cannot see a job's work (a WanGP web-UI task is bound to
the gradio session that queued it), that work may still be running on the server; a resubmission
then generates a second time. ``interrupted`` says only that vidbridge cannot follow it.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from .errors import (
    BackendError,
    InvalidRequestError,
    JobCancelledError,
    LedgerError,
    NotAttachableError,
    VidbridgeError,
)
from .job import Job
from .ledger import FINISHED_STATUSES, JobRecord, Ledger
from .models import CancelResult, Endpoint, GenerationRequest, Phase, build
from .refs import JobRef
from .reuse import Reused, artifacts_of, materialise, verified
from .session import DEFAULT_OUTPUT_DIR

if TYPE_CHECKING:  # pragma: no cover
    from .client import Client
    from .session import Session

__all__ = ["resume", "cancel_job", "record_of", "require_ledger"]

log = logging.getLogger("vidbridge.resume")

#: Seconds ``cancel_job`` waits for an attached job to end after asking the backend to stop it.
CANCEL_WAIT = 30.0


def require_ledger(client: Client) -> Ledger:
    """The client's ledger. :raises LedgerError: it has none."""
    if client.ledger is None:
        raise LedgerError("this vidbridge.Client has no job ledger (ledger=None, or VIDBRIDGE_LEDGER=off)")
    return client.ledger


def record_of(client: Client, job_id: str) -> JobRecord:
    """The ledger's record of ``job_id``. :raises InvalidRequestError: there is none."""
    ledger = require_ledger(client)
    if not isinstance(job_id, str) or not job_id.strip():
        raise InvalidRequestError(f"a job id is a non-empty string (got {job_id!r})", field="job_id",
                                  allowed="an id listed by vidbridge jobs list")
    record = ledger.get(job_id)
    if record is None:
        from .models import excerpt

        raise InvalidRequestError(f"no job {excerpt(job_id, 40)} in the job ledger {ledger.path}", field="job_id",
                                  allowed="an id listed by vidbridge jobs list")
    return record


def _ref_of(record: JobRecord) -> JobRef:
    # a job killed before its first phase change has no reference yet: the backend decides
    return record.ref or JobRef(backend=record.backend, endpoint=record.endpoint, job_id=record.id)


class _DetachedSession:
    """What a job completed earlier needs of a session: its server's name, and no network."""

    def __init__(self, record: JobRecord) -> None:
        self.endpoint = Endpoint(url=record.endpoint, backend=record.backend)
        self.backend = record.backend

    def _implements(self, hook_name: str) -> bool:
        return False

    def _call(self, hook_name: str, **kwargs: Any) -> Any:
        raise VidbridgeError(f"this job completed earlier and is not connected to {self.endpoint.url}: "
                             f"attach it (Client.attach(record.ref)) to {hook_name.removeprefix('vidbridge_')}")

    _call_optional = _call


def _completed(client: Client, record: JobRecord, output_dir: Path | None, job_options: Mapping[str, Any]) -> Job:
    ledger = require_ledger(client)
    paths = [item.path if output_dir is None else materialise(item, output_dir) for item in record.artifacts]
    artifacts = artifacts_of(ledger, record.id, record.artifacts, paths)
    return Job(_DetachedSession(record), None, record.id,  # type: ignore[arg-type]
               output_dir=output_dir or paths[0].parent, timeout=None, poll_interval=0.05,
               on_status=job_options.get("on_status"), ref_data=dict(_ref_of(record).data),
               done=Reused(artifacts, record.reused_from))


def _session_for(client: Client, record: JobRecord, credentials: Any) -> Session:
    with client._lock:
        open_ = [s for s in client._sessions if not s.closed and s.backend == record.backend
                 and s.endpoint.url.rstrip("/") == record.endpoint.rstrip("/")]
    if open_:
        return open_[0]
    return client.connect(build(Endpoint, url=record.endpoint, backend=record.backend), credentials=credentials)


def _submit_again(client: Client, record: JobRecord, *, attempt: int, output_dir: Path, credentials: Any,
                  job_options: Mapping[str, Any]) -> Job:
    if record.request is None:
        raise InvalidRequestError(f"{record.id} has no recorded request (it was only attached in this ledger): "
                                  "it cannot be submitted again", field="job_id",
                                  allowed="a job submitted through vidbridge")
    request = build(GenerationRequest, **record.request)  # input files are checked again here
    session = _session_for(client, record, credentials)
    if session._implements("vidbridge_validate"):
        session._call_optional("vidbridge_validate", request=request)
    options = {"timeout": None, "on_status": None, "download": True, **job_options}
    return session._new_job(request, record.id, attempt=attempt, output_dir=output_dir, **options)


def resume(client: Client, job_id: str, *, resubmit: bool = False, output_dir: str | Path | None = None,
           credentials: Any = None, **job_options: Any) -> Job:
    """See :meth:`Client.resume`."""
    record = record_of(client, job_id)
    ledger = require_ledger(client)
    chosen = Path(output_dir) if output_dir is not None else None
    destination = chosen or Path(record.output_dir or DEFAULT_OUTPUT_DIR)
    if record.status == Phase.COMPLETED.value and verified(record.artifacts):
        return _completed(client, record, chosen, job_options)
    if record.status in FINISHED_STATUSES and record.status != Phase.COMPLETED.value and not resubmit:
        raise InvalidRequestError(f"{job_id} is {record.status}: there is nothing to resume (resubmit=True "
                                  "runs it again)", field="job_id",
                                  allowed="an unfinished, interrupted or completed job, or resubmit=True")
    if record.status not in FINISHED_STATUSES or record.status == Phase.COMPLETED.value:
        # completed but its files are gone or changed: its reference may still name them on the server
        try:
            return client.attach(_ref_of(record), credentials=credentials, output_dir=destination, **job_options)
        except NotAttachableError as exc:
            message = f"{job_id} is interrupted: {exc.message}"
            if record.status != Phase.COMPLETED.value:
                ledger.mark_interrupted(job_id, exc.to_dict(), message)
            if not resubmit:
                raise NotAttachableError(f"{message} (resume it with resubmit=True to run it again)",
                                         endpoint=exc.endpoint, reason=exc.reason) from exc
            log.warning("%s; submitting it again (attempt %d)", message, record.attempt + 1)
    return _submit_again(client, record, attempt=record.attempt + 1, output_dir=destination,
                         credentials=credentials, job_options=job_options)


def cancel_job(client: Client, job_id: str, *, credentials: Any = None) -> CancelResult:
    """See :meth:`Client.cancel_job`."""
    record = record_of(client, job_id)
    ledger = require_ledger(client)
    if record.finished:
        raise InvalidRequestError(f"{job_id} has finished ({record.status}): there is nothing to cancel",
                                  field="job_id", allowed="an unfinished or interrupted job")
    if record.status == "interrupted":
        result = CancelResult(server_stopped=False, message="interrupted: the backend cannot find its work")
    else:
        try:
            job = client.attach(_ref_of(record), credentials=credentials, download=False)
        except (NotAttachableError, BackendError) as exc:
            result = CancelResult(server_stopped=False,
                                  message=f"the backend cannot be asked to stop it: {exc.message}")
        else:
            result = job.cancel()
            job.wait(CANCEL_WAIT)
            if job.status().phase is not Phase.CANCELLED:
                return result  # it ended otherwise (completed meanwhile): recorded by the job itself
    error = JobCancelledError(f"{job_id} was cancelled from the job ledger: {result.message}",
                              endpoint=record.endpoint, server_stopped=result.server_stopped)
    ledger.finish_job(job_id, attempt=record.attempt, status=Phase.CANCELLED.value, message=error.message,
                      error=error.to_dict())
    return result
