"""Every fault kind of the mock, the admin routes and the generation counter."""

from __future__ import annotations

import httpx
import pytest
from gradio_client.exceptions import AppError
from mock_helpers import download, gallery_files, generate, open_client, queue_task, save_form

from vidbridge.plugins.mock_backend import faults
from vidbridge.plugins.mock_backend.faults import FaultSpecError, parse_fault

pytestmark = pytest.mark.integration


def test_fault_specs_parse_with_aliases_and_defaults() -> None:
    fault = parse_fault("429:route=join,count=2,retry_after=3")
    assert (fault.kind, fault.route, fault.remaining, fault.params["code"]) == (
        "status", "/gradio_api/queue/join", 2, "429")
    assert parse_fault("truncate").route == "/gradio_api/file=*"
    assert parse_fault("latency:seconds=0.1,route=/config").matches("/config")
    for bad in ("nonsense", "status:count=x", "latency:seconds"):
        with pytest.raises(FaultSpecError):
            parse_fault(bad)


def test_admin_routes_add_list_and_clear(vidbridge_mock) -> None:
    url = vidbridge_mock.url
    active = faults.add_faults(url, "latency:seconds=0", "503:count=1")
    assert [f["kind"] for f in active] == ["latency", "status"]
    assert faults.list_faults(url) == active
    assert faults.clear_faults(url) == [] and faults.list_faults(url) == []
    response = httpx.post(url + "mock_admin/faults", json={"faults": ["bogus"]})
    assert response.status_code == 400


def test_429_with_retry_after_then_recovers(vidbridge_mock) -> None:
    faults.add_faults(vidbridge_mock.url, "429:route=config,count=1,retry_after=7")
    first = httpx.get(vidbridge_mock.url + "config")
    assert first.status_code == 429 and first.headers["retry-after"] == "7"
    assert httpx.get(vidbridge_mock.url + "config").status_code == 200


@pytest.mark.parametrize("code", [502, 503])
def test_server_errors_for_a_fraction_of_requests(vidbridge_mock, code: int) -> None:
    # A small route keeps this fast: unfaulted requests answer 404.
    faults.add_faults(vidbridge_mock.url, f"{code}:route=/nothing,fraction=0.5,seed=3")
    with httpx.Client() as http:
        codes = [http.get(vidbridge_mock.url + "nothing").status_code for _ in range(20)]
    assert set(codes) == {code, 404}


def test_429_on_join_reaches_gradio_client(vidbridge_mock) -> None:
    with open_client(vidbridge_mock.url) as client:
        faults.add_faults(vidbridge_mock.url, "429:route=join,count=1")
        with pytest.raises(Exception) as info:  # httpx.HTTPStatusError per GRADIO_CLIENT.md
            client.predict(api_name="/activate_status")
        assert "429" in str(info.value)
        assert client.predict(api_name="/activate_status") is None  # the next join goes through


def test_latency_fault_is_consumed_and_request_succeeds(vidbridge_mock) -> None:
    faults.add_faults(vidbridge_mock.url, "latency:route=config,seconds=0.05,count=2")
    assert httpx.get(vidbridge_mock.url + "config").status_code == 200
    assert faults.list_faults(vidbridge_mock.url)[0]["remaining"] == 1


def test_connection_reset(vidbridge_mock) -> None:
    faults.add_faults(vidbridge_mock.url, "reset:route=config,count=1")
    with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError, httpx.ConnectError)):
        httpx.get(vidbridge_mock.url + "config")
    assert httpx.get(vidbridge_mock.url + "config").status_code == 200


@pytest.fixture
def produced(client):
    """A generated video's FileData, its clean bytes and the client."""
    video = generate(client, prompt="fault target", seed=1, video_length=17)
    return video, download(client, video), client


def test_truncated_download(produced, vidbridge_mock) -> None:
    video, clean, client = produced
    faults.add_faults(vidbridge_mock.url, "truncate:count=1,keep=0.5")
    url = client.src_prefixed + "file=" + video["path"]
    with pytest.raises(httpx.RemoteProtocolError):  # fewer bytes than Content-Length
        httpx.get(url)
    assert httpx.get(url).content == clean


def test_corrupted_download_keeps_length(produced, vidbridge_mock) -> None:
    video, clean, client = produced
    faults.add_faults(vidbridge_mock.url, "corrupt:count=1")
    damaged = download(client, video)
    assert len(damaged) == len(clean) and damaged != clean


def test_slow_download_trickles_the_same_bytes(produced, vidbridge_mock) -> None:
    video, clean, client = produced
    faults.add_faults(vidbridge_mock.url, f"slow:count=1,rate={len(clean) * 2}")
    chunks = []
    with httpx.stream("GET", client.src_prefixed + "file=" + video["path"]) as response:
        chunks = list(response.iter_raw())
    assert b"".join(chunks) == clean and len(chunks) >= 3


@pytest.mark.parametrize("kind,name", [("dotdot", "../x.mp4"), ("absolute", "/tmp/x.mp4"),
                                       ("nul", "x\x00.mp4"), ("device", "CON.mp4")])
def test_hostile_output_names(client, vidbridge_mock, kind: str, name: str) -> None:
    faults.add_faults(vidbridge_mock.url, f"hostile_name:name={kind}")
    video = generate(client, prompt="hostile")
    assert video["orig_name"] == name


def test_generation_error_after_step(client, vidbridge_mock) -> None:
    faults.add_faults(vidbridge_mock.url, "gen_error:after_step=2,count=1,message=CUDA out of memory")
    save_form(client, prompt="will fail", num_inference_steps=4, video_length=5)
    queue_task(client)
    with pytest.raises(AppError, match="CUDA out of memory"):
        client.predict(api_name="/process_tasks")
    counter = faults.read_counter(vidbridge_mock.url)
    assert (counter["total"], counter["failed"]) == (1, 1)
    assert gallery_files(client) == []


def test_counter_counts_each_generation_once(client, vidbridge_mock) -> None:
    for prompt, seed in (("alpha", 1), ("beta", 2), ("alpha", 3)):
        save_form(client, prompt=prompt, seed=seed, video_length=5, num_inference_steps=1,
                  client_id=f"id-{seed}")
        queue_task(client)
    client.predict(api_name="/process_tasks")
    counter = faults.read_counter(vidbridge_mock.url)
    assert counter["total"] == counter["completed"] == 3
    assert counter["by_prompt"] == {"alpha": 2, "beta": 1}
    assert counter["by_seed"] == {"1": 1, "2": 1, "3": 1}
    assert counter["by_client_id"] == {"id-1": 1, "id-2": 1, "id-3": 1}
    assert faults.reset_counter(vidbridge_mock.url)["total"] == 0
