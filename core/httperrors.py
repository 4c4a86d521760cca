"""Translate httpx failures into the vidbridge error tree.

Our own HTTP calls (downloads, probes) go through httpx; this module is the one place that
decides what an httpx exception or a non-2xx response *means* to a vidbridge caller::

    httpx.TimeoutException                    -> JobTimeoutError          (retryable)
    httpx.NetworkError, RemoteProtocolError,
    ProxyError                                -> BackendConnectionError   (retryable)
    HTTP 429                                  -> RateLimitedError         (retryable, retry_after)
    HTTP 500, 502, 503, 504                   -> TransientServerError     (retryable)
    HTTP 401, 403                             -> AuthenticationError
    any other status or httpx error           -> BackendError

Messages name the action and the server ("downloading video.mp4 from http://127.0.0.1:7860:
HTTP 503") and never include header values, cookies, user info or query strings, which may carry
tokens: every URL printed goes through :func:`redact_url`.
"""

from __future__ import annotations

import email.utils
import math
import re
import time
from datetime import timezone
from urllib.parse import urlsplit, urlunsplit

import httpx

from .errors import (
    AuthenticationError,
    BackendConnectionError,
    BackendError,
    JobTimeoutError,
    RateLimitedError,
    TransientServerError,
    VidbridgeError,
)

__all__ = ["translate_http_error", "raise_for_status", "retry_after_seconds", "redact_url"]

#: Statuses that mean "the server is having a moment": repeating the same request may work.
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})

_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")


def redact_url(url: str | httpx.URL, *, origin_only: bool = False) -> str:
    """``url`` without user info, query string or fragment: the parts that may carry secrets.

    :param origin_only: keep only ``scheme://host:port`` (a file's path may be a capability too).
    """
    try:
        parts = urlsplit(str(url))
    except ValueError:  # not parseable as a URL (e.g. a bad IPv6 literal): print nothing of it
        return "<unparseable URL>"
    netloc = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, netloc, "" if origin_only else parts.path, "", ""))


def _redact_text(text: str) -> str:
    # httpx puts the request URL, query included, into some of its messages.
    return _URL_IN_TEXT.sub(lambda match: redact_url(match.group(0)), text)


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header value, or ``None`` if absent or unusable.

    Accepts both forms of RFC 9110: a number of seconds (``"120"``) and an HTTP-date
    (``"Wed, 21 Oct 2015 07:28:00 GMT"``); a date in the past means 0.

    :param now: the current POSIX time, for tests (default: :func:`time.time`).
    """
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return seconds if math.isfinite(seconds) and seconds >= 0 else None
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:  # pragma: no cover - Python < 3.10 returned None instead of raising
        return None
    if when.tzinfo is None:  # "-0000" means UTC with unknown local zone
        when = when.replace(tzinfo=timezone.utc)
    current = time.time() if now is None else now
    return max(0.0, when.timestamp() - current)


def _server(endpoint: str | None, request: httpx.Request | None) -> str:
    if endpoint:
        return redact_url(endpoint)
    if request is not None:
        return redact_url(request.url, origin_only=True)
    return "the server"


def _request_of(source: BaseException | httpx.Response) -> httpx.Request | None:
    try:
        return source.request  # type: ignore[union-attr]
    except (AttributeError, RuntimeError):  # httpx raises RuntimeError when no request is attached
        return None


def _status_error(response: httpx.Response, *, endpoint: str | None, action: str) -> VidbridgeError:
    status = response.status_code
    server = _server(endpoint, _request_of(response))
    where = redact_url(endpoint) if endpoint else None
    message = f"{action} from {server}: HTTP {status}"
    if status == 429:
        retry_after = retry_after_seconds(response.headers.get("Retry-After"))
        if retry_after is not None:
            message += f" (retry after {retry_after:g}s)"
        return RateLimitedError(message, endpoint=where, retry_after=retry_after)
    if status in TRANSIENT_STATUSES:
        return TransientServerError(message, endpoint=where, status_code=status)
    if status in (401, 403):
        return AuthenticationError(message + " (credentials missing or refused)", endpoint=where)
    return BackendError(message, endpoint=where)


def translate_http_error(exc: BaseException, *, endpoint: str | None, action: str) -> VidbridgeError:
    """The :class:`~vidbridge.VidbridgeError` that explains ``exc``; raise it ``from exc``.

    :param exc: an httpx exception (a :class:`vidbridge.VidbridgeError` is returned unchanged).
    :param endpoint: the server's base URL, shown in the message and set as ``error.endpoint``
        (user info and query are removed); ``None`` to take it from the failed request.
    :param action: what was being done, e.g. ``"downloading video.mp4"``.
    """
    if isinstance(exc, VidbridgeError):
        return exc
    if isinstance(exc, httpx.HTTPStatusError):
        return _status_error(exc.response, endpoint=endpoint, action=action)
    server = _server(endpoint, _request_of(exc))
    where = redact_url(endpoint) if endpoint else None
    detail = _redact_text(str(exc)) or "no details"
    kind = type(exc).__name__
    # Timeouts first: httpx.ConnectTimeout is a TimeoutException, not a NetworkError.
    if isinstance(exc, httpx.TimeoutException):
        return JobTimeoutError(f"{action} from {server}: timed out ({kind}: {detail})", endpoint=where)
    if isinstance(exc, (httpx.NetworkError, httpx.RemoteProtocolError, httpx.ProxyError)):
        return BackendConnectionError(f"{action} from {server}: connection failed ({kind}: {detail})", endpoint=where)
    return BackendError(f"{action} from {server}: {kind}: {detail}", endpoint=where)


def raise_for_status(response: httpx.Response, *, endpoint: str | None, action: str) -> httpx.Response:
    """Return ``response`` if its status is 2xx, else raise the matching vidbridge error.

    The mapping is :func:`translate_http_error`'s. Redirects count as errors: callers that want
    them followed configure their client to follow them.
    """
    if response.is_success:
        return response
    raise _status_error(response, endpoint=endpoint, action=action)
