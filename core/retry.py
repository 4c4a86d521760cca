"""Retry policies built on tenacity.

One policy retries only errors whose ``retryable`` attribute is true (see :mod:`vidbridge.errors`),
honours ``RateLimitedError.retry_after`` and otherwise backs off exponentially with jitter.
Callers decide *whether* an operation is safe to repeat; a submit that may have reached the
server is never wrapped in a retry.
"""

from __future__ import annotations

import logging
import random
import time
from typing import Callable, TypeVar

import tenacity

from .errors import RateLimitedError, VidbridgeError

__all__ = ["retrying", "is_retryable", "call_with_retry"]

log = logging.getLogger("vidbridge.retry")
T = TypeVar("T")


def is_retryable(error: BaseException) -> bool:
    """True for vidbridge errors marked retryable."""
    return isinstance(error, VidbridgeError) and error.retryable


def _wait(max_wait: float) -> Callable[[tenacity.RetryCallState], float]:
    def wait(state: tenacity.RetryCallState) -> float:
        error = state.outcome.exception() if state.outcome else None
        if isinstance(error, RateLimitedError) and error.retry_after is not None:
            return min(max(error.retry_after, 0.0), max_wait * 4)
        # exponential back-off with jitter, so many clients do not retry in lock-step
        return min(max_wait, 0.2 * 2 ** (state.attempt_number - 1)) + random.uniform(0, 0.2)

    return wait


def retrying(
    *,
    attempts: int = 4,
    max_delay: float = 60.0,
    max_wait: float = 5.0,
    sleep: Callable[[float], None] = time.sleep,
) -> tenacity.Retrying:
    """A :class:`tenacity.Retrying` for transient vidbridge errors.

    :param attempts: tries in total (1 = no retry).
    :param max_delay: stop retrying after this many seconds overall.
    :param max_wait: longest back-off between tries (a server's Retry-After may ask for up to 4x).
    :param sleep: injectable for tests.
    """
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(is_retryable),
        stop=tenacity.stop_after_attempt(max(1, attempts)) | tenacity.stop_after_delay(max_delay),
        wait=_wait(max_wait),
        sleep=sleep,
        reraise=True,
        before_sleep=tenacity.before_sleep_log(log, logging.DEBUG),
    )


def call_with_retry(function: Callable[[], T], **policy: object) -> T:
    """Call ``function`` under :func:`retrying` (keyword arguments are the policy's)."""
    return retrying(**policy)(function)  # type: ignore[arg-type]
