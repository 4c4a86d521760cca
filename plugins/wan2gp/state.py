"""A WanGP job's state: immutable snapshots, replaced under one lock.

The job's consumer thread writes (gradio updates, the outcome), the core's monitor thread reads
(:meth:`JobState.wait_for_change`) and any thread may cancel. Readers never see a half-applied
change: every change builds a new frozen :class:`JobSnapshot` and swaps it in under the lock,
and a reader keeps the snapshot it got, whatever happens next.

Once a snapshot is terminal (completed, failed, cancelled), later gradio updates cannot move it
back (the stream of a cancelled job may still say "Denoising"); only the job's outcome
(:meth:`JobState.finish`, :meth:`JobState.fail`) is recorded after that.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from vidbridge import Phase, VidbridgeError

from .gallery import GalleryItem

__all__ = ["JobSnapshot", "JobState"]


@dataclass(frozen=True)
class JobSnapshot:
    """What is known of a job at one moment (never mutated: replaced)."""

    phase: Phase = Phase.QUEUED
    queue_position: int | None = None
    queue_size: int | None = None
    eta: float | None = None
    step: int | None = None
    total_steps: int | None = None
    message: str | None = None
    error: VidbridgeError | None = None
    outputs: tuple[GalleryItem, ...] = ()
    #: (name, time.time()) of the job's milestones ("submitted", "finished"), in order.
    timings: tuple[tuple[str, float], ...] = ()
    cancel_requested: bool = False
    server_stopped: bool = False
    #: Incremented by every change: a reader compares versions, not fields.
    version: int = 0


class JobState:
    """The current :class:`JobSnapshot` and the lock (a condition) every change goes through."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._snapshot = JobSnapshot()
        self._reported = -1  # the version wait_for_change last handed out

    def snapshot(self) -> JobSnapshot:
        """The current snapshot (a reference swap: no lock needed to read it whole)."""
        return self._snapshot

    def _replace(self, **changes: Any) -> JobSnapshot:
        # Called holding the lock.
        self._snapshot = dataclasses.replace(self._snapshot, version=self._snapshot.version + 1, **changes)
        self._changed.notify_all()
        return self._snapshot

    def update(self, **changes: Any) -> None:
        """Apply ``changes`` unless the job already ended (then they are stale: ignored)."""
        with self._changed:
            if changes and not self._snapshot.phase.is_terminal:
                self._replace(**changes)

    def apply(self, compute: Callable[[JobSnapshot], dict[str, Any]]) -> None:
        """Apply the changes ``compute(current snapshot)`` returns, atomically (read and write
        under one lock), unless the job already ended."""
        with self._changed:
            if self._snapshot.phase.is_terminal:
                return
            changes = compute(self._snapshot)
            if changes:
                self._replace(**changes)

    def mark(self, name: str) -> None:
        """Record milestone ``name`` at the current time."""
        with self._changed:
            self._replace(timings=(*self._snapshot.timings, (name, time.time())))

    def request_cancel(self) -> bool:
        """Note that cancel was asked; False (and nothing noted) when the job already ended."""
        with self._changed:
            if self._snapshot.phase.is_terminal:
                return False
            self._replace(cancel_requested=True)
            return True

    def cancelled(self, message: str, *, server_stopped: bool) -> None:
        """The job is cancelled now (nothing of it runs any more), unless it ended first."""
        with self._changed:
            if not self._snapshot.phase.is_terminal:
                self._replace(phase=Phase.CANCELLED, message=message, server_stopped=server_stopped)

    def note_server_stopped(self, stopped: bool) -> None:
        """Whether the server's abort stopped the work (read when the job ends as cancelled)."""
        with self._changed:
            self._replace(server_stopped=stopped)

    def finish(self, outputs: list[GalleryItem]) -> None:
        """The job completed with ``outputs``."""
        with self._changed:
            self._replace(timings=(*self._snapshot.timings, ("finished", time.time())), outputs=tuple(outputs),
                          phase=Phase.COMPLETED, message=f"{len(outputs)} output(s) ready")

    def fail(self, error: VidbridgeError) -> None:
        """The job ended with ``error``: failed, or cancelled if cancel was asked. The message is
        the cause (WanGP's last info after a failure is only its queue autosave)."""
        with self._changed:
            phase = Phase.CANCELLED if self._snapshot.cancel_requested else Phase.FAILED
            self._replace(error=error, phase=phase, message=str(error))

    def wait_for_change(self, wait: float) -> JobSnapshot:
        """Block up to ``wait`` seconds until there is a snapshot this method has not returned yet
        (or the job ended); return the newest snapshot."""
        deadline = time.monotonic() + max(0.0, wait)
        with self._changed:
            while not self._snapshot.phase.is_terminal and self._reported == self._snapshot.version:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._changed.wait(remaining)
            snapshot = self._snapshot
            self._reported = snapshot.version
        return snapshot
