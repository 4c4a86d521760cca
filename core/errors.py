"""The vidbridge error tree.

Every failure vidbridge reports is a :class:`VidbridgeError`. The class says what went wrong and
its ``retryable`` attribute says whether trying the same thing again may succeed::

    VidbridgeError
    ├── InvalidRequestError          bad input, refused before any network call   (not retryable)
    ├── PluginError                  a plugin failed to load or broke the contract (not retryable)
    ├── LedgerError                  the job ledger (SQLite) cannot be opened or read
    │                                (jobs never fail for it: they log a warning)  (not retryable)
    └── BackendError                 something about a backend (carries ``endpoint``)
        ├── TransportError           the exchange itself failed                    (retryable)
        │   ├── BackendConnectionError   cannot reach the server / connection lost (retryable)
        │   ├── TransientServerError     HTTP 5xx, queue full                      (retryable)
        │   └── RateLimitedError         HTTP 429, carries ``retry_after``         (retryable)
        ├── AuthenticationError      credentials missing or refused                (not retryable)
        ├── IncompatibleServerError  it answers, but is not a server this backend can
        │                            use (another app, endpoints missing)          (not retryable)
        ├── RejectedError            the backend refused the request (validation),
        │                            carries the backend's ``server_message``      (not retryable)
        ├── JobFailedError           the job ran and failed on the server          (not retryable)
        │   └── JobLostError         the server lost the job (e.g. it restarted);
        │                            ``output_possible`` says whether it may still
        │                            have produced output                          (not retryable)
        ├── JobCancelledError        the job was cancelled                         (not retryable)
        ├── JobTimeoutError          a deadline passed (also a ``TimeoutError``);  (retryable)
        │                            ``reason`` says which: "connect" (no session
        │                            in time), "request" (one exchange got no
        │                            answer), "deadline" (the job's own timeout
        │                            passed; ``server_cancelled``), "wait" (you
        │                            stopped waiting; the job runs on)
        ├── NotAttachableError       a job reference cannot be followed again,
        │                            ``reason`` says why                           (not retryable)
        └── IntegrityError           a download failed verification (size, SHA-256,
                                     container)                                    (retryable)

Retry policies test ``error.retryable`` (see :mod:`vidbridge.retry`), never lists of classes.
Messages never contain secrets: credentials are :class:`pydantic.SecretStr` and are not
formatted into any text.
"""

from __future__ import annotations

import builtins
from typing import Any

__all__ = [
    "VidbridgeError",
    "InvalidRequestError",
    "PluginError",
    "LedgerError",
    "BackendError",
    "TransportError",
    "BackendConnectionError",
    "TransientServerError",
    "RateLimitedError",
    "AuthenticationError",
    "RejectedError",
    "JobFailedError",
    "JobLostError",
    "JobCancelledError",
    "JobTimeoutError",
    "IncompatibleServerError",
    "IntegrityError",
    "NotAttachableError",
]


