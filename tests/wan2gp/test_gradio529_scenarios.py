"""The Wan2GP plugin's "done when" scenarios against a mock WanGP on gradio 5.29 (WanGP's pin).

The server runs from the gradio 5.29 environment as a child process (one per module, ~5 s to
start; a second one behind a login for the credentials test); ``vidbridge generate`` runs
in-process through the CLI tests' ``run_cli`` fixture and the host API through ``vidbridge.connect``.
The same scenarios run in-process on gradio 6 in ``test_integration.py`` and
``tests/cli/test_cli_generate.py``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from types import ModuleType
from typing import Any, Callable, Iterator

import httpx
import pytest

GRADIO529_PYTHON = os.environ.get("VIDBRIDGE_GRADIO529_PYTHON")
if not GRADIO529_PYTHON:
    pytest.skip("no gradio 5.29 environment (VIDBRIDGE_GRADIO529_PYTHON)", allow_module_level=True)

import vidbridge  # noqa: E402
from vidbridge import AuthenticationError, JobCancelledError, Phase, RejectedError  # noqa: E402
from vidbridge.cli import ExitCode  # noqa: E402
from vidbridge.plugins.mock_backend import faults  # noqa: E402
from vidbridge.plugins.mock_backend.server import SubprocessMockServer  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.gradio529]


def _cli_tests_module(name: str) -> ModuleType:
    """A module of ``tests/cli`` (no packages there: loaded by path, under a private name, so the
    CLI tests' helpers and fixtures are reused rather than copied)."""
    module_name = f"_vidbridge_tests_cli_{name}"
    if module_name not in sys.modules:
        spec = importlib.util.spec_from_file_location(module_name, Path(__file__).parent.parent / "cli" / f"{name}.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        spec.loader.exec_module(module)
    return sys.modules[module_name]


_cli_helpers = _cli_tests_module("cli_helpers")
_cli_conftest = _cli_tests_module("conftest")
check_artifact, frame_count = _cli_helpers.check_artifact, _cli_helpers.frame_count
sidecar_manifest = _cli_helpers.sidecar_manifest
# fixtures: `vidbridge ... --json --output <tmp>` in this process, with no ambient server configuration
run_cli, isolated_discovery = _cli_conftest.run_cli, _cli_conftest.isolated_discovery

Run = Callable[..., Any]
PASSWORD = "secret"


def _start_529(tmp_path_factory: pytest.TempPathFactory, name: str, **options: Any) -> SubprocessMockServer:
    server = SubprocessMockServer(python=GRADIO529_PYTHON, state_dir=tmp_path_factory.mktemp(name), **options)
    server.start()
    try:  # the child really is gradio 5.29, not whatever the test interpreter has
        with httpx.Client(base_url=server.url, timeout=30) as http:
            if options.get("auth"):
                user, _, password = options["auth"].partition(":")
                http.post("login", data={"username": user, "password": password}).raise_for_status()
            version = str(http.get("config").json().get("version", ""))
        assert version.startswith("5.29"), f"{GRADIO529_PYTHON} serves gradio {version!r}"
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def _servers529(request: pytest.FixtureRequest,
                tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Future[SubprocessMockServer]]]:
    """The module's 5.29 servers, started side by side (each start takes seconds): the plain one,
    and the one behind a login if a selected test of this module uses it."""
    options = {"gradio529": {}, "gradio529-auth": {"auth": f"ann:{PASSWORD}"}}
    wanted = {"gradio529"} | {"gradio529-auth" for item in request.session.items
                              if item.module is request.module and "auth_server529" in item.fixturenames}
    with ThreadPoolExecutor(max_workers=len(wanted)) as pool:
        starting = {name: pool.submit(_start_529, tmp_path_factory, name, **options[name]) for name in wanted}
        try:
            yield starting
        finally:
            for future in starting.values():
                if future.exception() is None:
                    future.result().stop()


@pytest.fixture(scope="module")
def server529(_servers529: dict[str, Future[SubprocessMockServer]]) -> SubprocessMockServer:
    return _servers529["gradio529"].result()


@pytest.fixture(scope="module")
def auth_server529(_servers529: dict[str, Future[SubprocessMockServer]]) -> SubprocessMockServer:
    return _servers529["gradio529-auth"].result()


def _remembered_model(url: str) -> str:
    return httpx.get(url + "mock_admin/health", timeout=30).json()["last_model"]


@pytest.fixture
def mock(server529: SubprocessMockServer, tmp_path: Path) -> Iterator[SubprocessMockServer]:
    """The module's 5.29 server: faults cleared, counter zeroed, no step delay, and back on
    ``t2v`` (WanGP remembers the last model used and new sessions start on it; the child has no
    admin route for that, so a one-step t2v job switches it back, as a user would)."""

    def reset() -> None:
        faults.clear_faults(server529.url)
        faults.set_options(server529.url, step_delay=0.0)
        if _remembered_model(server529.url) != "t2v":
            with vidbridge.connect(server529.url, cache_dir=tmp_path / "reset-cache") as session:
                session.generate(prompt="reset", model="t2v", frames=17, steps=1, output_dir=tmp_path / "reset")
            assert _remembered_model(server529.url) == "t2v"
        faults.reset_counter(server529.url)

    reset()
    yield server529
    faults.set_options(server529.url, step_delay=0.0)



def _first_frame_mean(path: Path) -> tuple[float, ...]:
    import av
    import numpy as np

    with av.open(str(path)) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    return tuple(float(v) for v in np.asarray(frame, dtype=float).reshape(-1, 3).mean(axis=0))


def test_text_to_video_cli(mock: SubprocessMockServer, run_cli: Run) -> None:
    result = run_cli("generate", "a red fox in snow", "--url", mock.url, "--frames", "17", "--steps", "2")
    assert result.code == ExitCode.OK, result
    document = result.document
    assert document["status"] == "completed" and document["backend"] == "wan2gp" and not document["embedded"]
    [artifact] = document["artifacts"]
    path = check_artifact(artifact)  # exists, size and SHA-256 match
    assert artifact["media_type"] == "video/mp4" and frame_count(path) == 17
    assert "switching" not in result.log  # no model asked for: the remembered one is kept
    assert faults.read_counter(mock.url)["total"] == 1


def test_image_to_video_python_api(mock: SubprocessMockServer, tmp_path: Path) -> None:
    from PIL import Image

    colour = (20, 160, 40)
    png = tmp_path / "start.png"
    Image.new("RGB", (64, 48), colour).save(png)
    with vidbridge.connect(mock.url, cache_dir=tmp_path / "cache") as session:
        job = session.submit(prompt="the grass waves", model="i2v", image_start=png, frames=17, steps=1,
                             output_dir=tmp_path / "i2v")
        [artifact] = job.result()
        [text] = session.generate(prompt="the grass waves", model="t2v", frames=17, steps=1,
                                  output_dir=tmp_path / "t2v")
    path = check_artifact(artifact.to_summary())
    assert frame_count(path) == 17 and artifact.provenance.model == "i2v"
    assert artifact.provenance.settings_sent["image_prompt_type"] == "S"
    assert sidecar_manifest(path)["provenance"]["settings_sent"]["image_prompt_type"] == "S"
    # the mock makes the start image the first frame: the upload reached the generation
    first = _first_frame_mean(path)
    assert all(abs(got - want) < 25 for got, want in zip(first, colour)), first
    assert any(abs(got - want) >= 25 for got, want in zip(_first_frame_mean(text.path), colour))


def test_model_switch_to_another_family_cli(mock: SubprocessMockServer, run_cli: Run) -> None:
    result = run_cli("generate", "a city at night", "--url", mock.url, "--model", "ltx2_19B",
                     "--frames", "17", "--steps", "1")
    assert result.code == ExitCode.OK, result
    path = check_artifact(result.document["artifacts"][0])
    assert frame_count(path) == 17 and sidecar_manifest(path)["provenance"]["model"] == "ltx2_19B"
    assert "remembered default model" in result.log  # the user is told about the side effect
    assert _remembered_model(mock.url) == "ltx2_19B"


def test_lora_with_causvid_preset_cli(mock: SubprocessMockServer, run_cli: Run) -> None:
    result = run_cli("generate", "fast fox", "--url", mock.url, "--model", "t2v", "--frames", "17",
                     "--lora", "CausVid.safetensors:0.8", "--preset", "causvid")
    assert result.code == ExitCode.OK, result
    path = check_artifact(result.document["artifacts"][0])
    sent = sidecar_manifest(path)["provenance"]["settings_sent"]
    assert sent["sample_solver"] == "causvid" and sent["guidance_scale"] == 1
    assert sent["num_inference_steps"] == 8
    assert sent["loras_multipliers"] == "0.8" and "CausVid.safetensors" in sent["loras_choices"]
    assert frame_count(path) == 17


def test_settings_json_import_cli(mock: SubprocessMockServer, run_cli: Run, tmp_path: Path) -> None:
    export = tmp_path / "export.json"
    export.write_text(json.dumps({"model_type": "t2v", "settings_version": 2.74, "type": "Wan2.1 t2v",
                                  "prompt": "from the file", "video_length": 21, "num_inference_steps": 2,
                                  "seed": 4242, "unknown_future_key": 1}))
    result = run_cli("generate", "from the command line", "--url", mock.url, "--settings", str(export))
    assert result.code == ExitCode.OK, result
    path = check_artifact(result.document["artifacts"][0])
    assert frame_count(path) == 21 and "_seed4242_" in path.name
    sent = sidecar_manifest(path)["provenance"]["settings_sent"]
    assert sent["prompt"] == "from the command line" and sent["num_inference_steps"] == 2


def test_cancel_during_generation_python_api(mock: SubprocessMockServer, tmp_path: Path) -> None:
    faults.set_options(mock.url, step_delay=0.2)  # 50 steps: ~10 s unless the cancel stops it
    with vidbridge.connect(mock.url, cache_dir=tmp_path / "cache") as session:
        job = session.submit(prompt="long", model="t2v", frames=17, steps=50, output_dir=tmp_path / "out")
        phases = []
        for status in job.updates():  # wait for the denoising loop (an event, not a sleep)
            phases.append(status.phase)
            if status.phase is Phase.INFERRING or status.is_terminal:
                break
        assert phases[-1] is Phase.INFERRING, phases
        result = job.cancel()  # returns at once; the job then ends cancelled
        assert result.server_stopped, result
        assert job.wait(timeout=60).phase is Phase.CANCELLED
        with pytest.raises(JobCancelledError):
            job.result()
    assert job.artifacts == [] and not list((tmp_path / "out").glob("*.mp4"))
    counter = faults.read_counter(mock.url)
    assert counter["total"] == 1 and counter["completed"] == 0


def test_server_side_validation_failure(mock: SubprocessMockServer, run_cli: Run, tmp_path: Path) -> None:
    # i2v without a start image passes local checks; WanGP refuses it with a gr.Info message
    result = run_cli("generate", "no image", "--url", mock.url, "--model", "i2v", "--frames", "17")
    assert result.code == ExitCode.JOB_FAILED == 4, result
    error = result.document["error"]
    assert error["type"] == "RejectedError" and "Start Image" in error["message"]
    assert result.document["artifacts"] == []
    with vidbridge.connect(mock.url, cache_dir=tmp_path / "cache") as session:
        # submit() returns at once: the server's refusal ends the job
        job = session.submit(prompt="no image", model="i2v", frames=17, output_dir=tmp_path / "api")
        with pytest.raises(RejectedError) as info:
            job.result(timeout=60)
    assert "Start Image" in (info.value.server_message or "")
    assert faults.read_counter(mock.url)["total"] == 0  # nothing was generated


def test_wrong_credentials(auth_server529: SubprocessMockServer, run_cli: Run, monkeypatch: pytest.MonkeyPatch,
                           tmp_path: Path) -> None:
    monkeypatch.setenv("VIDBRIDGE_PASSWORD", "wrong-canary-9q")
    wrong = run_cli("generate", "x", "--url", auth_server529.url, "--username", "ann", "--frames", "17")
    assert wrong.code == ExitCode.CONNECTION == 3, wrong
    assert wrong.document["error"]["type"] == "AuthenticationError"
    assert "wrong-canary-9q" not in json.dumps(wrong.document) + wrong.stderr + wrong.log
    with pytest.raises(AuthenticationError) as refused:
        vidbridge.connect(auth_server529.url, credentials={"username": "ann", "password": "nope"},
                          cache_dir=tmp_path / "cache")
    assert refused.value.reason == "refused" and "nope" not in str(refused.value)
    # the right password is accepted by the same 5.29 login
    with vidbridge.connect(auth_server529.url, credentials={"username": "ann", "password": PASSWORD},
                           cache_dir=tmp_path / "cache") as session:
        assert session.endpoint.url.rstrip("/") == auth_server529.url.rstrip("/")
