"""One job on WanGP's MCP face: submit (queued behind a busy server), follow, cancel, fetch.

``wangp_generate(wait=False)`` starts the job and returns its record; the job is then followed
by polling ``wangp_get_job`` (the face pushes nothing). Events map onto the normalised phases:
``started`` -> starting, ``status`` "Loading ..." -> loading_model, ``progress`` / ``preview``
with ``current_step`` -> inferring, ``status`` "... Decoding" -> decoding; a finished record is
completed (its ``gallery_items`` are the outputs), rejected (every error of stage
``validation``: WanGP refused the settings before generating; :class:`~vidbridge.RejectedError`
with its message), failed (every error with its stage kept in the message) or cancelled (every
error a cancellation).

A second ``wangp_generate`` while one runs is refused ("already has a generation in
progress"): the job waits and asks again; it is never reported as failed for that. A submit
that fails in transit is not repeated (it may have started a generation).

A server that stops answering while a job runs is asked again until the connect deadline; a job
it no longer knows (it restarted: job records live in its memory), or a server not back in time,
is :class:`~vidbridge.JobLostError` with ``output_possible`` (never resubmitted).
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, Callable

from vidbridge import (Artifact, BackendConnectionError, GenerationRequest, JobCancelledError, JobFailedError,
                       JobLostError, JobRef, JobStatus, NotAttachableError, OutputRef, Phase, Provenance,
                       RejectedError, VidbridgeError)
from vidbridge.backend import download_verified, redact_url

from ..attach import status_from
from ..fetch import _seed
from ..gallery import GalleryItem
from ..state import JobSnapshot, JobState
from .channel import ToolError
from .session import McpSession
from .settings import keep_known, plan, settings_for

__all__ = ["McpJob", "BUSY", "POLL_INTERVAL", "snapshot_changes", "job_ref", "attach", "fetch_outputs"]

BUSY = "already has a generation in progress"
POLL_INTERVAL = 0.2  # seconds between wangp_get_job calls (the face pushes nothing)
EVENT_LIMIT = 50
RECONNECT_INTERVAL = 0.5  # seconds between wangp_get_job calls while the server does not answer


def _phase_of_status(text: str, current: Phase) -> Phase:
    lowered = text.lower()
    if "loading" in lowered:
        return Phase.LOADING_MODEL
    if "decoding" in lowered:
        return Phase.DECODING
    if "encoding" in lowered:
        return Phase.ENCODING
    return current


def snapshot_changes(record: dict[str, Any], current: JobSnapshot) -> dict[str, Any]:
    """What a job record (``wangp_get_job``) changes in ``current``, outcome excepted."""
    phase, step, total, message = current.phase, current.step, current.total_steps, current.message
    if phase is Phase.QUEUED:
        phase = Phase.STARTING
    for event in record.get("events") or ():
        kind, data = event.get("kind"), event.get("data")
        data = data if isinstance(data, dict) else {}
        if kind == "status" and isinstance(event.get("data"), str):
            message = event["data"]
            phase = _phase_of_status(message, phase)
        elif kind == "status":
            message = str(data.get("status") or data.get("message") or message)
            phase = _phase_of_status(message or "", phase)
        elif kind in ("progress", "preview") and isinstance(data.get("current_step"), int):
            phase, step, total = Phase.INFERRING, data["current_step"], data.get("total_steps")
            message = str(data.get("status") or message)
    changes = {"phase": phase, "step": step, "total_steps": total, "message": message}
    return {k: v for k, v in changes.items() if getattr(current, k) != v}


def _outcome(record: dict[str, Any], endpoint: str) -> tuple[list[GalleryItem], VidbridgeError | None]:
    """The outputs, or the error, of a finished record."""
    result = record.get("result") or {}
    errors = [e for e in result.get("errors") or () if isinstance(e, dict)]
    if errors and all(e.get("cancelled") or e.get("stage") == "cancelled" for e in errors):
        return [], JobCancelledError("WanGP cancelled the generation", endpoint=endpoint, server_stopped=True)
    if errors and all(e.get("stage") == "validation" for e in errors):  # refused before generating
        text = "; ".join(str(e.get("message")) for e in errors)
        return [], RejectedError(f"WanGP refused the request: {text}", endpoint=endpoint, server_message=text)
    if errors or not result.get("success", False):
        text = "; ".join(f"{e.get('stage') or 'error'}: {e.get('message')}" for e in errors) or "no outputs"
        return [], JobFailedError(f"WanGP job {record.get('job_id')} failed ({text})", endpoint=endpoint)
    items = [GalleryItem(path=str(item.get("gallery_id")), kind=str(item.get("media_type") or "video"),
                         orig_name=Path(str(item.get("path", ""))).name or None)
             for item in result.get("gallery_items") or ()]
    return items, None


class McpJob:
    """A job on the MCP face: the handle ``vidbridge_submit`` returns for an :class:`McpSession`."""

    def __init__(self, session: McpSession, request: GenerationRequest | None, job_id: str, *,
                 server_job: str | None = None, model: str | None = None) -> None:
        self.session = session
        self.request = request
        self.job_id = job_id
        self.server_job = server_job  # WanGP's job id, once wangp_generate answered
        self.model = model
        self.settings_sent: dict[str, Any] = {}
        self.state = JobState()
        self.stop = threading.Event()
        self.started_at = time.time()
        self._follower: threading.Thread | None = None
        self._shown = redact_url(session.url)

    def __repr__(self) -> str:
        return f"<McpJob {self.job_id} {self.server_job} {self.state.snapshot().phase.value}>"

    # -- submit ------------------------------------------------------------------------------------

    def prepare(self) -> dict[str, Any]:
        """The settings to send, validated against the server's defaults and schema (no upload,
        no generation: only the cached ``wangp_get_default_settings`` / ``wangp_get_model_schema``).

        :raises InvalidRequestError: a settings key the server does not know, a field the model
            does not allow.
        """
        assert self.request is not None
        form = plan(self.request, None if self.request.model or self.request.settings_file else
                    self.session.default_model())
        defaults = self.session.model_info("wangp_get_default_settings", str(form.model))
        keep_known(form, self.request.settings, defaults, str(form.model))
        schema = self.session.model_info("wangp_get_model_schema", str(form.model))
        self.model = str(form.model)
        settings = settings_for(form, defaults, schema)
        self._media = form.media
        return settings

    def start(self) -> None:
        """Validate, upload inputs, start the generation (waiting while the server is busy), then
        follow it on a thread of its own."""
        settings = self.prepare()
        for name, paths in self._media.items():
            ids = [self.session.upload(path) for path in paths]
            settings[name] = ids if name == "image_refs" or len(ids) > 1 else ids[0]
        self.settings_sent = settings
        record = self._generate(settings)
        if record is None:
            return  # cancelled while waiting for the server
        self.server_job = str(record["job_id"])
        self.state.mark("submitted")
        self.follow(record)

    def _generate(self, settings: dict[str, Any]) -> dict[str, Any] | None:
        while True:
            try:
                return self.session.call("wangp_generate", {"source": settings, "wait": False,
                                                            "event_limit": EVENT_LIMIT})
            except ToolError as exc:
                if BUSY not in exc.message:
                    raise RejectedError(f"WanGP refused the request: {exc.message}", endpoint=self._shown,
                                        server_message=exc.message) from None
            self.state.update(phase=Phase.QUEUED, message="waiting for the server's current generation")
            if self.stop.wait(POLL_INTERVAL):
                self.state.cancelled("cancelled before the server started it", server_stopped=False)
                return None

    def follow(self, record: dict[str, Any] | None = None) -> None:
        """Start the thread that polls the job's record until it is finished."""
        self._follower = threading.Thread(target=self._follow, args=(record,), name=f"wan2gp-mcp-{self.job_id}",
                                          daemon=True)
        self._follower.start()

    def _follow(self, record: dict[str, Any] | None) -> None:
        try:
            while True:
                if record is not None:
                    self.state.apply(lambda current, r=record: snapshot_changes(r, current))
                    if record.get("done"):
                        outputs, error = _outcome(record, self._shown)
                        if isinstance(error, JobCancelledError):
                            self.state.cancelled(str(error), server_stopped=True)
                        elif error is not None:
                            self.state.fail(error)
                        else:
                            self.state.finish(outputs)
                        return
                if self.stop.wait(POLL_INTERVAL) and self.state.snapshot().phase.is_terminal:
                    return
                record = self._poll()
        except VidbridgeError as exc:
            self.state.fail(exc)
        except ToolError as exc:  # the server forgot the job: it restarted (records live in its memory)
            self.state.fail(JobLostError(
                f"{self._shown}: WanGP no longer knows job {self.server_job} ({exc.message}): the server restarted; "
                "an output the job made before that may be in its gallery", endpoint=self._shown,
                output_possible=True))

    def _poll(self) -> dict[str, Any]:
        """``wangp_get_job``; while the server does not answer, asked again until the connect
        deadline.

        :raises JobLostError: the server did not answer again in time (``output_possible``: its
            process may still be generating where this client cannot see it).
        :raises ToolError: the server answers but no longer knows the job.
        """
        deadline = None
        while True:
            try:
                return self.session.call("wangp_get_job", {"job_id": self.server_job, "event_limit": EVENT_LIMIT})
            except BackendConnectionError as exc:
                if deadline is None:  # from the first unanswered poll
                    deadline = self.session.options.connect_deadline()
                if deadline.expired or self.session.closed:
                    raise JobLostError(f"{self._shown}: the server stopped answering during job {self.server_job} "
                                       f"({exc}); it may still be generating", endpoint=self._shown,
                                       output_possible=True) from exc
                self.stop.wait(min(RECONNECT_INTERVAL, deadline.remaining()))

    # -- status, cancel, outputs ---------------------------------------------------------------------

    def wait_status(self, current: JobStatus, wait: float) -> JobStatus:
        """Block up to ``wait`` s for a change; the normalised status."""
        return status_from(self.state.wait_for_change(wait), current)

    def cancel(self) -> tuple[bool, str]:
        """``wangp_cancel_job``: ``(server_stopped, message)`` as the server reports it."""
        if not self.state.request_cancel():
            return False, "the job had already ended"
        if self.server_job is None:
            self.stop.set()
            self.state.cancelled("cancelled before the server started it", server_stopped=False)
            return False, "the job had not reached the server"
        try:
            record = self.session.call("wangp_cancel_job", {"job_id": self.server_job, "event_limit": 0})
        except (ToolError, VidbridgeError) as exc:
            return False, f"the server's cancel failed ({exc}); the job is still followed"
        if record.get("done"):
            return False, "the job had already finished on the server"
        return bool(record.get("cancel_requested")), "WanGP accepted the cancel request (it stops at its next step)"

    def outputs(self) -> list[GalleryItem]:
        """The job's gallery items (after completion)."""
        return list(self.state.snapshot().outputs)


