"""A generation job: local status, updates (callbacks, sync and async iteration), result, reference.

Each :class:`Job` has one thread of its own. It waits for a slot in the client's local queue
(:mod:`vidbridge.slots`), submits to the owning plugin (``vidbridge_submit``), follows the status
(``vidbridge_status``), downloads the artifacts when the backend is done (``vidbridge_fetch``)
and enforces the job's deadline. Nothing a host calls waits for that thread unless it asks to
wait (:meth:`Job.result`, :meth:`Job.wait`, iteration): :meth:`Session.submit` returns the job at
once, :meth:`Job.cancel` makes at most one request. Everything a host reads (:meth:`Job.status`,
:meth:`Job.updates`, :attr:`Job.ref`) is answered from what that thread recorded.

The asyncio twins (:meth:`Job.aresult`, :meth:`Job.await_`, :meth:`Job.aupdates`) complete from the
job's own events through ``loop.call_soon_threadsafe``: an awaiting coroutine holds no thread.
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
    JobLostError,
    JobTimeoutError,
    PluginError,
    VidbridgeError,
)
from .httperrors import redact_url
from .models import Artifact, CancelResult, ErrorInfo, GenerationRequest, JobStatus, Phase
from .refs import JobRef, OutputRef
from .slots import SlotQueue, Ticket

if TYPE_CHECKING:  # pragma: no cover
    from .ledger_recorder import JobRecorder
    from .reuse import Reused
    from .session import Session

__all__ = ["Job", "StatusCallback", "new_job_id"]

log = logging.getLogger("vidbridge.job")

#: A status callback; it runs on the job's own thread, so it must be quick and thread-safe.
StatusCallback = Callable[[JobStatus], None]

# What the job's thread is doing; cancel() acts on it. Guarded by Job._condition.
_WAITING, _SUBMITTING, _RUNNING, _FETCHING, _ENDED = "waiting", "submitting", "running", "fetching", "ended"


def new_job_id() -> str:
    """A short unique job id."""
    return "job-" + uuid.uuid4().hex[:12]


class Job:
    """A generation submitted through a :class:`~vidbridge.Session` (or re-attached by reference).

    Do not build one yourself: use :meth:`Session.submit` or :meth:`Client.attach`. A job is a
    context manager; leaving the ``with`` block cancels it if it is still running.

    :ivar id: the job's id (also in its status, its reference and manifests).
    :ivar request: the request as submitted (``None`` for a job re-attached by reference).
    """

    def __init__(
        self,
        session: Session,
        request: GenerationRequest | None,
        job_id: str,
        *,
        output_dir: Path,
        timeout: float | None,
        poll_interval: float,
        on_status: StatusCallback | None,
        download: bool = True,
        slots: SlotQueue | None = None,
        handle: Any = None,
        ref_data: dict[str, Any] | None = None,
        recorder: JobRecorder | None = None,
        reuse: bool = False,
        done: Reused | None = None,
    ) -> None:
        self.id = job_id
        self.request = request
        self._session = session
        self._handle = handle
        self._ref_data = ref_data
        self._output_dir = output_dir
        self._download_outputs = download
        self._deadline = None if timeout is None else time.monotonic() + timeout
        self._timeout = timeout
        self._poll_interval = poll_interval
        self._condition = threading.Condition()
        self._callbacks: list[StatusCallback] = [on_status] if on_status else []
        self._artifacts: list[Artifact] = []
        self._error: VidbridgeError | None = None
        self._cancel_result: CancelResult | None = None
        self._cancel_requested = False
        self._finished = threading.Event()  # terminal status recorded and its callbacks run
        self._finish_waiters: list[Callable[[], None]] = []
        # Cancels this job's downloads; used once the backend is done and only the fetch is left.
        self._fetch_scope = FetchScope()
        # The ledger (vidbridge.ledger): written before the thread starts, so before any network call.
        self._recorder = recorder
        self._reuse = reuse
        self._reused_from: str | None = None
        self._reuse_key: str | None = None
        self._done = done  # a job that completed earlier (Client.resume): its verified files
        if done is not None:
            handle = handle if handle is not None else object()  # runs nothing: no slot
        self._slots = slots if handle is None else None  # an attached job runs already: no slot
        self._ticket: Ticket | None = self._slots.enter() if self._slots is not None else None
        first = JobStatus(job_id=job_id, phase=Phase.QUEUED)
        position = self._slots.position(self._ticket) if self._slots and self._ticket else None
        if position is not None:
            first = first.evolve(queue_position=position[0], queue_size=position[1],
                                 message=self._local_queue_message(position[0]))
        self._history: list[JobStatus] = [first]
        self._stage = _RUNNING if handle is not None else _WAITING
        if recorder is not None and done is None:
            if request is None:
                recorder.attached(self.ref)
            else:
                recorder.created(request, status=first.phase.value, message=first.message,
                                 reason="resubmit" if recorder.attempt > 1 else "submit",
                                 output_dir=str(output_dir.absolute()))
        self._thread = threading.Thread(target=self._run, name=f"vidbridge-{job_id}", daemon=True)
        self._thread.start()

    def __repr__(self) -> str:
        return f"<Job {self.id} {self.status().phase.value} on {redact_url(self._session.endpoint.url)}>"

    # -- reading state (no network) -------------------------------------------------------------

    def status(self) -> JobStatus:
        """The latest status, from local state (no network round trip)."""
        return self._history[-1]

    def done(self) -> bool:
        """True once the job is completed, failed or cancelled (artifacts downloaded if any)."""
        return self.status().is_terminal

    @property
    def locally_queued(self) -> bool:
        """True while the job waits in the client's local queue (it has not reached the backend)."""
        return self._stage == _WAITING

    @property
    def ref(self) -> JobRef:
        """A small, JSON-able reference to this job's work (:meth:`JobRef.to_json`), for
        :meth:`Client.attach` from this or another process. ``data`` holds the backend's own ids
        once the backend gave them (``{}`` before)."""
        return JobRef(backend=self._session.backend, endpoint=redact_url(self._session.endpoint.url),
                      job_id=self.id, data=dict(self._ref_data or {}))

    @property
    def attempt(self) -> int:
        """Which attempt of this job runs: 1, or 2 after a resubmission (the backend lost the
        first attempt with no possible output, or ``Client.resume(..., resubmit=True)``)."""
        return self._recorder.attempt if self._recorder is not None else self._attempt_number

    _attempt_number = 1

    @property
    def artifacts(self) -> list[Artifact]:
        """The verified artifacts (empty until the job is completed, or fetched).

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

        Callbacks run on the job's own thread (never the caller's thread): keep them quick, and
        hand work to your own thread or event loop. Exceptions they raise are logged and ignored.
        """
        with self._condition:
            self._callbacks.append(callback)

    def updates(self, timeout: float | None = None) -> Iterator[JobStatus]:
        """Iterate over every status from the first one to the terminal one.

        Nothing is missed: the history is kept, so a late iterator replays it.

        :param timeout: give up waiting after this many seconds (raises :class:`JobTimeoutError`
            with ``reason="wait"``; the job keeps running).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        index = 0
        while True:
            with self._condition:
                while index >= len(self._history):
                    remaining = None if deadline is None else deadline - time.monotonic()
                    if remaining is not None and remaining <= 0:
                        raise self._wait_timeout(f"no status change of {self.id} within {timeout} s")
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
            _call_soon(loop, queue.put_nowait, status)

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

        :raises JobTimeoutError: ``timeout`` seconds passed first (``reason="wait"``; the job keeps
            running).
        """
        if not self._finished.wait(timeout):
            raise self._wait_timeout(f"{self.id} still {self.status().phase.value} after waiting {timeout} s")
        return self.status()

    def result(self, timeout: float | None = None) -> list[Artifact]:
        """Wait for the job and return its verified artifacts.

        :raises JobFailedError, JobCancelledError, JobTimeoutError, BackendError...: the error
            that ended the job (or ``JobTimeoutError(reason="wait")`` when ``timeout`` passed).
        """
        self.wait(timeout)
        if self._error is not None:
            raise self._error
        return self.artifacts

    async def aresult(self, timeout: float | None = None) -> list[Artifact]:
        """Async twin of :meth:`result`: completes from the job's own end (holds no thread)."""
        await self._until_finished(timeout)
        return self.result(timeout=0)

    async def await_(self, timeout: float | None = None) -> JobStatus:
        """Async twin of :meth:`wait` ("a" + "wait"; the trailing underscore because ``await`` is
        a keyword). Completes from the job's own end (holds no thread)."""
        await self._until_finished(timeout)
        return self.status()

    #: The former name of :meth:`await_`, kept for existing callers.
    await_done = await_

    async def _until_finished(self, timeout: float | None) -> None:
        if self._finished.is_set():
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def resolve() -> None:
            _call_soon(loop, lambda: future.done() or future.set_result(None))

        with self._condition:
            if self._finished.is_set():
                return
            self._finish_waiters.append(resolve)
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise self._wait_timeout(f"{self.id} still {self.status().phase.value} after waiting {timeout} s") from None
        finally:
            with self._condition:
                if resolve in self._finish_waiters:
                    self._finish_waiters.remove(resolve)

    def _wait_timeout(self, message: str) -> JobTimeoutError:
        return _timeout_error(message, endpoint=redact_url(self._session.endpoint.url), reason="wait")

    # -- outputs on the backend (download=False) ------------------------------------------------

    def outputs(self) -> list[OutputRef]:
        """The finished job's outputs as they are on the backend (name, URL, size when known),
        without downloading them; for jobs submitted with ``download=False``.

        :raises VidbridgeError: the job has not completed (yet).
        :raises PluginError: the backend's plugin cannot list outputs.
        """
        self._require_completed("list its outputs")
        found = self._session._call("vidbridge_outputs", handle=self._handle)
        if not isinstance(found, list) or not all(isinstance(item, OutputRef) for item in found):
            raise PluginError(f"plugin {self._session.backend!r} returned {type(found).__name__} from outputs",
                              plugin=self._session.backend)
        if self._recorder is not None:
            self._recorder.outputs([item.name for item in found])
        return list(found)

    def fetch(self, destination: str | Path | None = None) -> list[Artifact]:
        """Download and verify the finished job's outputs into ``destination`` (default: the
        job's ``output_dir``), on the calling thread; returns the artifacts (also
        :attr:`artifacts`). For jobs submitted with ``download=False``.

        :raises VidbridgeError: the job has not completed (yet).
        :raises IntegrityError: a download kept failing verification.
        """
        self._require_completed("fetch its outputs")
        folder = Path(destination) if destination is not None else self._output_dir
        artifacts = self._fetch_into(folder, progress=lambda done, total: None)
        self._artifacts = list(artifacts)
        if self._recorder is not None:
            self._recorder.fetched(self._artifacts)
        return self.artifacts

    def _require_completed(self, what: str) -> None:
        if self.status().phase is not Phase.COMPLETED:
            raise VidbridgeError(f"{self.id} is {self.status().phase.value}: it must be completed to {what}")

    # -- cancelling -----------------------------------------------------------------------------

    def cancel(self) -> CancelResult:
        """Stop the job; returns at once, after at most one request to the backend.

        * still in the local queue: it leaves it; no request is made (``server_stopped=True``:
          nothing runs on the backend);
        * running on the backend: the plugin's cancel is asked (one request);
        * downloading (the backend is done): only the download stops; it removes its partial file,
          and the job ends cancelled unless its last file was already named.

        The job then ends as cancelled on its own thread: :meth:`wait` waits for that. Harmless on
        a finished job and when called twice.
        """
        with self._condition:
            if self._stage == _ENDED or self._cancel_result is not None:
                return self._cancel_result or CancelResult(server_stopped=False, message="job had already ended")
            self._cancel_requested = True
            stage = self._stage
            if stage == _WAITING:
                result = self._cancel_result = CancelResult(
                    server_stopped=True, message="cancelled before it reached the backend (no request was made)")
            elif stage == _SUBMITTING:
                result = CancelResult(server_stopped=False,
                                      message="cancel requested while the job was being submitted; "
                                              "the backend is asked to stop it once submitted")
            elif stage == _FETCHING:
                result = self._cancel_result = CancelResult(
                    server_stopped=False, message="the backend had finished; the download was stopped")
        if stage == _WAITING:
            if self._slots is not None:
                self._slots.wake()
            return result
        self._fetch_scope.cancel()  # local, and first: whatever the server call below does
        if stage in (_SUBMITTING, _FETCHING):
            return result
        return self._request_cancel()

    async def acancel(self) -> CancelResult:
        """Async twin of :meth:`cancel` (its one request runs on a worker thread)."""
        if self.locally_queued:
            return self.cancel()
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

    # -- the job's thread -----------------------------------------------------------------------

    def _record(self, status: JobStatus) -> None:
        with self._condition:
            if status.same_state(self._history[-1]):
                return
            changed_phase = status.phase is not self._history[-1].phase
            self._history.append(status)
            callbacks = list(self._callbacks)
            self._condition.notify_all()
        if changed_phase and self._recorder is not None and not status.is_terminal:  # the end: _end
            self._recorder.phase(status.phase.value, status.message, self.ref)
        for callback in callbacks:
            try:
                callback(status)
            except Exception:  # a host's callback must not kill the job
                log.exception("status callback for %s raised", self.id)

    def _end(self, phase: Phase, error: VidbridgeError | None = None, **changes: Any) -> None:
        self._error = error
        info = None if error is None else ErrorInfo(**error.to_dict())
        final = self.status().evolve(phase=phase, error=info, queue_position=None, queue_size=None, **changes)
        if self._recorder is not None and self._done is None:  # before anyone sees the end
            self._recorder.finished(phase.value, message=final.message,
                                    error=None if error is None else error.to_dict(),
                                    artifacts=self._artifacts, ref=self.ref, cached=final.cached,
                                    reused_from=self._reused_from, reuse_key=self._reuse_key)
        self._record(final)

    def _run(self) -> None:
        try:
            if self._done is not None:
                self._artifacts = list(self._done.artifacts)
                self._end(Phase.COMPLETED, None, progress=1.0, cached=self._done.source is not None,
                          message=f"completed earlier: {len(self._artifacts)} artifact(s) verified again")
                return
            if self._handle is None:
                if self._reused():
                    return
                self._take_slot()
                self._submit()
            self._follow_with_resubmission()
        except VidbridgeError as exc:
            self._finish_with_error(exc)
        except Exception as exc:  # a plugin bug must still end the job, never hang it
            log.exception("plugin %r broke while running %s", self._session.backend, self.id)
            self._finish_with_error(
                PluginError(f"plugin {self._session.backend!r} failed: {type(exc).__name__}: {exc}",
                            plugin=self._session.backend)
            )
        finally:
            if self._slots is not None and self._ticket is not None:
                self._slots.leave(self._ticket)
            with self._condition:
                self._stage = _ENDED
                waiters, self._finish_waiters = self._finish_waiters, []
                self._finished.set()
            for resolve in waiters:
                resolve()

    def _local_queue_message(self, ahead: int) -> str:
        return "waiting for a free slot: next" if ahead == 0 else f"waiting for a free slot: {ahead} job(s) ahead"

    def _take_slot(self) -> None:
        """Wait in the local queue (positions recorded as they change); cancel ends the wait."""
        if self._slots is None or self._ticket is None:
            return

        def moved(ahead: int, size: int) -> None:
            self._record(self.status().evolve(phase=Phase.QUEUED, queue_position=ahead, queue_size=size,
                                              message=self._local_queue_message(ahead)))

        granted = self._slots.wait(self._ticket, stop=lambda: self._cancel_requested or self._past_deadline(),
                                   moved=moved, deadline=self._deadline)
        with self._condition:
            if granted and not self._cancel_requested and not self._past_deadline():
                self._stage = _SUBMITTING
                return
        if self._cancel_requested:
            raise JobCancelledError(f"{self.id} was cancelled before it reached the backend",
                                    endpoint=redact_url(self._session.endpoint.url), server_stopped=True)
        raise self._deadline_error(cancelled_on_server=False, where="in the local queue")

    def _reused(self) -> bool:
        """Serve the job from an earlier identical one (``reuse=True``, :mod:`vidbridge.reuse`):
        True when done. Also computes the key this job is recorded under, for later reuse."""
        if self.request is None or self._recorder is None:
            return False
        from . import reuse

        try:
            self._reuse_key = reuse.reuse_key(self.request, self._session.endpoint)
            found = None
            if self._reuse and self._reuse_key is not None:
                found = reuse.find_reusable(self._recorder.ledger, self._reuse_key, self._output_dir, job_id=self.id)
        except Exception as exc:  # noqa: BLE001 - reuse is an optimisation: generate instead
            log.warning("reuse for %s failed (generating instead): %s", self.id, exc)
            return False
        if found is None:
            return False
        self._artifacts, self._reused_from = found.artifacts, found.source
        self._end(Phase.COMPLETED, None, progress=1.0, cached=True,
                  message=f"reused the {len(found.artifacts)} verified artifact(s) of {found.source}")
        return True

    def _follow_with_resubmission(self) -> None:
        """Follow the backend; a first attempt the backend provably lost with no output
        (``JobLostError(output_possible=False)``) is submitted once more, as attempt 2."""
        try:
            self._follow_backend()
        except JobLostError as exc:
            if exc.output_possible or self.attempt != 1 or self.request is None or self._past_deadline():
                raise
            with self._condition:
                if self._cancel_requested:
                    raise
                self._stage = _SUBMITTING
                self._handle = None
            log.warning("%s: %s; submitting it again (attempt 2)", self.id, exc.message)
            self._ref_data = None
            message = f"the backend lost attempt 1 with no output ({exc.message}): submitting it again (attempt 2)"
            if self._recorder is not None:
                self._recorder.new_attempt(2, reason="lost", request=self.request, status=Phase.QUEUED.value,
                                           message=message, previous_error=exc.to_dict())
            else:
                self._attempt_number = 2
            self._record(self.status().evolve(phase=Phase.QUEUED, message=message))
            self._resubmit()
            self._follow_backend()

    def _resubmit(self) -> None:
        """Submit attempt 2 (a pool's job first moves to another server: :mod:`vidbridge.pool`)."""
        self._submit()

    def _submit(self) -> None:
        self._record(self.status().evolve(phase=Phase.QUEUED, queue_position=None, queue_size=None,
                                          message="submitting"))
        handle = self._session._call("vidbridge_submit", request=self.request, job_id=self.id)
        with self._condition:
            self._handle = handle
            self._stage = _RUNNING
            cancel_now = self._cancel_requested
        self._refresh_ref()
        if self._recorder is not None:
            self._recorder.submitted(self.ref)
        if cancel_now:
            self._request_cancel()

    def _refresh_ref(self) -> None:
        if not self._session._implements("vidbridge_job_ref"):
            return
        try:
            data = self._session._call_optional("vidbridge_job_ref", handle=self._handle)
        except VidbridgeError as exc:
            log.debug("job reference of %s: %s", self.id, exc)
            return
        if data is not None:
            self._ref_data = JobRef(backend=self._session.backend, endpoint="-", job_id=self.id,
                                    data=data).data  # validated: JSON only
            if self._recorder is not None:
                self._recorder.ref(self.ref)

    def _past_deadline(self) -> bool:
        return self._deadline is not None and time.monotonic() >= self._deadline

    def _deadline_error(self, *, cancelled_on_server: bool, where: str) -> JobTimeoutError:
        how = "cancel requested on the server" if cancelled_on_server else "it never reached the backend"
        return _timeout_error(f"{self.id} did not finish within {self._timeout} s {where} ({how})",
                              endpoint=redact_url(self._session.endpoint.url), reason="deadline",
                              server_cancelled=cancelled_on_server)

    def _finish_with_error(self, exc: VidbridgeError) -> None:
        if isinstance(exc, JobCancelledError):
            self._end(Phase.CANCELLED, exc)
        else:
            self._end(Phase.FAILED, exc)

    def _follow_backend(self) -> None:
        endpoint = redact_url(self._session.endpoint.url)
        while True:
            if self._past_deadline():
                result = self._request_cancel()
                raise self._deadline_error(cancelled_on_server=result.server_stopped, where="")
            wait = self._poll_interval
            if self._deadline is not None:
                wait = max(0.0, min(wait, self._deadline - time.monotonic()))
            current = self._session._call(
                "vidbridge_status", handle=self._handle, current=self.status(), wait=wait
            )
            if not isinstance(current, JobStatus):
                raise PluginError(f"plugin {self._session.backend!r} returned {type(current).__name__} from status",
                                  plugin=self._session.backend)
            if current.phase is not self.status().phase or current.phase is Phase.COMPLETED:
                self._refresh_ref()  # the backend's ids may grow (e.g. output names once known)
            if current.phase is Phase.COMPLETED:
                break
            self._record(current)
            if current.phase is Phase.FAILED:
                error = current.error
                raise JobFailedError(error.message if error else f"{self.id} failed", endpoint=endpoint)
            if current.phase is Phase.CANCELLED:
                result = self._cancel_result
                raise JobCancelledError(
                    f"{self.id} was cancelled" + (f": {result.message}" if result and result.message else ""),
                    endpoint=endpoint,
                    server_stopped=None if result is None else result.server_stopped,
                )
        if self._download_outputs:
            self._download()
        else:
            self._end(Phase.COMPLETED, None, message="completed; the outputs are on the backend "
                                                     "(job.outputs(), job.fetch())", progress=1.0)

    def _fetch_into(self, folder: Path, progress: Callable[[int, int | None], None]) -> list[Artifact]:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            with self._fetch_scope.active():
                artifacts = self._session._call(
                    "vidbridge_fetch", handle=self._handle, destination=folder, progress=progress
                )
        except BaseException:
            self._artifacts = list(self._fetch_scope.artifacts)  # files already named stay reported
            raise
        if not artifacts or not all(isinstance(item, Artifact) for item in artifacts):
            raise PluginError(f"plugin {self._session.backend!r} returned no artifacts for {self.id}",
                              plugin=self._session.backend)
        return list(artifacts)

    def _download(self) -> None:
        with self._condition:
            if self._cancel_requested:
                raise JobCancelledError(f"{self.id} was cancelled before its download",
                                        endpoint=redact_url(self._session.endpoint.url),
                                        server_stopped=self._cancel_result.server_stopped
                                        if self._cancel_result else None)
            self._stage = _FETCHING
        self._record(self.status().evolve(phase=Phase.DOWNLOADING, message="downloading artifacts"))

        def progress(done: int, total: int | None) -> None:
            self._record(
                self.status().evolve(
                    downloaded_bytes=done,
                    total_bytes=total,
                    progress=None if not total else min(1.0, done / total),
                )
            )

        self._artifacts = self._fetch_into(self._output_dir, progress)
        self._end(Phase.COMPLETED, None, message=f"{len(self._artifacts)} artifact(s) verified", progress=1.0)


def _call_soon(loop: asyncio.AbstractEventLoop, function: Callable[..., Any], *args: Any) -> None:
    """``loop.call_soon_threadsafe`` that tolerates a loop already closed (nobody awaits then)."""
    try:
        loop.call_soon_threadsafe(function, *args)
    except RuntimeError:
        pass


def _timeout_error(message: str, *, endpoint: str, reason: str, server_cancelled: bool | None = None) -> JobTimeoutError:
    """A :class:`JobTimeoutError` saying which deadline passed (``reason``: ``wait`` or ``deadline``)."""
    return JobTimeoutError(message, endpoint=endpoint, reason=reason, server_cancelled=server_cancelled)
