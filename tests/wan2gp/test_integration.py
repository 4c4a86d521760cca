"""Integration tests: the plugin's hooks against the mock WanGP (a real gradio app)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest

from vidbridge import (
    AuthenticationError,
    Credentials,
    GenerationRequest,
    InvalidRequestError,
    LoRA,
    Phase,
    RejectedError,
)
from vidbridge.plugins.mock_backend import faults
from vidbridge.plugins.mock_backend.fixtures import vidbridge_mock_mcp, vidbridge_mock_mcp_server  # noqa: F401
from vidbridge.plugins.wan2gp import plugin

from wan2gp_helpers import follow, run_job

pytestmark = pytest.mark.integration


def test_text_to_video_then_second_job_only_gets_its_own_output(vidbridge_mock: Any, connect: Any,
                                                                tmp_path: Path) -> None:
    vidbridge_mock.backend.remember_model("t2v")  # earlier tests may have switched the server
    session = connect(vidbridge_mock.url)
    first, first_handle = run_job(session, GenerationRequest(prompt="a red fox", frames=17, steps=3, seed=11),
                               tmp_path, "one")
    second, handle = run_job(session, GenerationRequest(prompt="a blue bird", frames=17, steps=3, seed=12),
                          tmp_path, "two")
    assert len(first) == len(second) == 1
    artifact = second[0]
    assert artifact.media_type == "video/mp4" and artifact.provenance.seed == 12
    assert "blue_bird" in artifact.path.name and artifact.manifest_path and artifact.manifest_path.is_file()
    manifest = artifact.manifest_path.read_text()
    assert "a blue bird" in manifest and artifact.provenance.settings_sent["video_length"] == 17
    # one gradio session served both jobs, and the pool holds only that one
    assert handle.pooled is first_handle.pooled and handle.pooled.jobs == 2
    assert len(session._idle) == 1 and not session._busy


def test_no_model_requested_keeps_the_servers_model(vidbridge_mock: Any, connect: Any, tmp_path: Path,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    # view_api (cached at start-up) says t2v, but the server has since moved on to LTX-2
    vidbridge_mock.backend.remember_model("ltx2_19B")
    session = connect(vidbridge_mock.url)
    with caplog.at_level("WARNING"):
        artifacts, handle = run_job(session, GenerationRequest(prompt="as it is", frames=17, steps=1), tmp_path, "k")
        run_job(session, GenerationRequest(prompt="same model", model="ltx2_19B", frames=17, steps=1), tmp_path, "s")
    assert handle.model == artifacts[0].provenance.model == "ltx2_19B"
    assert "switching" not in caplog.text  # neither job called change_model_from_target
    vidbridge_mock.backend.remember_model("t2v")


def test_image_to_video_uploads_each_file_once(vidbridge_mock: Any, connect: Any, tmp_path: Path) -> None:
    from PIL import Image

    png = tmp_path / "start.png"
    Image.new("RGB", (64, 48), (200, 30, 30)).save(png)
    session = connect(vidbridge_mock.url)
    request = GenerationRequest(prompt="it moves", model="i2v", image_start=png, frames=17, steps=2)
    artifacts, handle = run_job(session, request, tmp_path, "i2v1")
    assert handle.settings_sent["image_prompt_type"] == "S" and artifacts
    run_job(session, request, tmp_path, "i2v2")
    assert session.uploads.uploads == 1


def test_model_switch_to_another_family_and_lora_causvid(vidbridge_mock: Any, connect: Any, tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    session = connect(vidbridge_mock.url)
    with caplog.at_level("WARNING"):
        artifacts, handle = run_job(session, GenerationRequest(prompt="city", model="ltx2_19B", frames=17, steps=2),
                                 tmp_path, "ltx")
    assert handle.model == "ltx2_19B" and artifacts[0].provenance.model == "ltx2_19B"
    assert "remembered default" in caplog.text
    request = GenerationRequest(prompt="fast", model="t2v", frames=17, preset="causvid",
                                loras=(LoRA(name="CausVid.safetensors", weight=0.7),))
    artifacts, handle = run_job(session, request, tmp_path, "causvid")
    sent = handle.settings_sent
    assert sent["sample_solver"] == "causvid" and sent["num_inference_steps"] == 8 and sent["guidance_scale"] == 1
    assert sent["loras_multipliers"] == "0.7"


def test_settings_json_import(face_mock: Any, connect: Any, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A settings file's values are sent under the request's own; its keys the server does not know
    (another WanGP version's) are dropped with a log line on both faces, never refused."""
    exported = tmp_path / "settings.json"
    exported.write_text(json.dumps({"model_type": "t2v", "settings_version": 2.74, "type": "Wan2.1 t2v",
                                    "prompt": "from file", "video_length": 21, "num_inference_steps": 2,
                                    "seed": 5, "unknown_future_key": 1}))
    session = connect(face_mock.url)
    with caplog.at_level("INFO", logger="vidbridge.plugins.wan2gp"):
        artifacts, handle = run_job(session, GenerationRequest(prompt="override", settings_file=exported),
                                    tmp_path, "imp")
    assert handle.settings_sent["video_length"] == 21 and handle.settings_sent["prompt"] == "override"
    assert "unknown_future_key" not in handle.settings_sent and "'unknown_future_key'" in caplog.text
    assert artifacts[0].provenance.seed == 5


