"""How the wan2gp plugin explains gradio_client and httpx failures (``plugins/wan2gp/errors.py``).

Each exception is built the way gradio_client or httpx raise it; the translation must pick the
right class of the vidbridge error tree (which decides retries and the CLI exit code), name the
server and the step of WanGP's call flow, and never print user info from URLs.
"""

from __future__ import annotations

import concurrent.futures

import httpx
import pytest
from gradio_client import exceptions as gc_exceptions
from gradio_client import utils as gc_utils

from vidbridge.errors import (
    AuthenticationError,
    BackendConnectionError,
    BackendError,
    InvalidRequestError,
    JobCancelledError,
    JobFailedError,
    JobTimeoutError,
    RateLimitedError,
    TransientServerError,
)
from vidbridge.plugins.wan2gp.errors import OPAQUE_MARKER, cancelled, translate

URL = "http://127.0.0.1:7860"
STEP = "queueing the task (process_prompt_and_add_tasks)"


def _request() -> httpx.Request:
    return httpx.Request("GET", f"{URL}/gradio_api/queue/join?session_hash=s3cr3t-query")


def _status(code: int, headers: dict[str, str] | None = None) -> httpx.HTTPStatusError:
    request = _request()
    response = httpx.Response(code, headers=headers or {}, request=request)
    return httpx.HTTPStatusError(f"HTTP {code}", request=request, response=response)


@pytest.mark.parametrize(
    ("exc", "kind", "words"),
    [
        (gc_exceptions.AuthenticationError("Login credentials are required"), AuthenticationError,
         "no username/password was given"),
        (ValueError("Could not login to http://127.0.0.1:7860. Invalid credentials."), AuthenticationError,
         "refused the username/password"),
        (gc_utils.TooManyRequestsError("Too many requests"), RateLimitedError, "HTTP 429"),
        (gc_utils.QueueError("Queue is full! Please try again."), TransientServerError, "queue is full"),
        (ConnectionRefusedError(111, "Connection refused"), BackendConnectionError, "cannot reach the server"),
        (concurrent.futures.CancelledError(), BackendConnectionError, "connection to the server was lost"),
        (TimeoutError(), JobTimeoutError, "no answer in time"),
        (concurrent.futures.TimeoutError(), JobTimeoutError, "no answer in time"),
        (gc_exceptions.AppError("Prompt is empty"), JobFailedError, "Prompt is empty"),
        (RuntimeError("something odd"), BackendError, "RuntimeError: something odd"),
    ],
    ids=["gradio-auth-missing", "login-refused", "429", "queue-full", "refused-socket", "stream-lost",
         "timeout", "futures-timeout", "app-error", "other"],
)
def test_each_gradio_failure_maps_to_its_class_and_names_the_step(exc: BaseException, kind: type,
                                                                  words: str) -> None:
    error = translate(exc, endpoint=URL, step=STEP)
    assert type(error) is kind
    assert error.endpoint == URL
    assert error.message.startswith(f"{URL}: {STEP}: ")
    assert words in error.message


def test_reasons_and_retry_flags_follow_the_failure() -> None:
    missing = translate(gc_exceptions.AuthenticationError("x"), endpoint=URL, step="s")
    refused = translate(ValueError("Could not login to the server"), endpoint=URL, step="s")
    assert (missing.reason, refused.reason) == ("missing", "refused")
    assert not missing.retryable and not refused.retryable
    queue_full = translate(gc_utils.QueueError("full"), endpoint=URL, step="s")
    assert queue_full.retryable and queue_full.status_code == 503
    assert translate(gc_utils.TooManyRequestsError(), endpoint=URL, step="s").retryable
    assert not translate(gc_exceptions.AppError("bad"), endpoint=URL, step="s").retryable


def test_a_plain_value_error_is_not_taken_for_a_login_failure() -> None:
    error = translate(ValueError("could not parse the gallery"), endpoint=URL, step=STEP)
    assert type(error) is BackendError
    assert "ValueError: could not parse the gallery" in error.message


def test_opaque_app_error_says_the_server_hides_details() -> None:
    exc = gc_exceptions.AppError(f"The {OPAQUE_MARKER}. To see the error, set show_error=True in launch().")
    error = translate(exc, endpoint=URL, step=STEP)
    assert isinstance(error, JobFailedError)
    assert "does not describe" in error.message and "console" in error.message
    assert "show_error" not in error.message  # gradio's advice is for the app author, not for us


def test_vidbridge_errors_pass_through_unchanged() -> None:
    original = InvalidRequestError("frames: 10 is not valid", field="frames")
    assert translate(original, endpoint=URL, step=STEP) is original


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (httpx.ConnectError("[Errno 111] Connection refused", request=_request()), BackendConnectionError),
        (httpx.ReadTimeout("timed out", request=_request()), JobTimeoutError),
        (httpx.RemoteProtocolError("peer closed connection", request=_request()), BackendConnectionError),
        (_status(429, {"Retry-After": "7"}), RateLimitedError),
        (_status(503), TransientServerError),
        (_status(401), AuthenticationError),
        (_status(404), BackendError),
    ],
    ids=["connect", "read-timeout", "protocol", "429", "503", "401", "404"],
)
def test_httpx_failures_use_the_core_mapping(exc: httpx.HTTPError, kind: type) -> None:
    error = translate(exc, endpoint=URL, step=STEP)
    assert type(error) is kind
    assert STEP in error.message and URL in error.message
    assert "s3cr3t-query" not in error.message  # query strings may carry tokens


def test_rate_limit_from_httpx_keeps_retry_after() -> None:
    error = translate(_status(429, {"Retry-After": "7"}), endpoint=URL, step=STEP)
    assert isinstance(error, RateLimitedError) and error.retry_after == 7


def test_user_info_in_exception_text_is_removed() -> None:
    exc = gc_utils.QueueError("cannot join http://ann:canary-Pw-7f3a@127.0.0.1:7860/gradio_api/queue/join")
    error = translate(exc, endpoint=URL, step=STEP)
    assert "canary-Pw-7f3a" not in error.message and "ann:" not in error.message
    assert "http://127.0.0.1:7860/gradio_api/queue/join" in error.message
    other = translate(OSError("http://ann:canary-Pw-7f3a@host/x failed"), endpoint=URL, step=STEP)
    assert "canary-Pw-7f3a" not in other.message


def test_user_info_in_the_endpoint_url_is_not_printed() -> None:
    # Regression: translate printed `endpoint` unredacted (user info kept).
    endpoint = "http://ann:canary-Pw-7f3a@127.0.0.1:7860"
    error = translate(gc_exceptions.AppError("boom"), endpoint=endpoint, step=STEP)
    assert "canary-Pw-7f3a" not in error.message
    assert error.endpoint == URL and URL in error.message
    stopped = cancelled(endpoint, True)
    assert "canary-Pw-7f3a" not in stopped.message and stopped.endpoint == URL


def test_cancelled_says_who_stopped_the_work() -> None:
    stopped = cancelled(URL, True)
    client_only = cancelled(URL, False)
    assert isinstance(stopped, JobCancelledError) and stopped.server_stopped is True
    assert "the server stopped it" in stopped.message
    assert client_only.server_stopped is False and "only the client stopped waiting" in client_only.message
    assert not stopped.retryable
