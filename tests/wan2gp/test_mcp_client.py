"""The Wan2GP plugin's MCP face against the mock's MCP face (a real local server, the real SDK)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import vidbridge
from vidbridge import InvalidRequestError, JobCancelledError, JobFailedError, NotAttachableError, Phase, RejectedError
from vidbridge.plugins.mock_backend import faults
from vidbridge.plugins.mock_backend.fixtures import (  # noqa: F401
    vidbridge_mock, vidbridge_mock_mcp, vidbridge_mock_mcp_server, vidbridge_mock_server)
from vidbridge.plugins.wan2gp.mcp import job as mcp_job

pytestmark = pytest.mark.integration

FOX = {"prompt": "a red fox running through snow", "model": "t2v_1.3B", "frames": 17, "steps": 2,
       "resolution": "832x480"}


@pytest.fixture
def mock(vidbridge_mock_mcp: Any) -> Any:
    return vidbridge_mock_mcp


@pytest.fixture
def client(tmp_path: Path) -> Any:
    with vidbridge.Client(ledger=tmp_path / "jobs.sqlite3") as client:
        yield client


def _tool_calls(server: Any, name: str) -> int:
    return int(faults.read_counter(server.url)["events"].get(f"tool:{name}", 0))


def test_discover_names_the_face_for_both_url_forms(mock: Any, client: Any) -> None:
    for url in (mock.url, mock.base_url.rstrip("/")):
        [endpoint] = client.discover([url], probe_local=False)
        assert endpoint.transport == "mcp" and endpoint.backend == "wan2gp" and endpoint.healthy
        assert endpoint.max_jobs == 1 and endpoint.details["mcp_url"] == mock.base_url.rstrip("/") + "/mcp/"


def test_text_to_video_verified_with_manifest(mock: Any, client: Any, tmp_path: Path) -> None:
    with client.connect(mock.url) as session:
        job = session.submit(**FOX, seed=7, output_dir=tmp_path)
        [artifact] = job.result(timeout=120)
    assert artifact.media_type == "video/mp4" and artifact.path.stat().st_size == artifact.size
    assert artifact.provenance.model == "t2v_1.3B" and artifact.provenance.seed == 7
    assert artifact.provenance.settings_sent["video_length"] == 17
    assert artifact.manifest_path is not None and artifact.manifest_path.exists()
    assert job.ref.data["face"] == "mcp" and job.ref.data["mcp_job"]
    assert faults.read_counter(mock.url)["completed"] == 1


def test_default_model_comes_from_the_servers_template(mock: Any, client: Any, tmp_path: Path) -> None:
    with client.connect(mock.url) as session:
        [artifact] = session.submit(prompt="a fox", frames=17, steps=1, output_dir=tmp_path).result(timeout=120)
    assert artifact.provenance.model == "t2v_1.3B"


def test_frames_refused_before_any_generation(mock: Any, client: Any, tmp_path: Path) -> None:
    with client.connect(mock.url) as session:
        with pytest.raises(InvalidRequestError) as caught:
            session.submit(**{**FOX, "frames": 18}, output_dir=tmp_path)
        with pytest.raises(InvalidRequestError) as unknown:
            session.submit(**{**FOX, "model": "no_such_model"}, output_dir=tmp_path)
    assert caught.value.field == "frames" and "5" in caught.value.allowed and "4" in caught.value.allowed
    assert unknown.value.field == "model"
    assert _tool_calls(mock, "wangp_generate") == 0


def test_ten_jobs_run_one_at_a_time_none_refused(mock: Any, client: Any, tmp_path: Path) -> None:
    with client.connect(mock.url) as session:
        jobs = [session.submit(**{**FOX, "steps": 1}, seed=i, output_dir=tmp_path) for i in range(10)]
        positions = {job.status().queue_position for job in jobs[2:]}
        results = [job.result(timeout=300) for job in jobs]
    assert all(len(r) == 1 for r in results) and positions - {None}
    counter = faults.read_counter(mock.url)
    assert counter["completed"] == 10 and counter["failed"] == 0
    assert _tool_calls(mock, "wangp_generate") == 10  # one call each: none refused as busy
    runs = sorted(counter["runs"], key=lambda r: r["started"]) if "started" in counter["runs"][0] else counter["runs"]
    assert len(runs) == 10


def test_busy_server_is_waited_out(mock: Any, client: Any, tmp_path: Path) -> None:
    """Another client's generation runs: the job waits (queued) and is not lost to the refusal."""
    faults.set_options(mock.url, step_delay=0.3)
    with client.connect(mock.url) as session:
        other = session.native.call("wangp_generate", {"source": {"model_type": "t2v_1.3B", "prompt": "other",
                                                                  "video_length": 5, "num_inference_steps": 3},
                                                       "wait": False})
        job = session.submit(**{**FOX, "steps": 1}, output_dir=tmp_path)
        assert job.result(timeout=120)
    assert _tool_calls(mock, "wangp_generate") >= 3  # the other, at least one refusal, the accepted one
    assert faults.read_counter(mock.url)["completed"] == 2 and other["job_id"]


