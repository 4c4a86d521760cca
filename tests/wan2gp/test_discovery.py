"""Finding WanGP servers (``plugins/wan2gp/discovery.py``).

Real servers on 127.0.0.1 answer the probes: the in-process mock WanGP, a mock behind gradio
auth, and another (tiny) gradio app. Servers that answer garbage are simulated with
``httpx.MockTransport`` on *our own* probe client (``DiscoverOptions.http`` is injectable): that is
the HTTP layer discovery itself uses, not gradio_client's.
"""

from __future__ import annotations

import json
import logging
import socket
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import httpx
import pytest

from vidbridge.context import DiscoverOptions
from vidbridge.models import Credentials, Endpoint
from vidbridge.plugins.wan2gp import discovery, plugin

PASSWORD = "canary-Pw-disc-91"


# -- servers ---------------------------------------------------------------------------------------


def _listening_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)  # connections queue in the backlog until uvicorn accepts them: no start-up wait
    return sock


@pytest.fixture(scope="module")
def other_gradio_url() -> Iterator[str]:
    """A plain gradio app (title "Other", one echo endpoint): a gradio server that is not WanGP."""
    import gradio as gr
    import uvicorn
    from fastapi import FastAPI

    with gr.Blocks(title="Other", analytics_enabled=False) as demo:
        box = gr.Textbox()
        button = gr.Button()
        button.click(lambda text: text[::-1], box, box, api_name="reverse")
    app = gr.mount_gradio_app(FastAPI(), demo, path="")
    sock = _listening_socket()
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", ws="none",
                                           timeout_graceful_shutdown=1))
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


@pytest.fixture(scope="module")
def auth_mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The mock WanGP behind gradio auth (user ``ann``)."""
    from vidbridge.plugins.mock_backend.server import MockServer

    with MockServer(port=0, auth=("ann", PASSWORD), state_dir=tmp_path_factory.mktemp("disc-auth")) as server:
        yield server.url.rstrip("/")


def _closed_ports(count: int) -> list[int]:
    """Loopback ports nothing listens on (bound, then released)."""
    socks = []
    for _ in range(count):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        socks.append(sock)
    ports = [s.getsockname()[1] for s in socks]
    for sock in socks:
        sock.close()
    return ports


@pytest.fixture
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No URL from the environment, a private config folder, no loopback ports: returns the
    config file discovery reads."""
    monkeypatch.delenv(discovery.ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv(discovery.PORTS_ENV_VAR, "")
    return tmp_path / "xdg" / "vidbridge" / "wan2gp.json"


@pytest.fixture
def http() -> Iterator[httpx.Client]:
    with httpx.Client() as client:
        yield client


def _options(http: httpx.Client, *urls: str, probe_local: bool = False, timeout: float = 5.0,
             credentials: Credentials | None = None) -> DiscoverOptions:
    return DiscoverOptions(urls=tuple(urls), probe_local=probe_local, timeout=timeout,
                           credentials=credentials or Credentials(), http=http)


def _transport_client(handler: Callable[[httpx.Request], httpx.Response]) -> httpx.Client:
    return httpx.Client(transport=httpx.MockTransport(handler))


# -- where candidates come from --------------------------------------------------------------------


def test_config_file_lives_in_the_user_config_dir(isolated: Path) -> None:
    assert discovery.config_file() == isolated


def test_env_urls_then_config_file_urls(isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(discovery.ENV_VAR, " http://a:7860 ,, http://b:7861,")
    isolated.parent.mkdir(parents=True)
    isolated.write_text(json.dumps({"urls": ["http://c:7860", 42, "http://d:7860"]}))
    assert discovery.configured_urls() == ["http://a:7860", "http://b:7861", "http://c:7860", "http://d:7860"]


def test_config_file_with_a_single_url(tmp_path: Path, isolated: Path) -> None:
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"url": "http://gpu-box:7860"}))
    assert discovery.configured_urls(path) == ["http://gpu-box:7860"]
    path.write_text(json.dumps({"url": 7860}))  # not a string: ignored
    assert discovery.configured_urls(path) == []


@pytest.mark.parametrize("content", ["{not json", json.dumps(["http://x:1"]), "\"http://x:1\""],
                         ids=["broken", "list", "string"])
