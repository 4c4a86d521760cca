"""Helpers for plugin authors: the one documented namespace a backend plugin imports besides ``vidbridge``.

A plugin imports the contract's types from :mod:`vidbridge` (errors, models, options, ``hookimpl``)
and the tools below from here, never from the core's implementation modules (``vidbridge.retry``,
``vidbridge.httperrors``...), whose layout may change between releases. The host API
(``Client``, ``Session``, ``Job``) is for hosts; plugins do not need it.

**Retrying**

- :func:`retrying` -- a :class:`tenacity.Retrying` that repeats only errors whose ``retryable`` is
  true, honours ``RateLimitedError.retry_after`` and backs off with jitter. Wrap only operations
  that are safe to repeat (a submit that may have reached the server never is)::

      for attempt in vidbridge.backend.retrying(attempts=options.retry_attempts):
          with attempt:
              answer = read_something()

  ``retrying(attempts=N)`` makes exactly N attempts; ``deadline=`` bounds the whole operation and
  ``stop_event=`` (a job's cancel event) ends the back-off at once.
- :class:`Deadline` -- one budget per operation (``Deadline.after(seconds)``, ``.remaining()``,
  ``.expired``, ``.cap(timeout)``); ``ConnectOptions.connect_deadline()`` and
  ``request_deadline()`` build the standard ones. :class:`StopSignal` is what ``stop_event`` must offer.
- :func:`call_with_retry`, :func:`is_retryable` -- the same policy for one callable; the predicate.

**HTTP errors and URLs**

- :func:`translate_http_error` -- an httpx exception (or a non-2xx response wrapped in
  :class:`httpx.HTTPStatusError`) as the matching :class:`vidbridge.VidbridgeError`: 429 with
  ``retry_after``, 5xx transient, 401/403 authentication, timeouts, network errors.
- :func:`raise_for_status` -- raise that error for a non-2xx :class:`httpx.Response`.
- :func:`retry_after_seconds` -- a ``Retry-After`` header value in seconds.
- :func:`redact_url` -- a URL without user info, query or fragment: use it for every URL a
  message, log line or ``error.endpoint`` shows.

**Downloads**

- :func:`download_verified` -- streamed to a temporary file in the destination, size/SHA-256/
  container checked, renamed atomically under a sanitised name, with a sidecar manifest.
- :func:`check_stream` -- the same container check on any seekable binary stream, e.g. a reader
  of byte ranges of a file still on the server (is an output whole, before downloading it?).

**Secrets in logs**

- :func:`register_secrets` -- values (cookies a login returned, keys) hidden from every log line
  while ``owner`` lives.
"""

from __future__ import annotations

from .containers import check_stream
from .download import download_verified
from .httperrors import raise_for_status, redact_url, retry_after_seconds, translate_http_error
from .redaction import register_secrets
from .retry import Deadline, StopSignal, call_with_retry, is_retryable, retrying

__all__ = [
    "Deadline",
    "StopSignal",
    "call_with_retry",
    "check_stream",
    "download_verified",
    "is_retryable",
    "raise_for_status",
    "redact_url",
    "register_secrets",
    "retry_after_seconds",
    "retrying",
    "translate_http_error",
]
