"""A connection to WanGP's MCP face: one SDK session, an HTTP client for media transfers, caches.

The SDK session is opened again when the server went away and answers again (a restart).
Credentials become headers on every request (WanGP's MCP has no authentication of its own; a
reverse proxy in front of it may want an API key). Model defaults and schemas are cached per
session; uploads are cached per file content (SHA-256), so one input goes to a server once.
"""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx

from vidbridge import BackendConnectionError, ConnectOptions, Credentials, Endpoint, InvalidRequestError, RejectedError
from vidbridge.backend import redact_url

from ..connection import headers_for
from .channel import Channel, ToolError
from .probe import mcp_url

__all__ = ["McpSession", "AVAILABILITY_PAGE"]

AVAILABILITY_PAGE = 100  # the most wangp_list_model_availability returns at once


class McpSession:
    """The plugin's session object for an endpoint with ``transport == "mcp"``."""

    face = "mcp"

    def __init__(self, endpoint: Endpoint, credentials: Credentials, options: ConnectOptions) -> None:
        self.endpoint = endpoint
        self.url = endpoint.url
        self.credentials = credentials
        self.options = options
        self.mcp_url = str(endpoint.details.get("mcp_url") or mcp_url(endpoint.url))
        self.headers = headers_for(credentials)
        self.http = httpx.Client(headers=self.headers, timeout=options.request_timeout, follow_redirects=True,
                                 verify=options.verify_tls)
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], Any] = {}
        self._uploads: dict[str, str] = {}  # sha256 -> gallery id on this server
        self._reopening = threading.Lock()
        try:
            self.channel = self._open()
        except BaseException:
            self.http.close()
            raise
        self.closed = False

    def __repr__(self) -> str:
        return f"<McpSession {redact_url(self.mcp_url)}>"

    def _open(self) -> Channel:
        return Channel(self.mcp_url, headers=self.headers, timeout=self.options.connect_timeout)

    def _live_channel(self) -> Channel:
        """The SDK session, opened again when the last one ended because the server went away
        (one attempt per call: the server answers statelessly, so a restarted one takes it).

        :raises BackendConnectionError: the server still does not answer, or this session is closed.
        """
        with self._reopening:
            if self.channel.closed and not self.closed:
                self.channel.close()
                self.channel = self._open()
            return self.channel

    def call(self, tool: str, arguments: dict[str, Any], *, timeout: float | None = None) -> Any:
        """One tool call (see :meth:`.channel.Channel.call`) on a live SDK session."""
        return self._live_channel().call(tool, arguments, timeout=timeout or self.options.request_timeout)

    def model_info(self, tool: str, model: str) -> dict[str, Any]:
        """``tool(model_type=model)`` (default settings or schema), cached.

        :raises InvalidRequestError: the server does not know ``model``.
        """
        key = (tool, model)
        with self._lock:
            if key in self._cache:
                return self._cache[key]
        try:
            value = self.call(tool, {"model_type": model})
        except ToolError as exc:
            raise InvalidRequestError(f"model: {model!r} is not a model of this WanGP server ({exc.message})",
                                      field="model", allowed="a model_type of `vidbridge models --url`") from None
        if not isinstance(value, dict):
            raise InvalidRequestError(f"model: {model!r} is not a model of this WanGP server", field="model",
                                      allowed="a model_type of `vidbridge models --url`")
        with self._lock:
            self._cache[key] = value
        return value

    def default_model(self) -> str | None:
        """The model of the server's default video template (what WanGP's agent uses when the
        user names no model), cached; ``None`` when the server has none."""
        with self._lock:
            if ("template", "gen_video") in self._cache:
                return self._cache[("template", "gen_video")]
        try:
            template = self.call("wangp_get_deepy_template_settings", {"tool_id": "gen_video", "template": "default"})
            model = (template.get("settings") or {}).get("model_type")
        except (ToolError, AttributeError):
            model = None
        model = model if isinstance(model, str) and model else None
        with self._lock:
            self._cache[("template", "gen_video")] = model
        return model

    def model_catalog(self) -> list[dict[str, Any]]:
        """Every model of the server with its weights' availability, as WanGP reports it
        (``wangp_list_model_availability``, read page by page): ``{"model", "availability",
        "available"}`` with availability ``"available"``, ``"partial"`` or ``"missing"``."""
        catalog: list[dict[str, Any]] = []
        while True:
            page = self.call("wangp_list_model_availability", {"limit": AVAILABILITY_PAGE, "offset": len(catalog)})
            rows = [row for row in page if isinstance(row, dict)] if isinstance(page, list) else []
            catalog += [{"model": str(row.get("model_type")), "availability": row.get("status"),
                         "available": row.get("available")} for row in rows]
            if len(rows) < AVAILABILITY_PAGE:
                return catalog

    def loras(self, model: str) -> list[str]:
        """The LoRA files WanGP offers for ``model`` (``wangp_list_loras``).

        :raises InvalidRequestError: the server does not know ``model``.
        """
        try:
            answer = self.call("wangp_list_loras", {"model_type": model})
        except ToolError as exc:
            raise InvalidRequestError(f"model: {model!r} is not a model of this WanGP server ({exc.message})",
                                      field="model", allowed="a model_type of `vidbridge models --url`") from None
        return [str(name) for name in (answer.get("loras") or ())] if isinstance(answer, dict) else []

    def upload(self, path: Path) -> str:
        """The gallery id of ``path`` on this server, uploading it the first time its content is seen.

        :raises RejectedError: the server refused the file (its message).
        """
        data = Path(path).read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        with self._lock:
            if digest in self._uploads:
                return self._uploads[digest]
        try:
            ticket = self.call("wangp_create_gallery_upload", {"filename": Path(path).name})
        except ToolError as exc:
            raise RejectedError(f"{path.name}: WanGP refused the upload: {exc.message}", endpoint=redact_url(self.url),
                                server_message=exc.message) from None
        target = urljoin(self.mcp_url, ticket["upload_url"])
        try:
            response = self.http.request(ticket.get("method", "PUT"), target, content=data)
        except httpx.HTTPError as exc:
            raise BackendConnectionError(f"upload of {path.name} failed: {exc}", endpoint=redact_url(self.url)) from exc
        if not response.is_success:
            raise RejectedError(f"{path.name}: WanGP refused the upload ({response.status_code}: {response.text[:200]})",
                                endpoint=redact_url(self.url), server_message=response.text[:500])
        gallery_id = response.json()["gallery_id"]
        with self._lock:
            self._uploads[digest] = gallery_id
        return gallery_id

    def download_url(self, gallery_id: str) -> dict[str, Any]:
        """A one-use download ticket for a gallery item, its URL made absolute."""
        ticket = dict(self.call("wangp_create_gallery_download", {"gallery_id": gallery_id}))
        ticket["download_url"] = urljoin(self.mcp_url, ticket["download_url"])
        return ticket

    def close(self) -> None:
        """Close the SDK session and the HTTP client (idempotent)."""
        if self.closed:
            return
        self.closed = True
        with self._reopening:  # a reopening under way ends first, so its channel is the one closed
            self.channel.close()
        self.http.close()
