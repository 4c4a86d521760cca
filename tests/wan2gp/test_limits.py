"""The per-session limiter and its settings and the HTTP error mapping shared with the core."""

from __future__ import annotations

import httpx
import pytest

from vidbridge import BackendConnectionError, JobTimeoutError, RateLimitedError
from vidbridge.plugins.wan2gp import discovery
from vidbridge.plugins.wan2gp.errors import translate
from vidbridge.plugins.wan2gp.session import DEFAULT_MIN_INTERVAL, MIN_INTERVAL_ENV, ServerLimiter, min_interval


@pytest.mark.parametrize(("raw", "expected"), [(None, DEFAULT_MIN_INTERVAL), ("0", 0.0), ("0.25", 0.25),
                                               ("-1", DEFAULT_MIN_INTERVAL), ("soon", DEFAULT_MIN_INTERVAL),
                                               ("nan", DEFAULT_MIN_INTERVAL)])
def test_min_interval_setting(monkeypatch: pytest.MonkeyPatch, raw: str | None, expected: float) -> None:
    if raw is None:
        monkeypatch.delenv(MIN_INTERVAL_ENV, raising=False)
    else:
        monkeypatch.setenv(MIN_INTERVAL_ENV, raw)
    assert min_interval() == expected


def test_each_limiter_keeps_its_own_slots() -> None:
    first, second = ServerLimiter(slots=1, min_interval=0.0), ServerLimiter(slots=3, min_interval=0.0)
    assert [first.slots.acquire(blocking=False) for _ in range(2)] == [True, False]
    assert [second.slots.acquire(blocking=False) for _ in range(4)] == [True, True, True, False]


def test_two_sessions_to_one_server_with_different_max_sessions_each_get_their_own_limit(connect, vidbridge_mock,
                                                                                        monkeypatch) -> None:
    """Issue 9: a per-URL limiter kept the first client's slot count (a later max_sessions=3 got 1)."""
    monkeypatch.setenv(MIN_INTERVAL_ENV, "0")
    one = connect(vidbridge_mock.url, max_sessions=1)
    three = connect(vidbridge_mock.url, max_sessions=3)
    held = [three.acquire(timeout=5) for _ in range(3)]  # all three at once, while `one` holds its slot
    mine = one.acquire(timeout=5)
    with pytest.raises(JobTimeoutError):
        one.acquire(timeout=0)  # its own single slot is taken
    with pytest.raises(JobTimeoutError):
        three.acquire(timeout=0)
    for pooled in held:
        three.release(pooled)
    one.release(mine)
    assert one.limiter is not three.limiter


def test_http_failures_use_the_core_mapping() -> None:
    request = httpx.Request("GET", "http://u:secret@wangp.test/file=x.mp4?token=t0k")
    limited = httpx.HTTPStatusError("429", request=request,
                                    response=httpx.Response(429, headers={"Retry-After": "7"}, request=request))
    error = translate(limited, endpoint="http://wangp.test", step="downloading x.mp4")
    assert isinstance(error, RateLimitedError) and error.retry_after == 7
    lost = translate(httpx.ReadError("reset", request=request), endpoint="http://wangp.test", step="following")
    assert isinstance(lost, BackendConnectionError) and "secret" not in str(lost) and "t0k" not in str(lost)


def test_probe_ports_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(discovery.PORTS_ENV_VAR, raising=False)
    assert discovery.probe_ports() == discovery.LOCAL_PORTS
    monkeypatch.setenv(discovery.PORTS_ENV_VAR, "7000, x,8000,70000")
    assert discovery.probe_ports() == (7000, 8000)
    monkeypatch.setenv(discovery.PORTS_ENV_VAR, "")
    assert discovery.probe_ports() == ()
