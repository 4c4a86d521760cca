"""The mock server's command line (``python -m vidbridge.plugins.mock_backend`` and ``vidbridge
mock-server``), its vidbridge hooks (the command and the embedded backend), and the server
classes' start/stop edges (``plugins/mock_backend/cli.py``, ``plugin.py``, ``server.py``).

Servers are real, on 127.0.0.1 port 0; options are checked through the server's own admin routes.
"""

from __future__ import annotations

import io
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest

from vidbridge.plugins.mock_backend import faults
from vidbridge.plugins.mock_backend.cli import build_arg_parser
from vidbridge.plugins.mock_backend.server import MockServer, SubprocessMockServer, parse_auth

pytestmark = pytest.mark.integration


def _get_json(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def _refused(url: str) -> bool:
    try:
        httpx.get(url.rstrip("/") + "/config", timeout=5)
    except httpx.ConnectError:
        return True
    return False


# -- the child-process command lines ---------------------------------------------------------------


@pytest.fixture
def spawn() -> Iterator[Any]:
    """``spawn(*argv)`` starts a process and returns ``(process, first_line)`` where
    ``first_line()`` waits for its first stdout line; every process is ended after the test."""
    processes: list[subprocess.Popen] = []

    def start(*argv: str) -> tuple[subprocess.Popen, Any]:
        env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
        process = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
        processes.append(process)
        lines: queue.Queue[bytes] = queue.Queue()
        threading.Thread(target=lambda: lines.put(process.stdout.readline()), daemon=True).start()

        def first_line() -> str:
            line = lines.get(timeout=180).decode()
            assert line.startswith("Running on http://127.0.0.1:"), (line, process.stderr.read().decode()[-2000:])
            return line.split()[-1]

        return process, first_line

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait()
        process.stdout.close()
        process.stderr.close()


def _stop_with_sigint(process: subprocess.Popen) -> tuple[int, str]:
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    return process.returncode, err.decode(errors="replace")


def test_both_command_lines_serve_wangp_on_a_free_port_and_stop_cleanly_on_sigint(
        spawn: Any, tmp_path: Path) -> None:
    """``python -m vidbridge.plugins.mock_backend`` (with --auth) and the ``vidbridge mock-server``
    console script, started side by side (their start-up is mostly importing gradio)."""
    script = shutil.which("vidbridge", path=str(Path(sys.executable).parent))
    assert script, "the vidbridge console script is not installed next to this interpreter"
    module, module_url = spawn(sys.executable, "-u", "-m", "vidbridge.plugins.mock_backend", "--port", "0",
                               "--auth", "ann:canary-Pw-cli", "--state-dir", str(tmp_path / "state-m"))
    command, command_url = spawn(script, "mock-server", "--port", "0", "--state-dir", str(tmp_path / "state-c"))
    url, other = module_url(), command_url()
    assert not url.endswith(":0/") and url != other

    assert httpx.get(url + "config", timeout=30).status_code == 401  # --auth: gradio login required
    login = httpx.post(url + "login", data={"username": "ann", "password": "canary-Pw-cli"}, timeout=30)
    assert login.status_code == 200
    assert "wangp" in httpx.get(url + "config", cookies=login.cookies, timeout=30).json()["title"].lower()
    assert "wangp" in httpx.get(other + "config", timeout=30).json()["title"].lower()

    for process, served in ((module, url), (command, other)):
        code, err = _stop_with_sigint(process)
        assert code == 0, err
        assert "Traceback" not in err
        assert _refused(served)


# -- the same command in this process --------------------------------------------------------------


class _UrlWatcher(io.StringIO):
    """A stdout that signals when the server prints its URL."""

    def __init__(self) -> None:
        super().__init__()
        self.ready = threading.Event()

    def write(self, text: str) -> int:
        written = super().write(text)
        if "Running on " in self.getvalue():
            self.ready.set()
        return written


def test_mock_server_command_options_reach_the_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``vidbridge mock-server`` through the core CLI parser, served on the main thread (signals),
    stopped by SIGINT to this process once the options have been checked over HTTP."""
    from vidbridge.cli import main

    out = _UrlWatcher()
    monkeypatch.setattr(sys, "stdout", out)
    seen: dict[str, Any] = {}
    problems: list[BaseException] = []

    def check_then_interrupt() -> None:
        if not out.ready.wait(180):
            return
        try:
            url = out.getvalue().split("Running on ", 1)[1].split()[0]
            seen["url"] = url
            seen["health"] = _get_json(url + "mock_admin/health")
            seen["options"] = _get_json(url + "mock_admin/options")
            seen["faults"] = faults.list_faults(url)
            seen["title"] = _get_json(url + "config")["title"]
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            problems.append(exc)
        finally:
            os.kill(os.getpid(), signal.SIGINT)

    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    helper = threading.Thread(target=check_then_interrupt, daemon=True)
    helper.start()
    try:
        code = main(["mock-server", "--port", "0", "--step-delay", "0.25", "--fault", "latency:seconds=0",
                     "--model", "hunyuan", "--state-dir", str(tmp_path / "state"),
                     "--output-dir", str(tmp_path / "outputs")])
    finally:
        out.ready.set()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        helper.join(timeout=30)
    assert not problems, problems
    assert code == 0
    assert seen["options"] == {"step_delay": 0.25}
    assert [f["spec"] for f in seen["faults"]] == ["latency:seconds=0"]
    assert seen["health"]["last_model"] == "hunyuan"
    assert Path(seen["health"]["output_dir"]) == tmp_path / "outputs"
    assert "wangp" in seen["title"].lower()
    assert _refused(seen["url"])


def test_parser_defaults_follow_server_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVER_PORT", "9123")
    args = build_arg_parser().parse_args([])
    assert (args.host, args.port, args.step_delay, args.auth, args.fault) == ("127.0.0.1", 9123, 0.0, None, [])
    monkeypatch.delenv("SERVER_PORT")
    assert build_arg_parser().parse_args([]).port == 7860
    full = build_arg_parser().parse_args(["--fault", "a", "--fault", "b", "--full-surface"])
    assert full.fault == ["a", "b"] and full.full_surface is True


def test_core_cli_offers_mock_server_with_the_same_options() -> None:
    from vidbridge.cli import build_parser
    from vidbridge.manager import get_plugin_manager
    from vidbridge.plugins.mock_backend.cli import serve

    parser = build_parser(get_plugin_manager())
    args = parser.parse_args(["mock-server", "--port", "0", "--auth", "u:p", "--model", "t2v"])
    assert args.handler is serve
    assert (args.port, args.auth, args.model) == (0, "u:p", "t2v")
    with pytest.raises(SystemExit) as info:
        parser.parse_args(["mock-server", "--port", "not-a-port"])
    assert info.value.code == 2


# -- the embedded backend hook ---------------------------------------------------------------------


def test_embedded_backend_serves_wangp_while_open(tmp_path: Path) -> None:
    from vidbridge.manager import get_plugin_manager
    from vidbridge.plugins.wan2gp.discovery import is_wan2gp

    embedded = get_plugin_manager().hook.vidbridge_embedded_backend(options={"step_delay": 0.125})
    with embedded as url:
        assert url.startswith("http://127.0.0.1:")
        assert is_wan2gp(httpx.get(url.rstrip("/") + "/config", timeout=30).json())
        assert faults.set_options(url) == {"step_delay": 0.125}
    assert _refused(url)


# -- MockServer / SubprocessMockServer edges --------------------------------------------------------


def test_auth_strings_must_have_a_colon() -> None:
    assert parse_auth("ann:pa:ss") == ("ann", "pa:ss")
    assert parse_auth(("a", "b")) == ("a", "b") and parse_auth(None) is None
    with pytest.raises(ValueError, match="USER:PASSWORD"):
        MockServer(auth="no-colon")


def test_server_url_needs_a_started_server_and_stop_is_idempotent() -> None:
    server = MockServer(port=0)
    with pytest.raises(RuntimeError, match="not started"):
        server.url  # noqa: B018
    server.stop()  # never started: nothing to do
    server.stop()


def test_a_port_in_use_is_reported_at_start(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        server = MockServer(port=taken.getsockname()[1], state_dir=tmp_path / "state")
        with pytest.raises(RuntimeError, match="failed to start"):
            server.start()
    with pytest.raises(RuntimeError, match="not started"):
        server.url  # noqa: B018


def test_start_is_idempotent_on_the_running_server(vidbridge_mock_server: MockServer) -> None:
    url = vidbridge_mock_server.url
    assert vidbridge_mock_server.start() is vidbridge_mock_server
    assert vidbridge_mock_server.url == url


def test_child_that_dies_at_start_is_reported_with_its_log(tmp_path: Path) -> None:
    server = SubprocessMockServer(python=shutil.which("false") or "/bin/false", state_dir=tmp_path / "s")
    with pytest.raises(RuntimeError, match=r"mock server exited \(1\)"):
        server.start()
    server.stop()
    assert (tmp_path / "s").is_dir()  # a given state folder is the caller's: kept


def test_child_that_never_prints_its_url_is_killed(tmp_path: Path) -> None:
    fake = tmp_path / "silent-python"
    fake.write_text("#!/bin/sh\nexec sleep 60\n")
    fake.chmod(0o755)
    server = SubprocessMockServer(python=str(fake), startup_timeout=0.5)
    state = server.state_dir
    try:
        with pytest.raises(RuntimeError, match="did not start in time"):
            server.start()
        assert server.process is not None and server.process.poll() is not None  # killed, not left running
        server.kill()  # already dead: harmless
    finally:
        server.stop()
    assert not state.exists()  # its own temporary state folder is removed


def test_child_command_carries_every_option(tmp_path: Path) -> None:
    server = SubprocessMockServer(port=0, step_delay=0.5, auth=("ann", "pw"), faults=["429:count=1"],
                                  full_surface=True, output_dir=tmp_path / "o", state_dir=tmp_path / "s",
                                  model="hunyuan", env={"EXTRA": "1"})
    command = server.command()
    assert command[1:4] == ["-u", "-m", "vidbridge.plugins.mock_backend"]
    parsed = build_arg_parser().parse_args(command[4:])
    assert (parsed.port, parsed.step_delay, parsed.auth, parsed.fault, parsed.full_surface) == \
        (0, 0.5, "ann:pw", ["429:count=1"], True)
    assert (parsed.output_dir, parsed.state_dir, parsed.model) == (str(tmp_path / "o"), str(tmp_path / "s"), "hunyuan")
    assert server.env["EXTRA"] == "1" and server.env["GRADIO_ANALYTICS_ENABLED"] == "False"
    assert server.log_tail() == ""  # nothing logged yet


def test_module_entry_point_shows_its_help(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import runpy

    monkeypatch.setattr(sys, "argv", ["python -m vidbridge.plugins.mock_backend", "--help"])
    with pytest.raises(SystemExit) as info:
        runpy.run_module("vidbridge.plugins.mock_backend", run_name="__main__", alter_sys=False)
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: python -m vidbridge.plugins.mock_backend")
    for option in ("--port", "--auth", "--fault", "--full-surface", "--state-dir", "--model"):
        assert option in out
