"""Against real local servers: ``retry_attempts=N`` is exactly N connection attempts and N
attempts of a retried call (counted by the mock's fault counter), and a gradio server that is not
a usable WanGP is refused at connect with IncompatibleServerError (exit 3), before anything is
submitted."""

from __future__ import annotations

import socket
import threading
from pathlib import Path
from typing import Any, Iterator

import pytest

from vidbridge import Client, Endpoint, IncompatibleServerError, TransientServerError
from vidbridge.plugins.mock_backend import faults

pytestmark = pytest.mark.integration


def _attempts_seen(url: str, fault_count: int) -> int:
    """How many /config requests the 503 fault answered (each connect attempt reads /config once)."""
    active = faults.list_faults(url)
    return fault_count - (active[0]["remaining"] if active else 0)


@pytest.mark.parametrize("attempts", [1, 3, 4])
def test_retry_attempts_is_the_number_of_connection_attempts(vidbridge_mock: Any, tmp_path: Path,
                                                             attempts: int) -> None:
    faults.add_faults(vidbridge_mock.url, "503:route=config,count=99,retry_after=0")
    with Client(cache_dir=tmp_path, retry_attempts=attempts) as client:
        with pytest.raises(TransientServerError, match="reading /config"):
            client.connect(Endpoint(url=vidbridge_mock.url, backend="wan2gp"))
    assert _attempts_seen(vidbridge_mock.url, 99) == attempts  # not attempts x attempts


def test_a_connect_recovers_within_its_attempts(vidbridge_mock: Any, tmp_path: Path) -> None:
    faults.add_faults(vidbridge_mock.url, "503:route=config,count=2,retry_after=0")
    with Client(cache_dir=tmp_path, retry_attempts=3) as client:
        session = client.connect(Endpoint(url=vidbridge_mock.url, backend="wan2gp"))
        assert session.backend == "wan2gp"
    assert faults.list_faults(vidbridge_mock.url) == []  # both refusals were spent, the third attempt connected


@pytest.mark.parametrize(("attempts", "fault", "message"), [
    (1, "503:route=join,count=99,retry_after=0", "queue is full"),
    (3, "503:route=join,count=99,retry_after=0", "queue is full"),
    # a plain 502 too: no second round on a fresh gradio session while the server runs
    (3, "502:route=join,count=99", "502"),
])
def test_retry_attempts_is_the_number_of_attempts_of_a_retried_call(vidbridge_mock: Any, tmp_path: Path,
                                                                   attempts: int, fault: str, message: str) -> None:
    # every queue join refused: the job's first call (an idempotent read) is retried, then fails
    with Client(cache_dir=tmp_path, retry_attempts=attempts) as client:
        session = client.connect(Endpoint(url=vidbridge_mock.url, backend="wan2gp"))
        faults.reset_counter(vidbridge_mock.url)
        faults.add_faults(vidbridge_mock.url, fault)
        job = session.submit(prompt="refused joins", model="t2v", frames=17, steps=1, output_dir=tmp_path / "out")
        with pytest.raises(TransientServerError, match=message):
            job.result(timeout=120)
    assert _attempts_seen(vidbridge_mock.url, 99) == attempts
    assert faults.read_counter(vidbridge_mock.url)["total"] == 0  # nothing generated


@pytest.fixture(scope="module")
def other_gradio_url() -> Iterator[str]:
    """A plain gradio app with one endpoint: a gradio server that is not WanGP."""
    import gradio as gr
    import uvicorn
    from fastapi import FastAPI

    with gr.Blocks(title="Other", analytics_enabled=False) as demo:
        box = gr.Textbox()
        gr.Button().click(lambda text: text[::-1], box, box, api_name="reverse")
    app = gr.mount_gradio_app(FastAPI(), demo, path="")
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
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


def test_a_gradio_server_without_the_generation_endpoints_is_refused_at_connect(other_gradio_url: str,
                                                                               tmp_path: Path) -> None:
    with Client(cache_dir=tmp_path, retry_attempts=4) as client:
        with pytest.raises(IncompatibleServerError) as caught:
            client.connect(Endpoint(url=other_gradio_url, backend="wan2gp"))
    error = caught.value
    assert error.missing == ("save_inputs", "fill_inputs", "process_prompt_and_add_tasks", "process_tasks",
                             "refresh_gallery or finalize_generation")
    assert str(error).startswith(f"{other_gradio_url}: not a usable WanGP server: no endpoint fits /save_inputs")
    assert "the server has no copy of it" in str(error) and not error.retryable


def test_the_plugin_refuses_it_and_closes_the_http_client_it_made(other_gradio_url: str, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import httpx

    from vidbridge import ConnectOptions, Credentials
    from vidbridge.plugins.wan2gp import plugin

    made: list[httpx.Client] = []
    real = httpx.Client

    def recording(*args: Any, **kwargs: Any) -> httpx.Client:
        made.append(real(*args, **kwargs))
        return made[-1]

    monkeypatch.setattr(httpx, "Client", recording)
    with pytest.raises(IncompatibleServerError, match="not a usable WanGP server"):
        plugin.vidbridge_connect(endpoint=Endpoint(url=other_gradio_url, backend="wan2gp"), credentials=Credentials(),
                                 options=ConnectOptions(cache_dir=tmp_path))  # no pooled client: it makes one
    assert made and all(client.is_closed for client in made)