def test_image_uploaded_once_per_content(mock: Any, client: Any, tmp_path: Path) -> None:
    from PIL import Image

    png = tmp_path / "start.png"
    Image.new("RGB", (64, 48), (20, 160, 40)).save(png)
    with client.connect(mock.url) as session:
        for seed in (1, 2):
            [artifact] = session.submit(prompt="grass", model="i2v", image_start=png, frames=17, steps=1,
                                        seed=seed, output_dir=tmp_path / "out").result(timeout=120)
            assert artifact.provenance.settings_sent["image_start"] != str(png)  # a gallery id
    assert _tool_calls(mock, "wangp_create_gallery_upload") == 1


def test_cancel_reports_what_the_server_did(mock: Any, client: Any, tmp_path: Path) -> None:
    faults.set_options(mock.url, step_delay=5)
    started = threading.Event()
    with client.connect(mock.url) as session:
        job = session.submit(**{**FOX, "steps": 20}, output_dir=tmp_path,
                             on_status=lambda s: started.set() if s.phase is Phase.INFERRING else None)
        assert started.wait(60)
        result = job.cancel()
        assert result.server_stopped and "cancel" in result.message
        with pytest.raises(JobCancelledError):
            job.result(timeout=60)
        assert job.status().phase is Phase.CANCELLED
        assert job.cancel() is result  # the core answers a second cancel with the first's result


def test_server_refusal_is_rejected_error(mock: Any, client: Any, tmp_path: Path) -> None:
    with client.connect(mock.url) as session:
        job = session.submit(**FOX, settings={"resolution": "abc"}, output_dir=tmp_path)
        with pytest.raises((RejectedError, JobFailedError)) as caught:
            job.result(timeout=60)
    assert "abc" in str(caught.value) or "unpack" in str(caught.value)


def test_generation_error_keeps_its_stage(mock: Any, client: Any, tmp_path: Path) -> None:
    faults.add_faults(mock.url, "gen_error:message=out of memory,count=1")
    with client.connect(mock.url) as session:
        job = session.submit(**FOX, output_dir=tmp_path)
        with pytest.raises(JobFailedError) as caught:
            job.result(timeout=60)
    assert "generation: out of memory" in str(caught.value)


