"""The pool of gradio sessions behind one wan2gp session (``plugins/wan2gp/session.py``).

Against the in-process mock WanGP, with no job-start pacing. Concurrency is driven by events and semaphores, never by sleeping.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from vidbridge import ConnectOptions, Credentials, Endpoint
from vidbridge.backend import Deadline
from vidbridge.errors import BackendConnectionError, JobTimeoutError
from vidbridge.plugins.wan2gp.api import ApiSurface
from vidbridge.plugins.wan2gp.session import MIN_INTERVAL_ENV, PooledClient, Wan2GPSession


@pytest.fixture(autouse=True)
def no_pacing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MIN_INTERVAL_ENV, "0")


@pytest.fixture
def open_session(vidbridge_mock: Any, tmp_path: Path) -> Iterator[Any]:
    """``open_session(max_sessions=..., http=...)`` -> a Wan2GPSession on the mock, closed afterwards."""
    sessions: list[Wan2GPSession] = []
    shared = httpx.Client()

    def make(max_sessions: int = 4, **options: Any) -> Wan2GPSession:
        options.setdefault("http", shared)
        session = Wan2GPSession(Endpoint(url=vidbridge_mock.url, backend="wan2gp"), Credentials(),
                                ConnectOptions(max_sessions=max_sessions, cache_dir=tmp_path / "cache",
                                               retry_attempts=1, **options))
        sessions.append(session)
        return session

    yield make
    for session in sessions:
        session.close()
    shared.close()


def _closed(pooled: PooledClient) -> bool:
    """True once close_client ran on the gradio Client: heartbeat told to stop, pools shut down."""
    return pooled.client._kill_heartbeat.is_set() and pooled.client.executor._shutdown


def _wait_until_blocked_on(semaphore: threading.Semaphore) -> None:
    """Until a thread waits on ``semaphore`` (its condition's waiter list; nothing to await)."""
    tick = threading.Event()
    for _ in range(2000):
        if semaphore._cond._waiters:  # type: ignore[attr-defined]
            return
        tick.wait(0.005)
    raise AssertionError("no thread blocked on the semaphore")


def test_connect_opens_one_session_and_reuses_it(open_session: Any) -> None:
    session = open_session()
    assert "idle=1 busy=0" in repr(session)
    first = session.acquire()
    assert "idle=0 busy=1" in repr(session)
    assert "t2v" in first.choices
    session.release(first)
    again = session.acquire()
    assert again is first  # an idle gradio session is reused, not reopened
    session.release(again)
    assert session.default_model() == "t2v"
    assert session.src_prefixed.startswith(session.url) and session.src_prefixed.endswith("/")


def test_concurrent_acquires_get_distinct_sessions_up_to_the_limit(open_session: Any) -> None:
    session = open_session(max_sessions=2)
    a = session.acquire()
    b = session.acquire()
    assert a is not b and a.client is not b.client
    with pytest.raises(JobTimeoutError, match="no free gradio session within 0 s"):
        session.acquire(timeout=0)
    session.release(a)
    c = session.acquire(timeout=0)
    assert c is a
    session.release(b)
    session.release(c)


def test_more_threads_than_slots_wait_their_turn_then_all_proceed(open_session: Any) -> None:
    session = open_session(max_sessions=2)
    threads_count = 5
    entered = threading.Semaphore(0)
    lock = threading.Lock()
    active, peak = [0], [0]
    holders: list[tuple[PooledClient, threading.Event]] = []
    used: set[int] = set()
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            pooled = session.acquire()  # waits for a slot as long as needed
            go = threading.Event()
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
                holders.append((pooled, go))
                used.add(id(pooled))
            entered.release()
            go.wait(30)
            with lock:
                active[0] -= 1
            session.release(pooled)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
            entered.release()

    threads = [threading.Thread(target=worker) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    try:
        for _ in range(2):  # two slots: two workers get in
            assert entered.acquire(timeout=30), "a worker never got a gradio session"
        for turn in range(threads_count - 2):
            with lock:
                _, go = holders[turn]
            go.set()  # the oldest holder gives its session back: exactly one waiter gets in
            assert entered.acquire(timeout=30), "a waiting worker never got the freed session"
    finally:
        with lock:
            for _, go in holders:
                go.set()
        for thread in threads:
            thread.join(timeout=30)
    assert not errors
    assert all(not t.is_alive() for t in threads)
    assert peak[0] == 2
    assert len(used) <= 2  # gradio sessions were handed from one job to the next
    assert session.acquire(timeout=0) is not None  # every slot came back


def test_a_broken_session_is_dropped_and_a_new_one_opened(open_session: Any, tmp_path: Path) -> None:
    session = open_session()
    sample = tmp_path / "in.bin"
    sample.write_bytes(b"data")
    session.uploads.get_or_upload(str(sample), lambda: {"path": "/srv/in.bin"})
    first = session.acquire()
    session.release(first, broken=True)
    assert _closed(first)
    # The server may have restarted: cached upload paths are forgotten.
    assert session.uploads.get_or_upload(str(sample), lambda: {"path": "/srv/new.bin"}) == {"path": "/srv/new.bin"}
    second = session.acquire()
    assert second is not first and not _closed(second)
    second.broken = True  # marked by a failed call: dropped too, the upload cache kept
    session.release(second)
    assert _closed(second)
    assert session.uploads.get_or_upload(str(sample), lambda: {"path": "/srv/other.bin"}) == {"path": "/srv/new.bin"}
    third = session.acquire(timeout=0)
    assert third is not second
    session.release(third)


def test_release_is_idempotent_per_job(open_session: Any) -> None:
    session = open_session(max_sessions=1)
    pooled = session.acquire()
    session.release(pooled)
    session.release(pooled)  # a second release must not free a slot twice
    again = session.acquire(timeout=0)
    with pytest.raises(JobTimeoutError):
        session.acquire(timeout=0)
    session.release(again)


def test_close_is_idempotent_and_closes_every_gradio_session(open_session: Any) -> None:
    session = open_session(max_sessions=3)
    idle = session.acquire()
    busy = session.acquire()
    session.release(idle)
    session.close()
    session.close()
    assert _closed(idle) and _closed(busy)
    with pytest.raises(BackendConnectionError, match="the session is closed"):
        session.acquire()
    session.release(busy)  # a job ending after close gives its slot back without reviving the pool
    assert "idle=0 busy=0" in repr(session)
    assert session.limiter.slots.acquire(timeout=0) and session.limiter.slots.acquire(timeout=0)


def test_own_http_client_is_closed_with_the_session_a_shared_one_is_not(open_session: Any) -> None:
    own = open_session(http=None)
    shared = open_session()
    assert own.http is not shared.http
    own.close()
    shared.close()
    assert own.http.is_closed
    assert not shared.http.is_closed


def test_probe_tells_a_live_server(open_session: Any) -> None:
    session = open_session()
    assert session.probe() is True


def test_probe_of_a_dead_server_is_false(tmp_path: Path) -> None:
    from vidbridge.plugins.mock_backend.server import MockServer

    with httpx.Client() as http, MockServer(port=0, state_dir=tmp_path / "state") as server:
        session = Wan2GPSession(Endpoint(url=server.url, backend="wan2gp"), Credentials(),
                                ConnectOptions(http=http, cache_dir=tmp_path / "cache", retry_attempts=1))
        try:
            assert session.probe()
            if hasattr(session, "server_down"):
                assert session.server_down() is False
            idle = session.acquire()
            session.release(idle)
            server.stop()
            assert session.probe(timeout=2) is False
            if hasattr(session, "server_down"):
                assert session.server_down(timeout=2) is True
                assert _closed(idle) and "idle=0" in repr(session)  # its gradio sessions died with it
                gone = BackendConnectionError("still down", endpoint=session.url)
                with pytest.raises(BackendConnectionError, match="still down"):
                    session.wait_until_up(Deadline.after(0), gone)  # a deadline already passed: no waiting
                stop = threading.Event()
                stop.set()
                with pytest.raises(BackendConnectionError, match="still down"):
                    session.wait_until_up(Deadline.after(600), gone, stop_event=stop)  # cancelled: at once
        finally:
            session.close()


def test_a_waiter_woken_after_close_does_not_open_a_new_session(open_session: Any) -> None:
    # Regression: a thread waiting in acquire() when the session was closed opened a new gradio
    # session on the closed pool once a slot freed.
    session = open_session(max_sessions=1)
    held = session.acquire()
    outcome: list[Any] = []
    started = threading.Event()

    def waiter() -> None:
        started.set()
        try:
            outcome.append(session.acquire())
        except BaseException as exc:  # noqa: BLE001
            outcome.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    started.wait(10)
    _wait_until_blocked_on(session.limiter.slots)
    session.close()
    session.release(held)
    thread.join(timeout=30)
    got = outcome[0]
    if isinstance(got, PooledClient):
        from vidbridge.plugins.wan2gp.connection import close_client

        close_client(got.client)
    assert isinstance(got, BackendConnectionError) and "the session is closed" in got.message
    assert "idle=0 busy=0" in repr(session)
    assert session.limiter.slots.acquire(timeout=0)  # the waiter gave its slot back


def test_close_wakes_a_waiter_while_every_slot_is_still_held(open_session: Any) -> None:
    session = open_session(max_sessions=1)
    held = session.acquire()
    outcome: list[Any] = []

    def waiter() -> None:
        try:
            outcome.append(session.acquire())
        except BaseException as exc:  # noqa: BLE001
            outcome.append(exc)

    thread = threading.Thread(target=waiter)
    thread.start()
    _wait_until_blocked_on(session.limiter.slots)
    session.close()
    thread.join(timeout=10)  # the slot is still held: only close() can end the wait
    assert not thread.is_alive()
    assert isinstance(outcome[0], BackendConnectionError) and "the session is closed" in outcome[0].message
    session.release(held)
    assert session.limiter.slots.acquire(timeout=0)


def test_model_choices_without_the_queueing_endpoint() -> None:
    session = Wan2GPSession.__new__(Wan2GPSession)
    session.api = ApiSurface({"named_endpoints": {}})
    assert session.api_model_choices() == []
    assert session.default_model() is None
    session.api = ApiSurface({"named_endpoints": {"/process_prompt_and_add_tasks": {"parameters": [
        {"parameter_name": "model_choice", "parameter_has_default": False, "type": {}}]}}})
    assert session.api_model_choices() == []
    assert session.default_model() is None
