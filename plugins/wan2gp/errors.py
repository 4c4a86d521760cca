"""Translate what gradio_client and httpx raise into the vidbridge error tree.

gradio_client reports very different failures with few types (an app error, a crash and a lost
connection can all surface as ``AppError`` or ``CancelledError``), so every translation names the
server and the *step* of WanGP's multi-call flow that failed. httpx failures go through the core's
:func:`vidbridge.httperrors.translate_http_error`, the single HTTP mapping of the project.
"""

from __future__ import annotations

import concurrent.futures
import re

import httpx

from vidbridge.backend import redact_url, translate_http_error
from vidbridge import (
    AuthenticationError,
    BackendConnectionError,
    BackendError,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    RateLimitedError,
    TransientServerError,
    VidbridgeError,
)

from .compat import AppError, GradioAuthenticationError, QueueError, TooManyRequestsError

__all__ = ["translate", "OPAQUE_MARKER", "cancelled"]

#: gradio's text for an exception it does not show (``show_error=False``, WanGP's setting).
OPAQUE_MARKER = "upstream Gradio app has raised an exception"

# Reveals nothing that should not be printed: gradio_client messages never contain our secrets,
# but URLs may carry userinfo; strip it defensively.
_USERINFO = re.compile(r"(https?://)[^/@\s]+@")


def _clean(text: str) -> str:
    return _USERINFO.sub(r"\1", text)


def translate(exc: BaseException, *, endpoint: str, step: str) -> VidbridgeError:
    """A :class:`~vidbridge.VidbridgeError` for ``exc`` raised while doing ``step`` on ``endpoint``.

    :param endpoint: the server's URL; printed and set as ``error.endpoint`` without user info
        or query (:func:`vidbridge.httperrors.redact_url`).
    :param step: what we were doing, in words ("saving the form (save_inputs)").
    """
    if isinstance(exc, VidbridgeError):
        return exc
    endpoint = redact_url(endpoint)
    where = f"{endpoint}: {step}"
    if isinstance(exc, GradioAuthenticationError):
        return AuthenticationError(
            f"{where}: the server requires a login and no username/password was given",
            endpoint=endpoint,
            reason="missing",
        )
    if isinstance(exc, ValueError) and str(exc).startswith("Could not login"):
        return AuthenticationError(
            f"{where}: the server refused the username/password", endpoint=endpoint, reason="refused"
        )
    if isinstance(exc, TooManyRequestsError):
        return RateLimitedError(f"{where}: the server is rate limiting requests (HTTP 429)", endpoint=endpoint)
    if isinstance(exc, QueueError):
        return TransientServerError(f"{where}: the server's queue is full ({_clean(str(exc))})", endpoint=endpoint,
                                    status_code=503, busy=True)
    if isinstance(exc, httpx.HTTPError):
        # Our own and gradio_client's httpx failures: the core's one mapping (429 + Retry-After,
        # 5xx, 401/403, timeouts, network errors), with URLs redacted.
        return translate_http_error(exc, endpoint=endpoint, action=step)
    if isinstance(exc, ConnectionError):
        return BackendConnectionError(f"{where}: cannot reach the server ({type(exc).__name__}: {_clean(str(exc))})",
                                      endpoint=endpoint)
    if isinstance(exc, concurrent.futures.CancelledError):
        # gradio_client cancels the job's future when the event stream is lost (server killed).
        return BackendConnectionError(f"{where}: the connection to the server was lost", endpoint=endpoint)
    if isinstance(exc, (TimeoutError, concurrent.futures.TimeoutError)):
        return JobTimeoutError(f"{where}: no answer in time", endpoint=endpoint)
    if isinstance(exc, AppError):
        text = _clean(str(exc))
        if OPAQUE_MARKER in text:
            return JobFailedError(
                f"{where}: the server raised an error it does not describe (WanGP hides exception "
                "details; its console shows the traceback)", endpoint=endpoint)
        return JobFailedError(f"{where}: {text}", endpoint=endpoint)
    return BackendError(f"{where}: {type(exc).__name__}: {_clean(str(exc))}", endpoint=endpoint)


def cancelled(endpoint: str, server_stopped: bool) -> JobCancelledError:
    """The error of a job that ended because it was cancelled."""
    how = "the server stopped it" if server_stopped else "only the client stopped waiting"
    endpoint = redact_url(endpoint)
    return JobCancelledError(f"{endpoint}: job cancelled ({how})", endpoint=endpoint, server_stopped=server_stopped)
