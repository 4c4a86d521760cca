"""A live connection to one backend endpoint, and the jobs submitted through it."""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from .errors import InvalidRequestError, VidbridgeError
from .job import Job, StatusCallback, new_job_id
from .models import Artifact, Endpoint, GenerationRequest, build

if TYPE_CHECKING:  # pragma: no cover
    from .manager import PluginManager

__all__ = ["Session", "DEFAULT_OUTPUT_DIR"]

log = logging.getLogger("vidbridge.session")

DEFAULT_OUTPUT_DIR = Path("outputs")


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
    ) -> None:
        self.endpoint = endpoint
        self.backend = endpoint.backend
        self._manager = manager
        self._native = native
        self._poll_interval = poll_interval
        self._on_close: list[Callable[[], None]] = [on_close] if on_close else []
        self._jobs: list[Job] = []
        self._lock = threading.Lock()
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Session {self.backend} {self.endpoint.url} {state}>"

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
        **fields: Any,
    ) -> Job:
        """Submit a generation and return its :class:`Job` once the backend accepted it.

        Pass a :class:`GenerationRequest`, or its fields as keyword arguments
        (``session.submit(prompt="...", frames=17)``). Invalid input raises
        :class:`InvalidRequestError` before any network call; a backend that refuses the request
        raises :class:`RejectedError`.

        :param output_dir: where the verified artifacts are written (created if missing).
        :param timeout: seconds the whole job may take; then it is cancelled and fails with
            :class:`JobTimeoutError`.
        :param on_status: called on every status change, on the job's worker thread.
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
        if timeout is not None and timeout <= 0:
            raise InvalidRequestError(f"timeout must be positive (got {timeout})", field="timeout", allowed="> 0")
        self._check_open()
        job_id = new_job_id()
        handle = self._call("vidbridge_submit", request=request, job_id=job_id)
        job = Job(
            self,
            request,
            handle,
            job_id,
            output_dir=Path(output_dir),
            timeout=timeout,
            poll_interval=self._poll_interval,
            on_status=on_status,
        )
        with self._lock:
            self._jobs = [existing for existing in self._jobs if not existing.done()]
            self._jobs.append(job)
        return job

    def generate(
        self,
        request: GenerationRequest | None = None,
        /,
        *,
        output_dir: str | Path = DEFAULT_OUTPUT_DIR,
        timeout: float | None = None,
        on_status: StatusCallback | None = None,
        **fields: Any,
    ) -> list[Artifact]:
        """Submit and wait: returns the verified artifacts or raises the job's error."""
        job = self.submit(request, output_dir=output_dir, timeout=timeout, on_status=on_status, **fields)
        with job:
            return job.result()

    @property
    def jobs(self) -> list[Job]:
        """Jobs of this session that are still running."""
        with self._lock:
            return [job for job in self._jobs if not job.done()]

    # -- async twins ----------------------------------------------------------------------------

    async def asubmit(self, request: GenerationRequest | None = None, /, **kwargs: Any) -> Job:
        """Async twin of :meth:`submit`."""
        return await asyncio.to_thread(lambda: self.submit(request, **kwargs))

    async def agenerate(self, request: GenerationRequest | None = None, /, **kwargs: Any) -> list[Artifact]:
        """Async twin of :meth:`generate`."""
        job = await self.asubmit(request, **kwargs)
        try:
            return await job.aresult()
        finally:
            if not job.done():
                await job.acancel()

    async def aclose(self) -> None:
        """Async twin of :meth:`close`."""
        await asyncio.to_thread(self.close)

    # -- lifecycle ------------------------------------------------------------------------------

    def close(self) -> None:
        """Cancel running jobs and release the plugin's resources. Idempotent."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            jobs = list(self._jobs)
        for job in jobs:
            if not job.done():
                job.cancel()
        try:
            close = getattr(self._native, "close", None)
            if close is not None:
                close()
        finally:
            for callback in self._on_close:
                callback()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

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
