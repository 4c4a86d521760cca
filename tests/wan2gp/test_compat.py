"""The compat module (``plugins/wan2gp/compat.py``): every gradio_client internal the plugin uses is
still there, in the installed release and in the lowest supported one; pyproject's bound is the one
checked; a change is reported by name."""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from gradio_client import client as gc_client
from gradio_client import utils as gc_utils

from vidbridge.plugins.wan2gp import compat

ROOT = Path(__file__).resolve().parents[2]
LOWEST_ENV = ROOT / ".venv-gradio-client-lowest"


def _bound() -> tuple[str, str]:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    [spec] = [d for d in dependencies if d.replace("-", "_").startswith("gradio_client")]
    match = re.fullmatch(r"gradio_client>=([\d.]+),<([\d.]+)", spec.replace(" ", ""))
    assert match, f"pyproject.toml must bound gradio_client on both sides, not {spec!r}"
    return match[1], match[2]


def _release(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def test_the_installed_gradio_client_has_everything_compat_uses() -> None:
    compat.check()  # raises GradioClientChanged naming each change


def test_pyproject_bounds_gradio_client_to_the_checked_releases() -> None:
    from importlib.metadata import version

    assert _bound() == compat.SUPPORTED
    low, high = compat.SUPPORTED
    assert _release(low) <= _release(version("gradio_client")) < _release(high)


@pytest.mark.parametrize("change", ["method", "signature", "field", "status", "endpoint", "job", "attribute"])
def test_a_changed_internal_is_named(monkeypatch: pytest.MonkeyPatch, change: str) -> None:
    if change == "method":
        monkeypatch.delattr(gc_client.Client, "_get_api_info")
        expected = "Client._get_api_info is gone"
    elif change == "signature":
        monkeypatch.setattr(gc_client.Client, "new_helper", lambda self, fn_index: None)
        expected = "Client.new_helper() no longer takes headers"
    elif change == "field":
        monkeypatch.setattr(gc_utils, "StatusUpdate", dataclasses.make_dataclass("StatusUpdate", ["code"]))
        expected = "gradio_client.utils.StatusUpdate has no field rank"
    elif change == "status":
        monkeypatch.setattr(compat, "_STATUS_MEMBERS", ("IN_QUEUE", "WAITING"))
        expected = "Status.WAITING is gone"
    elif change == "endpoint":
        monkeypatch.delattr(gc_client, "Endpoint")
        expected = "gradio_client.client.Endpoint is gone"
    elif change == "job":
        monkeypatch.setattr(gc_client, "Job", type("Job", (), {"__init__": lambda self, future: None}))
        expected = "Job no longer takes a communicator"
    else:
        monkeypatch.setattr(compat, "_CLIENT_ATTRIBUTES", (*compat._CLIENT_ATTRIBUTES, "renamed_pool"))
        expected = "Client.__init__ no longer sets self.renamed_pool"
    with pytest.raises(compat.GradioClientChanged, match=re.escape(expected)) as caught:
        compat.check()
    assert "checked against 2.7.0 <= gradio_client < 2.8" in str(caught.value)


def test_a_built_client_is_checked_too(connect: Any, vidbridge_mock: Any) -> None:
    session = connect(vidbridge_mock.url)
    pooled = session.acquire()
    try:
        compat.check_client(pooled.client)
        assert isinstance(pooled.client.executor, compat.DaemonExecutor)
    finally:
        session.release(pooled)
    with pytest.raises(compat.GradioClientChanged, match="Client has no .*heartbeat"):
        compat.check_client(type("Old", (), {"config": {}, "endpoints": {}, "protocol": "sse_v3", "_info": {},
                                             "_kill_heartbeat": None, "executor": None,
                                             "helper_executor": None, "stream_executor": None})())


def test_job_helpers_accept_jobs_without_a_communicator(caplog: pytest.LogCaptureFixture) -> None:
    class Bare:
        communicator = None

        def add_done_callback(self, callback: Any) -> None:
            callback(self)

        def done(self) -> bool:
            return False

        def cancel(self) -> bool:
            raise KeyError("gone")  # gradio_client's race after a lost stream

    bare = Bare()
    assert compat.drain(bare) == [] and compat.joined_queue(bare) is False and compat.joined_queue(None) is False
    woken = []
    compat.listen(bare, lambda: woken.append(1))
    assert woken == [1]
    with caplog.at_level(logging.DEBUG, logger="vidbridge.plugins.wan2gp"):
        compat.end_jobs([None, bare])
    assert "stopping a gradio call failed (KeyError" in caplog.text


def test_the_lowest_supported_gradio_client_has_everything_compat_uses() -> None:
    """pyproject's lower bound is a promise: the check runs against that release, installed (once,
    without dependencies) into ``.venv-gradio-client-lowest`` beside the installed one's deps."""
    if os.environ.get("VIDBRIDGE_SKIP_LOWEST_GRADIO_CLIENT"):
        pytest.skip("VIDBRIDGE_SKIP_LOWEST_GRADIO_CLIENT is set")
    low, _ = _bound()
    target = LOWEST_ENV / low
    if not (target / "gradio_client").is_dir():
        done = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check",
                               "--no-deps", "--target", str(target), f"gradio_client=={low}"],
                              capture_output=True, text=True)
        if done.returncode != 0:
            pytest.skip(f"cannot install gradio_client=={low}: {done.stderr[-500:]}")
    code = ("from importlib.metadata import version; import gradio_client; "
            "from vidbridge.plugins.wan2gp import compat; compat.check(); "
            "print(version('gradio_client'), gradio_client.__file__)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    release, location = done.stdout.split()
    assert release == low and location.startswith(str(target))