@pytest.fixture(params=["gradio", "mcp"])
def face_mock(request: pytest.FixtureRequest) -> Any:
    """The mock's Gradio face or its MCP face (``.../mcp``): a scenario taking it runs on both."""
    return request.getfixturevalue("vidbridge_mock" if request.param == "gradio" else "vidbridge_mock_mcp")


def _is_mcp(session: Any) -> bool:
    return getattr(session, "face", None) == "mcp"


def _mcp_tools_called(url: str) -> list[str]:
    """The MCP tools the mock at ``url`` answered since its counter was zeroed, in order."""
    return list(faults.read_counter(url)["calls"].get("mcp", []))


def test_server_side_validation_becomes_rejected_error(face_mock: Any, connect: Any) -> None:
    """An i2v request without its start image is refused by WanGP's own validation: a RejectedError
    with WanGP's text. The web UI refuses it in the submit's call; on the MCP face
    ``wangp_generate(wait=False)`` answers before WanGP validates, so the refusal (an error of stage
    ``validation`` in the job's record, as the recording shows for a missing model_type) ends the
    job instead: the status hook raises it."""
    session = connect(face_mock.url)
    request = GenerationRequest(prompt="x", model="i2v", frames=17)
    with pytest.raises(RejectedError) as info:
        handle = plugin.vidbridge_submit(session=session, request=request, job_id="rej")
        assert _is_mcp(session), "the web UI face refuses in the submit"
        follow(handle, "rej")
    assert "Start Image" in (info.value.server_message or "")
    assert faults.read_counter(face_mock.url)["total"] == 0  # nothing was generated


def test_invalid_requests_are_refused_before_the_network(face_mock: Any, connect: Any) -> None:
    """Refused locally, before anything is generated. The web UI face checks with the API
    description read at connect; the MCP face reads the model's defaults and schema from the
    server first (cached), so "before the network" there means: no upload, no ``wangp_generate``."""
    session = connect(face_mock.url)
    before = faults.read_counter(face_mock.url)
    with pytest.raises(InvalidRequestError, match="frames"):
        plugin.vidbridge_submit(session=session, request=GenerationRequest(prompt="x", frames=18), job_id="bad")
    with pytest.raises(InvalidRequestError, match="num_inference_steps") as info:
        plugin.vidbridge_submit(session=session, request=GenerationRequest(
            prompt="x", settings={"num_inference_step": 3}), job_id="bad2")
    assert info.value.field == "settings.num_inference_step"
    after = faults.read_counter(face_mock.url)
    assert after["total"] == before["total"] == 0
    if _is_mcp(session):
        assert set(_mcp_tools_called(face_mock.url)) <= {
            "wangp_get_deepy_template_settings", "wangp_get_default_settings", "wangp_get_model_schema"}


def test_cancel_during_generation(face_mock: Any, connect: Any) -> None:
    faults.set_options(face_mock.url, step_delay=0.2)
    session = connect(face_mock.url)
    handle = plugin.vidbridge_submit(session=session, request=GenerationRequest(prompt="long", model="t2v", frames=17, steps=50),
                                     job_id="c")
    # wait for the generation to be running (an event from the status feed, not a sleep)
    from vidbridge import JobStatus

    current = JobStatus(job_id="c")
    for _ in range(200):
        current = plugin.vidbridge_status(handle=handle, current=current, wait=5)
        if current.phase in (Phase.INFERRING, Phase.LOADING_MODEL, Phase.STARTING):
            break
    result = plugin.vidbridge_cancel(handle=handle)
    assert result.server_stopped
    assert follow(handle, "c")[-1].phase is Phase.CANCELLED


