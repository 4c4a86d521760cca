"""Output names on disk (issue 14, item 11): a symlink carrying the output's name in the output
folder is a taken name, skipped for the next numbered one; it is never followed nor replaced, and
the generated video is never lost. Through ``vidbridge generate`` against the mock WanGP, whose
``hostile_name`` fault makes the server call its output ``x.mp4``."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable

import pytest
from cli_helpers import check_artifact, frame_count

from vidbridge.cli import ExitCode
from vidbridge.plugins.mock_backend import faults

pytestmark = pytest.mark.integration

Run = Callable[..., Any]


@pytest.mark.parametrize("kind", ["outside", "dangling", "inside"])
def test_a_symlink_named_like_the_output_gets_the_next_numbered_name(mock: Any, run_cli: Run, tmp_path: Path,
                                                                      kind: str) -> None:
    faults.add_faults(mock.url, "hostile_name:name=x.mp4")
    out = tmp_path / "out"
    out.mkdir()
    outside = tmp_path / "precious.mp4"
    outside.write_bytes(b"precious")
    (out / "y.mp4").write_bytes(b"mine")
    target = {"outside": str(outside), "dangling": str(tmp_path / "gone" / "x.mp4"), "inside": "y.mp4"}[kind]
    os.symlink(target, out / "x.mp4")
    result = run_cli("generate", "a boat", "--url", mock.url, "--frames", "17", "--steps", "1")
    assert result.code == ExitCode.OK, result
    [artifact] = result.document["artifacts"]
    path = check_artifact(artifact)
    assert path == out / "x (1).mp4" and not path.is_symlink() and frame_count(path) == 17
    assert os.readlink(out / "x.mp4") == target
    assert outside.read_bytes() == b"precious" and (out / "y.mp4").read_bytes() == b"mine"
    assert not (tmp_path / "gone").exists()
    assert sorted(os.listdir(out)) == ["x (1).mp4", "x (1).mp4.json", "x.mp4", "y.mp4"]
