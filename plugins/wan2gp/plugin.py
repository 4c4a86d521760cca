"""The wan2gp plugin's hook implementations (thin: the work lives in the sibling modules).

Registered under the ``vidbridge`` entry-point group as ``wan2gp``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import httpx

from vidbridge import (
    hookimpl,
    Artifact,
    AuthenticationError,
    BackendError,
    CancelResult,
    ConnectOptions,
    Credentials,
    DiscoverOptions,
    Endpoint,
    GenerationRequest,
    JobRef,
    JobStatus,
    OutputRef,
)

from . import attach, discovery
from .attach import AttachedJob
from .fetch import fetch_outputs
from .flow import prepare
from .job import Wan2GPJob
from .session import Wan2GPSession
from .connection import headers_for
from .mcp import job as mcp_job
from .mcp.probe import probe_mcp
from .mcp.session import McpSession

__all__ = ["vidbridge_discover", "vidbridge_connect", "vidbridge_validate", "vidbridge_submit", "vidbridge_job_ref",
           "vidbridge_attach", "vidbridge_outputs", "vidbridge_status", "vidbridge_fetch", "vidbridge_cancel"]


@hookimpl
def vidbridge_discover(options: DiscoverOptions) -> list[Endpoint]:
    """WanGP servers among the user's URLs and the usual loopback ports."""
    return discovery.discover(options)


@hookimpl
def vidbridge_connect(endpoint: Endpoint, credentials: Credentials, options: ConnectOptions) -> Wan2GPSession | McpSession:
    """A pool of gradio sessions to ``endpoint``, or an MCP SDK session when it is WanGP's MCP
    face (``transport == "mcp"``). One attempt: the core retries connect."""
    if endpoint.transport == "mcp":
        return McpSession(endpoint, credentials, options)
    if endpoint.transport in ("gradio", "mcp"):
        return Wan2GPSession(endpoint, credentials, options)
    # Not identified by discovery (a URL given with ``backend=``, a job reference's endpoint):
    # a ``.../mcp`` URL is asked as MCP first; any other is the web UI unless it is not one.
    if endpoint.url.rstrip("/").endswith("/mcp") and (found := _mcp_endpoint(endpoint, credentials, options)):
        return McpSession(found, credentials, options)
    try:
        return Wan2GPSession(endpoint, credentials, options)
    except AuthenticationError:
        raise
    except BackendError:
        found = _mcp_endpoint(endpoint, credentials, options)
        if found is None:
            raise
        return McpSession(found, credentials, options)


def _mcp_endpoint(endpoint: Endpoint, credentials: Credentials, options: ConnectOptions) -> Endpoint | None:
    """The endpoint of WanGP's MCP face at ``endpoint.url``, or ``None`` when none answers there."""
    with httpx.Client(verify=options.verify_tls) as http:
        return probe_mcp(http, endpoint.url, timeout=options.connect_timeout, headers=headers_for(credentials))


@hookimpl
def vidbridge_validate(session: Wan2GPSession, request: GenerationRequest) -> None:
    """Everything checkable without generating (cached API description or MCP schema, model rules)."""
    if isinstance(session, McpSession):
        mcp_job.McpJob(session, request, "validate").prepare()
        return
    prepare(session, request)


@hookimpl
def vidbridge_submit(session: Wan2GPSession, request: GenerationRequest, job_id: str) -> Wan2GPJob:
    """Validate locally, then queue the task on a gradio session of the pool, or start it on the
    MCP face (waiting while the server is busy). Never retried."""
    job = (mcp_job.McpJob if isinstance(session, McpSession) else Wan2GPJob)(session, request, job_id)
    job.start()
    return job


@hookimpl
def vidbridge_job_ref(session: Wan2GPSession, handle: Wan2GPJob) -> dict[str, object] | None:
    """What identifies the work on a WanGP web UI (see :mod:`.attach`): server, gradio session,
    the task's ``client_id``, model, and its output files once the job completed; on the MCP
    face WanGP's job id."""
    if isinstance(session, McpSession):
        return mcp_job.job_ref(session, handle)
    return attach.job_ref(session, handle)


@hookimpl
def vidbridge_attach(session: Wan2GPSession, ref: JobRef) -> AttachedJob:
    """A finished job whose outputs the reference names and the server still serves: a completed
    handle. Anything else is refused, saying why (a web-UI task belongs to the gradio session
    that queued it). An MCP job is followed again wherever it is, while the server keeps it."""
    if isinstance(session, McpSession):
        return mcp_job.attach(session, ref)
    return attach.attach(session, ref)


@hookimpl
def vidbridge_outputs(session: Wan2GPSession, handle: Wan2GPJob) -> list[OutputRef]:
    """The job's own new gallery items, with the proxy-safe download URL."""
    if isinstance(session, McpSession):
        return mcp_job.output_refs(session, handle)
    return attach.output_refs(session, handle)


@hookimpl
def vidbridge_status(handle: Wan2GPJob, current: JobStatus, wait: float) -> JobStatus:
    """Wait up to ``wait`` s for a pushed change; return the normalised status."""
    return handle.wait_status(current, wait)


@hookimpl
def vidbridge_fetch(session: Wan2GPSession, handle: Wan2GPJob, destination: Path,
                    progress: Callable[[int, int | None], None]) -> list[Artifact]:
    """Download and verify this job's own outputs."""
    if isinstance(session, McpSession):
        return mcp_job.fetch_outputs(session, handle, destination, progress)
    return fetch_outputs(session, handle, destination, progress)


@hookimpl
def vidbridge_cancel(handle: Wan2GPJob) -> CancelResult:
    """Abort through WanGP's own abort endpoints."""
    stopped, message = handle.cancel()
    return CancelResult(server_stopped=stopped, message=message)


