"""pytest fixtures serving the mock WanGP (a pytest plugin module: ``-p`` it or register it under
the ``pytest11`` entry point as ``vidbridge.plugins.mock_backend.fixtures``).

Loading this module is cheap: gradio is imported only when a fixture starts a server.

* ``vidbridge_mock_server`` (session): one in-process server on 127.0.0.1, port 0, no step delay.
* ``vidbridge_mock`` (function): that server, with faults cleared, counter zeroed and step delay
  reset to 0 before and after the test; use ``.url``.
* ``vidbridge_mock_subprocess_factory`` (function): ``make(**options)`` starts a
  :class:`~.server.SubprocessMockServer` (options as its constructor; ``python`` defaults to
  ``$VIDBRIDGE_MOCK_PYTHON`` or this interpreter), ``make.many(count, **options)`` starts
  ``count`` of them side by side; all are stopped after the test.
* ``vidbridge_mock_subprocess`` (function): one such server with default options, which the
  test may ``.kill()`` and ``.restart()``.
* ``vidbridge_mock_mcp_server`` (session): one in-process server of WanGP's MCP face
  (``MockServer(mcp=True)``); ``.url`` is ``http://127.0.0.1:PORT/mcp``, ``.base_url`` the root.
* ``vidbridge_mock_mcp`` (function): that server with faults cleared, counter zeroed, step and
  load delay 0 before and after the test, and no job left running (the previous test's is cancelled
  and awaited, so a generate never meets a leftover "generation in progress").
  A child process of the MCP face: ``vidbridge_mock_subprocess_factory(mcp=True)``.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Iterator

import pytest


@pytest.fixture(scope="session")
def vidbridge_mock_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A session-wide in-process mock WanGP server (port 0)."""
    from .server import MockServer

    state = tmp_path_factory.mktemp("vidbridge-mock")
    with MockServer(port=0, state_dir=state) as server:
        yield server


def _reset(server: Any) -> None:
    """Clear a server's faults, zero its counter, set its step delay to 0 (over its admin routes)."""
    from . import faults

    faults.clear_faults(server.base_url)
    faults.reset_counter(server.base_url)
    faults.set_options(server.base_url, step_delay=0.0)


@pytest.fixture
def vidbridge_mock(vidbridge_mock_server: Any) -> Iterator[Any]:
    """The session's mock server, reset (faults, counter, step delay) around the test."""
    _reset(vidbridge_mock_server)
    yield vidbridge_mock_server
    _reset(vidbridge_mock_server)


@pytest.fixture(scope="session")
def vidbridge_mock_mcp_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A session-wide in-process mock of WanGP's MCP face (port 0)."""
    from .server import MockServer

    state = tmp_path_factory.mktemp("vidbridge-mock-mcp")
    with MockServer(port=0, state_dir=state, mcp=True) as server:
        yield server


@pytest.fixture
def vidbridge_mock_mcp(vidbridge_mock_mcp_server: Any) -> Iterator[Any]:
    """The session's MCP mock, reset (faults, counter, step delay, running job) around the test."""
    def reset() -> None:
        jobs = vidbridge_mock_mcp_server.mcp_state.jobs
        jobs.cancel_running()  # a job left by the last test
        jobs.load_delay = 0.0
        _reset(vidbridge_mock_mcp_server)

    reset()
    yield vidbridge_mock_mcp_server
    reset()


@pytest.fixture
def vidbridge_mock_subprocess_factory(tmp_path: Any) -> Iterator[Callable[..., Any]]:
    """A factory starting mock servers in child processes; stops them after the test."""
    from .server import SubprocessMockServer

    started: list[SubprocessMockServer] = []

    def spawn(options: dict[str, Any]) -> SubprocessMockServer:
        options.setdefault("python", os.environ.get("VIDBRIDGE_MOCK_PYTHON") or sys.executable)
        options.setdefault("state_dir", tmp_path / f"mock-{len(started)}")
        server = SubprocessMockServer(**options)
        started.append(server)
        return server.spawn()

    def make(**options: Any) -> SubprocessMockServer:
        return spawn(options).wait_started()

    def many(count: int, **options: Any) -> list[SubprocessMockServer]:
        # side by side: each child takes seconds to import gradio
        return [server.wait_started() for server in [spawn(dict(options)) for _ in range(count)]]

    make.many = many  # type: ignore[attr-defined]
    yield make
    for server in started:  # asked to stop all at once, then awaited
        server.interrupt()
    for server in started:
        server.stop()


@pytest.fixture
def vidbridge_mock_subprocess(vidbridge_mock_subprocess_factory: Callable[..., Any]) -> Any:
    """A mock server in a child process the test can kill and restart on the same port."""
    return vidbridge_mock_subprocess_factory()
