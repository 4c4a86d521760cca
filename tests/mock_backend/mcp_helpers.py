"""MCP SDK client helpers for the tests of the mock's MCP face (official SDK, real server)."""

from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

FOX = {"model_type": "t2v_1.3B", "prompt": "a red fox running through snow", "resolution": "832x480",
       "video_length": 17, "num_inference_steps": 4, "seed": 7}


def session(url: str, body: Callable[[Any], Awaitable[Any]]) -> Any:
    """Run ``body(client_session)`` in one initialised SDK session to ``url``."""
    from mcp import ClientSession
    from mcp.client.streamable_http import streamable_http_client

    async def main() -> Any:
        async with streamable_http_client(url) as (read, write, *_):
            async with ClientSession(read, write) as client:
                await client.initialize()
                return await body(client)

    return asyncio.run(main())


def call(url: str, tool: str, arguments: dict[str, Any]) -> Any:
    """One tool call in its own session (the SDK's CallToolResult)."""
    return session(url, lambda client: client.call_tool(tool, arguments))


def text_of(result: Any) -> str:
    return "".join(block.text for block in result.content)


def calls(url: str, *requests: tuple[str, dict[str, Any]]) -> list[Any]:
    """Several tool calls in one session, results in order."""
    async def body(client: Any) -> list[Any]:
        return [await client.call_tool(name, arguments) for name, arguments in requests]

    return session(url, body)

