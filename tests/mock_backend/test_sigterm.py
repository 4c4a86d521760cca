"""``vidbridge mock-server`` stops promptly on SIGTERM, also while it is still starting.

Start-up is mostly importing gradio and building the app: seconds, and far more on a loaded
machine. A SIGTERM in that window used to be noted and acted on only after the start-up had
finished (the server printed its URL, then stopped): 13-30 s on a busy CI box. Now the start-up is
abandoned. The bounds below are generous and only keep a regression from hanging the suite; the
assertions are about what the process did, not how long it took.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

pytestmark = pytest.mark.integration

_BOUND = 120  # seconds; a hang fails the test instead of blocking the suite


def _command(tmp_path: Path) -> list[str]:
    script = shutil.which("vidbridge", path=str(Path(sys.executable).parent))
    assert script, "the vidbridge console script is not installed next to this interpreter"
    return [script, "mock-server", "--port", "0", "--state-dir", str(tmp_path / "state")]


@pytest.fixture
def spawn(tmp_path: Path) -> Iterator[list[subprocess.Popen]]:
    processes: list[subprocess.Popen] = []
    yield processes
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.communicate()


def _start(processes: list[subprocess.Popen], tmp_path: Path) -> subprocess.Popen:
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1", "HF_HUB_DISABLE_TELEMETRY": "1"}
    process = subprocess.Popen(_command(tmp_path), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    processes.append(process)
    return process


def _catches_sigterm(pid: int) -> bool:
    """Whether the process has a SIGTERM handler installed (Linux: SigCgt in /proc/PID/status)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    caught = next(line.split()[1] for line in status.splitlines() if line.startswith("SigCgt:"))
    return bool(int(caught, 16) & (1 << (signal.SIGTERM - 1)))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc to see the handler installed")
def test_sigterm_during_start_up_abandons_it(spawn: list[subprocess.Popen], tmp_path: Path) -> None:
    process = _start(spawn, tmp_path)
    # The moment to hit: serve() has installed its handler, gradio is still loading. Nothing in the
    # child announces it, so watch its signal mask (a state poll, not a timed wait).
    deadline = time.monotonic() + _BOUND
    while not _catches_sigterm(process.pid):
        assert process.poll() is None, process.communicate()[1].decode()[-2000:]
        assert time.monotonic() < deadline, "the mock server never installed its SIGTERM handler"
        time.sleep(0.002)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=_BOUND)
    assert process.returncode == 0, err.decode()[-2000:]
    assert b"Running on" not in out, "the start-up was finished before the SIGTERM was acted on"
    assert b"Traceback" not in err, err.decode()[-2000:]


def test_sigterm_after_start_up_stops_the_server(spawn: list[subprocess.Popen], tmp_path: Path) -> None:
    process = _start(spawn, tmp_path)
    assert process.stdout is not None
    line = process.stdout.readline().decode()
    assert line.startswith("Running on http://127.0.0.1:"), process.stderr.read().decode()[-2000:] if process.stderr else ""
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=_BOUND)
    assert process.returncode == 0 and b"Traceback" not in err, err.decode()[-2000:]


def test_a_stop_signal_during_start_up_in_process_stops_the_half_started_server(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """serve() in this process: the signal arrives (deterministically, from inside start()) once the
    uvicorn thread runs; serve() returns 0 without printing a URL, stops that server and gives the
    caller its signal handlers back."""
    import httpx

    from vidbridge.plugins.mock_backend import cli, server as server_module

    started: list[server_module.MockServer] = []
    real_start = server_module.MockServer.start

    def start_then_signal(self: server_module.MockServer) -> server_module.MockServer:
        real_start(self)
        started.append(self)
        signal.raise_signal(signal.SIGTERM)  # handled here, in the main thread, before start() returns
        raise AssertionError("the SIGTERM handler did not abandon the start-up")

    monkeypatch.setattr(server_module.MockServer, "start", start_then_signal)
    before = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    args = cli.build_arg_parser().parse_args(["--port", "0", "--state-dir", str(tmp_path / "state")])
    assert cli.serve(args) == 0
    assert "Running on" not in capsys.readouterr().out
    assert {signum: signal.getsignal(signum) for signum in before} == before
    [server] = started
    assert server._thread is not None and not server._thread.is_alive()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{server.port}/config", timeout=5)
