"""Transient faults against the in-process mock: the job recovers and generates exactly once.

Faults are set through the mock's admin helpers; the generation counter proves there is no
duplicate generation. No sleeps, no wall-clock asserts; step delay 0.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from vidbridge import GenerationRequest
from vidbridge.plugins.mock_backend import faults
from vidbridge.plugins.wan2gp import plugin

from wan2gp_helpers import run_job

pytestmark = pytest.mark.integration


def _t2v(prompt: str) -> GenerationRequest:
    return GenerationRequest(prompt=prompt, model="t2v", frames=17, steps=1, seed=3)


def _runs(url: str, prompt: str) -> int:
    return faults.read_counter(url)["by_prompt"].get(prompt, 0)


@pytest.fixture
def mock(vidbridge_mock: Any) -> Any:
    vidbridge_mock.backend.remember_model("t2v")  # earlier tests may have switched the server
    return vidbridge_mock


def test_503_on_joins_then_success_generates_once(mock: Any, connect: Any, tmp_path: Path) -> None:
    session = connect(mock.url, retry_attempts=4)
    run_job(session, _t2v("warm"), tmp_path, "warm")  # the session's model and form are known
    faults.reset_counter(mock.url)
    # the next two queue joins (save_inputs, then process_prompt_and_add_tasks) are refused
    faults.add_faults(mock.url, "503:route=join,count=2,retry_after=0")
    [artifact], _ = run_job(session, _t2v("after 503"), tmp_path, "j")
    assert artifact.size > 0 and not faults.list_faults(mock.url)
    assert _runs(mock.url, "after 503") == 1 and faults.read_counter(mock.url)["total"] == 1


def test_reset_on_every_kind_of_step_then_success(mock: Any, connect: Any, tmp_path: Path) -> None:
    session = connect(mock.url, retry_attempts=4)
    faults.add_faults(mock.url, "reset:route=join,count=3")
    [artifact], _ = run_job(session, _t2v("after resets"), tmp_path, "r")
    assert artifact.size > 0 and _runs(mock.url, "after resets") == 1


def test_429_retry_after_is_honoured(mock: Any, connect: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import tenacity

    waits: list[float] = []
    original = tenacity.Retrying.__init__

    def recording(self: Any, *args: Any, **kwargs: Any) -> None:  # records the policy's chosen waits
        sleep = kwargs.get("sleep")
        kwargs["sleep"] = lambda seconds: (waits.append(seconds), sleep(seconds) if sleep else None)
        original(self, *args, **kwargs)

    monkeypatch.setattr(tenacity.Retrying, "__init__", recording)
    session = connect(mock.url, retry_attempts=4)
    run_job(session, _t2v("warm 429"), tmp_path, "w")
    faults.add_faults(mock.url, "429:route=join,count=1,retry_after=1")
    [artifact], _ = run_job(session, _t2v("after 429"), tmp_path, "l")
    assert artifact.size > 0 and _runs(mock.url, "after 429") == 1
    assert waits and waits[0] == 1.0  # the server's Retry-After, not the exponential back-off


def test_result_stream_refused_after_generation_started_is_recovered_once(mock: Any, connect: Any,
                                                                          tmp_path: Path) -> None:
    session = connect(mock.url, retry_attempts=4)
    run_job(session, _t2v("warm stream"), tmp_path, "w")
    # Every result stream is refused a few times (its events keep running on the server): each
    # call, process_tasks included, must end with its one result, and the task runs once. Three
    # refusals: with retry_attempts=4 (exactly 4 attempts per call) even one call hit by all of
    # them gets its result.
    faults.add_faults(mock.url, "503:route=data,count=3,retry_after=0")
    [artifact], _ = run_job(session, _t2v("stream cut"), tmp_path, "s")
    assert artifact.size > 0 and _runs(mock.url, "stream cut") == 1


def test_result_stream_cut_after_generation_recovers_from_the_gallery(mock: Any, connect: Any, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    import concurrent.futures

    from vidbridge.plugins.wan2gp.flow import WanGPFlow

    real = WanGPFlow.submit_tasks
    submitted: list[Any] = []

    def cut_after_generation(self: Any) -> Any:
        job = real(self)
        submitted.append(job)
        if len(submitted) > 1:
            return job
        job.result(timeout=60)  # the server generated the video...
        cut: concurrent.futures.Future = concurrent.futures.Future()
        cut.set_exception(concurrent.futures.CancelledError())  # ...but its result stream was lost
        return cut

    session = connect(mock.url, retry_attempts=4)
    run_job(session, _t2v("warm gallery"), tmp_path, "w")
    monkeypatch.setattr(WanGPFlow, "submit_tasks", cut_after_generation)
    submitted.clear()
    [artifact], _ = run_job(session, _t2v("gallery recovery"), tmp_path, "g")
    assert artifact.size > 0 and "gallery_recovery" in artifact.path.name
    assert _runs(mock.url, "gallery recovery") == 1 and len(submitted) == 1  # read back, never re-run


def test_more_jobs_than_sessions_all_complete(mock: Any, connect: Any, tmp_path: Path) -> None:
    """Regression: a submit waiting for a free gradio session used to fail at once."""
    session = connect(mock.url, retry_attempts=2)
    jobs = session.limiter.slots._initial_value + 2  # more than the server's gradio-session slots
    results: dict[int, Any] = {}

    def one(i: int) -> None:
        try:
            results[i] = run_job(session, _t2v(f"crowd {i}"), tmp_path, f"c{i}")[0]
        except Exception as exc:  # noqa: BLE001 - reported below
            results[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(jobs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(r, list) and len(r) == 1 for r in results.values()), results
    assert len(results) == jobs and all(_runs(mock.url, f"crowd {i}") == 1 for i in range(jobs))


def test_a_finished_output_survives_more_download_failures_than_one_retry_budget(
        mock: Any, connect: Any, tmp_path: Path) -> None:
    """The file already cost a generation: six 503s in a row on the file route (more than one
    download_verified budget of 4 attempts) still end in a verified artifact, generated once."""
    session = connect(mock.url, retry_attempts=4)
    faults.reset_counter(mock.url)
    faults.add_faults(mock.url, "503:route=file,count=6,retry_after=0")
    [artifact], _ = run_job(session, _t2v("download storm"), tmp_path, "d")
    assert artifact.size > 0 and not faults.list_faults(mock.url)
    assert _runs(mock.url, "download storm") == 1


def test_a_status_feed_that_cannot_be_activated_costs_the_progress_not_the_job(
        mock: Any, connect: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``activate_status`` refused past its retry budget (the soak's 429 storms) after the task
    was queued: the job still runs its queue (``process_tasks``) and completes, once."""
    from vidbridge import RateLimitedError
    from vidbridge.plugins.wan2gp.flow import WanGPFlow

    real = WanGPFlow.step
    refused: list[str] = []

    def refuse_activation(self: Any, step: str, *args: Any, **kwargs: Any) -> Any:
        if step == "activating the status feed":
            refused.append(step)
            raise RateLimitedError(f"{step}: HTTP 429 (retries exhausted)", endpoint=mock.url)
        return real(self, step, *args, **kwargs)

    session = connect(mock.url, retry_attempts=2)
    monkeypatch.setattr(WanGPFlow, "step", refuse_activation)
    [artifact], _ = run_job(session, _t2v("no status feed"), tmp_path, "s")
    assert refused and artifact.size > 0
    assert _runs(mock.url, "no status feed") == 1


