"""Fixtures for the command-line and host-API integration tests: the mock WanGP (in-process, shared
by the whole session and reset per test) and a runner for ``vidbridge.cli.main`` in this process."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest

from vidbridge.plugins.mock_backend.fixtures import (  # noqa: F401 - fixtures
    vidbridge_mock,
    vidbridge_mock_server,
)


@dataclass
class CliResult:
    """What one ``vidbridge`` run produced: exit code, the JSON document on stdout, stderr text,
    and the log records (pytest captures logging, so they are not on stderr here)."""

    code: int
    document: dict[str, Any]
    stderr: str
    log: str

    def __repr__(self) -> str:  # the log is long; failures show the document and stderr
        return f"CliResult(code={self.code}, document={self.document!r}, stderr={self.stderr[-2000:]!r})"


@pytest.fixture
def mock(vidbridge_mock: Any) -> Any:
    """The session's mock server, reset, and back on ``t2v`` (WanGP remembers the last model used
    and new sessions start on it: a test that switches models must not steer the next one)."""
    vidbridge_mock.backend.remember_model("t2v")
    return vidbridge_mock


@pytest.fixture
def isolated_discovery(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No server named by the environment or the user's config file; no loopback ports probed."""
    for name in ("VIDBRIDGE_WAN2GP_URL", "VIDBRIDGE_PASSWORD", "VIDBRIDGE_USERNAME", "VIDBRIDGE_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("VIDBRIDGE_WAN2GP_PROBE_PORTS", "")
    # a server the test names is found even when the loaded machine serves its config slowly
    monkeypatch.setenv("VIDBRIDGE_DISCOVER_TIMEOUT", "10")


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture, tmp_path: Path,
            isolated_discovery: None) -> Callable[..., CliResult]:
    """``run_cli(*args)`` runs ``vidbridge *args --json --output <tmp>`` in-process and parses the
    single JSON document it must print."""
    from vidbridge.cli import main

    def run(*args: str) -> CliResult:
        capsys.readouterr()
        caplog.clear()
        with caplog.at_level(logging.DEBUG):
            code = main([*args, "--json", "--output", str(tmp_path / "out")])
        captured = capsys.readouterr()
        return CliResult(int(code), json.loads(captured.out), captured.err, caplog.text)

    return run


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A mock WanGP behind gradio auth (user ``ann``, a canary password) for a test module."""
    from vidbridge.plugins.mock_backend.server import MockServer

    with MockServer(port=0, auth=("ann", "canary-Pw-7f3a"), state_dir=tmp_path_factory.mktemp("auth")) as server:
        yield server
