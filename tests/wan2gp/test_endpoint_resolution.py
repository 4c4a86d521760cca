"""Endpoints are resolved by the whole signature the flow needs, not "the first copy taking a prompt".

A WanGP server may carry other handlers under WanGP's function names (its plugin system, version
drift). The mock registers such decoys *before* the real endpoints (``VIDBRIDGE_MOCK_DECOYS=1``),
so the decoys take the plain names (``/save_inputs``) and the real ones get suffixes: a job must
complete without calling any decoy, on gradio 6 (in-process) and on gradio 5.29 (WanGP's pin, a
child process). When no copy fits, the error lists each copy considered and why it was refused.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Iterator

import pytest

from vidbridge import GenerationRequest
from vidbridge.plugins.mock_backend import faults
from vidbridge.plugins.mock_backend.app import DECOYS, DECOYS_ENV
from vidbridge.plugins.wan2gp.api import ApiSurface, EndpointNotFound, Signature
from vidbridge.plugins.wan2gp.flow import SIGNATURES
from wan2gp_helpers import run_job


def _endpoint(*names: str, returns: tuple[str, ...] = ()) -> dict[str, Any]:
    return {"parameters": [{"parameter_name": n, "component": "Textbox"} for n in names],
            "returns": [{"component": c} for c in returns]}


def test_every_copy_is_scored_and_the_best_fit_wins() -> None:
    api = ApiSurface({"named_endpoints": {
        "/save_inputs": _endpoint("target", "prompt"),  # a plugin's handler of the same name
        "/save_inputs_1": _endpoint("target", "client_id", "mode", "prompt"),
        "/save_inputs_2": _endpoint("target", "client_id", "mode", "prompt", "seed"),
        "/save_inputs_3": _endpoint("target", "client_id", "mode", "prompt", "seed"),
    }})
    needed = Signature("save_inputs", ("target", "client_id", "mode", "prompt"), preferred=("seed",))
    assert api.resolve(needed) == "/save_inputs_2"  # the most preferred fields, then the lowest suffix
    assert api.resolve(needed) == "/save_inputs_2"  # (cached)
    assert api.fits(needed)


def test_parameter_names_are_read_without_building_parameters() -> None:
    api = ApiSurface({"named_endpoints": {"/save_inputs": _endpoint("target", "prompt"),
                                          "/labelled": {"parameters": [{"label": "Prompt"}]}}})
    assert api.parameter_names("/save_inputs") == ("target", "prompt")
    assert api.parameter_names("/labelled") == ("Prompt",)  # no parameter_name: its label, as view_api shows
    assert [p.name for p in api.parameters("/save_inputs")] == ["target", "prompt"]
    with pytest.raises(EndpointNotFound, match="/nowhere"):
        api.parameter_names("/nowhere")


def test_when_no_copy_fits_each_is_named_with_the_reason() -> None:
    api = ApiSurface({"named_endpoints": {
        "/refresh_gallery": _endpoint(returns=("Textbox",)),
        "/refresh_gallery_1": _endpoint("tab", returns=("Gallery",)),
        "/activate_status": _endpoint(),
    }})
    with pytest.raises(EndpointNotFound) as caught:
        api.resolve(SIGNATURES["refresh_gallery"])
    message = str(caught.value)
    assert "/refresh_gallery returns no gallery (returns: textbox)" in message
    assert "/refresh_gallery_1 takes (tab), not ()" in message
    with pytest.raises(EndpointNotFound, match=r"/activate_status returns 0 value\(s\), not at least 1"):
        api.resolve(SIGNATURES["activate_status"])
    with pytest.raises(EndpointNotFound, match="the server has no copy of it"):
        api.resolve(SIGNATURES["process_tasks"])
    with pytest.raises(EndpointNotFound, match="lacks parameter"):
        api.resolve(Signature("activate_status", ("client_id",)))
    assert not api.fits(SIGNATURES["process_tasks"])
    assert SIGNATURES["save_inputs"].describe().startswith("/save_inputs taking parameters target, client_id")
    assert Signature("x").describe() == "/x taking any parameters"


def _run_on_decoys(session: Any, url: str, tmp_path: Path) -> None:
    api = session.api
    # The plain names are the decoys: the old "first copy taking these names" picked one of them.
    assert api.find("save_inputs", requires=["target", "prompt"]) == "/save_inputs"
    for need in ("save_inputs", "add_tasks", "process_tasks", "activate_status", "refresh_gallery",
                 "finalize_generation", "fill_inputs", "model_dropdowns", "abort_task", "abort"):
        assert api.resolve(SIGNATURES[need]) != f"/{SIGNATURES[need].base}", need
    [artifact], handle = run_job(session, GenerationRequest(prompt="past the decoys", frames=5, steps=2), tmp_path)
    assert artifact.size > 0 and handle.model
    events = faults.read_counter(url)["events"]
    assert not {name: count for name, count in events.items() if name.startswith("decoy:")}
    assert faults.read_counter(url)["by_prompt"] == {"past the decoys": 1}


@pytest.fixture
def decoy_server(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Any]:
    from vidbridge.plugins.mock_backend.server import MockServer

    monkeypatch.setenv(DECOYS_ENV, "1")  # read when the app is built
    with MockServer(port=0, state_dir=tmp_path / "state") as server:
        yield server


@pytest.mark.integration
def test_a_job_on_gradio6_never_calls_a_same_named_decoy(decoy_server: Any, connect: Any, tmp_path: Path) -> None:
    decoy_server.backend.remember_model("t2v")
    session = connect(decoy_server.url.rstrip("/"))
    _run_on_decoys(session, decoy_server.url, tmp_path)
    assert set(DECOYS) <= {name.lstrip("/") for name in session.api.names}


@pytest.mark.integration
@pytest.mark.gradio529
def test_a_job_on_gradio529_never_calls_a_same_named_decoy(connect: Any, tmp_path: Path) -> None:
    python = os.environ.get("VIDBRIDGE_GRADIO529_PYTHON")
    if not python:
        pytest.skip("no gradio 5.29 environment (VIDBRIDGE_GRADIO529_PYTHON)")
    from vidbridge.plugins.mock_backend.server import SubprocessMockServer

    with SubprocessMockServer(python=python, state_dir=tmp_path / "state", env={DECOYS_ENV: "1"}) as server:
        session = connect(server.url.rstrip("/"))
        assert str(session.server.config.get("version", "")).startswith("5.29")
        _run_on_decoys(session, server.url, tmp_path)
