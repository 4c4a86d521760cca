"""The retry policy: only retryable errors, Retry-After honoured, time injected."""

from __future__ import annotations

import math
import threading

import pytest

from vidbridge import errors
from vidbridge.retry import Deadline, call_with_retry, is_retryable, retrying


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


# -------------------------------------------------------------------------------------------------
# attempts=N means exactly N attempts; one deadline; stop signal
# -------------------------------------------------------------------------------------------------


class FakeClock:
    """A monotonic clock that moves only when the policy sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class FakeSignal:
    """A stop signal that gets set during the ``wait_number``-th back-off (recording the waits)."""

    def __init__(self, set_on_wait: int | None = None) -> None:
        self.set_on_wait = set_on_wait
        self.waits: list[float] = []
        self.flag = False

    def is_set(self) -> bool:
        return self.flag

    def wait(self, timeout: float | None = None) -> bool:
        self.waits.append(timeout)
        if self.set_on_wait is not None and len(self.waits) >= self.set_on_wait:
            self.flag = True
        return self.flag


def always_failing(calls: list[int]):
    def function() -> None:
        calls.append(1)
        raise errors.BackendConnectionError(f"attempt {len(calls)}")

    return function


@pytest.mark.parametrize("attempts", [1, 2, 3, 4, 7])
def test_attempts_means_exactly_that_many_calls(attempts):
    calls: list[int] = []
    sleeps: list[float] = []
    with pytest.raises(errors.BackendConnectionError, match=f"attempt {attempts}$"):
        retrying(attempts=attempts, sleep=sleeps.append)(always_failing(calls))
    assert len(calls) == attempts and len(sleeps) == attempts - 1


@pytest.mark.parametrize("attempts", [1, 3])
def test_attempts_in_the_iterator_form(attempts):
    calls: list[int] = []
    with pytest.raises(errors.BackendConnectionError):
        for attempt in retrying(attempts=attempts, sleep=lambda _: None):
            with attempt:
                always_failing(calls)()
    assert len(calls) == attempts


def test_zero_or_negative_attempts_still_try_once():
    calls: list[int] = []
    with pytest.raises(errors.BackendConnectionError):
        retrying(attempts=0, sleep=lambda _: None)(always_failing(calls))
    assert len(calls) == 1


def test_no_attempt_starts_after_the_deadline():
    # Retry-After 3 s each time, a 7 s budget: attempts at 0, 3 and 6; the next would start at 9
    clock = FakeClock()
    calls: list[float] = []

    def limited() -> None:
        calls.append(clock.now)
        raise errors.RateLimitedError("429", retry_after=3.0)

    with pytest.raises(errors.RateLimitedError):
        retrying(attempts=10, deadline=Deadline.after(7.0, clock=clock), sleep=clock.sleep)(limited)
    assert [at - 100.0 for at in calls] == [0.0, 3.0, 6.0]
    assert clock.sleeps == [3.0, 3.0]  # the third back-off would end past the deadline: not waited


def test_an_expired_deadline_allows_only_the_first_attempt():
    calls: list[int] = []
    with pytest.raises(errors.BackendConnectionError):
        retrying(attempts=5, deadline=0.0, sleep=lambda _: None)(always_failing(calls))
    assert len(calls) == 1


def test_max_delay_is_still_accepted():
    calls: list[int] = []
    with pytest.raises(errors.BackendConnectionError):
        retrying(attempts=5, max_delay=0.0, sleep=lambda _: None)(always_failing(calls))
    assert len(calls) == 1


def test_contradictory_options_are_refused():
    with pytest.raises(TypeError, match="deadline or max_delay"):
        retrying(deadline=1.0, max_delay=1.0)
    with pytest.raises(TypeError, match="stop_event"):
        retrying(stop_event=threading.Event(), sleep=lambda _: None)


def test_a_stop_signal_set_during_the_back_off_ends_it_with_the_callers_error():
    calls: list[int] = []
    signal = FakeSignal(set_on_wait=2)
    stopped = errors.JobCancelledError("cancelled while retrying")
    with pytest.raises(errors.JobCancelledError) as caught:
        retrying(attempts=9, stop_event=signal, on_stop=lambda last: stopped)(always_failing(calls))
    assert caught.value is stopped
    assert isinstance(caught.value.__cause__, errors.BackendConnectionError)  # what was being retried
    assert str(caught.value.__cause__) == "attempt 2"
    assert len(calls) == 2 and len(signal.waits) == 2  # the back-off was the signal's wait


def test_a_stop_signal_in_the_iterator_form():
    calls: list[int] = []
    signal = FakeSignal(set_on_wait=1)
    with pytest.raises(errors.JobCancelledError, match="closed") as caught:
        for attempt in retrying(attempts=9, stop_event=signal, on_stop=lambda last: errors.JobCancelledError("closed")):
            with attempt:
                always_failing(calls)()
    assert len(calls) == 1 and str(caught.value.__cause__) == "attempt 1"


def test_a_stop_signal_set_during_an_attempt_prevents_the_next_one():
    calls: list[int] = []
    event = threading.Event()

    def cancelled_meanwhile() -> None:
        calls.append(1)
        event.set()  # e.g. Job.cancel() on another thread while this request was on the wire
        raise errors.TransientServerError("503", status_code=503)

    with pytest.raises(errors.JobCancelledError):
        retrying(attempts=5, stop_event=event, on_stop=lambda last: errors.JobCancelledError("c"))(cancelled_meanwhile)
    assert len(calls) == 1


@pytest.mark.parametrize("set_on_wait", [None, 1])
def test_without_on_stop_the_last_error_is_raised(set_on_wait):
    calls: list[int] = []
    signal = FakeSignal(set_on_wait=set_on_wait)
    if set_on_wait is None:
        signal.flag = True  # already set when the first attempt fails
    with pytest.raises(errors.BackendConnectionError, match="attempt 1$"):
        retrying(attempts=5, stop_event=signal)(always_failing(calls))
    assert len(calls) == 1


def test_an_unset_signal_waits_out_the_back_off_and_retries():
    signal = FakeSignal()
    function = Flaky(errors.BackendConnectionError("once"))
    assert retrying(attempts=3, stop_event=signal)(function) == "ok"
    assert function.calls == 2 and len(signal.waits) == 1


def test_setting_a_real_event_ends_a_long_back_off_at_once():
    waiting = threading.Event()

    class Signal(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            waiting.set()
            return super().wait(timeout)

    signal = Signal()
    setter = threading.Thread(target=lambda: (waiting.wait(), signal.set()))
    setter.start()
    # an hour's Retry-After: only the event can end this wait before the test times out
    function = Flaky(errors.RateLimitedError("429", retry_after=3600.0))
    with pytest.raises(errors.JobCancelledError):
        retrying(attempts=2, max_wait=3600.0, stop_event=signal,
                 on_stop=lambda last: errors.JobCancelledError("stopped"))(function)
    setter.join()
    assert function.calls == 1


def test_wrapped_functions_keep_the_stop_behaviour():
    calls: list[int] = []
    signal = FakeSignal(set_on_wait=1)
    wrapped = retrying(attempts=4, stop_event=signal, on_stop=lambda last: errors.JobCancelledError("w")).wraps(
        always_failing(calls))
    with pytest.raises(errors.JobCancelledError, match="w"):
        wrapped()
    assert len(calls) == 1


def test_deadline_value():
    clock = FakeClock()
    deadline = Deadline.after(5.0, clock=clock)
    assert deadline.remaining() == 5.0 and not deadline.expired and deadline.at == 105.0
    assert deadline.cap(2.0) == 2.0 and deadline.cap(9.0) == 5.0 and deadline.cap(None) == 5.0
    assert repr(deadline) == "<Deadline in 5.000 s>"
    clock.now += 5.0
    assert deadline.expired and deadline.remaining() == 0.0 and deadline.cap(3.0) == 0.0
    assert Deadline.after(-1.0, clock=clock).expired
    for never in (Deadline.never(), Deadline.after(None), Deadline.after(math.inf)):
        assert not never.expired and never.remaining() == math.inf and never.at is None
        assert never.cap(None) is None and never.cap(4.0) == 4.0 and repr(never) == "<Deadline never>"


def test_connect_options_deadlines():
    from vidbridge.context import ConnectOptions

    options = ConnectOptions(connect_timeout=2.0, request_timeout=3.0, retry_attempts=4)
    assert 7.0 < options.connect_deadline().remaining() <= 8.0  # 2 s x 4 attempts
    assert 11.0 < options.request_deadline().remaining() <= 12.0
    assert 1.0 < ConnectOptions(connect_timeout=2.0, retry_attempts=0).connect_deadline().remaining() <= 2.0