class VidbridgeError(Exception):
    """Root of every error vidbridge raises.

    ``retryable`` tells whether repeating the same operation may succeed.
    """

    retryable: bool = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready description: ``{"type": class name, "message": text, "retryable": bool}``."""
        return {"type": type(self).__name__, "message": self.message, "retryable": self.retryable}


class InvalidRequestError(VidbridgeError, ValueError):
    """The caller's input is invalid; raised before any network call.

    ``field`` names the offending input and ``allowed`` describes what would be accepted.
    Not retryable.
    """

    def __init__(self, message: str, *, field: str | None = None, allowed: str | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.allowed = allowed

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "field": self.field, "allowed": self.allowed}


class PluginError(VidbridgeError):
    """A plugin could not be loaded, or returned something that breaks the hook contract.

    ``plugin`` names the plugin. Not retryable.
    """

    def __init__(self, message: str, *, plugin: str | None = None) -> None:
        super().__init__(message)
        self.plugin = plugin


class LedgerError(VidbridgeError):
    """The job ledger cannot be opened, migrated or read (``path`` names the file).

    Raised by what reads the ledger (:meth:`Client.jobs`, :meth:`Client.resume`, ``vidbridge
    jobs``); a running job never fails for it: the ledger's write failures are logged as warnings
    and counted (``Ledger.failures``). Not retryable.
    """

    def __init__(self, message: str, *, path: str | None = None) -> None:
        super().__init__(message)
        self.path = path

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "path": self.path}


class BackendError(VidbridgeError):
    """Something went wrong talking to, or inside, a backend. ``endpoint`` is the server URL."""

    def __init__(self, message: str, *, endpoint: str | None = None) -> None:
        super().__init__(message)
        self.endpoint = endpoint

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "endpoint": self.endpoint}


class TransportError(BackendError):
    """The request/response exchange failed for a transient reason. Retryable."""

    retryable = True


class BackendConnectionError(TransportError):
    """The server cannot be reached, or the connection was lost mid-way. Retryable."""


class TransientServerError(TransportError):
    """The server answered with a transient failure (HTTP 5xx, queue full). Retryable.

    ``status_code`` is the HTTP status, if there was one. ``busy`` is true when the server said
    it is at capacity (its queue is full): it runs, and another session would be refused the
    same way until its work drains.
    """

    def __init__(self, message: str, *, endpoint: str | None = None, status_code: int | None = None,
                 busy: bool = False) -> None:
        super().__init__(message, endpoint=endpoint)
        self.status_code = status_code
        self.busy = busy


class RateLimitedError(TransportError):
    """The server asked us to slow down (HTTP 429). ``retry_after`` is in seconds, if given. Retryable."""

    def __init__(self, message: str, *, endpoint: str | None = None, retry_after: float | None = None) -> None:
        super().__init__(message, endpoint=endpoint)
        self.retry_after = retry_after


class AuthenticationError(BackendError):
    """Credentials are missing or were refused; ``reason`` says which credential. Not retryable."""

    def __init__(self, message: str, *, endpoint: str | None = None, reason: str | None = None) -> None:
        super().__init__(message, endpoint=endpoint)
        self.reason = reason

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "reason": self.reason}


class RejectedError(BackendError):
    """The backend refused the request (its own validation). Not retryable.

    ``server_message`` is the backend's text, verbatim.
    """

    def __init__(self, message: str, *, endpoint: str | None = None, server_message: str | None = None) -> None:
        super().__init__(message, endpoint=endpoint)
        self.server_message = server_message


class JobFailedError(BackendError):
    """The job ran on the backend and failed there. Not retryable (it would run again)."""


class JobLostError(JobFailedError):
    """The backend lost the job's work: its server restarted or dropped the task, and the task is
    no longer queued or running there.

    ``output_possible`` is the plugin's honest answer to "may this work still have produced (or
    still produce) an output?": ``False`` only when the plugin has proof that it did not (the
    restarted server no longer queues the task and holds no output of it). vidbridge submits a
    lost job again (once, as a second attempt of the same job) only when ``output_possible`` is
    False, so no video is generated twice. Not retryable as such.
    """

    def __init__(self, message: str, *, endpoint: str | None = None, output_possible: bool = True) -> None:
        super().__init__(message, endpoint=endpoint)
        self.output_possible = output_possible

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "output_possible": self.output_possible}


class JobCancelledError(BackendError):
    """The job was cancelled; ``server_stopped`` says whether the backend stopped the work. Not retryable."""

    def __init__(self, message: str, *, endpoint: str | None = None, server_stopped: bool | None = None) -> None:
        super().__init__(message, endpoint=endpoint)
        self.server_stopped = server_stopped


class JobTimeoutError(BackendError, builtins.TimeoutError):
    """A deadline passed. Also a :class:`TimeoutError`. Retryable: the backend may be slow.

    ``reason`` says which deadline (one of :attr:`REASONS`):

    * ``"connect"``: no session within the connect deadline (``connect_timeout`` per attempt,
      ``retry_attempts`` attempts). Nothing was submitted. The CLI reports it as a connection
      failure (exit 3).
    * ``"request"``: one exchange with the server (a read, an upload, a download) got no answer
      within its timeout. The default, for a plugin's own request timeouts.
    * ``"deadline"``: the job's own ``timeout`` passed. vidbridge asked the backend to cancel it;
      ``server_cancelled`` is True when the backend stopped the work, False when it could not or
      would not (it may still run and finish there), ``None`` when unknown.
    * ``"wait"``: the caller's wait (``job.wait(timeout)``, ``job.result(timeout)``,
      ``job.updates(timeout)``) ran out. The job is untouched and runs on: wait again, or cancel.

    ``server_cancelled`` is ``None`` for every reason but ``"deadline"``.
    """

    retryable = True
    REASONS = frozenset({"connect", "request", "deadline", "wait"})

    def __init__(self, message: str, *, endpoint: str | None = None, reason: str = "request",
                 server_cancelled: bool | None = None) -> None:
        if reason not in self.REASONS:
            raise ValueError(f"JobTimeoutError reason {reason!r} is not one of {sorted(self.REASONS)}")
        super().__init__(message, endpoint=endpoint)
        self.reason = reason
        self.server_cancelled = server_cancelled if reason == "deadline" else None

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "reason": self.reason, "server_cancelled": self.server_cancelled}


class IncompatibleServerError(BackendError):
    """The server answers, but it is not one this backend can use: another application, or a
    version without the endpoints a job needs. Raised at connect, before anything is submitted.

    ``missing`` lists what the backend looked for and did not find (may be empty). Not
    retryable: asking again gets the same answer. The CLI reports it as a connection failure
    (exit 3).
    """

    def __init__(self, message: str, *, endpoint: str | None = None, missing: tuple[str, ...] = ()) -> None:
        super().__init__(message, endpoint=endpoint)
        self.missing = tuple(missing)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "missing": list(self.missing)}


class IntegrityError(BackendError):
    """A downloaded artifact failed verification (size, SHA-256 or container). Retryable."""

    retryable = True


class NotAttachableError(BackendError):
    """A job reference (``job.ref``) cannot be followed again through this backend or endpoint.

    ``reason`` is a short machine-readable word: ``"unsupported"`` (the plugin cannot re-attach
    at all), ``"session_bound"`` (the work belongs to a client session that is gone, e.g. a task
    queued in a WanGP web-UI gradio session), ``"unknown"`` (the backend no longer knows the job),
    ``"mismatch"`` (the reference names another backend or endpoint), ``"invalid"`` (malformed).
    Not retryable.
    """

    def __init__(self, message: str, *, endpoint: str | None = None, reason: str = "unsupported") -> None:
        super().__init__(message, endpoint=endpoint)
        self.reason = reason

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "reason": self.reason}
