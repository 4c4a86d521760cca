"""Command line of the mock server: ``python -m vidbridge.plugins.mock_backend [options]``.

:func:`add_arguments` and :func:`serve` are reusable, so the core CLI can offer the same options
(``vidbridge mock-server``) through a plugin hook. The first stdout line is
``Running on http://HOST:PORT/`` (the real port, also with ``--port 0``); with ``--mcp``
(WanGP's MCP face) it is ``Running on http://HOST:PORT/mcp``.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from typing import Any, Sequence


def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add the mock server's options to ``parser`` (returned for chaining)."""
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default: 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(os.environ.get("SERVER_PORT", 7860)),
                        help="TCP port, 0 for any free port (default: $SERVER_PORT or 7860)")
    parser.add_argument("--step-delay", type=float, default=0.0, metavar="S",
                        help="seconds per denoising step (default: 0)")
    parser.add_argument("--auth", metavar="USER:PASSWORD", help="require a gradio login")
    parser.add_argument("--fault", action="append", default=[], metavar="SPEC",
                        help="activate a fault, e.g. '429:route=join,count=2' (repeatable); "
                             "see vidbridge.plugins.mock_backend.faults")
    parser.add_argument("--full-surface", action="store_true",
                        help="register all 608 endpoints of WanGP 12.60, not only the implemented ones")
    parser.add_argument("--output-dir", metavar="DIR", help="where generated files are written")
    parser.add_argument("--state-dir", metavar="DIR",
                        help="remembered last model and saved settings (default: a temp folder)")
    parser.add_argument("--model", metavar="MODEL_TYPE",
                        help="model new sessions start on (default: the remembered one, else t2v)")
    parser.add_argument("--mcp", action="store_true",
                        help="serve WanGP's MCP face (streamable HTTP at /mcp) instead of the web UI")
    parser.add_argument("--mcp-load-delay", type=float, default=0.0, metavar="S",
                        help="MCP face: seconds a job spends loading the model before its first step")
    return parser


def build_arg_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m vidbridge.plugins.mock_backend``."""
    parser = argparse.ArgumentParser(
        prog="python -m vidbridge.plugins.mock_backend",
        description="A fake Wan2GP (WanGP 12.60) gradio server that writes real MP4 files "
                    "and can inject faults.")
    return add_arguments(parser)


class _StopDuringStartup(BaseException):
    """Raised by the signal handler to abandon a start-up that a stop signal interrupted.

    A BaseException, like KeyboardInterrupt: gradio's import runs code under ``except Exception``
    that would swallow it and carry on starting."""


def serve(args: argparse.Namespace) -> int:
    """Run a server with parsed ``args`` until SIGINT/SIGTERM; prints the URL first.

    A signal during the start-up (seconds of importing gradio and building the app, far more on
    a loaded machine) abandons it at once instead of finishing it first; no URL is printed then.
    """
    from .server import MockServer

    try:
        server = MockServer(host=args.host, port=args.port, step_delay=args.step_delay, auth=args.auth,
                            faults=args.fault, full_surface=args.full_surface,
                            output_dir=args.output_dir, state_dir=args.state_dir, model=args.model,
                            allow_exit=True, mcp=getattr(args, "mcp", False),
                            mcp_options={"load_delay": getattr(args, "mcp_load_delay", 0.0)})
    except ValueError as exc:  # options that do not go together: say so, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()
    starting = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        stop.set()
        if starting.is_set():
            starting.clear()  # raise once: a second signal must not interrupt the clean-up
            raise _StopDuringStartup

    # Our handlers only while serving: a caller that runs serve() in-process gets its own back.
    previous: dict[int, Any] = {}
    try:
        try:
            starting.set()
            for signum in (signal.SIGINT, signal.SIGTERM):
                previous[signum] = signal.signal(signum, on_signal)
            server.start()
            starting.clear()
        except _StopDuringStartup:
            pass
        if not stop.is_set():
            print(f"Running on {server.url}", flush=True)
            stop.wait()
    finally:
        starting.clear()
        server.stop()
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    return serve(build_arg_parser().parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
