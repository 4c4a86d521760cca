"""A live connection to one backend endpoint, and the jobs submitted through it.

Nothing here waits for the backend on the caller's thread beyond one request: ``submit`` validates
locally and returns the job at once (its thread takes a slot of the client's local queue, then
submits), ``close`` cancels the jobs (all at once) and releases the plugin's session in the
background; ``wait_closed`` (and leaving ``with``) waits for that.
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import InvalidRequestError, NotAttachableError, PluginError, VidbridgeError
from .httperrors import redact_url
from .job import Job, StatusCallback, new_job_id
from .models import Artifact, Endpoint, GenerationRequest, build
from .refs import JobRef
from .slots import SlotQueue

if TYPE_CHECKING:  # pragma: no cover
    from .ledger import Ledger
    from .manager import PluginManager

__all__ = ["Session", "DEFAULT_OUTPUT_DIR"]

log = logging.getLogger("vidbridge.session")

DEFAULT_OUTPUT_DIR = Path("outputs")
#: Seconds leaving ``with session:`` waits for the jobs to end and the plugin's session to close.
CLOSE_TIMEOUT = 30.0


class Session:
    """A connection to one endpoint, owned by the plugin of its backend.

    Open one with :func:`vidbridge.connect` or :meth:`vidbridge.Client.connect`, and close it with
    ``with`` / ``async with`` (or :meth:`close`; closing twice is harmless). Closing cancels the
    jobs still running and releases everything the plugin holds. A session is thread-safe: many
    threads may submit jobs at once.

    :ivar endpoint: the endpoint this session talks to.
    :ivar backend: the name of the plugin that owns it.
    """

    def __init__(
        self,
        manager: PluginManager,
        endpoint: Endpoint,
        native: Any,
        *,
        poll_interval: float = 0.5,
        on_close: Callable[[], None] | None = None,
        slots: SlotQueue | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self.endpoint = endpoint
        self._ledger = ledger
        self.backend = endpoint.backend
        self._manager = manager
        self._native = native
        self._poll_interval = poll_interval
        self._on_close: list[Callable[[], None]] = [on_close] if on_close else []
        self._slots = slots
        self._jobs: list[Job] = []
        self._lock = threading.Lock()
        self._closed = False
        self._native_closed = threading.Event()  # the plugin's session is closed
        self._shut = threading.Event()  # ... and the close callbacks ran
        self._shut_waiters: list[Callable[[], None]] = []

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Session {self.backend} {redact_url(self.endpoint.url)} {state}>"

    @property
    def native(self) -> Any:
        """The plugin's own session object, for backend-specific features."""
        return self._native

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._closed

    # -- jobs -----------------------------------------------------------------------------------

    def submit(
        self,
        request: GenerationRequest | None = None,
        /,
        *,
        output_dir: str | Path = DEFAULT_OUTPUT_DIR,
        timeout: float | None = None,
        on_status: StatusCallback | None = None,
        download: bool = True,
        reuse: bool = False,
        **fields: Any,
    ) -> Job:
        """Submit a generation; returns its :class:`Job` at once.

        Pass a :class:`GenerationRequest`, or its fields as keyword arguments
        (``session.submit(prompt="...", frames=17)``). Invalid input raises
        :class:`InvalidRequestError` here, before any network call. The job starts in phase
        ``queued`` with its position in the client's local queue (at most ``max_sessions`` jobs
        of a client run at once per server); its own thread then submits it to the backend. A
        backend that refuses the request ends the job with :class:`RejectedError`.

        :param output_dir: where the verified artifacts are written (created if missing).
        :param timeout: seconds the whole job may take, local queue included; then it is
            cancelled and fails with :class:`JobTimeoutError` (``reason="deadline"``).
        :param on_status: called on every status change, on the job's own thread.
        :param download: ``False`` leaves the outputs on the backend: the job completes without
            downloading; ``job.outputs()`` lists them and ``job.fetch(folder)`` downloads them.
        :param reuse: a request with a fixed seed and a model that an earlier completed job of the
            ledger ran on the same server returns that job's artifacts, re-verified, copied into
            ``output_dir``, without asking the server (``status().cached``; see
            :mod:`vidbridge.reuse`). Files missing or changed: generated normally.

        The job is written to the client's ledger (:mod:`vidbridge.ledger`) before this returns.
        """
        if request is None:
            request = build(GenerationRequest, **fields)
        elif fields:
            raise InvalidRequestError(
                f"give a GenerationRequest or keyword fields, not both (got {sorted(fields)})",
                field=sorted(fields)[0],
            )
        if not isinstance(request, GenerationRequest):
            raise InvalidRequestError(
                f"request must be a GenerationRequest, not {type(request).__name__}", field="request"
            )
        _check_timeout(timeout)
        self._check_open()
        if self._implements("vidbridge_validate"):
            self._call_optional("vidbridge_validate", request=request)
        return self._new_job(request, new_job_id(), output_dir=Path(output_dir), timeout=timeout,
                             on_status=on_status, download=download, reuse=bool(reuse))

    def _new_job(self, request: GenerationRequest, job_id: str, *, attempt: int = 1, **options: Any) -> Job:
        """Create and start a validated job (``attempt`` > 1: a resubmission of ``job_id``)."""
        job = Job(self, request, job_id, poll_interval=self._poll_interval, slots=self._slots,
                  recorder=self._recorder(job_id, attempt), **options)
        self._track(job)
        return job

    def _recorder(self, job_id: str, attempt: int = 1) -> Any:
        if self._ledger is None:
            return None
        from .ledger_recorder import JobRecorder

        return JobRecorder(self._ledger, job_id, backend=self.backend, endpoint=self.endpoint.url, attempt=attempt)

    def attach(
        self,
        ref: JobRef | str | dict[str, Any],
        *,
        output_dir: str | Path = DEFAULT_OUTPUT_DIR,
        timeout: float | None = None,
        on_status: StatusCallback | None = None,
        download: bool = True,
    ) -> Job:
        """A :class:`Job` following again the work ``ref`` names (``job.ref``, or its JSON).

        The backend is asked once where that work is (its ``vidbridge_attach`` hook); the job then
        follows it like a submitted one (status, download, verification), without submitting
        anything and without a local-queue slot.

        :raises NotAttachableError: the reference is malformed or names another backend or
            endpoint, or the backend cannot find that work again; ``error.reason`` says which.
        """
        if not isinstance(ref, JobRef):
            ref = JobRef.from_json(ref)
        _check_timeout(timeout)
        self._check_open()
        shown = redact_url(self.endpoint.url)
        if ref.backend != self.backend or _same_url(ref.endpoint) != _same_url(shown):
            raise NotAttachableError(f"{ref.job_id} belongs to {ref.backend} at {ref.endpoint}, not to "
                                     f"{self.backend} at {shown}", endpoint=shown, reason="mismatch")
        if not self._implements("vidbridge_attach"):
            raise NotAttachableError(f"the {self.backend} plugin cannot follow a job again by reference",
                                     endpoint=shown, reason="unsupported")
        handle = self._call("vidbridge_attach", ref=ref)
        job = Job(self, None, ref.job_id, output_dir=Path(output_dir), timeout=timeout,
                  poll_interval=self._poll_interval, on_status=on_status, download=download,
                  handle=handle, ref_data=dict(ref.data), recorder=self._recorder(ref.job_id))
        self._track(job)
        return job

    def _track(self, job: Job) -> None:
        with self._lock:
            self._jobs = [existing for existing in self._jobs if not existing.done()]
            self._jobs.append(job)

    def generate(
        self,
        request: GenerationRequest | None = None,
        /,
        *,
        output_dir: str | Path = DEFAULT_OUTPUT_DIR,
        timeout: float | None = None,
        on_status: StatusCallback | None = None,
        reuse: bool = False,
        **fields: Any,
    ) -> list[Artifact]:
        """Submit and wait: returns the verified artifacts or raises the job's error."""
        job = self.submit(request, output_dir=output_dir, timeout=timeout, on_status=on_status, reuse=reuse,
                          **fields)
        with job:
            return job.result()

    @property
    def jobs(self) -> list[Job]:
        """Jobs of this session that are still running."""
        with self._lock:
            return [job for job in self._jobs if not job.done()]

    # -- async twins ----------------------------------------------------------------------------

    async def asubmit(self, request: GenerationRequest | None = None, /, **kwargs: Any) -> Job:
        """Async twin of :meth:`submit` (which never waits for the backend)."""
        return self.submit(request, **kwargs)

    async def agenerate(self, request: GenerationRequest | None = None, /, **kwargs: Any) -> list[Artifact]:
        """Async twin of :meth:`generate`."""
        job = await self.asubmit(request, **kwargs)
        try:
            return await job.aresult()
        finally:
            if not job.done():
                await job.acancel()

    async def aclose(self) -> None:
        """Async twin of leaving ``with``: :meth:`close`, then wait for it (no thread held)."""
        self.close()
        if self._shut.is_set():
            return
        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()

        def resolve() -> None:
            try:
                loop.call_soon_threadsafe(lambda: future.done() or future.set_result(None))
            except RuntimeError:  # the loop is gone: nobody waits
                pass

        self._when_shut(resolve)
        try:
            await asyncio.wait_for(future, CLOSE_TIMEOUT)
        except asyncio.TimeoutError:
            log.warning("%r: still closing after %s s", self, CLOSE_TIMEOUT)

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Start closing; returns at once. Idempotent.

        Jobs still in the local queue end cancelled at once (no request); running jobs are
        cancelled all at once, each on its own thread; once they ended (or after
        :data:`CLOSE_TIMEOUT` seconds) the plugin's session is closed and the close callbacks run.
        :meth:`wait_closed` waits for that; leaving ``with`` does both.
        """
        with self._lock:
            if self._closed:
                return
            self._closed = True
            jobs = [job for job in self._jobs if not job.done()]
        for job in jobs:
            if job.locally_queued:
                job.cancel()  # no request: it never reached the backend
            else:
                threading.Thread(target=job.cancel, name=f"vidbridge-cancel-{job.id}", daemon=True).start()
        threading.Thread(target=self._shutdown, args=(jobs,), name="vidbridge-session-close", daemon=True).start()

    def wait_closed(self, timeout: float | None = None) -> bool:
        """Wait until :meth:`close` has finished (jobs ended, plugin session closed, callbacks run).

        :returns: ``True`` if it finished within ``timeout`` seconds.
        """
        return self._shut.wait(timeout)

    def _shutdown(self, jobs: list[Job]) -> None:
        deadline = time.monotonic() + CLOSE_TIMEOUT
        for job in jobs:
            if not job._finished.wait(max(0.0, deadline - time.monotonic())):
                log.warning("%r: %s did not end within %s s of close; closing anyway", self, job.id, CLOSE_TIMEOUT)
        try:
            close = getattr(self._native, "close", None)
            if close is not None:
                close()
        except Exception:  # noqa: BLE001 - closing must go on; say what failed
            log.exception("%r: the %s plugin failed to close its session", self, self.backend)
        finally:
            self._native_closed.set()
            for callback in self._on_close:
                try:
                    callback()
                except Exception:  # noqa: BLE001
                    log.exception("%r: a close callback failed", self)
            with self._lock:
                waiters, self._shut_waiters = self._shut_waiters, []
                self._shut.set()
            for resolve in waiters:
                resolve()

    def _when_shut(self, callback: Callable[[], None]) -> None:
        with self._lock:
            if not self._shut.is_set():
                self._shut_waiters.append(callback)
                return
        callback()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
        if not self.wait_closed(CLOSE_TIMEOUT):
            log.warning("%r: still closing after %s s", self, CLOSE_TIMEOUT)

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def add_close_callback(self, callback: Callable[[], None]) -> None:
        """Run ``callback()`` after this session closed (used to release a private client)."""
        self._on_close.append(callback)

    # -- plumbing -------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise VidbridgeError(f"the session to {self.endpoint.url} is closed: open a new one")

    def _call(self, hook_name: str, **kwargs: Any) -> Any:
        """Call a hook on this session's plugin only."""
        return self._manager.call_owner(self.backend, hook_name, session=self._native, **kwargs)

    def _implements(self, hook_name: str) -> bool:
        """True if this session's plugin implements the (optional) hook ``hook_name``."""
        return any(impl.plugin_name == self.backend for impl in getattr(self._manager.hook, hook_name).get_hookimpls())

    def _call_optional(self, hook_name: str, **kwargs: Any) -> Any:
        """Call an optional hook on this session's plugin: ``None`` is a valid answer."""
        others = [plugin for name, plugin in self._manager.list_name_plugin() if name != self.backend and plugin]
        caller = self._manager.subset_hook_caller(hook_name, remove_plugins=others)
        try:
            return caller(session=self._native, **kwargs)
        except VidbridgeError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin {self.backend!r} failed in {hook_name}: {type(exc).__name__}: {exc}",
                              plugin=self.backend) from exc


def _check_timeout(timeout: float | None) -> None:
    if timeout is not None and not (isinstance(timeout, (int, float)) and math.isfinite(timeout) and timeout > 0):
        raise InvalidRequestError(f"timeout must be a finite number of seconds > 0 (got {timeout!r})",
                                  field="timeout", allowed="finite seconds > 0")


def _same_url(url: str) -> str:
    return url.rstrip("/").lower()