def test_a_step_before_the_queue_that_outlasts_its_retries_fails_after_exactly_its_attempts(
        mock: Any, connect: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``save_inputs`` answering 502 on every retry while the server runs: ``retry_attempts`` is
    the number of attempts, on one gradio session (a fresh session would only be more attempts).
    Nothing was queued, so nothing is generated; the next job on the same session completes."""
    from vidbridge import TransientServerError
    from vidbridge.plugins.wan2gp.flow import WanGPFlow

    real = WanGPFlow.call
    refused: list[int] = []

    def refuse_every_save(self: Any, step: str, *args: Any, **kwargs: Any) -> Any:
        if step == "saving the form" and self.job_id == "f":
            refused.append(id(self.pooled))
            raise TransientServerError(f"{step}: HTTP 502", endpoint=mock.url)
        return real(self, step, *args, **kwargs)

    session = connect(mock.url, retry_attempts=3)
    monkeypatch.setattr(WanGPFlow, "call", refuse_every_save)
    with pytest.raises(TransientServerError, match="HTTP 502"):
        plugin.vidbridge_submit(session=session, request=_t2v("502 every time"), job_id="f")
    assert len(refused) == 3 and len(set(refused)) == 1  # exactly its attempts, one session
    assert _runs(mock.url, "502 every time") == 0
    [artifact], _ = run_job(session, _t2v("after the 502s"), tmp_path, "g")
    assert artifact.size > 0 and _runs(mock.url, "after the 502s") == 1


def test_a_gallery_and_a_look_up_both_unanswered_once_are_asked_again(
        mock: Any, connect: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Soak N = 1,000: after a finished generation the gallery read ran out of retries and the
    look-up by name got no telling answer either. Unclear is never "no output": both are asked
    again, and the output is delivered, generated once."""
    from vidbridge import BackendConnectionError
    from vidbridge.plugins.wan2gp import job as job_module
    from vidbridge.plugins.wan2gp.flow import WanGPFlow
    from vidbridge.plugins.wan2gp.recovery import Lookup

    real_gallery, real_find = WanGPFlow.gallery, job_module.find_output
    calls: list[str] = []

    def gallery_once_unanswered(self: Any, step: str) -> Any:
        if "after" in step and "gallery" not in calls:
            calls.append("gallery")
            raise BackendConnectionError(f"{step}: connection reset (retries exhausted)", endpoint=mock.url)
        return real_gallery(self, step)

    def look_up_once_unclear(*args: Any, **kwargs: Any) -> Any:
        if "look-up" not in calls:
            calls.append("look-up")
            return Lookup(None, False)
        return real_find(*args, **kwargs)

    monkeypatch.setattr(WanGPFlow, "gallery", gallery_once_unanswered)
    monkeypatch.setattr(job_module, "find_output", look_up_once_unclear)
    session = connect(mock.url)
    [artifact], _ = run_job(session, _t2v("asked again"), tmp_path, "a")
    assert calls == ["gallery", "look-up"] and artifact.size > 0
    assert _runs(mock.url, "asked again") == 1
