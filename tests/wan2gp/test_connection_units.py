"""Reading a server before any gradio session exists (``plugins/wan2gp/connection.py``): login,
``/config``, the API description and its cache, the upload cache.

The server is simulated with ``httpx.MockTransport`` on the plugin's *own* pooled httpx client
(``fetch_server_info`` takes it as an argument); gradio_client is not involved here.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

import httpx
import pytest

from vidbridge import Credentials
from vidbridge.errors import AuthenticationError, BackendConnectionError, JobTimeoutError, TransientServerError
from vidbridge.plugins.wan2gp.apicache import MEMORY, DescriptionMemory
from vidbridge.plugins.wan2gp.connection import (
    ApiCache,
    ServerInfo,
    UploadCache,
    _public_info,
    config_fingerprint,
    fetch_server_info,
    headers_for,
    login,
)

URL = "http://wangp.test:7860"
CONFIG = {"title": "WanGP", "version": "5.29.0", "api_prefix": "/gradio_api", "dependencies": []}
INFO = {"named_endpoints": {"/save_inputs": {"parameters": [], "returns": []}}, "unnamed_endpoints": {}}


class Server:
    """A scripted server: ``routes[(method, path)] -> Response or exception``; records requests."""

    def __init__(self, **routes: Any) -> None:
        self.routes: dict[tuple[str, str], Any] = {
            ("GET", "/config"): lambda r: httpx.Response(200, json=CONFIG, headers={"set-cookie": "sid=abc; Path=/"}),
            ("GET", "/gradio_api/info"): lambda r: httpx.Response(200, json=INFO),
        }
        self.routes.update({tuple(key.split(" ", 1)): value for key, value in routes.items()})  # type: ignore[misc]
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        handler = self.routes.get((request.method, request.url.path))
        if handler is None:
            return httpx.Response(404)
        return handler(request)

    def paths(self) -> list[str]:
        return [f"{r.method} {r.url.path}" for r in self.requests]


pytestmark = pytest.mark.usefixtures("empty_api_memory")

def _client(server: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(server))


def _fetch(server: Server, credentials: Credentials | None = None, cache: ApiCache | None = None) -> ServerInfo:
    with _client(server) as http:
        return fetch_server_info(http, URL, credentials or Credentials(), timeout=2, cache=cache or ApiCache(None))


# -- /config and /info -----------------------------------------------------------------------------


def test_config_and_api_description_are_read_once_then_cached(tmp_path: Path) -> None:
    server = Server()
    cache = ApiCache(tmp_path)
    first = _fetch(server, cache=cache)
    assert first.config == CONFIG and first.info == INFO and first.api_cached is False
    assert first.cookies == {"sid": "abc"}
    assert server.paths() == ["GET /config", "GET /gradio_api/info"]
    assert server.requests[1].url.params["serialize"] == "False"
    again = _fetch(server, cache=cache)
    assert again.api_cached is True and again.info == INFO and again.fingerprint == first.fingerprint
    assert server.paths()[2:] == ["GET /config"]  # the description came from the cache
    assert again.config is first.config  # the same /config bytes are parsed once per process


def test_only_a_parsed_config_object_is_remembered() -> None:
    configs = DescriptionMemory()
    cache = ApiCache(None, configs=configs)
    assert cache.config("a", lambda: [1]) == [1] and "a" not in configs
    assert cache.config("b", lambda: {"k": 1}) == {"k": 1} and "b" in configs
    assert cache.config("b", lambda: pytest.fail("parsed again")) == {"k": 1}


def test_the_cache_survives_the_process_on_disk(tmp_path: Path) -> None:
    raw = {"named_endpoints": {"/save_inputs": {"parameters": [], "returns": [], "code_snippets": {"python": "x"}},
                               "/hidden": {"parameters": [], "returns": [], "api_visibility": "private"}},
           "unnamed_endpoints": {}}
    body = json.dumps(raw).encode()
    server = Server(**{"GET /gradio_api/info": lambda r: httpx.Response(200, content=body)})
    cache = ApiCache(tmp_path)
    first = _fetch(server, cache=cache)
    assert first.info == INFO  # filtered as gradio_client filters it
    cache.flush()  # written in the background
    [stored] = (tmp_path / "wan2gp" / "api").glob("*.info.json")
    assert stored.name == f"{first.fingerprint}.info.json"
    assert stored.read_bytes() == body  # the body as received: nothing encoded on the way
    assert not list(stored.parent.glob("*.tmp"))  # written under a temporary name, renamed
    MEMORY.clear()  # as in a new process
    server = Server()
    again = _fetch(server, cache=ApiCache(tmp_path))
    assert again.api_cached is True and again.info == INFO
    assert server.paths() == ["GET /config"]


def test_memory_is_shared_by_the_process_and_bounded() -> None:
    """One memory for every session and Client of the process (a pure memo, see apicache.py),
    dropping the least recently used description beyond its bound."""
    ApiCache(None).put("k", INFO)
    assert ApiCache(None).get("k") is INFO  # another session, of any Client
    memory = DescriptionMemory(entries=2)
    cache = ApiCache(None, memory=memory)
    cache.put("a", {"n": 1})
    cache.put("b", {"n": 2})
    assert cache.get("a") == {"n": 1}  # "a" is now the most recently used
    cache.put("c", {"n": 3})
    assert len(memory) == 2 and "b" not in memory and "a" in memory and "c" in memory
    assert cache.get("b") is None
    memory.clear()
    assert len(memory) == 0 and DescriptionMemory(entries=0).entries == 1


def test_an_api_description_that_is_not_json_is_a_connection_error() -> None:
    server = Server(**{"GET /gradio_api/info": lambda r: httpx.Response(200, text="<html>")})
    with pytest.raises(BackendConnectionError, match="not JSON"):
        _fetch(server)


@pytest.mark.parametrize(("name", "content"), [
    ("{}.info.json", "{broken"), ("{}.info.json", json.dumps({"named_endpoints": "not a dict"})),
    ("{}.info.json", "[1]"), ("{}.json", json.dumps({"format": 1, "info": INFO}))],
    ids=["broken", "bad-endpoints", "not-an-object", "older-format"])
def test_an_unusable_cache_file_is_ignored(tmp_path: Path, name: str, content: str) -> None:
    cache = ApiCache(tmp_path)
    fingerprint = "f" * 64
    path = tmp_path / "wan2gp" / "api" / name.format(fingerprint)
    path.parent.mkdir(parents=True)
    path.write_text(content)
    assert cache.get(fingerprint) is None


def test_cache_write_errors_are_not_raised(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    blocker = tmp_path / "file-not-folder"
    blocker.write_text("x")
    cache = ApiCache(blocker)
    with caplog.at_level(logging.DEBUG, logger="vidbridge.plugins.wan2gp"):
        cache.put("abc", INFO)
        cache.flush()
    assert cache.get("abc") == INFO  # still remembered in memory
    assert "cannot write API cache" in caplog.text


def test_without_a_cache_folder_only_memory_is_used() -> None:
    cache = ApiCache(None)
    assert cache.get("nothing") is None
    cache.put("k", INFO)
    cache.flush()
    assert cache.get("k") == INFO


def test_a_server_without_api_prefix_is_asked_at_the_root() -> None:
    config = {k: v for k, v in CONFIG.items() if k != "api_prefix"}
    server = Server(**{"GET /config": lambda r: httpx.Response(200, json=config),
                       "GET /info": lambda r: httpx.Response(200, json=INFO)})
    info = _fetch(server)
    assert server.paths() == ["GET /config", "GET /info"]
    assert info.api_prefix == "" and info.src_prefixed == f"{URL}/"


def test_api_prefix_of_gradio_5_servers() -> None:
    info = _fetch(Server())
    assert info.api_prefix == "gradio_api/" and info.src_prefixed == f"{URL}/gradio_api/"


@pytest.mark.parametrize(
    ("status", "kind", "reason", "words"),
    [(401, AuthenticationError, "missing", "requires a login"),
     (403, AuthenticationError, "refused", "API key header"),
     (502, TransientServerError, None, "reading /config")],
)
def test_config_errors_say_what_is_wrong(status: int, kind: type, reason: str | None, words: str) -> None:
    server = Server(**{"GET /config": lambda r: httpx.Response(status)})
    with pytest.raises(kind) as info:
        _fetch(server)
    assert words in info.value.message
    if reason:
        assert info.value.reason == reason


def test_config_that_is_not_json_is_not_a_gradio_server() -> None:
    server = Server(**{"GET /config": lambda r: httpx.Response(200, text="<html>hello</html>")})
    with pytest.raises(BackendConnectionError, match="/config is not JSON: not a gradio server"):
        _fetch(server)


def test_unreachable_and_slow_servers() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 111] Connection refused", request=request)

    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    with pytest.raises(BackendConnectionError, match="reading /config"):
        _fetch(Server(**{"GET /config": refuse}))
    with pytest.raises(JobTimeoutError, match=r"reading the API description \(/info\)"):
        _fetch(Server(**{"GET /gradio_api/info": slow}))


def test_api_description_error_names_the_step() -> None:
    server = Server(**{"GET /gradio_api/info": lambda r: httpx.Response(503)})
    with pytest.raises(TransientServerError, match=r"reading the API description \(/info\)"):
        _fetch(server)


# -- login -----------------------------------------------------------------------------------------


def test_login_then_config_with_the_session_cookie() -> None:
    server = Server(**{"POST /login": lambda r: httpx.Response(200, headers={"set-cookie": "access-token=T1; Path=/"})})
    info = _fetch(server, Credentials(username="ann", password="canary-pw-c1"))
    assert server.paths()[:2] == ["POST /login", "GET /config"]
    body = server.requests[0].content.decode()
    assert "username=ann" in body and "password=canary-pw-c1" in body
    assert server.requests[1].headers["cookie"] == "access-token=T1"
    assert info.cookies == {"access-token": "T1", "sid": "abc"}


@pytest.mark.parametrize("status", [400, 401, 403])
def test_refused_login(status: int) -> None:
    server = Server(**{"POST /login": lambda r: httpx.Response(status)})
    with pytest.raises(AuthenticationError) as info:
        _fetch(server, Credentials(username="ann", password="canary-pw-c2"))
    assert info.value.reason == "refused" and "canary-pw-c2" not in info.value.message
    assert server.paths() == ["POST /login"]


def test_login_server_errors_and_lost_connections() -> None:
    with _client(Server(**{"POST /login": lambda r: httpx.Response(500)})) as http:
        with pytest.raises(TransientServerError, match="logging in"):
            login(http, URL, Credentials(username="a", password="b"), headers={}, timeout=1)

    def drop(request: httpx.Request) -> httpx.Response:
        raise httpx.RemoteProtocolError("peer closed", request=request)

    with _client(Server(**{"POST /login": drop})) as http:
        with pytest.raises(BackendConnectionError, match="logging in"):
            login(http, URL, Credentials(username="a", password="b"), headers={}, timeout=1)


def test_headers_carry_proxy_keys_and_the_token() -> None:
    credentials = Credentials(token="hf_tok", headers={"X-Api-Key": "k1"})
    assert headers_for(credentials) == {"X-Api-Key": "k1", "x-hf-authorization": "Bearer hf_tok"}
    explicit = Credentials(token="hf_tok", headers={"x-hf-authorization": "Bearer other"})
    assert headers_for(explicit) == {"x-hf-authorization": "Bearer other"}  # the user's header wins
    assert headers_for(Credentials()) == {}
    server = Server()
    _fetch(server, credentials)
    assert all(r.headers["x-api-key"] == "k1" for r in server.requests)


# -- helpers ---------------------------------------------------------------------------------------


def test_public_info_hides_private_endpoints_and_snippets() -> None:
    info = {"named_endpoints": {
        "/shown": {"parameters": [], "code_snippets": {"python": "..."}},
        "/hidden_old": {"parameters": [], "show_api": False},
        "/private": {"parameters": [], "api_visibility": "private"},
        "/public": {"parameters": [], "api_visibility": "public", "show_api": False},
    }, "unnamed_endpoints": None}
    public = _public_info(info)
    assert set(public["named_endpoints"]) == {"/shown", "/public"}
    assert "code_snippets" not in public["named_endpoints"]["/shown"]
    assert "api_visibility" not in public["named_endpoints"]["/public"]
    assert public["unnamed_endpoints"] == {}
    assert "code_snippets" in info["named_endpoints"]["/shown"]  # the input is not modified


def test_config_fingerprint_ignores_volatile_fields() -> None:
    base = config_fingerprint(CONFIG)
    assert config_fingerprint({**CONFIG, "root": "http://x", "session_hash": "s", "username": "u"}) == base
    assert config_fingerprint({**CONFIG, "version": "6.0"}) != base


def test_upload_cache_uploads_each_content_once(tmp_path: Path) -> None:
    cache = UploadCache()
    a, same, other = tmp_path / "a.png", tmp_path / "copy.png", tmp_path / "b.png"
    a.write_bytes(b"one")
    same.write_bytes(b"one")
    other.write_bytes(b"two")
    calls: list[str] = []

    def upload(name: str) -> Callable[[], dict[str, Any]]:
        return lambda: calls.append(name) or {"path": f"/srv/{name}"}

    first = cache.get_or_upload(str(a), upload("a"))
    assert cache.get_or_upload(str(same), upload("copy")) == first == {"path": "/srv/a"}
    assert cache.get_or_upload(str(other), upload("b")) == {"path": "/srv/b"}
    assert calls == ["a", "b"] and cache.uploads == 2
    first["path"] = "mutated by a caller"
    assert cache.get_or_upload(str(a), upload("again")) == {"path": "/srv/a"}  # callers get copies
    cache.clear()
    assert cache.get_or_upload(str(a), upload("after-clear")) == {"path": "/srv/after-clear"}
