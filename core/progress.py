"""Live progress for humans on stderr (the CLI's ``generate``), built on rich.

On a terminal it shows a live bar for the job (phase, queue position, step x/y, ETA) and, while
artifacts download, a second bar for the bytes; elsewhere (logs, CI) it prints one line per phase
change and one per quarter of each download.

The job's bar never goes backwards: a job's ``progress`` belongs to its phase (a status of the
next phase starts without one, and while downloading it counts bytes, not the job), so the bar
keeps the furthest point reached and is full once the job completes.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

from .models import JobStatus, Phase

__all__ = ["ProgressDisplay", "describe"]


def describe(status: JobStatus, *, with_bytes: bool = True) -> str:
    """A one-line human description of a status (``with_bytes=False``: without the download count)."""
    parts = [status.phase.value.replace("_", " ")]
    if status.phase is Phase.QUEUED and status.queue_position is not None:
        size = f"/{status.queue_size}" if status.queue_size else ""
        parts.append(f"position {status.queue_position}{size}")
    if status.step is not None and status.total_steps:
        parts.append(f"step {status.step}/{status.total_steps}")
    if with_bytes and status.downloaded_bytes is not None:
        parts.append(_bytes_text(status))
    if status.eta_seconds is not None:
        parts.append(f"ETA {status.eta_seconds:.0f}s")
    if status.message and status.phase not in (Phase.DOWNLOADING,):
        parts.append(f"- {status.message}")
    return "  ".join(parts)


def _bytes_text(status: JobStatus) -> str:
    total = f"/{status.total_bytes:,}" if status.total_bytes else ""
    return f"{status.downloaded_bytes:,}{total} bytes"


# Phases whose ``progress`` measures the generation itself; later ones (decoding, uploading) have
# none, and downloading reports the bytes of one file in it.
_GENERATION_PHASES = frozenset({Phase.QUEUED, Phase.STARTING, Phase.LOADING_MODEL, Phase.ENCODING, Phase.INFERRING})


def _download_quarter(status: JobStatus) -> int | None:
    """Which quarter (0..4) of the current file has arrived; None without a known total."""
    if status.downloaded_bytes is None or not status.total_bytes:
        return None
    return min(4, 4 * status.downloaded_bytes // status.total_bytes)


class ProgressDisplay:
    """A context manager whose :meth:`update` takes job statuses from any thread.

    :param enabled: False shows nothing.
    :param stream: where to write (default ``sys.stderr``); a live bar only if it is a terminal.
    :param console: a :class:`rich.console.Console` to draw the live bars on instead (e.g. a
        host's own, or one writing to a buffer); it implies live mode.
    """

    def __init__(self, *, enabled: bool = True, stream: Any = None, console: Any = None) -> None:
        self._stream = stream or sys.stderr
        self._enabled = enabled
        self._console = console
        self._live = enabled and (console is not None or getattr(self._stream, "isatty", lambda: False)())
        self._lock = threading.Lock()
        self._last_phase: Phase | None = None
        self._job_id: str | None = None
        self._fraction = 0.0  # the furthest point of the job reached: the bar never goes back
        self._printed_quarter: int | None = None
        self._progress: Any = None
        self._task: Any = None
        self._download_task: Any = None

    def __enter__(self) -> ProgressDisplay:
        if self._live:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self._progress = Progress(
                TextColumn("[bold]{task.fields[phase]}"),
                # "green", not rich's default finished colour: on a 16-colour terminal that one is
                # drawn grey, the colour of an empty bar.
                BarColumn(finished_style="green"),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=self._console or Console(file=self._stream),
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
            if status.job_id != self._job_id:  # another job: its bars start from its own beginning
                self._job_id, self._fraction = status.job_id, 0.0
                if self._download_task is not None:
                    self._progress.remove_task(self._download_task)
                    self._download_task = None
            if status.phase is Phase.COMPLETED:
                self._fraction = 1.0
            elif status.phase in _GENERATION_PHASES and status.progress is not None:
                self._fraction = max(self._fraction, status.progress)
            if self._progress is not None:
                self._draw(status)
            else:
                self._print(status)
            self._last_phase = status.phase

    def _draw(self, status: JobStatus) -> None:
        self._progress.update(
            self._task,
            completed=self._fraction,
            description=describe(status, with_bytes=False).partition("  ")[2],
            phase=status.phase.value,
            refresh=status.downloaded_bytes is None,  # draw every state (each is few and short-lived)
        )
        if status.downloaded_bytes is None:
            return
        fields = {
            "total": status.total_bytes or None,  # None: rich shows an indeterminate bar
            "completed": status.downloaded_bytes,
            "description": _bytes_text(status),
        }
        if self._download_task is None:
            self._download_task = self._progress.add_task(phase="download", **fields)  # draws
        else:
            self._progress.update(self._download_task, refresh=True, **fields)

    def _print(self, status: JobStatus) -> None:
        quarter = _download_quarter(status) if status.phase is Phase.DOWNLOADING else None
        new_quarter = quarter is not None and quarter != self._printed_quarter
        if status.phase is not self._last_phase or status.phase is Phase.QUEUED or new_quarter:
            print(describe(status), file=self._stream, flush=True)
            self._printed_quarter = quarter

    def __exit__(self, *exc_info: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(*exc_info)
            self._progress = self._download_task = None
