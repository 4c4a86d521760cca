"""The package docstring's example runs as written (against the mock server)."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest

import vidbridge

pytestmark = pytest.mark.integration


def test_the_package_docstring_example_runs(mock: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    match = re.search(r"Quick use.*?::\n\n(.*?)\n\n(?=\S)", vidbridge.__doc__ or "", re.S)
    assert match, "the package docstring has no example"
    code = textwrap.dedent(match.group(1))
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, Any] = {"url": mock.url}
    exec(compile(code, "vidbridge.__doc__", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "completed" in printed and (tmp_path / "outputs").is_dir()
    assert vidbridge.JobRef.from_json(namespace["saved"]).job_id == namespace["job"].id