def test_wrong_and_missing_credentials(tmp_path: Path, connect: Any) -> None:
    from vidbridge.plugins.mock_backend.server import MockServer

    with MockServer(port=0, auth=("ann", "secret"), state_dir=tmp_path / "auth") as server:
        with pytest.raises(AuthenticationError) as missing:
            connect(server.url)
        assert missing.value.reason == "missing"
        with pytest.raises(AuthenticationError) as wrong:
            connect(server.url, Credentials(username="ann", password="nope"))
        assert wrong.value.reason == "refused" and "nope" not in str(wrong.value)
        session = connect(server.url, Credentials(username="ann", password="secret"))
        assert "secret" not in repr(session)


def _client_side_threads() -> set[threading.Thread]:
    # The in-process mock server starts AnyIO worker threads while it serves: not the client's.
    return {thread for thread in threading.enumerate() if not thread.name.startswith("AnyIO worker thread")}


def test_close_releases_threads(vidbridge_mock: Any, connect: Any, http: Any, tmp_path: Path) -> None:
    from vidbridge import ConnectOptions, Endpoint

    baseline = _client_side_threads()
    session = plugin.vidbridge_connect(endpoint=Endpoint(url=vidbridge_mock.url, backend="wan2gp"),
                                       credentials=Credentials(),
                                       options=ConnectOptions(http=http, cache_dir=tmp_path, retry_attempts=1))
    run_job(session, GenerationRequest(prompt="t", model="t2v", frames=17, steps=1), tmp_path, "t")
    session.close()
    session.close()
    for thread in _client_side_threads() - baseline:
        # gradio_client's heartbeat sees the kill flag at the server's next heartbeat line (gradio
        # sends one every 15 s), so it may take that long; everything else ends at once.
        thread.join(timeout=20 if "_stream_heartbeat" in thread.name else 5)
    leftover = _client_side_threads() - baseline
    assert not leftover, sorted(thread.name for thread in leftover)


@pytest.fixture(params=["gradio", "mcp"])
def face_subprocess(request: pytest.FixtureRequest, vidbridge_mock_subprocess_factory: Any) -> Any:
    """A mock in a child process (which the test may kill and restart) serving the Gradio face or
    the MCP face."""
    return vidbridge_mock_subprocess_factory(mcp=request.param == "mcp")


def test_server_killed_mid_job_then_reconnects(face_subprocess: Any, connect: Any, tmp_path: Path) -> None:
    """Killed and not back within the connect deadline: the job is lost, but its process may still
    be generating somewhere this client cannot see, so an output stays possible (no resubmit).
    On the MCP face the job's record lived in the killed server's memory (the README: job ids
    survive a client restart, not a server restart), so after the restart it cannot be attached
    either; the same session serves a new job on both faces."""
    from vidbridge import JobLostError, JobRef, JobStatus, NotAttachableError

    server = face_subprocess
    faults.set_options(server.url, step_delay=0.2)
    session = connect(server.url, request_timeout=5, connect_timeout=4)
    handle = plugin.vidbridge_submit(session=session, request=GenerationRequest(prompt="doomed", frames=17, steps=50),
                                     job_id="k")
    current = JobStatus(job_id="k")
    for _ in range(200):
        current = plugin.vidbridge_status(handle=handle, current=current, wait=5)
        if current.phase is not Phase.QUEUED:
            break
    ref = plugin.vidbridge_job_ref(session=session, handle=handle)
    server.kill()
    with pytest.raises(JobLostError) as info:
        follow(handle, "k")
    assert server.url.rstrip("/") in str(info.value) and info.value.output_possible
    server.restart()
    if _is_mcp(session):
        assert ref and ref["mcp_job"]
        with pytest.raises(NotAttachableError) as gone:
            plugin.vidbridge_attach(session=session, ref=JobRef(job_id="k", backend="wan2gp", endpoint=server.url,
                                                                data=ref))
        assert gone.value.reason == "gone"
    artifacts, _ = run_job(session, GenerationRequest(prompt="again", frames=17, steps=1), tmp_path, "k2")
    assert artifacts
