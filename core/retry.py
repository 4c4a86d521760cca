"""Retry policies built on tenacity, and the one deadline value every operation uses.

There is one retry layer: whoever retries an operation does it with :func:`retrying`, and nothing
below or above it retries the same operation again (the core retries ``vidbridge_connect``;
plugins make one attempt per call of that hook). ``attempts=N`` means exactly N attempts.

A policy

* retries only errors whose ``retryable`` attribute is true (see :mod:`vidbridge.errors`);
* honours ``RateLimitedError.retry_after`` and otherwise backs off exponentially with jitter;
* stops at its :class:`Deadline`: no attempt starts after it, and a back-off that would end past
  it is not waited for (the last error is raised instead);
* is interrupted by a stop signal (any object with ``wait(seconds) -> bool`` and ``is_set()``,
  such as :class:`threading.Event`): the back-off is ``stop_event.wait(seconds)``, so setting the
  event (cancel, close) ends it at once, and no further attempt starts.

Callers decide *whether* an operation is safe to repeat; a submit that may have reached the
server is never wrapped in a retry.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from typing import Callable, Protocol, TypeVar

import tenacity

from .errors import RateLimitedError, VidbridgeError

__all__ = ["retrying", "is_retryable", "call_with_retry", "Deadline", "StopSignal"]

log = logging.getLogger("vidbridge.retry")
T = TypeVar("T")


class StopSignal(Protocol):
    """What a policy's ``stop_event`` must offer (:class:`threading.Event` does)."""

    def is_set(self) -> bool:
        """True once stopping was asked for."""

    def wait(self, timeout: float | None = None) -> bool:
        """Block up to ``timeout`` seconds; True as soon as the signal is set."""


