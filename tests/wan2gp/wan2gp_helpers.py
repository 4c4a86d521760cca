"""Helpers shared by the wan2gp tests."""

from __future__ import annotations

from typing import Any

from vidbridge import JobStatus
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
