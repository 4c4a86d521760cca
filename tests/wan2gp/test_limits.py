"""The per-server limiter settings and the HTTP error mapping shared with the core."""

from __future__ import annotations

import httpx
import pytest

from vidbridge import BackendConnectionError, RateLimitedError
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


def test_limiter_is_shared_per_server_and_takes_the_newest_interval(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MIN_INTERVAL_ENV, "0.5")
    first = ServerLimiter.for_server("http://limits.test:1", slots=2)
    monkeypatch.setenv(MIN_INTERVAL_ENV, "0")
    second = ServerLimiter.for_server("http://limits.test:1", slots=9)
    assert first is second and second.min_interval == 0.0
    assert ServerLimiter.for_server("http://limits.test:2", slots=1) is not first
    # the slot count of the first session to a server holds for everyone
    assert [first.slots.acquire(blocking=False) for _ in range(3)] == [True, True, False]


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
