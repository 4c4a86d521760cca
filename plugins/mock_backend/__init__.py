"""A fake Wan2GP (WanGP 12.60) for tests, demos and host development.

A real gradio app with WanGP's API surface as gradio_client sees it (endpoint names with their
``_N`` suffixes, parameter names, components, defaults, per-session state, the multi-call
generation flow), writing real H.264 MP4 files, with injectable faults. Public names:

* :class:`MockServer` - in-process server (context manager), :class:`SubprocessMockServer`;
  with ``mcp=True`` either serves WanGP's MCP face instead (:mod:`.mcp`, at ``http://HOST:PORT/mcp``);
* :func:`build_arg_parser`, :func:`add_arguments`, :func:`serve` - the command line;
* :func:`add_faults`, :func:`clear_faults`, :func:`list_faults`, :func:`read_counter`,
  :func:`reset_counter`, :func:`set_options`, :func:`parse_fault` - faults and the generation counter over HTTP.

The fault spec syntax (``KIND[:key=value,...]``, e.g. ``429:route=join,count=2``) and the
loopback-only admin routes (``/mock_admin/...``) are documented in :mod:`.faults`
(``vidbridge.plugins.mock_backend.faults``); ``plugins/mock_backend/README.md`` has examples.

Imports are lazy: importing this package loads neither gradio nor av. The server side needs only
gradio, av, numpy and pillow (not vidbridge's core dependencies).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "MockServer": "server",
    "SubprocessMockServer": "server",
    "build_arg_parser": "cli",
    "add_arguments": "cli",
    "serve": "cli",
    "add_faults": "faults",
    "clear_faults": "faults",
    "list_faults": "faults",
    "read_counter": "faults",
    "reset_counter": "faults",
    "parse_fault": "faults",
    "set_options": "faults",
    "FaultSpecError": "faults",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
