"""``vidbridge generate`` end to end, in-process, against the mock WanGP (a real gradio server)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import pytest
from cli_helpers import check_artifact, frame_count, sidecar_manifest

from vidbridge.cli import ExitCode
from vidbridge.plugins.mock_backend import faults

pytestmark = pytest.mark.integration

Run = Callable[..., Any]  # returns conftest.CliResult (not imported by name: "conftest" is ambiguous)


def test_text_to_video(mock: Any, run_cli: Run) -> None:
    result = run_cli("generate", "a red fox in snow", "--url", mock.url, "--frames", "17", "--steps", "2")
    assert result.code == ExitCode.OK, result
    document = result.document
    assert document["status"] == "completed" and document["backend"] == "wan2gp" and not document["embedded"]
    [artifact] = document["artifacts"]
    path = check_artifact(artifact)
    assert artifact["media_type"] == "video/mp4" and frame_count(path) == 17
    # no model was asked for: the server's remembered model must not be rewritten
    assert "switching" not in result.log


def test_image_to_video_from_png(mock: Any, run_cli: Run, tmp_path: Path) -> None:
    from PIL import Image

    png = tmp_path / "start.png"
    Image.new("RGB", (64, 48), (20, 160, 40)).save(png)
    result = run_cli("generate", "the grass waves", "--url", mock.url, "--model", "i2v",
                     "--image-start", str(png), "--frames", "17", "--steps", "1")
    assert result.code == ExitCode.OK, result
    path = check_artifact(result.document["artifacts"][0])
    manifest = json.loads(next(path.parent.glob(f"{path.name}*.json")).read_text())
    assert "i2v" in json.dumps(manifest) and frame_count(path) == 17


def test_model_switch_to_another_family(mock: Any, run_cli: Run) -> None:
    result = run_cli("generate", "a city at night", "--url", mock.url, "--model", "ltx2_19B",
                     "--frames", "17", "--steps", "1")
    assert result.code == ExitCode.OK, result
    check_artifact(result.document["artifacts"][0])
    assert "remembered default model" in result.log  # the user is told about the side effect
    assert mock.backend.last_model.model_type == "ltx2_19B"


def test_lora_with_causvid_preset(mock: Any, run_cli: Run) -> None:
    result = run_cli("generate", "fast fox", "--url", mock.url, "--model", "t2v", "--frames", "17",
                     "--lora", "CausVid.safetensors:0.8", "--preset", "causvid")
    assert result.code == ExitCode.OK, result
    path = check_artifact(result.document["artifacts"][0])
    sent = sidecar_manifest(path)["provenance"]["settings_sent"]
    assert sent["sample_solver"] == "causvid" and sent["guidance_scale"] == 1
    assert sent["loras_multipliers"] == "0.8" and "CausVid.safetensors" in sent["loras_choices"]


def test_settings_export_import(mock: Any, run_cli: Run, tmp_path: Path) -> None:
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"model_type": "t2v", "settings_version": 2.74, "type": "Wan2.1 t2v",
                                  "prompt": "from the file", "video_length": 21, "num_inference_steps": 2,
                                  "seed": 4242}))
    result = run_cli("generate", "from the command line", "--url", mock.url, "--settings", str(export))
    assert result.code == ExitCode.OK, result
    path = check_artifact(result.document["artifacts"][0])
    assert frame_count(path) == 21 and "_seed4242_" in path.name


def test_server_side_validation_is_rejected(mock: Any, run_cli: Run) -> None:
    # i2v without a start image passes local checks; WanGP refuses it with a gr.Info message
    result = run_cli("generate", "no image", "--url", mock.url, "--model", "i2v", "--frames", "17")
    assert result.code == ExitCode.JOB_FAILED, result
    error = result.document["error"]
    assert error["type"] == "RejectedError" and "Start Image" in error["message"]
    assert result.document["artifacts"] == [] and faults.read_counter(mock.url)["total"] == 0


def test_invalid_request_refused_before_the_network(mock: Any, run_cli: Run) -> None:
    result = run_cli("generate", "x", "--url", mock.url, "--frames", "18")
    assert result.code == ExitCode.USAGE, result
    assert result.document["error"]["type"] == "InvalidRequestError"
    assert result.document["error"]["field"] == "frames" and "17" in result.document["error"]["message"]
    assert faults.read_counter(mock.url)["total"] == 0


def test_timeout_expiry(mock: Any, run_cli: Run) -> None:
    faults.set_options(mock.url, step_delay=0.2)
    result = run_cli("generate", "slow", "--url", mock.url, "--frames", "17", "--steps", "100",
                     "--timeout", "1")
    assert result.code == ExitCode.TIMEOUT, result
    assert result.document["error"]["type"] == "JobTimeoutError" and result.document["artifacts"] == []


def test_credentials_missing_and_wrong(auth_server: Any, run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = run_cli("generate", "x", "--url", auth_server.url, "--frames", "17")
    assert missing.code == ExitCode.CONNECTION, missing
    assert missing.document["error"]["type"] == "AuthenticationError"
    assert "none was given" in missing.document["error"]["message"]
    monkeypatch.setenv("VIDBRIDGE_PASSWORD", "wrong-canary-9q")
    wrong = run_cli("generate", "x", "--url", auth_server.url, "--username", "ann", "--frames", "17")
    assert wrong.code == ExitCode.CONNECTION, wrong
    assert wrong.document["error"]["type"] == "AuthenticationError"
    assert "refused" in wrong.document["error"]["message"]
    assert "wrong-canary-9q" not in json.dumps(wrong.document) + wrong.stderr + wrong.log


def test_login_then_generate(auth_server: Any, run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIDBRIDGE_PASSWORD", "canary-Pw-7f3a")
    result = run_cli("generate", "behind a login", "--url", auth_server.url, "--username", "ann",
                     "--frames", "17", "--steps", "1")
    assert result.code == ExitCode.OK, result
    path = check_artifact(result.document["artifacts"][0])
    assert "canary-Pw-7f3a" not in json.dumps(result.document) + result.stderr + result.log
    assert all("canary-Pw-7f3a" not in p.read_text(errors="replace") for p in path.parent.glob("*.json"))


def test_embedded_backend_when_nothing_is_configured(run_cli: Run) -> None:
    from vidbridge.plugins.mock_backend import plugin as mock_plugin

    if not hasattr(mock_plugin, "vidbridge_embedded_backend"):
        pytest.skip("the mock backend plugin has no vidbridge_embedded_backend hook yet")
    # run_cli's isolated_discovery: no URL in the environment or config file, no ports probed
    result = run_cli("generate", "offline demo", "--frames", "17", "--steps", "1")
    assert result.code == ExitCode.OK, result
    assert result.document["embedded"] is True
    assert "embedded mock backend" in result.stderr
    check_artifact(result.document["artifacts"][0])