# -- references -------------------------------------------------------------------------------------

def job_ref(session: McpSession, handle: McpJob) -> dict[str, Any] | None:
    """WanGP's job id and the model; ``None`` before the server accepted the job."""
    if handle.server_job is None:
        return None
    return {"face": "mcp", "server": redact_url(session.url), "mcp_job": handle.server_job, "model": handle.model}


def attach(session: McpSession, ref: JobRef) -> McpJob:
    """Follow the MCP job ``ref`` names again (its record lives in the server's memory).

    :raises NotAttachableError: not an MCP job reference, or the server no longer knows the job.
    """
    server_job = ref.data.get("mcp_job")
    if ref.data.get("face") != "mcp" or not isinstance(server_job, str):
        raise NotAttachableError("this reference is not a job of WanGP's MCP face", endpoint=redact_url(session.url),
                                 reason="unsupported")
    try:
        record = session.call("wangp_get_job", {"job_id": server_job, "event_limit": EVENT_LIMIT})
    except ToolError as exc:
        raise NotAttachableError(f"WanGP no longer knows job {server_job} ({exc.message}; it restarted?)",
                                 endpoint=redact_url(session.url), reason="gone") from None
    model = ref.data.get("model")
    job = McpJob(session, None, ref.job_id, server_job=server_job, model=model if isinstance(model, str) else None)
    job.follow(record)
    return job


