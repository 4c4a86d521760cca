"""Reliability: secrets never leak, gradio 5.29 servers (WanGP's pin) work end to end, and
malformed gallery answers end as typed errors."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidbridge import AuthenticationError, Credentials, GenerationRequest, JobFailedError
from vidbridge.plugins.wan2gp.gallery import GalleryFormatError, GalleryItem, parse_gallery

from wan2gp_helpers import run_job

PASSWORD, TOKEN, API_KEY = "canary-pw-51c0", "hf_canaryTOKEN77", "canary-key-e9"
CANARIES = (PASSWORD, TOKEN, API_KEY)


@pytest.mark.integration
def test_secrets_never_appear_in_logs_reprs_errors_or_manifests(connect: Any, tmp_path: Path,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    from vidbridge.plugins.mock_backend.server import MockServer

    credentials = Credentials(username="ann", password=PASSWORD, token=TOKEN, headers={"X-Api-Key": API_KEY})
    texts: list[str] = []
    with caplog.at_level(logging.DEBUG), \
            MockServer(port=0, auth=("ann", PASSWORD), state_dir=tmp_path / "server") as server:
        for name in ("gradio_client", "httpx", "httpcore"):  # their own levels must not hide anything
            logging.getLogger(name).setLevel(logging.DEBUG)
        session = connect(server.url, credentials)
        artifacts, handle = run_job(session, GenerationRequest(prompt="secret-free", model="t2v", frames=17,
                                                               steps=1), tmp_path, "s")
        wrong = Credentials(username="ann", password=PASSWORD + "x", token=TOKEN, headers={"X-Api-Key": API_KEY})
        with pytest.raises(AuthenticationError) as refused:
            connect(server.url, wrong)
        texts += [repr(session), repr(handle), repr(credentials), str(credentials), str(refused.value),
                  repr(refused.value), json.dumps(refused.value.to_dict())]
        texts += [p.read_text(errors="replace") for p in (tmp_path / "s").iterdir() if p.suffix == ".json"]
        texts += [artifact.model_dump_json() for artifact in artifacts]
    texts.append(caplog.text)
    assert {"httpx", "vidbridge.download"} <= {r.name for r in caplog.records}  # the logs were captured
    leaked = [(canary, text[:200]) for text in texts for canary in CANARIES if canary in text]
    assert not leaked


@pytest.mark.integration
@pytest.mark.gradio529
def test_gradio_529_server_with_control_video(vidbridge_mock_subprocess_factory: Any, connect: Any,
                                              tmp_path: Path) -> None:
    python = os.environ.get("VIDBRIDGE_GRADIO529_PYTHON")
    if not python:
        pytest.skip("no gradio 5.29 environment (VIDBRIDGE_GRADIO529_PYTHON)")
    server = vidbridge_mock_subprocess_factory(python=python)
    session = connect(server.url)
    assert str(session.server.config.get("version", "")).startswith("5.29")
    [source], _ = run_job(session, GenerationRequest(prompt="source clip", model="t2v", frames=17, steps=1),
                          tmp_path, "src")
    # the control video goes up as gradio 5.x VideoData {"video": FileData, "subtitles": None}
    request = GenerationRequest(prompt="follow the motion", model="vace_1.3B", video=source.path, frames=17, steps=1)
    [guided], handle = run_job(session, request, tmp_path, "guided")
    assert handle.settings_sent["video_prompt_type"].count("V") == 1 and session.uploads.uploads == 1
    assert guided.media_type == "video/mp4" and guided.size > 0 and guided.provenance.model == "vace_1.3B"


_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
                         st.sampled_from(["video", "image", "path", "caption", "url", "size", "__type__", "value",
                                          "subtitles", "orig_name"]), inner, max_size=4),
                     max_leaves=20)


@given(_JSON)
@settings(max_examples=300, deadline=None)
def test_any_gallery_answer_parses_or_raises_the_typed_error(value: Any) -> None:
    try:
        items = parse_gallery(value)
    except GalleryFormatError:
        return
    assert all(isinstance(item, GalleryItem) and isinstance(item.path, str) and item.path for item in items)


def test_gallery_format_error_becomes_job_failed_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from vidbridge.plugins.wan2gp.flow import WanGPFlow

    class _Session:
        url = "http://wangp.test"

    flow = WanGPFlow(_Session(), "job", "vb-job", wake=lambda: None, on_submitted=lambda: None)  # type: ignore[arg-type]
    flow.started_processing = True
    monkeypatch.setattr(flow, "offers", lambda need: need == "refresh_gallery")
    monkeypatch.setattr(flow, "endpoint", lambda need: "/" + need)
    monkeypatch.setattr(flow, "step", lambda *a, **k: ((1, {"__type__": "update", "value": [42]}), []))
    with pytest.raises(JobFailedError, match="gallery"):
        flow.gallery("reading the gallery after the job")
