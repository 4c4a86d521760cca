"""httpx exceptions and responses -> the vidbridge error tree, without leaking secrets."""

from __future__ import annotations

import email.utils

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from vidbridge.errors import (
    AuthenticationError,
    BackendConnectionError,
    BackendError,
    JobTimeoutError,
    RateLimitedError,
    TransientServerError,
    TransportError,
    VidbridgeError,
)
from vidbridge.httperrors import raise_for_status, redact_url, retry_after_seconds, translate_http_error

SERVER = "http://127.0.0.1:7860"
SECRET = "s3cr3t-T0KEN"
SECRET_URL = f"http://user:{SECRET}@127.0.0.1:7860/file=out/video.mp4?token={SECRET}#frag-{SECRET}"
ACTION = "downloading video.mp4"


def _request(url: str = SECRET_URL) -> httpx.Request:
    return httpx.Request("GET", url, headers={"Authorization": f"Bearer {SECRET}", "Cookie": f"session={SECRET}"})


def _response(status: int, headers: dict[str, str] | None = None) -> httpx.Response:
    headers = {"Set-Cookie": f"session={SECRET}", **(headers or {})}
    return httpx.Response(status, headers=headers, request=_request())


def _status_error(status: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    response = _response(status, headers)
    # httpx's own message contains the full URL, query string included.
    return httpx.HTTPStatusError(f"Server error for url '{SECRET_URL}'", request=response.request, response=response)


def _assert_clean(error: VidbridgeError) -> None:
    assert SECRET not in str(error)
    assert SECRET not in repr(error.to_dict())


# ------------------------------------------------------------------------------------------------
# Retry-After
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [("2", 2.0), (" 120 ", 120.0), ("1.5", 1.5), ("0", 0.0), (None, None), ("", None), ("  ", None),
     ("-1", None), ("nan", None), ("inf", None), ("soon", None), ("Wed, 32 Foo 2015 99:99:99 GMT", None)],
)  # fmt: skip
def test_retry_after_seconds_parses_delay_seconds(value, expected):
    assert retry_after_seconds(value) == expected


def test_retry_after_seconds_parses_http_dates_relative_to_now():
    now = 1_700_000_000.0
    later = email.utils.formatdate(now + 90, usegmt=True)
    assert retry_after_seconds(later, now=now) == pytest.approx(90.0)
    assert retry_after_seconds(email.utils.formatdate(now - 90, usegmt=True), now=now) == 0.0
    # "-0000" (UTC, zone unknown) gives a naive datetime: still read as UTC.
    naive = email.utils.formatdate(now + 30).rsplit(" ", 1)[0] + " -0000"
    assert retry_after_seconds(naive, now=now) == pytest.approx(30.0)


def test_retry_after_seconds_uses_the_clock_by_default():
    soon = email.utils.formatdate(usegmt=True)  # now, to the second
    assert 0.0 <= retry_after_seconds(soon) <= 1.0


@given(st.text(max_size=40))
def test_retry_after_seconds_never_raises(value):
    result = retry_after_seconds(value)
    assert result is None or result >= 0.0


# ------------------------------------------------------------------------------------------------
# URLs
# ------------------------------------------------------------------------------------------------


def test_redact_url_removes_user_info_query_and_fragment():
    assert redact_url(SECRET_URL) == "http://127.0.0.1:7860/file=out/video.mp4"
    assert redact_url(httpx.URL(SECRET_URL), origin_only=True) == SERVER
    assert redact_url("http://[::1") == "<unparseable URL>"


# ------------------------------------------------------------------------------------------------
# Status codes
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_transient_5xx_become_retryable_transient_server_errors(status):
    error = translate_http_error(_status_error(status), endpoint=SERVER, action=ACTION)
    assert type(error) is TransientServerError
    assert error.retryable and error.status_code == status and error.endpoint == SERVER
    assert str(error) == f"{ACTION} from {SERVER}: HTTP {status}"
    _assert_clean(error)


def test_429_becomes_rate_limited_with_retry_after():
    error = translate_http_error(_status_error(429, {"Retry-After": "2"}), endpoint=SERVER, action=ACTION)
    assert isinstance(error, RateLimitedError) and error.retryable
    assert error.retry_after == 2.0
    assert str(error) == f"{ACTION} from {SERVER}: HTTP 429 (retry after 2s)"
    bare = translate_http_error(_status_error(429), endpoint=SERVER, action=ACTION)
    assert isinstance(bare, RateLimitedError) and bare.retry_after is None and "retry after" not in str(bare)


