"""WanGP's MCP face in the mock, through the official MCP client SDK against the real server.

The expectations come from the recording of WanGP 12.60 (``/work/shared/wan2gp/mcp-12.60/``,
packaged facts repeated here where a test needs them): tool names and schemas, result encoding,
error texts, one generation at a time, job events, one-use transfer URLs.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import av
import httpx
import pytest
from mcp_helpers import FOX, call, session, text_of

from vidbridge.plugins.mock_backend import faults
from vidbridge.plugins.mock_backend.fixtures import (  # noqa: F401 - fixtures
    vidbridge_mock_mcp,
    vidbridge_mock_mcp_server,
)
from vidbridge.plugins.mock_backend.server import QUIET_ENV

RECORDING = Path("/work/shared/wan2gp/mcp-12.60")

def without_open_objects(schema: Any) -> Any:
    """A schema without ``additionalProperties: true`` (the default of JSON Schema, which mcp 2.x
    writes for ``dict[str, Any]`` and mcp 1.10.1 did not)."""
    if isinstance(schema, dict):
        return {k: without_open_objects(v) for k, v in schema.items()
                if not (k == "additionalProperties" and v is True)}
    if isinstance(schema, list):
        return [without_open_objects(v) for v in schema]
    return schema


@pytest.fixture(scope="module")
def recorded_tools() -> dict[str, Any]:
    if not RECORDING.is_dir():
        pytest.skip("the WanGP MCP recording is not on this machine")
    tools = json.loads((RECORDING / "tools.json").read_text())["wire"]["body"]["result"]["tools"]
    return {tool["name"]: tool for tool in tools}


def test_tools_match_the_recording(vidbridge_mock_mcp: Any, recorded_tools: dict[str, Any]) -> None:
    listed = session(vidbridge_mock_mcp.url, lambda client: client.list_tools()).tools
    assert [t.name for t in listed] == list(recorded_tools)
    for tool in listed:
        recorded = recorded_tools[tool.name]
        assert tool.description == recorded["description"], tool.name
        assert without_open_objects(tool.input_schema) == recorded["inputSchema"], tool.name
        assert without_open_objects(tool.output_schema) == recorded["outputSchema"], tool.name


def test_initialize_names_the_server_like_wangp(vidbridge_mock_mcp: Any) -> None:
    async def body(client: Any) -> Any:
        return client.initialize_result if hasattr(client, "initialize_result") else await client.initialize()

    info = session(vidbridge_mock_mcp.url, body)
    assert (info.server_info.name, info.server_info.version) == ("WanGP", "1.10.1")


def test_mcp_redirects_and_answers_json_without_a_session(vidbridge_mock_mcp: Any) -> None:
    headers = {"Accept": "application/json, text/event-stream"}
    ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    redirect = httpx.post(vidbridge_mock_mcp.url, json=ping, headers=headers)
    assert redirect.status_code == 307
    assert redirect.headers["location"] == vidbridge_mock_mcp.url + "/"
    listing = {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "wangp_list_gallery", "arguments": {"limit": 1}}}
    answer = httpx.post(vidbridge_mock_mcp.url + "/", json=listing, headers=headers)
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "application/json"
    assert "mcp-session-id" not in answer.headers
    assert answer.json()["result"]["isError"] is False
    assert httpx.get(vidbridge_mock_mcp.base_url + "config").status_code == 404  # no gradio here


def test_protocol_is_held_to_what_wangp_s_mcp_1_10_1_speaks(vidbridge_mock_mcp: Any) -> None:
    from mcp.client.client import Client

    async def connect() -> str:
        async with Client(vidbridge_mock_mcp.url) as client:  # mode "auto": probes server/discover
            return client.protocol_version

    assert asyncio.run(connect()) == "2025-06-18"  # the probe is refused, initialize negotiates down
    headers = {"Accept": "application/json, text/event-stream"}
    endpoint = vidbridge_mock_mcp.url + "/"
    unknown = httpx.post(endpoint, json={"jsonrpc": "2.0", "id": 10, "method": "tools/nope", "params": {}},
                         headers=headers)
    assert unknown.text == ('{"jsonrpc":"2.0","id":10,"error":{"code":-32602,'
                            '"message":"Invalid request parameters","data":""}}')
    old = httpx.post(endpoint, json={"jsonrpc": "2.0", "id": 15, "method": "ping"},
                     headers={**headers, "MCP-Protocol-Version": "1999-01-01"})
    assert old.status_code == 400
    assert old.text == ('{"jsonrpc":"2.0","id":"server-error","error":{"code":-32600,"message":'
                        '"Bad Request: Unsupported protocol version: 1999-01-01. Supported versions: '
                        '2024-11-05, 2025-03-26, 2025-06-18"}}')
    initialize = {"jsonrpc": "2.0", "id": 17, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {}, "clientInfo": {"name": "curl", "version": "0"}}}
    assert httpx.post(endpoint, json=initialize, headers=headers).json()["result"]["protocolVersion"] == "2025-03-26"
    parse = httpx.post(endpoint, content=b"{not json", headers={**headers, "Content-Type": "application/json"})
    assert (parse.status_code, parse.json()["error"]["message"]) == (
        400, "Parse error: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)")
    json_only = httpx.post(endpoint, json={"jsonrpc": "2.0", "id": 11, "method": "tools/list"},
                           headers={"Accept": "application/json"})
    assert json_only.status_code == 406
    assert json_only.json() == {"jsonrpc": "2.0", "id": "server-error", "error": {
        "code": -32600, "message": "Not Acceptable: Client must accept both application/json and text/event-stream"}}
    plain = httpx.post(endpoint, content=b'{"jsonrpc":"2.0","id":14,"method":"ping"}',
                       headers={**headers, "Content-Type": "text/plain"})
    assert (plain.status_code, plain.text) == (400, "Invalid Content-Type header")
    delete = httpx.delete(endpoint, headers=headers)
    assert (delete.status_code, delete.json()["error"]["message"]) == (
        405, "Method Not Allowed: Session termination not supported")


def test_generate_wait_gives_a_real_mp4_through_a_one_use_url(vidbridge_mock_mcp: Any) -> None:
    result = call(vidbridge_mock_mcp.url, "wangp_generate", {"source": FOX, "wait": True, "timeout_s": 60})
    assert not result.is_error
    job = result.structured_content
    assert json.loads(text_of(result)) == job
    assert job["done"] and job["result"]["success"] and not job["result"]["errors"]
    kinds = [event["kind"] for event in job["events"]]
    assert kinds[0] == "started" and kinds[-1] == "completed"
    progress = [e["data"] for e in job["events"] if e["kind"] == "progress"]
    assert [(p["current_step"], p["total_steps"]) for p in progress] == [(1, 4), (2, 4), (3, 4), (4, 4)]
    item, = job["result"]["gallery_items"]
    assert item["path"] == job["result"]["generated_files"][0]

    grant = call(vidbridge_mock_mcp.url, "wangp_create_gallery_download",
                 {"gallery_id": item["gallery_id"]}).structured_content
    assert grant["download_url"].startswith("/wangp_api/gallery/download/")
    url = vidbridge_mock_mcp.base_url.rstrip("/") + grant["download_url"]
    first = httpx.get(url)
    assert first.status_code == 200 and first.headers["content-type"] == "video/mp4"
    assert len(first.content) == grant["size"]
    with av.open(io.BytesIO(first.content)) as container:
        stream = container.streams.video[0]
        frames = sum(1 for _ in container.decode(video=0))
        assert (stream.codec_context.width, stream.codec_context.height, frames) == (832, 480, 17)
    again = httpx.get(url)
    assert (again.status_code, again.json()) == (404, {"error": "Download expired or not found."})

    counter = faults.read_counter(vidbridge_mock_mcp.url)  # the /mcp URL works as well as the root
    assert (counter["total"], counter["completed"]) == (1, 1)
    assert counter["events"]["tool:wangp_generate"] == 1
    assert counter["calls"]["mcp"] == ["wangp_generate", "wangp_create_gallery_download"]


def test_second_generate_is_refused_and_cancel_stops_the_first(vidbridge_mock_mcp: Any) -> None:
    faults.set_options(vidbridge_mock_mcp.base_url, step_delay=0.5)  # long enough to overlap

    async def body(client: Any) -> tuple[Any, Any, Any]:
        first = await client.call_tool("wangp_generate", {"source": FOX})
        second = await client.call_tool("wangp_generate", {"source": {**FOX, "seed": 8}})
        cancel = await client.call_tool("wangp_cancel_job", {"job_id": first.structured_content["job_id"]})
        return first, second, cancel

    first, second, cancel = session(vidbridge_mock_mcp.url, body)
    assert not first.structured_content["done"]
    assert second.is_error
    assert text_of(second) == ("Error executing tool wangp_generate: "
                               "WanGP session already has a generation in progress")
    assert cancel.structured_content["cancel_requested"]
    job_id = first.structured_content["job_id"]
    vidbridge_mock_mcp.mcp_state.jobs.get(job_id).done.wait(10)
    job = call(vidbridge_mock_mcp.url, "wangp_get_job", {"job_id": job_id}).structured_content
    assert job["done"] and job["result"]["cancelled"] and not job["result"]["success"]
    assert job["result"]["errors"] == [{"message": "Generation was cancelled", "task_index": 1,
                                        "task_id": 1, "stage": "cancelled", "cancelled": True}]
    counter = faults.read_counter(vidbridge_mock_mcp.base_url)
    assert (counter["total"], counter["aborted"]) == (1, 1)  # the refused one never started


def test_wait_too_short_is_a_timeout_error_and_the_job_runs_on(vidbridge_mock_mcp: Any) -> None:
    faults.set_options(vidbridge_mock_mcp.base_url, step_delay=0.2)
    result = call(vidbridge_mock_mcp.url, "wangp_generate",
                  {"source": FOX, "wait": True, "timeout_s": 0.05})
    assert result.is_error
    assert text_of(result) == "Error executing tool wangp_generate: WanGP session job timed out"
    assert faults.read_counter(vidbridge_mock_mcp.base_url)["total"] == 1


def test_errors_are_is_error_results_with_wangp_texts(vidbridge_mock_mcp: Any) -> None:
    url = vidbridge_mock_mcp.url

    async def body(client: Any) -> list[str]:
        results = [await client.call_tool("wangp_get_job", {"job_id": "deadbeef"}),
                   await client.call_tool("wangp_no_such_tool", {"x": 1}),
                   await client.call_tool("wangp_get_default_settings", {"model_type": "no_such_model"}),
                   await client.call_tool("wangp_create_gallery_upload", {"filename": "notes.txt"}),
                   await client.call_tool("wangp_generate", {"source": {**FOX, "image_start": "/etc/hostname"}})]
        assert all(r.is_error for r in results)
        return [text_of(r) for r in results]

    assert session(url, body) == [
        "Error executing tool wangp_get_job: 'Unknown WanGP job_id: deadbeef'",
        "Unknown tool: wangp_no_such_tool",
        "Error executing tool wangp_get_default_settings: Unknown model_type: no_such_model",
        "Error executing tool wangp_create_gallery_upload: filename must have a supported image, "
        "video, or audio extension",
        "Error executing tool wangp_generate: Direct filesystem paths are disabled for this MCP "
        "server. Use a Gallery id for image_start, or restart with filesystem reads enabled.",
    ]
    schema = call(url, "wangp_get_model_schema", {"model_type": "no_such_model"})
    assert not schema.is_error and schema.content == [] and schema.structured_content == {"result": None}


def test_failed_tasks_are_job_errors_not_tool_errors(vidbridge_mock_mcp: Any) -> None:
    source = [{**FOX, "resolution": "abc"}, {"prompt": "no model type", "resolution": "832x480"}]
    bad_resolution = call(vidbridge_mock_mcp.url, "wangp_generate",
                          {"source": source[0], "wait": True, "timeout_s": 30}).structured_content
    assert bad_resolution["result"]["errors"] == [
        {"message": "not enough values to unpack (expected 2, got 1)", "task_index": None,
         "task_id": None, "stage": "runtime", "cancelled": False}]
    no_model = call(vidbridge_mock_mcp.url, "wangp_generate",
                    {"source": source[1], "wait": True, "timeout_s": 30}).structured_content
    assert no_model["result"]["errors"][0]["stage"] == "validation"
    assert no_model["result"]["failed_tasks"] == 1
    assert faults.read_counter(vidbridge_mock_mcp.base_url)["total"] == 0  # nothing generated


def test_gen_error_fault_fails_the_job_at_its_step(vidbridge_mock_mcp: Any) -> None:
    faults.add_faults(vidbridge_mock_mcp.base_url, "gen_error:after_step=2,message=boom,count=1")
    job = call(vidbridge_mock_mcp.url, "wangp_generate",
               {"source": FOX, "wait": True, "timeout_s": 30, "event_limit": 500}).structured_content
    assert job["result"]["errors"] == [{"message": "boom", "task_index": 1, "task_id": 1,
                                        "stage": "generation", "cancelled": False}]
    assert [e["data"]["current_step"] for e in job["events"] if e["kind"] == "progress"] == [1]
    counter = faults.read_counter(vidbridge_mock_mcp.base_url)
    assert (counter["total"], counter["failed"]) == (1, 1)


def test_http_fault_defaults_to_the_mcp_endpoint(vidbridge_mock_mcp: Any) -> None:
    faults.add_faults(vidbridge_mock_mcp.base_url, "503:count=1")
    answer = httpx.post(vidbridge_mock_mcp.url + "/", json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                        headers={"Accept": "application/json, text/event-stream"})
    assert (answer.status_code, answer.headers["retry-after"]) == (503, "1")
    assert faults.list_faults(vidbridge_mock_mcp.base_url) == []  # spent


def test_upload_is_one_use_checked_and_capped(vidbridge_mock_mcp: Any, tmp_path: Path) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (200, 10, 10)).save(buffer, format="PNG")
    png = buffer.getvalue()
    root = vidbridge_mock_mcp.base_url.rstrip("/")

    def grant(name: str) -> str:
        created = call(vidbridge_mock_mcp.url, "wangp_create_gallery_upload", {"filename": name})
        assert created.structured_content["method"] == "PUT"
        return root + created.structured_content["upload_url"]

    url = grant("start.png")
    uploaded = httpx.put(url, content=png)
    assert uploaded.status_code == 200
    record = uploaded.json()
    assert (record["status"], record["size"], record["media_type"], record["selected"]) == \
        ("uploaded", len(png), "image", True)
    assert httpx.put(url, content=png).status_code == 404
    bad = httpx.put(grant("bad.png"), content=b"not a png")
    assert bad.status_code == 400 and "cannot identify image file" in bad.json()["error"]
    transfers = vidbridge_mock_mcp.mcp_state.transfers
    cap, transfers.max_bytes = transfers.max_bytes, 100
    try:
        too_big = httpx.put(grant("big.png"), content=png)
    finally:
        transfers.max_bytes = cap
    assert too_big.status_code == 413

    item = call(vidbridge_mock_mcp.url, "wangp_get_gallery_item", {"gallery_id": record["gallery_id"]})
    assert item.structured_content["path"] == record["path"]


def test_vidbridge_mock_server_mcp_serves_the_face_in_a_child_process(tmp_path: Path) -> None:
    command = [sys.executable, "-c", "import sys; from vidbridge.cli import main; sys.exit(main())",
               "mock-server", "--mcp", "--port", "0", "--state-dir", str(tmp_path)]
    child = subprocess.Popen(command,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env={**os.environ, **QUIET_ENV})
    try:
        line = child.stdout.readline()
        assert line.startswith("Running on http://127.0.0.1:") and line.rstrip().endswith("/mcp")
        url = line.split()[-1]
        assert len(session(url, lambda client: client.list_tools()).tools) == 22
    finally:
        child.send_signal(signal.SIGINT)
        _, errors = child.communicate(timeout=20)
    assert child.returncode == 0, errors
    assert "Traceback" not in errors


def test_exit_fault_ends_a_child_mcp_server_whose_restart_forgets_jobs(tmp_path: Path) -> None:
    from vidbridge.plugins.mock_backend.server import SubprocessMockServer

    with SubprocessMockServer(mcp=True, state_dir=tmp_path, step_delay=1.0,
                              faults=["exit:after_step=2,code=3"]) as child:
        assert child.url.endswith("/mcp") and child.base_url + "mcp" == child.url
        job_id = call(child.url, "wangp_generate", {"source": FOX}).structured_content["job_id"]  # answered at once
        assert child.process.wait(timeout=20) == 3
        url = child.url
        child.restart()
        assert child.url == url  # same port
        lost = call(child.url, "wangp_get_job", {"job_id": job_id})
        assert text_of(lost) == f"Error executing tool wangp_get_job: 'Unknown WanGP job_id: {job_id}'"


def test_stopping_a_server_ends_its_running_job_and_threads(tmp_path: Path) -> None:
    from vidbridge.plugins.mock_backend.server import MockServer

    before = set(threading.enumerate())
    server = MockServer(mcp=True, state_dir=tmp_path, step_delay=5.0).start()
    try:
        job = call(server.url, "wangp_generate", {"source": FOX}).structured_content
        assert not job["done"]
        record = server.mcp_state.jobs.get(job["job_id"])
    finally:
        server.stop()
    assert record.done.is_set() and record.result["cancelled"]
    for thread in set(threading.enumerate()) - before:
        thread.join(10)  # AnyIO's worker threads end when told by the closing event loop
    assert [t.name for t in set(threading.enumerate()) - before if t.is_alive()] == []


def test_mcp_face_refuses_gradio_only_options(capsys: pytest.CaptureFixture[str]) -> None:
    from vidbridge.plugins.mock_backend.cli import build_arg_parser, serve

    assert serve(build_arg_parser().parse_args(["--mcp", "--auth", "u:p"])) == 2
    assert "auth and full_surface do not apply" in capsys.readouterr().err
