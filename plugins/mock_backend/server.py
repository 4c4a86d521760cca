"""Running the mock WanGP: in this process (:class:`MockServer`) or as a child process
(:class:`SubprocessMockServer`, which a test can kill and restart on the same port).

The gradio Blocks is mounted on our own FastAPI app and served by our own uvicorn server, so we
choose the socket (port 0 works), add the fault middleware and the admin routes, and stop cleanly.
"""

from __future__ import annotations

import logging
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path
from typing import Any, Iterable

QUIET_ENV = {"GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_DISABLE_TELEMETRY": "1",
             "HF_HUB_OFFLINE": "1"}
_URL_LINE = re.compile(r"Running on (http://\S+)")


def _quiet_environment() -> None:
    for key, value in QUIET_ENV.items():
        os.environ.setdefault(key, value)


def parse_auth(auth: str | tuple[str, str] | None) -> tuple[str, str] | None:
    """``"user:password"`` or a pair -> a pair (None stays None)."""
    if auth is None or isinstance(auth, tuple):
        return auth
    user, sep, password = auth.partition(":")
    if not sep:
        raise ValueError("auth must be USER:PASSWORD")
    return user, password


class MockServer:
    """A mock WanGP server running in this process, in a background thread.

    :param host: interface to bind (keep the default: loopback only).
    :param port: TCP port; 0 picks a free one (read :attr:`url` / :attr:`port` after start).
    :param step_delay: seconds slept per denoising step (0 for fast tests).
    :param auth: gradio login, ``"user:password"`` or ``(user, password)``.
    :param faults: fault spec strings active from the start (see :mod:`.faults`).
    :param full_surface: register all 608 recorded endpoints, not only the implemented ones.
    :param output_dir: where outputs are written (default: ``state_dir/outputs``).
    :param state_dir: remembered last model and saved settings (default: a new temp folder).
    :param model: the model new sessions start on (default: the remembered one, else ``t2v``).
    :param mcp: serve WanGP's MCP face (:mod:`.mcp`) instead of the gradio web UI; :attr:`url`
        is then ``http://host:port/mcp``. ``auth`` and ``full_surface`` do not apply to it.
    :param mcp_options: options of the MCP face (``event_limit``, ``max_upload_bytes``,
        ``transfer_ttl``, ``load_delay``; see :class:`.mcp.state.McpState`).

    Use as a context manager, or call :meth:`start` and :meth:`stop` (idempotent).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, step_delay: float = 0.0,
                 auth: str | tuple[str, str] | None = None, faults: Iterable[str] = (),
                 full_surface: bool = False, output_dir: str | os.PathLike | None = None,
                 state_dir: str | os.PathLike | None = None, model: str | None = None,
                 allow_exit: bool = False, mcp: bool = False,
                 mcp_options: dict[str, Any] | None = None) -> None:
        if mcp and (auth or full_surface):
            raise ValueError("WanGP's MCP face has no login and no gradio surface: "
                             "auth and full_surface do not apply with mcp=True")
        self.host, self.port = host, port
        self.auth = parse_auth(auth)
        self._options = dict(step_delay=step_delay, faults=tuple(faults), full_surface=full_surface,
                             output_dir=str(output_dir) if output_dir else None,
                             state_dir=str(state_dir) if state_dir else None, model=model,
                             allow_exit=allow_exit, mcp=mcp)
        self.mcp_options = dict(mcp_options or {})
        self.mcp_state: Any = None
        self.backend: Any = None
        self.blocks: Any = None
        self._server: Any = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://host:port/`` of the running server (``http://host:port/mcp`` for the MCP face)."""
        if self._server is None:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self.port}/" + ("mcp" if self._options["mcp"] else "")

    @property
    def base_url(self) -> str:
        """``http://host:port/``: the root the admin helpers and relative transfer URLs use."""
        return self.url.removesuffix("mcp")

    def start(self) -> "MockServer":
        """Build the app and serve it; returns once the socket accepts connections."""
        if self._server is not None:
            return self
        _quiet_environment()
        import uvicorn

        from .backend import BackendOptions, MockBackend

        self.backend = MockBackend(BackendOptions(**self._options), exit_process=os._exit)
        asgi = self.build_asgi()
        config = uvicorn.Config(asgi, host=self.host, port=self.port, log_level="warning",
                                http=_h11_protocol(), lifespan="on", ws="none",
                                # clients keep heartbeat streams open: wait at most 1 s for them
                                timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        errors: list[BaseException] = []

        def run() -> None:
            try:
                self._server.run()
            except BaseException as exc:  # surfaced by start(), not lost in the thread
                errors.append(exc)

        thread = threading.Thread(target=run, name="vidbridge-mock-server", daemon=True)
        thread.start()
        self._thread = thread  # only once started: stop() after a start-up cut short must not join a new thread
        while not self._server.started:
            if errors or not self._thread.is_alive():
                self._server = None
                raise RuntimeError(f"mock server failed to start: {errors[:1]}")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    def build_asgi(self) -> Any:
        """The ASGI app: gradio mounted on FastAPI (or the MCP face), behind the fault/admin middleware."""
        if self._options["mcp"]:
            from .mcp.app import build_asgi

            app, self.mcp_state = build_asgi(self.backend, **self.mcp_options)
            return app
        import gradio as gr
        from fastapi import FastAPI

        from .app import build_app
        from .middleware import FaultMiddleware

        self.blocks = build_app(self.backend)
        app = gr.mount_gradio_app(FastAPI(), self.blocks, path="", auth=self.auth,
                                  allowed_paths=[str(self.backend.output_dir)])
        return FaultMiddleware(app, self.backend)

    def stop(self) -> None:
        """Stop serving (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        if self.mcp_state is not None:  # ends the running job, which releases waiting tool calls
            self.mcp_state.close()
        server.should_exit = True
        # Cancelling clients' open heartbeat streams at shutdown makes uvicorn log tracebacks
        # that mean nothing: silence its error log while stopping.
        error_log = logging.getLogger("uvicorn.error")
        level = error_log.level
        error_log.setLevel(logging.CRITICAL)
        try:
            if self._thread is not None:
                self._thread.join(timeout=10)
        finally:
            error_log.setLevel(level)

    def __enter__(self) -> "MockServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _h11_protocol() -> Any:
    from .middleware import TransportAwareH11

    return TransportAwareH11


class SubprocessMockServer:
    """A mock WanGP server in a child process (``python -m vidbridge.plugins.mock_backend``).

    Takes the options of :class:`MockServer` plus ``python`` (the interpreter to run, e.g. one
    with gradio 5.29; vidbridge must be installed there, ``--no-deps`` suffices), ``env``
    (extra environment), ``startup_timeout`` and ``mcp`` (WanGP's MCP face; :attr:`url` is then
    ``http://host:port/mcp``, :attr:`base_url` the root). The URL is read from the child's first
    stdout line. :meth:`kill` ends it abruptly (SIGKILL), :meth:`restart` starts it again on the
    same port and state folder (its outputs folder and generation counter survive, as WanGP's
    outputs folder does), :meth:`stop` ends it politely (idempotent).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, step_delay: float = 0.0,
                 auth: str | tuple[str, str] | None = None, faults: Iterable[str] = (),
                 full_surface: bool = False, output_dir: str | os.PathLike | None = None,
                 state_dir: str | os.PathLike | None = None, model: str | None = None,
                 python: str | None = None, env: dict[str, str] | None = None,
                 startup_timeout: float = 120.0, mcp: bool = False) -> None:
        self.host, self.port = host, port
        self.mcp = mcp
        self.python = python or sys.executable
        self._own_state_dir = state_dir is None
        self.state_dir = Path(state_dir or tempfile.mkdtemp(prefix="vidbridge-mock-")).resolve()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = self.state_dir / "server.log"
        auth_pair = parse_auth(auth)
        self._args = ["--step-delay", str(step_delay), "--state-dir", str(self.state_dir)]
        if auth_pair:
            self._args += ["--auth", ":".join(auth_pair)]
        for spec in faults:
            self._args += ["--fault", spec]
        if full_surface:
            self._args.append("--full-surface")
        if output_dir:
            self._args += ["--output-dir", str(output_dir)]
        if model:
            self._args += ["--model", model]
        if mcp:
            self._args.append("--mcp")
        self.env = {**os.environ, **QUIET_ENV, **(env or {})}
        self.startup_timeout = startup_timeout
        self.process: subprocess.Popen | None = None
        self.url: str | None = None
        self._interrupted = False
        self._awaiting_url = False

    @property
    def base_url(self) -> str | None:
        """``http://host:port/`` of the running child: where the admin routes are."""
        return None if self.url is None else self.url.removesuffix("mcp")

    def command(self) -> list[str]:
        return [self.python, "-u", "-m", "vidbridge.plugins.mock_backend", "--host", self.host,
                "--port", str(self.port), *self._args]

    def start(self) -> "SubprocessMockServer":
        """Start the child and wait for the URL it prints (RuntimeError if it dies first)."""
        return self.spawn().wait_started()

    def spawn(self) -> "SubprocessMockServer":
        """Start the child without waiting for it (then :meth:`wait_started`): several servers
        start side by side, each taking seconds to import gradio."""
        if self.process is not None and self.process.poll() is None:
            return self
        log = open(self.log_path, "ab")
        # Run in the state folder, as WanGP runs in its own folder: its default outputs folder,
        # ``outputs``, is then also reachable as a path relative to the server's working directory.
        self.process = subprocess.Popen(self.command(), stdout=subprocess.PIPE, stderr=log,
                                        env=self.env, start_new_session=True, cwd=self.state_dir)
        log.close()
        self._interrupted = False
        self._awaiting_url = True
        self._lines: "queue.Queue[str | None]" = queue.Queue()
        self._started_by = time.monotonic() + self.startup_timeout
        threading.Thread(target=_pump, args=(self.process.stdout, self._lines), daemon=True).start()
        return self

    def wait_started(self) -> "SubprocessMockServer":
        """Wait for the URL that the child started by :meth:`spawn` prints (RuntimeError if it
        dies first or takes longer than ``startup_timeout``)."""
        assert self.process is not None, "spawn() first"
        if not self._awaiting_url:
            return self
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, self._started_by - time.monotonic()))
            except queue.Empty:
                self.kill()
                raise RuntimeError(f"mock server did not start in time; see {self.log_path}")
            if line is None:
                raise RuntimeError(f"mock server exited ({self.process.wait()}); see "
                                   f"{self.log_path}:\n{self.log_tail()}")
            match = _URL_LINE.search(line)
            if match:
                printed = urllib.parse.urlsplit(match[1])
                self.port = int(printed.port)
                self.url = match[1] if self.mcp else match[1].rstrip("/") + "/"
                self._awaiting_url = False
                return self

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def kill(self) -> None:
        """End the child at once (SIGKILL), like a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def restart(self) -> "SubprocessMockServer":
        """Kill the child if running and start it again on the same port and state folder."""
        self.kill()
        return self.start()

    def interrupt(self) -> None:
        """Ask the child to stop (SIGINT) without waiting; :meth:`stop` then waits for it."""
        if self.process is not None and self.process.poll() is None and not self._interrupted:
            self.process.send_signal(signal.SIGINT)
            self._interrupted = True

    def stop(self) -> None:
        """Stop the child (SIGINT, then SIGKILL after 10 s); idempotent."""
        if self.process is not None and self.process.poll() is None:
            self.interrupt()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()
        if self._own_state_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> "SubprocessMockServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _pump(stream: Any, lines: "queue.Queue[str | None]") -> None:
    """Forward the child's stdout lines; keeps the pipe drained so the child never blocks."""
    for raw in iter(stream.readline, b""):
        lines.put(raw.decode(errors="replace"))
    lines.put(None)

