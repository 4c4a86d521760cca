"""vidbridge hook implementations of the mock backend: ``vidbridge mock-server`` and the embedded default.

This is the only module of the package that imports the vidbridge core: the server side must run
with gradio alone (see the package docstring). The mock is a fake *Wan2GP*, so it does not
connect or submit itself: the ``wan2gp`` plugin talks to it like to the real server.
"""

from __future__ import annotations

import argparse
import contextlib
from typing import Any, Iterator

from vidbridge import hookimpl

from .cli import add_arguments, serve

__all__ = ["vidbridge_register_commands", "vidbridge_embedded_backend", "EMBEDDED_STEP_DELAY"]

#: Seconds per denoising step of the embedded server: short, yet long enough to show progress.
EMBEDDED_STEP_DELAY = 0.02


@hookimpl
def vidbridge_register_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``vidbridge mock-server``: the same options as ``python -m vidbridge.plugins.mock_backend``."""
    parser = subparsers.add_parser(
        "mock-server",
        help="run the fake Wan2GP gradio server, or with --mcp its MCP face (prints its URL; Ctrl-C stops it)",
        description="A fake Wan2GP (WanGP 12.60) gradio server that writes real MP4 files and can inject faults.",
    )
    add_arguments(parser)
    parser.set_defaults(handler=serve)


@hookimpl
def vidbridge_embedded_backend(options: dict[str, Any]) -> contextlib.AbstractContextManager[str]:
    """An in-process mock server on a free loopback port, for when no server is configured."""
    return _embedded(float(options.get("step_delay", EMBEDDED_STEP_DELAY)))


@contextlib.contextmanager
def _embedded(step_delay: float) -> Iterator[str]:
    from .server import MockServer

    with MockServer(port=0, step_delay=step_delay) as server:
        yield server.url