def test_unusable_config_file_is_ignored(tmp_path: Path, isolated: Path, content: str,
                                         caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "bad.json"
    path.write_text(content)
    with caplog.at_level(logging.WARNING, logger="vidbridge.plugins.wan2gp"):
        assert discovery.configured_urls(path) == []
    if content.startswith("{"):
        assert "ignoring unreadable" in caplog.text


def test_missing_config_file_gives_no_urls(isolated: Path) -> None:
    assert not isolated.exists()
    assert discovery.configured_urls() == []


def test_probe_ports_default_and_override(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.delenv(discovery.PORTS_ENV_VAR, raising=False)
    assert discovery.probe_ports() == discovery.LOCAL_PORTS
    assert 7860 in discovery.LOCAL_PORTS and 42003 in discovery.LOCAL_PORTS and len(discovery.LOCAL_PORTS) == 11
    monkeypatch.setenv(discovery.PORTS_ENV_VAR, "8000, abc,0,70000, 9001 ,")
    with caplog.at_level(logging.WARNING, logger="vidbridge.plugins.wan2gp"):
        assert discovery.probe_ports() == (8000, 9001)
    assert "'abc'" in caplog.text and "'70000'" in caplog.text
    monkeypatch.setenv(discovery.PORTS_ENV_VAR, "")
    assert discovery.probe_ports() == ()


def test_nothing_to_probe_gives_nothing(isolated: Path, http: httpx.Client) -> None:
    assert discovery.discover(_options(http, probe_local=True)) == []


# -- identification from /config -------------------------------------------------------------------


def _wangp_config(**extra: Any) -> dict[str, Any]:
    config = {
        "title": "WanGP v12.60",
        "version": "5.29.0",
        "dependencies": [{"api_name": "save_inputs_3"}, {"api_name": "process_prompt_and_add_tasks"},
                         {"api_name": "process_tasks_12"}, {"api_name": None}],
        "components": [
            {"type": "dropdown", "elem_id": "model_base_types_list", "choices": [["Wan 2.1 T2V", "t2v"], ["VACE", "vace_14B"]]},
        ],
    }
    config.update(extra)
    return config


def test_is_wan2gp_needs_the_title_and_every_generation_endpoint() -> None:
    assert discovery.is_wan2gp(_wangp_config())
    assert not discovery.is_wan2gp(_wangp_config(title="My app"))
    assert not discovery.is_wan2gp(_wangp_config(title=None))
    missing = _wangp_config(dependencies=[{"api_name": "save_inputs"}, {"api_name": "process_tasks"}])
    assert not discovery.is_wan2gp(missing)
    assert not discovery.is_wan2gp({"title": "WanGP"})


def test_model_choices_prefers_the_model_dropdown() -> None:
    assert discovery.model_choices(_wangp_config()) == ("t2v", "vace_14B")
    props = {"components": [{"type": "dropdown", "elem_id": "model_base_types_list", "props": {"choices": ["a", "b"]}}]}
    assert discovery.model_choices(props) == ("a", "b")


def test_model_choices_without_the_elem_id_takes_the_longest_model_like_dropdown() -> None:
    config = {"components": [
        {"type": "dropdown", "choices": ["832x480", "480x832", "1280x720", "720x1280"]},  # resolutions
        {"type": "dropdown", "choices": [["One", "t2v"], ["Two", "i2v"], ["Three", "hunyuan"]]},
        {"type": "dropdown", "choices": ["a", "b"]},
        {"type": "textbox", "choices": ["p", "q", "r", "s", "t"]},
        {"type": "dropdown", "choices": "not-a-list"},
        {"type": "dropdown", "choices": [[str(i), i] for i in range(40)]},  # numbers (perturbation layers)
    ]}
    assert discovery.model_choices(config) == ("t2v", "i2v", "hunyuan")
    assert discovery.model_choices({}) == ()


# -- every model of every family -------------------------------------------------------------------


def _recorded_config() -> dict[str, Any]:
    """The /config of a live WanGP 12.60 (reduced: elem_id and choices at the top level, no values)."""
    import gzip

    from vidbridge.plugins.mock_backend.spec import CONFIG_FILE

    return json.loads(gzip.decompress(CONFIG_FILE.read_bytes()))


def test_the_recorded_config_offers_all_217_models_of_its_19_families() -> None:
    from vidbridge.plugins.wan2gp.known_models import FAMILIES_12_60, MODELS_12_60

    config = _recorded_config()
    selector = {c["elem_id"]: [v for _label, v in c["choices"]] for c in config["components"]
                if c.get("elem_id") in ("family_list", "model_base_types_list", "model_list")}
    assert len(selector["family_list"]) == 19 and len(selector["model_base_types_list"]) == 28
    found = discovery.server_models(config)
    assert sorted(found.models) == sorted(MODELS_12_60) and len(found.models) == 217
    assert set(selector["model_base_types_list"]) | set(selector["model_list"]) <= set(found.models)
    assert list(found.family_labels) == selector["family_list"] and found.family_labels == FAMILIES_12_60
    assert set(found.families) == set(found.models) and set(found.families.values()) == set(FAMILIES_12_60)
    picks = {"t2v": "wan", "vace_14B": "wan", "t2v_2_2": "wan2_2", "i2v_2_2": "wan2_2", "hunyuan": "hunyuan",
             "hunyuan_1_5_t2v": "hunyuan_1_5", "ltx2_22B_distilled": "ltx2", "flux_krea": "flux",
             "flux2_klein_4b": "flux2", "ace_step_v1": "music", "chatterbox": "tts", "z_image": "z_image"}
    assert {model: found.families[model] for model in picks} == picks
    # grouped by family, in the selector's order
    order = [selector["family_list"].index(found.families[m]) for m in found.models]
    assert order == sorted(order)


def _gradio_config(family_value: Any, base: list[list[str]], variants: list[list[str]],
                   families: list[list[str]] | None = None) -> dict[str, Any]:
    """A /config as gradio serves it: elem_id, choices and value inside "props"."""
    def dropdown(elem_id: str, choices: list[list[str]], value: Any) -> dict[str, Any]:
        return {"type": "dropdown", "props": {"elem_id": elem_id, "choices": choices, "value": value}}

    components = [dropdown("model_base_types_list", base, base[0][1] if base else None),
                  dropdown("model_list", variants, None)]
    if families is not None:
        components.insert(0, dropdown("family_list", families, family_value))
    return {"title": "WanGP", "components": components}


def test_a_users_finetune_joins_the_current_family_and_an_unknown_family_is_still_labelled() -> None:
    config = _gradio_config("ltx2", [["LTX-2 Dev", "ltx2_19B"], ["Mine", "my_ltx_finetune"]],
                            [["Other", "another_finetune"]],
                            families=[["Wan2.1", "wan"], ["LTX-2", "ltx2"], ["Brand new", "newfam"]])
    found = discovery.server_models(config)
    assert found.family_labels == {"wan": "Wan2.1", "ltx2": "LTX-2", "newfam": "Brand new"}
    assert found.families["my_ltx_finetune"] == "ltx2" and found.families["another_finetune"] == "ltx2"
    assert found.families["t2v"] == "wan" and "newfam" not in found.families.values()
    ltx = [m for m in found.models if found.families[m] == "ltx2"]
    assert ltx[-2:] == ["my_ltx_finetune", "another_finetune"]  # after the family's known models
    assert len(found.models) == 50 + 25 + 2


def test_without_a_family_value_the_current_family_is_the_listed_models_one() -> None:
    config = _gradio_config(None, [["Wan2.2 T2V", "t2v_2_2"], ["Mine", "my_wan22"]], [],
                            families=[["Wan2.1", "wan"], ["Wan2.2", "wan2_2"]])
    assert discovery.server_models(config).families["my_wan22"] == "wan2_2"
    nothing_known = _gradio_config(None, [["Mine", "my_model"]], [], families=[["Wan2.1", "wan"]])
    found = discovery.server_models(nothing_known)
    assert found.models[-1] == "my_model" and "my_model" not in found.families  # family unknown


def test_an_older_wangp_without_families_lists_only_its_selector() -> None:
    config = _gradio_config(None, [["T2V", "t2v"], ["Mine", "my_model"]], [["LTX", "ltxv_13B"]])
    found = discovery.server_models(config)
    assert found.models == ("t2v", "my_model", "ltxv_13B") and found.family_labels == {}
    assert found.families == {"t2v": "wan", "ltxv_13B": "ltxv"}


def test_the_mock_wangp_is_identified_with_models_version_and_queue(vidbridge_mock: Any, http: httpx.Client) -> None:
    url = vidbridge_mock.url.rstrip("/")
    endpoint = discovery.probe(http, url, timeout=5, headers={})
    assert endpoint is not None
    assert (endpoint.url, endpoint.backend, endpoint.transport, endpoint.healthy) == (url, "wan2gp", "gradio", True)
    assert endpoint.note is None
    import gradio

    assert endpoint.version == "12.60"  # WanGP's version from the page header, not gradio's
    assert endpoint.details["gradio_version"] == gradio.__version__
    assert "wangp" in endpoint.details["title"].lower()
    assert "t2v" in endpoint.models and len(endpoint.models) == 217  # every family's, not only Wan2.1's 28
    assert endpoint.details["families"]["ltx2_22B"] == "ltx2" and len(endpoint.details["family_labels"]) == 19
    assert endpoint.queue_size == 0
    assert endpoint.latency_ms is not None and endpoint.latency_ms >= 0


def test_another_gradio_app_is_reported_as_not_wan2gp(other_gradio_url: str, http: httpx.Client) -> None:
    endpoint = discovery.probe(http, other_gradio_url, timeout=5, headers={})
    assert endpoint is not None
    assert endpoint.healthy is False and endpoint.note == "not Wan2GP"
    assert endpoint.transport == "gradio" and endpoint.version and endpoint.version.startswith("gradio ")
    assert endpoint.models == ()


def test_nothing_listening_is_left_out(http: httpx.Client) -> None:
    port = _closed_ports(1)[0]
    assert discovery.probe(http, f"http://127.0.0.1:{port}", timeout=2, headers={}) is None


@pytest.mark.parametrize(
    ("status", "body", "content_type"),
    [
        (200, "<html><body>Welcome to nginx</body></html>", "text/html"),
        (200, "{\"title\": \"WanGP\", truncated", "application/json"),
        (200, "[1, 2, 3]", "application/json"),
        (404, "{\"detail\": \"Not Found\"}", "application/json"),
        (500, "oops", "text/plain"),
    ],
    ids=["html", "broken-json", "json-list", "404", "500"],
)
def test_garbage_answers_are_not_claimed(status: int, body: str, content_type: str) -> None:
    with _transport_client(lambda request: httpx.Response(status, text=body, headers={"content-type": content_type})) as http:
        endpoint = discovery.probe(http, "http://box:7860", timeout=1, headers={})
    assert endpoint is not None
    assert endpoint.healthy is False
    assert endpoint.note == "not Wan2GP (no gradio /config)"
    assert endpoint.version is None and endpoint.models == ()


def test_another_gradio_config_without_version() -> None:
    with _transport_client(lambda request: httpx.Response(200, json={"title": "Other"})) as http:
        endpoint = discovery.probe(http, "http://box:7860", timeout=1, headers={})
    assert endpoint is not None and endpoint.note == "not Wan2GP" and endpoint.version is None


@pytest.mark.parametrize(
    ("queue_answer", "expected"),
    [((200, {"queue_size": 3}), 3), ((200, {"queue_size": -1}), None), ((200, [1]), None),
     ((200, "not json"), None), ((500, {}), None), ((None, None), None)],
    ids=["size", "negative", "list", "not-json", "error", "unreachable"],
)
def test_queue_size_is_reported_only_when_sane(queue_answer: tuple[Any, Any], expected: int | None) -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        if request.url.path == "/config":
            return httpx.Response(200, json=_wangp_config(api_prefix="/gradio_api"))
        status, body = queue_answer
        if status is None:
            raise httpx.ConnectError("refused", request=request)
        if isinstance(body, str):
            return httpx.Response(status, text=body)
        return httpx.Response(status, json=body)

    with _transport_client(handler) as http:
        endpoint = discovery.probe(http, "http://box:7860", timeout=1, headers={})
    assert endpoint is not None and endpoint.healthy and endpoint.models == ("t2v", "vace_14B")
    assert endpoint.queue_size == expected
    assert seen == ["/config", "/gradio_api/queue/status"]


def test_queue_status_without_api_prefix() -> None:
    paths: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        paths.append(request.url.path)
        body = _wangp_config(version=None) if request.url.path == "/config" else {"queue_size": 1}
        return httpx.Response(200, json=body)

    with _transport_client(handler) as http:
        endpoint = discovery.probe(http, "http://box:7860", timeout=1, headers={})
    assert paths == ["/config", "/queue/status"]
    assert endpoint is not None and endpoint.queue_size == 1 and endpoint.details["gradio_version"] is None
    assert endpoint.version == "12.60"  # from the title "WanGP v12.60"


# -- WanGP's version -------------------------------------------------------------------------------

# WanGP 12.60's page header as its /config carries it (gradio 5.29: the value in "props").
_HEADER = ('<div align=center><H1>Wan<SUP style="color: #2563eb;">GP</SUP> v12.60 <FONT SIZE=4>by '
           '<I>DeepBeepMeep</I></FONT> <FONT SIZE=3>')


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"title": "WanGP", "version": "5.29.0", "components": [
            {"id": 3, "type": "markdown", "props": {"value": _HEADER}}]}, "12.60"),
        ({"title": "WanGP", "components": [{"type": "html", "value": "<b>WanGP</b> v9.21 by DeepBeepMeep"}]}, "9.21"),
        ({"title": "WanGP v12.60", "version": "5.29.0"}, "12.60"),
        ({"title": "WanGP", "version": "5.29.0", "components": [
            {"type": "markdown", "props": {"value": "Welcome to WanGP"}},  # no version in it
            {"type": "markdown", "props": {"value": None}},
            {"type": "textbox", "props": {"value": "WanGP v1.0"}},  # a user's text, not the header
        ]}, None),
        ({"title": "WanGP", "version": "5.29.0"}, None),
    ],
    ids=["header-markdown", "top-level-value", "title", "no-version", "nothing"],
)
def test_wangp_version_comes_from_the_page_header_not_from_gradio(config: dict[str, Any], expected: str | None) -> None:
    assert discovery.wangp_version(config) == expected