def test_attach_from_a_new_process_after_the_submitter_is_killed(mock: Any, tmp_path: Path) -> None:
    faults.set_options(mock.url, step_delay=0.2)
    script = textwrap.dedent(f"""
        import sys, vidbridge
        from vidbridge import Phase
        with vidbridge.Client(ledger={str(tmp_path / 'child.sqlite3')!r}) as client:
            job = client.connect({mock.url!r}).submit(prompt="a fox", model="t2v_1.3B", frames=17, steps=10,
                                                      output_dir={str(tmp_path / 'child')!r})
            for status in job.updates(timeout=60):
                if job.ref.data.get("mcp_job"):
                    print(job.ref.to_json() if hasattr(job.ref, "to_json") else job.ref.model_dump_json(), flush=True)
                    break
            sys.stdin.readline()  # killed while waiting here
    """)
    child = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                             env={**os.environ})
    try:
        line = child.stdout.readline()
    finally:
        child.kill()
        child.wait()
    ref = json.loads(line)
    with vidbridge.Client(ledger=tmp_path / "parent.sqlite3") as client:
        job = client.attach(ref, output_dir=tmp_path / "parent")
        [artifact] = job.result(timeout=120)
    assert artifact.media_type == "video/mp4"
    assert faults.read_counter(mock.url)["total"] == 1  # one generation on the server


def test_attach_refuses_a_job_the_server_forgot(mock: Any, client: Any) -> None:
    ref = {"backend": "wan2gp", "endpoint": mock.url, "job_id": "job-x",
           "data": {"face": "mcp", "mcp_job": "no-such-job"}}
    with pytest.raises(NotAttachableError):
        client.attach(ref)
    with pytest.raises(NotAttachableError):
        client.attach({**ref, "data": {"face": "gradio"}})


def test_snapshot_changes_map_events() -> None:
    from vidbridge.plugins.wan2gp.state import JobSnapshot

    record = {"events": [{"kind": "started", "data": {"tasks": 1}},
                         {"kind": "status", "data": "Loading model Wan"}]}
    assert mcp_job.snapshot_changes(record, JobSnapshot())["phase"] is Phase.LOADING_MODEL
    record["events"].append({"kind": "progress", "data": {"current_step": 2, "total_steps": 4, "status": "Denoising 2/4"}})
    changes = mcp_job.snapshot_changes(record, JobSnapshot())
    assert changes["phase"] is Phase.INFERRING and changes["step"] == 2 and changes["total_steps"] == 4
    record["events"].append({"kind": "status", "data": {"status": "VAE Decoding..."}})
    assert mcp_job.snapshot_changes(record, JobSnapshot())["phase"] is Phase.DECODING
    assert mcp_job.snapshot_changes({"events": [{"kind": "status", "data": "Encoding prompt"}]},
                                    JobSnapshot())["phase"] is Phase.ENCODING


def test_outcome_of_records() -> None:
    cancelled = {"job_id": "j", "result": {"success": False, "errors": [
        {"message": "boom", "stage": "generation"}, {"message": "Generation was cancelled", "stage": "cancelled",
                                                     "cancelled": True}]}}
    outputs, error = mcp_job._outcome(cancelled, "http://h")
    assert isinstance(error, JobFailedError) and "generation: boom" in str(error)  # not every error a cancel
    only_cancel = {"job_id": "j", "result": {"success": False, "errors": [cancelled["result"]["errors"][1]]}}
    assert isinstance(mcp_job._outcome(only_cancel, "h")[1], JobCancelledError)
    assert "no outputs" in str(mcp_job._outcome({"job_id": "j", "result": {"success": False}}, "h")[1])


def test_connect_with_backend_named_finds_the_mcp_face(mock: Any, client: Any) -> None:
    """An endpoint no discovery identified (``backend=`` given, a job reference's URL): either URL
    form reaches the MCP face, and the session is the MCP one."""
    for url in (mock.url, mock.base_url.rstrip("/")):
        with client.connect(url, backend="wan2gp") as session:
            assert session.native.face == "mcp"


def test_connect_with_backend_named_to_neither_face_fails(client: Any, vidbridge_mock: Any) -> None:
    """A ``.../mcp`` URL where no MCP server answers, and no web UI either: the web UI's error."""
    from vidbridge import BackendError

    with pytest.raises(BackendError) as caught:
        client.connect(vidbridge_mock.url.rstrip("/") + "/mcp", backend="wan2gp")
    assert "404" in str(caught.value)
