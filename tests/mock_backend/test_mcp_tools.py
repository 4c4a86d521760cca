"""The discovery, Gallery, template and job-source details of the mock's MCP face (SDK client,
real server); the lifecycle, transport and faults are in ``test_mcp_face.py``."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp_helpers import FOX, call, calls, session, text_of

from vidbridge.plugins.mock_backend import faults
from vidbridge.plugins.mock_backend.fixtures import (  # noqa: F401 - fixtures
    vidbridge_mock_mcp,
    vidbridge_mock_mcp_server,
)

COMPACT_KEYS = {"model_type", "family", "family_label", "base_model_type", "finetune", "main_output",
                "outputs", "inputs", "media_inputs", "capabilities", "name"}


def test_model_discovery_tools(vidbridge_mock_mcp: Any) -> None:
    (listed, page2, search, defs, model, missing, metadata, availability, availabilities,
     defaults, loras, schema, audio, empty) = calls(
        vidbridge_mock_mcp.url,
        ("wangp_list_models", {}),
        ("wangp_list_models", {"limit": 3, "offset": 10}),
        ("wangp_search_models", {"query": "wan", "limit": 2, "include_availability": True}),
        ("wangp_list_model_defs", {"model_type": "t2v_1.3B", "limit": 1}),
        ("wangp_get_model", {"model_type": "t2v_1.3B"}),
        ("wangp_get_model", {"model_type": "no_such_model"}),
        ("wangp_get_model_metadata", {"model_type": "t2v_1.3B", "include_availability": True}),
        ("wangp_get_model_availability", {"model_type": "t2v_1.3B"}),
        ("wangp_list_model_availability", {"model_type": "t2v_1.3*", "limit": 3}),
        ("wangp_get_default_settings", {"model_type": "t2v_1.3B"}),
        ("wangp_list_loras", {"model_type": "t2v_1.3B"}),
        ("wangp_get_model_schema", {"model_type": "t2v_1.3B"}),
            ("wangp_get_model_availability", {"model_type": "ace_step_v1"}),
        ("wangp_search_models", {"query": ""}),
    )
    records = listed.structured_content["result"]
    assert len(records) == 10 and len(listed.content) == 10  # one text block per list item
    assert json.loads(listed.content[0].text) == records[0]
    assert set(records[0]) == COMPACT_KEYS
    assert [r["model_type"] for r in records] == sorted(r["model_type"] for r in records)
    assert len(page2.structured_content["result"]) == 3
    found = search.structured_content
    assert found["returned"] == 2 and found["has_more"] and found["total_matches"] > 2
    assert all(m["availability"]["available"] for m in found["matches"])
    assert defs.structured_content["result"][0]["model_type"] == "t2v_1.3B"
    assert model.structured_content["result"]["fps"] == 16
    assert missing.structured_content == {"result": None}
    assert metadata.structured_content["result"]["availability"]["status"] == "available"
    assert availability.structured_content == {"model_type": "t2v_1.3B", "status": "available",
                                               "status_code": 2, "indicator": "blue_square",
                                               "available": True}
    matched = [r["model_type"] for r in availabilities.structured_content["result"]]
    assert matched and all(m.startswith("t2v_1.3") for m in matched)
    settings = defaults.structured_content
    assert (settings["resolution"], settings["video_length"], settings["seed"], settings["model_type"]) == \
        ("832x480", 81, -1, "t2v_1.3B")
    assert loras.structured_content == {"model_type": "t2v_1.3B", "supported": True, "loras": [], "count": 0}
    summary = schema.structured_content["result"]
    assert (summary["frames_minimum"], summary["frames_steps"]) == (5, 4)
    assert summary["metadata"]["capabilities"]["text_to_video"]
    assert audio.structured_content["available"] is False  # the mock cannot synthesise audio
    assert text_of(empty) == "Error executing tool wangp_search_models: query is required"


def test_loras_are_the_files_of_the_lora_folder(vidbridge_mock_mcp: Any) -> None:
    folder: Path = vidbridge_mock_mcp.mcp_state.lora_dir
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "style.safetensors").write_bytes(b"x")
    try:
        result = call(vidbridge_mock_mcp.url, "wangp_list_loras", {"model_type": "t2v_1.3B"})
    finally:
        (folder / "style.safetensors").unlink()
    assert result.structured_content["loras"] == ["style.safetensors"]


def test_templates_toolbox_postprocess_and_resources(vidbridge_mock_mcp: Any) -> None:
    templates, settings, unknown, toolbox, action = calls(
        vidbridge_mock_mcp.url,
        ("wangp_list_deepy_templates", {"tool_id": "gen_video"}),
        ("wangp_get_deepy_template_settings", {"tool_id": "gen_video", "template": "default"}),
        ("wangp_get_deepy_template_settings", {"tool_id": "nope", "template": "default"}),
        ("wangp_toolbox", {}),
        ("wangp_toolbox", {"action": "extract_image"}),
    )
    listed, = templates.structured_content["result"]
    assert listed["tool_id"] == "gen_video" and listed["templates"][0]["default"]
    assert settings.structured_content["settings"]["model_type"] == "t2v_1.3B"
    assert unknown.is_error and toolbox.structured_content["status"] == "discovery"
    assert action.is_error

    async def body(client: Any) -> tuple[Any, Any, Any]:
        return await client.list_resources(), await client.list_prompts(), \
            await client.read_resource("wangp://docs/api")

    resources, prompts, read = session(vidbridge_mock_mcp.url, body)
    assert len(resources.resources) == 21
    assert [p.name for p in prompts.prompts] == ["wangp_agent"]
    assert read.contents[0].text.startswith("# WanGP api")


def test_gallery_tools_and_postprocess_of_a_generated_video(vidbridge_mock_mcp: Any) -> None:
    job = call(vidbridge_mock_mcp.url, "wangp_generate",
               {"source": FOX, "wait": True, "timeout_s": 30, "event_limit": 0}).structured_content
    assert job["events"] == [] and job["result"]["success"]
    gallery_id = job["result"]["gallery_items"][0]["gallery_id"]
    videos, images, bogus, selected, post, post_path, post_run = calls(
        vidbridge_mock_mcp.url,
        ("wangp_list_gallery", {"media_type": "video"}),
        ("wangp_list_gallery", {"media_type": "image", "limit": 1}),
        ("wangp_list_gallery", {"media_type": "bogus"}),
        ("wangp_get_gallery_selection", {}),
        ("wangp_postprocess", {"path": gallery_id}),
        ("wangp_postprocess", {"path": "/etc/hostname"}),
        ("wangp_postprocess", {"path": gallery_id, "process": "lanczos"}),
    )
    assert gallery_id in [r["gallery_id"] for r in videos.structured_content["result"]]
    assert all(r["media_type"] == "image" for r in images.structured_content["result"])
    assert text_of(bogus) == "Error executing tool wangp_list_gallery: media_type must be all, image, video, or audio"
    assert any(r["gallery_id"] == gallery_id for r in selected.structured_content["result"])
    assert post.structured_content["status"] == "discovery"
    assert post_path.is_error and "Direct filesystem paths are disabled" in text_of(post_path)
    assert post_run.is_error


def test_task_list_and_task_dict_sources_run_every_task(vidbridge_mock_mcp: Any) -> None:
    source = [{**FOX, "prompt": "task list a", "seed": 1},
              {"id": "second", "params": {**FOX, "prompt": "task list b", "seed": 2}}]
    job = call(vidbridge_mock_mcp.url, "wangp_generate",
               {"source": source, "wait": True, "timeout_s": 60, "event_limit": 500}).structured_content
    result = job["result"]
    assert (result["total_tasks"], result["successful_tasks"], len(result["generated_files"])) == (2, 2, 2)
    assert job["events"][0] == {**job["events"][0], "kind": "started", "data": {"tasks": 2}}
    assert faults.read_counter(vidbridge_mock_mcp.base_url)["by_prompt"] == {"task list a": 1, "task list b": 1}


def test_a_failed_task_does_not_stop_the_next(vidbridge_mock_mcp: Any) -> None:
    source = {"tasks": [{**FOX, "resolution": "640x640"}, FOX]}
    result = call(vidbridge_mock_mcp.url, "wangp_generate",
                  {"source": source, "wait": True, "timeout_s": 60}).structured_content["result"]
    assert (result["failed_tasks"], result["successful_tasks"]) == (1, 1)
    assert result["errors"][0]["stage"] == "validation" and result["errors"][0]["task_index"] == 1
    unknown = call(vidbridge_mock_mcp.url, "wangp_generate",
                   {"source": {**FOX, "model_type": "no_such_model"}, "wait": True}).structured_content
    assert unknown["result"]["errors"][0]["message"] == "'NoneType' object has no attribute 'get'"


def test_image_to_video_from_an_uploaded_gallery_image(vidbridge_mock_mcp: Any) -> None:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (832, 480), (10, 200, 10)).save(buffer, format="PNG")
    grant = call(vidbridge_mock_mcp.url, "wangp_create_gallery_upload", {"filename": "start.png"})
    uploaded = httpx.put(vidbridge_mock_mcp.base_url.rstrip("/") + grant.structured_content["upload_url"],
                         content=buffer.getvalue()).json()
    source = {**FOX, "model_type": "i2v_2_2", "image_start": uploaded["gallery_id"]}
    result = call(vidbridge_mock_mcp.url, "wangp_generate",
                  {"source": source, "wait": True, "timeout_s": 60}).structured_content["result"]
    assert result["success"], result["errors"]
    without = call(vidbridge_mock_mcp.url, "wangp_generate",
                   {"source": {**FOX, "model_type": "i2v_2_2"}, "wait": True}).structured_content["result"]
    assert without["errors"][0]["stage"] == "validation"


def test_cancel_during_loading_ends_with_a_cancelled_error(vidbridge_mock_mcp: Any) -> None:
    jobs = vidbridge_mock_mcp.mcp_state.jobs
    jobs.load_delay = 1.0  # the cancel below arrives while the model "loads"
    try:
        async def body(client: Any) -> tuple[Any, Any]:
            started = (await client.call_tool("wangp_generate", {"source": FOX})).structured_content
            cancel = await client.call_tool("wangp_cancel_job", {"job_id": started["job_id"], "event_limit": 0})
            return started, cancel.structured_content

        started, cancel = session(vidbridge_mock_mcp.url, body)
        jobs.get(started["job_id"]).done.wait(10)
    finally:
        jobs.load_delay = 0.0
    assert cancel["cancel_requested"] and cancel["events"] == []
    job = call(vidbridge_mock_mcp.url, "wangp_get_job", {"job_id": started["job_id"], "event_limit": 500})
    events = job.structured_content["events"]
    assert [e["kind"] for e in events] == ["started", "stream", "stream", "status", "error", "completed"]
    assert events[4]["data"]["stage"] == "cancelled"
    again = call(vidbridge_mock_mcp.url, "wangp_cancel_job", {"job_id": started["job_id"]})
    assert again.structured_content["done"] and again.structured_content["cancel_requested"]


def test_busy_and_hostile_name_faults_on_tools(vidbridge_mock_mcp: Any) -> None:
    job = call(vidbridge_mock_mcp.url, "wangp_generate", {"source": FOX, "wait": True}).structured_content
    gallery_id = job["result"]["gallery_items"][0]["gallery_id"]
    faults.add_faults(vidbridge_mock_mcp.base_url, "busy:fn=wangp_get_job,seconds=0.01,count=1",
                      "hostile_name:name=dotdot,count=1")
    assert len(faults.list_faults(vidbridge_mock_mcp.base_url)) == 2
    call(vidbridge_mock_mcp.url, "wangp_get_job", {"job_id": job["job_id"]})
    grant = call(vidbridge_mock_mcp.url, "wangp_create_gallery_download", {"gallery_id": gallery_id})
    assert grant.structured_content["filename"] == "../x.mp4"
    sent = httpx.get(vidbridge_mock_mcp.base_url.rstrip("/") + grant.structured_content["download_url"])
    assert "x.mp4" in sent.headers["content-disposition"]
    assert faults.list_faults(vidbridge_mock_mcp.base_url) == []  # both spent


def test_truncate_fault_cuts_a_download(vidbridge_mock_mcp: Any) -> None:
    job = call(vidbridge_mock_mcp.url, "wangp_generate", {"source": FOX, "wait": True}).structured_content
    grant = call(vidbridge_mock_mcp.url, "wangp_create_gallery_download",
                 {"gallery_id": job["result"]["gallery_items"][0]["gallery_id"]}).structured_content
    faults.add_faults(vidbridge_mock_mcp.base_url, "truncate:count=1")
    with pytest.raises(httpx.HTTPError):
        httpx.get(vidbridge_mock_mcp.base_url.rstrip("/") + grant["download_url"])


def test_transfer_tokens_expire_and_bad_requests_are_refused(vidbridge_mock_mcp: Any) -> None:
    transfers = vidbridge_mock_mcp.mcp_state.transfers
    root = vidbridge_mock_mcp.base_url.rstrip("/")
    old = call(vidbridge_mock_mcp.url, "wangp_create_gallery_upload", {"filename": "clip.mp4"})
    clock = transfers.clock
    transfers.clock = lambda: clock() + transfers.ttl + 1
    try:
        expired = httpx.put(root + old.structured_content["upload_url"], content=b"x")
    finally:
        transfers.clock = clock
    assert (expired.status_code, expired.json()) == (404, {"error": "Upload expired or not found."})
    bad_video = call(vidbridge_mock_mcp.url, "wangp_create_gallery_upload", {"filename": "clip.mp4"})
    refused = httpx.put(root + bad_video.structured_content["upload_url"], content=b"not a video")
    assert refused.status_code == 400
    unknown = call(vidbridge_mock_mcp.url, "wangp_create_gallery_download", {"gallery_id": "visual:000000000000"})
    assert text_of(unknown) == ("Error executing tool wangp_create_gallery_download: "
                                "'Unknown WanGP gallery_id: visual:000000000000'")
    assert httpx.get(root + "/wangp_api/gallery/download/nope").status_code == 404


def test_building_the_face_leaves_the_root_logger_alone(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import logging

    from vidbridge.plugins.mock_backend.backend import BackendOptions, MockBackend
    from vidbridge.plugins.mock_backend.mcp.state import McpState
    from vidbridge.plugins.mock_backend.mcp.tools import build_server

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])  # as in a host process that configured nothing
    monkeypatch.setattr(root, "level", logging.ERROR)
    build_server(McpState(MockBackend(BackendOptions(mcp=True, state_dir=str(tmp_path)))))
    assert (root.handlers, root.level) == ([], logging.ERROR)


def test_an_unexpected_failure_still_finishes_the_job(vidbridge_mock_mcp: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidbridge.plugins.mock_backend.mcp import jobs, models

    def broken(*args: Any, **kwargs: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(vidbridge_mock_mcp.mcp_state.gallery, "register", broken)
    monkeypatch.setattr(jobs, "default_settings", broken)
    job = call(vidbridge_mock_mcp.url, "wangp_generate", {"source": FOX, "wait": True, "timeout_s": 30})
    assert job.structured_content["result"]["errors"][0] == {
        "message": "disk full", "task_index": None, "task_id": None, "stage": "runtime", "cancelled": False}
    monkeypatch.setattr(jobs, "default_settings", models.default_settings)
    failed = call(vidbridge_mock_mcp.url, "wangp_generate", {"source": FOX, "wait": True, "timeout_s": 30})
    error, = failed.structured_content["result"]["errors"]
    assert (error["stage"], error["message"]) == (
        "generation", "The generation of the video has encountered an error: disk full")
    monkeypatch.undo()
    again = call(vidbridge_mock_mcp.url, "wangp_generate", {"source": FOX, "wait": True, "timeout_s": 30})
    assert again.structured_content["result"]["success"]  # the server is not left busy
    counter = faults.read_counter(vidbridge_mock_mcp.base_url)
    assert (counter["total"], counter["failed"], counter["completed"]) == (2, 1, 1)


def test_audio_uploads_go_to_the_audio_gallery_and_must_decode_as_their_kind(vidbridge_mock_mcp: Any) -> None:
    import wave

    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\0\0" * 800)
    root = vidbridge_mock_mcp.base_url.rstrip("/")

    def put(name: str) -> httpx.Response:
        grant = call(vidbridge_mock_mcp.url, "wangp_create_gallery_upload", {"filename": name})
        return httpx.put(root + grant.structured_content["upload_url"], content=buffer.getvalue())

    voice = put("voice.wav")
    assert voice.status_code == 200
    assert (voice.json()["gallery"], voice.json()["media_type"]) == ("audio", "audio")
    listed = call(vidbridge_mock_mcp.url, "wangp_list_gallery", {"media_type": "audio"}).structured_content
    assert voice.json()["gallery_id"] in [r["gallery_id"] for r in listed["result"]]
    mislabelled = put("clip.mp4")  # sound, not a video
    assert (mislabelled.status_code, mislabelled.json()) == (400, {"error": "Unable to read uploaded video: clip.mp4"})
