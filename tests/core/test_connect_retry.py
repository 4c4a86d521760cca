"""The core is the one retry layer of connect: ``retry_attempts=N`` means exactly N calls of the
plugin's ``vidbridge_connect``, within one deadline, ended at once by ``Client.close()``; every
timeout while connecting is reported as ``reason="connect"``."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import pytest

from vidbridge import (
    BackendConnectionError,
    Client,
    Endpoint,
    IncompatibleServerError,
    JobTimeoutError,
    RateLimitedError,
    VidbridgeError,
    hookimpl,
)
from vidbridge.cli import ExitCode, exit_code_for

ENDPOINT = Endpoint(url="http://fake.local:9", backend="counting")


class NativeSession:
    def close(self) -> None:
        pass


class CountingBackend:
    """``vidbridge_connect`` raises the queued errors in turn (the last one forever), then connects."""

    def __init__(self, *failures: Exception, forever: Exception | None = None) -> None:
        self.failures = list(failures)
        self.forever = forever
        self.calls = 0
        self.called = threading.Event()

    @hookimpl
    def vidbridge_connect(self, endpoint, credentials, options):
        self.calls += 1
        self.called.set()
        if self.failures:
            raise self.failures.pop(0)
        if self.forever is not None:
            raise self.forever
        return NativeSession()


@pytest.fixture
def client_with(vidbridge_plugin_manager, vidbridge_register_plugin, tmp_path: Path):
    clients: list[Client] = []

    def make(plugin: CountingBackend, **options) -> Client:
        vidbridge_register_plugin(plugin, name="counting")
        client = Client(plugin_manager=vidbridge_plugin_manager, cache_dir=tmp_path, **options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.mark.parametrize("attempts", [1, 2, 4])
def test_retry_attempts_is_the_number_of_connect_calls(client_with, attempts):
    # Retry-After 0: the back-off costs nothing, the count is what is tested
    plugin = CountingBackend(forever=RateLimitedError("busy", retry_after=0))
    client = client_with(plugin, retry_attempts=attempts)
    with pytest.raises(RateLimitedError):
        client.connect(ENDPOINT)
    assert plugin.calls == attempts


def test_a_connect_that_succeeds_on_the_last_attempt(client_with):
    plugin = CountingBackend(RateLimitedError("busy", retry_after=0), RateLimitedError("busy", retry_after=0))
    session = client_with(plugin, retry_attempts=3).connect(ENDPOINT)
    assert plugin.calls == 3 and isinstance(session.native, NativeSession)


def test_no_attempt_starts_after_the_connect_deadline(client_with):
    # 0.01 s per attempt x 3: a Retry-After of 60 s would end past the deadline, so it is not waited
    plugin = CountingBackend(forever=RateLimitedError("busy", retry_after=60))
    client = client_with(plugin, retry_attempts=3, connect_timeout=0.01)
    with pytest.raises(RateLimitedError):
        client.connect(ENDPOINT)
    assert plugin.calls == 1


def test_a_timeout_while_connecting_is_a_connect_timeout(client_with):
    plugin = CountingBackend(forever=JobTimeoutError("http://fake.local:9: reading /config: timed out",
                                                     endpoint="http://fake.local:9"))
    client = client_with(plugin, retry_attempts=1, connect_timeout=2)
    with pytest.raises(JobTimeoutError) as caught:
        client.connect(ENDPOINT)
    error = caught.value
    assert error.reason == "connect" and error.server_cancelled is None
    assert str(error) == "http://fake.local:9: reading /config: timed out (connecting; 2 s per attempt)"
    assert error.endpoint == "http://fake.local:9" and isinstance(error.__cause__, JobTimeoutError)
    assert exit_code_for(error) is ExitCode.CONNECTION


def test_a_plugins_own_connect_timeout_passes_unchanged(client_with):
    own = JobTimeoutError("no session in time", reason="connect")
    client = client_with(CountingBackend(forever=own), retry_attempts=1)
    with pytest.raises(JobTimeoutError) as caught:
        client.connect(ENDPOINT)
    assert caught.value is own


def test_closing_the_client_ends_the_back_off_at_once(client_with):
    # a Retry-After of 20 s (the longest a policy waits): only close() can end it early
    plugin = CountingBackend(forever=RateLimitedError("busy", retry_after=20))
    client = client_with(plugin, retry_attempts=5, connect_timeout=60)
    closer = threading.Thread(target=lambda: (plugin.called.wait(), client.close()))
    closer.start()
    with pytest.raises(VidbridgeError, match="closed while connecting") as caught:
        client.connect(ENDPOINT)
    closer.join()
    assert plugin.calls == 1  # no attempt after close()
    assert isinstance(caught.value.__cause__, RateLimitedError)


def test_non_retryable_connect_errors_are_not_repeated(client_with):
    plugin = CountingBackend(forever=BackendConnectionError("refused"))
    plugin.forever.retryable = False  # e.g. a plugin's own non-retryable connection error
    with pytest.raises(BackendConnectionError):
        client_with(plugin, retry_attempts=4).connect(ENDPOINT)
    assert plugin.calls == 1


def test_a_server_that_answers_but_no_plugin_recognises_is_incompatible(client_with):
    with socket.socket() as listener:  # accepts TCP connections, speaks no backend's protocol
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        client = client_with(CountingBackend(), retry_attempts=3)
        with pytest.raises(IncompatibleServerError, match="it answers, but no plugin recognised this server"):
            client.connect(url)
    assert exit_code_for(IncompatibleServerError("x")) is ExitCode.CONNECTION
