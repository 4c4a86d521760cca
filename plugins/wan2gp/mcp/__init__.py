"""WanGP's MCP face (``python wgp.py --mcp --mcp-transport streamable-http``), through the official
``mcp`` SDK (extra ``vidbridge[mcp]``).

One concept per module: :mod:`.channel` (a synchronous bridge to one SDK client session),
:mod:`.probe` (telling an MCP server from a web UI), :mod:`.settings` (a request as WanGP settings,
checked against the server's own defaults and schema), :mod:`.session` (the connection: channel,
HTTP client for media transfers, caches) and :mod:`.job` (one job: submit, follow, cancel, fetch).

WanGP's MCP face runs one generation per server and refuses a second: the endpoint declares
``max_jobs=1``, so the core queues further jobs locally, and a refusal as busy anyway (another
client) is waited out and retried, never reported as a failure.
"""
