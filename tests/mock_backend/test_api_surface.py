"""The mock's own view_api() against the recording of a live WanGP 12.60 (api-12.60.json)."""

from __future__ import annotations

import gzip
import json
import os
import re

import pytest

from vidbridge.plugins.mock_backend.spec import API_FILE

from mock_helpers import open_client

pytestmark = pytest.mark.integration

COMPARED = ("save_inputs", "process_prompt_and_add_tasks", "prepare_generate_media",
            "activate_status", "refresh_status_async", "process_tasks", "refresh_gallery",
            "finalize_generation", "abort_generation", "early_stop_generation",
            "clear_queue_action", "change_model_from_target", "fill_inputs",
            "load_settings_from_file", "init_generate", "refresh_model_dropdowns")
REQUIRED = {"/save_inputs", "/save_inputs_1", "/process_prompt_and_add_tasks",
            "/process_prompt_and_add_tasks_1", "/abort_generation", "/abort_generation_1",
            *(f"/{name}" for name in COMPARED)}
# gradio 6 describes FileData-based components with other JSON schemas than gradio 5.29 did;
# their python_type strings cannot match there (names, order, defaults and components still do).
GRADIO6_FILEDATA = {"Gallery", "Video", "Image"}


def recorded() -> dict:
    with gzip.open(API_FILE, "rt") as fh:
        named = json.load(fh)["named_endpoints"]
    out = {}
    for name, entry in named.items():
        while "same_as" in entry:
            entry = named[entry["same_as"]]
        out[name] = entry
    return out


def python_type(entry: dict) -> str:
    value = entry["python_type"]
    value = value["type"] if isinstance(value, dict) else value
    # The recording's gradio_client printed an empty FileData ``meta`` as dict().
    return value.replace("meta: dict(str, Any)", "meta: dict()")


def differences(mine: dict, real: dict, *, gradio6: bool) -> list[str]:
    problems = []
    if len(mine["parameters"]) != len(real["parameters"]):
        problems.append(f"{len(mine['parameters'])} parameters, recorded {len(real['parameters'])}")
    for a, b in zip(mine["parameters"], real["parameters"]):
        for key in ("parameter_name", "component", "parameter_has_default", "parameter_default"):
            if a[key] != b[key]:
                problems.append(f"{b['parameter_name']}.{key}: {a[key]!r} != {b[key]!r}")
        if not (gradio6 and b["component"] in GRADIO6_FILEDATA) and python_type(a) != python_type(b):
            problems.append(f"{b['parameter_name']}.python_type: {python_type(a)!r} != {python_type(b)!r}")
    if [r["component"] for r in mine["returns"]] != [r["component"] for r in real["returns"]]:
        problems.append("returns differ")
    for a, b in zip(mine["returns"], real["returns"]):
        if not (gradio6 and b["component"] in GRADIO6_FILEDATA) and python_type(a) != python_type(b):
            problems.append(f"return {b['label']}.python_type: {python_type(a)!r} != {python_type(b)!r}")
    return problems


def compare(url: str, *, gradio6: bool, endpoints: tuple[str, ...] | None = COMPARED) -> dict:
    real = recorded()
    with open_client(url) as client:
        mine = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    assert not (REQUIRED - set(mine)), REQUIRED - set(mine)
    report = {}
    for name, entry in mine.items():
        base = re.sub(r"_\d+$", "", name.lstrip("/"))
        if endpoints is not None and base not in endpoints:
            continue
        assert name in real, name
        problems = differences(entry, real[name], gradio6=gradio6)
        if problems:
            report[name] = problems
    return report


def test_view_api_matches_the_recording_on_gradio6(vidbridge_mock) -> None:
    assert compare(vidbridge_mock.url, gradio6=True) == {}


def test_save_inputs_danger_and_shape_are_reproduced(client) -> None:
    api = client.view_api(return_format="dict", print_info=False)["named_endpoints"]
    params = api["/save_inputs"]["parameters"]
    assert len(params) == 129 and params[0]["parameter_default"] == "settings"
    assert api["/save_inputs_1"]["parameters"][0]["parameter_default"] == "state"
    no_default = [p["parameter_name"] for p in params if not p["parameter_has_default"]]
    recorded_no_default = [p["parameter_name"] for p in recorded()["/save_inputs"]["parameters"]
                           if not p["parameter_has_default"]]
    # CONTRACT.md says 18 but lists 19 names; the recording has those 19.
    assert no_default == recorded_no_default and len(no_default) == 19


@pytest.mark.gradio529
def test_view_api_matches_the_recording_on_gradio529(vidbridge_mock_subprocess_factory) -> None:
    python = os.environ.get("VIDBRIDGE_GRADIO529_PYTHON")
    if not python:
        pytest.skip("VIDBRIDGE_GRADIO529_PYTHON is not set")
    server = vidbridge_mock_subprocess_factory(python=python)
    assert compare(server.url, gradio6=False) == {}


def test_full_surface_reproduces_every_recorded_endpoint(tmp_path) -> None:
    from vidbridge.plugins.mock_backend.server import MockServer

    import httpx

    with MockServer(full_surface=True, state_dir=tmp_path) as server:
        # The raw /info answer is what Client.view_api returns; skipping Client saves seconds.
        info = httpx.get(server.url + "gradio_api/info?serialize=False", timeout=60).json()
        mine = info["named_endpoints"]
        real = recorded()
        assert set(mine) == set(real) and len(mine) == 608
        report = {n: p for n in real if (p := differences(mine[n], real[n], gradio6=True))}
        assert report == {}
