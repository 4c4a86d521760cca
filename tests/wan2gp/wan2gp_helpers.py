"""Helpers shared by the wan2gp tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vidbridge import GenerationRequest, JobStatus, Phase
from vidbridge.plugins.wan2gp import plugin


def follow(handle: Any, job_id: str = "job", wait: float = 5.0, limit: int = 2000) -> list[JobStatus]:
    """Call the status hook as the core's monitor does until a terminal phase; every status seen."""
    seen = [JobStatus(job_id=job_id)]
    for _ in range(limit):
        status = plugin.vidbridge_status(handle=handle, current=seen[-1], wait=wait)
        if status is not seen[-1]:
            seen.append(status)
        if status.is_terminal:
            return seen
    raise AssertionError("job did not end")


def run_job(session: Any, request: GenerationRequest, tmp_path: Path, job_id: str = "job") -> tuple[list, Any]:
    """Submit through the hooks, follow to completion, fetch into ``tmp_path/job_id``:
    ``(artifacts, handle)``."""
    handle = plugin.vidbridge_submit(session=session, request=request, job_id=job_id)
    statuses = follow(handle, job_id)
    assert statuses[-1].phase is Phase.COMPLETED, statuses[-1]
    out = tmp_path / job_id
    out.mkdir()
    artifacts = plugin.vidbridge_fetch(session=session, handle=handle, destination=out, progress=lambda *_: None)
    if hasattr(handle, "settled"):  # a web UI job borrows a pooled gradio session; an MCP job none
        assert handle.settled.wait(30), "the job's gradio session was never given back"
    return artifacts, handle