@pytest.mark.parametrize("status", [401, 403])
def test_401_and_403_are_authentication_errors(status):
    error = translate_http_error(_status_error(status), endpoint=SERVER, action=ACTION)
    assert isinstance(error, AuthenticationError) and not error.retryable
    assert f"HTTP {status}" in str(error)
    _assert_clean(error)


@pytest.mark.parametrize("status", [400, 404, 408, 410, 418, 501, 505, 302, 101])
def test_other_statuses_are_plain_backend_errors(status):
    error = translate_http_error(_status_error(status), endpoint=SERVER, action=ACTION)
    assert type(error) is BackendError and not error.retryable
    assert str(error) == f"{ACTION} from {SERVER}: HTTP {status}"


def test_raise_for_status_returns_success_and_raises_the_translation():
    ok = _response(200)
    assert raise_for_status(ok, endpoint=SERVER, action=ACTION) is ok
    assert raise_for_status(_response(206), endpoint=SERVER, action=ACTION).status_code == 206
    with pytest.raises(TransientServerError, match="HTTP 503") as caught:
        raise_for_status(_response(503), endpoint=SERVER, action=ACTION)
    _assert_clean(caught.value)
    with pytest.raises(BackendError, match="HTTP 302"):
        raise_for_status(_response(302, {"Location": SECRET_URL}), endpoint=SERVER, action=ACTION)


def test_without_endpoint_the_message_names_the_request_origin_only():
    error = translate_http_error(_status_error(503), endpoint=None, action=ACTION)
    assert str(error) == f"{ACTION} from {SERVER}: HTTP 503"
    assert error.endpoint is None
    _assert_clean(error)


def test_endpoint_with_credentials_is_redacted_in_message_and_attribute():
    endpoint = f"http://admin:{SECRET}@host:1/?key={SECRET}"
    error = translate_http_error(_status_error(500), endpoint=endpoint, action=ACTION)
    assert error.endpoint == "http://host:1/"
    _assert_clean(error)


# ------------------------------------------------------------------------------------------------
# Transport exceptions
# ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "exc_type", [httpx.ConnectError, httpx.ReadError, httpx.WriteError, httpx.RemoteProtocolError, httpx.ProxyError]
)
def test_connection_failures_become_backend_connection_errors(exc_type):
    exc = exc_type(f"[Errno 111] Connection refused while fetching {SECRET_URL}", request=_request())
    error = translate_http_error(exc, endpoint=SERVER, action=ACTION)
    assert type(error) is BackendConnectionError and isinstance(error, TransportError) and error.retryable
    assert str(error).startswith(f"{ACTION} from {SERVER}: connection failed ({exc_type.__name__}: [Errno 111]")
    assert "http://127.0.0.1:7860/file=out/video.mp4" in str(error)  # the URL, redacted, stays useful
    _assert_clean(error)


@pytest.mark.parametrize("exc_type", [httpx.ConnectTimeout, httpx.ReadTimeout, httpx.WriteTimeout, httpx.PoolTimeout])
def test_timeouts_become_job_timeout_errors(exc_type):
    error = translate_http_error(exc_type("timed out", request=_request()), endpoint=SERVER, action=ACTION)
    assert isinstance(error, JobTimeoutError) and isinstance(error, TimeoutError) and error.retryable
    assert str(error) == f"{ACTION} from {SERVER}: timed out ({exc_type.__name__}: timed out)"


def test_other_httpx_errors_are_not_retryable_backend_errors():
    error = translate_http_error(httpx.UnsupportedProtocol("", request=_request()), endpoint=None, action=ACTION)
    assert type(error) is BackendError and not error.retryable
    assert str(error) == f"{ACTION} from {SERVER}: UnsupportedProtocol: no details"


def test_exception_without_request_says_the_server():
    error = translate_http_error(httpx.ConnectError("refused"), endpoint=None, action=ACTION)
    assert str(error) == f"{ACTION} from the server: connection failed (ConnectError: refused)"


def test_vidbridge_errors_pass_through_unchanged():
    original = RateLimitedError("slow down", endpoint=SERVER, retry_after=3)
    assert translate_http_error(original, endpoint="http://other", action=ACTION) is original
