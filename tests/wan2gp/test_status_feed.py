"""Regression tests: vidbridge never leaves a WanGP status feed stuck, and always exits.

On the real WanGP 12.60, vidbridge activated the status feed 0.75 s *after* starting
``process_tasks``; a task that failed fast had already ended, so WanGP's feed looped forever,
blocking every later feed on the server (the web UI's too), and the vidbridge process never
exited. The mock reproduces WanGP's feed exactly (tests/mock_backend/test_behaviour.py), so these
run the real CLI in child processes against a mock in its own child process, with bounded waits
that fail instead of hanging.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vidbridge.plugins.mock_backend import faults
from vidbridge.plugins.wan2gp import plugin

pytestmark = pytest.mark.integration

#: Generous: a CLI run here takes a few seconds. Reaching it means the process hung.
EXIT_BOUND = 120


def run_generate(url: str, tmp_path: Path, prompt: str, *extra: str) -> tuple[int, dict[str, Any]]:
    env = {**os.environ, "VIDBRIDGE_WAN2GP_PROBE_PORTS": "", "HF_HUB_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False", "VIDBRIDGE_CACHE_DIR": str(tmp_path / "cache")}
    try:
        done = subprocess.run(
            [sys.executable, "-m", "vidbridge.cli", "generate", prompt, "--frames", "5", "--steps", "2",
             "--url", url, "--output", str(tmp_path / "out"), "--json", *extra],
            capture_output=True, text=True, env=env, timeout=EXIT_BOUND)
    except subprocess.TimeoutExpired as exc:  # the bug: the result is printed, the process lives on
        pytest.fail(f"vidbridge did not exit within {EXIT_BOUND} s; it printed: {exc.stdout!r}")
    return done.returncode, json.loads(done.stdout)


def raw_feed_in_ui_order_ends(url: str) -> None:
    """A plain gradio_client client in WanGP's own order gets its feed ended."""
    from gradio_client import Client

    sys.path.insert(0, str(Path(__file__).parents[1] / "mock_backend"))
    from mock_helpers import queue_task, save_form

    client = Client(url, verbose=False, download_files=False)
    try:
        save_form(client, prompt="raw client", num_inference_steps=1, video_length=5)
        queue_task(client)
        assert client.predict(api_name="/activate_status")
        feed = client.submit(api_name="/refresh_status_async")
        client.predict(api_name="/process_tasks")
        feed.result(timeout=EXIT_BOUND)  # a stuck feed on the server would hold this one
    finally:
        client.close()


def test_three_fast_failures_in_a_row_each_exit_and_leave_the_feed_working(vidbridge_mock_subprocess,
                                                                          tmp_path) -> None:
    url = vidbridge_mock_subprocess.url
    faults.set_options(url, step_delay=0.5)  # the task fails about 1 s after it starts
    for number in range(3):
        # A loaded server runs the status activation late: it must still come before the task.
        faults.add_faults(url, "gen_error:after_step=2,count=1", "busy:fn=activate_status,seconds=1.5,count=1")
        code, document = run_generate(url, tmp_path, f"fails fast {number}")
        assert code == 4 and document["status"] == "failed", document
        assert "Simulated generation error" in document["error"]["message"]
    events = faults.read_counter(url)["events"]
    assert events.get("status_feed_started", 0) == events.get("status_feed_ended", 0)
    raw_feed_in_ui_order_ends(url)


def test_late_failure_exits_and_the_next_job_completes_and_exits(vidbridge_mock_subprocess, tmp_path) -> None:
    """Issue 14, item 1: a failure after step 20 used to print the failed JSON and never exit."""
    url = vidbridge_mock_subprocess.url
    faults.set_options(url, step_delay=0.02)
    faults.add_faults(url, "gen_error:after_step=20,count=1")
    code, document = run_generate(url, tmp_path, "late fail", "--steps", "25")
    assert code == 4 and document["status"] == "failed", document
    code, document = run_generate(url, tmp_path, "after the failure")
    assert code == 0 and document["status"] == "completed", document
    assert len(document["artifacts"]) == 1
    counter = faults.read_counter(url)
    assert counter["by_prompt"] == {"late fail": 1, "after the failure": 1}
    raw_feed_in_ui_order_ends(url)


