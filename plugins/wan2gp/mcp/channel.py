"""A synchronous bridge to one ``mcp`` SDK client session over streamable HTTP.

The SDK is asyncio-only; vidbridge's jobs run on threads. A :class:`Channel` owns one event loop
on a daemon thread and one initialised :class:`mcp.ClientSession`; :meth:`Channel.call` runs a tool
call on that loop from any thread and returns its structured result.

Both SDK generations are supported: 1.x names the transport ``streamablehttp_client(url,
headers=...)`` and its results use camelCase (``isError``, ``structuredContent``); 2.x has
``streamable_http_client(url, http_client=...)`` (headers go on the ``httpx2.AsyncClient`` it is
given) and snake_case fields. :func:`open_transport` and :func:`_field` are the only places that know.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from typing import Any, Mapping

from vidbridge import BackendConnectionError, PluginError

__all__ = ["Channel", "ToolError", "open_transport", "tool_result"]


class ToolError(Exception):
    """A tool answered ``isError``: ``message`` is WanGP's text without the SDK's prefix."""

    def __init__(self, tool: str, message: str) -> None:
        prefix = f"Error executing tool {tool}: "
        self.tool = tool
        self.message = message[len(prefix):] if message.startswith(prefix) else message
        super().__init__(self.message)


def open_transport(url: str, headers: Mapping[str, str], timeout: float) -> contextlib.AbstractAsyncContextManager:
    """The SDK's streamable-HTTP client context for ``url`` (1.x or 2.x API), sending ``headers``."""
    try:
        from mcp.client import streamable_http
    except ImportError as exc:  # the extra is not installed
        raise PluginError("WanGP's MCP face needs the mcp SDK: pip install 'vidbridge[mcp]'", plugin="wan2gp") from exc
    modern = getattr(streamable_http, "streamable_http_client", None)
    if modern is not None:
        import httpx2  # what mcp 2.x is built on

        @contextlib.asynccontextmanager
        async def opened() -> Any:
            async with httpx2.AsyncClient(headers=dict(headers), timeout=httpx2.Timeout(timeout, read=None),
                                         follow_redirects=True) as http:
                async with modern(url, http_client=http) as streams:
                    yield streams
        return opened()
    return streamable_http.streamablehttp_client(url, headers=dict(headers), timeout=timeout)  # mcp 1.x


def _field(value: Any, snake: str, camel: str) -> Any:
    """A result field under its 2.x (snake_case) or 1.x (camelCase) name."""
    return getattr(value, snake, None) if hasattr(value, snake) else getattr(value, camel, None)


def tool_result(tool: str, result: Any) -> Any:
    """The value a tool returned: ``structuredContent`` (a list unwrapped from ``{"result": ...}``),
    else the JSON of its text blocks.

    :raises ToolError: the result is ``isError``.
    """
    texts = [getattr(block, "text", "") for block in result.content or ()]
    if _field(result, "is_error", "isError"):
        raise ToolError(tool, "".join(texts))
    structured = _field(result, "structured_content", "structuredContent")
    if isinstance(structured, dict):
        return structured["result"] if set(structured) == {"result"} else structured
    values = [json.loads(text) for text in texts]
    return values[0] if len(values) == 1 else values


class Channel:
    """One SDK session on its own event loop thread; :meth:`call` is thread-safe; :meth:`close`
    is idempotent.

    :raises BackendConnectionError: (from the constructor) the session could not be initialised.
    """

    def __init__(self, url: str, *, headers: Mapping[str, str], timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self.server_info: dict[str, Any] = {}
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._client: Any = None
        self._thread = threading.Thread(target=self._run, args=(headers,), name="wan2gp-mcp", daemon=True)
        self._thread.start()
        self._ready.wait()
        if self._failure is not None:
            self._thread.join()
            raise BackendConnectionError(f"cannot open an MCP session to {url}: {self._failure}",
                                         endpoint=url) from self._failure

    def _run(self, headers: Mapping[str, str]) -> None:
        try:
            self._loop.run_until_complete(self._serve(headers))
        except BaseException as exc:  # reported by the constructor when it happens at start
            if not self._ready.is_set():
                self._failure = exc
        finally:
            self._ready.set()
            self._loop.close()

    async def _serve(self, headers: Mapping[str, str]) -> None:
        from mcp import ClientSession

        self._stop = asyncio.Event()
        async with open_transport(self.url, headers, self.timeout) as (read, write, *_):
            async with ClientSession(read, write) as client:
                initialized = await asyncio.wait_for(client.initialize(), self.timeout)
                info = _field(initialized, "server_info", "serverInfo")
                self.server_info = info.model_dump() if info is not None else {}
                self._client = client
                self._ready.set()
                await self._stop.wait()

    def call(self, tool: str, arguments: dict[str, Any], *, timeout: float | None = None) -> Any:
        """Call ``tool`` and return its value (see :func:`tool_result`).

        :raises ToolError: the tool failed (WanGP's message).
        :raises BackendConnectionError: the session is closed or the server cannot be reached.
        """
        if self.closed:
            raise BackendConnectionError(f"the MCP session to {self.url} is closed", endpoint=self.url)
        wait = timeout or self.timeout
        try:
            future = asyncio.run_coroutine_threadsafe(
                asyncio.wait_for(self._client.call_tool(tool, arguments), wait), self._loop)
        except RuntimeError as exc:  # the loop stopped in between
            raise BackendConnectionError(f"the MCP session to {self.url} is closed", endpoint=self.url) from exc
        try:
            result = future.result()
        except (ToolError, BackendConnectionError):
            raise
        except Exception as exc:  # transport errors, timeouts, the SDK's McpError
            raise BackendConnectionError(f"{tool} on {self.url} failed: {type(exc).__name__}: {exc}",
                                         endpoint=self.url) from exc
        return tool_result(tool, result)

    @property
    def closed(self) -> bool:
        """True once the session ended: closed, or its server went away (the SDK ends it then)."""
        return self._client is None or self._loop.is_closed()

    def close(self) -> None:
        """End the SDK session and its loop thread (idempotent)."""
        if self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