class Deadline:
    """The moment an operation must be over by, on a monotonic clock (never wall-clock time).

    ``Deadline.after(seconds)`` starts it; ``Deadline.after(None)`` (or :meth:`never`) never
    expires. Immutable and cheap: hand the same value to every step of one operation so they share
    one budget instead of each starting its own.
    """

    __slots__ = ("_at", "_clock")

    def __init__(self, at: float | None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._at = at
        self._clock = clock

    @classmethod
    def after(cls, seconds: float | None, *, clock: Callable[[], float] = time.monotonic) -> Deadline:
        """A deadline ``seconds`` from now (negative counts as 0; ``None`` or infinity: never)."""
        if seconds is None or math.isinf(seconds):
            return cls(None, clock=clock)
        return cls(clock() + max(0.0, seconds), clock=clock)

    @classmethod
    def never(cls) -> Deadline:
        """A deadline that never expires."""
        return cls(None)

    @property
    def at(self) -> float | None:
        """The clock reading it expires at (``None``: never)."""
        return self._at

    def remaining(self) -> float:
        """Seconds left, at least 0 (``math.inf`` for a deadline that never expires)."""
        if self._at is None:
            return math.inf
        return max(0.0, self._at - self._clock())

    @property
    def expired(self) -> bool:
        """True once the deadline has passed."""
        return self._at is not None and self._clock() >= self._at

    def cap(self, seconds: float | None) -> float | None:
        """``seconds`` shortened to what is left (a per-request timeout within the operation's
        budget); ``None`` stays ``None`` for a deadline that never expires."""
        left = self.remaining()
        if seconds is None:
            return None if math.isinf(left) else left
        return min(seconds, left)

    def __repr__(self) -> str:
        return "<Deadline never>" if self._at is None else f"<Deadline in {self.remaining():.3f} s>"


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


class _Stopped(BaseException):
    """Internal: the stop signal was set during a back-off; :class:`_Policy` replaces it."""


class _Policy(tenacity.Retrying):
    """:class:`tenacity.Retrying` whose interrupted back-off ends in the caller's error.

    The back-off sleep raises :class:`_Stopped` when the stop signal is set; tenacity lets it
    through, and this class raises ``stopped()`` instead (the caller's error, or the last one).
    """

    def __init__(self, *, stopped: Callable[[], BaseException] | None = None, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self._stopped = stopped  # None only inside copy(), which sets it

    def copy(self, *args: object, **kwargs: object) -> _Policy:  # tenacity.wraps() copies the policy
        policy = super().copy(*args, **kwargs)  # type: ignore[arg-type]
        policy._stopped = self._stopped
        return policy

    def __iter__(self):  # type: ignore[no-untyped-def]
        try:
            yield from super().__iter__()
        except _Stopped:
            assert self._stopped is not None
            error = self._stopped()
            raise error from error.__cause__  # not from _Stopped, which means nothing to callers

    def __call__(self, fn, *args, **kwargs):  # type: ignore[no-untyped-def]
        try:
            return super().__call__(fn, *args, **kwargs)
        except _Stopped:
            assert self._stopped is not None
            error = self._stopped()
        raise error from error.__cause__


def retrying(
    *,
    attempts: int = 4,
    deadline: Deadline | float | None = None,
    max_delay: float | None = None,
    max_wait: float = 5.0,
    stop_event: StopSignal | None = None,
    on_stop: Callable[[BaseException], BaseException] | None = None,
    sleep: Callable[[float], object] | None = None,
) -> tenacity.Retrying:
    """A :class:`tenacity.Retrying` for transient vidbridge errors (see the module docstring).

    Use it as a decorator/caller (``retrying(...)(function, *args)``) or as an iterator
    (``for attempt in retrying(...): with attempt: ...``). Make a new policy per operation.

    :param attempts: attempts in total, exactly (1 = no retry; values below 1 count as 1).
    :param deadline: the operation's :class:`Deadline`, or seconds from now. No attempt starts
        after it and no back-off is waited for that would end past it.
    :param max_delay: older spelling of ``deadline`` in seconds, counted from the first attempt.
    :param max_wait: longest back-off between attempts (a server's Retry-After may ask for up to
        4x).
    :param stop_event: a stop signal (e.g. a job's cancel event, a session's close event). The
        back-off is ``stop_event.wait(seconds)``: once it is set the policy makes no further
        attempt. The first attempt always runs: check the signal yourself before starting.
    :param on_stop: ``on_stop(last_error)`` returns the error to raise when ``stop_event`` ended
        the retries (e.g. a :class:`~vidbridge.errors.JobCancelledError`); by default the last
        attempt's error is raised.
    :param sleep: the back-off sleep when there is no ``stop_event`` (injectable for tests);
        with one, give a fake stop signal instead.
    :raises: the last attempt's error when attempts or time run out (never a tenacity type).
    """
    if deadline is not None and max_delay is not None:
        raise TypeError("give either deadline or max_delay, not both")
    if stop_event is not None and sleep is not None:
        raise TypeError("with a stop_event the back-off is stop_event.wait(); do not also give sleep")
    stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(max(1, attempts))
    if max_delay is not None:
        stop = stop | tenacity.stop_before_delay(max_delay)
    if deadline is not None:
        budget = deadline if isinstance(deadline, Deadline) else Deadline.after(deadline)
        # stop when no attempt could start before the deadline: it passed, or the back-off ends after it
        stop = stop | (lambda state: budget.expired or state.upcoming_sleep >= budget.remaining())
    if stop_event is not None:
        signal = stop_event
        stop = stop | (lambda state: signal.is_set())

        def pause(seconds: float) -> None:
            if signal.wait(seconds):
                raise _Stopped()

    else:
        pause = sleep or time.sleep  # type: ignore[assignment]

    last = threading.local()  # the failed attempt a stopped back-off follows, per thread

    def before_sleep(state: tenacity.RetryCallState) -> None:
        error = last.error = state.outcome.exception() if state.outcome else None
        log.debug("attempt %d of %d failed (%s: %s); retrying in %.2f s", state.attempt_number, max(1, attempts),
                  type(error).__name__, error, state.upcoming_sleep)

    def stop_error(error: BaseException) -> BaseException:
        return on_stop(error) if on_stop is not None else error

    def after_stop(state: tenacity.RetryCallState) -> object:
        # tenacity's stop fired: raise the last error itself (as reraise=True would), or the
        # caller's error when the stop signal ended the retries
        assert state.outcome is not None
        error = state.outcome.exception()
        assert error is not None
        if stop_event is not None and stop_event.is_set():
            replacement = stop_error(error)
            if replacement is not error:
                raise replacement from error
        raise error

    def interrupted() -> BaseException:
        # the signal was set during the back-off that followed a failed attempt
        error = last.error
        replacement = stop_error(error)
        if replacement is not error:
            replacement.__cause__ = error
        return replacement

    return _Policy(
        stopped=interrupted,
        retry=tenacity.retry_if_exception(is_retryable),
        stop=stop,
        wait=_wait(max_wait),
        sleep=pause,
        reraise=True,
        before_sleep=before_sleep,
        retry_error_callback=after_stop,
    )


def call_with_retry(function: Callable[[], T], **policy: object) -> T:
    """Call ``function`` under :func:`retrying` (keyword arguments are the policy's)."""
    return retrying(**policy)(function)  # type: ignore[arg-type]
