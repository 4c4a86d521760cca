"""Ctrl-C during ``vidbridge generate`` (issue 14, item 12): the download stops, removes its partial
file, and nothing is left in the output folder that the JSON does not report.

The first tests run the real command line in a subprocess against the mock WanGP with its ``slow``
fault (the file trickles at 2,000 bytes/s, ~6 s for the MP4) and send it real SIGINTs, timed by
its own stderr (the debug line of the download creating its ``.part`` file), never by a sleep.
The others run it in-process with ``Job.result``/``Job.cancel`` interrupted where a Ctrl-C lands.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable

import pytest
from cli_helpers import check_artifact

from vidbridge.cli import ExitCode
from vidbridge.job import Job
from vidbridge.models import Phase
from vidbridge.plugins.mock_backend import faults

pytestmark = [pytest.mark.integration, pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")]

Run = Callable[..., Any]
SLOW = "slow:rate=2000"


class Generate:
    """``vidbridge generate ... --json -vv`` in a subprocess, its stderr read line by line."""

    def __init__(self, url: str, output: Path, tmp_path: Path) -> None:
        script = Path(sys.executable).with_name("vidbridge")
        command = [str(script)] if script.exists() else [sys.executable, "-m", "vidbridge.cli"]
        env = dict(os.environ, VIDBRIDGE_WAN2GP_PROBE_PORTS="", XDG_CONFIG_HOME=str(tmp_path / "config"))
        for name in ("VIDBRIDGE_WAN2GP_URL", "VIDBRIDGE_PASSWORD", "VIDBRIDGE_USERNAME", "VIDBRIDGE_TOKEN"):
            env.pop(name, None)
        self.process = subprocess.Popen(
            [*command, "generate", "a paper boat", "--frames", "17", "--url", url, "--json", "--output",
             str(output), "-vv"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        self.lines: list[str] = []
        self.downloading = threading.Event()
        self.cancelling = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stderr:
            self.lines.append(line)
            if "vidbridge.download" in line and line.rstrip().endswith(".part"):
                self.downloading.set()  # the .part file exists: the download phase is under way
            if "interrupted: cancelling" in line:
                self.cancelling.set()

    def interrupt(self) -> None:
        self.process.send_signal(signal.SIGINT)

    def finish(self) -> tuple[int, dict[str, Any], str]:
        out = self.process.stdout.read()
        code = self.process.wait(timeout=120)
        self._reader.join(30)
        return code, json.loads(out), "".join(self.lines)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)


@pytest.fixture
def generate(mock: Any, tmp_path: Path):
    started: list[Generate] = []

    def start(output: Path) -> Generate:
        started.append(Generate(mock.url, output, tmp_path))
        return started[-1]

    yield start
    for process in started:
        process.kill()


def _assert_cancelled_leaving_nothing(code: int, document: dict[str, Any], stderr: str, output: Path) -> None:
    assert code == ExitCode.CANCELLED, stderr[-3000:]
    assert document["status"] == "cancelled" and document["artifacts"] == []
    assert document["error"] == {"type": "KeyboardInterrupt", "message": "interrupted"}
    assert sorted(os.listdir(output)) == []  # no .part, no MP4, no manifest
    assert "vidbridge.download: downloaded" not in stderr  # stopped, not finished and then thrown away


def test_ctrl_c_during_the_download_stops_it_and_leaves_nothing(mock: Any, generate, tmp_path: Path) -> None:
    faults.add_faults(mock.url, SLOW)
    output = tmp_path / "out"
    run = generate(output)
    assert run.downloading.wait(120), "".join(run.lines)[-3000:]
    run.interrupt()
    _assert_cancelled_leaving_nothing(*run.finish(), output)


def test_a_second_ctrl_c_while_cancelling_leaves_nothing_either(mock: Any, generate, tmp_path: Path) -> None:
    faults.add_faults(mock.url, SLOW)
    output = tmp_path / "out"
    run = generate(output)
    assert run.downloading.wait(120), "".join(run.lines)[-3000:]
    run.interrupt()
    assert run.cancelling.wait(60)
    run.interrupt()
    _assert_cancelled_leaving_nothing(*run.finish(), output)


# -- in-process: where exactly the Ctrl-C lands ------------------------------------------------------


def _interrupt_result_when(monkeypatch: pytest.MonkeyPatch, ready: Callable[[Any], bool]) -> list[Job]:
    """Job.result raises KeyboardInterrupt (a Ctrl-C) once a status satisfies ``ready``."""
    jobs: list[Job] = []

    def interrupted_result(self: Job, timeout: float | None = None) -> list:
        jobs.append(self)
        for status in self.updates(timeout=120):
            if ready(status):
                break
        raise KeyboardInterrupt

    monkeypatch.setattr(Job, "result", interrupted_result)
    return jobs


def _interrupt_first_cancel(monkeypatch: pytest.MonkeyPatch) -> list[Phase]:
    """The first Job.cancel is hit by a second Ctrl-C before it does anything; later ones run."""
    real_cancel = Job.cancel
    phases: list[Phase] = []

    def cancel(self: Job):
        phases.append(self.status().phase)
        if len(phases) == 1:
            raise KeyboardInterrupt
        return real_cancel(self)

    monkeypatch.setattr(Job, "cancel", cancel)
    return phases


def test_ctrl_c_after_the_job_completed_reports_its_artifacts(mock: Any, run_cli: Run, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    _interrupt_result_when(monkeypatch, lambda status: status.phase is Phase.COMPLETED)
    result = run_cli("generate", "too late", "--url", mock.url, "--frames", "17", "--steps", "1")
    assert result.code == ExitCode.OK, result
    assert result.document["status"] == "completed" and "error" not in result.document
    [artifact] = result.document["artifacts"]
    path = check_artifact(artifact)
    assert sorted(os.listdir(tmp_path / "out")) == sorted([path.name, path.name + ".json"])
    assert "its artifacts are kept" in result.stderr


def test_a_second_ctrl_c_during_the_download_waits_for_its_cleanup(mock: Any, run_cli: Run, tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    faults.add_faults(mock.url, SLOW)
    jobs = _interrupt_result_when(monkeypatch, lambda status: status.downloaded_bytes is not None)
    phases = _interrupt_first_cancel(monkeypatch)
    result = run_cli("generate", "slow download", "--url", mock.url, "--frames", "17", "--steps", "1")
    assert result.code == ExitCode.CANCELLED, result
    assert result.document["status"] == "cancelled" and result.document["artifacts"] == []
    assert phases[:2] == [Phase.DOWNLOADING, Phase.DOWNLOADING]  # the interrupted cancel was done again
    assert "still stopping the download" in result.stderr
    assert jobs[0].status().phase is Phase.CANCELLED
    assert os.listdir(tmp_path / "out") == []


def test_a_second_ctrl_c_before_the_download_is_obeyed(mock: Any, run_cli: Run, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    faults.set_options(mock.url, step_delay=0.05)
    jobs = _interrupt_result_when(monkeypatch, lambda status: status.phase is Phase.INFERRING)
    phases = _interrupt_first_cancel(monkeypatch)
    result = run_cli("generate", "long", "--url", mock.url, "--frames", "17", "--steps", "100")
    assert result.code == ExitCode.CANCELLED, result
    assert result.document["status"] == "cancelled" and result.document["artifacts"] == []
    assert phases[0] is Phase.INFERRING and "still stopping" not in result.stderr
    # closing the session still cancelled the job (the second call of Job.cancel)
    assert jobs[0].status().phase is Phase.CANCELLED and len(phases) == 2
    assert not (tmp_path / "out").exists() or os.listdir(tmp_path / "out") == []


def test_a_job_that_does_not_end_after_the_cancel_is_not_waited_for_forever(
        mock: Any, run_cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    from vidbridge.errors import JobTimeoutError

    faults.set_options(mock.url, step_delay=0.05)
    _interrupt_result_when(monkeypatch, lambda status: status.phase is Phase.INFERRING)

    def never_ends(self: Job, timeout: float | None = None):
        raise JobTimeoutError(f"{self.id} still running after waiting {timeout} s")

    monkeypatch.setattr(Job, "wait", never_ends)
    result = run_cli("generate", "stuck", "--url", mock.url, "--frames", "17", "--steps", "100")
    assert result.code == ExitCode.CANCELLED, result
    assert result.document["status"] == "cancelled"
    assert "did not end within 30 s of the cancel" in result.stderr
