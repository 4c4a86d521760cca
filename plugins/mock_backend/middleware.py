"""ASGI layer in front of the gradio app: fault injection and the admin routes.

Connection resets need the TCP transport, which ASGI does not expose: :class:`TransportAwareH11`
(a uvicorn protocol) publishes it through a context variable that the request's task inherits.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
import socket
import struct
from typing import Any, Awaitable, Callable

from uvicorn.protocols.http.h11_impl import H11Protocol

from .backend import MockBackend
from .faults import ADMIN_PREFIX, FaultSpecError, hostile_name

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

_transport: contextvars.ContextVar[Any] = contextvars.ContextVar("vidbridge_mock_transport",
                                                                 default=None)
_LOOPBACK = {"127.0.0.1", "::1", "localhost"}


class TransportAwareH11(H11Protocol):
    """uvicorn's h11 protocol, exposing the connection's transport to the ASGI app."""

    def data_received(self, data: bytes) -> None:
        _transport.set(self.transport)  # inherited by the request task created below
        super().data_received(data)


async def reset_connection(hard: bool = True) -> None:
    """End the current connection: with a TCP RST (SO_LINGER 0) as a crashing proxy would, or
    (``hard=False``) with a plain close after flushing what was already sent."""
    transport = _transport.get()
    if transport is None:
        raise ConnectionResetError("simulated connection reset")
    sock = transport.get_extra_info("socket")
    if hard and sock is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    if hard:
        transport.abort()
    else:
        transport.close()
    await asyncio.sleep(0)  # let uvicorn see the disconnect, so it does not answer a 500


class FaultMiddleware:
    """Applies the backend's HTTP faults to matching requests and serves ``/mock_admin``."""

    def __init__(self, app: Any, backend: MockBackend) -> None:
        self.app = app
        self.backend = backend

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        path = scope["path"]
        if path.startswith(ADMIN_PREFIX):
            return await self.admin(scope, receive, send)
        faults = self.backend.faults.take(
            ("latency", "status", "reset", "truncate", "corrupt", "slow", "hostile_name"), path)
        by_kind = {f.kind: f for f in faults}
        if "latency" in by_kind:
            await asyncio.sleep(by_kind["latency"].number("seconds", 0.5))
        if "reset" in by_kind:
            return await reset_connection()
        if "status" in by_kind:
            return await self.status(send, by_kind["status"])
        if "hostile_name" in by_kind:
            # The file names are rewritten in the JSON text: ask the app for an uncompressed body.
            scope = {**scope, "headers": [(k, v) for k, v in scope["headers"]
                                          if k.lower() != b"accept-encoding"]}
        if by_kind.keys() & {"truncate", "corrupt", "slow", "hostile_name"}:
            send = BodyRewriter(send, by_kind).send
        await self.app(scope, receive, send)

    async def status(self, send: Send, fault: Any) -> None:
        code = int(fault.number("code", 503))
        headers = [(b"content-type", b"application/json")]
        if code in (429, 503):
            headers.append((b"retry-after", str(int(fault.number("retry_after", 1))).encode()))
        body = json.dumps({"detail": f"Simulated HTTP {code}"}).encode()
        headers.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": code, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def admin(self, scope: Scope, receive: Receive, send: Send) -> None:
        client = (scope.get("client") or ("", 0))[0]
        method, route = scope["method"], scope["path"][len(ADMIN_PREFIX):]
        status, payload = 200, None
        if client not in _LOOPBACK:
            status, payload = 403, {"detail": "admin routes are loopback only"}
        elif route == "/faults" and method == "GET":
            payload = self.backend.faults.describe()
        elif route == "/faults" and method == "POST":
            body = await _read_body(receive)
            try:
                specs = json.loads(body or b"{}").get("faults", [])
                for spec in [specs] if isinstance(specs, str) else specs:
                    self.backend.faults.add(spec)
                payload = self.backend.faults.describe()
            except (FaultSpecError, ValueError, AttributeError) as exc:
                status, payload = 400, {"detail": str(exc)}
        elif route == "/faults" and method == "DELETE":
            self.backend.faults.clear()
            payload = []
        elif route == "/counter" and method == "GET":
            payload = self.backend.ledger.snapshot()
        elif route == "/counter" and method == "DELETE":
            self.backend.ledger.reset()
            payload = self.backend.ledger.snapshot()
        elif route == "/options" and method == "POST":
            body = json.loads(await _read_body(receive) or b"{}")
            if "step_delay" in body:
                self.backend.options.step_delay = float(body["step_delay"])
            payload = {"step_delay": self.backend.options.step_delay}
        elif route == "/options":
            payload = {"step_delay": self.backend.options.step_delay}
        elif route == "/health":
            payload = {"ok": True, "last_model": self.backend.last_model.model_type,
                       "output_dir": str(self.backend.output_dir)}
        else:
            status, payload = 404, {"detail": "unknown admin route"}
        body = json.dumps(payload).encode()
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