def test_the_mock_config_carries_the_real_header_and_discovery_reads_it(vidbridge_mock: Any, http: httpx.Client) -> None:
    config = http.get(vidbridge_mock.url.rstrip("/") + "/config", timeout=10).json()
    headers = [c["props"]["value"] for c in config["components"]
               if c.get("type") == "markdown" and "DeepBeepMeep" in str(c.get("props", {}).get("value"))]
    assert headers == [_HEADER]
    assert config["version"] != "12.60" and discovery.wangp_version(config) == "12.60"


# -- gradio auth -----------------------------------------------------------------------------------


def test_login_protected_server_is_claimed_with_a_note(auth_mock: str, http: httpx.Client) -> None:
    endpoint = discovery.probe(http, auth_mock, timeout=5, headers={})
    assert endpoint is not None
    assert endpoint.healthy is True and endpoint.backend == "wan2gp"
    assert endpoint.details == {"auth": "required"}
    assert "login required" in endpoint.note and "no username/password given" in endpoint.note
    assert endpoint.models == ()


def test_login_protected_server_with_the_password_is_identified(auth_mock: str) -> None:
    credentials = Credentials(username="ann", password=PASSWORD)
    with httpx.Client() as http:
        endpoint = discovery.probe(http, auth_mock, timeout=5, headers={}, credentials=credentials)
    assert endpoint is not None and endpoint.healthy and endpoint.note is None
    assert "t2v" in endpoint.models
    assert PASSWORD not in repr(endpoint) and PASSWORD not in endpoint.model_dump_json()


