"""The wan2gp plugin's hook implementations (thin: the work lives in the sibling modules).

Registered under the ``vidbridge`` entry-point group as ``wan2gp``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from vidbridge import (
    hookimpl,
    Artifact,
    CancelResult,
    ConnectOptions,
    Credentials,
    DiscoverOptions,
    Endpoint,
    GenerationRequest,
    JobRef,
    JobStatus,
    NotAttachableError,
    OutputRef,
)
from vidbridge.backend import redact_url

from . import discovery
from .fetch import fetch_outputs
from .job import Wan2GPJob, file_url, prepare
from .session import Wan2GPSession

__all__ = ["vidbridge_discover", "vidbridge_connect", "vidbridge_submit", "vidbridge_status", "vidbridge_fetch",
           "vidbridge_cancel"]


@hookimpl
def vidbridge_discover(options: DiscoverOptions) -> list[Endpoint]:
    """WanGP servers among the user's URLs and the usual loopback ports."""
    return discovery.discover(options)


@hookimpl
def vidbridge_connect(endpoint: Endpoint, credentials: Credentials, options: ConnectOptions) -> Wan2GPSession:
    """A pool of gradio sessions to ``endpoint``. One attempt: the core retries connect."""
    return Wan2GPSession(endpoint, credentials, options)


@hookimpl
def vidbridge_validate(session: Wan2GPSession, request: GenerationRequest) -> None:
    """Everything checkable without the network (cached API description, model rules)."""
    prepare(session, request)


@hookimpl
def vidbridge_submit(session: Wan2GPSession, request: GenerationRequest, job_id: str) -> Wan2GPJob:
    """Validate locally, then queue the task on a gradio session of the pool (never retried)."""
    job = Wan2GPJob(session, request, job_id)
    job.start()
    return job


@hookimpl
def vidbridge_job_ref(handle: Wan2GPJob) -> dict[str, object]:
    """What identifies the work on a WanGP web UI: the task's ``client_id`` and model, and the
    server paths of its outputs once known (no gradio session id: it is useless elsewhere)."""
    return {"face": "gradio", "client_id": handle.client_id, "model": handle.model,
            "outputs": [item.path for item in handle.outputs()]}


@hookimpl
def vidbridge_attach(session: Wan2GPSession, ref: JobRef) -> Wan2GPJob:
    """The web UI's tasks cannot be followed from another client: always refused, saying why."""
    shown = redact_url(session.url)
    raise NotAttachableError(
        f"{ref.job_id}: a WanGP web-UI task belongs to the gradio session that queued it, and only that "
        f"session sees its progress and its gallery; another client cannot follow it on {shown} "
        "(WanGP's MCP face keeps jobs by id)", endpoint=shown, reason="session_bound")


@hookimpl
def vidbridge_outputs(session: Wan2GPSession, handle: Wan2GPJob) -> list[OutputRef]:
    """The job's own new gallery items, with the proxy-safe download URL."""
    return [OutputRef(name=item.orig_name or Path(item.path).name, url=file_url(session, item), size=item.size,
                      media_type=item.mime_type) for item in handle.outputs()]


@hookimpl
def vidbridge_status(handle: Wan2GPJob, current: JobStatus, wait: float) -> JobStatus:
    """Wait up to ``wait`` s for a pushed change; return the normalised status."""
    return handle.wait_status(current, wait)


@hookimpl
def vidbridge_fetch(session: Wan2GPSession, handle: Wan2GPJob, destination: Path,
                    progress: Callable[[int, int | None], None]) -> list[Artifact]:
    """Download and verify this job's own outputs."""
    return fetch_outputs(session, handle, destination, progress)


@hookimpl
def vidbridge_cancel(handle: Wan2GPJob) -> CancelResult:
    """Abort through WanGP's own abort endpoints."""
    stopped, message = handle.cancel()
    return CancelResult(server_stopped=stopped, message=message)


