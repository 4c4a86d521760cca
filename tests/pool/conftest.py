"""Fixtures for the pool tests: mock WanGP servers in child processes (so one can be killed) and a
client whose connect gives up quickly on a dead server."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from vidbridge.plugins.mock_backend.fixtures import vidbridge_mock_subprocess_factory  # noqa: F401 - fixture
from vidbridge.plugins.mock_backend.server import SubprocessMockServer


@pytest.fixture(autouse=True)
def _isolated_discovery(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Probes ask only the pool's servers (no configured URL, no loopback ports)."""
    monkeypatch.delenv("VIDBRIDGE_WAN2GP_URL", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("VIDBRIDGE_WAN2GP_PROBE_PORTS", "")


@pytest.fixture(scope="module")
def three_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[SubprocessMockServer]]:
    """Three mock servers for the module; the last one offers the Wan families only (no Hunyuan)."""
    servers = []
    try:
        for index in range(3):
            env = {"VIDBRIDGE_MOCK_FAMILIES": "wan,wan2_2"} if index == 2 else {}
            server = SubprocessMockServer(step_delay=0.02, env=env, python=os.environ.get("VIDBRIDGE_MOCK_PYTHON")
                                          or sys.executable, state_dir=tmp_path_factory.mktemp(f"pool-{index}"))
            servers.append(server.spawn())  # side by side: each takes seconds to import gradio
        yield [server.wait_started() for server in servers]
    finally:
        for server in servers:
            server.interrupt()
        for server in servers:
            server.stop()


@pytest.fixture
def pool_client(tmp_path: Path) -> Iterator[Callable[..., Any]]:
    """``make(**options)``: a Client with its own ledger, quick to give up on a dead server."""
    import vidbridge

    made: list[Any] = []

    def make(**options: Any) -> Any:
        options.setdefault("ledger", tmp_path / "jobs.sqlite3")
        options.setdefault("connect_timeout", 2.0)
        options.setdefault("retry_attempts", 2)
        options.setdefault("poll_interval", 0.1)
        client = vidbridge.Client(**options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
        client.wait_closed(30)
