"""Telling a WanGP MCP server from a WanGP web UI, given ``http://h:p`` or ``http://h:p/mcp``.

One JSON-RPC ``initialize`` POST to ``<root>/mcp/`` (the real server answers ``/mcp`` with a 307
to ``/mcp/``), with the ``Accept`` header streamable HTTP requires. The server is WanGP's when its
``serverInfo.name`` is ``"WanGP"`` (its ``version`` is the mcp package's, kept in ``details``).
Raw HTTP, not an SDK session: a probe must be cheap, and stateless servers need no session.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from vidbridge import Endpoint

__all__ = ["mcp_url", "probe_mcp", "INITIALIZE"]

INITIALIZE = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
              "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                         "clientInfo": {"name": "vidbridge", "version": "0.1"}}}
_ACCEPT = "application/json, text/event-stream"


def mcp_url(url: str) -> str:
    """The MCP endpoint of a server given by its root or by its ``/mcp`` URL (``.../mcp/``)."""
    root = url.rstrip("/")
    return (root if root.endswith("/mcp") else f"{root}/mcp") + "/"


def _message(response: httpx.Response) -> Any:
    """The JSON-RPC message of a JSON or an SSE answer."""
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        for line in response.text.splitlines():
            if line.startswith("data:"):
                return json.loads(line[5:])
        return None
    return response.json()


def probe_mcp(http: httpx.Client, url: str, *, timeout: float, headers: dict[str, str]) -> Endpoint | None:
    """The endpoint at ``url`` if a WanGP MCP server answers there, else ``None``."""
    started = time.perf_counter()
    try:
        response = http.post(mcp_url(url), json=INITIALIZE, timeout=timeout, follow_redirects=True,
                             headers={**headers, "Accept": _ACCEPT, "Content-Type": "application/json"})
        message = _message(response) if response.is_success else None
    except (httpx.HTTPError, ValueError):
        return None
    result = message.get("result") if isinstance(message, dict) else None
    info = result.get("serverInfo") if isinstance(result, dict) else None
    if not isinstance(info, dict) or info.get("name") != "WanGP":
        return None
    return Endpoint(url=url, backend="wan2gp", transport="mcp", healthy=True, max_jobs=1,
                    latency_ms=(time.perf_counter() - started) * 1000,
                    details={"mcp_url": mcp_url(url), "mcp_sdk_version": info.get("version"),
                             "protocol": result.get("protocolVersion")})
