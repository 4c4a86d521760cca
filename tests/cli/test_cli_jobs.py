"""``vidbridge jobs`` and ``generate --reuse`` against the mock WanGP: a generate killed with
SIGKILL mid-generation is found in the ledger, resumed (interrupted: its gradio session is gone)
and resubmitted, with one completed generation in all; an identical fixed-seed request is reused
without any generation request."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest

from vidbridge.cli import ExitCode, main
from vidbridge.ledger import Ledger
from vidbridge.plugins.mock_backend import faults
from vidbridge.plugins.mock_backend.fixtures import vidbridge_mock_subprocess_factory  # noqa: F401 - fixture

from cli_helpers import check_artifact

pytestmark = pytest.mark.integration

_GENERATION_FUNCTIONS = {"process_prompt_and_add_tasks", "process_tasks"}


@pytest.fixture
def ledger_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_discovery: None) -> Path:
    path = tmp_path / "jobs.sqlite3"
    monkeypatch.setenv("VIDBRIDGE_LEDGER", str(path))
    return path


@pytest.fixture
def vb(capsys: pytest.CaptureFixture[str], ledger_path: Path) -> Callable[..., tuple[int, Any]]:
    """``vb(*args)``: run ``vidbridge *args --json`` here; returns the exit code and the document."""

    def run(*args: str) -> tuple[int, Any]:
        capsys.readouterr()
        code = main([*args, "--json"])
        return int(code), json.loads(capsys.readouterr().out)

    return run


def _generation_calls(counter: dict[str, Any]) -> int:
    return sum(1 for names in counter["calls"].values() for name in names if name in _GENERATION_FUNCTIONS)


def test_reuse_twice_with_the_same_seed_makes_no_second_generation_request(mock: Any, vb: Any,
                                                                           tmp_path: Path) -> None:
    request = ["generate", "reused fox", "--url", mock.url, "--model", "t2v", "--frames", "5", "--steps", "1",
               "--seed", "42", "--reuse"]
    code, first = vb(*request, "--output", str(tmp_path / "one"))
    assert code == ExitCode.OK and first["cached"] is False, first
    before = faults.read_counter(mock.url)
    code, second = vb(*request, "--output", str(tmp_path / "two"))
    assert code == ExitCode.OK and second["cached"] is True, second
    after = faults.read_counter(mock.url)
    assert after["total"] == before["total"] == 1 and _generation_calls(after) == _generation_calls(before)
    [one], [two] = first["artifacts"], second["artifacts"]
    assert one["sha256"] == two["sha256"] and Path(two["path"]).parent == tmp_path / "two"
    check_artifact(two)
    # the file changed: generated normally
    Path(one["path"]).write_bytes(b"not the video any more")
    Path(two["path"]).unlink()
    code, third = vb(*request, "--output", str(tmp_path / "three"))
    assert code == ExitCode.OK and third["cached"] is False and faults.read_counter(mock.url)["total"] == 2


def test_jobs_commands_refuse_bad_input_with_exit_2(vb: Any, capsys: pytest.CaptureFixture[str]) -> None:
    code, document = vb("jobs", "show", "job-nothing")
    assert code == ExitCode.USAGE and document["error"]["field"] == "job_id"
    code, document = vb("jobs", "resume", "job-nothing")
    assert code == ExitCode.USAGE and document["status"] == "failed"
    code, document = vb("jobs", "prune", "--older-than", "-1")
    assert code == ExitCode.USAGE and document["error"]["field"] == "older_than"
    for words in (["jobs", "list", "--status", "bogus"], ["jobs", "list", "--limit", "0"], ["jobs", "show"]):
        with pytest.raises(SystemExit) as caught:
            main(words)
        assert caught.value.code == ExitCode.USAGE and "error:" in capsys.readouterr().err
    assert main(["jobs"]) == ExitCode.USAGE
    code, document = vb("jobs", "list")
    assert code == ExitCode.OK and document == {"jobs": []}


def _wait_for(condition: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll ``condition`` (another process's state: there is no event to wait on) until truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_generate_killed_mid_generation_is_found_resumed_and_resubmitted(mock: Any, vb: Any, ledger_path: Path,
                                                                          tmp_path: Path) -> None:
    # The orphaned task dies on the server at step 40 (as when WanGP runs out of memory): its fate
    # is known, so the counter can show exactly one completed generation for the job.
    faults.add_faults(mock.url, "gen_error:after_step=40,count=1")
    faults.set_options(mock.url, step_delay=0.05)
    env = {**os.environ, "VIDBRIDGE_LEDGER": str(ledger_path), "VIDBRIDGE_WAN2GP_PROBE_PORTS": ""}
    cli = subprocess.Popen([sys.executable, "-m", "vidbridge.cli", "generate", "killed fox", "--url", mock.url,
                            "--frames", "5", "--steps", "100", "--seed", "9", "--json", "--output",
                            str(tmp_path / "out")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ledger = Ledger(ledger_path)
        running = _wait_for(lambda: [r for r in ledger.jobs() if r.status == "inferring"], "the job to infer")
        _wait_for(lambda: faults.read_counter(mock.url)["total"] == 1, "the generation to start")
        cli.send_signal(signal.SIGKILL)
        cli.wait(timeout=30)
    finally:
        if cli.poll() is None:
            cli.kill()
        cli.communicate()
    job_id = running[0].id
    faults.set_options(mock.url, step_delay=0.0)
    _wait_for(lambda: faults.read_counter(mock.url)["failed"] == 1, "the orphaned task to end")
    assert faults.read_counter(mock.url)["completed"] == 0

    code, listed = vb("jobs", "list", "--status", "unfinished")
    [entry] = listed["jobs"]
    assert code == ExitCode.OK and entry["id"] == job_id and entry["finished"] is False
    assert entry["status"] == "inferring" and entry["ref"]["data"]["client_id"]

    code, resumed = vb("jobs", "resume", job_id)
    assert resumed["status"] == "interrupted" and resumed["error"]["reason"] == "session_bound", resumed
    message = resumed["error"]["message"]
    assert code == ExitCode.ERROR and f"vidbridge jobs resume {job_id} --resubmit" in message, message
    assert "resubmit=True" not in message  # the CLI says it as a flag
    code, shown = vb("jobs", "show", job_id)
    assert shown["status"] == "interrupted" and shown["error"]["reason"] == "session_bound"

    code, again = vb("jobs", "resume", job_id, "--resubmit")
    assert code == ExitCode.OK and again["status"] == "completed" and again["attempt"] == 2, again
    assert again["job_id"] == job_id and again["endpoint"] == mock.url.rstrip("/")
    [artifact] = again["artifacts"]
    check_artifact(artifact)
    assert Path(artifact["path"]).parent == tmp_path / "out"
    counter = faults.read_counter(mock.url)
    assert counter["completed"] == 1 and counter["by_prompt"] == {"killed fox": 2}  # one failed, one completed
    record = Ledger(ledger_path).get(job_id)
    assert record.status == "completed" and [a.reason for a in record.attempts] == ["submit", "resubmit"]
    assert record.artifacts[0].sha256 == artifact["sha256"]


def test_generate_killed_then_the_server_restarts_is_resubmitted_once(
        vidbridge_mock_subprocess_factory: Callable[..., Any], vb: Any, ledger_path: Path, tmp_path: Path) -> None:
    """The machine goes down with the host (a laptop closed): the restarted server has no trace of
    the task; resume says interrupted and --resubmit completes it (a real restart: slower)."""
    server = vidbridge_mock_subprocess_factory(step_delay=0.1)
    env = {**os.environ, "VIDBRIDGE_LEDGER": str(ledger_path), "VIDBRIDGE_WAN2GP_PROBE_PORTS": ""}
    cli = subprocess.Popen([sys.executable, "-m", "vidbridge.cli", "generate", "restarted fox", "--url",
                            server.url, "--frames", "5", "--steps", "100", "--json", "--output",
                            str(tmp_path / "out")], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ledger = Ledger(ledger_path)
        running = _wait_for(lambda: [r for r in ledger.jobs() if r.status == "inferring"], "the job to infer")
        cli.send_signal(signal.SIGKILL)
        cli.wait(timeout=30)
    finally:
        if cli.poll() is None:
            cli.kill()
        cli.communicate()
    assert faults.read_counter(server.url)["completed"] == 0
    server.kill()
    server.restart()
    faults.set_options(server.url, step_delay=0.0)
    code, resumed = vb("jobs", "resume", running[0].id)
    assert resumed["status"] == "interrupted" and resumed["error"]["reason"] == "session_bound", resumed
    code, again = vb("jobs", "resume", running[0].id, "--resubmit")
    assert code == ExitCode.OK and again["status"] == "completed" and again["attempt"] == 2, again
    check_artifact(again["artifacts"][0])
    counter = faults.read_counter(server.url)  # survives the restart: attempt 1 ran, then died
    assert [(r["prompt"], r["outcome"]) for r in counter["runs"]] == [("restarted fox", "interrupted"),
                                                                      ("restarted fox", "completed")]


def test_jobs_commands_for_people_on_the_example_backend(ledger_path: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    """The text forms (no --json) of every jobs command, on the installed example plugin."""
    url = "http://example.invalid/jobs"
    assert main(["generate", "text fox", "--url", url, "--seed", "3", "--model", "example-1",
                 "--output", str(tmp_path / "a")]) == ExitCode.OK
    job_line = capsys.readouterr().err
    [record] = Ledger(ledger_path).jobs()
    assert f"job {record.id}" in job_line
    assert main(["jobs", "list"]) == ExitCode.OK
    listed = capsys.readouterr().out
    assert record.id in listed and "completed" in listed and "'text fox'" in listed
    assert main(["jobs", "show", record.id]) == ExitCode.OK
    shown = capsys.readouterr().out
    assert "completed (attempt 1)" in shown and f"sha256:{record.artifacts[0].sha256}" in shown
    assert main(["jobs", "resume", record.id, "--output", str(tmp_path / "b")]) == ExitCode.OK
    resumed = capsys.readouterr().out
    assert str(tmp_path / "b") in resumed and record.artifacts[0].sha256 in resumed
    assert main(["jobs", "cancel", record.id]) == ExitCode.USAGE  # finished: nothing to cancel
    assert "nothing to cancel" in capsys.readouterr().err
    Ledger(ledger_path).mark_interrupted(record.id, {"type": "NotAttachableError", "message": "gone",
                                                     "reason": "unknown"}, "interrupted: gone")
    assert main(["jobs", "show", record.id]) == ExitCode.OK
    assert "(reason: unknown)" in capsys.readouterr().out
    assert main(["jobs", "cancel", record.id]) == ExitCode.OK
    assert "cancelled" in capsys.readouterr().err
    assert main(["jobs", "cancel", record.id, "--json"]) == ExitCode.USAGE  # now finished
    capsys.readouterr()
    assert main(["jobs", "prune", "--older-than", "0"]) == ExitCode.OK
    assert "1 job(s) removed" in capsys.readouterr().out
    assert main(["jobs", "list", "--ledger", str(tmp_path / "other.sqlite3"), "--json"]) == ExitCode.OK
    assert json.loads(capsys.readouterr().out) == {"jobs": []}


def test_generate_killed_while_downloading_resumes_from_the_server_output(mock: Any, vb: Any, ledger_path: Path,
                                                                          tmp_path: Path) -> None:
    """The server finished; the host died during the download: resume fetches that output, and a
    completed job whose file was deleted is fetched again. No second generation either time."""
    faults.add_faults(mock.url, "slow:rate=500")
    env = {**os.environ, "VIDBRIDGE_LEDGER": str(ledger_path), "VIDBRIDGE_WAN2GP_PROBE_PORTS": ""}
    cli = subprocess.Popen([sys.executable, "-m", "vidbridge.cli", "generate", "downloaded fox", "--url", mock.url,
                            "--frames", "5", "--steps", "1", "--json", "--output", str(tmp_path / "out")],
                           env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        ledger = Ledger(ledger_path)
        [record] = _wait_for(lambda: [r for r in ledger.jobs() if r.status == "downloading"], "the download")
        cli.send_signal(signal.SIGKILL)
        cli.wait(timeout=30)
    finally:
        if cli.poll() is None:
            cli.kill()
        cli.communicate()
    faults.clear_faults(mock.url)
    assert record.ref.data["outputs"]  # the reference names the finished output on the server
    code, resumed = vb("jobs", "resume", record.id)
    assert code == ExitCode.OK and resumed["status"] == "completed" and resumed["attempt"] == 1, resumed
    [artifact] = resumed["artifacts"]
    check_artifact(artifact)
    Path(artifact["path"]).unlink()
    code, again = vb("jobs", "resume", record.id, "--output", str(tmp_path / "again"))
    assert code == ExitCode.OK and again["artifacts"][0]["sha256"] == artifact["sha256"], again
    counter = faults.read_counter(mock.url)
    assert counter["total"] == counter["completed"] == 1
