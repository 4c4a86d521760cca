"""Live progress for humans on stderr (the CLI's ``generate``), built on rich.

On a terminal it shows a live bar with the phase, queue position, step x/y, ETA and downloaded
bytes; elsewhere (logs, CI) it prints one line per phase change.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from .models import JobStatus, Phase

__all__ = ["ProgressDisplay", "describe"]


def describe(status: JobStatus) -> str:
    """A one-line human description of a status."""
    parts = [status.phase.value.replace("_", " ")]
    if status.phase is Phase.QUEUED and status.queue_position is not None:
        size = f"/{status.queue_size}" if status.queue_size else ""
        parts.append(f"position {status.queue_position}{size}")
    if status.step is not None and status.total_steps:
        parts.append(f"step {status.step}/{status.total_steps}")
    if status.downloaded_bytes is not None:
        total = f"/{status.total_bytes:,}" if status.total_bytes else ""
        parts.append(f"{status.downloaded_bytes:,}{total} bytes")
    if status.eta_seconds is not None:
        parts.append(f"ETA {status.eta_seconds:.0f}s")
    if status.message and status.phase not in (Phase.DOWNLOADING,):
        parts.append(f"- {status.message}")
    return "  ".join(parts)


class ProgressDisplay:
    """A context manager whose :meth:`update` takes job statuses from any thread."""

    def __init__(self, *, enabled: bool = True, stream: Any = None) -> None:
        self._stream = stream or sys.stderr
        self._enabled = enabled
        self._live = enabled and getattr(self._stream, "isatty", lambda: False)()
        self._lock = threading.Lock()
        self._last_phase: Phase | None = None
        self._progress: Any = None
        self._task: Any = None

    def __enter__(self) -> ProgressDisplay:
        if self._live:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]{task.fields[phase]}"),
                BarColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=Console(file=self._stream),
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("", total=1.0, phase="submitting")
        return self

    def update(self, status: JobStatus) -> None:
        """Show ``status`` (thread-safe; called from the job's worker thread)."""
        if not self._enabled:
            return
        with self._lock:
            if self._progress is not None:
                self._progress.update(
                    self._task,
                    completed=status.progress or 0.0,
                    description=describe(status).partition("  ")[2],
                    phase=status.phase.value,
                )
            elif status.phase is not self._last_phase or status.phase is Phase.QUEUED:
                print(describe(status), file=self._stream, flush=True)
            self._last_phase = status.phase

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc_info)
            self._progress = None