def output_refs(session: McpSession, handle: McpJob) -> list[OutputRef]:
    """The finished job's outputs (gallery ids; the download URL is one-use, made at fetch)."""
    return [OutputRef(name=item.orig_name or item.path, url=redact_url(session.url), media_type=None)
            for item in handle.outputs()]


def fetch_outputs(session: McpSession, handle: McpJob, destination: Path,
                  progress: Callable[[int, int | None], None]) -> list[Artifact]:
    """Download and verify each output through a gallery download URL."""
    items = handle.outputs()
    if not items:
        raise JobFailedError(f"{handle.job_id} has no outputs to fetch", endpoint=redact_url(session.url))
    artifacts = []
    for item in items:
        ticket = session.download_url(item.path)
        name = str(ticket.get("filename") or item.orig_name or "output.mp4")
        provenance = Provenance(
            backend="wan2gp", endpoint=redact_url(session.url), job_id=handle.job_id, model=handle.model,
            seed=_seed(handle.settings_sent, name),
            original_name=name,
            request=handle.request.model_dump(mode="json") if handle.request is not None else {},
            settings_sent=handle.settings_sent, timings=dict(handle.state.snapshot().timings),
            face="mcp", mcp_job=handle.server_job)
        size = ticket.get("size")
        artifacts.append(download_verified(
            session.http, ticket["download_url"], destination, original_name=name, provenance=provenance,
            expected_size=size if isinstance(size, int) else None, headers=session.headers,
            attempts=1,  # the URL works once: a retry would get 404
            progress=progress))
    return artifacts