def test_refused_login_is_claimed_with_a_note(auth_mock: str, http: httpx.Client) -> None:
    credentials = Credentials(username="ann", password="wrong-password")
    endpoint = discovery.probe(http, auth_mock, timeout=5, headers={}, credentials=credentials)
    assert endpoint is not None and endpoint.healthy
    assert "the login was refused" in endpoint.note
    assert endpoint.details == {"auth": "required"}


def test_a_login_probe_does_not_leave_the_session_cookie_on_the_shared_client(auth_mock: str) -> None:
    # Regression: login() posted on the shared httpx.Client, whose cookie jar then kept the gradio
    # auth cookie and sent it with later requests of other callers.
    with httpx.Client() as http:
        logged_in = discovery.probe(http, auth_mock, timeout=5, headers={},
                                    credentials=Credentials(username="ann", password=PASSWORD))
        assert logged_in is not None and logged_in.healthy and logged_in.details.get("auth") != "required"
        assert not list(http.cookies.jar)
        anonymous = discovery.probe(http, auth_mock, timeout=5, headers={})
    assert anonymous is not None and anonymous.details == {"auth": "required"}


def test_probes_send_the_credential_headers() -> None:
    seen: list[httpx.Headers] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.headers)
        return httpx.Response(200, json={"title": "Other"})

    credentials = Credentials(token="hf_canary_token", headers={"X-Api-Key": "k-canary"})
    with _transport_client(handler) as http:
        found = discovery.discover(_options(http, "http://box:7860", credentials=credentials))
    assert [e.note for e in found] == ["not Wan2GP"]
    assert seen[0]["x-api-key"] == "k-canary"
    assert seen[0]["x-hf-authorization"] == "Bearer hf_canary_token"


