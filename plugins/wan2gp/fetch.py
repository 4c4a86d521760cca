"""Downloading a finished job's outputs: verified, atomically named, with a sidecar manifest."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from vidbridge.backend import download_verified, redact_url
from vidbridge import Artifact, JobFailedError, Provenance, VidbridgeError

from .connection import headers_for
from .attach import file_url
from .job import Wan2GPJob
from .session import Wan2GPSession

__all__ = ["fetch_outputs", "provenance_for"]


def _seed(settings: dict, name: str | None) -> int | None:
    import re

    match = re.search(r"_seed(\d+)", name or "")
    if match:
        return int(match[1])
    seed = settings.get("seed")
    return int(seed) if isinstance(seed, (int, float)) and seed >= 0 else None


def provenance_for(session: Wan2GPSession, job: Wan2GPJob, original_name: str) -> Provenance:
    """What produced the file: request, exact settings sent, seed, model, server, timings.
    No credentials: the request and settings never hold any."""
    timings = dict(job.snapshot().timings)
    if job.started_at is not None:  # (unknown for a job attached by reference)
        timings["started"] = job.started_at
    return Provenance(
        backend="wan2gp",
        endpoint=redact_url(session.url),
        job_id=job.job_id,
        model=job.model,
        seed=_seed(job.settings_sent, original_name),
        original_name=original_name,
        request=job.request.model_dump(mode="json") if job.request is not None else {},
        settings_sent=job.settings_sent,
        timings=timings,
        gradio_version=session.server.config.get("version"),
    )


def fetch_outputs(session: Wan2GPSession, job: Wan2GPJob, destination: Path,
                  progress: Callable[[int, int | None], None]) -> list[Artifact]:
    """Download ``job``'s own new gallery items into ``destination`` (retried, verified)."""
    items = job.outputs()
    if not items:
        shown = redact_url(session.url)
        raise JobFailedError(f"{shown}: {job.job_id} has no outputs to fetch", endpoint=shown)
    headers = headers_for(session.credentials)
    if session.server.cookies:
        headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in session.server.cookies.items())
    artifacts = []
    options = session.options
    for item in items:
        name = item.orig_name or Path(item.path).name
        # The file is on the server's disk and already cost a generation: a restart or a run of
        # transient errors must not lose it. Each download_verified call retries on its own; after
        # that, keep going (waiting for the server while it is down) until the deadline,
        # connect_timeout x retry_attempts.
        deadline = options.connect_deadline()
        while True:
            try:
                artifacts.append(download_verified(
                    session.http, file_url(session, item), destination,
                    original_name=name,
                    provenance=provenance_for(session, job, name),
                    expected_size=item.size,
                    media_type=item.mime_type,
                    headers=headers,
                    attempts=max(1, options.retry_attempts),
                    progress=progress,
                    sleep=time.sleep,
                ))
                break
            except VidbridgeError as exc:
                if not exc.retryable or deadline.expired:
                    raise
                if session.server_down():
                    session.wait_until_up(deadline, exc)
    return artifacts
