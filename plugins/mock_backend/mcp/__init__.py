"""WanGP's MCP face in the mock: ``MockServer(mcp=True)`` / ``vidbridge mock-server --mcp``.

The real WanGP 12.60 started with ``--mcp --mcp-transport streamable-http`` serves an MCP server
(FastMCP of the official ``mcp`` SDK) instead of its web UI; this subpackage reproduces it as
a client sees it (``/work/shared/wan2gp/mcp-12.60/``): the 22 tools with their schemas, result
encoding and errors, one generation at a time, job snapshots and events, one-use media transfer
URLs, on top of the same generation code (real MP4s), counter and faults as the gradio face.

Modules: :mod:`.app` (ASGI app), :mod:`.tools` (the tools), :mod:`.jobs` (job lifecycle),
:mod:`.gallery`, :mod:`.transfer`, :mod:`.models` (discovery records), :mod:`.state`.
Needs the ``mcp`` package (the ``mock`` extra).
"""
