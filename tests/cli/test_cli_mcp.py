"""The command line on WanGP's MCP face: ``vidbridge mock-server --mcp`` in a child process, the
``vidbridge`` commands in this one."""

from __future__ import annotations

import json
from typing import Any, Callable, Iterator

import pytest
from cli_helpers import check_artifact, frame_count, sidecar_manifest

from vidbridge.cli import ExitCode
from vidbridge.plugins.mock_backend.fixtures import vidbridge_mock_subprocess_factory  # noqa: F401 - fixture

pytestmark = pytest.mark.integration

Run = Callable[..., Any]


@pytest.fixture
def mcp_server(vidbridge_mock_subprocess_factory: Callable[..., Any]) -> Iterator[Any]:  # noqa: F811
    """``vidbridge mock-server --mcp --port 0`` in a child process (its URL ends in ``/mcp``)."""
    server = vidbridge_mock_subprocess_factory(mcp=True)
    assert server.url.endswith("/mcp")
    yield server


def test_generate_on_the_mcp_face(mcp_server: Any, run_cli: Run) -> None:
    result = run_cli("generate", "a red fox in snow", "--url", mcp_server.url, "--model", "t2v_1.3B",
                     "--frames", "17", "--steps", "2", "--seed", "11")
    assert result.code == ExitCode.OK, result
    assert result.document["status"] == "completed" and result.document["backend"] == "wan2gp"
    [artifact] = result.document["artifacts"]
    path = check_artifact(artifact)
    assert artifact["media_type"] == "video/mp4" and frame_count(path) == 17
    provenance = sidecar_manifest(path)["provenance"]
    assert provenance["face"] == "mcp" and provenance["mcp_job"] and provenance["seed"] == 11


def test_discover_names_the_face(mcp_server: Any, capsys: pytest.CaptureFixture[str], isolated_discovery: None) -> None:
    from vidbridge.cli import main

    for url in (mcp_server.url, mcp_server.base_url.rstrip("/")):
        capsys.readouterr()
        assert main(["discover", "--no-probe", "--timeout", "10", "--url", url, "--json"]) == ExitCode.OK
        [endpoint] = json.loads(capsys.readouterr().out)["endpoints"]
        assert endpoint["backend"] == "wan2gp" and endpoint["transport"] == "mcp" and endpoint["healthy"]
    assert main(["discover", "--no-probe", "--timeout", "10", "--url", mcp_server.url]) == ExitCode.OK
    line = capsys.readouterr().out.strip()
    assert line.startswith(f"{mcp_server.url}  wan2gp") and "(mcp)" in line


def _main_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict[str, Any]]:
    from vidbridge.cli import main

    capsys.readouterr()
    code = main([*args, "--json"])
    return int(code), json.loads(capsys.readouterr().out)


def test_models_show_availability(mcp_server: Any, capsys: pytest.CaptureFixture[str],
                                  isolated_discovery: None) -> None:
    from vidbridge.cli import main

    code, document = _main_json(capsys, "models", "--url", mcp_server.url)
    assert code == ExitCode.OK, document
    assert "t2v_1.3B" in document["models"] and len(document["models"]) > 100  # more than one page
    assert document["availability"]["t2v_1.3B"] == "available"
    assert set(document["availability"].values()) <= {"available", "partial", "missing"}
    assert set(document["models"]) == set(document["availability"])
    assert main(["models", "--url", mcp_server.url]) == ExitCode.OK
    assert "t2v_1.3B  available" in capsys.readouterr().out.splitlines()


def test_models_lists_loras(mcp_server: Any, capsys: pytest.CaptureFixture[str], isolated_discovery: None) -> None:
    from vidbridge.cli import main

    folder = mcp_server.state_dir / "loras"
    folder.mkdir(exist_ok=True)
    (folder / "CausVid.safetensors").write_bytes(b"x")
    code, document = _main_json(capsys, "models", "--url", mcp_server.url, "--loras", "t2v_1.3B")
    assert code == ExitCode.OK and document["loras"] == ["CausVid.safetensors"], document
    code, document = _main_json(capsys, "models", "--url", mcp_server.url, "--loras", "no_such_model")
    assert code == ExitCode.USAGE and document["error"]["type"] == "InvalidRequestError", document
    assert main(["models", "--url", mcp_server.url, "--loras", "t2v_1.3B"]) == ExitCode.OK
    assert capsys.readouterr().out.strip() == "CausVid.safetensors"


def test_loras_refused_on_a_face_that_cannot_list_them(capsys: pytest.CaptureFixture[str], isolated_discovery: None,
                                                       vidbridge_mock: Any) -> None:
    code, document = _main_json(capsys, "models", "--url", vidbridge_mock.url, "--loras", "t2v")
    assert code == ExitCode.USAGE and "cannot list LoRAs" in document["error"]["message"], document
