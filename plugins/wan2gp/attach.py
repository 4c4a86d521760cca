"""Job references for the Gradio face of WanGP: what a reference holds, and why most cannot be followed.

A WanGP web-UI task lives in the ``gr.State`` of the gradio session that queued it (its form, its
queue, its gallery): a new gradio session, from this process or another, sees none of it, and
gradio gives no way to join another session's state. So a running or queued job cannot be
followed again (:class:`~vidbridge.NotAttachableError`, ``reason="session_bound"``).

What *can* be found again is a finished job's files: WanGP writes them to its ``outputs/`` folder,
an allowed path that gradio serves to any client (``<server>/gradio_api/file=<path>``) for as long
as the file exists. A reference that names them (:func:`job_ref` once the job completed) attaches
as an already completed job whose fetch downloads them, if the server still serves every one.

Reference data (``JobRef.data``, JSON, no secrets)::

    {"face": "gradio", "server": "http://host:7860", "session_hash": "<gradio session>", "client_id": "vb-<job id>",
     "model": "t2v", "outputs": [{"path": "/srv/outputs/x.mp4", "name": "x.mp4", "size": 123,
                                   "mime_type": "video/mp4"}]}
"""

from __future__ import annotations

from typing import Any

import httpx

from vidbridge import JobRef, JobStatus, NotAttachableError, OutputRef, Phase
from vidbridge.backend import redact_url

from . import compat
from .connection import headers_for
from .gallery import GalleryItem
from .session import Wan2GPSession
from .state import JobState

__all__ = ["AttachedJob", "job_ref", "attach", "output_refs", "file_url", "status_from", "probe", "served"]


def file_url(session: Wan2GPSession, item: GalleryItem) -> str:
    """Download URL of a server file built from the Client's base (FileData ``url`` may bypass
    a reverse proxy)."""
    return f"{session.src_prefixed}file={item.path}"


def status_from(snapshot: Any, current: JobStatus) -> JobStatus:
    """``current`` evolved with ``snapshot`` (a :class:`~.state.JobSnapshot`); ``current`` itself
    when nothing a host sees changed.

    :raises VidbridgeError: the snapshot's error, for a failed job.
    """
    if snapshot.phase is Phase.FAILED and snapshot.error is not None:
        raise snapshot.error
    if snapshot.phase is Phase.CANCELLED:
        return current.evolve(phase=Phase.CANCELLED, message=snapshot.message)
    changes: dict[str, Any] = {"phase": snapshot.phase, "message": snapshot.message}
    if snapshot.phase is Phase.QUEUED:
        changes.update(queue_position=snapshot.queue_position, queue_size=snapshot.queue_size,
                       eta_seconds=snapshot.eta if snapshot.eta is None or snapshot.eta >= 0 else None)
    if snapshot.phase is Phase.INFERRING and snapshot.total_steps:
        step = min(snapshot.step or 0, snapshot.total_steps)
        changes.update(step=step, total_steps=snapshot.total_steps, progress=step / snapshot.total_steps)
    candidate = current.evolve(**changes)
    return current if candidate.same_state(current) else candidate


def job_ref(session: Wan2GPSession, handle: Any) -> dict[str, Any] | None:
    """The ids of ``handle``'s work: server, gradio session, task id, model, and its output files
    once the job completed. ``None`` while it has no gradio session yet."""
    pooled = getattr(handle, "pooled", None)
    session_hash = compat.session_hash(pooled.client) if pooled is not None else getattr(handle, "session_hash", None)
    if session_hash is None:
        return None
    return {
        "face": "gradio",
        "server": redact_url(session.url),
        "session_hash": session_hash,
        "client_id": handle.client_id,
        "model": handle.model,
        "output_stem": getattr(getattr(handle, "flow", None), "output_stem", None),
        "outputs": [{"path": item.path, "name": item.orig_name or item.path.rsplit("/", 1)[-1],
                     "size": item.size, "mime_type": item.mime_type} for item in handle.outputs()],
    }


def output_refs(session: Wan2GPSession, handle: Any) -> list[OutputRef]:
    """The finished job's outputs as :class:`~vidbridge.OutputRef` (proxy-safe URLs, no user info)."""
    return [OutputRef(name=item.orig_name or item.path.rsplit("/", 1)[-1], url=redact_url(file_url(session, item)),
                      size=item.size, media_type=item.mime_type) for item in handle.outputs()]


