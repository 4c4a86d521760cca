"""Building gradio Clients for one WanGP server: auth, a cached API description, and closing.

Where ``Client(url)`` spends its time on a server of WanGP's size (about 2200 components and
650 events), read from gradio_client 2.7.2:

1. ``GET /config`` (small cost);
2. ``GET /gradio_api/info`` — the server builds the whole API description (~0.44 s on WanGP);
3. one ``Endpoint`` object per event, each scanning the component list linearly for every input
   and output (``Endpoint._get_component_type``): quadratic, ~0.28 s of client CPU.

:func:`build_client` removes 2 on a warm connect (the description is cached, keyed by a fingerprint
of ``/config``, in the process's bounded memory and in ``cache_dir``: see :mod:`.apicache`) and 3
always (the compat module's ``FastClient`` builds endpoints lazily, only for the handful this
plugin calls). ``/config`` is fetched once over the pooled HTTP client and handed to gradio_client
instead of being fetched again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from typing import Any, Callable, Mapping

import httpx

from vidbridge import AuthenticationError, BackendConnectionError, Credentials, VidbridgeError
from vidbridge.backend import redact_url, register_secrets

from .apicache import ApiCache
from .apicache import public_info as _public_info
from .compat import FastClient, quiet_environment, stop_client
from .errors import translate
from .signals import shared_ssl_context

__all__ = ["ServerInfo", "fetch_server_info", "login", "close_client", "build_client", "ApiCache", "UploadCache",
           "headers_for"]

log = logging.getLogger("vidbridge.plugins.wan2gp")


def config_fingerprint(config: Mapping[str, Any]) -> str:
    """SHA-256 over the parts of ``/config`` that shape the API (not volatile fields)."""
    stable = {k: v for k, v in config.items() if k not in ("root", "session_hash", "username")}
    return hashlib.sha256(json.dumps(stable, sort_keys=True, default=str).encode()).hexdigest()


class UploadCache:
    """Server-side FileData of uploaded inputs, by (server, SHA-256): each file is uploaded once."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_hash: dict[str, dict[str, Any]] = {}
        self.uploads = 0  # actual uploads made (for tests and diagnostics)

    @staticmethod
    def digest(path: str) -> str:
        """SHA-256 of a local file."""
        sha = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                sha.update(chunk)
        return sha.hexdigest()

    def get_or_upload(self, path: str, upload: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """The cached FileData for ``path``'s content, uploading with ``upload()`` on a miss."""
        key = self.digest(path)
        with self._lock:
            hit = self._by_hash.get(key)
        if hit is not None:
            return dict(hit)
        result = upload()
        with self._lock:
            self._by_hash[key] = dict(result)
            self.uploads += 1
        return result

    def clear(self) -> None:
        """Forget everything (the server may have restarted and lost its upload folder)."""
        with self._lock:
            self._by_hash.clear()


class ServerInfo:
    """What we know about a server before building Clients: config, API description, cookies."""

    def __init__(self, url: str, config: dict[str, Any], info: dict[str, Any], cookies: dict[str, str],
                 fingerprint: str, api_cached: bool) -> None:
        self.url = url
        self.config = config
        self.info = info
        self.cookies = cookies
        self.fingerprint = fingerprint
        self.api_cached = api_cached

    @property
    def api_prefix(self) -> str:
        """``gradio_api/`` on gradio 5+ (empty on very old servers)."""
        return str(self.config.get("api_prefix", "")).strip("/") + "/" if self.config.get("api_prefix") else ""

    @property
    def src_prefixed(self) -> str:
        """Base URL of the gradio API routes, as gradio_client computes it."""
        return f"{self.url}/{self.api_prefix}"


def _forget_cookies(http: httpx.Client, response: httpx.Response) -> None:
    """Remove from the shared client's jar every cookie ``response`` set.

    httpx stores a response's cookies in the client's jar before handing the response back, and
    that client is shared with every plugin and server; a gradio auth cookie left there would be
    sent with other callers' requests. Only this session may hold it (in :class:`ServerInfo`).
    A same-named cookie the jar held before for that domain and path is removed as well: the
    response had replaced it anyway. httpx has no per-request switch to keep a response's cookies
    out of the client's jar, so a request another thread builds to the same host between httpx's
    extraction and this call (microseconds) could still carry them.
    """
    jar = http.cookies.jar
    for cookie in response.cookies.jar:
        try:
            jar.clear(cookie.domain, cookie.path, cookie.name)
        except KeyError:
            pass


def _send_isolated(http: httpx.Client, request: httpx.Request, cookies: Mapping[str, str]) -> httpx.Response:
    # Cookies per request, never through the shared client's jar, so sessions never leak into
    # each other: the jar's cookies are not sent, and what the response sets is not kept there.
    if cookies:
        request.headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
    else:
        request.headers.pop("Cookie", None)
    response = http.send(request, stream=True)  # headers only: forget the cookies even if the body fails
    try:
        _forget_cookies(http, response)
        response.read()
    finally:
        response.close()
    return response


def _http_get(http: httpx.Client, url: str, *, headers: dict[str, str], cookies: dict[str, str],
              timeout: float) -> httpx.Response:
    """GET ``url`` with exactly ``cookies`` (none from the shared client's jar; none kept in it)."""
    request = http.build_request("GET", url, headers=headers, timeout=timeout)
    return _send_isolated(http, request, cookies)


def login(http: httpx.Client, url: str, credentials: Credentials, *, headers: dict[str, str],
          timeout: float) -> dict[str, str]:
    """Log in with gradio auth over our own HTTP client (so proxy headers are sent too).

    gradio_client's own login drops ``headers``, which fails behind an API-key proxy. The cookies
    the server sets are returned, not left in ``http``'s (shared) cookie jar.

    :raises AuthenticationError: refused credentials (``reason="refused"``).
    """
    assert credentials.username is not None and credentials.password is not None
    try:
        request = http.build_request(
            "POST",
            f"{url}/login",
            data={"username": credentials.username, "password": credentials.password.get_secret_value()},
            headers=headers,
            timeout=timeout,
        )
        response = _send_isolated(http, request, {})
    except httpx.HTTPError as exc:
        raise translate(exc, endpoint=url, step="logging in") from None
    if response.status_code in (400, 401, 403):
        shown = redact_url(url)
        raise AuthenticationError(f"{shown}: the server refused the username/password (wrong password or user)",
                                  endpoint=shown, reason="refused")
    if not response.is_success:
        raise translate(httpx.HTTPStatusError("login", request=response.request, response=response),
                        endpoint=url, step="logging in") from None
    cookies = _LoginCookies({name: value for name, value in response.cookies.items() if value is not None})
    # The cookie logs anyone in: hide its value in every log line while a session holds it.
    register_secrets(cookies.values(), owner=cookies)
    return cookies


class _LoginCookies(dict):
    """The cookies of one login; a dict that can be weakly referenced (the redaction's owner)."""


def fetch_server_info(http: httpx.Client, url: str, credentials: Credentials, *, timeout: float,
                      cache: ApiCache) -> ServerInfo:
    """Log in if needed, read ``/config``, and get the API description (cached by fingerprint).

    :raises AuthenticationError: the server wants a login we do not have, or refused it.
    :raises BackendConnectionError: unreachable.
    """
    headers = headers_for(credentials)
    cookies = login(http, url, credentials, headers=headers, timeout=timeout) if credentials.username else {}
    try:
        response = _http_get(http, f"{url}/config", headers=headers, cookies=cookies, timeout=timeout)
    except httpx.HTTPError as exc:
        raise translate(exc, endpoint=url, step="reading /config") from None
    shown = redact_url(url)  # the URL as messages and errors show it (no user info)
    if response.status_code == 401:
        raise AuthenticationError(f"{shown}: the server requires a login (username and password) and none was given",
                                  endpoint=shown, reason="missing")
    if response.status_code == 403:
        raise AuthenticationError(f"{shown}: access refused (HTTP 403); check the API key header for the proxy",
                                  endpoint=shown, reason="refused")
    if not response.is_success:
        raise translate(httpx.HTTPStatusError("config", request=response.request, response=response),
                        endpoint=url, step="reading /config") from None
    cookies.update({k: v for k, v in response.cookies.items() if v is not None and k not in cookies})
    # Hashing the raw body is cheaper than canonical JSON of a 2 MB config (cold-connect cost).
    fingerprint = hashlib.sha256(response.content).hexdigest()
    try:
        config = cache.config(fingerprint, response.json)  # the same bytes are parsed once per process
    except ValueError:
        raise BackendConnectionError(f"{shown}: /config is not JSON: not a gradio server", endpoint=shown) from None
    info = cache.get(fingerprint)
    cached = info is not None
    if info is None:
        prefix = str(config.get("api_prefix", "")).strip("/")
        info_url = f"{url}/{prefix}/info?serialize=False" if prefix else f"{url}/info?serialize=False"
        try:
            answer = _http_get(http, info_url, headers=headers, cookies=cookies, timeout=max(timeout, 30.0))
            answer.raise_for_status()
            info = _public_info(answer.json())
        except httpx.HTTPError as exc:
            raise translate(exc, endpoint=url, step="reading the API description (/info)") from None
        except ValueError:
            raise BackendConnectionError(f"{shown}: the API description (/info) is not JSON",
                                         endpoint=shown) from None
        cache.put(fingerprint, info, raw=answer.content)  # the raw body: written with no encoding
    return ServerInfo(url, config, info, cookies, fingerprint, cached)


def headers_for(credentials: Credentials) -> dict[str, str]:
    """Extra headers for every request (proxy API keys, the HF token as gradio sends it)."""
    headers = credentials.header_values()
    if credentials.token is not None:
        headers.setdefault("x-hf-authorization", f"Bearer {credentials.token.get_secret_value()}")
    return headers


def close_client(client: Any) -> None:
    """Release everything a Client holds: heartbeat and its three thread pools. Idempotent; never raises."""
    if client is not None:
        stop_client(client)


def build_client(server: ServerInfo, credentials: Credentials, *, verify_tls: bool, connect_timeout: float,
                 upload_cache: UploadCache) -> FastClient:
    """A new gradio session (Client) on ``server``.

    ``download_files=False``: we download outputs ourselves (verified, through the proxy-safe URL).
    The httpx timeout has ``read=None`` because a finite read timeout also cuts result streams
    during long silent generation steps.
    """
    kwargs: dict[str, Any] = {
        "timeout": httpx.Timeout(connect_timeout, read=None),
    }
    if server.cookies:
        kwargs["cookies"] = dict(server.cookies)
    try:
        with quiet_environment():
            return FastClient(
                server.url,
                config=server.config,
                info=server.info,
                upload_cache=upload_cache,
                token=False,  # never the locally saved Hugging Face token: it would go to any server
                verbose=False,
                headers=headers_for(credentials) or None,
                download_files=False,
                ssl_verify=shared_ssl_context(verify_tls),  # type: ignore[arg-type]  # httpx takes a context
                analytics_enabled=False,  # (gradio_client ORs it with GRADIO_ANALYTICS_ENABLED; see FastClient)
                httpx_kwargs=kwargs,
                max_workers=4,
            )
    except VidbridgeError:
        raise
    except Exception as exc:
        raise translate(exc, endpoint=server.url, step="opening a gradio session") from None
