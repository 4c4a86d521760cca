"""The retry policy: only retryable errors, Retry-After honoured, time injected."""

from __future__ import annotations

import pytest

from vidbridge import errors
from vidbridge.retry import call_with_retry, is_retryable, retrying


class Flaky:
    """Raises the given errors in turn, then returns "ok"."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "ok"


def test_retry_after_is_honoured():
    sleeps: list[float] = []
    function = Flaky(errors.RateLimitedError("429", retry_after=7.0), errors.RateLimitedError("429", retry_after=0.5))
    assert retrying(attempts=4, max_wait=5.0, sleep=sleeps.append)(function) == "ok"
    assert sleeps == [7.0, 0.5]
    assert function.calls == 3


def test_retry_after_is_capped():
    sleeps: list[float] = []
    retrying(attempts=2, max_wait=1.0, sleep=sleeps.append)(Flaky(errors.RateLimitedError("429", retry_after=3600)))
    assert sleeps == [4.0]


def test_transient_errors_back_off_with_bounded_waits():
    sleeps: list[float] = []
    function = Flaky(errors.BackendConnectionError("refused"), errors.TransientServerError("503", status_code=503))
    assert call_with_retry(function, attempts=3, max_wait=2.0, sleep=sleeps.append) == "ok"
    assert len(sleeps) == 2
    assert all(0 < delay <= 2.0 for delay in sleeps)


@pytest.mark.parametrize(
    "error",
    [
        errors.InvalidRequestError("bad", field="frames"),
        errors.AuthenticationError("refused"),
        errors.RejectedError("no"),
        errors.JobFailedError("oom"),
        errors.PluginError("bug"),
        ValueError("not ours"),
    ],
)
def test_non_retryable_errors_are_raised_at_once(error):
    sleeps: list[float] = []
    function = Flaky(error)
    with pytest.raises(type(error)):
        retrying(attempts=5, sleep=sleeps.append)(function)
    assert function.calls == 1
    assert sleeps == []


def test_gives_up_after_the_attempts_with_the_last_error():
    sleeps: list[float] = []
    last = errors.BackendConnectionError("third")
    function = Flaky(errors.BackendConnectionError("first"), errors.BackendConnectionError("second"), last)
    with pytest.raises(errors.BackendConnectionError) as caught:
        retrying(attempts=3, sleep=sleeps.append)(function)
    assert caught.value is last
    assert function.calls == 3 and len(sleeps) == 2


def test_is_retryable():
    assert is_retryable(errors.IntegrityError("sha mismatch"))
    assert is_retryable(errors.JobTimeoutError("slow"))
    assert not is_retryable(errors.JobCancelledError("stopped"))
    assert not is_retryable(TimeoutError("not a vidbridge error"))
