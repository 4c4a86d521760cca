"""The ASGI app of the MCP face: the SDK's streamable-HTTP app behind the mock's fault layer.

As WanGP runs it (``FastMCP(...).run("streamable-http")`` with ``json_response=True`` and
``stateless_http=True``): the endpoint is ``/mcp/`` (``/mcp`` answers 307 to it), every answer
is ``application/json``, no ``mcp-session-id`` is issued, ``tools/call`` works without
``initialize``, and the media transfer routes live on the same port. No Gradio route exists.
Protocol versions and methods are held to mcp 1.10.1's (:mod:`.protocol`).
DNS-rebinding protection is off, as on WanGP 12.60 (which predates it): the mock may be bound
to any interface a test chooses.
"""

from __future__ import annotations

from typing import Any

from ..backend import MockBackend
from ..middleware import FaultMiddleware
from . import transfer
from .protocol import WanGPProtocolGate
from .state import McpState
from .tools import build_server

MCP_PATH = "/mcp"


def build_asgi(backend: MockBackend, **state_options: Any) -> tuple[Any, McpState]:
    """``(asgi app, state)`` of one MCP face over ``backend``; ``state_options`` go to
    :class:`~.state.McpState` (``event_limit``, ``max_upload_bytes``, ``transfer_ttl``,
    ``load_delay``)."""
    from mcp.server.transport_security import TransportSecuritySettings

    state = McpState(backend, **state_options)
    server = build_server(state)
    for path, method, handler in transfer.routes(state.transfers):
        server.custom_route(path, methods=[method], include_in_schema=False)(handler)
    app = server.streamable_http_app(
        streamable_http_path=MCP_PATH + "/", json_response=True, stateless_http=True,
        transport_security=TransportSecuritySettings(enable_dns_rebinding_protection=False))
    return FaultMiddleware(WanGPProtocolGate(app, MCP_PATH + "/"), backend), state