def test_vidbridge_follows_wangps_generate_chain_in_order(connect, vidbridge_mock, tmp_path) -> None:
    """The order of WanGP's own Generate chain, per gradio session, as the mock recorded it:
    the status display is activated after the task was queued and *before* process_tasks, and
    finalize_generation (which ends WanGP's ``in_progress``) follows it, for a completed and for a
    failed job. Activating later is what left the real server's feed stuck."""
    from vidbridge import GenerationRequest, JobFailedError
    from wan2gp_helpers import follow, run_job

    vidbridge_mock.backend.remember_model("t2v")
    faults.set_options(vidbridge_mock.url, step_delay=0.01)
    faults.add_faults(vidbridge_mock.url, "busy:fn=activate_status,seconds=0.3")  # a loaded server
    session = connect(vidbridge_mock.url)
    run_job(session, GenerationRequest(prompt="in order", frames=5, steps=3), tmp_path)
    faults.add_faults(vidbridge_mock.url, "gen_error:after_step=1,count=1")
    handle = plugin.vidbridge_submit(session=session, request=GenerationRequest(prompt="fails", frames=5, steps=3),
                                     job_id="fails")
    with pytest.raises(JobFailedError, match="Simulated generation error"):
        follow(handle, "fails")
    session.close()  # waits for nothing on the server, but ends what this session started
    counter = faults.read_counter(vidbridge_mock.url)
    chains = [[name for name in names if name in CHAIN] for names in counter["calls"].values()]
    ran = [chain for chain in chains if "process_tasks" in chain]
    assert len(ran) in (1, 2), counter["calls"]  # one gradio session reused, or one per job
    for chain in ran:
        runs = [chain[i:i + 4] for i in range(len(chain)) if chain[i] == "process_prompt_and_add_tasks"]
        assert len(runs) == chain.count("process_tasks")
        for run in runs:
            assert run == ["process_prompt_and_add_tasks", "activate_status", "process_tasks",
                           "finalize_generation"], chain
    assert counter["events"].get("status_feed_started") == counter["events"].get("status_feed_ended") == 2


CHAIN = {"process_prompt_and_add_tasks", "activate_status", "process_tasks", "finalize_generation"}


def stick_the_feed(url: str) -> Any:
    """Make the server's status feed stuck the way a careless client does (activation after the
    task ended); returns that client, whose ``process_tasks`` on an empty queue unsticks it."""
    from gradio_client import Client

    sys.path.insert(0, str(Path(__file__).parents[1] / "mock_backend"))
    from mock_helpers import queue_task, save_form

    careless = Client(url, verbose=False, download_files=False)
    save_form(careless, prompt="careless", num_inference_steps=1, video_length=5)
    queue_task(careless)
    careless.predict(api_name="/process_tasks")
    assert careless.predict(api_name="/activate_status")
    careless.submit(api_name="/refresh_status_async")
    while faults.read_counter(url)["events"].get("status_feed_started", 0) < 1:
        careless.predict(api_name="/activate_status")  # a round trip, not a sleep
    return careless


def test_a_feed_stuck_by_another_client_neither_blocks_the_job_nor_the_exit(vidbridge_mock_subprocess,
                                                                            tmp_path) -> None:
    """Whatever the server does with the status stream, the job completes and the process exits:
    vidbridge stops its own feed (it never got to run) and drops that gradio session."""
    url = vidbridge_mock_subprocess.url
    careless = stick_the_feed(url)
    try:
        code, document = run_generate(url, tmp_path, "beside a stuck feed")
        assert code == 0 and document["status"] == "completed", document
        assert faults.read_counter(url)["by_prompt"].get("beside a stuck feed") == 1
    finally:
        assert careless.predict(api_name="/process_tasks") == (None, None, None)  # unstick
        careless.close()
    raw_feed_in_ui_order_ends(url)


def test_close_ends_every_thread_even_while_the_servers_feed_is_stuck(vidbridge_mock_subprocess, connect,
                                                                       tmp_path) -> None:
    import threading

    from vidbridge import GenerationRequest
    from wan2gp_helpers import run_job

    url = vidbridge_mock_subprocess.url
    careless = stick_the_feed(url)
    before = set(threading.enumerate())
    try:
        session = connect(url)
        run_job(session, GenerationRequest(prompt="threads", frames=5, steps=1), tmp_path)
        session.close()
        started = [t for t in set(threading.enumerate()) - before if t.name.startswith("wan2gp-")]
        for thread in started:
            thread.join(timeout=30)  # each ends on its own once its gradio call was stopped
        assert not [t.name for t in started if t.is_alive()]
        assert all(t.daemon for t in set(threading.enumerate()) - before), "a thread would block exit"
    finally:
        careless.predict(api_name="/process_tasks")
        careless.close()