# -- discover() ------------------------------------------------------------------------------------


def test_discover_combines_explicit_env_config_and_probed_urls(
        isolated: Path, monkeypatch: pytest.MonkeyPatch, vidbridge_mock: Any, other_gradio_url: str,
        http: httpx.Client) -> None:
    mock_url = vidbridge_mock.url.rstrip("/")
    closed = _closed_ports(11)
    mock_port = int(mock_url.rsplit(":", 1)[1])
    monkeypatch.setenv(discovery.ENV_VAR, f"{other_gradio_url}/")
    isolated.parent.mkdir(parents=True)
    isolated.write_text(json.dumps({"urls": [f"http://127.0.0.1:{closed[0]}"]}))
    monkeypatch.setenv(discovery.PORTS_ENV_VAR, ",".join(map(str, [*closed, mock_port])))
    found = plugin.vidbridge_discover(options=_options(http, f"{mock_url}/", probe_local=True, timeout=10))
    # Given order is kept, duplicates (the mock is also a probed port) appear once, closed ports not at all.
    assert [e.url for e in found] == [mock_url, other_gradio_url]
    wangp, other = found
    assert wangp.healthy and "t2v" in wangp.models
    assert not other.healthy and other.note == "not Wan2GP"


def test_all_closed_ports_give_an_empty_result(isolated: Path, monkeypatch: pytest.MonkeyPatch,
                                              http: httpx.Client) -> None:
    monkeypatch.setenv(discovery.PORTS_ENV_VAR, ",".join(map(str, _closed_ports(11))))
    assert discovery.discover(_options(http, probe_local=True, timeout=10)) == []


