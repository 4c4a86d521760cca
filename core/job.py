"""A running generation: local status, updates (callbacks, sync and async iteration), result.

Each :class:`Job` has one monitor thread that asks the owning plugin for status changes
(``vidbridge_status``), downloads the artifacts when the backend is done (``vidbridge_fetch``)
and enforces the job's deadline. Everything a host reads (:meth:`Job.status`,
:meth:`Job.updates`) is answered from the history that thread records: no network round trip.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Callable, Iterator

from .download import FetchScope
from .errors import (
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    PluginError,
    VidbridgeError,
)
from .models import Artifact, CancelResult, ErrorInfo, GenerationRequest, JobStatus, Phase

if TYPE_CHECKING:  # pragma: no cover
    from .session import Session

__all__ = ["Job", "StatusCallback"]

log = logging.getLogger("vidbridge.job")

#: A status callback; it runs on the job's monitor thread, so it must be quick and thread-safe.
StatusCallback = Callable[[JobStatus], None]


def new_job_id() -> str:
    """A short unique job id."""
    return "job-" + uuid.uuid4().hex[:12]


class Job:
    """A generation submitted through a :class:`~vidbridge.Session`.

    Do not build one yourself: use :meth:`Session.submit`. A job is a context manager; leaving
    the ``with`` block cancels it if it is still running.

    :ivar id: the job's id (also in its status and manifests).
    :ivar request: the request as submitted.
    """

    def __init__(
        self,
        session: Session,
        request: GenerationRequest,
        handle: Any,
        job_id: str,
        *,
        output_dir: Path,
        timeout: float | None,
        poll_interval: float,
        on_status: StatusCallback | None,
    ) -> None:
        self.id = job_id
        self.request = request
        self._session = session
        self._handle = handle
        self._output_dir = output_dir
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._timeout = timeout
        self._poll_interval = poll_interval
        self._condition = threading.Condition()
        self._history: list[JobStatus] = [JobStatus(job_id=job_id, phase=Phase.QUEUED)]
        self._callbacks: list[StatusCallback] = [on_status] if on_status else []
        self._artifacts: list[Artifact] = []
        self._error: VidbridgeError | None = None
        self._cancel_result: CancelResult | None = None
        # Cancels this job's downloads; set once the backend is done and only the fetch is left.
        self._fetch_scope = FetchScope()
        self._fetching = False
        self._thread = threading.Thread(target=self._monitor, name=f"vidbridge-{job_id}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.status().phase.value} on {self._session.endpoint.url}>"

    # -- reading state (no network) -------------------------------------------------------------

    def status(self) -> JobStatus:
        """The latest status, from local state (no network round trip)."""
        return self._history[-1]

    def done(self) -> bool:
        """True once the job is completed, failed or cancelled (artifacts downloaded if any)."""
        return self.status().is_terminal

    @property
    def artifacts(self) -> list[Artifact]:
        """The verified artifacts (empty until the job is completed).

        A job cancelled (or failed) while downloading several files lists those already verified
        and named: they are in the output folder, so they are reported.
        """
        return list(self._artifacts)

    @property
    def error(self) -> VidbridgeError | None:
        """The error that ended the job, if it failed or was cancelled."""
        return self._error

    def add_callback(self, callback: StatusCallback) -> None:
        """Call ``callback(status)`` on every later change.

        Callbacks run on the job's monitor thread (never the caller's thread): keep them quick,
        and hand work to your own thread or event loop. Exceptions they raise are logged and
        ignored.
        """
        with self._condition:
            self._callbacks.append(callback)

    def updates(self, timeout: float | None = None) -> Iterator[JobStatus]:
        """Iterate over every status from the first one to the terminal one.

        Nothing is missed: the history is kept, so a late iterator replays it.

        :param timeout: give up waiting after this many seconds (raises :class:`JobTimeoutError`).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        index = 0
        while True:
            with self._condition:
                while index >= len(self._history):
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise JobTimeoutError(
                            f"no status change of {self.id} within {timeout} s", endpoint=self._session.endpoint.url
                        )
                    self._condition.wait(remaining)
                status = self._history[index]
            index += 1
            yield status
            if status.is_terminal:
                return

    async def aupdates(self) -> AsyncIterator[JobStatus]:
        """``async for`` twin of :meth:`updates` (no thread is blocked while waiting)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[JobStatus] = asyncio.Queue()

        def forward(status: JobStatus) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, status)

        with self._condition:
            backlog = list(self._history)
            if not backlog[-1].is_terminal:
                self._callbacks.append(forward)
        try:
            for status in backlog:
                yield status
            if backlog[-1].is_terminal:
                return
            while True:
                status = await queue.get()
                yield status
                if status.is_terminal:
                    return
        finally:
            with self._condition:
                if forward in self._callbacks:
                    self._callbacks.remove(forward)

    # -- waiting --------------------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> JobStatus:
        """Block until the job is terminal and return its final status (no exception on failure).

        When it returns, the callbacks have been called with the final status too.

        :raises JobTimeoutError: ``timeout`` seconds passed first (the job keeps running).
        """
        with self._condition:
            if not self._condition.wait_for(lambda: self._history[-1].is_terminal, timeout):
                raise JobTimeoutError(
                    f"{self.id} still {self.status().phase.value} after waiting {timeout} s",
                    endpoint=self._session.endpoint.url,
                )
        if threading.current_thread() is not self._thread:
            # The terminal status is recorded on the monitor thread, which then runs the callbacks
            # and ends: joining it means a host never sees result() before its callback saw the end.
            self._thread.join()
        return self.status()

    def result(self, timeout: float | None = None) -> list[Artifact]:
        """Wait for the job and return its verified artifacts.

        :raises JobFailedError, JobCancelledError, JobTimeoutError, BackendError...: the error
            that ended the job.
        """
        self.wait(timeout)
        if self._error is not None:
            raise self._error
        return self.artifacts

    async def aresult(self, timeout: float | None = None) -> list[Artifact]:
        """Async twin of :meth:`result`."""
        return await asyncio.to_thread(self.result, timeout)

    async def await_done(self, timeout: float | None = None) -> JobStatus:
        """Async twin of :meth:`wait`."""
        return await asyncio.to_thread(self.wait, timeout)

    # -- cancelling -----------------------------------------------------------------------------

    def cancel(self) -> CancelResult:
        """Ask the backend to stop the job, then wait for the job to end as cancelled.

        Harmless on a finished job (returns ``server_stopped=False``) and when called twice. While
        the artifacts download (the backend is done), only the download is stopped: it removes
        its partial file, and the job ends cancelled unless its last file was already named.
        """
        if self.done():
            return self._cancel_result or CancelResult(server_stopped=False, message="job had already ended")
        self._fetch_scope.cancel()  # first, and local: whatever the server call below does
        if self._fetching:
            with self._condition:
                result = self._cancel_result = self._cancel_result or CancelResult(
                    server_stopped=False, message="the backend had finished; the download was stopped"
                )
        else:
            result = self._request_cancel()
        if threading.current_thread() is not self._thread:  # a status callback may cancel too
            self._thread.join(timeout=30)
        return result

    async def acancel(self) -> CancelResult:
        """Async twin of :meth:`cancel`."""
        return await asyncio.to_thread(self.cancel)

    def _request_cancel(self) -> CancelResult:
        with self._condition:
            if self._cancel_result is not None:
                return self._cancel_result
        try:
            result = self._session._call("vidbridge_cancel", handle=self._handle)
        except VidbridgeError as exc:
            log.warning("cancelling %s: %s", self.id, exc)
            result = CancelResult(server_stopped=False, message=f"cancel failed: {exc}")
        with self._condition:
            self._cancel_result = self._cancel_result or result
            return self._cancel_result

    def __enter__(self) -> Job:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self.done():
            self.cancel()

    # -- the monitor thread ---------------------------------------------------------------------

    def _record(self, status: JobStatus) -> None:
        with self._condition:
            if status.same_state(self._history[-1]):
                return
            self._history.append(status)
            callbacks = list(self._callbacks)
            self._condition.notify_all()
        for callback in callbacks:
            try:
                callback(status)
            except Exception:  # a host's callback must not kill the job
                log.exception("status callback for %s raised", self.id)

    def _end(self, phase: Phase, error: VidbridgeError | None = None, **changes: Any) -> None:
        self._error = error
        info = None if error is None else ErrorInfo(**error.to_dict())
        self._record(self.status().evolve(phase=phase, error=info, **changes))

    def _monitor(self) -> None:
        try:
            self._follow_backend()
        except VidbridgeError as exc:
            self._finish_with_error(exc)
        except Exception as exc:  # a plugin bug must still end the job, never hang it
            log.exception("plugin %r broke while running %s", self._session.backend, self.id)
            self._finish_with_error(
                PluginError(f"plugin {self._session.backend!r} failed: {type(exc).__name__}: {exc}")
            )

    def _finish_with_error(self, exc: VidbridgeError) -> None:
        if isinstance(exc, JobCancelledError):
            self._end(Phase.CANCELLED, exc)
        else:
            self._end(Phase.FAILED, exc)

    def _follow_backend(self) -> None:
        current = self.status()
        while True:
            if self._deadline is not None and time.monotonic() >= self._deadline:
                self._request_cancel()
                raise JobTimeoutError(
                    f"{self.id} did not finish within {self._timeout} s (cancel requested on the server)",
                    endpoint=self._session.endpoint.url,
                )
            wait = self._poll_interval
            if self._deadline is not None:
                wait = max(0.0, min(wait, self._deadline - time.monotonic()))
            current = self._session._call(
                "vidbridge_status", handle=self._handle, current=self.status(), wait=wait
            )
            if not isinstance(current, JobStatus):
                raise PluginError(f"plugin {self._session.backend!r} returned {type(current).__name__} from status")
            if current.phase is Phase.COMPLETED:
                break
            self._record(current)
            if current.phase is Phase.FAILED:
                error = current.error
                raise JobFailedError(
                    error.message if error else f"{self.id} failed", endpoint=self._session.endpoint.url
                )
            if current.phase is Phase.CANCELLED:
                result = self._cancel_result
                raise JobCancelledError(
                    f"{self.id} was cancelled" + (f": {result.message}" if result and result.message else ""),
                    endpoint=self._session.endpoint.url,
                    server_stopped=None if result is None else result.server_stopped,
                )
        self._download()

    def _download(self) -> None:
        self._record(self.status().evolve(phase=Phase.DOWNLOADING, message="downloading artifacts"))

        def progress(done: int, total: int | None) -> None:
            self._record(
                self.status().evolve(
                    downloaded_bytes=done,
                    total_bytes=total,
                    progress=None if not total else min(1.0, done / total),
                )
            )

        self._output_dir.mkdir(parents=True, exist_ok=True)
        self._fetching = True
        try:
            with self._fetch_scope.active():
                artifacts = self._session._call(
                    "vidbridge_fetch", handle=self._handle, destination=self._output_dir, progress=progress
                )
        except BaseException:
            self._artifacts = list(self._fetch_scope.artifacts)  # files already named stay reported
            raise
        if not artifacts or not all(isinstance(item, Artifact) for item in artifacts):
            raise PluginError(f"plugin {self._session.backend!r} returned no artifacts for {self.id}")
        self._artifacts = list(artifacts)
        self._end(Phase.COMPLETED, None, message=f"{len(artifacts)} artifact(s) verified", progress=1.0)
