"""Keep the SDK to what WanGP 12.60's server speaks: mcp 1.10.1's protocol versions and methods.

The mock runs a current ``mcp`` SDK, which also knows protocol ``2025-11-25`` and the stateless
``2026-07-28`` envelope (``server/discover``). WanGP pins ``mcp==1.10.1``, so a client that
works against the mock must also cope with the older server: this ASGI layer, in front of the
SDK app, answers as 1.10.1 does (``/work/shared/wan2gp/mcp-12.60/http.txt``):

* an ``MCP-Protocol-Version`` header outside 2024-11-05 / 2025-03-26 / 2025-06-18 (on anything
  but ``initialize``) -> 400 ``Bad Request: Unsupported protocol version: ...``;
* ``initialize`` asking a newer version -> negotiated down to ``2025-06-18``;
* a request method 1.10.1 does not know (``server/discover``, ``tools/nope``) -> JSON-RPC error
  -32602 ``Invalid request parameters``;
* a POST not accepting both ``application/json`` and ``text/event-stream`` -> 406, a body that is
  not JSON -> 400 ``Parse error: <json's message>``, a DELETE -> 405, each with 1.10.1's
  ``"id": "server-error"`` (the current SDK says ``null``).

So the SDK client's ``mode="auto"`` probe falls back to the ``initialize`` handshake here, as it
does against the real server.
"""

from __future__ import annotations

import json
from typing import Any

from ..middleware import Receive, Scope, Send, _read_body

WANGP_PROTOCOL_VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18")
# The client requests mcp 1.10.1's server dispatches (others fail its request validation).
WANGP_METHODS = frozenset({
    "initialize", "ping", "tools/list", "tools/call", "resources/list", "resources/templates/list",
    "resources/read", "resources/subscribe", "resources/unsubscribe", "prompts/list", "prompts/get",
    "logging/setLevel", "completion/complete",
})


class WanGPProtocolGate:
    """ASGI middleware for the MCP endpoint ``path`` (see the module docstring)."""

    def __init__(self, app: Any, path: str) -> None:
        self.app = app
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != self.path or scope["method"] not in {"POST", "DELETE"}:
            return await self.app(scope, receive, send)
        if scope["method"] == "DELETE":
            return await _answer(send, 405, _server_error(
                -32600, "Method Not Allowed: Session termination not supported"))
        accepted = {part.split(";")[0].strip() for part in (_header(scope, b"accept") or "").split(",")}
        if not {"application/json", "text/event-stream"} <= accepted:
            return await _answer(send, 406, _server_error(
                -32600, "Not Acceptable: Client must accept both application/json and text/event-stream"))
        if not (_header(scope, b"content-type") or "").startswith("application/json"):
            return await self.app(scope, receive, send)  # the SDK's 400 is 1.10.1's
        body = await _read_body(receive)
        try:
            message = json.loads(body)
        except ValueError as exc:  # the stdlib's text, as 1.10.1 reports it
            return await _answer(send, 400, _server_error(-32700, f"Parse error: {exc}"))
        if isinstance(message, dict):
            refusal = _refusal(message, _header(scope, b"mcp-protocol-version"))
            if refusal is not None:
                return await _answer(send, *refusal)
            body = _negotiated(message, body)
        await self.app(scope, _replay(body, receive), send)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers") or ():
        if key.lower() == name:
            return value.decode("latin-1")
    return None


def _refusal(message: dict[str, Any], version: str | None) -> tuple[int, dict[str, Any]] | None:
    """``(status, JSON body)`` WanGP's server would answer instead, or None to pass on."""
    method = message.get("method")
    if method != "initialize" and version is not None and version not in WANGP_PROTOCOL_VERSIONS:
        return 400, _server_error(-32600, f"Bad Request: Unsupported protocol version: {version}. "
                                          f"Supported versions: {', '.join(WANGP_PROTOCOL_VERSIONS)}")
    if isinstance(method, str) and "id" in message and method not in WANGP_METHODS:
        return 200, {"jsonrpc": "2.0", "id": message["id"],
                     "error": {"code": -32602, "message": "Invalid request parameters", "data": ""}}
    return None


def _server_error(code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": "server-error", "error": {"code": code, "message": message}}


def _negotiated(message: dict[str, Any], body: bytes) -> bytes:
    """``body``, with an ``initialize`` asking a version WanGP lacks asking its newest instead."""
    params = message.get("params")
    if message.get("method") != "initialize" or not isinstance(params, dict):
        return body
    if params.get("protocolVersion") in WANGP_PROTOCOL_VERSIONS:
        return body
    asked = {**params, "protocolVersion": WANGP_PROTOCOL_VERSIONS[-1]}
    return json.dumps({**message, "params": asked}).encode()


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` giving ``body`` first, then what the connection says (e.g. a disconnect)."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> dict[str, Any]:
        return pending.pop() if pending else await receive()

    return replay


async def _answer(send: Send, status: int, payload: dict[str, Any]) -> None:
    data = json.dumps(payload, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})