class BodyRewriter:
    """Wraps ``send`` to damage a response body: truncate, corrupt, trickle, or rename files."""

    def __init__(self, send: Send, faults: dict[str, Any]) -> None:
        self._send = send
        self.faults = faults
        self.length: int | None = None
        self.sent = 0
        self.cut = False
        self.pending = b""  # an incomplete line held back while renaming (SSE may split lines)

    async def send(self, message: dict[str, Any]) -> None:
        if self.cut:
            return
        if message["type"] == "http.response.start":
            headers = dict(message.get("headers") or [])
            if b"content-length" in headers:
                self.length = int(headers[b"content-length"])
            if "hostile_name" in self.faults:  # the body changes length: drop the header
                message = {**message, "headers": [(k, v) for k, v in message.get("headers", [])
                                                  if k.lower() != b"content-length"]}
            return await self._send(message)
        if message["type"] != "http.response.body":
            return await self._send(message)
        body = message.get("body", b"")
        if "hostile_name" in self.faults:
            data, self.pending = self.pending + body, b""
            if message.get("more_body", False):  # hold back a trailing incomplete line
                complete, newline, self.pending = data.rpartition(b"\n")
                data = complete + newline
            body = _rename_files(data, hostile_name(self.faults["hostile_name"]))
        if "corrupt" in self.faults and body:
            body = _flip(body, self.sent)
        if "truncate" in self.faults and self.length:
            limit = int(self.length * self.faults["truncate"].number("keep", 0.5))
            if self.sent + len(body) >= limit:
                await self._send({"type": "http.response.body", "body": body[:max(0, limit - self.sent)],
                                  "more_body": True})
                self.cut = True
                return await reset_connection(hard=False)
        self.sent += len(body)
        if "slow" in self.faults and body:
            return await self._trickle(message, body)
        await self._send({**message, "body": body})

    async def _trickle(self, message: dict[str, Any], body: bytes) -> None:
        rate = max(1, int(self.faults["slow"].number("rate", 65536)))
        chunk = max(1, rate // 10)
        more = message.get("more_body", False)
        for start in range(0, len(body), chunk):
            last = start + chunk >= len(body)
            await self._send({"type": "http.response.body", "body": body[start:start + chunk],
                              "more_body": more or not last})
            await asyncio.sleep(0.1)


def _flip(body: bytes, offset: int) -> bytes:
    """Invert every 997th byte (counted over the whole body): same length, different hash."""
    data = bytearray(body)
    for index in range(-offset % 997, len(data), 997):
        data[index] ^= 0xFF
    return bytes(data)


def _rename_files(body: bytes, name: str) -> bytes:
    """Replace ``orig_name`` of the FileData in SSE/JSON messages by a hostile ``name``."""
    lines = body.split(b"\n")
    for i, line in enumerate(lines):
        prefix = b"data: " if line.startswith(b"data: ") else b""
        if b'"orig_name"' not in line:
            continue
        try:
            message = json.loads(line[len(prefix):])
        except ValueError:
            continue
        lines[i] = prefix + json.dumps(_replace_names(message, name)).encode()
    return b"\n".join(lines)


def _replace_names(value: Any, name: str) -> Any:
    if isinstance(value, dict):
        out = {k: _replace_names(v, name) for k, v in value.items()}
        if out.get("orig_name") and out.get("path"):
            out["orig_name"] = name
        return out
    if isinstance(value, list):
        return [_replace_names(v, name) for v in value]
    return value