def test_one_crashing_probe_does_not_hide_the_others(isolated: Path) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "bad":
            raise RuntimeError("a bug in a probe")
        return httpx.Response(200, json=_wangp_config())

    with _transport_client(handler) as http:
        found = discovery.discover(_options(http, "http://bad:7860", "http://good:7860"))
    assert [e.url for e in found] == ["http://good:7860"]
    assert found[0].healthy


def test_a_probe_that_does_not_answer_in_time_is_dropped(isolated: Path) -> None:
    release = threading.Event()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.host == "slow":
            release.wait(30)
        return httpx.Response(200, json=_wangp_config())

    try:
        with _transport_client(handler) as http:
            found = discovery.discover(_options(http, "http://slow:7860", "http://fast:7860", timeout=1.5))
    finally:
        release.set()
    assert [e.url for e in found] == ["http://fast:7860"]


def test_endpoint_results_are_valid_models(isolated: Path, vidbridge_mock: Any, http: httpx.Client) -> None:
    found = discovery.discover(_options(http, vidbridge_mock.url))
    assert len(found) == 1 and isinstance(found[0], Endpoint)
    again = Endpoint.model_validate(found[0].model_dump(mode="json"))
    assert again == found[0]


# -- vidbridge models ------------------------------------------------------------------------------


def test_the_models_command_lists_every_family_and_says_which(
        isolated: Path, vidbridge_mock: Any, auth_mock: str, capsys: pytest.CaptureFixture[str]) -> None:
    from vidbridge.cli import main

    capsys.readouterr()
    assert main(["models", "--json", "--url", vidbridge_mock.url]) == 0
    document = json.loads(capsys.readouterr().out)
    assert len(document["models"]) == 217 and all(isinstance(m, str) for m in document["models"])
    assert set(document["families"]) == set(document["models"])
    assert (document["families"]["t2v"], document["families"]["t2v_2_2"]) == ("wan", "wan2_2")
    # a server that names no families (here: login required) gets no "families" key
    assert main(["models", "--json", "--url", auth_mock]) == 0
    assert json.loads(capsys.readouterr().out) == {"endpoint": auth_mock, "backend": "wan2gp", "models": []}