class AttachedJob:
    """A finished job found again by reference: completed, with the outputs the reference names."""

    def __init__(self, session: Wan2GPSession, ref: JobRef, outputs: list[GalleryItem]) -> None:
        self.session = session
        self.job_id = ref.job_id
        self.client_id = str(ref.data.get("client_id") or f"vb-{ref.job_id}")
        self.session_hash = ref.data.get("session_hash")
        model = ref.data.get("model")
        self.model = model if isinstance(model, str) else None
        self.request = None  # the request stayed with the process that submitted it
        self.settings_sent: dict[str, Any] = {}
        self.started_at: float | None = None
        self.pooled = None
        self.state = JobState()
        self.state.finish(outputs)

    def __repr__(self) -> str:
        return f"<AttachedJob {self.job_id} completed on {redact_url(self.session.url)}>"

    def snapshot(self) -> Any:
        """The job's state (completed)."""
        return self.state.snapshot()

    def wait_status(self, current: JobStatus, wait: float) -> JobStatus:
        """Completed at once."""
        return status_from(self.state.wait_for_change(0), current)

    def cancel(self) -> tuple[bool, str]:
        """Nothing runs: the job had ended before it was attached."""
        return False, "the job had already ended"

    def outputs(self) -> list[GalleryItem]:
        """The outputs the reference named."""
        return list(self.state.snapshot().outputs)


def _named_outputs(ref: JobRef, shown: str) -> list[GalleryItem]:
    raw = ref.data.get("outputs") or []
    if not isinstance(raw, list):
        raise NotAttachableError(f"{ref.job_id}: the reference's outputs are not a list", endpoint=shown,
                                 reason="invalid")
    items = []
    for entry in raw:
        entry = {"path": entry} if isinstance(entry, str) else entry  # (paths alone: an earlier format)
        path = entry.get("path") if isinstance(entry, dict) else None
        if not isinstance(path, str) or not path or "\x00" in path:
            raise NotAttachableError(f"{ref.job_id}: an output of the reference has no server path",
                                     endpoint=shown, reason="invalid")
        size, name, mime = entry.get("size"), entry.get("name"), entry.get("mime_type")
        items.append(GalleryItem(path=path, kind="video", orig_name=name if isinstance(name, str) else None,
                                 size=size if isinstance(size, int) and not isinstance(size, bool) and size >= 0
                                 else None, mime_type=mime if isinstance(mime, str) else None))
    return items


def probe(session: Wan2GPSession, item: GalleryItem) -> bool | None:
    """Whether the server serves ``item``'s file (one byte asked, with the session's auth): True,
    False (the server answered that it has no such file: 4xx), or None (no answer that tells:
    a transient 5xx, 429, 408 or a connection error)."""
    headers = headers_for(session.credentials)
    if session.server.cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in session.server.cookies.items())
    headers["Range"] = "bytes=0-0"  # one byte: is it there, without downloading it
    try:
        response = session.http.get(file_url(session, item), headers=headers,
                                    timeout=session.options.request_timeout)
    except httpx.HTTPError:
        return None
    if response.status_code in (200, 206):
        return True
    if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
        return False
    return None


def served(session: Wan2GPSession, item: GalleryItem) -> bool:
    """True when the server serves ``item``'s file (see :func:`probe`)."""
    return probe(session, item) is True


def attach(session: Wan2GPSession, ref: JobRef) -> AttachedJob:
    """A completed handle for a reference naming finished outputs the server still serves.

    :raises NotAttachableError: ``"session_bound"`` for a job whose outputs the reference does not
        name (running, queued, or referenced before it finished), ``"unknown"`` when the server no
        longer serves a named output, ``"invalid"`` for malformed output entries.
    """
    shown = redact_url(session.url)
    outputs = _named_outputs(ref, shown)
    if not outputs:
        raise NotAttachableError(
            f"{ref.job_id}: a WanGP web-UI task belongs to the gradio session that queued it (its form, "
            "queue, progress and gallery live in that session's state, which no other session can join); "
            "it can be followed only by the process that submitted it. Once it has finished, a "
            "reference taken then names its output files, which any session can download.",
            endpoint=shown, reason="session_bound")
    missing = [item.orig_name or item.path for item in outputs if not served(session, item)]
    if missing:
        raise NotAttachableError(f"{ref.job_id}: the server no longer serves {', '.join(missing)}",
                                 endpoint=shown, reason="unknown")
    return AttachedJob(session, ref, outputs)
